//! The approval Lambda's router on the API Gateway events in `events/`.

use app::workflow::Applied;
use axum::body::to_bytes;
use domain::auth::token::ApprovalClaims;
use domain::{Action, Channel, ImageRef, Justification, NewRequest, Principal, Request, RequestId, Status};
use embedded::Embedded;
use tower::ServiceExt;

async fn pending(e: &Embedded) -> RequestId {
    let new = NewRequest {
        kind: Default::default(),
        image: ImageRef::parse("busybox").unwrap(),
        requester: "email:developer@example.com".parse().unwrap(),
        justification: Justification::parse("debug").unwrap(),
        environment: None,
        environment_vouched_by: None,
        channel: Channel::Api,
        idempotency_key: None,
    };
    let (mut r, first) = Request::submit(new, RequestId::new(), e.app.clock.now());
    e.app.store.create(&r, &first).await.unwrap();
    for action in [Action::StartValidation, Action::RequireApproval] {
        let change = e
            .app
            .change(action, Principal::service("validate"), Channel::System, None);
        let Applied::Done(next) = e.app.apply(&r, change, |_| {}).await.unwrap() else {
            panic!()
        };
        r = next;
    }
    r.id
}

fn event_with_token(name: &str, e: &Embedded, id: RequestId) -> lambda_http::Request {
    let token = e.app.token_keys().sign(&ApprovalClaims {
        request_id: id,
        approver: e.app.settings.approvers[0].clone(),
        approve: true,
        expires: chrono::Utc::now().timestamp() + 3600,
    });
    let text = std::fs::read_to_string(format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    lambda_http::request::from_str(&text.replace("TOKEN", &token)).unwrap()
}

async fn call(e: &Embedded, req: lambda_http::Request) -> (u16, String) {
    let resp = approval::router(e.app.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn get_link_event_shows_the_confirmation_page_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    let id = pending(&e).await;
    let (status, html) = call(&e, event_with_token("approval-get-link.json", &e, id)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Approve busybox:latest?"));
    assert_eq!(
        e.app.store.get(id).await.unwrap().unwrap().status(),
        Status::PendingApproval
    );
}

#[tokio::test]
async fn post_link_event_with_a_base64_form_body_records_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embedded::open_in(dir.path()).unwrap();
    let id = pending(&e).await;
    let (status, html) = call(&e, event_with_token("approval-post-link.json", &e, id)).await;
    assert_eq!(status, 200, "{html}");
    let r = e.app.store.get(id).await.unwrap().unwrap();
    assert_eq!(r.status(), Status::Approved);
    let d = r.decision.unwrap();
    assert_eq!(
        (d.by.to_string().as_str(), d.reason.as_deref(), d.channel),
        (
            "email:platform-admin@example.com",
            Some("fine for staging"),
            Channel::Email
        )
    );
}
