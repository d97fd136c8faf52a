//! `audit` and `audit verify`: ops questions answered from the audit trail.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cgr_request::audit::{self, AuditArgs};
use serde_json::json;

use crate::args::{AuditCmd, Output};

pub async fn run(data_dir: &Path, verify: Option<&AuditCmd>, args: &AuditArgs, out: Output) -> Result<ExitCode> {
    let stores = audit::open(data_dir).await.context("opening the audit trail")?;
    if let Some(AuditCmd::Verify { id, keys }) = verify {
        let keys = audit::audit_keys(data_dir, keys.as_deref())?;
        let verified = audit::verify(&stores, id, &keys).await?;
        match out {
            Output::Json => println!("{:#}", json!(verified)),
            Output::Table => println!(
                "{}: the audit chain holds ({} events, head {})",
                verified.request_id, verified.events, verified.head
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = audit::query(&stores, args, chrono::Utc::now()).await?;
    match out {
        Output::Json => println!("{:#}", json!(report)),
        Output::Table => audit::print(&report),
    }
    Ok(ExitCode::SUCCESS)
}
