//! Bad input at the edge: every refusal is precise, and nothing is stored or changed.

use chrono::Utc;
use domain::auth::token::ApprovalClaims;
use domain::verify_chain;
use pipeline_tests::{start, Counts, Stack};
use reqwest::Method;
use serde_json::{json, Value};

async fn refused(s: &Stack, body: &[u8], headers: Vec<(&'static str, String)>) -> (u16, serde_json::Value) {
    let before: Counts = s.counts().await;
    let out = s.raw(Method::POST, "/requests", body.to_vec(), &headers).await;
    assert_eq!(s.counts().await, before, "a refused call changed something: {out:?}");
    assert!(out.1["error"].is_string(), "errors are JSON with an `error`: {out:?}");
    out
}

fn good_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"image": "busybox", "justification": "debug"})).unwrap()
}

#[tokio::test]
async fn forged_stale_and_missing_signatures_are_refused_and_store_nothing() {
    let s = start().await;
    let body = good_body();
    let now = Utc::now().timestamp();
    let secret = s.dev_client.secret.clone();

    let forged = s.signed_headers("POST", "/requests", &body, now, "not-the-secret");
    assert_eq!(refused(&s, &body, forged).await.0, 401);

    let stale = s.signed_headers("POST", "/requests", &body, now - 301, &secret);
    let (code, v) = refused(&s, &body, stale).await;
    assert_eq!(code, 401);
    assert!(v["error"].as_str().unwrap().contains("away from the server clock"));

    let other_route = s.signed_headers("POST", "/catalog", &body, now, &secret);
    assert_eq!(refused(&s, &body, other_route).await.0, 401);

    let (code, v) = refused(&s, &body, vec![("content-type", "application/json".into())]).await;
    assert_eq!(code, 401);
    assert!(v["error"].as_str().unwrap().contains("x-client-id"));

    let mut unknown = s.signed_headers("POST", "/requests", &body, now, &secret);
    unknown[0].1 = "nobody".into();
    assert_eq!(refused(&s, &body, unknown).await.0, 401);

    // The same body, signed right, is accepted: the refusals above were about the signature.
    let ok = s
        .raw(
            Method::POST,
            "/requests",
            body.clone(),
            &s.signed_headers("POST", "/requests", &body, now, &secret),
        )
        .await;
    assert_eq!(ok.0, 202);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = start().await;
    let body = serde_json::to_vec(&json!({"image": "busybox", "justification": "x".repeat(20_000)})).unwrap();
    let headers = s.signed_headers("POST", "/requests", &body, Utc::now().timestamp(), &s.dev_client.secret);
    assert_eq!(refused(&s, &body, headers).await.0, 413);
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_are_400() {
    let s = start().await;
    for (body, says) in [
        (&b"{\"image\": \"busybox\""[..], "body is not valid"),
        (b"[]", "body is not valid"),
        (
            br#"{"image":"busybox","justification":"x","admin":true}"#,
            "unknown field `admin`",
        ),
        (br#"{"image":"busybox"}"#, "missing field `justification`"),
        (
            br#"{"image":"busybox","justification":"   "}"#,
            "justification is required",
        ),
        (
            br#"{"image":"busybox","justification":"x","environment":"production"}"#,
            "not an environment",
        ),
        (
            br#"{"image":"busybox","justification":"x","requester":"email:ceo@example.com"}"#,
            "on behalf of someone else",
        ),
    ] {
        let headers = s.signed_headers("POST", "/requests", body, Utc::now().timestamp(), &s.dev_client.secret);
        let (code, v) = refused(&s, body, headers).await;
        assert!(code == 400 || code == 403, "{code} {v}");
        assert!(
            v["error"].as_str().unwrap().contains(says),
            "{} does not say {says}",
            v["error"]
        );
    }
}

#[tokio::test]
async fn image_names_that_break_the_grammar_are_refused_with_why() {
    let s = start().await;
    let long = "a".repeat(300);
    for (image, says) in [
        ("../../etc/passwd", "ask for `passwd`"),
        ("BusyBox", "'B'"),
        ("busy box", "' '"),
        ("ｂusybox", "U+FF42"),
        ("pуthon", "U+0443"),
        ("", "empty"),
        (long.as_str(), "300 characters"),
        ("busybox@sha256:00", "digest"),
    ] {
        let body = serde_json::to_vec(&json!({"image": image, "justification": "x"})).unwrap();
        let headers = s.signed_headers("POST", "/requests", &body, Utc::now().timestamp(), &s.dev_client.secret);
        let (code, v) = refused(&s, &body, headers).await;
        assert_eq!(code, 400, "{image}");
        assert_eq!(v["field"], "image");
        assert!(v["error"].as_str().unwrap().contains(says), "{image}: {}", v["error"]);
    }
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_request_and_creates_nothing() {
    let s = start().await;
    let body = json!({"image": "curl", "justification": "fetching things"});
    let key = [("idempotency-key", "form-submission-42")];
    let (first_code, first) = s.dev.call(Method::POST, "/requests", Some(&body), &key).await.unwrap();
    let (again_code, again) = s.dev.call(Method::POST, "/requests", Some(&body), &key).await.unwrap();
    assert_eq!((first_code, again_code), (202, 200));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(s.counts().await.requests, 1);
    let other = json!({"image": "git", "justification": "fetching things"});
    let err = s
        .dev
        .call(Method::POST, "/requests", Some(&other), &key)
        .await
        .unwrap_err();
    assert_eq!(pipeline_tests::api_status(err), 422);
    assert_eq!(s.counts().await.requests, 1);
}

#[tokio::test]
async fn opening_an_approval_link_any_number_of_times_changes_nothing() {
    let s = start().await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    let (approve, deny) = s.links(&id, "platform-admin@example.com").await;
    let before = (s.counts().await, s.get(&id).await);
    for _ in 0..5 {
        for link in [&approve, &deny] {
            assert_eq!(s.http.get(link).send().await.unwrap().status(), 200);
            assert_eq!(s.http.head(link).send().await.unwrap().status(), 200);
        }
    }
    assert_eq!((s.counts().await, s.get(&id).await), before);
}

#[tokio::test]
async fn two_approvers_deciding_at_the_same_moment_exactly_one_wins() {
    let s = start().await;
    let id = s.submit("nginx", None).await;
    s.wait_for(&id, "pending_approval").await;
    let (approve, _) = s.links(&id, "platform-admin@example.com").await;
    let (_, deny) = s.links(&id, "security-lead@example.com").await;
    let (a, b) = tokio::join!(
        s.http.post(&approve).form(&[("reason", "yes")]).send(),
        s.http.post(&deny).form(&[("reason", "no")]).send()
    );
    let mut codes = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 409]);
    let v = s.get(&id).await;
    let decisions = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == "pending_approval")
        .count();
    assert_eq!(decisions, 1);
    // The loser, and anyone after, is told who decided.
    let late = s.http.post(&approve).send().await.unwrap();
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("already decided by email:"));
    // Refused attempts are audited beside the chain, which they leave alone.
    let v = s.get(&id).await;
    let refused = v["refused_attempts"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{v:#}");
    let last = &refused[1];
    assert_eq!(last["actor"], "email:platform-admin@example.com");
    assert_eq!(last["action"], "approve");
    // Where the request stood then: the decision's outcome or a step after it (the
    // pipeline goes on while the loser is refused).
    let since_decision: Vec<&Value> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|e| e["from"] != "pending_approval")
        .map(|e| &e["to"])
        .collect();
    assert!(since_decision.contains(&&last["status"]), "{v:#}");
    assert!(last["why"].as_str().unwrap().contains("already decided"));
    verify_chain(&serde_json::from_value::<Vec<_>>(v["audit"].clone()).unwrap()).unwrap();
}

#[tokio::test]
async fn expired_tampered_and_revoked_links_get_a_clear_page_and_change_nothing() {
    let s = start().await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    let (approve, _) = s.links(&id, "platform-admin@example.com").await;
    let keys = s.running.app.token_keys();
    let claims = |approver: &str, expires| ApprovalClaims {
        request_id: id.parse().unwrap(),
        approver: approver.into(),
        approve: true,
        expires,
    };
    let expired = format!(
        "{}/approvals/{}",
        s.base,
        keys.sign(&claims("platform-admin@example.com", Utc::now().timestamp() - 1))
    );
    let outsider = format!(
        "{}/approvals/{}",
        s.base,
        keys.sign(&claims("mallory@example.com", Utc::now().timestamp() + 60))
    );
    let tampered = format!("{}x", approve);
    let before = s.counts().await;
    for (link, code, says) in [
        (&expired, 410, "expired"),
        (&tampered, 403, "not a valid approval link"),
        (&outsider, 403, "no longer an approver"),
    ] {
        for method in [Method::GET, Method::POST] {
            let r = s.http.request(method, link).send().await.unwrap();
            assert_eq!(r.status().as_u16(), code);
            assert!(r.text().await.unwrap().contains(says));
        }
    }
    assert_eq!(s.counts().await, before);
    assert_eq!(s.get(&id).await["status"], "pending_approval");
    // A link that verifies, from someone no longer an approver: the page names the request.
    let page = s.http.get(&outsider).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("busybox:latest") && page.contains(&id), "{page}");
    // A forged one names nothing: its claims are not to be believed.
    let page = s.http.get(&tampered).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("busybox"), "{page}");
}

#[tokio::test]
async fn a_link_is_used_once_and_a_use_lasts_as_long_as_the_link() {
    let s = start().await;
    let store = &s.running.app.store;
    let now = Utc::now();
    let key = domain::auth::token::use_key("some.token.value");
    assert!(!key.contains("some.token"), "the stored key is a digest, not the token");
    let hour = chrono::Duration::hours(1);
    assert!(store.claim_once(&key, now, now + hour).await.unwrap());
    assert!(!store.claim_once(&key, now, now + hour).await.unwrap());
    assert!(
        !store
            .claim_once(&key, now + hour - chrono::Duration::seconds(1), now + hour * 2)
            .await
            .unwrap(),
        "a use holds until the link's expiry"
    );
    // A use recorded until a time now past no longer holds (TTL deletion lags: reads
    // check), judged by the caller's clock, not the adapter's.
    let old = domain::auth::token::use_key("an.expired.link");
    assert!(store.claim_once(&old, now, now + hour).await.unwrap());
    assert!(store.claim_once(&old, now + hour * 2, now + hour * 3).await.unwrap());
    // Released (the decision could not be stored): the link works again.
    store.release(&key).await.unwrap();
    assert!(store.claim_once(&key, now, now + hour).await.unwrap());
}

#[tokio::test]
async fn a_form_tool_submits_urlencoded_fields_under_the_same_signature() {
    let s = start().await;
    let body = b"image=busybox&justification=Debug+shell+for+staging&environment=".to_vec();
    let form = "application/x-www-form-urlencoded";
    let headers = s.signed_headers_as(
        "POST",
        "/requests",
        &body,
        Utc::now().timestamp(),
        &s.dev_client.secret,
        form,
    );
    let (status, v) = s.raw(Method::POST, "/requests", body.clone(), &headers).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let stored = s.get(&id).await;
    assert_eq!(
        (stored["channel"].as_str(), stored["environment"].as_str()),
        (Some("form"), None)
    );

    // The signature covers the form's bytes; a changed field, or an unknown one, stores nothing.
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    let before = s.counts().await;
    let tampered = b"image=nginx&justification=Debug+shell+for+staging&environment=".to_vec();
    let (status, _) = s.raw(Method::POST, "/requests", tampered, &headers).await;
    assert_eq!(status, 401);
    let unknown = b"image=busybox&justification=x&colour=blue".to_vec();
    let headers = s.signed_headers_as(
        "POST",
        "/requests",
        &unknown,
        Utc::now().timestamp(),
        &s.dev_client.secret,
        form,
    );
    let (status, v) = s.raw(Method::POST, "/requests", unknown, &headers).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
    assert_eq!(s.counts().await, before);
}
