//! Intake under bounded local load, and the pipeline's own overhead.
//!
//! Load: the embedded stack (validate and provision consumers running) on 127.0.0.1, driven
//! open-loop at fixed rate steps for a fixed duration each, every request signed afresh
//! (a signature submits once, so a tool replaying one fixed request measures only the
//! refusal); reported per step: achieved rate, p50 and p99 latency; afterwards the store is
//! counted: every 202 is exactly one stored request (none lost, none duplicated).
//!
//! Overhead: auto-approved requests on the simulated org, one at a time, from intake to
//! `provisioned`, broken down by stage from their audit timestamps.
//!
//! `tests/bench.sh load` builds and runs this.

use std::path::PathBuf;
use std::time::Duration;

use app::config::Settings;
use cgr_request::server::{self, Options};
use domain::auth::client::sign;
use domain::Status;
use serde_json::json;

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

#[tokio::main]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let secs: u64 = std::env::var("STEP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rates: Vec<u64> = std::env::var("RATES")
        .unwrap_or_else(|_| "250,500,1000".into())
        .split(',')
        .map(|r| r.trim().parse().unwrap())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().into(),
        ..Settings::default()
    };
    let opts = Options {
        poll_interval: Duration::from_millis(5),
        ..Options::default()
    };
    let running = server::start(settings, opts).await.unwrap();
    let dev = running
        .app
        .settings
        .clients
        .iter()
        .find(|c| c.id == "dev")
        .unwrap()
        .clone();

    // ---- load
    let body = r#"{"image":"go","justification":"load test","environment":"dev"}"#;
    let url = format!("http://{}/requests", running.addr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let mut accepted = 0u64;
    println!("| offered rate | achieved | p50 | p99 | slowest | 202s | errors |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut steps = vec![];
    for rate in &rates {
        // Open loop: a request every 1/rate s whatever the answers do; each signed afresh
        // (a signature submits once), with its own Idempotency-Key so that two sent in the
        // same second are two requests, as two real clients' would be.
        let total = rate * secs;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / *rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = std::time::Instant::now();
        let mut sent = tokio::task::JoinSet::new();
        for _ in 0..total {
            tick.tick().await;
            let (http, url, secret, id) = (http.clone(), url.clone(), dev.secret.clone(), dev.id.clone());
            sent.spawn(async move {
                let ts = chrono::Utc::now().timestamp();
                let key = ulid::Ulid::new().to_string();
                let what = domain::auth::client::Signing {
                    method: "POST",
                    path: "/requests",
                    content_type: "application/json",
                    idempotency_key: &key,
                };
                let sig = sign(secret.as_bytes(), ts, what, body.as_bytes());
                let at = std::time::Instant::now();
                let status = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", &key)
                    .header("x-client-id", id)
                    .header("x-timestamp", ts.to_string())
                    .header("x-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                (status, at.elapsed().as_secs_f64() * 1000.0)
            });
        }
        let mut latencies = vec![];
        let (mut ok, mut errors) = (0u64, 0u64);
        while let Some(r) = sent.join_next().await {
            let (status, ms) = r.unwrap();
            latencies.push(ms);
            if status == 202 {
                ok += 1;
            } else {
                errors += 1;
            }
        }
        let achieved = total as f64 / started.elapsed().as_secs_f64();
        accepted += ok;
        let (p50, p99, slowest) = stats(latencies);
        println!("| {rate}/s | {achieved:.0}/s | {p50:.2} ms | {p99:.2} ms | {slowest:.1} ms | {ok} | {errors} |");
        steps.push(
            json!({"rate": rate, "achieved": achieved, "p50_ms": p50, "p99_ms": p99, "accepted": ok, "errors": errors}),
        );
    }
    let counted: i64 = running
        .db
        .with(|c| {
            c.query_row("SELECT COUNT(*), COUNT(DISTINCT id) FROM requests", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(|e| app::ports::StoreError::Unavailable(e.to_string()))
        })
        .await
        .map(|(n, distinct)| {
            assert_eq!(n, distinct, "a request stored twice");
            n
        })
        .unwrap();
    println!(
        "\nAccepted {accepted}; stored {counted}: {} lost, {} duplicated.",
        accepted as i64 - counted.min(accepted as i64),
        (counted - accepted as i64).max(0)
    );
    assert_eq!(counted, accepted as i64, "every 202 is exactly one stored request");

    // ---- pipeline overhead (after the load has drained)
    for _ in 0..6000 {
        if running.db.queue_depth(app::ports::QueueName::Validate).await.unwrap() == 0
            && running.db.queue_depth(app::ports::QueueName::Provision).await.unwrap() == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = cgr_request::client::ApiClient::new(&format!("http://{}", running.addr), &dev.id, &dev.secret);
    let n = 50;
    let mut stages: Vec<Vec<f64>> = vec![vec![]; 5];
    // A different catalog image each time, so each is really provisioned.
    let catalog = domain::Catalog::embedded();
    let images: Vec<&String> = catalog
        .names()
        .iter()
        .filter(|n| *n != "go")
        .step_by(7)
        .take(n)
        .collect();
    for image in images {
        let body = json!({"image": image, "justification": "overhead", "environment": "dev"});
        let t0 = chrono::Utc::now();
        let sent = std::time::Instant::now();
        let (_, v) = api
            .call(reqwest::Method::POST, "/requests", Some(&body), &[])
            .await
            .unwrap();
        let intake_ms = sent.elapsed().as_secs_f64() * 1000.0;
        let id = v["id"].as_str().unwrap().to_string();
        let r = loop {
            let r = running.app.store.get(id.parse().unwrap()).await.unwrap().unwrap();
            if r.status().is_terminal() {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(r.status(), Status::Provisioned, "{id} ended {}", r.status());
        let events = running.app.audit.timeline(r.id).await.unwrap();
        let at = |s: Status| events.iter().find(|e| e.to == s).map(|e| e.at);
        let ms = |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| {
            (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
        };
        let (rec, val, app, prov) = (
            at(Status::Received).unwrap(),
            at(Status::Validating).unwrap(),
            at(Status::Approved).unwrap(),
            at(Status::Provisioning).unwrap_or(r.updated_at),
        );
        stages[0].push(intake_ms);
        stages[1].push(ms(rec, val));
        stages[2].push(ms(val, app));
        stages[3].push(ms(app, prov));
        stages[4].push(ms(t0, r.updated_at));
    }
    println!("\nPipeline overhead, {n} auto-approved requests one at a time (stages from audit timestamps, kept to the millisecond):\n");
    println!("| stage | p50 | p99 | max |");
    println!("| --- | --- | --- | --- |");
    let labels = [
        "intake (signed POST round trip, client-measured)",
        "validate queue wait",
        "validate (checks → approved)",
        "provision queue wait",
        "total: intake → provisioned",
    ];
    let mut overhead = vec![];
    for (label, v) in labels.iter().zip(stages) {
        let (p50, p99, max) = stats(v);
        println!("| {label} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms |");
        overhead.push(json!({"stage": label, "p50_ms": p50, "p99_ms": p99, "max_ms": max}));
    }
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("load.json"),
        serde_json::to_string_pretty(&json!({"steps": steps, "stored": counted, "overhead": overhead})).unwrap(),
    )
    .unwrap();
}
