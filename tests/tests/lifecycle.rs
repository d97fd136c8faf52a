//! The request lifecycle end to end on the embedded backend: every way a request can end.

use domain::{verify_chain, AuditEvent};
use pipeline_tests::{start, start_with};
use reqwest::Method;
use serde_json::{json, Value};

fn chain_of(v: &Value) -> Vec<AuditEvent> {
    serde_json::from_value(v["audit"].clone()).unwrap()
}

fn transitions(v: &Value) -> Vec<String> {
    chain_of(v).iter().map(|e| e.to.to_string()).collect()
}

#[tokio::test]
async fn auto_approved_request_is_provisioned_without_an_admin() {
    let s = start().await;
    let id = s.submit("go", Some("dev")).await;
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/example.com/go:latest");
    let tags = v["result"]["tags"].as_array().unwrap();
    assert!(
        tags.contains(&json!("latest")) && tags.contains(&json!("1.23")),
        "{tags:?}"
    );
    assert_eq!(v["decision"]["by"], "service:policy");
    assert_eq!(
        transitions(&v),
        ["received", "validating", "approved", "provisioning", "provisioned"]
    );
    verify_chain(&chain_of(&v)).unwrap();
    s.settle().await;
    let outbox = s.outbox().await;
    assert!(
        !outbox.iter().any(|(n, _)| n.contains("approval_request")),
        "no admin was asked"
    );
    assert!(outbox
        .iter()
        .any(|(n, t)| n.contains("outcome") && t.contains("docker pull cgr.dev/example.com/go:latest")));
}

#[tokio::test]
async fn manually_approved_request_reaches_provisioned_through_the_emailed_link() {
    let s = start().await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    // One email per approver, each with its own links.
    let (approve_a, deny_a) = s.links(&id, "platform-admin@example.com").await;
    let (approve_b, _) = s.links(&id, "security-lead@example.com").await;
    assert_ne!(approve_a, approve_b);
    assert_ne!(approve_a, deny_a);

    let page = s.http.get(&approve_a).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("busybox:latest")
            && html.contains("needed for the tests")
            && html.contains("<form method=\"post\"")
    );
    assert_eq!(
        s.get(&id).await["status"],
        "pending_approval",
        "opening the link changes nothing"
    );

    let done = s
        .http
        .post(&approve_a)
        .form(&[("reason", "fine for staging")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/example.com/busybox:latest");
    let events = chain_of(&v);
    verify_chain(&events).unwrap();
    let approval = events.iter().find(|e| e.to.to_string() == "approved").unwrap();
    assert_eq!(approval.actor.to_string(), "email:platform-admin@example.com");
    assert_eq!(approval.channel.to_string(), "email");
    assert_eq!(approval.reason.as_deref(), Some("fine for staging"));
    assert_eq!(events[0].actor.to_string(), "email:developer@example.com");
    s.settle().await;
    let outbox = s.outbox().await;
    let (_, ready) = outbox
        .iter()
        .find(|(n, t)| n.contains(&id) && n.contains("outcome-developer") && t.contains("Ready: busybox:latest"))
        .expect("the requester is told");
    // The approver's words travel: who approved, when, and why.
    assert!(
        ready.contains("Approved by email:platform-admin@example.com on ") && ready.contains("> fine for staging"),
        "{ready}"
    );
}

#[tokio::test]
async fn denied_request_tells_the_requester_why() {
    let s = start().await;
    let id = s.submit("nginx", Some("prod")).await;
    s.wait_for(&id, "pending_approval").await;
    let (_, deny) = s.links(&id, "security-lead@example.com").await;
    let resp = s
        .http
        .post(&deny)
        .form(&[("reason", "use the approved ingress image")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = s.wait_for(&id, "denied").await;
    assert_eq!(v["decision"]["by"], "email:security-lead@example.com");
    // The news is sent from the outbox, a moment after the commit.
    s.settle().await;
    assert!(s
        .outbox()
        .await
        .iter()
        .any(|(n, t)| n.contains("outcome") && t.contains("use the approved ingress image")));
    assert_eq!(s.counts().await.repos, 0);
}

#[tokio::test]
async fn image_not_in_the_catalog_is_rejected_with_suggestions() {
    let s = start().await;
    let id = s.submit("busybx", Some("dev")).await;
    let v = s.wait_for(&id, "rejected").await;
    assert!(v["outcome"].as_str().unwrap().contains("not in the Chainguard catalog"));
    let sugg = v["suggestions"].as_array().unwrap();
    assert!(!sugg.is_empty() && sugg.len() <= 3);
    assert_eq!(sugg[0], "busybox");
}

#[tokio::test]
async fn a_tag_the_image_does_not_have_is_rejected_with_the_closest_tags() {
    let s = start().await;
    // Tags are case-sensitive: `Latest` is not `latest`, and its pull would fail.
    let id = s.submit("python:Latest", Some("dev")).await;
    let v = s.wait_for(&id, "rejected").await;
    assert_eq!(
        v["outcome"],
        "`python` has no tag `Latest` in the Chainguard catalog (tags are case-sensitive)"
    );
    assert_eq!(v["suggestions"][0], "python:latest");
    assert!(v["result"].is_null(), "no pull string for a tag that does not exist");

    let id = s.submit("nginx:1.2x", None).await;
    let v = s.wait_for(&id, "rejected").await;
    let sugg: Vec<&str> = v["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(sugg.contains(&"nginx:1.27") && sugg.contains(&"nginx:1.26"), "{sugg:?}");
    s.settle().await;
    assert!(
        s.outbox().await.iter().any(|(n, t)| n.contains(&id)
            && n.contains("outcome")
            && t.contains("Did you mean: nginx:1.25, nginx:1.26, nginx:1.27?")),
        "the requester is told which tags exist"
    );
    assert_eq!(s.counts().await.repos, 0);
    assert!(
        !s.outbox().await.iter().any(|(n, _)| n.contains("approval_request")),
        "no approver is asked about a tag that does not exist"
    );

    let id = s.submit("python:3.12", Some("dev")).await;
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/example.com/python:3.12");
}

#[tokio::test]
async fn a_second_ask_for_an_open_image_joins_it_and_hears_its_outcome() {
    let s = start().await;
    let first = s.submit("postgres", None).await;
    s.wait_for(&first, "pending_approval").await;
    s.approval_mail(&first, "platform-admin@example.com").await;
    s.settle().await;
    let asks = |outbox: &[(String, String)]| outbox.iter().filter(|(n, _)| n.contains("approval_request")).count();
    let emails_before = asks(&s.outbox().await);
    let before = s.counts().await;

    let (status, v) = s
        .submit_as(
            "email:second@example.com",
            "postgres:17",
            "reporting database\nfor the data team",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["joined"], true);
    assert_eq!(v["id"], first.as_str(), "the open request's id");
    assert_eq!(v["status"], "pending_approval");
    // The same person asking again changes nothing more.
    let (status, again) = s.submit_as("email:second@example.com", "postgres", "again").await;
    assert_eq!((status, &again["id"]), (200, &v["id"]));

    let after = s.counts().await;
    assert_eq!(after.requests, before.requests, "no second request");
    assert_eq!(after.audit, before.audit + 1, "one audit event: the join");
    s.settle().await;
    assert_eq!(asks(&s.outbox().await), emails_before, "no new approval emails");

    let view = s.get(&first).await;
    assert_eq!(view["watchers"][0]["who"], "email:second@example.com");
    assert_eq!(view["watchers"].as_array().unwrap().len(), 1);
    let joined = chain_of(&view).into_iter().last().unwrap();
    assert_eq!(
        (joined.action, joined.actor.to_string(), joined.from, joined.to),
        (
            domain::Action::Join,
            "email:second@example.com".to_string(),
            Some(domain::Status::PendingApproval),
            domain::Status::PendingApproval
        )
    );
    verify_chain(&chain_of(&view)).unwrap();

    // The approver sees who else asked, in their own words, before deciding.
    let (approve, _) = s.links(&first, "platform-admin@example.com").await;
    let page = s.http.get(&approve).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Also asked by") && page.contains("second@example.com") && page.contains("reporting database"),
        "{page}"
    );
    let done = s.http.post(&approve).form(&[("reason", "fine")]).send().await.unwrap();
    assert_eq!(done.status(), 200);
    s.wait_for(&first, "provisioned").await;
    s.settle().await;
    let text = s.mail(&first, "outcome", "second@example.com").await;
    assert!(
        text.contains("docker pull cgr.dev/example.com/postgres:17")
            && text.contains("Approved by email:platform-admin@example.com"),
        "{text}"
    );

    // Ended: the image is free, so the next ask is a request of its own.
    let next = s.submit("postgres", None).await;
    assert_ne!(next, first);
    s.wait_for(&next, "already_available").await;
}

#[tokio::test]
async fn four_people_asking_at_once_make_one_request_and_three_joins() {
    let s = start().await;
    if s.aws.is_some() {
        // moto runs concurrent TransactWriteItems without isolation (each snapshots and
        // restores whole tables), so simultaneous creations there can interleave in ways
        // DynamoDB's serializable transactions never do. The guard's logic runs in the
        // other AWS-backend tests; its atomicity is DynamoDB's.
        return;
    }
    let before = s.counts().await;
    let (a, b, c, d) = tokio::join!(
        s.submit_as("email:a@example.com", "ruby", "one"),
        s.submit_as("email:b@example.com", "ruby", "two"),
        s.submit_as("email:c@example.com", "ruby", "three"),
        s.submit_as("email:d@example.com", "ruby", "four"),
    );
    let answers = [a, b, c, d];
    let created: Vec<_> = answers.iter().filter(|(status, _)| *status == 202).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let id = created[0].1["id"].as_str().unwrap();
    for (status, v) in &answers {
        assert_eq!(v["id"], id, "every answer names the one request");
        assert_eq!(v["joined"], *status == 200);
    }
    assert_eq!(s.counts().await.requests, before.requests + 1);
    let view = s.get(id).await;
    assert_eq!(view["watchers"].as_array().unwrap().len(), 3);
    verify_chain(&chain_of(&view)).unwrap();
}

#[tokio::test]
async fn a_denied_request_does_not_block_asking_again() {
    let s = start().await;
    let first = s.submit("mariadb", None).await;
    s.wait_for(&first, "pending_approval").await;
    let (_, deny) = s.links(&first, "platform-admin@example.com").await;
    let done = s.http.post(&deny).form(&[("reason", "not now")]).send().await.unwrap();
    assert_eq!(done.status(), 200);
    s.wait_for(&first, "denied").await;
    let (status, v) = s
        .submit_as("email:second@example.com", "mariadb", "we need it after all")
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["joined"], false);
    assert_ne!(v["id"], first.as_str());
}

#[tokio::test]
async fn image_already_in_the_org_is_already_available_with_its_pull_string() {
    let s = start().await;
    let first = s.submit("redis", Some("dev")).await;
    s.wait_for(&first, "provisioned").await;
    let again = s.submit("redis:7.4", None).await;
    let v = s.wait_for(&again, "already_available").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/example.com/redis:7.4");
    assert_eq!(s.counts().await.repos, 1);
}

#[tokio::test]
async fn org_at_its_repo_limit_is_rejected_saying_count_and_limit() {
    let s = start_with(|c| c.org_repo_limit = 1, None).await;
    let first = s.submit("curl", Some("dev")).await;
    s.wait_for(&first, "provisioned").await;
    let id = s.submit("git", Some("dev")).await;
    let v = s.wait_for(&id, "rejected").await;
    assert_eq!(v["outcome"], "the organization has 1 repositories, at its limit of 1");
}

#[tokio::test]
async fn policy_denylist_rejects_with_the_rule() {
    let s = start_with(|c| c.policy.deny_images = vec!["*-fips".into()], None).await;
    let id = s.submit("python-fips", Some("dev")).await;
    let v = s.wait_for(&id, "rejected").await;
    assert_eq!(
        v["outcome"],
        "denied by policy (deny_images: `python-fips` matches `*-fips`)"
    );
    assert_eq!(s.counts().await.repos, 0);
}

#[tokio::test]
async fn admin_cli_route_approves_and_lists_pending_oldest_first() {
    let s = start().await;
    let a = s.submit("curl", None).await;
    let b = s.submit("git", None).await;
    s.wait_for(&b, "pending_approval").await;
    s.wait_for(&a, "pending_approval").await;
    let (_, v) = s
        .admin
        .call(Method::GET, "/requests?status=pending_approval", None, &[])
        .await
        .unwrap();
    let ids: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    let err = s
        .dev
        .call(Method::GET, "/requests?status=pending_approval", None, &[])
        .await
        .unwrap_err();
    assert_eq!(pipeline_tests::api_status(err), 403);
    s.admin
        .call(
            Method::POST,
            &format!("/requests/{a}/decision"),
            Some(&json!({"decision": "approve"})),
            &[],
        )
        .await
        .unwrap();
    let v = s.wait_for(&a, "provisioned").await;
    assert_eq!(v["decision"]["by"], "email:platform-admin@example.com");
    assert_eq!(v["decision"]["channel"], "cli");
    let err = s
        .admin
        .call(
            Method::POST,
            &format!("/requests/{b}/decision"),
            Some(&json!({"decision": "deny"})),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(pipeline_tests::api_status(err), 400, "a denial needs a reason");
}

#[tokio::test]
async fn ops_queries_find_decisions_by_approver_and_events_by_actor_and_time() {
    use app::ports::{AuditQuery, RequestQuery};
    let s = start().await;
    let a = s.submit("curl", None).await;
    let b = s.submit("git", Some("dev")).await;
    s.wait_for(&a, "pending_approval").await;
    s.wait_for(&b, "provisioned").await;
    let (approve, _) = s.links(&a, "security-lead@example.com").await;
    s.http.post(&approve).send().await.unwrap();
    s.wait_for(&a, "provisioned").await;
    let app = &s.running.app;
    let approver: domain::Principal = "email:security-lead@example.com".parse().unwrap();
    let decided = app
        .store
        .list(&RequestQuery {
            decided_by: Some(approver.clone()),
            ..RequestQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        decided.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        [a.as_str()]
    );
    let events = app
        .audit
        .query(&AuditQuery {
            actor: Some(approver),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to.to_string(), "approved");
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let none = app
        .store
        .list(&RequestQuery {
            created_after: Some(later),
            ..RequestQuery::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let recent = app
        .audit
        .query(&AuditQuery {
            until: Some(later),
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(recent.len(), 3);
    assert!(recent.windows(2).all(|w| w[0].at >= w[1].at), "newest first");

    // The pipeline's own steps and policy decisions answer too, although DynamoDB's
    // `by_actor` and `by_approver` index people only.
    let policy = domain::Principal::service("policy");
    let by_policy = app
        .store
        .list(&RequestQuery {
            decided_by: Some(policy.clone()),
            ..RequestQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_policy.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        [b.as_str()]
    );
    let policy_events = app
        .audit
        .query(&AuditQuery {
            actor: Some(policy),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(policy_events.len(), 1);
    assert_eq!(policy_events[0].request_id.to_string(), b);
    let provisioner = app
        .audit
        .query(&AuditQuery {
            actor: Some(domain::Principal::service("provision")),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<String> = provisioner.iter().map(|e| e.request_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(ids, both);
    assert!(provisioner.iter().all(|e| e.actor.to_string() == "service:provision"));
}

#[tokio::test]
async fn an_environment_nobody_vouches_for_never_approves_itself() {
    let s = start().await;
    // The admin's client vouches for no environment; the dev client vouches for `dev` only.
    let body = json!({"image": "redis", "justification": "caching", "environment": "dev"});
    let (status, v) = s.admin.call(Method::POST, "/requests", Some(&body), &[]).await.unwrap();
    assert_eq!(status, 202, "{v}");
    let claimed = v["id"].as_str().unwrap().to_string();
    let staging = s.submit("curl", Some("staging")).await;
    let vouched = s.submit("go", Some("dev")).await;
    for id in [&claimed, &staging] {
        let v = s.wait_for(id, "pending_approval").await;
        assert!(v.get("environment_vouched_by").is_none(), "{v}");
        assert!(
            v["audit"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("(claimed, not verified)"),
            "{v}"
        );
    }
    let v = s.wait_for(&vouched, "provisioned").await;
    assert_eq!(v["environment_vouched_by"], "client dev");
    assert!(v["audit"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("dev (vouched for by client dev)"));
    // Approvers read the claim for what it is.
    s.settle().await;
    let mail = s.approval_mail(&claimed, "platform-admin@example.com").await;
    assert!(mail.contains("dev (claimed, not verified)"), "{mail}");
    let (link, _) = s.links(&claimed, "platform-admin@example.com").await;
    let page = s.http.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("dev (claimed, not verified)"), "{page}");
}
