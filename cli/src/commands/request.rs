//! `add` and `status`: ask for an image, and follow a request until it ends.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cgr_request::client::{ApiClient, Submitted};
use domain::{RequestView, Status};
use reqwest::Method;
use serde_json::{json, Value};

use super::{explain, show, TimedOut, Wait, EXIT_ENDED_BADLY};
use crate::args::Output;

pub struct New {
    pub kind: domain::Kind,
    pub image: String,
    pub justification: String,
    pub env: Option<String>,
    pub idempotency_key: Option<String>,
}

pub async fn add(api: &ApiClient, new: New, wait: Option<Wait>, out: Output) -> Result<ExitCode> {
    let mut body = json!({ "image": new.image, "justification": new.justification, "channel": "cli" });
    if !new.kind.is_add() {
        body["kind"] = json!(new.kind);
    }
    if let Some(e) = new.env {
        body["environment"] = json!(e);
    }
    // Always keyed: two identical submissions in one second are then two requests, not a
    // replay, and a retry after a lost answer is safe under the same key.
    let key = new
        .idempotency_key
        .unwrap_or_else(|| format!("cli-{}", ulid::Ulid::new()));
    let headers = [("idempotency-key", key.as_str())];
    let (_, v) = api
        .call(Method::POST, "/requests", Some(&body), &headers)
        .await
        .map_err(explain)?;
    let accepted: Submitted = serde_json::from_value(v.clone()).context("reading the answer to the submission")?;
    match out {
        Output::Json if wait.is_none() => println!("{v:#}"),
        Output::Json => {}
        Output::Table | Output::Csv if accepted.joined => println!(
            "{} was already asked for: joined {} ({}). You will be told its outcome.\nFollow it with: cgr-request status {} --wait",
            accepted.image,
            accepted.id,
            accepted.status.describe(),
            accepted.id
        ),
        Output::Table | Output::Csv => println!(
            "{}  {}{}  {}\nFollow it with: cgr-request status {} --wait",
            accepted.id,
            if new.kind.is_add() { "" } else { "remove " },
            accepted.image,
            accepted.status,
            accepted.id
        ),
    }
    match wait {
        Some(w) => follow(api, &accepted.id.to_string(), w, out).await,
        None => Ok(ExitCode::SUCCESS),
    }
}

pub async fn status(api: &ApiClient, id: &str, wait: Option<Wait>, out: Output) -> Result<ExitCode> {
    if let Some(w) = wait {
        return follow(api, id, w, out).await;
    }
    let (raw, view) = get(api, id).await?;
    match out {
        Output::Json => println!("{raw:#}"),
        Output::Table | Output::Csv => show::request(&view),
    }
    Ok(ExitCode::SUCCESS)
}

/// A request with its timeline: as sent (for `-o json`) and as read.
pub async fn get(api: &ApiClient, id: &str) -> Result<(Value, RequestView)> {
    let (_, v) = api
        .call(Method::GET, &format!("/requests/{id}"), None, &[])
        .await
        .map_err(explain)?;
    let view = serde_json::from_value(v.clone()).with_context(|| format!("reading request {id}"))?;
    Ok((v, view))
}

/// Ended well: the image is in the org.
pub fn succeeded(status: Status) -> bool {
    matches!(status, Status::Provisioned | Status::AlreadyAvailable)
}

/// The request once it has ended (quietly; `follow` is the talkative one).
pub async fn wait_until_done(api: &ApiClient, id: &str, wait: Wait) -> Result<(Value, RequestView)> {
    let started = Instant::now();
    loop {
        let (raw, view) = get(api, id).await?;
        let status = view.request.status();
        if status.is_terminal() {
            return Ok((raw, view));
        }
        timed_out(id, status, started, wait)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Fails with [`TimedOut`] once `--timeout` has passed.
fn timed_out(id: &str, status: Status, started: Instant, wait: Wait) -> Result<()> {
    match wait.timeout {
        Some(limit) if started.elapsed() > limit => Err(TimedOut {
            id: id.to_string(),
            status,
            after: humantime::format_duration(limit),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Prints each status change until the request ends; the exit code says how it ended.
async fn follow(api: &ApiClient, id: &str, wait: Wait, out: Output) -> Result<ExitCode> {
    let started = Instant::now();
    let mut last = None;
    loop {
        let (raw, view) = get(api, id).await?;
        let status = view.request.status();
        if last != Some(status) {
            if out == Output::Table {
                let note = if status == Status::PendingApproval {
                    "  (waiting for an approver)"
                } else {
                    ""
                };
                println!("{}  {id}  {status}{note}", chrono::Utc::now().format("%H:%M:%S"));
            }
            last = Some(status);
        }
        if status.is_terminal() {
            match out {
                Output::Json => println!("{raw:#}"),
                Output::Table | Output::Csv => show::request(&view),
            }
            return Ok(if succeeded(status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_ENDED_BADLY)
            });
        }
        timed_out(id, status, started, wait)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `rate ID up|down [--comment]`: recorded in the request's audit trail.
pub async fn rate(api: &ApiClient, id: &str, up: bool, comment: Option<&str>, out: Output) -> Result<ExitCode> {
    let body = serde_json::json!({ "rating": if up { "up" } else { "down" }, "comment": comment });
    let (_, v) = api
        .call(Method::POST, &format!("/requests/{id}/rating"), Some(&body), &[])
        .await
        .map_err(explain)?;
    match out {
        Output::Json => println!("{v:#}"),
        Output::Table | Output::Csv => println!("{id}  rated {}: thank you", if up { "up" } else { "down" }),
    }
    Ok(ExitCode::SUCCESS)
}
