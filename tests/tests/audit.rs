//! `cgr-request audit`'s questions, answered from the stores the stack writes (SQLite, or
//! DynamoDB on the AWS backend): one request's timeline, requests by requester, image,
//! status and time, decisions by approver, stuck requests; and `audit verify`.

use std::sync::Arc;

use app::ports::{AuditLog, AuditQuery, StoreError};
use async_trait::async_trait;
use cgr_request::audit::{query, verify, AuditArgs, Report, Stores};
use domain::{AuditEvent, Refusal, RequestId};
use pipeline_tests::{start, Stack};

fn stores(s: &Stack) -> Stores {
    Stores {
        requests: s.running.app.store.clone(),
        audit: s.running.app.audit.clone(),
        // The embedded backend's archive; on AWS the archive function is not built yet.
        archive: s.aws.is_none().then(|| {
            Arc::new(embedded::archive::FolderArchive::new(
                s.dir.path().join(cgr_request::server::ARCHIVE_DIR),
            )) as Arc<dyn app::archive::Archive>
        }),
        place: "the test stack".into(),
    }
}

fn ids(report: &Report) -> Vec<String> {
    match report {
        Report::Requests { requests } => requests.iter().map(|r| r.id.to_string()).collect(),
        Report::Events { events } => events.iter().map(|e| e.request_id.to_string()).collect(),
        Report::Timeline { request, .. } => vec![request.id.to_string()],
    }
}

#[tokio::test]
async fn every_ops_question_has_an_answer() {
    let s = start().await;
    let go = s.submit_apart("go", Some("dev")).await;
    let curl = s.submit_apart("curl", None).await;
    let nginx = s.submit_apart("nginx", None).await;
    let python = s.submit_apart("python", Some("staging")).await;
    s.wait_for(&go, "provisioned").await;
    for id in [&curl, &nginx, &python] {
        s.wait_for(id, "pending_approval").await;
    }
    let go_again = s.submit_apart("go", Some("staging")).await;
    s.wait_for(&go_again, "already_available").await;
    let (approve, _) = s.links(&curl, "security-lead@example.com").await;
    assert_eq!(s.http.post(&approve).send().await.unwrap().status(), 200);
    // Times are kept to the millisecond: two decisions apart, so "newest first" has one answer.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let (_, deny) = s.links(&nginx, "security-lead@example.com").await;
    let denied = s.http.post(&deny).form(&[("reason", "use the web image")]).send().await;
    assert_eq!(denied.unwrap().status(), 200);
    // A late click on an already-denied request: refused, and recorded.
    assert_eq!(s.http.post(&deny).send().await.unwrap().status(), 409);
    s.wait_for(&curl, "provisioned").await;
    s.settle().await;
    let st = stores(&s);
    let now = chrono::Utc::now();
    let ask = |a: AuditArgs| {
        let st = st.clone();
        async move { query(&st, &a, now).await.unwrap() }
    };

    // A request's full timeline, refused attempts included.
    let Report::Timeline {
        events,
        refused_attempts,
        ..
    } = ask(AuditArgs {
        request: Some(nginx.clone()),
        ..AuditArgs::default()
    })
    .await
    else {
        panic!("not a timeline")
    };
    let path: Vec<String> = events.iter().map(|e| e.to.to_string()).collect();
    assert_eq!(path, ["received", "validating", "pending_approval", "denied"]);
    assert_eq!(refused_attempts.len(), 1);
    assert_eq!(refused_attempts[0].actor.to_string(), "email:security-lead@example.com");

    // By requester and by image, newest first.
    let mine = ask(AuditArgs {
        requester: Some("developer@example.com".into()),
        ..AuditArgs::default()
    })
    .await;
    assert_eq!(
        ids(&mine),
        [
            go_again.clone(),
            python.clone(),
            nginx.clone(),
            curl.clone(),
            go.clone()
        ]
    );
    let gos = ask(AuditArgs {
        image: Some("go".into()),
        ..AuditArgs::default()
    })
    .await;
    assert_eq!(ids(&gos), [go_again.clone(), go.clone()]);

    // Pending approvals, oldest first; by status.
    let pending = ask(AuditArgs {
        status: Some("pending_approval".into()),
        ..AuditArgs::default()
    })
    .await;
    assert_eq!(ids(&pending), [python.as_str()]);
    let provisioned = ask(AuditArgs {
        status: Some("provisioned".into()),
        ..AuditArgs::default()
    })
    .await;
    assert_eq!(ids(&provisioned), [curl.clone(), go.clone()]);

    // Decisions by approver, newest first.
    let decisions = ask(AuditArgs {
        approver: Some("security-lead@example.com".into()),
        ..AuditArgs::default()
    })
    .await;
    assert_eq!(ids(&decisions), [nginx.clone(), curl.clone()]);

    // By time range: nothing after now; everything today.
    let later = ask(AuditArgs {
        since: Some((now + chrono::Duration::minutes(1)).to_rfc3339()),
        ..AuditArgs::default()
    })
    .await;
    assert!(ids(&later).is_empty());
    let today = ask(AuditArgs {
        since: Some(now.format("%Y-%m-%d").to_string()),
        until: Some((now + chrono::Duration::minutes(1)).to_rfc3339()),
        ..AuditArgs::default()
    })
    .await;
    assert_eq!(ids(&today).len(), 5);

    // Stuck: non-terminal and not updated for a while. Nothing is, yet, except by a
    // cut-off in the future.
    let stuck = ask(AuditArgs {
        stuck_for: Some("1h".into()),
        ..AuditArgs::default()
    })
    .await;
    assert!(ids(&stuck).is_empty());
    let stuck = query(
        &st,
        &AuditArgs {
            stuck_for: Some("1h".into()),
            ..AuditArgs::default()
        },
        now + chrono::Duration::hours(2),
    )
    .await
    .unwrap();
    assert_eq!(ids(&stuck), [python.as_str()]);

    // Bad arguments say what is wrong.
    for bad in [
        AuditArgs {
            stuck_for: Some("soon".into()),
            ..AuditArgs::default()
        },
        AuditArgs {
            since: Some("yesterday".into()),
            ..AuditArgs::default()
        },
        AuditArgs {
            status: Some("lost".into()),
            ..AuditArgs::default()
        },
    ] {
        assert!(query(&st, &bad, now).await.is_err());
    }

    // Every chain holds, and every event is sealed.
    let keys = s.running.app.audit_keys().unwrap().clone();
    for id in [&go, &curl, &nginx, &python, &go_again] {
        let v = verify(&st, id, &keys).await.unwrap();
        assert_eq!(
            v.head,
            s.running
                .app
                .store
                .get(id.parse().unwrap())
                .await
                .unwrap()
                .unwrap()
                .audit_head()
        );
    }
}

#[tokio::test]
async fn tampering_in_the_stores_is_caught_and_named() {
    let s = start().await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    let decision = serde_json::json!({"decision": "approve", "reason": "ok for staging"});
    s.admin
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/decision"),
            Some(&decision),
            &[],
        )
        .await
        .unwrap();
    s.wait_for(&id, "provisioned").await;
    s.settle().await;
    let st = stores(&s);
    let keys = s.running.app.audit_keys().unwrap().clone();
    let original = s.running.app.audit.timeline(id.parse().unwrap()).await.unwrap();
    assert_eq!(original.len(), 6);
    assert_eq!(original[3].action, domain::Action::Approve);
    let head = original[5].hash.clone();
    let verify_err = || async { verify(&st, &id, &keys).await.unwrap_err().to_string() };
    let restore = || async {
        for e in &original {
            s.overwrite_event(e).await;
        }
        s.rewind(&id, 6, &head).await;
        verify(&st, &id, &keys).await.unwrap();
    };

    // An edited reason.
    let mut e = original[3].clone();
    e.reason = Some("approved by the CTO".into());
    s.overwrite_event(&e).await;
    let err = verify_err().await;
    assert!(
        err.contains("broken at event 4") && err.contains("does not match its hash"),
        "{err}"
    );
    restore().await;

    // An edited approver, every hash after it computed again and the request pointed at
    // the new head: the plain chain holds, the seal does not.
    let mut forged = original.clone();
    forged[3].actor = "email:cto@example.com".parse().unwrap();
    for i in 3..forged.len() {
        forged[i].prev_hash = forged[i - 1].hash.clone();
        forged[i].hash = forged[i].compute_hash();
    }
    for e in &forged[3..] {
        s.overwrite_event(e).await;
    }
    s.rewind(&id, 6, &forged[5].hash).await;
    let stored = s.running.app.audit.timeline(id.parse().unwrap()).await.unwrap();
    assert_eq!(domain::verify_chain(&stored), Ok(()), "unkeyed, the forgery would pass");
    let err = verify_err().await;
    assert!(
        err.contains("broken at event 4") && err.contains("without the audit key"),
        "{err}"
    );
    restore().await;

    // A middle event deleted.
    s.delete_event(&id, 3).await;
    let err = verify_err().await;
    assert!(err.contains("broken at event 3") && err.contains("missing"), "{err}");
    restore().await;

    // The last event dropped.
    s.delete_event(&id, 6).await;
    let err = verify_err().await;
    assert!(err.contains("broken at event 6"), "{err}");
    // …and the request rewound to match: only the archive still knows.
    s.rewind(&id, 5, &original[4].hash).await;
    if s.aws.is_none() {
        let err = verify_err().await;
        assert!(
            err.contains("broken at event 6") && err.contains("in the archive but not in the table"),
            "{err}"
        );
    }
    restore().await;

    // Another event written under a sequence number already taken, sealed with a guess.
    let mut other = original[3].clone();
    other.action = domain::Action::Deny;
    other.to = domain::Status::Denied;
    other.hash = other.compute_hash();
    other.seal(&domain::auth::token::TokenKeys {
        active: keys.active.clone(),
        keys: [(keys.active.clone(), "a guessed key, 32 characters long".to_string())].into(),
    });
    s.overwrite_event(&other).await;
    let err = verify_err().await;
    assert!(err.contains("broken at event 4"), "{err}");
    restore().await;
}

/// An audit log whose trail was tampered with, as `verify` must catch it.
struct Tampered {
    inner: Arc<dyn AuditLog>,
    how: fn(&mut Vec<AuditEvent>),
}

#[async_trait]
impl AuditLog for Tampered {
    async fn timeline(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events = self.inner.timeline(id).await?;
        (self.how)(&mut events);
        Ok(events)
    }
    async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.query(q).await
    }
    async fn refused(&self, r: &Refusal) -> Result<(), StoreError> {
        self.inner.refused(r).await
    }
    async fn refusals(&self, id: RequestId) -> Result<Vec<Refusal>, StoreError> {
        self.inner.refusals(id).await
    }
    async fn undelivered(&self, u: &app::ports::Undelivered) -> Result<(), StoreError> {
        self.inner.undelivered(u).await
    }
    async fn undeliverable(&self, id: RequestId) -> Result<Vec<app::ports::Undelivered>, StoreError> {
        self.inner.undeliverable(id).await
    }
    async fn touched(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<RequestId>, StoreError> {
        self.inner.touched(since, until).await
    }
}

#[tokio::test]
async fn verify_names_the_first_broken_event() {
    let s = start().await;
    let id = s.submit("go", Some("dev")).await;
    s.wait_for(&id, "provisioned").await;
    s.settle().await;
    let tampered = |how: fn(&mut Vec<AuditEvent>)| Stores {
        audit: Arc::new(Tampered {
            inner: s.running.app.audit.clone(),
            how,
        }),
        ..stores(&s)
    };
    let keys = s.running.app.audit_keys().unwrap().clone();
    let edited = verify(
        &tampered(|e| e[2].reason = Some("approved by nobody".into())),
        &id,
        &keys,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(edited.contains("broken at event 3"), "{edited}");
    let removed = verify(&tampered(|e| drop(e.remove(1))), &id, &keys)
        .await
        .unwrap_err()
        .to_string();
    assert!(removed.contains("broken at event 2"), "{removed}");
    let cut_short = verify(&tampered(|e| drop(e.pop())), &id, &keys)
        .await
        .unwrap_err()
        .to_string();
    assert!(cut_short.contains("broken at event 5"), "{cut_short}");
    assert!(verify(&stores(&s), &id, &keys).await.is_ok());
}

/// The auditor's script (`infra/audit/verify_audit.py`, Python's standard library only)
/// and `audit verify` agree, on the same exported trails, intact and forged.
#[tokio::test]
async fn the_python_verifier_agrees_with_the_rust_one() {
    let s = start().await;
    let body = serde_json::json!({"image": "curl", "justification": "Données « x » \"quoted\"\n\tsecond line ✓", "environment": "dev"});
    let (_, v) = s
        .dev
        .call(
            reqwest::Method::POST,
            "/requests",
            Some(&body),
            &[("idempotency-key", "py-1")],
        )
        .await
        .unwrap();
    let added = v["id"].as_str().unwrap().to_string();
    s.wait_for(&added, "provisioned").await;
    let (_, v) = s
        .submit_for(serde_json::json!({"image": "curl", "justification": "gone", "kind": "remove", "requester": "email:ops@example.com"}))
        .await;
    let removal = v["id"].as_str().unwrap().to_string();
    s.wait_for(&removal, "pending_approval").await;
    s.settle().await;
    let st = stores(&s);
    let keys = s.running.app.audit_keys().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("audit-keys.json");
    std::fs::write(&keys_file, serde_json::to_string(&keys).unwrap()).unwrap();
    let python = |trail: &serde_json::Value| {
        let file = dir.path().join("trail.json");
        std::fs::write(&file, serde_json::to_string_pretty(trail).unwrap()).unwrap();
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/audit/verify_audit.py"))
            .arg("--keys")
            .arg(&keys_file)
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    for id in [&added, &removal] {
        let trail = serde_json::json!(query(
            &st,
            &AuditArgs {
                request: Some(id.clone()),
                ..AuditArgs::default()
            },
            chrono::Utc::now()
        )
        .await
        .unwrap());
        let rust = verify(&st, id, &keys).await.unwrap();
        assert_eq!(
            python(&trail),
            (
                Some(0),
                format!(
                    "{id}: the audit chain holds ({} events, head {})",
                    rust.events, rust.head
                )
            )
        );
        // Forged without the key: the reason of event 2 edited, every hash after it again.
        let mut forged = trail.clone();
        let mut events: Vec<AuditEvent> = serde_json::from_value(forged["events"].clone()).unwrap();
        events[1].reason = Some("forged".into());
        for i in 1..events.len() {
            events[i].prev_hash = events[i - 1].hash.clone();
            events[i].hash = events[i].compute_hash();
        }
        forged["events"] = serde_json::json!(events);
        forged["request"]["audit_head"] = serde_json::json!(events.last().unwrap().hash);
        let rust_says = domain::verify_sealed(&events, &keys).unwrap_err().to_string();
        assert_eq!(python(&forged), (Some(1), format!("{id}: {rust_says}")));
        assert!(
            rust_says.starts_with("audit chain broken at event 2: its seal does not match"),
            "{rust_says}"
        );
    }
}

#[tokio::test]
async fn an_evidence_run_verifies_every_request_touched_and_names_the_broken_ones() {
    let s = start().await;
    let ids = [
        s.submit("go", Some("dev")).await,
        s.submit("git", Some("dev")).await,
        s.submit("busybox", None).await,
    ];
    s.wait_for(&ids[0], "provisioned").await;
    s.wait_for(&ids[1], "provisioned").await;
    s.wait_for(&ids[2], "pending_approval").await;
    s.settle().await;
    let keys = s.running.app.audit_keys().unwrap().clone();
    let st = stores(&s);
    let (since, until) = (
        chrono::Utc::now() - chrono::Duration::hours(1),
        chrono::Utc::now() + chrono::Duration::minutes(1),
    );
    let summary = cgr_request::audit::verify_all(&st, since, until, &keys).await.unwrap();
    assert_eq!((summary.checked, summary.broken.len()), (3, 0));

    let mut e = s.running.app.audit.timeline(ids[1].parse().unwrap()).await.unwrap()[1].clone();
    e.reason = Some("nothing to see".into());
    s.overwrite_event(&e).await;
    let summary = cgr_request::audit::verify_all(&st, since, until, &keys).await.unwrap();
    assert_eq!(summary.checked, 3);
    assert_eq!(summary.broken.len(), 1);
    assert_eq!(summary.broken[0].request_id.to_string(), ids[1]);
    assert!(
        summary.broken[0].problem.contains("broken at event 2"),
        "{}",
        summary.broken[0].problem
    );
    // A range with no events checks nothing.
    let before = since - chrono::Duration::days(3);
    let empty = cgr_request::audit::verify_all(&st, before, before + chrono::Duration::days(1), &keys)
        .await
        .unwrap();
    assert_eq!(empty.checked, 0);
}

#[tokio::test]
async fn the_archive_holds_every_event_once_and_read_only() {
    let s = start().await;
    let id = s.submit("go", Some("dev")).await;
    s.wait_for(&id, "provisioned").await;
    s.settle().await;
    if s.aws.is_some() {
        return; // The AWS archive (a stream-fed function, S3 with Object Lock) is not built yet.
    }
    let events = s.running.app.audit.timeline(id.parse().unwrap()).await.unwrap();
    let dir = s.dir.path().join(cgr_request::server::ARCHIVE_DIR);
    let archive = embedded::archive::FolderArchive::new(dir.clone());
    // serve's archiver copied them all, as stored (seals included)…
    let copy = app::archive::archived(&archive, id.parse().unwrap()).await.unwrap();
    assert_eq!(copy, events);
    // …so a redelivery writes nothing, and a fresh archive takes each once.
    assert_eq!(app::archive::archive_events(&archive, &events).await.unwrap(), 0);
    let fresh = embedded::archive::FolderArchive::new(tempfile::tempdir().unwrap().keep());
    assert_eq!(
        app::archive::archive_events(&fresh, &events).await.unwrap(),
        events.len()
    );
    assert_eq!(app::archive::archive_events(&fresh, &events).await.unwrap(), 0);
    let file = dir.join(app::archive::key(id.parse().unwrap(), 1));
    assert!(
        std::fs::metadata(&file).unwrap().permissions().readonly(),
        "{}",
        file.display()
    );
}
