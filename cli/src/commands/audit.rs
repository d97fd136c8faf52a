//! `audit` and `audit verify`: ops questions answered from the audit trail.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cgr_request::audit::{self, AuditArgs};
use serde_json::json;

use crate::args::{AuditCmd, Output};

pub async fn run(data_dir: &Path, verify: Option<&AuditCmd>, args: &AuditArgs, out: Output) -> Result<ExitCode> {
    let stores = audit::open(data_dir).await.context("opening the audit trail")?;
    if let Some(AuditCmd::Verify {
        id,
        all: _,
        since,
        until,
        keys,
    }) = verify
    {
        let keys = audit::audit_keys(data_dir, keys.as_deref())?;
        let Some(id) = id else {
            let since = audit::parse_time(since.as_deref().unwrap_or_default())?;
            let until = until
                .as_deref()
                .map(audit::parse_time)
                .transpose()?
                .unwrap_or_else(chrono::Utc::now);
            let summary = audit::verify_all(&stores, since, until, &keys).await?;
            match out {
                Output::Json => println!("{:#}", json!(summary)),
                Output::Table | Output::Csv => {
                    for b in &summary.broken {
                        println!("{}: {}", b.request_id, b.problem);
                    }
                    println!(
                        "{} requests with events from {} to {}: {} hold, {} broken",
                        summary.checked,
                        since.to_rfc3339(),
                        until.to_rfc3339(),
                        summary.checked - summary.broken.len(),
                        summary.broken.len()
                    );
                }
            }
            return Ok(if summary.broken.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        };
        let verified = audit::verify(&stores, id, &keys).await?;
        match out {
            Output::Json => println!("{:#}", json!(verified)),
            Output::Table | Output::Csv => println!(
                "{}: the audit chain holds ({} events, head {}){}",
                verified.request_id,
                verified.events,
                verified.head,
                match verified.archived {
                    Some(n) => format!("; the archive holds the same {n}"),
                    None => "; no archive to compare with here".into(),
                }
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = audit::query(&stores, args, chrono::Utc::now()).await?;
    match out {
        Output::Json => println!("{:#}", json!(report)),
        Output::Table | Output::Csv => audit::print(&report),
    }
    Ok(ExitCode::SUCCESS)
}
