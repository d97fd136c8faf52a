//! `admin pending|approve|deny|retry|capacity`: an admin client's decisions; `admin
//! redrive`, on the queues themselves.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use app::capacity::CapacityReport;
use app::ports::QueueName;
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
        Admin::Capacity => (Method::GET, "/capacity".to_string(), None),
        Admin::Redrive { .. } => unreachable!("redrive works on the queues, not the API"),
    };
    let (_, v) = api.call(method, &path, body.as_ref(), &[]).await.map_err(explain)?;
    match (out, &cmd) {
        (Output::Json, _) => println!("{v:#}"),
        (Output::Table | Output::Csv, Admin::Pending) => {
            let list: Vec<Request> =
                serde_json::from_value(v["requests"].clone()).context("reading the pending requests")?;
            show::pending(&list);
        }
        (Output::Table | Output::Csv, Admin::Capacity) => {
            let c: CapacityReport = serde_json::from_value(v).context("reading the capacity")?;
            capacity(&c);
        }
        (Output::Table | Output::Csv, _) => {
            let r: Request = serde_json::from_value(v).context("reading the decided request")?;
            println!("{}  {}  {}", r.id, r.image, r.status());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves `queue`'s dead letters back: on SQS where the environment names both queues,
/// else in the local server's database.
pub async fn redrive(data_dir: &Path, queue: QueueName, out: Output) -> Result<ExitCode> {
    let env = |k: String| std::env::var(&k).ok().filter(|v| !v.is_empty());
    let upper = queue.as_str().to_uppercase();
    let (moved, place) = match (env(format!("{upper}_QUEUE_URL")), env(format!("{upper}_DLQ_URL"))) {
        (Some(main), Some(dlq)) => {
            let sdk = aws_adapter::sdk_config().await;
            let client = aws_sdk_sqs::Client::new(&sdk);
            let moved = aws_adapter::sqs::move_messages(&client, &dlq, &main)
                .await
                .with_context(|| format!("moving {dlq} to {main}"))?;
            (moved, main)
        }
        (None, None) => {
            let path = data_dir.join("image-request.db");
            if !path.exists() {
                anyhow::bail!(
                    "no local state at {}: start `cgr-request serve` there, or set {upper}_QUEUE_URL and {upper}_DLQ_URL",
                    path.display()
                );
            }
            let db = embedded::sqlite::Sqlite::open(&path).with_context(|| format!("opening {}", path.display()))?;
            (db.redrive(queue).await?, path.display().to_string())
        }
        _ => anyhow::bail!("set both {upper}_QUEUE_URL and {upper}_DLQ_URL, or neither (the local server)"),
    };
    match out {
        Output::Json => println!("{}", json!({ "queue": queue.as_str(), "moved": moved })),
        _ => println!("moved {moved} message(s) from the {queue} dead letters back to {place}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn capacity(c: &CapacityReport) {
    let used = domain::Capacity {
        used: c.used,
        limit: c.limit,
    };
    println!(
        "{} ({}%); approvers are alerted at {}%.",
        used.describe(),
        c.percent,
        c.alert_percent
    );
    if c.candidates.is_empty() {
        return;
    }
    println!("\nCould go first: nobody asked for them here, then the longest since asked.\n");
    let rows = c.candidates.iter().map(|cand| {
        vec![
            cand.name.clone(),
            cand.last_requested
                .map_or_else(|| "never, here".into(), |t| t.format("%Y-%m-%d").to_string()),
            cand.requester.as_ref().map_or_else(String::new, ToString::to_string),
            cand.request_id.map_or_else(String::new, |id| id.to_string()),
        ]
    });
    println!(
        "{}",
        cgr_request::audit::table(&["REPOSITORY", "LAST ASKED", "BY", "REQUEST"], rows)
    );
}
