//! Every `aws dynamodb query` command of the README's "Querying the audit trail", run as
//! written (with the AWS CLI from the project's venv) against the emulator, each checked
//! against what the stack wrote.

use std::collections::HashMap;
use std::process::Command;

use pipeline_tests::start_aws;
use serde_json::Value;

/// The README's commands, by the question in their first line.
fn documented_queries() -> HashMap<String, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("## Querying the audit trail")
        .nth(1)
        .expect("README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| {
            let block = block.split("```").next().unwrap();
            let (first, rest) = block.split_once('\n')?;
            let question = first.strip_prefix("# ")?;
            rest.trim_start()
                .starts_with("aws dynamodb query")
                .then(|| (question.to_string(), rest.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn every_documented_aws_cli_query_answers_its_question() {
    let queries = documented_queries();
    assert_eq!(queries.len(), 8, "{:?}", queries.keys());

    let s = start_aws().await;
    let go = s.submit_apart("go", Some("dev")).await;
    let curl = s.submit_apart("curl", None).await;
    let python = s.submit_apart("python", Some("staging")).await;
    s.wait_for(&go, "provisioned").await;
    s.wait_for(&python, "pending_approval").await;
    s.wait_for(&curl, "pending_approval").await;
    let (approve, _) = s.links(&curl, "security-lead@example.com").await;
    let approved = s.http.post(&approve).form(&[("reason", "ok for prod")]).send().await;
    assert_eq!(approved.unwrap().status(), 200);
    s.wait_for(&curl, "provisioned").await;
    s.settle().await;

    let (_, names, _) = s.aws.as_ref().unwrap();
    let now = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let run = |question: &str| -> Value {
        let command = queries
            .get(question)
            .unwrap_or_else(|| panic!("README has no query for {question:?}"));
        let out = Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            // The README's command as written; JSON instead of a table for the test to read.
            .arg(format!("{} --output json", command.trim_end()))
            .env("AWS_ENDPOINT_URL", pipeline_tests::aws::moto_url())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("REQUESTS_TABLE", &names.requests_table)
            .env("AUDIT_TABLE", &names.audit_table)
            .env("REQUEST_ID", &curl)
            .env("REQUESTER", "email:developer@example.com")
            .env("IMAGE", "curl")
            .env("APPROVER", "email:security-lead@example.com")
            .env("STATUS", "pending_approval")
            .env("DAY", now.format("%Y-%m-%d").to_string())
            .env("FROM", ts(now - chrono::Duration::hours(1)))
            .env("TO", ts(now + chrono::Duration::hours(1)))
            .env("CUTOFF", ts(now + chrono::Duration::hours(1)))
            .output()
            .expect("bash runs; the AWS CLI comes from the venv tests/run.sh makes");
        assert!(
            out.status.success(),
            "{question}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let field = |v: &Value, k: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i[k].as_str().unwrap_or("").to_string())
            .collect()
    };

    let timeline = run("A request's full timeline");
    assert_eq!(
        field(&timeline, "to"),
        [
            "received",
            "validating",
            "pending_approval",
            "approved",
            "provisioning",
            "provisioned"
        ]
    );
    assert_eq!(field(&timeline, "seq"), ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(
        run("Requests by requester, newest first")
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [python.as_str(), curl.as_str(), go.as_str()]
    );
    assert_eq!(
        field(&run("Requests for an image, newest first"), "id"),
        [curl.as_str()]
    );
    assert_eq!(
        field(&run("Requests in a time range, newest first"), "id"),
        [python.as_str(), curl.as_str(), go.as_str()]
    );
    assert_eq!(field(&run("Pending approvals, oldest first"), "id"), [python.as_str()]);
    let decisions = run("Decisions by approver, newest first");
    assert_eq!(field(&decisions, "request"), [curl.as_str()]);
    assert_eq!(field(&decisions, "reason"), ["ok for prod"]);
    assert_eq!(
        field(
            &run("Stuck requests: in one unfinished status, not updated since the cut-off, oldest first"),
            "id"
        ),
        [python.as_str()]
    );
    let day = run("Everything that happened on a day, newest first");
    assert_eq!(
        day.as_array().unwrap().len(),
        5 + 6 + 3,
        "every event of the three requests"
    );
}
