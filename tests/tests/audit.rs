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

    // Every chain holds.
    for id in [&go, &curl, &nginx, &python, &go_again] {
        let v = verify(&st, id).await.unwrap();
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
}

#[tokio::test]
async fn verify_names_the_first_broken_event() {
    let s = start().await;
    let id = s.submit("go", Some("dev")).await;
    s.wait_for(&id, "provisioned").await;
    let tampered = |how: fn(&mut Vec<AuditEvent>)| Stores {
        audit: Arc::new(Tampered {
            inner: s.running.app.audit.clone(),
            how,
        }),
        ..stores(&s)
    };
    let edited = verify(&tampered(|e| e[2].reason = Some("approved by nobody".into())), &id)
        .await
        .unwrap_err()
        .to_string();
    assert!(edited.contains("broken at event 3"), "{edited}");
    let removed = verify(&tampered(|e| drop(e.remove(1))), &id)
        .await
        .unwrap_err()
        .to_string();
    assert!(removed.contains("broken at event 2"), "{removed}");
    let cut_short = verify(&tampered(|e| drop(e.pop())), &id).await.unwrap_err().to_string();
    assert!(cut_short.contains("broken at event 5"), "{cut_short}");
    assert!(verify(&stores(&s), &id).await.is_ok());
}
