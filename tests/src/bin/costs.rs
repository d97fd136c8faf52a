//! Counts the AWS calls one request costs, by path (auto-approved, approved by an admin),
//! by running the stack on the AWS adapters through a counting proxy in front of the
//! emulator (every DynamoDB, SQS, SNS and SSM call, by operation), then prices them.
//!
//! `tests/bench.sh costs`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::config::Settings;
use aws_adapter::setup;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cgr_request::server::{self, Backend, Options};
use pipeline_tests::aws as harness;
use serde_json::json;

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counts: Counts,
    /// Items a DynamoDB transaction writes, counted apart (each is billed).
    enabled: Arc<Mutex<bool>>,
}

async fn forward(State(p): State<Proxy>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.replace("DynamoDB_20120810.", "dynamodb:")
                .replace("AmazonSQS.", "sqs:")
                .replace("AmazonSSM.", "ssm:")
        })
        .or_else(|| {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
            form.into_iter()
                .find(|(k, _)| k == "Action")
                .map(|(_, a)| format!("sns:{a}"))
        })
        .unwrap_or_else(|| "other".into());
    if *p.enabled.lock().unwrap() {
        let mut c = p.counts.lock().unwrap();
        *c.entry(op.clone()).or_default() += 1;
        let json = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        if op == "dynamodb:TransactWriteItems" {
            let items = json["TransactItems"].as_array().cloned().unwrap_or_default();
            *c.entry("dynamodb:items written in transactions".into()).or_default() += items.len() as u64;
            // Transactional writes are billed twice.
            let wru: u64 = items.iter().map(|i| 2 * write_units(&i["Put"]["Item"])).sum();
            *c.entry("dynamodb:base-table WRU (measured item sizes)".into())
                .or_default() += wru;
        }
        if op == "dynamodb:PutItem" {
            *c.entry("dynamodb:base-table WRU (measured item sizes)".into())
                .or_default() += write_units(&json["Item"]);
        }
    }
    let mut req = p
        .http
        .request(
            method,
            format!("{}{}", p.upstream, uri.path_and_query().map_or("/", |q| q.as_str())),
        )
        .body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = (status, bytes).into_response();
            for (k, v) in &headers {
                if k != "content-length" && k != "transfer-encoding" {
                    resp.headers_mut().insert(k, v.clone());
                }
            }
            resp
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// DynamoDB's size of an attribute value, by its published rules: strings and binary by
/// their bytes, numbers about one byte per two digits plus one, booleans and nulls one
/// byte, maps and lists three bytes plus one per element (and each key's length).
fn value_size(v: &serde_json::Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" | "B" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner
            .as_str()
            .map_or(0, |n| n.trim_start_matches('-').replace('.', "").len() as u64 / 2 + 1),
        "BOOL" | "NULL" => 1,
        "M" => {
            3 + inner
                .as_object()
                .map_or(0, |m| m.iter().map(|(k, v)| k.len() as u64 + value_size(v) + 1).sum())
        }
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |l| l.iter().map(|v| value_size(v) + 1).sum())
        }
        _ => inner.to_string().len() as u64,
    }
}

/// Write units of putting an item: one per started kilobyte.
fn write_units(item: &serde_json::Value) -> u64 {
    let size: u64 = item
        .as_object()
        .map_or(0, |m| m.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum());
    size.div_ceil(1024).max(1)
}

#[tokio::main]
async fn main() {
    let moto = std::env::var("MOTO_URL").expect("MOTO_URL: run through tests/bench.sh");
    let proxy = Proxy {
        upstream: moto.clone(),
        http: reqwest::Client::new(),
        counts: Counts::default(),
        enabled: Arc::new(Mutex::new(false)),
    };
    let app = Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The stack talks through the proxy; the harness's own reads (polling, mail) go
    // straight to the emulator, uncounted.
    let sdk = setup::emulator_config(&proxy_url).await;
    let direct = setup::emulator_config(&moto).await;
    let approvers = vec![
        "platform-admin@example.com".to_string(),
        "security-lead@example.com".to_string(),
    ];
    let (names, mail) = harness::create(&direct, &harness::unique_prefix(), 5, 30, &approvers).await;
    let store = aws_adapter::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&direct),
        &names.requests_table,
        &names.audit_table,
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().into(),
        approvers,
        ..Settings::default()
    };
    let opts = Options {
        poll_interval: Duration::from_millis(20),
        // The sweep would add its own (periodic, not per-request) queries.
        sweep_interval: Duration::from_secs(3600),
        backend: Backend::Aws { sdk, names },
        ..Options::default()
    };
    let running = server::start(settings, opts).await.unwrap();
    let base = format!("http://{}", running.addr);
    let clients = &running.app.settings.clients;
    let dev = clients.iter().find(|c| c.id == "dev").unwrap();
    let api = cgr_request::client::ApiClient::new(&base, &dev.id, &dev.secret);
    let catalog = domain::Catalog::embedded();
    let mut images = catalog.names().iter().step_by(5);

    let n = 20;
    use app::ports::RequestStore;
    let wait = |id: String| {
        let store = store.clone();
        async move {
            loop {
                let r = store.get(id.parse().unwrap()).await.unwrap().unwrap();
                if r.status().is_terminal() {
                    return r.status();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let mut per_path = vec![];
    for (label, env) in [
        ("auto-approved (policy)", Some("dev")),
        ("approved by an admin's link", None),
    ] {
        proxy.counts.lock().unwrap().clear();
        *proxy.enabled.lock().unwrap() = true;
        for _ in 0..n {
            let image = images.next().unwrap();
            let mut body = json!({"image": image, "justification": "cost count"});
            if let Some(e) = env {
                body["environment"] = json!(e);
            }
            let (_, v) = api
                .call(reqwest::Method::POST, "/requests", Some(&body), &[])
                .await
                .unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            if env.is_none() {
                loop {
                    let r = store.get(id.parse().unwrap()).await.unwrap().unwrap();
                    if r.status() == domain::Status::PendingApproval {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // The admin opens the link (a GET) and confirms (a POST).
                let (_, text) = loop {
                    let found = mail.all().await.into_iter().find(|(name, t)| {
                        name.contains(&id) && name.contains("approval_request") && t.contains("platform-admin")
                    });
                    if let Some(f) = found {
                        break f;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                };
                let link = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Approve: "))
                    .unwrap()
                    .trim()
                    .to_string();
                reqwest::get(&link).await.unwrap();
                reqwest::Client::new()
                    .post(&link)
                    .form(&[("reason", "ok")])
                    .send()
                    .await
                    .unwrap();
            }
            let status = wait(id).await;
            assert_eq!(status, domain::Status::Provisioned);
        }
        // Let the last deletes land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        *proxy.enabled.lock().unwrap() = false;
        let counts = proxy.counts.lock().unwrap().clone();
        println!("\n### Calls per request: {label} ({n} requests)\n");
        println!("| call | per request |");
        println!("| --- | --- |");
        for (op, c) in &counts {
            println!("| {op} | {:.2} |", *c as f64 / n as f64);
        }
        per_path.push(json!({"path": label, "requests": n, "calls": counts}));
    }
    let out = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("costs.json"), serde_json::to_string_pretty(&per_path).unwrap()).unwrap();
}
