//! Micro benchmarks of the hot paths: `cargo bench -p image-request-embedded --bench micro`.
//! (Under `cargo test` each runs once, as a smoke test.)

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};

use app::ports::RequestStore;
use domain::auth::token::{ApprovalClaims, TokenKeys};
use domain::Catalog;
use domain::{Action, Channel, ImageRef, Justification, NewRequest, Principal, Request, RequestId};

fn parsing(c: &mut Criterion) {
    c.bench_function("image_ref/parse registry-style name", |b| {
        b.iter(|| ImageRef::parse(black_box("python:3.12.12-r2-dev")).unwrap())
    });
}

/// 2,500 names shaped like the real catalog's (the org limit, and about the catalog's size in a few years).
fn synthetic_catalog() -> Catalog {
    let real = Catalog::embedded();
    let mut names: std::collections::BTreeSet<String> = real.names().iter().cloned().collect();
    let mut i = 0;
    while names.len() < 2500 {
        let n = &real.names()[i % real.len()];
        names.insert(format!("{n}-variant{}", i / real.len()));
        i += 1;
    }
    Catalog::from_names(names)
}

fn catalog(c: &mut Criterion) {
    let real = Catalog::embedded();
    let big = synthetic_catalog();
    assert!(real.len() >= 800 && big.len() == 2500);
    c.bench_function("catalog/contains (819 names)", |b| {
        b.iter(|| real.contains(black_box("python")))
    });
    c.bench_function("catalog/did you mean (819 names)", |b| {
        b.iter(|| real.suggest(black_box("pyhton"), 3))
    });
    c.bench_function("catalog/did you mean (2,500 names)", |b| {
        b.iter(|| big.suggest(black_box("pyhton"), 3))
    });
}

fn signatures(c: &mut Criterion) {
    let keys = TokenKeys {
        active: "k1".into(),
        keys: [("k1".to_string(), "x".repeat(64))].into(),
    };
    let claims = ApprovalClaims {
        request_id: RequestId::new(),
        approver: "platform-admin@example.com".into(),
        approve: true,
        expires: Utc::now().timestamp() + 3600,
    };
    let token = keys.sign(&claims);
    c.bench_function("approval token/sign", |b| b.iter(|| keys.sign(black_box(&claims))));
    c.bench_function("approval token/verify", |b| {
        b.iter(|| {
            keys.verify::<domain::auth::token::ApprovalClaims>(black_box(&token), Utc::now())
                .unwrap()
        })
    });

    let secret = [7u8; 32];
    let body = br#"{"image":"busybox","justification":"Debug shell for staging"}"#;
    let ts = Utc::now().timestamp();
    let what = domain::auth::client::Signing {
        method: "POST",
        path: "/requests",
        content_type: "application/json",
        idempotency_key: "",
    };
    let sig = domain::auth::client::sign(&secret, ts, what, body);
    let ts_s = ts.to_string();
    c.bench_function("hmac/verify a client request", |b| {
        b.iter(|| domain::auth::client::verify(&secret, &ts_s, &sig, what, black_box(body), ts).unwrap())
    });

    let form = b"token=x&team_id=T0TEAM&user_id=U0DEV&command=%2Frequest-image&text=redis%3A7.4+--env+dev+Caching&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=1.2.3";
    let slack_sig = domain::auth::slack::sign(b"8f742231b10e8888abcd99yyyzzz85a5", &ts_s, form);
    c.bench_function("slack/verify a command", |b| {
        b.iter(|| {
            domain::auth::slack::verify(
                b"8f742231b10e8888abcd99yyyzzz85a5",
                Some(&ts_s),
                Some(&slack_sig),
                black_box(form),
                ts,
            )
            .unwrap()
        })
    });
}

fn transition(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = embedded::sqlite::Sqlite::open(&dir.path().join("bench.db")).unwrap();
    c.bench_function("embedded store/one transition with its audit event", |b| {
        b.iter_batched(
            || {
                let new = NewRequest {
                    kind: Default::default(),
                    image: ImageRef::parse("busybox").unwrap(),
                    requester: Principal::Email("developer@example.com".into()),
                    justification: Justification::parse("bench").unwrap(),
                    environment: None,
                    environment_vouched_by: None,
                    channel: Channel::Api,
                    idempotency_key: None,
                };
                let (r, first) = Request::submit(new, RequestId::new(), Utc::now());
                rt.block_on(db.create(&r, &first)).unwrap();
                r
            },
            |r| {
                let change = domain::Change {
                    action: Action::StartValidation,
                    actor: Principal::service("validate"),
                    channel: Channel::System,
                    reason: None,
                    at: Utc::now(),
                };
                let t = r.apply(change, |_| {}).unwrap();
                rt.block_on(db.commit(&t, None)).unwrap();
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, parsing, catalog, signatures, transition);
criterion_main!(benches);
