//! `validate-file` and `submit-file`: the pull-request flow's `requested-images.yaml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use cgr_request::client::ApiClient;
use cgr_request::pr;
use serde_json::{json, Value};

use super::request::{succeeded, wait_until_done};
use super::{Wait, EXIT_ENDED_BADLY};
use crate::args::Output;

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Offline checks, then, with a client, the catalog and the organization.
pub async fn validate(api: Option<&ApiClient>, file: &Path) -> Result<ExitCode> {
    let text = read(file)?;
    let shown = file.display().to_string();
    let (checked, problems) = match api {
        Some(api) => pr::validate(api, &text).await.map_err(anyhow::Error::msg)?,
        None => {
            eprintln!(
                "{shown}: checked offline (YAML, fields, duplicates); the catalog and the organization were not \
                 asked: give a client (--client/--secret) to check them"
            );
            pr::check_offline(&text)
        }
    };
    for p in &problems {
        println!("{}", p.annotation(&shown));
    }
    if !problems.is_empty() {
        eprintln!("{shown}: {} problem(s)", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    println!("{shown}: {} image(s) OK", checked.len());
    Ok(ExitCode::SUCCESS)
}

/// The merge that approves the file's entries, where the flags name one.
pub fn merge(
    repository: Option<String>,
    pull_request: Option<u64>,
    merged_by: Option<String>,
    commit: &str,
) -> Result<Option<pr::Merge>> {
    Ok(match (pull_request, merged_by) {
        (Some(pull_request), Some(merged_by)) => Some(pr::Merge {
            repository: repository
                .ok_or_else(|| anyhow!("--repository (or GITHUB_REPOSITORY) is needed with --pull-request"))?,
            pull_request,
            merged_by,
            commit: commit.to_string(),
        }),
        _ => None,
    })
}

pub async fn submit(
    api: &ApiClient,
    file: &Path,
    commit: &str,
    merge: Option<pr::Merge>,
    wait: Option<Wait>,
    out: Output,
) -> Result<ExitCode> {
    let text = read(file)?;
    let (checked, problems) = pr::check_offline(&text);
    if !problems.is_empty() {
        for p in &problems {
            println!("{}", p.annotation(&file.display().to_string()));
        }
        return Ok(ExitCode::FAILURE);
    }
    let submitted = pr::submit(api, &checked, commit, merge.as_ref())
        .await
        .map_err(anyhow::Error::msg)?;
    for (c, s, new) in &submitted {
        let note = match (new, s.joined) {
            (_, true) => "  (already asked for: joined that request)",
            (true, false) => "",
            (false, false) => "  (already submitted)",
        };
        if out == Output::Table {
            println!("{}  {}  {}{note}", s.id, c.image, s.status);
        }
    }
    let Some(wait) = wait else {
        if out == Output::Json {
            let list: Vec<Value> = submitted
                .iter()
                .map(|(c, s, new)| json!({"image": c.image.to_string(), "id": s.id, "status": s.status, "new": new}))
                .collect();
            println!("{:#}", json!({ "requests": list }));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let mut all_ok = true;
    let mut results = vec![];
    for (c, s, _) in &submitted {
        let (raw, view) = wait_until_done(api, &s.id.to_string(), wait).await?;
        let r = &view.request;
        let ok = succeeded(r.status());
        all_ok &= ok;
        if out == Output::Table {
            match &r.result {
                _ if ok && c.entry.remove => println!("{}  removed", c.image.name()),
                Some(res) if ok => println!("{}  docker pull {}", c.image, res.pull_string),
                _ => println!("{}  {}: {}", c.image, r.status(), r.outcome.as_deref().unwrap_or("")),
            }
            // What the PR comment carries: who decided, when, and why.
            if let Some(d) = app::notify::decision_line(r) {
                for line in d.lines() {
                    println!("  {line}");
                }
            }
        }
        results.push(raw);
    }
    if out == Output::Json {
        println!("{:#}", json!({ "requests": results }));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ENDED_BADLY)
    })
}
