//! Faults at every boundary of the workflow, on both backends: a burst of requests (auto
//! approved, decided by a person either way, waiting, rejected) is driven through each
//! fault; the fault is lifted, the system heals (queues drain, the sweep queues again
//! what was stranded), and the invariants hold (`pipeline_tests::invariants`): every
//! request ended or waits visibly, one repository per provisioned image, every notice
//! delivered and never twice outside the window between a send and its record, every
//! audit chain verifies.
//!
//! The failpoints (`fail`, compiled in by this crate's `failpoints` feature) return the
//! way a crash there would look to the caller: `commit.after` and `provision.after_create`
//! as an error once the write or the create is done, `consumer.before_delete` as a
//! message left on its queue once its work is done, `dispatch.after_send` as an error
//! between a send and its record; `store.commit` and `queue.send` as an outage.

use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::fake_chainguard::FakeChainguard;
use pipeline_tests::invariants::{check, recover, Outcome};
use pipeline_tests::outage::Relay;
use pipeline_tests::{start_aws_via, start_full, ShiftedClock, Stack};
use reqwest::Method;
use serde_json::json;

struct Run {
    s: Stack,
    clock: Arc<ShiftedClock>,
    fake: FakeChainguard,
}

async fn run(timeout: Duration) -> Run {
    let clock = Arc::new(ShiftedClock::default());
    let fake = FakeChainguard::start().await;
    let s = start_full(
        |c| c.org_name = "acme.dev".into(),
        Some(fake.client(Some(timeout))),
        clock.clone(),
    )
    .await;
    Run { s, clock, fake }
}

/// A person's decision, sent again while the server answers 5xx (as a person clicks again).
async fn decide(s: &Stack, id: &str, approve: bool) {
    let body = json!({ "decision": if approve { "approve" } else { "deny" }, "reason": "under a fault" });
    for _ in 0..20 {
        match s
            .admin
            .call(Method::POST, &format!("/requests/{id}/decision"), Some(&body), &[])
            .await
        {
            Ok((200, _)) => return,
            // Decided by an earlier try whose answer was lost.
            Err(cgr_request::client::CallError::Api { status: 409, .. }) => return,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("{id}: the decision never went through");
}

/// Waits until `id` has left `received`/`validating` (a fault may fail it instead),
/// sweeping now and then as the schedule would (a message the queue refused waits for it).
async fn decided_by_checks(s: &Stack, id: &str) -> String {
    for n in 0..1500 {
        let st = s.get(id).await["status"].as_str().unwrap_or_default().to_string();
        if !matches!(st.as_str(), "received" | "validating") {
            return st;
        }
        if n % 50 == 49 {
            let _ = s.running.app.sweep(chrono::Duration::zero()).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never got past validation");
}

/// Ten requests: six auto-approved, three for a person (one approved, one denied, one
/// left waiting), one not in the catalog.
async fn burst(s: &Stack) -> Vec<String> {
    let mut ids = vec![];
    for image in ["go", "curl", "busybox", "bash", "jq", "git"] {
        ids.push(s.submit(image, Some("dev")).await);
    }
    let asked: Vec<String> = vec![
        s.submit("nginx", Some("prod")).await,
        s.submit("python", Some("prod")).await,
        s.submit("redis", Some("prod")).await,
    ];
    ids.extend(asked.iter().cloned());
    ids.push(s.submit("no-such-image-anywhere", Some("dev")).await);
    for (id, approve) in [(&asked[0], true), (&asked[1], false)] {
        if decided_by_checks(s, id).await == "pending_approval" {
            decide(s, id, approve).await;
        }
    }
    ids
}

/// One fault over one burst: on, burst, off, heal, check.
async fn through(point: &str, action: &str) -> Outcome {
    let scenario = fail::FailScenario::setup();
    let r = run(Duration::from_secs(2)).await;
    let before = app::failpoints::fired(point);
    fail::cfg(point, action).unwrap();
    let ids = burst(&r.s).await;
    r.s.settle_for(Duration::from_secs(60)).await;
    fail::remove(point);
    let fired = app::failpoints::fired(point) - before;
    assert!(fired >= 3, "{point} fired {fired} times");
    recover(&r.s, &r.clock).await;
    let crashes_after_send = match point {
        "dispatch.after_send" => action.split('*').next().unwrap().parse().unwrap(),
        _ => 0,
    };
    let out = check(&r.s, &ids, &r.fake.repo_names(), crashes_after_send).await;
    scenario.teardown();
    // The burst's shape survives the fault (a request a fault failed is `failed`, visibly).
    let total: usize = out.by_status.values().sum();
    assert_eq!(total, ids.len());
    assert!(
        out.by_status.contains_key("provisioned"),
        "{point}: {:?}",
        out.by_status
    );
    out
}

// Each point fires on its first evaluations, then at random (`fail`'s action syntax).

#[tokio::test]
async fn a_crash_after_a_commit_loses_nothing() {
    through("commit.after", "3*return->25%return").await;
}

#[tokio::test]
async fn a_crash_before_a_message_is_deleted_does_its_work_once() {
    through("consumer.before_delete", "3*return->30%return").await;
}

#[tokio::test]
async fn a_crash_after_the_chainguard_create_makes_one_repository() {
    let out = through("provision.after_create", "3*return->50%return").await;
    assert!(out.by_status["provisioned"] >= 1);
}

#[tokio::test]
async fn a_crash_between_a_send_and_its_record_is_the_only_duplicate() {
    // Exactly three crashes there, so every copy beyond the first is accounted for.
    let out = through("dispatch.after_send", "3*return->off").await;
    // SNS delivers each copy; the outbox folder keeps one file per notice id.
    let expected = if pipeline_tests::aws::wanted() { 3 } else { 0 };
    assert_eq!(out.extra_copies, expected);
}

#[tokio::test]
async fn the_store_unavailable_loses_nothing() {
    through("store.commit", "3*return->25%return").await;
}

#[tokio::test]
async fn the_queue_unavailable_loses_nothing() {
    through("queue.send", "3*return->40%return").await;
}

#[tokio::test]
async fn chainguard_errors_timeouts_and_slow_answers_lose_nothing() {
    let scenario = fail::FailScenario::setup();
    // Each try gives up after 300 ms.
    let r = run(Duration::from_millis(300)).await;
    for _ in 0..4 {
        r.fake.script(
            "POST /registry/v1/repos",
            503,
            json!({"code": 14, "message": "unavailable"}),
        );
    }
    r.fake.script(
        "GET /registry/v1/repos",
        500,
        json!({"code": 13, "message": "internal"}),
    );
    // Some answers too slow for a try (timeouts), then some slow but in time.
    r.fake.slow(3, Duration::from_millis(600));
    r.fake.slow(6, Duration::from_millis(100));
    let ids = burst(&r.s).await;
    r.s.settle_for(Duration::from_secs(60)).await;
    recover(&r.s, &r.clock).await;
    let out = check(&r.s, &ids, &r.fake.repo_names(), 0).await;
    scenario.teardown();
    assert!(out.by_status["provisioned"] >= 1, "{:?}", out.by_status);
    assert!(
        r.fake.calls("POST /registry/v1/repos") > out.by_status["provisioned"],
        "the 503s were retried"
    );
}

/// The emulator goes away in the middle of a burst (every connection cut, new ones
/// dropped, for three seconds) and comes back: what was accepted before and after ends
/// as it should, and what was refused during it was refused whole.
#[tokio::test]
async fn the_emulator_going_down_in_the_middle_of_a_burst_loses_nothing() {
    let scenario = fail::FailScenario::setup();
    let relay = Relay::start(&pipeline_tests::aws::moto_url()).await;
    let clock = Arc::new(ShiftedClock::default());
    let s = start_aws_via(&relay.url, None, clock.clone()).await;
    let mut ids = vec![];
    for image in ["go", "curl", "busybox", "bash"] {
        ids.push(s.submit(image, Some("dev")).await);
    }
    let nginx = s.submit("nginx", Some("prod")).await;
    ids.push(nginx.clone());
    // Work in flight, then the outage.
    tokio::time::sleep(Duration::from_millis(150)).await;
    relay.down();
    let during = json!({ "image": "jq", "justification": "during the outage", "environment": "dev" });
    let refused = s.dev.call(Method::POST, "/requests", Some(&during), &[]).await;
    assert!(
        !matches!(refused, Ok((202, _))),
        "nothing can be stored while the emulator is down: {refused:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    relay.up();
    for image in ["git", "python", "redis"] {
        ids.push(s.submit(image, Some("dev")).await);
    }
    if decided_by_checks(&s, &nginx).await == "pending_approval" {
        decide(&s, &nginx, true).await;
    }
    s.settle_for(Duration::from_secs(60)).await;
    recover(&s, &clock).await;
    let repos: Vec<String> = s
        .running
        .app
        .registry
        .org_repos()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    // One notice at most was on the wire when the connections were cut: its answer lost,
    // it may have gone twice (the window between a send and its record, seen from outside).
    let out = check(&s, &ids, &repos, 1).await;
    scenario.teardown();
    assert_eq!(
        out.by_status.get("provisioned"),
        Some(&ids.len()),
        "{:?}",
        out.by_status
    );
    // The refused submission left nothing behind.
    let jq = app::ports::RequestQuery {
        image: Some("jq".into()),
        ..Default::default()
    };
    assert!(s.running.app.store.list(&jq).await.unwrap().is_empty());
}
