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

/// A global secondary index as the table describes it.
#[derive(Clone, Debug)]
struct Index {
    name: String,
    keys: Vec<String>,
    /// `None`: every attribute (`ALL`); otherwise the non-key attributes projected.
    projects: Option<Vec<String>>,
}

/// A table's primary key and indexes, read back from the emulator (`DescribeTable`), so the
/// count follows whatever the adapter created.
#[derive(Clone, Debug)]
struct Shape {
    keys: Vec<String>,
    indexes: Vec<Index>,
}

type Item = serde_json::Map<String, serde_json::Value>;

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counts: Counts,
    enabled: Arc<Mutex<bool>>,
    shapes: Arc<BTreeMap<String, Shape>>,
    /// Every item the stack has put, by table and key: the "before" of the next write, which
    /// decides what each index write costs.
    shadow: Arc<Mutex<BTreeMap<(String, String), Item>>>,
}

impl Proxy {
    /// Applies a successful put to the shadow and returns the index write units it cost,
    /// by index, following DynamoDB's rules: an entry appearing or disappearing is one
    /// write, a changed index key is two (delete and put), a changed projected attribute
    /// one; each write one unit per started kilobyte of the index entry.
    fn put(&self, table: &str, item: &Item) -> Vec<(String, u64)> {
        let Some(shape) = self.shapes.get(table) else {
            return vec![];
        };
        let key: serde_json::Map<_, _> = shape
            .keys
            .iter()
            .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        let slot = (table.to_string(), serde_json::Value::Object(key).to_string());
        let old = self.shadow.lock().unwrap().insert(slot, item.clone());
        let entry = |item: &Item, ix: &Index| -> Option<Item> {
            if !ix.keys.iter().all(|k| item.contains_key(k)) {
                return None;
            }
            Some(
                item.iter()
                    .filter(|(k, _)| {
                        shape.keys.contains(k)
                            || ix.keys.contains(k)
                            || ix.projects.as_ref().is_none_or(|p| p.contains(k))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        };
        let units = |e: &Item| write_units(&serde_json::Value::Object(e.clone()));
        shape
            .indexes
            .iter()
            .map(|ix| {
                let before = old.as_ref().and_then(|o| entry(o, ix));
                let after = entry(item, ix);
                let wru = match (before, after) {
                    (None, None) => 0,
                    (None, Some(n)) => units(&n),
                    (Some(o), None) => units(&o),
                    (Some(o), Some(n)) => {
                        if ix.keys.iter().any(|k| o.get(k) != n.get(k)) {
                            units(&o) + units(&n)
                        } else if o != n {
                            units(&n)
                        } else {
                            0
                        }
                    }
                };
                (ix.name.clone(), wru)
            })
            .collect()
    }
}

impl Proxy {
    /// An `UpdateItem` of the form `SET a = :x, #b = :y REMOVE #c` applied to the shadow's
    /// copy of the item: the put it amounts to, and the item's units before.
    fn updated(&self, req: &serde_json::Value) -> Option<(bool, serde_json::Value, u64)> {
        let table = req["TableName"].as_str()?;
        let key = req["Key"].as_object()?;
        let slot = (table.to_string(), serde_json::Value::Object(key.clone()).to_string());
        let old = self.shadow.lock().unwrap().get(&slot).cloned()?;
        let name = |n: &str| req["ExpressionAttributeNames"][n].as_str().unwrap_or(n).to_string();
        let expr = req["UpdateExpression"].as_str()?;
        let (set, remove) = expr.split_once(" REMOVE ").unwrap_or((expr, ""));
        let mut new = old.clone();
        for part in set.trim_start_matches("SET ").split(',') {
            let (attr, value) = part.split_once('=')?;
            new.insert(
                name(attr.trim()),
                req["ExpressionAttributeValues"][value.trim()].clone(),
            );
        }
        for attr in remove.split(',').filter(|a| !a.trim().is_empty()) {
            new.remove(&name(attr.trim()));
        }
        let before = write_units(&serde_json::Value::Object(old));
        Some((false, serde_json::json!({ "TableName": table, "Item": new }), before))
    }
}

async fn shape(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Shape {
    let t = ddb.describe_table().table_name(table).send().await.unwrap();
    let t = t.table().unwrap();
    let names = |ks: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        ks.iter().map(|k| k.attribute_name().to_string()).collect::<Vec<_>>()
    };
    Shape {
        keys: names(t.key_schema()),
        indexes: t
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                let p = g.projection().unwrap();
                Index {
                    name: g.index_name().unwrap().to_string(),
                    keys: names(g.key_schema()),
                    projects: match p.projection_type() {
                        Some(aws_sdk_dynamodb::types::ProjectionType::All) => None,
                        _ => Some(p.non_key_attributes().to_vec()),
                    },
                }
            })
            .collect(),
    }
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
    let enabled = *p.enabled.lock().unwrap();
    if enabled {
        *p.counts.lock().unwrap().entry(op.clone()).or_default() += 1;
    }
    // Puts, and the one update the adapter makes (an outbox entry marked done), priced as
    // the put of the item it leaves. Anything else would need its own rule.
    assert!(
        !matches!(op.as_str(), "dynamodb:BatchWriteItem") || !enabled,
        "{op}: the cost count sizes puts and updates only"
    );
    let json = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    // (transactional, the put, the units of the item before: an update bills the larger)
    let puts: Vec<(bool, serde_json::Value, u64)> = match op.as_str() {
        "dynamodb:TransactWriteItems" => json["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i.get("Put").is_some())
            .map(|i| (true, i["Put"].clone(), 0))
            .collect(),
        "dynamodb:PutItem" => vec![(false, json.clone(), 0)],
        "dynamodb:UpdateItem" => p.updated(&json).into_iter().collect(),
        _ => vec![],
    };
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
            if status.is_success() {
                let mut c = p.counts.lock().unwrap();
                if op == "dynamodb:TransactWriteItems" && enabled {
                    *c.entry("dynamodb:items written in transactions".into()).or_default() += puts.len() as u64;
                }
                for (transactional, put, before) in &puts {
                    let item = put["Item"].as_object().cloned().unwrap_or_default();
                    if std::env::var("DUMP").is_ok() {
                        eprintln!("ITEM {}", serde_json::to_string(&item).unwrap());
                    }
                    let index_wru = p.put(put["TableName"].as_str().unwrap_or(""), &item);
                    if !enabled {
                        continue;
                    }
                    // Transactional writes are billed twice on the table; index upkeep once.
                    let base = write_units(&put["Item"]).max(*before) * if *transactional { 2 } else { 1 };
                    *c.entry("dynamodb:WRU base tables (measured item sizes)".into())
                        .or_default() += base;
                    for (name, wru) in index_wru {
                        *c.entry("dynamodb:WRU indexes (measured)".into()).or_default() += wru;
                        *c.entry(format!("dynamodb:WRU index {name}")).or_default() += wru;
                    }
                }
            }
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
    let direct = setup::emulator_config(&moto).await;
    let approvers = vec![
        "platform-admin@example.com".to_string(),
        "security-lead@example.com".to_string(),
    ];
    let (names, mail) = harness::create(&direct, &harness::unique_prefix(), 5, 30, &approvers).await;
    let ddb = aws_sdk_dynamodb::Client::new(&direct);
    let mut shapes = BTreeMap::new();
    for t in [&names.requests_table, &names.audit_table] {
        shapes.insert(t.clone(), shape(&ddb, t).await);
    }
    let proxy = Proxy {
        upstream: moto.clone(),
        http: cgr_request::client::http_client(),
        counts: Counts::default(),
        enabled: Arc::new(Mutex::new(false)),
        shapes: Arc::new(shapes),
        shadow: Default::default(),
    };
    let app = Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The stack talks through the proxy; the harness's own reads (polling, mail) go
    // straight to the emulator, uncounted.
    let sdk = setup::emulator_config(&proxy_url).await;
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
    // A justification people write ("needed for the payments service's build, replacing
    // our mirrored upstream image after the CVE review", and a ticket) is a few hundred
    // characters: the third path shows what that costs.
    let long = "x".repeat(300);
    for (label, env, justification) in [
        ("auto-approved (policy)", Some("dev"), "cost count"),
        ("approved by an admin's link", None, "cost count"),
        ("auto-approved, 300-character justification", Some("dev"), long.as_str()),
    ] {
        proxy.counts.lock().unwrap().clear();
        *proxy.enabled.lock().unwrap() = true;
        for _ in 0..n {
            let image = images.next().unwrap();
            let mut body = json!({"image": image, "justification": justification});
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
                cgr_request::client::http_client().get(&link).send().await.unwrap();
                cgr_request::client::http_client()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: serde_json::Value) -> Item {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn index_writes_follow_dynamodb_rules() {
        let shape = Shape {
            keys: vec!["pk".into()],
            indexes: vec![
                Index {
                    name: "by_status".into(),
                    keys: vec!["status".into()],
                    projects: Some(vec![]),
                },
                Index {
                    name: "by_who".into(),
                    keys: vec!["who".into()],
                    projects: None,
                },
            ],
        };
        let p = Proxy {
            upstream: String::new(),
            http: cgr_request::client::http_client(),
            counts: Counts::default(),
            enabled: Default::default(),
            shapes: Arc::new(BTreeMap::from([("t".to_string(), shape)])),
            shadow: Default::default(),
        };
        let s = |v: &str| json!({"S": v});
        // New item in both indexes: one write each.
        let first = item(json!({"pk": s("1"), "status": s("received"), "who": s("a"), "x": s("1")}));
        assert_eq!(p.put("t", &first), [("by_status".into(), 1), ("by_who".into(), 1)]);
        // A non-key attribute changes: the keys-only index is untouched, the ALL one updated.
        let second = item(json!({"pk": s("1"), "status": s("received"), "who": s("a"), "x": s("2")}));
        assert_eq!(p.put("t", &second), [("by_status".into(), 0), ("by_who".into(), 1)]);
        // The status key changes (delete and put); `who` disappears (a delete).
        let third = item(json!({"pk": s("1"), "status": s("approved"), "x": s("2")}));
        assert_eq!(p.put("t", &third), [("by_status".into(), 2), ("by_who".into(), 1)]);
        // Nothing changes: nothing written; an item without `who` never enters that index.
        assert_eq!(p.put("t", &third), [("by_status".into(), 0), ("by_who".into(), 0)]);
        // Entries over a kilobyte cost a unit per started kilobyte.
        let big = item(json!({"pk": s("2"), "status": s("received"), "who": s("b"), "x": s(&"y".repeat(1500))}));
        assert_eq!(p.put("t", &big), [("by_status".into(), 1), ("by_who".into(), 2)]);
        // Tables the harness did not describe cost nothing here.
        assert!(p.put("other", &big).is_empty());
    }
}
