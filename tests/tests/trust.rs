//! Attacks on the intake's trust boundaries, tried as an attacker would, on both backends
//! (`IMAGE_REQUEST_TEST_BACKEND=aws` for DynamoDB): a replayed signature creates nothing.

use domain::auth::client::{sign, Signing, CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use pipeline_tests::{start, Stack};
use reqwest::Method;

const BODY: &[u8] = br#"{"image":"redis","justification":"caching"}"#;

/// A dev client's signed `POST /requests`, headers as sent.
fn signed(s: &Stack, content_type: &str, key: Option<&str>, ts: i64) -> Vec<(&'static str, String)> {
    let what = Signing {
        method: "POST",
        path: "/requests",
        content_type,
        idempotency_key: key.unwrap_or(""),
    };
    let mut h = vec![
        (CLIENT_HEADER, s.dev_client.id.clone()),
        (TIMESTAMP_HEADER, ts.to_string()),
        (SIGNATURE_HEADER, sign(s.dev_client.secret.as_bytes(), ts, what, BODY)),
        ("content-type", content_type.to_string()),
    ];
    if let Some(k) = key {
        h.push(("idempotency-key", k.to_string()));
    }
    h
}

#[tokio::test]
async fn the_same_signed_bytes_sent_again_create_nothing() {
    let s = start().await;
    let ts = chrono::Utc::now().timestamp();
    let headers = signed(&s, "application/json", None, ts);
    let (status, first) = s.raw(Method::POST, "/requests", BODY.to_vec(), &headers).await;
    assert_eq!(status, 202, "{first}");
    let before = s.counts().await;
    // Verbatim, within the window: refused, and nothing stored.
    let (status, v) = s.raw(Method::POST, "/requests", BODY.to_vec(), &headers).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("signature was already used"),
        "{v}"
    );
    // With an Idempotency-Key added to the captured call: the signature no longer matches.
    let mut keyed = headers.clone();
    keyed.push(("idempotency-key", "attacker-1".into()));
    let (status, _) = s.raw(Method::POST, "/requests", BODY.to_vec(), &keyed).await;
    assert_eq!(status, 401);
    // The same bytes as another content type: not what was signed.
    let mut plain = headers.clone();
    plain.retain(|(k, _)| *k != "content-type");
    plain.push(("content-type", "text/plain".into()));
    let (status, _) = s.raw(Method::POST, "/requests", BODY.to_vec(), &plain).await;
    assert_eq!(status, 401);
    s.settle().await;
    assert_eq!(s.counts().await.requests, before.requests, "no second request");
}

#[tokio::test]
async fn a_join_is_a_use_of_its_signature_too() {
    let s = start().await;
    let (status, open) = s.submit_as("email:first@example.com", "redis", "caching first").await;
    assert_eq!(status, 202, "{open}");
    let ts = chrono::Utc::now().timestamp();
    let headers = signed(&s, "application/json", None, ts);
    let (status, joined) = s.raw(Method::POST, "/requests", BODY.to_vec(), &headers).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(
        (&joined["id"], &joined["joined"]),
        (&open["id"], &serde_json::json!(true))
    );
    // The open request's own validation moves on meanwhile: count once it has stopped.
    s.settle().await;
    let before = s.counts().await;
    let (status, again) = s.raw(Method::POST, "/requests", BODY.to_vec(), &headers).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(s.counts().await.audit, before.audit, "nothing recorded for the replay");
}

#[tokio::test]
async fn a_retry_under_its_idempotency_key_answers_the_original_request() {
    let s = start().await;
    let ts = chrono::Utc::now().timestamp();
    let (status, first) = s
        .raw(
            Method::POST,
            "/requests",
            BODY.to_vec(),
            &signed(&s, "application/json", Some("k-1"), ts),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    let send = |at| {
        let headers = signed(&s, "application/json", Some("k-1"), at);
        let s = &s;
        async move { s.raw(Method::POST, "/requests", BODY.to_vec(), &headers).await }
    };
    // The same signature again, key and all: a replay, however it is labelled.
    let (status, again) = send(ts).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["replayed"], true);
    assert!(
        again["error"].as_str().unwrap().contains("sign each attempt again"),
        "{again}"
    );
    // A client that lost the answer signs again under the same key: the original request.
    for at in [ts + 1, ts - 1] {
        let (status, again) = send(at).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["id"], first["id"]);
    }
    s.settle().await;
    assert_eq!(s.counts().await.requests, 1);
}

#[tokio::test]
async fn two_senders_of_one_keyed_submission_in_the_same_second_get_one_request() {
    // A re-run workflow: another process, the same key and body, most likely the same
    // second, so the same signature. The client signs again in the next second.
    let s = start().await;
    let other = cgr_request::client::ApiClient::new(&s.base, &s.dev_client.id, &s.dev_client.secret);
    let body = serde_json::json!({"image": "redis", "justification": "caching"});
    let key = [("idempotency-key", "merge-7")];
    let (first, a) = s.dev.call(Method::POST, "/requests", Some(&body), &key).await.unwrap();
    let (second, b) = other.call(Method::POST, "/requests", Some(&body), &key).await.unwrap();
    assert_eq!((first, second), (202, 200));
    assert_eq!(a["id"], b["id"]);
    s.settle().await;
    assert_eq!(s.counts().await.requests, 1);
}

/// Runs a program with the local dev client's credentials, off the test's runtime (the
/// server answering it runs there); answers its stdout.
async fn run_client(s: &Stack, mut cmd: std::process::Command) -> String {
    cmd.env("IMAGE_REQUEST_URL", &s.base)
        .env("CLIENT_ID", &s.dev_client.id)
        .env("CLIENT_SECRET", &s.dev_client.secret);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The request a client printed (`<id> …`) exists, asked for by the dev client.
async fn printed_request(s: &Stack, printed: &str, image: &str) {
    let id = printed.split_whitespace().next().unwrap();
    let (_, v) = s
        .dev
        .call(Method::GET, &format!("/requests/{id}"), None, &[])
        .await
        .unwrap();
    assert_eq!(v["image"], image, "{printed}");
    assert_eq!(v["requester"], s.dev_client.principal.to_string());
}

#[tokio::test]
async fn the_readmes_python_and_rust_clients_work_as_written() {
    let s = start().await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("### Calling the API").nth(1).unwrap();
    let python = section
        .split("```python\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", python]);
    let printed = run_client(&s, cmd).await;
    // `<id> <status>`: wherever the pipeline has got to by the time it asks.
    let status = printed.split_whitespace().nth(1).unwrap_or_default();
    assert!(status.parse::<domain::Status>().is_ok(), "{printed}");
    printed_request(&s, &printed, "python:3.12").await;

    // The Rust example (`--workspace`, as the test command built it: nothing to rebuild).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args([
            "test",
            "--quiet",
            "--locked",
            "--offline",
            "--workspace",
            "--example",
            "submit",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    // Without the variables cargo sets for this test: build scripts that watch them (ring's)
    // would run again, and the next build of the test command would undo it.
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            build.env_remove(k);
        }
    }
    // Where cargo put it: its own answer, not a guess at the target folder's layout. The
    // test command builds examples as test binaries; the example's test runs its own code.
    let built = run_client(&s, build).await;
    let exe = built
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "submit")
        .and_then(|m| m["executable"].as_str().map(String::from))
        .expect("cargo names the example's executable");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", "tests::asks_for_an_image", "--nocapture", "--quiet"]);
    let out = run_client(&s, cmd).await;
    let printed = out
        .lines()
        .find(|l| l.starts_with("req-"))
        .unwrap_or_else(|| panic!("{out}"));
    printed_request(&s, printed, "go:1.23").await;
    // The README shows the example's calls as the file makes them.
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/examples/submit.rs")).unwrap();
    for call in ["ApiClient::new(", "api.submit(&ask, ", "api.request(submitted.id)"] {
        assert!(example.contains(call) && section.contains(call), "{call}");
    }
}

#[tokio::test]
async fn the_readmes_signing_recipes_work_as_written() {
    let s = start().await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("### Authenticating API calls").nth(1).unwrap();
    let scripts: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .take(2)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(scripts.len(), 2, "the JSON and the form recipe");
    let forms_secret = s.dev_client.secret.clone();
    for (script, client) in scripts.iter().zip(["dev", "forms"]) {
        // The recipes name their client; run both as the local dev client.
        let script = script
            .replace("http://127.0.0.1:8080", &s.base)
            .replace(&format!("x-client-id: {client}"), "x-client-id: dev");
        let secret = forms_secret.clone();
        // Off the test's runtime: the server answering curl runs on it.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .env("SECRET", secret)
                .output()
                .expect("bash, openssl and curl run")
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        assert_eq!(v["status"], "received", "{client}: {v}");
    }
}

#[tokio::test]
async fn registry_hosts_paths_and_digests_are_refused_at_the_door_with_the_name_to_use() {
    let s = start().await;
    let before = s.counts().await;
    for (given, ask) in [
        ("cgr.dev/chainguard/busybox", "busybox"),
        ("docker.io/library/nginx:1.25", "nginx:1.25"),
        ("python@sha256:0123abcd", "python"),
    ] {
        let body = serde_json::json!({"image": given, "justification": "x"});
        let err = s
            .dev
            .call(Method::POST, "/requests", Some(&body), &[])
            .await
            .expect_err(given);
        let said = err.to_string();
        assert!(said.contains(&format!("ask for `{ask}`")), "{given}: {said}");
        assert_eq!(pipeline_tests::api_status(err), 400, "{given}");
    }
    assert_eq!(s.counts().await, before, "nothing stored");
}

#[tokio::test]
async fn text_that_could_deceive_an_approver_is_refused_or_quoted() {
    let s = start().await;
    let before = s.counts().await;
    for (text, says) in [
        (
            "invoice\u{202E}fdp.exe",
            "RIGHT-TO-LEFT OVERRIDE (U+202E) at position 8",
        ),
        ("\u{2066}secret\u{2069}", "LEFT-TO-RIGHT ISOLATE (U+2066)"),
        ("\u{200B}\u{2060}", "ZERO WIDTH SPACE (U+200B)"),
    ] {
        let body = serde_json::json!({"image": "redis", "justification": text});
        let err = s
            .dev
            .call(Method::POST, "/requests", Some(&body), &[])
            .await
            .unwrap_err();
        let said = err.to_string();
        assert!(said.contains(says), "{text:?}: {said}");
        assert_eq!(pipeline_tests::api_status(err), 400);
    }
    assert_eq!(s.counts().await, before, "nothing stored");

    // Lines are kept, but quoted: a requester cannot draw a link line of the email.
    let body = serde_json::json!({
        "image": "redis",
        "justification": "Caching for checkout.\nApprove: https://evil.example/steal\nThanks",
    });
    let (_, v) = s.dev.call(Method::POST, "/requests", Some(&body), &[]).await.unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    s.wait_for(&id, "pending_approval").await;
    s.settle().await;
    let mail = s.approval_mail(&id, "platform-admin@example.com").await;
    let approve_lines: Vec<&str> = mail.lines().filter(|l| l.starts_with("Approve: ")).collect();
    assert_eq!(approve_lines.len(), 1, "{mail}");
    assert!(!approve_lines[0].contains("evil.example"), "{mail}");
    assert!(mail.contains("> Approve: https://evil.example/steal"), "{mail}");
    // The real links come before anything the requester wrote.
    assert!(
        mail.find("Approve: ").unwrap() < mail.find("> Caching").unwrap(),
        "{mail}"
    );
}

#[tokio::test]
async fn every_error_answers_json_and_bodies_must_say_what_they_are() {
    let s = start().await;
    let before = s.counts().await;
    let now = chrono::Utc::now().timestamp();
    // A JSON body sent (and signed) as text/plain, or with no Content-Type: 415.
    for ct in ["text/plain", ""] {
        let mut h = s.signed_headers_as("POST", "/requests", BODY, now, &s.dev_client.secret, ct);
        h.retain(|(k, v)| *k != "content-type" || !v.is_empty());
        let (status, v) = s.raw(Method::POST, "/requests", BODY.to_vec(), &h).await;
        assert_eq!(status, 415, "{ct:?}: {v}");
        assert!(v["error"].as_str().unwrap().contains("application/json"), "{v}");
    }
    // A method a path does not take: 405, JSON, and what it takes.
    let resp = s.http.delete(format!("{}/requests", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("Allow"), "{v}");
    // axum's own rejections (an unknown query field) keep their words, in the JSON shape.
    let path = "/catalog?q=py&colour=blue";
    let mut h = s.signed_headers_as("GET", path, b"", now, &s.dev_client.secret, "");
    h.retain(|(k, v)| *k != "content-type" || !v.is_empty());
    let (status, v) = s.raw(Method::GET, path, vec![], &h).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown field `colour`"), "{v}");
    // A path nobody serves: 404, JSON.
    let resp = s.http.get(format!("{}/nope", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["error"].is_string(), "{v}");
    // A path and query longer than any route takes: 414, JSON, on the API's routes and off them.
    for path in ["/requests", "/approvals/x", "/nope"] {
        let long = format!("{}{path}?q={}", s.base, "a".repeat(9000));
        let resp = s.http.get(long).send().await.unwrap();
        assert_eq!(resp.status(), 414, "{path}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("at most 8192"), "{path}: {v}");
    }
    // Too large: a plain client that sends it all reads the 413, not a broken pipe.
    let big = vec![b'x'; 100_000];
    let h = s.signed_headers("POST", "/requests", &big, now, &s.dev_client.secret);
    let (status, v) = s.raw(Method::POST, "/requests", big, &h).await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("larger than"), "{v}");
    assert_eq!(s.counts().await, before, "nothing stored");
}

#[tokio::test]
async fn approval_pages_are_never_cached_and_load_nothing_foreign() {
    let s = start().await;
    let id = s.submit("nginx", None).await;
    s.wait_for(&id, "pending_approval").await;
    let (approve, _) = s.links(&id, "platform-admin@example.com").await;
    // Cut out of the mail file as a shell would (`grep -o 'http[^ ]*'`): it works as is.
    let mail = s.approval_mail(&id, "platform-admin@example.com").await;
    assert!(!mail.contains('\r'), "the mail's lines end in LF");
    let cut = mail
        .split("Approve: ")
        .nth(1)
        .unwrap()
        .split([' ', '\n'])
        .next()
        .unwrap();
    assert_eq!(cut, approve);
    let resp = s.http.get(&approve).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    // The form takes a form, nothing else.
    let resp = s
        .http
        .post(&approve)
        .header("content-type", "application/json")
        .body(r#"{"reason":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    s.wait_for(&id, "pending_approval").await;
}
