//! `admin pending|approve|deny|retry`: an admin client's decisions.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cgr_request::client::ApiClient;
use domain::Request;
use reqwest::Method;
use serde_json::json;

use super::{explain, show};
use crate::args::{Admin, Output};

pub async fn run(api: &ApiClient, cmd: Admin, out: Output) -> Result<ExitCode> {
    let decide = |id: &str, decision: &str, reason: Option<&str>| {
        (
            format!("/requests/{id}/decision"),
            json!({ "decision": decision, "reason": reason }),
        )
    };
    let (method, path, body) = match &cmd {
        Admin::Pending => (Method::GET, "/requests?status=pending_approval".to_string(), None),
        Admin::Approve { id, reason } => {
            let (p, b) = decide(id, "approve", reason.as_deref());
            (Method::POST, p, Some(b))
        }
        Admin::Deny { id, reason } => {
            let (p, b) = decide(id, "deny", Some(reason));
            (Method::POST, p, Some(b))
        }
        Admin::Retry { id } => (Method::POST, format!("/requests/{id}/retry"), Some(json!({}))),
    };
    let (_, v) = api.call(method, &path, body.as_ref(), &[]).await.map_err(explain)?;
    match (out, &cmd) {
        (Output::Json, _) => println!("{v:#}"),
        (Output::Table, Admin::Pending) => {
            let list: Vec<Request> =
                serde_json::from_value(v["requests"].clone()).context("reading the pending requests")?;
            show::pending(&list);
        }
        (Output::Table, _) => {
            let r: Request = serde_json::from_value(v).context("reading the decided request")?;
            println!("{}  {}  {}", r.id, r.image, r.status());
        }
    }
    Ok(ExitCode::SUCCESS)
}
