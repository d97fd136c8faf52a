//! The validate handler on the SQS events in `events/`.

use app::consumer::Budget;
use app::ports::QueueName;
use aws_lambda_events::event::sqs::SqsEvent;
use domain::{Channel, Environment, ImageRef, Justification, NewRequest, Request, Status};
use embedded::Embedded;

fn event(name: &str) -> SqsEvent {
    let text = std::fs::read_to_string(format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn stored(e: &Embedded, id: &str, image: &str, env: Option<Environment>) {
    let new = NewRequest {
        kind: Default::default(),
        image: ImageRef::parse(image).unwrap(),
        requester: "email:developer@example.com".parse().unwrap(),
        justification: Justification::parse("needed").unwrap(),
        environment: env,
        environment_vouched_by: env.map(|_| "client dev".to_string()),
        channel: Channel::Api,
        idempotency_key: None,
    };
    let (r, first) = Request::submit(new, id.parse().unwrap(), e.app.clock.now());
    e.app.store.create(&r, &first).await.unwrap();
}

async fn status(e: &Embedded, id: &str) -> Status {
    e.app.store.get(id.parse().unwrap()).await.unwrap().unwrap().status()
}

#[tokio::test]
async fn a_batch_is_validated_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    stored(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2", "busybox", None).await;
    stored(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V3", "go", Some(Environment::Dev)).await;
    // The third record names a request that does not exist: permanent, so not bounced.
    let resp = validate::handle(&e.app, event("validate-sqs-batch.json")).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(
        status(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2").await,
        Status::PendingApproval
    );
    assert_eq!(status(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V3").await, Status::Approved);
    assert_eq!(e.db.queue_depth(QueueName::Provision).await.unwrap(), 1);
    // The approval emails were written with the transition; validate sends them from
    // the notify queue, its second event source.
    let mailed = || std::fs::read_dir(dir.path().join("outbox")).map_or(0, |d| d.count());
    assert_eq!(mailed(), 0);
    let notices = e.db.receive(QueueName::Notify, 10, 60_000, 5).await.unwrap();
    assert_eq!(notices.len(), 1, "one outbox entry: the approval request");
    let resp = validate::handle(&e.app, app::consumer::to_sqs_event(&notices)).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(mailed(), 2, "one approval email per approver");
}

#[tokio::test]
async fn a_record_that_is_not_a_work_item_is_reported_failed_alone() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    stored(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2", "busybox", None).await;
    let mut ev = event("validate-sqs-batch.json");
    ev.records[1].body = Some("not json".into());
    let resp = validate::handle(&e.app, ev).await;
    let failed: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [ev_id(1)]);
    assert_eq!(
        status(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2").await,
        Status::PendingApproval
    );
}

fn ev_id(i: usize) -> String {
    format!("0b4d5f3c-7a3e-4a8e-9c1e-00000000000{i}")
}

#[tokio::test]
async fn the_lambda_takes_queue_batches_and_the_scheduled_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    stored(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2", "busybox", None).await;
    let raw = |name: &str| -> serde_json::Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let out = validate::handle_any(&e.app, raw("validate-sqs-one.json"), Budget::unbounded())
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    assert_eq!(
        status(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2").await,
        Status::PendingApproval
    );
    let out = validate::handle_any(&e.app, raw("validate-scheduled-sweep.json"), Budget::unbounded())
        .await
        .unwrap();
    assert_eq!((out["requeued"].as_u64(), out["expired"].as_u64()), (Some(0), Some(0)));
    assert!(out["oldest_pending_secs"].as_i64().unwrap() >= 0);
    assert!(
        validate::handle_any(&e.app, serde_json::json!({"Records": "nope"}), Budget::unbounded())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_notice_whose_entry_is_not_pending_sends_nothing_and_succeeds() {
    // The notify queue's message, delivered again after its entry was done (or for one
    // never written): nothing to send, and not a failure to bounce.
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    stored(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2", "busybox", None).await;
    let resp = validate::handle(&e.app, event("validate-notify-one.json")).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("outbox")).map_or(0, |d| d.count()), 0);
    // And the request was not validated: a notice is not a request's work item.
    assert_eq!(status(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2").await, Status::Received);
}
