//! Measuring success: the weekly report counts exactly what happened (through the public
//! interfaces, on a frozen clock), ratings from every channel, the metrics the handlers
//! print, and the org's capacity alerts. On both backends.

use std::sync::Arc;

use domain::report::Report;
use domain::Status;
use pipeline_tests::{start_full, start_with, FrozenClock, Stack};
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN: &str = "platform-admin@example.com";
const DEV: &str = "email:developer@example.com";

async fn report(s: &Stack, query: &str) -> Report {
    let (status, v) = s
        .admin
        .call(Method::GET, &format!("/reports/weekly?{query}"), None, &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

async fn rate(s: &Stack, id: &str, rating: &str) -> (u16, Value) {
    match s
        .dev
        .call(
            Method::POST,
            &format!("/requests/{id}/rating"),
            Some(&json!({ "rating": rating })),
            &[],
        )
        .await
    {
        Ok(a) => a,
        Err(cgr_request::client::CallError::Api { status, body, .. }) => (status, body),
        Err(e) => panic!("{e}"),
    }
}

/// The link labelled `label` in a mail.
fn link(mail: &str, label: &str) -> String {
    mail.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| panic!("no `{label}` link in {mail}"))
}

/// Waits for a status by reading the store (signed calls are refused while the clock is
/// hours ahead of the client's).
async fn settled(s: &Stack, id: &str, status: Status) {
    let id: domain::RequestId = id.parse().unwrap();
    for _ in 0..1000 {
        if s.running
            .app
            .store
            .get(id)
            .await
            .unwrap()
            .is_some_and(|r| r.status() == status)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{id} never reached {status}");
}

#[tokio::test]
async fn the_report_counts_every_figure_exactly() {
    let clock = Arc::new(FrozenClock::default());
    let s = start_full(|_| {}, None, clock.clone()).await;
    let day = clock.base.format("%Y-%m-%d").to_string();

    // Auto-approved (a vouched dev environment): a pull string at once.
    let auto = s.submit("python", Some("dev")).await;
    s.wait_for(&auto, "provisioned").await;
    // Waiting for a person; someone else joins one of them.
    let approved = s.submit("nginx", None).await;
    let denied = s.submit("redis", None).await;
    s.wait_for(&approved, "pending_approval").await;
    s.wait_for(&denied, "pending_approval").await;
    let (status, joined) = s.submit_as("email:other@example.com", "nginx", "me too").await;
    assert_eq!((status, joined["joined"].as_bool()), (200, Some(true)), "{joined}");
    // Rejected twice, for two reasons; one already in the org.
    let unknown = s.submit("not-an-image-xyz", None).await;
    let bad_tag = s.submit("python:Latest", None).await;
    s.wait_for(&unknown, "rejected").await;
    // Ended, so the next ask for python is a request of its own, not a join.
    s.wait_for(&bad_tag, "rejected").await;
    let had_it = s.submit("python", None).await;
    s.wait_for(&had_it, "already_available").await;

    // Two hours later, a person decides both (through the emailed links).
    clock.advance(2 * 3600);
    let (approve, _) = s.links(&approved, ADMIN).await;
    assert_eq!(
        s.http
            .post(&approve)
            .form(&[("reason", "")])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, deny) = s.links(&denied, ADMIN).await;
    let resp = s.http.post(&deny).form(&[("reason", "not now")]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    settled(&s, &approved, Status::Provisioned).await;
    settled(&s, &denied, Status::Denied).await;
    // Back to when clients sign: what follows is read, not timed.
    clock.advance(-2 * 3600);

    // Ratings: by the API (a second rating replaces the first), and by the joiner's mail.
    assert_eq!(rate(&s, &auto, "up").await.0, 200);
    assert_eq!(rate(&s, &had_it, "down").await.0, 200);
    assert_eq!(rate(&s, &had_it, "up").await.0, 200);
    let mail = s.mail(&approved, "outcome", "other@example.com").await;
    let not_good = link(&mail, "Not good:");
    let page = s.http.get(&not_good).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("nginx"));
    let resp = s
        .http
        .post(&not_good)
        .form(&[("comment", "took two hours")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A link works once.
    let again = s.http.post(&not_good).form(&[("comment", "")]).send().await.unwrap();
    assert_eq!(again.status(), 409);

    let r = report(&s, &format!("since={day}&until={day}")).await;
    assert_eq!(r.weeks.len(), 1, "one ISO week: {:?}", r.weeks);
    let mut week = r.weeks[0].clone();
    assert_eq!(week.week.take(), Some(domain::report::iso_week(clock.base)));
    assert_eq!(week, r.total, "a single week is the total");
    let t = &r.total;
    let counts = (
        t.requests,
        t.auto_approved,
        t.approved,
        t.denied,
        t.expired,
        t.rejected,
        t.already_available,
        t.joined,
        t.provisioned,
        t.failed,
    );
    assert_eq!(counts, (6, 1, 1, 1, 0, 2, 1, 1, 2, 0));
    assert_eq!(t.rejected_by_reason["not_in_catalog"], 1);
    assert_eq!(t.rejected_by_reason["unknown_tag"], 1);
    assert_eq!(t.rejected_by_reason["org_limit"], 0);
    assert_eq!(
        (t.approval_time_p50_seconds, t.approval_time_p90_seconds),
        (Some(7200), Some(7200))
    );
    // Pulls after 0 s (auto), 0 s (had it) and 7,200 s (approved): nearest rank.
    assert_eq!(
        (t.time_to_pull_string_p50_seconds, t.time_to_pull_string_p90_seconds),
        (Some(0), Some(7200))
    );
    assert_eq!(t.approvers.len(), 1);
    let a = &t.approvers[0];
    assert_eq!(
        (
            a.approver.to_string(),
            a.decisions,
            a.approved,
            a.denied,
            a.median_seconds
        ),
        (format!("email:{ADMIN}"), 2, 1, 1, 7200)
    );
    let top: Vec<(&str, u64)> = t.top_images.iter().map(|i| (i.image.as_str(), i.requests)).collect();
    assert_eq!(&top[..2], &[("python", 3), ("nginx", 2)]);
    assert_eq!(t.requesters, 2);
    assert_eq!(
        (t.satisfaction_up, t.satisfaction_down, t.satisfaction_score),
        (2, 1, Some(66.7))
    );
    // Three pull strings × 240 min, less two decisions × 2 min: 716 min.
    assert_eq!(t.time_saved_hours, 11.9);
    assert_eq!(t.capacity_limit, Some(2500));
    assert!(t.capacity_used.is_some());

    // Another range counts nothing; only admins may ask.
    let r = report(&s, "since=2020-01-06&until=2020-01-12").await;
    assert_eq!((r.weeks.len(), r.total.requests), (1, 0));
    let refused = s.dev.call(Method::GET, "/reports/weekly", None, &[]).await.unwrap_err();
    assert_eq!(pipeline_tests::api_status(refused), 403);
    for bad in [
        "weeks=0",
        "since=2026-13-01",
        "weeks=2&since=2026-01-01",
        "until=2026-01-01",
        "since=2020-01-01&until=2026-01-01",
    ] {
        let e = s
            .admin
            .call(Method::GET, &format!("/reports/weekly?{bad}"), None, &[])
            .await
            .unwrap_err();
        assert_eq!(pipeline_tests::api_status(e), 400, "{bad}");
    }

    // The handlers' metrics, as CloudWatch would read them.
    let lines: Vec<Value> = s
        .metrics
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sum = |name: &str, dim: Option<(&str, &str)>| -> f64 {
        lines
            .iter()
            .filter(|v| v.get(name).is_some())
            .filter(|v| dim.is_none_or(|(k, want)| v[k] == want))
            .map(|v| v[name].as_f64().unwrap())
            .sum()
    };
    for v in &lines {
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "ImageRequest");
        let name = m["Metrics"][0]["Name"].as_str().unwrap();
        assert!(v[name].is_number(), "{v}");
        for d in m["Dimensions"][0].as_array().unwrap() {
            assert!(v[d.as_str().unwrap()].is_string(), "{v}");
        }
    }
    assert_eq!(sum("RequestsSubmitted", None), 6.0);
    assert_eq!(sum("Decisions", Some(("Outcome", "approved"))), 1.0);
    assert_eq!(sum("Decisions", Some(("Outcome", "provisioned"))), 2.0);
    assert_eq!(sum("Refusals", Some(("Reason", "unknown_tag"))), 1.0);
    assert_eq!(sum("ApprovalLatency", None), 14_400.0);
    assert!(sum("ChainguardCalls", Some(("Operation", "create_repo"))) >= 2.0);
    assert!(sum("NotificationsSent", Some(("Kind", "approval_request"))) >= 4.0);
}

#[tokio::test]
async fn only_whoever_asked_may_rate_and_only_a_pull_string() {
    let s = start_with(|_| {}, None).await;
    let pending = s.submit("curl", None).await;
    s.wait_for(&pending, "pending_approval").await;
    let (status, v) = rate(&s, &pending, "up").await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("pull string"), "{v}");

    let (_, other) = s.submit_as("email:other@example.com", "git", "for the build").await;
    let other = other["id"].as_str().unwrap().to_string();
    s.wait_for(&other, "pending_approval").await;
    // Someone else's request: not found to them, as when reading it.
    assert_eq!(rate(&s, &other, "up").await.0, 404);
    // An admin may read it, but did not ask for it.
    let e = s
        .admin
        .call(
            Method::POST,
            &format!("/requests/{other}/rating"),
            Some(&json!({ "rating": "up" })),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(pipeline_tests::api_status(e), 403);
    let (status, v) = rate(&s, &pending, "sideways").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "rating");
    // Nothing of this reached the trail.
    let timeline = s.get(&pending).await["audit"].as_array().unwrap().len();
    assert_eq!(timeline, 3);
}

/// Capacity alerts to the first approver whose subject says `subject`.
async fn alerts(s: &Stack, subject: &str) -> usize {
    s.outbox()
        .await
        .into_iter()
        .filter(|(name, text)| {
            name.contains("approver_alert") && text.contains(&format!("To: {ADMIN}")) && text.contains(subject)
        })
        .count()
}

#[tokio::test]
async fn approvers_hear_once_per_crossing_and_get_a_cleanup_list_at_the_limit() {
    let s = start_with(
        |c| {
            c.org_repo_limit = 2;
            c.capacity_alert_percent = 50;
            c.policy.auto_approve_removals = vec!["*".into()];
        },
        None,
    )
    .await;
    let curl = s.submit("curl", Some("dev")).await;
    s.wait_for(&curl, "provisioned").await;
    assert_eq!(alerts(&s, "filling up").await, 0, "0 of 2 is under 50%");
    let git = s.submit("git", Some("dev")).await;
    let v = s.wait_for(&git, "provisioned").await;
    assert_eq!(v["capacity"], json!({ "used": 1, "limit": 2 }));
    s.settle().await;
    assert_eq!(alerts(&s, "filling up").await, 1);

    let jq = s.submit("redis", Some("dev")).await;
    s.wait_for(&jq, "rejected").await;
    let wget = s.submit("nginx", Some("dev")).await;
    s.wait_for(&wget, "rejected").await;
    s.settle().await;
    assert_eq!(alerts(&s, "filling up").await, 1, "still the same crossing");
    assert_eq!(
        alerts(&s, "Registry full").await,
        1,
        "once, however many are rejected: {:#?}",
        s.outbox().await
    );
    let full = s.mail(&jq, "approver_alert", ADMIN).await;
    assert!(full.contains("2 of 2 repositories used"), "{full}");
    let curl_at = full.find("  curl  last asked").expect("curl is listed");
    let git_at = full.find("  git  last asked").expect("git is listed");
    assert!(curl_at < git_at, "oldest asked first: {full}");

    let (_, c) = s.admin.call(Method::GET, "/capacity", None, &[]).await.unwrap();
    assert_eq!(
        (c["used"].as_u64(), c["limit"].as_u64(), c["percent"].as_u64()),
        (Some(2), Some(2), Some(100))
    );
    let names: Vec<&str> = c["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["curl", "git"]);
    assert_eq!(c["candidates"][0]["requester"], DEV);
    assert_eq!(
        pipeline_tests::api_status(s.dev.call(Method::GET, "/capacity", None, &[]).await.unwrap_err()),
        403
    );

    // A removal brings the count under the limit; the next time it is reached is a new crossing.
    let (_, removal) = s
        .dev
        .call(
            Method::POST,
            "/requests",
            Some(&json!({ "image": "curl", "kind": "remove", "justification": "unused" })),
            &[("idempotency-key", "remove-curl")],
        )
        .await
        .unwrap();
    s.wait_for(removal["id"].as_str().unwrap(), "provisioned").await;
    let again = s.submit("nginx", Some("dev")).await;
    s.wait_for(&again, "provisioned").await;
    let last = s.submit("redis", Some("dev")).await;
    s.wait_for(&last, "rejected").await;
    s.settle().await;
    assert_eq!(alerts(&s, "Registry full").await, 2);
    assert_eq!(alerts(&s, "filling up").await, 1, "never under 50% since");
}
