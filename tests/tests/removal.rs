//! Removing an image through the same flow as adding one, on both backends
//! (`IMAGE_REQUEST_TEST_BACKEND=aws` for DynamoDB): asked, approved, deleted, audited.

use app::ports::QueueName;
use domain::{verify_chain, Action, AuditEvent, Kind};
use pipeline_tests::{start, start_with, Stack};
use reqwest::Method;
use serde_json::{json, Value};

fn chain_of(v: &Value) -> Vec<AuditEvent> {
    serde_json::from_value(v["audit"].clone()).unwrap()
}

/// A removal asked for by `requester` (through the client that names its requester).
async fn ask_removal(s: &Stack, requester: &str, image: &str) -> (u16, Value) {
    s.submit_for(
        json!({"image": image, "justification": "No service uses it since March", "kind": "remove",
                        "requester": requester}),
    )
    .await
}

#[tokio::test]
async fn a_removal_approved_by_link_deletes_the_repo_once_and_tells_who_asked_before() {
    let s = start().await;
    let added = s.submit("redis", Some("dev")).await;
    s.wait_for(&added, "provisioned").await;
    assert_eq!(s.counts().await.repos, 1);

    let (status, v) = ask_removal(&s, "email:ops@example.com", "redis").await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let pending = s.wait_for(&id, "pending_approval").await;
    assert_eq!(pending["kind"], "remove");
    assert_eq!(
        pending["earlier"][0]["id"],
        added.as_str(),
        "who asked first travels with it"
    );

    // The approvers read what they are asked, and who asked for the image first.
    let mail = s.approval_mail(&id, "platform-admin@example.com").await;
    assert!(
        mail.contains("Subject: Approval needed: remove redis:latest for email:ops@example.com")
            && mail.contains("asks to remove redis:latest from the organization's registry")
            && mail.contains("First asked for by email:developer@example.com"),
        "{mail}"
    );
    let (approve, _) = s.links(&id, "platform-admin@example.com").await;
    let page = s.http.get(&approve).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Approve removing redis?")
            && page.contains("First asked for by email:developer@example.com")
            && page.contains("cgr.dev/example.com/redis"),
        "{page}"
    );
    let done = s
        .http
        .post(&approve)
        .form(&[("reason", "agreed")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(s.counts().await.repos, 0, "the repo is gone");
    assert!(v["result"].is_null(), "a removal has no pull string");
    let events = chain_of(&v);
    verify_chain(&events).unwrap();
    assert!(
        events.iter().all(|e| e.kind == Kind::Remove),
        "every event names the kind"
    );
    let actions: Vec<Action> = events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            Action::Submit,
            Action::StartValidation,
            Action::RequireApproval,
            Action::Approve,
            Action::StartRemoval,
            Action::CompleteRemoval
        ]
    );

    // Delivered again (at least once): nothing is deleted or recorded twice.
    s.settle().await;
    let before = s.counts().await;
    for _ in 0..2 {
        s.running
            .app
            .enqueue(QueueName::Provision, id.parse().unwrap(), "a duplicate")
            .await
            .unwrap();
    }
    s.settle().await;
    assert_eq!(s.counts().await, before);

    // The requester hears it, and so does whoever asked for the image before.
    for to in ["ops@example.com", "developer@example.com"] {
        let text = s.mail(&id, "outcome", to).await;
        assert!(text.contains("Subject: Removed: redis"), "{text}");
    }

    // Gone, it can be asked for again.
    let again = s.submit("redis", Some("dev")).await;
    s.wait_for(&again, "provisioned").await;
}

#[tokio::test]
async fn a_merged_pull_request_removes_an_image_without_asking_an_approver() {
    let s = start().await;
    let added = s.submit("git", Some("dev")).await;
    s.wait_for(&added, "provisioned").await;
    let merge = json!({"repository": "acme/platform", "pull_request": 43, "merged_by": "octocat", "commit": "4567def"});
    let (status, v) = s
        .submit_for(
            json!({"image": "git", "justification": "Replaced by the base image", "kind": "remove",
                           "requester": "github:alice", "approval": merge}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let v = s.wait_for(v["id"].as_str().unwrap(), "provisioned").await;
    assert_eq!(v["kind"], "remove");
    assert_eq!(v["decision"]["by"], "github:octocat");
    assert_eq!(
        v["decision"]["reason"],
        "approved by merging acme/platform#43 (commit 4567def)"
    );
    assert_eq!(s.counts().await.repos, 0);
    s.settle().await;
    assert!(
        !s.outbox().await.iter().any(|(n, _)| n.contains("approval_request")),
        "no approver was asked"
    );
}

#[tokio::test]
async fn a_removal_of_an_image_not_in_the_org_is_rejected() {
    let s = start().await;
    let (status, v) = ask_removal(&s, "email:ops@example.com", "nginx").await;
    assert_eq!(status, 202, "{v}");
    let v = s.wait_for(v["id"].as_str().unwrap(), "rejected").await;
    assert_eq!(v["outcome"], "`nginx` is not in `example.com`");
}

#[tokio::test]
async fn a_denied_removal_leaves_the_image_and_an_open_one_blocks_the_opposite() {
    let s = start().await;
    let added = s.submit("curl", Some("dev")).await;
    s.wait_for(&added, "provisioned").await;
    let (_, v) = ask_removal(&s, "email:ops@example.com", "curl").await;
    let id = v["id"].as_str().unwrap().to_string();
    s.wait_for(&id, "pending_approval").await;

    // While the removal is open, an addition of the image is refused, naming it.
    let (status, refused) = s
        .submit_for(json!({"image": "curl", "justification": "we still use it", "requester": "email:dev2@example.com"}))
        .await;
    assert_eq!(status, 409, "{refused}");
    let before = s.counts().await;

    let (_, deny) = s.links(&id, "platform-admin@example.com").await;
    let done = s
        .http
        .post(&deny)
        .form(&[("reason", "still used by billing")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    s.wait_for(&id, "denied").await;
    assert_eq!(s.counts().await.repos, before.repos, "still in the org");
    s.settle().await;
    assert!(s.outbox().await.iter().any(|(n, t)| n.contains(&id)
        && n.contains("outcome")
        && t.contains("Subject: Removal denied: curl")
        && t.contains("still used by billing")));
}

#[tokio::test]
async fn an_addition_refused_while_a_removal_is_open_names_it_and_stores_nothing() {
    let s = start().await;
    let added = s.submit("git", Some("dev")).await;
    s.wait_for(&added, "provisioned").await;
    let (_, v) = ask_removal(&s, "email:ops@example.com", "git").await;
    let removal = v["id"].as_str().unwrap().to_string();
    s.wait_for(&removal, "pending_approval").await;
    s.settle().await;
    let before = s.counts().await;
    let ts = chrono::Utc::now().timestamp();
    let body = br#"{"image":"git:latest","justification":"builds"}"#;
    let headers = s.signed_headers("POST", "/requests", body, ts, &s.dev_client.secret);
    let (status, v) = s.raw(Method::POST, "/requests", body.to_vec(), &headers).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["id"], removal.as_str());
    assert_eq!(v["kind"], "remove");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("`git` has an open request to remove it"),
        "{v}"
    );
    assert_eq!(s.counts().await, before, "nothing stored");

    // And the reverse: a removal while an addition is open.
    let open_add = s.submit("busybox", None).await;
    s.wait_for(&open_add, "pending_approval").await;
    let (status, v) = ask_removal(&s, "email:ops@example.com", "busybox").await;
    assert_eq!((status, &v["id"]), (409, &json!(open_add)), "{v}");
}

#[tokio::test]
async fn removals_are_auto_approved_only_by_their_own_list() {
    let s = start_with(
        |c| {
            c.policy.auto_approve_requesters = vec!["email:*".into()];
            c.policy.auto_approve_removals = vec!["bash".into()];
        },
        None,
    )
    .await;
    for image in ["bash", "memcached"] {
        let id = s.submit(image, None).await;
        s.wait_for(&id, "provisioned").await;
    }
    let (_, v) = ask_removal(&s, "email:ops@example.com", "bash").await;
    let id = v["id"].as_str().unwrap().to_string();
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(v["decision"]["reason"], "auto_approve_removals: `bash` matches `bash`");
    // No approver was asked, and whoever asked for it before is told all the same.
    let text = s.mail(&id, "outcome", "developer@example.com").await;
    assert!(text.contains("Subject: Removed: bash"), "{text}");
    // A requester rule approves additions, never a removal.
    let (_, v) = ask_removal(&s, "email:ops@example.com", "memcached").await;
    s.wait_for(v["id"].as_str().unwrap(), "pending_approval").await;
}
