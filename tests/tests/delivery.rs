//! At-least-once delivery: duplicates change nothing twice, failures are redelivered and
//! complete once, and what keeps failing ends in the dead letters with the request failed.

use std::sync::atomic::Ordering;

use app::ports::Clock;
use app::ports::{QueueName, Registry, WorkItem};
use pipeline_tests::{start, start_full, start_with, FlakyRegistry, ShiftedClock};

#[tokio::test]
async fn duplicate_delivery_of_every_queue_message_changes_nothing_twice() {
    let s = start().await;
    let auto = s.submit("go", Some("dev")).await;
    let manual = s.submit("busybox", None).await;
    s.wait_for(&auto, "provisioned").await;
    s.wait_for(&manual, "pending_approval").await;
    s.settle().await;
    let before = (
        s.counts().await,
        s.get(&auto).await,
        s.get(&manual).await,
        s.outbox().await.len(),
    );
    for id in [&auto, &manual] {
        let item = WorkItem {
            request_id: id.parse().unwrap(),
            trace_id: "duplicate".into(),
            notice: None,
        };
        for queue in [QueueName::Validate, QueueName::Provision] {
            s.running
                .app
                .enqueue(queue, item.request_id, "duplicate")
                .await
                .unwrap();
            s.running
                .app
                .enqueue(queue, item.request_id, "duplicate")
                .await
                .unwrap();
        }
        // And straight into the handlers, as a Lambda would see a redelivery.
        validate::validate(&s.running.app, item.clone(), 1).await.unwrap();
        provision::provision(&s.running.app, item, 2).await.unwrap();
    }
    s.settle().await;
    let after = (
        s.counts().await,
        s.get(&auto).await,
        s.get(&manual).await,
        s.outbox().await.len(),
    );
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_handler_that_fails_midway_is_redelivered_and_completes_once() {
    let registry = FlakyRegistry::new(2, false);
    let s = start_with(|_| {}, Some(registry.clone())).await;
    let id = s.submit("curl", Some("dev")).await;
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(
        registry.create_calls.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    assert_eq!(registry.org_repos().await.unwrap().len(), 1);
    let completions = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "provisioned")
        .count();
    assert_eq!(completions, 1);
    s.settle().await;
    assert_eq!(s.dead_letters(QueueName::Provision).await, 0);
}

#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dead_letters_and_the_request_fails() {
    let registry = FlakyRegistry::new(u32::MAX, false);
    let s = start_with(|c| c.max_receives = 3, Some(registry.clone())).await;
    let id = s.submit("curl", Some("dev")).await;
    let v = s.wait_for(&id, "failed").await;
    assert!(
        v["outcome"].as_str().unwrap().contains("gave up after 3 attempts"),
        "{}",
        v["outcome"]
    );
    assert_eq!(registry.create_calls.load(Ordering::SeqCst), 3);
    for _ in 0..200 {
        if s.dead_letters(QueueName::Provision).await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s.dead_letters(QueueName::Provision).await, 1);
    s.settle().await;
    let outbox = s.outbox().await;
    assert_eq!(
        outbox.iter().filter(|(n, _)| n.contains("approver_alert")).count(),
        2,
        "both approvers told"
    );
    assert!(outbox
        .iter()
        .any(|(n, t)| n.contains("outcome") && t.contains("Failed: curl:latest")));
}

#[tokio::test]
async fn a_permanent_registry_error_fails_the_request_at_once_and_an_admin_can_retry() {
    let registry = FlakyRegistry::new(1, true);
    let s = start_with(|_| {}, Some(registry.clone())).await;
    let id = s.submit("curl", Some("dev")).await;
    let v = s.wait_for(&id, "failed").await;
    assert_eq!(v["outcome"], "400 InvalidArgument: repo name rejected");
    assert_eq!(registry.create_calls.load(Ordering::SeqCst), 1, "not retried");
    s.admin
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/retry"),
            Some(&serde_json::json!({})),
            &[],
        )
        .await
        .unwrap();
    let v = s.wait_for(&id, "provisioned").await;
    domain::verify_chain(&serde_json::from_value::<Vec<_>>(v["audit"].clone()).unwrap()).unwrap();
}

/// A request for `git` (dev, vouched) stored as intake stores one, but never queued: what a
/// crash between the store and the queue leaves.
async fn stored_unqueued(s: &pipeline_tests::Stack, why: &str, at: chrono::DateTime<chrono::Utc>) -> domain::Request {
    let new = domain::NewRequest {
        kind: Default::default(),
        image: domain::ImageRef::parse("git").unwrap(),
        requester: "email:developer@example.com".parse().unwrap(),
        justification: domain::Justification::parse(why).unwrap(),
        environment: Some(domain::Environment::Dev),
        environment_vouched_by: Some("client dev".into()),
        channel: domain::Channel::Api,
        idempotency_key: None,
    };
    let (r, event) = domain::Request::submit(new, domain::RequestId::new(), at);
    s.running.app.store.create(&r, &event).await.unwrap();
    r
}

#[tokio::test]
async fn the_sweep_requeues_stranded_requests_and_expires_old_approvals() {
    let clock = std::sync::Arc::new(ShiftedClock::default());
    let s = start_full(|c| c.approval_ttl_hours = 1, None, clock.clone()).await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    // A request stored by an intake that crashed before queueing it.
    let stranded = stored_unqueued(&s, "stranded", clock.now()).await;
    s.settle().await;
    let report = s.running.app.sweep(chrono::Duration::seconds(60)).await.unwrap();
    assert_eq!((report.requeued, report.expired), (0, 0), "nothing is old yet");

    clock.offset_secs.store(2 * 3600, Ordering::SeqCst);
    let report = s.running.app.sweep(chrono::Duration::seconds(60)).await.unwrap();
    clock.offset_secs.store(0, Ordering::SeqCst);
    assert_eq!((report.requeued, report.expired), (1, 1));
    let v = s.wait_for(&id, "expired").await;
    assert_eq!(
        v["audit"].as_array().unwrap().last().unwrap()["actor"],
        "service:sweeper"
    );
    s.wait_for(&stranded.id.to_string(), "provisioned").await;
    assert!(s
        .outbox()
        .await
        .iter()
        .any(|(n, t)| n.contains(&id) && t.contains("Expired: busybox:latest")));
}

#[tokio::test]
async fn approvers_are_reminded_once_a_period_and_the_expiry_does_not_move() {
    let clock = std::sync::Arc::new(ShiftedClock::default());
    let s = start_full(|c| c.reminder_after_hours = 24, None, clock.clone()).await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    let sweep_at = |hours: i64| {
        clock.offset_secs.store(hours * 3600, Ordering::SeqCst);
        s.running.app.sweep(chrono::Duration::seconds(60))
    };
    let reminders = || async {
        s.outbox()
            .await
            .into_iter()
            .filter(|(name, text)| {
                name.contains(&id)
                    && text.contains("To: platform-admin@example.com")
                    && text.contains("Subject: Reminder: Approval needed")
            })
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
    };
    assert_eq!(sweep_at(1).await.unwrap().reminded, 0, "not a day yet");
    assert_eq!(sweep_at(25).await.unwrap().reminded, 1);
    assert_eq!(sweep_at(26).await.unwrap().reminded, 0, "once a period");
    s.settle().await;
    let sent = reminders().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("Still waiting for a decision, 25 hours after"),
        "{}",
        sent[0]
    );
    // Its links work (the page opens; nothing is decided by opening it).
    let approve = sent[0]
        .lines()
        .find_map(|l| l.strip_prefix("Approve: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(s.http.get(&approve).send().await.unwrap().status(), 200);
    assert_eq!(sweep_at(49).await.unwrap().reminded, 1, "the next day");
    let report = sweep_at(73).await.unwrap();
    assert_eq!(
        (report.reminded, report.expired),
        (0, 1),
        "expiry counts from when it began to wait"
    );
    clock.offset_secs.store(0, Ordering::SeqCst);

    let v = s.wait_for(&id, "expired").await;
    let reminded: Vec<&serde_json::Value> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "remind")
        .collect();
    assert_eq!(reminded.len(), 2);
    assert!(reminded
        .iter()
        .all(|e| e["actor"] == "service:sweeper" && e["from"] == "pending_approval" && e["to"] == "pending_approval"));
    assert_eq!(reminded[0]["reason"], "waiting for a decision for 25 hours");
}

#[tokio::test]
async fn checks_that_keep_failing_fail_the_request_and_an_admins_retry_checks_it_again() {
    let registry = FlakyRegistry::new(0, false);
    registry.reads_down.store(true, Ordering::SeqCst);
    let s = start_with(|c| c.max_receives = 3, Some(registry.clone())).await;
    let id = s.submit("curl", Some("dev")).await;
    let v = s.wait_for(&id, "failed").await;
    assert_eq!(v["outcome"], "checks gave up after 3 attempts: 503 Unavailable");
    for _ in 0..200 {
        if s.dead_letters(QueueName::Validate).await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s.dead_letters(QueueName::Validate).await, 1);
    let alert = s.mail(&id, "approver_alert", "platform-admin@example.com").await;
    assert!(alert.contains("Checking curl:latest failed: checks gave up"), "{alert}");
    assert!(alert.contains("cgr-request admin retry"), "{alert}");

    // The dead letter, redriven (`admin redrive validate`): its request has ended
    // (`failed`), so the message changes nothing; only a retry takes it up again.
    assert_eq!(s.running.source.redrive(QueueName::Validate).await.unwrap(), 1);
    assert_eq!(s.dead_letters(QueueName::Validate).await, 0);
    s.settle().await;
    let v = s.get(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["audit"].as_array().unwrap().len()),
        (Some("failed"), 3)
    );
    assert_eq!(s.running.source.redrive(QueueName::Validate).await.unwrap(), 0);

    // Chainguard answers again; the admin's retry checks it again, and it goes on.
    registry.reads_down.store(false, Ordering::SeqCst);
    let (_, retried) = s
        .admin
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/retry"),
            Some(&serde_json::json!({})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(retried["status"], "validating");
    let v = s.wait_for(&id, "provisioned").await;
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "submit",
            "start_validation",
            "fail",
            "start_validation",
            "auto_approve",
            "start_provisioning",
            "complete_provisioning"
        ]
    );
}

#[tokio::test]
async fn the_sweep_queues_again_what_was_left_in_flight_once_every_delivery_ran_out() {
    let clock = std::sync::Arc::new(ShiftedClock::default());
    let s = start_full(|_| {}, None, clock.clone()).await;
    let app = &s.running.app;
    // A request a crashed consumer left `validating`, its message gone.
    let r = stored_unqueued(&s, "left in flight", clock.now()).await;
    let change = app.change(
        domain::Action::StartValidation,
        domain::Principal::service("validate"),
        domain::Channel::System,
        None,
    );
    app.apply(&r, change, |_| {}).await.unwrap();
    let id = r.id.to_string();

    clock.offset_secs.store(30 * 60, Ordering::SeqCst);
    let report = app.sweep(chrono::Duration::seconds(60)).await.unwrap();
    assert_eq!(report.requeued, 0, "a consumer may still hold it after 30 minutes");
    clock.offset_secs.store(46 * 60, Ordering::SeqCst);
    let report = app.sweep(chrono::Duration::seconds(60)).await.unwrap();
    assert_eq!(report.requeued, 1);
    clock.offset_secs.store(0, Ordering::SeqCst);
    s.wait_for(&id, "provisioned").await;
}
