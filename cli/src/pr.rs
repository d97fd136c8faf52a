//! The pull-request flow: a `requested-images.yaml` in a repository, checked on every PR
//! (`validate-file`, with GitHub annotations) and submitted on merge (`submit-file`,
//! idempotent per entry and commit, approved by the merge). The file's format and its
//! offline checks are `app::requested_images`.

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

pub use app::requested_images::{check_offline, idempotency_key, Checked, Problem};

use crate::client::{query, ApiClient, Submitted};

/// Offline checks, then the catalog and the org through the API.
pub async fn validate(api: &ApiClient, text: &str) -> Result<(Vec<Checked>, Vec<Problem>), String> {
    let (checked, mut problems) = check_offline(text);
    for c in &checked {
        let path = format!("/catalog?{}", query(&[("name", c.image.name())]));
        let (_, v) = api
            .call(Method::GET, &path, None, &[])
            .await
            .map_err(|e| e.to_string())?;
        if c.entry.remove {
            // A removal needs the image in the org, and nothing else.
            if v["provisioned"] != true {
                problems.push(Problem {
                    line: c.line,
                    message: format!(
                        "{} is not in the organization: there is nothing to remove",
                        c.image.name()
                    ),
                });
            }
            continue;
        }
        if v["in_catalog"] != true {
            let suggestions: Vec<String> = v["suggestions"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default();
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", suggestions.join(", "))
            };
            problems.push(Problem {
                line: c.line,
                message: format!("{} is not in the Chainguard catalog{hint}", c.image.name()),
            });
        } else if v["provisioned"] == true {
            problems.push(Problem {
                line: c.line,
                message: format!(
                    "{} is already in the organization: docker pull {}",
                    c.image.name(),
                    v["pull_string"].as_str().unwrap_or("")
                ),
            });
        }
    }
    problems.sort_by_key(|p| p.line);
    Ok((checked, problems))
}

/// The merged pull request that approves what it added.
#[derive(Debug, Clone, Serialize)]
pub struct Merge {
    pub repository: String,
    pub pull_request: u64,
    pub merged_by: String,
    pub commit: String,
}

/// Submits each entry; answers (entry, id, status, created now).
pub async fn submit(
    api: &ApiClient,
    checked: &[Checked],
    commit: &str,
    merge: Option<&Merge>,
) -> Result<Vec<(Checked, Submitted, bool)>, String> {
    let mut out = vec![];
    for c in checked {
        let mut body = json!({
            "image": c.entry.name,
            "justification": c.entry.justification.clone().unwrap_or_default(),
            "requester": c.requester.to_string(),
            "channel": "pull_request",
        });
        if let Some(env) = &c.entry.environment {
            body["environment"] = json!(env);
        }
        if c.entry.remove {
            body["kind"] = json!("remove");
        }
        if let Some(m) = merge {
            body["approval"] = json!(m);
        }
        let key = idempotency_key(&c.entry, commit);
        let (status, v): (u16, Value) = api
            .call(Method::POST, "/requests", Some(&body), &[("idempotency-key", &key)])
            .await
            .map_err(|e| format!("line {}: {}: {e}", c.line, c.image))?;
        let submitted: Submitted =
            serde_json::from_value(v).map_err(|e| format!("line {}: {}: unreadable answer: {e}", c.line, c.image))?;
        out.push((c.clone(), submitted, status == 202));
    }
    Ok(out)
}
