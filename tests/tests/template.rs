//! `infra/template.yaml` held to the code: the HTTP routes are exactly the routers', the
//! indexes exactly the adapters', and the deployment rules of the issue hold (least
//! privilege, an append-only audit table, queue timeouts, table protection, no secrets).
//! The template is read through cfn-lint's own YAML loader (it knows `!Ref` and friends).

use std::collections::BTreeSet;
use std::process::Command;

use aws_adapter::setup::{request_projection, AUDIT_INDEXES, REQUEST_INDEXES};
use serde_json::Value;
use tower::ServiceExt;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

// The project venv's Python (tests/run.sh makes it, with cfn-lint, PyYAML and jsonschema).
use pipeline_tests::aws::python;

fn template() -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = python();
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys; from cfnlint.decode import cfn_yaml; print(json.dumps(cfn_yaml.load(sys.argv[1])))",
            &format!("{root}/infra/template.yaml"),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "reading the template needs cfn-lint (tests/run.sh installs it into .venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn resources(t: &Value, kind: &str) -> Vec<(String, Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

fn function<'a>(t: &'a Value, binary: &str) -> (&'a String, &'a Value) {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap_or_else(|| panic!("no function builds {binary}"))
}

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/openapi.json")).unwrap();
    assert!(
        committed == cgr_request::openapi::json(),
        "infra/openapi.json is not what the code generates: run `cargo run -p cgr-request -- openapi > infra/openapi.json`"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_and_is_served() {
    let doc: serde_json::Value = serde_json::from_str(&cgr_request::openapi::json()).unwrap();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let routed: BTreeSet<String> = intake::ROUTES
        .iter()
        .chain(approval::ROUTES.iter())
        .map(|r| r.to_string())
        .collect();
    assert_eq!(documented, routed, "documented routes differ from the routers'");
    // Every error the document names answers the shared error body.
    for (route, op) in doc["paths"].as_object().unwrap().iter().flat_map(|(p, i)| {
        i.as_object()
            .unwrap()
            .iter()
            .map(move |(m, op)| (format!("{m} {p}"), op))
    }) {
        for (status, resp) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                let json = &resp["content"]["application/json"]["schema"]["$ref"];
                let html = &resp["content"]["text/html"];
                assert!(
                    json == "#/components/schemas/ErrorBody" || !html.is_null(),
                    "{route} {status} has no error body"
                );
            }
        }
    }
    // Served as committed, to anyone: it describes, it grants nothing.
    let dir = tempfile::tempdir().unwrap();
    let e = embedded::Embedded::open_in(dir.path()).unwrap();
    let req = axum::http::Request::get("/openapi.json")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = intake::router(e.app.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    assert_eq!(std::str::from_utf8(&body).unwrap(), cgr_request::openapi::json());
}

#[tokio::test]
async fn the_api_routes_are_exactly_the_routers_routes() {
    let t = template();
    for (binary, routes) in [("intake", intake::ROUTES), ("approval", approval::ROUTES)] {
        let (_, f) = function(&t, binary);
        let declared: BTreeSet<String> = f["Properties"]["Events"]
            .as_object()
            .unwrap()
            .values()
            .filter(|e| e["Type"] == "HttpApi")
            .map(|e| {
                format!(
                    "{} {}",
                    e["Properties"]["Method"].as_str().unwrap(),
                    e["Properties"]["Path"].as_str().unwrap()
                )
            })
            .collect();
        let served: BTreeSet<String> = routes.iter().map(|r| r.to_string()).collect();
        assert_eq!(declared, served, "{binary}: template routes differ from the router's");
    }
    // And each listed route is really routed (an unrouted one is axum's bare 404 or a 405).
    let dir = tempfile::tempdir().unwrap();
    let e = embedded::Embedded::open_in(dir.path()).unwrap();
    for (router, routes) in [
        (intake::router(e.app.clone()), intake::ROUTES),
        (approval::router(e.app.clone()), approval::ROUTES),
    ] {
        for route in routes {
            let (method, path) = route.split_once(' ').unwrap();
            let path = path
                .replace("{id}", "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2")
                .replace("{token}", "k1.e30.AAAA");
            let req = axum::http::Request::builder()
                .method(method)
                .uri(&path)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{route} is not routed"
            );
        }
    }
}

#[test]
fn functions_are_rust_on_al2023_built_by_cargo_lambda_with_their_own_role() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"][0]["Ref"], "Architecture");
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
    let mut roles = BTreeSet::new();
    for binary in ["intake", "approval", "validate", "provision"] {
        let (name, f) = function(&t, binary);
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        let role = f["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap().to_string();
        assert!(roles.insert(role), "{name} shares a role");
        assert!(f["Properties"]["Timeout"].as_u64().is_some(), "{name} has a timeout");
    }
}

/// Resources named in a statement (as the logical ids they reference).
fn referenced(resource: &Value) -> Vec<String> {
    list(resource)
        .iter()
        .map(|r| match r {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                if let Some(g) = o.get("Fn::GetAtt") {
                    g[0].as_str().unwrap_or("").to_string()
                } else if let Some(s) = o.get("Fn::Sub") {
                    s.as_str().unwrap_or("").to_string()
                } else if let Some(r) = o.get("Ref") {
                    r.as_str().unwrap_or("").to_string()
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        })
        .collect()
}

#[test]
fn iam_is_least_privilege_and_the_audit_table_is_append_only() {
    let t = template();
    let roles = resources(&t, "AWS::IAM::Role");
    assert_eq!(roles.len(), 5, "one role per function");
    for (name, role) in &roles {
        for policy in list(&role["Properties"]["Policies"]) {
            for st in list(&policy["PolicyDocument"]["Statement"]) {
                let actions: Vec<String> = list(&st["Action"])
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                for a in &actions {
                    assert!(!a.contains('*'), "{name}: wildcard action {a}");
                }
                let targets = referenced(&st["Resource"]);
                assert!(!targets.is_empty(), "{name}: a statement without resources");
                for r in &targets {
                    assert!(r != "*" && !r.is_empty(), "{name}: unscoped resource in {st}");
                }
                let on_stream = st["Resource"]["Fn::GetAtt"][1] == "StreamArn";
                if on_stream {
                    // The archive function reads the stream; nothing more.
                    for a in &actions {
                        assert!(
                            [
                                "dynamodb:DescribeStream",
                                "dynamodb:GetRecords",
                                "dynamodb:GetShardIterator",
                                "dynamodb:ListStreams"
                            ]
                            .contains(&a.as_str()),
                            "{name}: {a} on the audit stream"
                        );
                    }
                } else if targets.iter().any(|r| r.contains("AuditTable")) {
                    for a in &actions {
                        assert!(
                            a == "dynamodb:PutItem" || a == "dynamodb:Query",
                            "{name}: {a} on the audit table"
                        );
                    }
                }
            }
        }
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    assert!(!text.contains("Action: \"*\"") && !text.contains("Resource: \"*\""));
}

#[test]
fn the_audit_archive_is_write_once_and_nothing_in_the_stack_can_shorten_it() {
    let t = template();
    let audit = &t["Resources"]["AuditTable"]["Properties"];
    assert_eq!(audit["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
    let bucket = &t["Resources"]["ArchiveBucket"];
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    let p = &bucket["Properties"];
    assert_eq!(p["ObjectLockEnabled"], true);
    let retention = &p["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(retention["Mode"], "COMPLIANCE");
    assert_eq!(retention["Days"]["Ref"], "ArchiveRetentionDays");
    assert_eq!(t["Parameters"]["ArchiveRetentionDays"]["Default"], 400);
    assert_eq!(p["VersioningConfiguration"]["Status"], "Enabled");
    for block in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(p["PublicAccessBlockConfiguration"][block], true, "{block}");
    }
    assert!(!list(&p["BucketEncryption"]["ServerSideEncryptionConfiguration"]).is_empty());
    // The bucket's policy denies, to everyone, what would shorten the archive.
    let denied: Vec<String> = list(&t["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"])
        .iter()
        .filter(|st| st["Effect"] == "Deny" && st["Principal"] == "*" && st["Condition"].is_null())
        .flat_map(|st| list(&st["Action"]))
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let shortening = [
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:PutObjectRetention",
        "s3:BypassGovernanceRetention",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutLifecycleConfiguration",
    ];
    for a in shortening {
        assert!(denied.contains(&a.to_string()), "{a} is not denied");
    }
    // No role may do any of it; the archive's role may only put objects under `audit/`.
    for (name, role) in resources(&t, "AWS::IAM::Role") {
        for policy in list(&role["Properties"]["Policies"]) {
            for st in list(&policy["PolicyDocument"]["Statement"]) {
                for a in list(&st["Action"]) {
                    let a = a.as_str().unwrap();
                    if a.starts_with("s3:") {
                        assert_eq!((name.as_str(), a), ("ArchiveRole", "s3:PutObject"));
                        assert_eq!(st["Resource"]["Fn::Sub"], "${ArchiveBucket.Arn}/audit/*");
                    }
                }
            }
        }
    }
    // The function: the stream's records, partial failures, and somewhere for the rest.
    let (_, f) = function(&t, "archive");
    let event = f["Properties"]["Events"]["AuditStream"]["Properties"].clone();
    assert_eq!(
        event["Stream"]["Fn::GetAtt"],
        serde_json::json!(["AuditTable", "StreamArn"])
    );
    assert_eq!(event["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert_eq!(
        event["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0],
        "ArchiveDeadLetters"
    );
    assert_eq!(
        f["Properties"]["Environment"]["Variables"]["ARCHIVE_BUCKET"]["Ref"],
        "ArchiveBucket"
    );
}

#[test]
fn queues_outlast_their_consumers_and_report_partial_failures() {
    let t = template();
    for (binary, queue, dlq) in [
        ("validate", "ValidateQueue", "ValidateDeadLetters"),
        ("provision", "ProvisionQueue", "ProvisionDeadLetters"),
        ("validate", "NotifyQueue", "NotifyDeadLetters"),
    ] {
        let (_, f) = function(&t, binary);
        let timeout = f["Properties"]["Timeout"].as_u64().unwrap();
        let q = &t["Resources"][queue]["Properties"];
        assert!(
            q["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout,
            "{queue}: visibility under six times {binary}'s timeout"
        );
        assert_eq!(q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0], dlq);
        // The sweep queues a request stuck in flight again only after every delivery ran out.
        let budget = q["VisibilityTimeout"].as_u64().unwrap() * q["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap();
        assert!(
            budget < app::workflow::IN_FLIGHT_GRACE_MINUTES as u64 * 60,
            "{queue}: {budget} s of redeliveries outlast the sweep's grace"
        );
        let event = f["Properties"]["Events"]
            .as_object()
            .unwrap()
            .values()
            .find(|e| e["Type"] == "SQS" && e["Properties"]["Queue"]["Fn::GetAtt"][0] == queue)
            .unwrap_or_else(|| panic!("{binary} does not consume {queue}"));
        assert_eq!(
            event["Properties"]["FunctionResponseTypes"][0],
            "ReportBatchItemFailures"
        );
    }
    // A notice's every try and wait (`notice_retry_secs` doubled) ends before the sweep
    // would queue its entry again.
    let notify = &t["Resources"]["NotifyQueue"]["Properties"];
    let tries = notify["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() as u32;
    let retry = app::config::Settings::default().notice_retry_secs;
    let waits: u64 = (1..tries).map(|n| app::outbox::backoff(retry, n).as_secs()).sum();
    let budget = waits + u64::from(tries) * notify["VisibilityTimeout"].as_u64().unwrap();
    assert!(
        budget < app::workflow::IN_FLIGHT_GRACE_MINUTES as u64 * 60,
        "a notice's {budget} s of tries outlast the sweep's grace"
    );
}

fn indexes(table: &Value) -> BTreeSet<(String, String, String)> {
    list(&table["Properties"]["GlobalSecondaryIndexes"])
        .iter()
        .map(|i| {
            let key = |kind: &str| {
                list(&i["KeySchema"]).iter().find(|k| k["KeyType"] == kind).unwrap()["AttributeName"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            (i["IndexName"].as_str().unwrap().to_string(), key("HASH"), key("RANGE"))
        })
        .collect()
}

#[test]
fn tables_are_protected_and_indexed_as_the_adapters_query_them() {
    let t = template();
    for name in ["RequestsTable", "AuditTable"] {
        let p = &t["Resources"][name]["Properties"];
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{name}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true
        );
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
        assert_eq!(p["DeletionProtectionEnabled"], true);
    }
    // Link claims and idempotency keys expire; audit events never do (a TTL would delete
    // what a writer marks, without any DeleteItem permission).
    assert_eq!(
        t["Resources"]["RequestsTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"],
        true
    );
    assert!(
        t["Resources"]["AuditTable"]["Properties"]["TimeToLiveSpecification"].is_null(),
        "the audit table has no TTL"
    );
    assert_eq!(
        t["Resources"]["RequestsTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"],
        "ttl"
    );
    assert_eq!(t["Resources"]["AuditTable"]["DeletionPolicy"], "Retain");
    let want = |ix: &[(&str, &str, &str)]| -> BTreeSet<(String, String, String)> {
        ix.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(indexes(&t["Resources"]["RequestsTable"]), want(&REQUEST_INDEXES));
    assert_eq!(indexes(&t["Resources"]["AuditTable"]), want(&AUDIT_INDEXES));
    // Projections as the adapter creates them: index writes are most of the cost.
    for i in list(&t["Resources"]["RequestsTable"]["Properties"]["GlobalSecondaryIndexes"]) {
        let name = i["IndexName"].as_str().unwrap();
        let (kind, include) = request_projection(name);
        assert_eq!(i["Projection"]["ProjectionType"], kind.as_str(), "{name}");
        let listed: Vec<String> = list(&i["Projection"]["NonKeyAttributes"])
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, include, "{name}");
    }
}

#[test]
fn no_secret_is_in_the_template_or_an_environment_variable() {
    let t = template();
    let mut envs = vec![t["Globals"]["Function"]["Environment"]["Variables"].clone()];
    for (_, f) in resources(&t, "AWS::Serverless::Function") {
        envs.push(f["Properties"]["Environment"]["Variables"].clone());
    }
    for env in envs.iter().filter_map(Value::as_object) {
        for (k, v) in env {
            let upper = k.to_ascii_uppercase();
            if upper.contains("SECRET") || upper.contains("TOKEN") || upper.contains("KEY") {
                assert!(
                    k.ends_with("_PARAMETER"),
                    "{k} looks like a secret in the environment: {v}"
                );
            }
        }
    }
    // Only the functions that talk to Chainguard get an identity; only provision may write.
    for (binary, identity) in [
        ("intake", None),
        ("approval", Some("ChainguardCapacityIdentity")),
        ("validate", Some("ChainguardReadIdentity")),
        ("provision", Some("ChainguardIdentity")),
    ] {
        let (_, f) = function(&t, binary);
        let id = &f["Properties"]["Environment"]["Variables"]["IMAGE_REQUEST_CHAINGUARD_IDENTITY"];
        assert_eq!(id["Fn::If"][1]["Ref"].as_str(), identity, "{binary}: {id}");
    }
    // Approvers receive only their own links.
    for (name, sub) in resources(&t, "AWS::SNS::Subscription") {
        if sub["Properties"]["TopicArn"]["Ref"] == "ApprovalsTopic" {
            assert_eq!(sub["Properties"]["FilterPolicyScope"], "MessageAttributes", "{name}");
            assert_eq!(
                sub["Properties"]["FilterPolicy"]["approver"][0], sub["Properties"]["Endpoint"],
                "{name}"
            );
        }
    }
}

#[test]
fn the_slack_manifest_points_at_the_slack_routes() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = python();
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            &format!("{root}/infra/slack-app-manifest.yaml"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = &m["features"]["slash_commands"][0];
    assert_eq!(command["command"], "/request-image");
    let path = |url: &Value| url.as_str().unwrap().trim_start_matches("API_URL").to_string();
    assert!(intake::ROUTES.contains(&&*format!("POST {}", path(&command["url"]))));
    let interactions = &m["settings"]["interactivity"]["request_url"];
    assert!(approval::ROUTES.contains(&&*format!("POST {}", path(interactions))));
    let scopes: Vec<&str> = m["oauth_config"]["scopes"]["bot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["commands", "chat:write"]);
}

#[test]
fn the_example_requested_images_file_matches_its_schema() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = python();
    let check = |yaml: &str| {
        Command::new(&python)
            .args([
                "-c",
                "import json, sys, yaml, jsonschema; jsonschema.validate(yaml.safe_load(sys.argv[2]), json.load(open(sys.argv[1])))",
                &format!("{root}/cli/requested-images.schema.json"),
                yaml,
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    let example = std::fs::read_to_string(format!("{root}/examples/github/requested-images.yaml")).unwrap();
    assert!(check(&example), "the example does not match the schema");
    assert!(
        !check("images:\n  - name: redis\n    justification: x\n"),
        "requestedBy is required"
    );
    assert!(!check(
        "images:\n  - name: Redis!\n    justification: x\n    requestedBy: a\n"
    ));
    assert!(!check(
        "images:\n  - name: redis\n    justification: x\n    requestedBy: a\n    colour: blue\n"
    ));
    // And the CLI's own parser agrees with the example.
    let (checked, problems) = cgr_request::pr::check_offline(&example);
    assert!(problems.is_empty() && checked.len() == 2, "{problems:?}");
}

fn sam(args: &[&str]) -> (bool, String) {
    let out = Command::new(python())
        .arg(format!("{ROOT}/tests/infra/sam.py"))
        .args(args)
        .output()
        .expect("python runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn sam_translates_the_template_into_one_cloudformation_can_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("template.json");
    let (ok, said) = sam(&[
        "translate",
        &format!("{ROOT}/infra/template.yaml"),
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // What the translator made is what the stack will hold: the API, its routes and the
    // functions' permissions, plain CloudFormation.
    assert!(t.get("Transform").is_none());
    assert_eq!(resources(&t, "AWS::Lambda::Function").len(), 5);
    assert_eq!(resources(&t, "AWS::ApiGatewayV2::Api").len(), 1);
    // validate's two queues, provision's, the archive's stream.
    assert_eq!(resources(&t, "AWS::Lambda::EventSourceMapping").len(), 4);
    // The functions learn the public URL parameter's name, not a reference to it.
    for (name, f) in resources(&t, "AWS::Lambda::Function") {
        let v = &f["Properties"]["Environment"]["Variables"]["PUBLIC_URL_PARAMETER"];
        assert_eq!(v["Fn::Sub"], "/image-request/${Stage}/public-url", "{name}");
    }
}

#[test]
fn the_cycle_check_finds_cycles_and_references_to_nothing() {
    // The shape of the template that could not deploy: API → function → parameter → API.
    let (ok, said) = sam(&["check", &format!("{ROOT}/tests/infra/fixtures/broken.json")]);
    assert!(!ok);
    assert!(
        said.contains("circular dependency: HttpApi -> IntakeFunction -> PublicUrlParameter -> HttpApi"),
        "{said}"
    );
    assert!(said.contains("DependsOn IntakeLogs names nothing"), "{said}");
    assert!(said.contains("condition HasOrg is not defined"), "{said}");
}

/// The statements of a function's role, as (actions, referenced resources, condition).
fn statements(t: &Value, binary: &str) -> Vec<(Vec<String>, Vec<String>, Value)> {
    let (_, f) = function(t, binary);
    let role = f["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
    let mut out = vec![];
    for policy in list(&t["Resources"][role]["Properties"]["Policies"]) {
        for st in list(&policy["PolicyDocument"]["Statement"]) {
            let actions = list(&st["Action"])
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            out.push((actions, referenced(&st["Resource"]), st["Condition"].clone()));
        }
    }
    out
}

#[test]
fn each_function_reads_only_its_secrets_and_nobody_else_mints_links() {
    let t = template();
    for (binary, secrets) in [
        // Every function writes audit events, so every function seals them.
        ("intake", vec!["clients", "slack", "audit-keys"]),
        ("approval", vec!["clients", "approval-keys", "slack", "audit-keys"]),
        ("validate", vec!["approval-keys", "slack", "audit-keys"]),
        // Provision tells nobody itself (validate sends its notices): no Slack.
        ("provision", vec!["audit-keys"]),
    ] {
        let readable: Vec<String> = statements(&t, binary)
            .into_iter()
            .filter(|(actions, _, _)| actions.iter().any(|a| a.starts_with("ssm:")))
            .flat_map(|(_, resources, _)| resources)
            .filter_map(|r| r.split("/secrets/").nth(1).map(str::to_string))
            .collect();
        assert_eq!(readable, secrets, "{binary} may read exactly these secrets");
        // And is told exactly these names.
        let (_, f) = function(&t, binary);
        let env = &f["Properties"]["Environment"]["Variables"];
        for (var, secret) in [
            ("CLIENTS_PARAMETER", "clients"),
            ("APPROVAL_KEYS_PARAMETER", "approval-keys"),
            ("SLACK_PARAMETER", "slack"),
            ("AUDIT_KEYS_PARAMETER", "audit-keys"),
        ] {
            assert_eq!(!env[var].is_null(), secrets.contains(&secret), "{binary}: {var}");
            if !env[var].is_null() {
                assert_eq!(
                    env[var]["Fn::Sub"],
                    format!("/image-request/${{Stage}}/secrets/{secret}")
                );
            }
        }
    }
    // No function's environment reads a secret the globals hand everyone.
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    for var in [
        "CLIENTS_PARAMETER",
        "APPROVAL_KEYS_PARAMETER",
        "SLACK_PARAMETER",
        "AUDIT_KEYS_PARAMETER",
        "SECRETS_PARAMETER",
    ] {
        assert!(globals[var].is_null(), "{var} in the globals");
    }
}

#[test]
fn only_link_claims_can_be_deleted_and_unused_grants_are_gone() {
    let t = template();
    for binary in ["intake", "approval", "validate", "provision"] {
        let mut deletes = vec![];
        for (actions, resources, condition) in statements(&t, binary) {
            if actions.iter().any(|a| a == "dynamodb:DeleteItem") {
                // Never a request, an event or an image's guard: claims only (approval
                // gives back a link's use; validate re-arms the capacity alert).
                assert_eq!(actions, ["dynamodb:DeleteItem"]);
                assert_eq!(resources, ["RequestsTable"]);
                deletes.push(condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].clone());
            }
            // approval answers from one request, the requester's recent ones by their
            // index, and the cleanup list from every request by time; intake reads a
            // timeline from the audit table itself, never its indexes.
            if binary == "approval" && actions.iter().any(|a| a == "dynamodb:Query") {
                assert_eq!(resources.len(), 2, "approval: {resources:?}");
                assert!(resources[0].ends_with("/index/by_requester"), "approval: {resources:?}");
                assert!(resources[1].ends_with("/index/by_time"), "approval: {resources:?}");
            }
            if binary == "intake" && resources.iter().any(|r| r.contains("AuditTable")) {
                assert!(
                    !resources.iter().any(|r| r.contains("/index/")),
                    "intake: {resources:?}"
                );
            }
        }
        let expected = match binary {
            "approval" | "validate" => vec![serde_json::json!(["claim#*"])],
            _ => vec![],
        };
        assert_eq!(deletes, expected, "{binary}");
    }
}

#[test]
fn the_approvals_topic_is_encrypted_and_takes_email_subscribers_from_this_account_only() {
    let t = template();
    for topic in ["ApprovalsTopic", "NotificationsTopic"] {
        assert_eq!(
            t["Resources"][topic]["Properties"]["KmsMasterKeyId"], "alias/aws/sns",
            "{topic}"
        );
    }
    let policies = resources(&t, "AWS::SNS::TopicPolicy");
    assert_eq!(policies.len(), 1);
    let p = &policies[0].1["Properties"];
    assert_eq!(p["Topics"][0]["Ref"], "ApprovalsTopic");
    let denies: Vec<&Value> = p["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Deny" && list(&s["Action"]).contains(&Value::from("sns:Subscribe")))
        .collect();
    assert!(denies
        .iter()
        .any(|s| s["Condition"]["StringNotEquals"]["aws:PrincipalAccount"]["Ref"] == "AWS::AccountId"));
    assert!(denies
        .iter()
        .any(|s| s["Condition"]["StringNotEquals"]["sns:Protocol"] == "email"));
}

#[test]
fn alarms_watch_the_api_and_every_queue() {
    let t = template();
    let alarms = resources(&t, "AWS::CloudWatch::Alarm");
    let watched = |metric: &str, dimension: &str| {
        alarms.iter().any(|(_, a)| {
            a["Properties"]["MetricName"] == metric
                && a["Properties"]["Dimensions"].to_string().contains(dimension)
                && a["Properties"]["AlarmActions"][0]["Ref"] == "AlarmsTopic"
        })
    };
    assert!(watched("5xx", "HttpApi"));
    for q in ["ValidateQueue", "ProvisionQueue", "NotifyQueue"] {
        assert!(watched("ApproximateAgeOfOldestMessage", q), "{q}");
    }
    for q in ["ValidateDeadLetters", "ProvisionDeadLetters", "NotifyDeadLetters"] {
        assert!(watched("ApproximateNumberOfMessagesVisible", q), "{q}");
    }
}

#[test]
fn the_dashboard_graphs_every_metric_the_functions_print_and_every_alarm() {
    let t = template();
    let dashboards = resources(&t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let body = dashboards[0].1["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the body is one !Sub string");
    // What CloudFormation substitutes, then the JSON CloudWatch reads.
    let mut substituted = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("${") {
        substituted += &rest[..at];
        substituted += "X";
        rest = &rest[at + rest[at..].find('}').unwrap() + 1..];
    }
    substituted += rest;
    let parsed: Value = serde_json::from_str(&substituted).expect("the dashboard body is JSON");
    let widgets = parsed["widgets"].as_array().unwrap();
    for (name, _, dimensions) in app::metrics::METRICS {
        let graphed = widgets.iter().any(|w| {
            let m = w["properties"]["metrics"].to_string();
            m.contains(&format!("MetricName=\\\"{name}\\\"")) && dimensions.iter().all(|d| m.contains(d))
                || m.contains(&format!("\"{name}\""))
        });
        assert!(graphed, "{name} is not on the dashboard");
    }
    let alarms: Vec<String> = widgets
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    for (name, _) in resources(&t, "AWS::CloudWatch::Alarm") {
        assert!(
            body.contains(&format!("${{{name}.Arn}}")),
            "{name} is not on the dashboard"
        );
    }
    assert_eq!(alarms.len(), resources(&t, "AWS::CloudWatch::Alarm").len());
}

#[test]
fn every_checkov_skip_says_why() {
    let t = template();
    let mut skipped = 0;
    for (name, r) in t["Resources"].as_object().unwrap() {
        for skip in list(&r["Metadata"]["checkov"]["skip"]) {
            let id = skip["id"].as_str().unwrap_or("");
            let why = skip["comment"].as_str().unwrap_or("");
            assert!(id.starts_with("CKV_AWS_"), "{name}: {skip}");
            assert!(
                why.len() >= 40,
                "{name}: skip {id} without a reason worth reading: {why:?}"
            );
            skipped += 1;
        }
    }
    assert!(skipped > 0);
}

#[test]
fn every_function_finishes_its_worst_case_inside_its_timeout() {
    use std::time::Duration;
    let t = template();
    let secs = |binary: &str| {
        let (_, f) = function(&t, binary);
        Duration::from_secs(f["Properties"]["Timeout"].as_u64().unwrap())
    };
    let batch = |binary: &str| {
        let (_, f) = function(&t, binary);
        f["Properties"]["Events"]["Queue"]["Properties"]["BatchSize"]
            .as_u64()
            .unwrap() as u32
    };
    let store_and_mail = Duration::from_secs(2);
    let margin = app::consumer::ANSWER_MARGIN;
    // The HTTP functions: at most two Slack calls after the store and SNS.
    for binary in ["intake", "approval"] {
        assert!(2 * slack::CALL_BUDGET + store_and_mail <= secs(binary), "{binary}");
    }
    // provision: every request of a full batch gets its whole budget, which covers a lookup
    // and a create in Chainguard and a Slack notice.
    assert!(2 * chainguard::CALL_BUDGET + slack::CALL_BUDGET + store_and_mail <= provision::RECORD_BUDGET);
    assert!(batch("provision") * provision::RECORD_BUDGET + margin <= secs("provision"));
    // validate: at least one request always fits; the rest of a batch waits its turn.
    assert!(slack::CALL_BUDGET + chainguard::CALL_BUDGET + store_and_mail <= validate::RECORD_BUDGET);
    assert!(validate::RECORD_BUDGET + margin <= secs("validate"));
}
