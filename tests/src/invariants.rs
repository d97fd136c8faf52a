//! What every fault must leave true once it is gone and the system has recovered (the
//! failpoint tests and the soak): each accepted request ended or waits visibly, each
//! provisioned image has one repository, each notice went (and twice only inside the
//! stated window), and every audit chain verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use domain::{Request, Status};

use crate::{ShiftedClock, Stack};

/// Lets the system heal: queues drain, and the sweep (past every grace, the clock moved
/// on by the in-flight grace each round) queues again whatever a fault stranded, until a
/// sweep finds nothing.
pub async fn recover(s: &Stack, clock: &ShiftedClock) {
    let step = (app::workflow::IN_FLIGHT_GRACE_MINUTES + 1) * 60;
    for _ in 0..8 {
        s.settle_for(Duration::from_secs(60)).await;
        clock.offset_secs.fetch_add(step, Ordering::SeqCst);
        let swept = s.running.app.sweep(chrono::Duration::zero()).await.unwrap();
        if swept.requeued == 0 && swept.notices == 0 {
            s.settle_for(Duration::from_secs(60)).await;
            return;
        }
    }
    panic!("the sweep still found work after 8 rounds");
}

/// What a run's requests came to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub by_status: BTreeMap<String, usize>,
    /// Copies delivered beyond the first, over every notice (each under its notice id).
    pub extra_copies: usize,
}

/// Checks the invariants over `ids` (every request the run submitted and had accepted).
/// `repos` are the org's repository names as the registry holds them, one entry per
/// repository. `unknown_sends` is how many sends the run left the dispatcher unsure of (a
/// crash between a send and its record, or an answer lost with its connection): each may
/// have been sent once more, under the same notice id; nothing else may be.
pub async fn check(s: &Stack, ids: &[String], repos: &[String], unknown_sends: usize) -> Outcome {
    let app = &s.running.app;
    let mut out = Outcome::default();
    let mut requests: Vec<Request> = vec![];
    for id in ids {
        let r = app
            .store
            .get(id.parse().unwrap())
            .await
            .unwrap()
            .expect("an accepted request is stored");
        let st = r.status();
        assert!(
            st.is_terminal() || st == Status::PendingApproval,
            "{id} was left {st}: neither ended nor visibly waiting"
        );
        *out.by_status.entry(st.to_string()).or_default() += 1;
        // The audit chain verifies: every event sealed, linked, in order.
        let chain = app.audit.timeline(r.id).await.unwrap();
        domain::verify_sealed(&chain, app.audit_keys().unwrap()).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            chain.last().map(|e| e.to),
            Some(st),
            "{id}: the chain ends where the request is"
        );
        assert!(
            app.audit.undeliverable(r.id).await.unwrap().is_empty(),
            "{id}: a notice given up on"
        );
        requests.push(r);
    }
    // One repository per provisioned image, and none for anything else.
    let distinct: BTreeSet<&String> = repos.iter().collect();
    assert_eq!(distinct.len(), repos.len(), "a repository created twice: {repos:?}");
    let provisioned: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.status() == Status::Provisioned && r.kind.is_add())
        .map(|r| r.image.name().to_string())
        .collect();
    let created: BTreeSet<String> = repos.iter().cloned().collect();
    assert!(
        provisioned.is_subset(&created),
        "provisioned without a repository: {provisioned:?} vs {created:?}"
    );
    // Every notice went: nothing is pending in the outbox, and each request's own news is there.
    let far = chrono::Utc::now() + chrono::Duration::days(3650);
    let pending = app.store.outbox_pending(far, 1000).await.unwrap();
    assert!(pending.is_empty(), "outbox entries never delivered: {pending:?}");
    let mail = s.outbox().await;
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for (_, text) in &mail {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("X-Image-Request-Notice: ")) {
            *copies.entry(id.to_string()).or_default() += 1;
        }
    }
    out.extra_copies = copies.values().map(|n| n - 1).sum();
    assert!(
        out.extra_copies <= unknown_sends,
        "{} copies beyond the first, with {unknown_sends} send(s) whose outcome was unknown: {copies:?}",
        out.extra_copies
    );
    let has = |r: &Request, kind: &str, to: &str| {
        mail.iter().any(|(name, text)| {
            name.contains(&r.id.to_string()) && name.contains(kind) && text.contains(&format!("To: {to}"))
        })
    };
    for r in &requests {
        let requester = r.requester.to_string();
        let requester = requester.strip_prefix("email:").unwrap_or(&requester);
        match r.status() {
            Status::PendingApproval => {
                for a in &app.settings.approvers {
                    assert!(has(r, "approval_request", a), "{}: {a} was never asked", r.id);
                }
            }
            Status::Failed => {
                assert!(has(r, "outcome", requester), "{}: the requester was never told", r.id);
                for a in &app.settings.approvers {
                    assert!(has(r, "approver_alert", a), "{}: {a} was never alerted", r.id);
                }
            }
            _ => assert!(has(r, "outcome", requester), "{}: the requester was never told", r.id),
        }
    }
    out
}
