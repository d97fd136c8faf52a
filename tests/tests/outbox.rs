//! The outbox (`app::outbox`): notices written with their transition are delivered even
//! when the queue refused them after the commit (the sweep queues them again), are sent
//! once however often their message comes, are tried again when a channel fails, and are
//! recorded undeliverable, for `cgr-request audit` and an alarm, when it never comes back.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cgr_request::audit::{query, AuditArgs, Report, Stores};
use pipeline_tests::faults::Faults;
use pipeline_tests::{start_faulty, ShiftedClock, Stack};

const LEAD: &str = "security-lead@example.com";
const ADMIN: &str = "platform-admin@example.com";

/// The approval requests about `id` that reached `to` so far.
async fn approval_mails(s: &Stack, id: &str, to: &str) -> usize {
    s.outbox()
        .await
        .iter()
        .filter(|(name, text)| {
            name.contains(id) && name.contains("approval_request") && text.contains(&format!("To: {to}"))
        })
        .count()
}

#[tokio::test]
async fn notices_the_queue_refused_after_the_commit_are_sent_by_the_sweep() {
    let faults = Arc::new(Faults::default());
    let clock = Arc::new(ShiftedClock::default());
    let s = start_faulty(|_| {}, &faults, clock.clone()).await;
    faults.notices_unqueued.store(true, Ordering::SeqCst);
    let id = s.submit("nginx", Some("prod")).await;
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    // Committed, with its notices pending: nobody has been asked yet.
    assert_eq!(approval_mails(&s, &id, LEAD).await, 0);
    let app = &s.running.app;
    let pending = app.store.outbox_pending(chrono::Utc::now(), 100).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].0.to_string(), id);

    // Not while a message of it could still be trying (its every try and wait): the sweep
    // leaves it alone, then after the in-flight grace queues it again.
    faults.notices_unqueued.store(false, Ordering::SeqCst);
    assert_eq!(app.sweep(chrono::Duration::zero()).await.unwrap().notices, 0);
    let grace = app::workflow::IN_FLIGHT_GRACE_MINUTES + 1;
    clock.offset_secs.store(grace * 60, Ordering::SeqCst);
    let swept = app.sweep(chrono::Duration::zero()).await.unwrap();
    assert_eq!(swept.notices, 1);
    assert!(s.approval_mail(&id, LEAD).await.contains("Approve"));
    assert!(s.approval_mail(&id, ADMIN).await.contains("Approve"));
    s.settle().await;
    assert!(app
        .store
        .outbox_pending(chrono::Utc::now(), 100)
        .await
        .unwrap()
        .is_empty());
    // Nothing pending: a later sweep queues nothing.
    assert_eq!(app.sweep(chrono::Duration::zero()).await.unwrap().notices, 0);
}

#[tokio::test]
async fn a_notice_is_sent_once_however_often_its_message_comes() {
    let faults = Arc::new(Faults::default());
    let s = start_faulty(|_| {}, &faults, Arc::new(ShiftedClock::default())).await;
    let id = s.submit("nginx", Some("prod")).await;
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    assert_eq!(approval_mails(&s, &id, LEAD).await, 1);
    // SQS delivers at least once: the same entry's message three more times.
    let request = s.running.app.store.get(id.parse().unwrap()).await.unwrap().unwrap();
    let seq = request.version();
    for _ in 0..3 {
        assert!(s.running.app.enqueue_notice(request.id, seq, "again").await);
    }
    s.settle().await;
    assert_eq!(approval_mails(&s, &id, LEAD).await, 1);
    assert_eq!(approval_mails(&s, &id, ADMIN).await, 1);
    assert_eq!(faults.tries(LEAD), 1);
}

#[tokio::test]
async fn the_one_duplicate_is_a_send_whose_answer_was_lost() {
    let faults = Arc::new(Faults::default());
    let s = start_faulty(|_| {}, &faults, Arc::new(ShiftedClock::default())).await;
    // Sent, then the answer lost: as a crash between a send and its record.
    *faults.answer_lost_for.lock().unwrap() = Some(LEAD.into());
    let id = s.submit("nginx", Some("prod")).await;
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    // That one notice went twice (the redelivery could not know it had gone), under one
    // notice id a receiver deduplicates on; every other notice of the entry went once.
    assert_eq!(faults.tries(LEAD), 2);
    assert_eq!(faults.tries(ADMIN), 1);
    assert_eq!(approval_mails(&s, &id, ADMIN).await, 1);
    let ids: std::collections::BTreeSet<String> = s
        .outbox()
        .await
        .iter()
        .filter(|(name, text)| name.contains(&id) && text.contains(&format!("To: {LEAD}")))
        .filter_map(|(_, text)| {
            text.lines()
                .find_map(|l| l.strip_prefix("X-Image-Request-Notice: "))
                .map(String::from)
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids.iter().all(|i| i.starts_with(&id)), "{ids:?}");
    // SNS delivers both copies with that id; the outbox folder keeps one file per id.
    let copies = if s.aws.is_some() { 2 } else { 1 };
    assert_eq!(approval_mails(&s, &id, LEAD).await, copies);
}

#[tokio::test]
async fn a_channel_that_keeps_failing_is_tried_again_then_recorded_undeliverable() {
    let faults = Arc::new(Faults::default());
    let s = start_faulty(
        |st| {
            st.max_receives = 3;
            st.notice_retry_secs = 1;
        },
        &faults,
        Arc::new(ShiftedClock::default()),
    )
    .await;
    *faults.mail_down_for.lock().unwrap() = Some(LEAD.into());
    let id = s.submit("nginx", Some("prod")).await;
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    s.settle_for(std::time::Duration::from_secs(30)).await;
    // Tried on every delivery of the message, backing off (1 s, then 2 s); the other
    // approver was asked once.
    assert_eq!(faults.tries(LEAD), 3);
    let at: Vec<std::time::Instant> = faults
        .tried_at
        .lock()
        .unwrap()
        .iter()
        .filter(|(to, _)| to == LEAD)
        .map(|(_, t)| *t)
        .collect();
    let (first, second) = (at[1] - at[0], at[2] - at[1]);
    assert!(first >= std::time::Duration::from_secs(1), "{first:?}");
    assert!(second >= std::time::Duration::from_secs(2), "{second:?}");
    assert_eq!(approval_mails(&s, &id, LEAD).await, 0);
    assert_eq!(approval_mails(&s, &id, ADMIN).await, 1);
    assert_eq!(faults.tries(ADMIN), 1);
    // Given up on the last try: not dead-lettered, recorded and counted.
    assert_eq!(s.dead_letters(app::ports::QueueName::Notify).await, 0);
    let stores = Stores {
        requests: s.running.app.store.clone(),
        audit: s.running.app.audit.clone(),
        archive: None,
        place: "the test stack".into(),
    };
    let args = AuditArgs {
        request: Some(id.clone()),
        ..AuditArgs::default()
    };
    let Report::Timeline { undelivered, .. } = query(&stores, &args, chrono::Utc::now()).await.unwrap() else {
        panic!("not a timeline")
    };
    assert_eq!(undelivered.len(), 1, "{undelivered:?}");
    assert_eq!(undelivered[0].to, LEAD);
    assert_eq!(undelivered[0].channel, "mail");
    assert!(undelivered[0].why.contains("injected"), "{}", undelivered[0].why);
    let counted = s
        .metrics
        .lines()
        .into_iter()
        .filter(|l| l.contains("\"NotificationsUndeliverable\""))
        .count();
    assert_eq!(counted, 1);
    // Once mail works again, nothing is sent late: the entry is done.
    *faults.mail_down_for.lock().unwrap() = None;
    s.running.app.sweep(chrono::Duration::zero()).await.unwrap();
    s.settle().await;
    assert_eq!(approval_mails(&s, &id, LEAD).await, 0);
}
