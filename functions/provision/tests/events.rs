//! The provision handler on the SQS events in `events/`.

use app::workflow::Applied;
use aws_lambda_events::event::sqs::SqsEvent;
use domain::{Action, Channel, ImageRef, Justification, NewRequest, Principal, Request, Status};
use embedded::Embedded;

fn event(name: &str) -> SqsEvent {
    let text = std::fs::read_to_string(format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn approved(e: &Embedded, id: &str) {
    let new = NewRequest {
        kind: Default::default(),
        image: ImageRef::parse("redis:7.4").unwrap(),
        requester: "email:developer@example.com".parse().unwrap(),
        justification: Justification::parse("sessions").unwrap(),
        environment: None,
        environment_vouched_by: None,
        channel: Channel::Api,
        idempotency_key: None,
    };
    let (mut r, first) = Request::submit(new, id.parse().unwrap(), e.app.clock.now());
    e.app.store.create(&r, &first).await.unwrap();
    for action in [Action::StartValidation, Action::AutoApprove] {
        let change = e.app.change(action, Principal::service("test"), Channel::System, None);
        let Applied::Done(next) = e.app.apply(&r, change, |_| {}).await.unwrap() else {
            panic!()
        };
        r = next;
    }
}

#[tokio::test]
async fn an_approved_request_is_provisioned_once_even_when_delivered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    approved(&e, "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2").await;
    for _ in 0..2 {
        let resp = provision::handle(&e.app, event("provision-sqs-one.json")).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    let r = e
        .app
        .store
        .get("req-01JD3XQ4Z8K9M2N5P7R8S0T1V2".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), Status::Provisioned);
    assert_eq!(r.result.as_ref().unwrap().pull_string, "cgr.dev/example.com/redis:7.4");
    assert_eq!(
        r.version(),
        5,
        "submit, validating, approved, provisioning, provisioned: nothing twice"
    );
}
