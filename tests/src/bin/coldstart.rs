//! Cold starts, measured: each function's release bootstrap runs against a minimal local
//! Lambda Runtime API (configured against the AWS emulator at MOTO_URL), and so does the
//! baseline most teams would write instead: a Python Lambda that imports boto3 and creates
//! its DynamoDB, SQS and SNS clients. Reported: exec → first `next` poll (init), exec →
//! first response (first invocation), binary size, peak memory (VmHWM).
//!
//! `tests/bench.sh coldstart` builds the release binaries and runs this.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::config::{LocalCredentials, Settings};
use aws_adapter::{setup, AwsNames};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use domain::auth::client::{sign, CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::{json, Value};

#[derive(Default)]
struct Rt {
    event: Value,
    next_at: Option<Instant>,
    response_at: Option<Instant>,
    response: String,
    error: Option<String>,
    served: bool,
}

type Shared = Arc<Mutex<Rt>>;

async fn next(State(s): State<Shared>) -> (HeaderMap, String) {
    let first = {
        let mut rt = s.lock().unwrap();
        rt.next_at.get_or_insert_with(Instant::now);
        !std::mem::replace(&mut rt.served, true)
    };
    if !first {
        // One invocation per cold start: later polls wait until the process is killed.
        std::future::pending::<()>().await;
    }
    let event = s.lock().unwrap().event.to_string();
    let mut h = HeaderMap::new();
    let deadline = (chrono::Utc::now().timestamp_millis() + 60_000).to_string();
    h.insert("lambda-runtime-aws-request-id", HeaderValue::from_static("bench-1"));
    h.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline).unwrap());
    h.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
    );
    h.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793"),
    );
    (h, event)
}

async fn response(State(s): State<Shared>, body: Bytes) -> &'static str {
    let mut rt = s.lock().unwrap();
    rt.response_at.get_or_insert_with(Instant::now);
    rt.response = String::from_utf8_lossy(&body).into();
    "{}"
}

async fn error(State(s): State<Shared>, body: Bytes) -> &'static str {
    let mut rt = s.lock().unwrap();
    rt.error = Some(String::from_utf8_lossy(&body).into());
    rt.response_at.get_or_insert_with(Instant::now);
    "{}"
}

#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    init_ms: f64,
    first_ms: f64,
    peak_kib: u64,
}

/// Starts `cmd` against a fresh runtime API serving `event`; measures one cold start.
async fn cold_start(mut cmd: Command, event: Value) -> Result<(Run, String), String> {
    let state: Shared = Arc::new(Mutex::new(Rt { event, ..Rt::default() }));
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let pid = child.id();
    let deadline = started + Duration::from_secs(60);
    loop {
        if state.lock().unwrap().response_at.is_some() || Instant::now() > deadline {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let _ = status;
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let peak_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    let rt = state.lock().unwrap();
    if let Some(e) = &rt.error {
        return Err(format!("the function reported an error: {e}"));
    }
    let (Some(next_at), Some(response_at)) = (rt.next_at, rt.response_at) else {
        return Err("no response within 60 s".into());
    };
    let ms = |t: Instant| (t - started).as_secs_f64() * 1000.0;
    Ok((
        Run {
            init_ms: ms(next_at),
            first_ms: ms(response_at),
            peak_kib,
        },
        rt.response.clone(),
    ))
}

const PYTHON_BASELINE: &str = r#"
import json, os, urllib.request
import boto3
dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")
sns = boto3.client("sns")
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    item = dynamodb.get_item(TableName=os.environ["REQUESTS_TABLE"], Key={"pk": {"S": "req-none"}})
    body = json.dumps({"found": "Item" in item}).encode()
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=body, method="POST"))
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release"));
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let moto = std::env::var("MOTO_URL").expect("MOTO_URL: run through tests/bench.sh");

    // A deployment on the emulator: the template's stack (as the tests deploy it), and the
    // secrets' parameters an operator creates.
    let sdk = setup::emulator_config(&moto).await;
    let stage = pipeline_tests::aws::unique_prefix();
    let deployed = pipeline_tests::aws::deploy(&stage, 5, 30, &["platform-admin@example.com".into()]).await;
    let names: AwsNames = deployed.names.clone();
    let dir = tempfile::tempdir().unwrap();
    Settings {
        data_dir: dir.path().into(),
        ..Settings::default()
    }
    .with_local_credentials()
    .unwrap();
    let creds_text = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
    let creds: LocalCredentials = serde_json::from_str(&creds_text).unwrap();
    let function_env = |logical: &str| deployed.environments[logical].clone();
    let intake_env = function_env("IntakeFunction");
    deployed
        .set_secrets(&sdk, &creds, "https://abc123.execute-api.us-east-1.amazonaws.com")
        .await;
    let env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("REQUESTS_TABLE", names.requests_table.clone()),
        ("AUDIT_TABLE", names.audit_table.clone()),
        ("VALIDATE_QUEUE_URL", names.queues.validate.clone()),
        ("PROVISION_QUEUE_URL", names.queues.provision.clone()),
        ("APPROVALS_TOPIC_ARN", names.approvals_topic.clone()),
        ("NOTIFICATIONS_TOPIC_ARN", names.notifications_topic.clone()),
        ("PUBLIC_URL_PARAMETER", intake_env["PUBLIC_URL_PARAMETER"].clone()),
        ("RUST_LOG", "warn".into()),
    ];
    // Each function is given the names of the secrets it reads, as the stack gives them.
    let secrets_of = |binary: &str| -> Vec<(&'static str, String)> {
        let logical = match binary {
            "intake" => "IntakeFunction",
            "approval" => "ApprovalFunction",
            "validate" => "ValidateFunction",
            _ => "ProvisionFunction",
        };
        let e = function_env(logical);
        [
            "CLIENTS_PARAMETER",
            "APPROVAL_KEYS_PARAMETER",
            "SLACK_PARAMETER",
            "AUDIT_KEYS_PARAMETER",
        ]
        .into_iter()
        .filter_map(|k| e.get(k).map(|v| (k, v.clone())))
        .collect()
    };

    // Each function's first invocation does real work against the emulator.
    let dev = creds.clients.iter().find(|c| c.id == "dev").unwrap().clone();
    let fixture = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(root.join("events").join(name)).unwrap()).unwrap()
    };
    let intake_event = || {
        let mut e = fixture("intake-post-request.json");
        let body = e["body"].as_str().unwrap().to_string();
        let ts = chrono::Utc::now().timestamp();
        e["headers"][CLIENT_HEADER] = json!(dev.id);
        e["headers"][TIMESTAMP_HEADER] = json!(ts.to_string());
        let key = ulid::Ulid::new().to_string();
        let what = domain::auth::client::Signing {
            method: "POST",
            path: "/requests",
            content_type: e["headers"]["content-type"].as_str().unwrap_or(""),
            idempotency_key: &key,
        };
        e["headers"][SIGNATURE_HEADER] = json!(sign(dev.secret.as_bytes(), ts, what, body.as_bytes()));
        e["headers"]["idempotency-key"] = json!(key);
        e
    };
    type MakeEvent<'a> = Box<dyn Fn() -> Value + 'a>;
    let functions: Vec<(&str, MakeEvent<'_>)> = vec![
        ("intake", Box::new(intake_event)),
        ("approval", Box::new(move || fixture("approval-get-link.json"))),
        ("validate", Box::new(move || fixture("validate-sqs-one.json"))),
        ("provision", Box::new(move || fixture("provision-sqs-one.json"))),
    ];

    let mut report = vec![];
    println!("| function | binary | init (median of {runs}) | first response | peak memory |");
    println!("| --- | --- | --- | --- | --- |");
    let mut rust_inits = vec![];
    for (name, event) in &functions {
        let path = bin_dir.join(name);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|_| panic!("no {} (build with tests/bench.sh)", path.display()))
            .len();
        let mut results = vec![];
        for _ in 0..runs {
            let mut cmd = Command::new(&path);
            cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            cmd.envs(secrets_of(name));
            let (run, resp) = cold_start(cmd, event()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            if *name == "intake" {
                let v: Value = serde_json::from_str(&resp).unwrap_or(Value::Null);
                let body = v["body"].as_str().map(|b| {
                    if v["isBase64Encoded"] == true {
                        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
                    } else {
                        b.to_string()
                    }
                });
                assert_eq!(v["statusCode"], 202, "intake did real work: {resp} {body:?}");
            }
            results.push(run);
        }
        let init = median(results.iter().map(|r| r.init_ms).collect());
        let first = median(results.iter().map(|r| r.first_ms).collect());
        let peak = results.iter().map(|r| r.peak_kib).max().unwrap_or(0);
        rust_inits.push(init);
        println!(
            "| {name} | {:.1} MB | {init:.1} ms | {first:.1} ms | {:.1} MB |",
            size as f64 / 1_048_576.0,
            peak as f64 / 1024.0
        );
        report.push(json!({"function": name, "binary_bytes": size, "init_ms": init, "first_ms": first, "peak_kib": peak, "runs": results}));
    }

    // The baseline: Python + boto3, same runtime API, same emulator.
    let python = root.join(".venv/bin/python");
    let script = dir.path().join("baseline.py");
    std::fs::write(&script, PYTHON_BASELINE).unwrap();
    let mut results = vec![];
    for _ in 0..runs {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let (run, resp) = cold_start(cmd, json!({})).await.expect("python baseline");
        assert!(resp.contains("found"), "{resp}");
        results.push(run);
    }
    let py_init = median(results.iter().map(|r| r.init_ms).collect());
    let py_first = median(results.iter().map(|r| r.first_ms).collect());
    let py_peak = results.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    println!(
        "| python + boto3 baseline | (interpreter) | {py_init:.1} ms | {py_first:.1} ms | {:.1} MB |",
        py_peak as f64 / 1024.0
    );
    let worst = rust_inits.iter().cloned().fold(0.0, f64::max);
    println!(
        "\nSlowest Rust init {worst:.1} ms; Python/boto3 init {py_init:.1} ms: {:.0}x",
        py_init / worst
    );
    report.push(json!({"function": "python-boto3-baseline", "init_ms": py_init, "first_ms": py_first, "peak_kib": py_peak, "runs": results}));
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("coldstart.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
}
