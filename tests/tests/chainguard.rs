//! The Chainguard client against a local server speaking the documented API: creating,
//! already-exists, not-found, tolerant JSON, retries, permanent errors, token refresh,
//! the repo limit, catalog and entitlements, and the keyless token exchange in detail.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::ports::{Registry, RegistryError};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use base64::Engine;
use chainguard::{Chainguard, Options, TokenSource, Tokens};
use pipeline_tests::fake_chainguard::{FakeChainguard, IDENTITY, ORG_ID, STATIC_TOKEN};
use serde_json::json;

const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn client(fake: &FakeChainguard, source: TokenSource) -> Chainguard {
    let mut opts = Options::new(&fake.url, ORG_ID, "acme.dev");
    opts.base_delay = Duration::from_millis(5);
    opts.timeout = Duration::from_secs(5);
    let http = Chainguard::http_client(opts.timeout);
    // The exchange is served by the same fake: issuer and API share its address.
    let tokens = Tokens::new(source, &fake.url, &fake.url, http.clone());
    Chainguard::new(opts, tokens, http)
}

fn keyless() -> TokenSource {
    TokenSource::Keyless {
        identity: IDENTITY.into(),
        aws: SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            SECRET_KEY,
            Some(SESSION_TOKEN.into()),
            None,
            "test",
        )),
    }
}

fn static_token() -> TokenSource {
    TokenSource::Static(STATIC_TOKEN.into())
}

#[tokio::test]
async fn create_sends_the_documented_body_and_a_conflict_reads_the_repo_back() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    let repo = cg.create_repo("redis", "redis").await.unwrap();
    assert!(repo.id.starts_with(&format!("{ORG_ID}/")));
    assert_eq!(repo.tags, ["latest", "latest-dev"]);
    let post = fake.log().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        post.path_and_query,
        format!("/registry/v1/repos/{ORG_ID}?preventExisting=true")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&post.body).unwrap(),
        json!({"name": "redis", "sync_config": {"source": "redis"}})
    );
    assert_eq!(post.header("authorization"), Some(&*format!("Bearer {STATIC_TOKEN}")));

    // Already there: 409, then the existing repo is looked up by exact name.
    let again = cg.create_repo("redis", "redis").await.unwrap();
    assert_eq!(again, repo);
    assert!(fake
        .log()
        .iter()
        .any(|r| r.path_and_query == format!("/registry/v1/repos?uidp.childrenOf={ORG_ID}&name=redis")));
    assert_eq!(fake.repo_names(), ["redis"]);
}

#[tokio::test]
async fn delete_names_the_repo_by_id_and_a_repo_already_gone_is_done() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    let repo = cg.create_repo("redis", "redis").await.unwrap();
    assert_eq!(cg.delete_repo("redis").await.unwrap(), Some(repo.id.clone()));
    let delete = fake.log().into_iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(delete.path_and_query, format!("/registry/v1/repos/{}", repo.id));
    assert!(fake.repo_names().is_empty());
    // Gone: nothing is looked for twice, and nothing is deleted.
    assert_eq!(cg.delete_repo("redis").await.unwrap(), None);
    assert_eq!(fake.calls("DELETE"), 1);

    // The fake is strict, as the API is: an unknown id, or another org's, is 404.
    let http = Chainguard::http_client(std::time::Duration::from_secs(5));
    for id in [
        format!("{ORG_ID}/00000000000000ff"),
        format!("{}/0000000000000001", "b".repeat(40)),
    ] {
        let answer = http
            .delete(format!("{}/registry/v1/repos/{id}", fake.url))
            .bearer_auth(STATIC_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{id}");
    }
    // A 5xx is an error to retry (the queue's redrive), never success.
    fake.state.lock().unwrap().script.extend(std::iter::repeat_n(
        (
            "DELETE /registry/v1/repos/".to_string(),
            503,
            json!({"code": 14, "message": "down"}),
        ),
        4,
    ));
    cg.create_repo("redis", "redis").await.unwrap();
    assert!(matches!(
        cg.delete_repo("redis").await,
        Err(RegistryError::Retryable(_))
    ));
    assert_eq!(fake.repo_names(), ["redis"]);
}

#[tokio::test]
async fn not_found_is_an_empty_list_and_unknown_or_missing_fields_are_fine() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    assert_eq!(cg.find_repo("nginx").await.unwrap(), None);
    // A repo with fields the client has never heard of, and without tags or id.
    fake.state.lock().unwrap().repos.push(json!({
        "name": "nginx", "brandNewField": [1, 2], "sync_config": {"source": "nginx", "newKnob": "x"}
    }));
    let r = cg.find_repo("nginx").await.unwrap().unwrap();
    assert_eq!((r.name.as_str(), r.id.as_str(), r.tags.len()), ("nginx", "", 0));
    // Tags come from the tags API when the repo lists none.
    fake.state.lock().unwrap().repos[0]["id"] = json!(format!("{ORG_ID}/00000000000000aa"));
    let r = cg.find_repo("nginx").await.unwrap().unwrap();
    assert_eq!(r.tags, ["latest"]);
    assert_eq!(cg.org_repos().await.unwrap().len(), 1);
}

#[tokio::test]
async fn rate_limits_and_outages_are_retried_until_they_pass() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    let route = "POST /registry/v1/repos/";
    fake.script(route, 429, json!({"code": 8, "message": "rate limited"}));
    fake.script(route, 503, json!({"code": 14, "message": "unavailable"}));
    let repo = cg.create_repo("curl", "curl").await.unwrap();
    assert_eq!(repo.name, "curl");
    assert_eq!(fake.calls(route), 3);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_limit_and_leave_it_to_the_queue() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    let route = "POST /registry/v1/repos/";
    for _ in 0..4 {
        fake.script(route, 503, json!({"code": 14, "message": "unavailable"}));
    }
    let err = cg.create_repo("curl", "curl").await.unwrap_err();
    assert!(matches!(err, RegistryError::Retryable(_)), "{err:?}");
    assert_eq!(fake.calls(route), 4);
}

#[tokio::test]
async fn a_bad_request_is_permanent_with_chainguards_message() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    let route = "POST /registry/v1/repos/";
    fake.script(route, 400, json!({"code": 3, "message": "invalid repo name: Redis"}));
    let err = cg.create_repo("Redis", "Redis").await.unwrap_err();
    match err {
        RegistryError::Permanent(m) => assert!(m.contains("400") && m.contains("invalid repo name: Redis"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.calls(route), 1, "not retried");
}

#[tokio::test]
async fn an_org_at_its_repo_limit_is_permanent_not_retried() {
    let fake = FakeChainguard::start().await;
    fake.state.lock().unwrap().repo_limit = 0;
    let cg = client(&fake, static_token());
    let err = cg.create_repo("curl", "curl").await.unwrap_err();
    match err {
        RegistryError::Permanent(m) => assert!(m.contains("limit"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.calls("POST /registry/v1/repos/"), 1);
}

#[tokio::test]
async fn a_401_exchanges_a_new_token_once_then_gives_up() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, keyless());
    cg.org_repos().await.unwrap();
    assert_eq!(fake.calls("GET /sts/exchange"), 1);
    cg.org_repos().await.unwrap();
    assert_eq!(fake.calls("GET /sts/exchange"), 1, "the token is cached");

    fake.revoke_tokens();
    cg.org_repos().await.unwrap();
    assert_eq!(fake.calls("GET /sts/exchange"), 2, "refreshed after the 401");

    // A 401 that a fresh token does not cure is permanent, after exactly one refresh.
    fake.script(
        "GET /registry/v1/repos",
        401,
        json!({"code": 16, "message": "unauthenticated"}),
    );
    fake.script(
        "GET /registry/v1/repos",
        401,
        json!({"code": 16, "message": "unauthenticated"}),
    );
    let err = cg.org_repos().await.unwrap_err();
    assert!(matches!(err, RegistryError::Permanent(_)), "{err:?}");
    assert_eq!(fake.calls("GET /sts/exchange"), 3);
}

#[tokio::test]
async fn catalog_is_listed_once_then_cached_and_entitlements_are_read() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, static_token());
    let catalog = cg.catalog().await.unwrap();
    assert!(catalog.len() > 800 && catalog.contains("python"));
    assert_eq!(catalog.suggest("pyhton", 1), ["python"]);
    cg.catalog().await.unwrap();
    assert_eq!(fake.calls("GET /registry/v1/repos?uidp.childrenOf=720909c9"), 1);

    let e = cg.entitled("python").await.unwrap();
    assert_eq!((e.allowed, e.max_images), (None, None), "no image list, no maximum");
    fake.state.lock().unwrap().entitlements = json!({
        "plan": "CUSTOM", "maxTotalImages": "25",
        "activeImages": [{"id": "x", "name": "python", "catalogTier": "BASE"}]
    });
    let e = cg.entitled("python").await.unwrap();
    assert_eq!((e.allowed, e.max_images), (Some(true), Some(25)));
    assert_eq!(cg.entitled("nginx").await.unwrap().allowed, Some(false));
    // Early access: an org that cannot read them is not blocked.
    fake.script(
        "GET /registry/v1/entitlements",
        404,
        json!({"code": 5, "message": "not found"}),
    );
    assert_eq!(cg.entitled("nginx").await.unwrap().allowed, None);
}

#[tokio::test]
async fn the_token_exchange_sends_a_signed_get_caller_identity() {
    let fake = FakeChainguard::start().await;
    let cg = client(&fake, keyless());
    cg.org_repos().await.unwrap();
    let exchange = fake
        .log()
        .into_iter()
        .find(|r| r.path_and_query.starts_with("/sts/exchange"))
        .unwrap();
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(exchange.path_and_query.split_once('?').unwrap().1).unwrap();
    assert!(q.contains(&("aud".into(), fake.url.clone())), "{q:?}");
    assert!(q.contains(&("identity".into(), IDENTITY.into())), "{q:?}");
    let proof = exchange
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    assert!(!proof.contains('+') && !proof.contains('/'), "URL-safe alphabet");
    let text = String::from_utf8(base64::engine::general_purpose::URL_SAFE.decode(proof).unwrap()).unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("POST /?Action=GetCallerIdentity&Version=2011-06-15 HTTP/1.1")
    );
    assert!(text.ends_with("\r\n\r\n"), "a whole request with an empty body");
    let header = |name: &str| {
        text.split("\r\n")
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("host"), ["sts.amazonaws.com"]);
    assert_eq!(header("accept"), ["application/json"]);
    assert_eq!(header("chainguard-audience"), [fake.url.as_str()]);
    assert_eq!(header("chainguard-identity"), [IDENTITY]);
    assert_eq!(header("x-amz-security-token"), [SESSION_TOKEN]);
    assert_eq!(header("x-amz-date").len(), 1);
    let auth = header("authorization");
    assert_eq!(auth.len(), 1, "no duplicated headers");
    let auth = &auth[0];
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
    let signed = auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
    for h in [
        "chainguard-audience",
        "chainguard-identity",
        "host",
        "x-amz-date",
        "x-amz-security-token",
    ] {
        assert!(signed.split(';').any(|s| s == h), "{h} is not signed: {signed}");
    }
    assert!(!text.contains(SECRET_KEY), "the secret key never leaves");
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_proof_reaches_a_log_line() {
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeChainguard::start().await;
    let cg = client(&fake, keyless());
    cg.create_repo("go", "go").await.unwrap();
    fake.revoke_tokens();
    fake.script(
        "POST /registry/v1/repos/",
        503,
        json!({"code": 14, "message": "unavailable"}),
    );
    cg.create_repo("git", "git").await.unwrap();
    fake.script("POST /registry/v1/repos/", 400, json!({"code": 3, "message": "bad"}));
    let _ = cg.create_repo("bad", "bad").await;
    let static_cg = client(&fake, static_token());
    let _ = static_cg.org_repos().await;
    assert!(format!("{:?}", static_token()).contains("redacted"));

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("exchanged a Chainguard token"),
        "the test saw the logs: {logs}"
    );
    let proofs: Vec<String> = fake
        .log()
        .iter()
        .filter_map(|r| {
            r.header("authorization")
                .map(|a| a.trim_start_matches("Bearer ").to_string())
        })
        .collect();
    assert!(!proofs.is_empty());
    for secret in proofs
        .iter()
        .map(String::as_str)
        .chain([STATIC_TOKEN, SESSION_TOKEN, SECRET_KEY])
    {
        assert!(!logs.contains(secret), "a secret reached the logs: {secret}");
    }
}
