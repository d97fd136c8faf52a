//! The intake Lambda's router on the API Gateway events in `events/`.

use app::ports::QueueName;
use axum::body::to_bytes;
use domain::auth::client::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use domain::{Channel, ImageRef, Justification, NewRequest, Request, Status};
use embedded::Embedded;
use lambda_http::Body;
use serde_json::Value;
use tower::ServiceExt;

fn event(name: &str) -> lambda_http::Request {
    let text = std::fs::read_to_string(format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    lambda_http::request::from_str(&text).unwrap()
}

/// Signs the fixture as the local `dev` client, now.
fn resign(mut req: lambda_http::Request, e: &Embedded) -> lambda_http::Request {
    let body = match req.body() {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => vec![],
    };
    let secret = e.app.client("dev").unwrap().secret.clone();
    let ts = chrono::Utc::now().timestamp();
    let path = req.uri().path_and_query().unwrap().as_str().to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map_or(String::new(), |v| v.to_str().unwrap().to_string())
    };
    let (content_type, key) = (header("content-type"), header("idempotency-key"));
    let what = domain::auth::client::Signing {
        method: req.method().as_str(),
        path: &path,
        content_type: &content_type,
        idempotency_key: &key,
    };
    let sig = sign(secret.as_bytes(), ts, what, &body);
    req.headers_mut()
        .insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
    req.headers_mut().insert(SIGNATURE_HEADER, sig.parse().unwrap());
    req
}

async fn call(e: &Embedded, req: lambda_http::Request) -> (u16, Value) {
    let resp = intake::router(e.app.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn post_request_event_is_stored_and_queued_for_validation() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    let (status, v) = call(&e, resign(event("intake-post-request.json"), &e)).await;
    assert_eq!(status, 202, "{v}");
    let stored = e
        .app
        .store
        .get(v["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status(), stored.channel, stored.image.name()),
        (Status::Received, Channel::Cli, "busybox")
    );
    assert_eq!(e.db.queue_depth(QueueName::Validate).await.unwrap(), 1);
}

#[tokio::test]
async fn unsigned_event_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    let (status, _) = call(&e, event("intake-post-request.json")).await;
    assert_eq!(status, 401);
    assert_eq!(e.db.queue_depth(QueueName::Validate).await.unwrap(), 0);
}

#[tokio::test]
async fn get_request_event_answers_status_and_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    let new = NewRequest {
        kind: Default::default(),
        image: ImageRef::parse("busybox").unwrap(),
        requester: e.app.client("dev").unwrap().principal.clone(),
        justification: Justification::parse("debug").unwrap(),
        environment: None,
        environment_vouched_by: None,
        channel: Channel::Api,
        idempotency_key: None,
    };
    let (r, first) = Request::submit(
        new,
        "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2".parse().unwrap(),
        e.app.clock.now(),
    );
    e.app.store.create(&r, &first).await.unwrap();
    let (status, v) = call(&e, resign(event("intake-get-request.json"), &e)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "received");
    assert_eq!(v["audit"][0]["actor"], "email:developer@example.com");
}

#[tokio::test]
async fn catalog_event_searches_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    let (status, v) = call(&e, resign(event("intake-get-catalog.json"), &e)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["matches"][0], "python");
}
