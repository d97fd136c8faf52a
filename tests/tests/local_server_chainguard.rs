//! The local server provisions through the Chainguard API when started with an org and a
//! token, as the README shows. (Its own test binary: it sets CHAINGUARD_TOKEN.)

use app::config::{ChainguardSettings, Settings};
use cgr_request::server::{start, Options};
use pipeline_tests::fake_chainguard::{FakeChainguard, ORG_ID, STATIC_TOKEN};

#[tokio::test]
async fn serve_uses_the_api_with_an_org_and_a_token_and_says_what_is_missing_without() {
    let fake = FakeChainguard::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().into(),
        org_name: "acme.dev".into(),
        chainguard: Some(ChainguardSettings {
            org_id: ORG_ID.into(),
            api_url: fake.url.clone(),
            issuer_url: fake.url.clone(),
            identity: None,
        }),
        ..Settings::default()
    };
    std::env::remove_var("CHAINGUARD_TOKEN");
    let err = format!("{:#}", start(settings.clone(), Options::default()).await.err().unwrap());
    assert!(err.contains("CHAINGUARD_TOKEN"), "{err}");

    std::env::set_var("CHAINGUARD_TOKEN", STATIC_TOKEN);
    let running = start(settings, Options::default()).await.unwrap();
    let creds = &running.app.settings.clients;
    let dev = creds.iter().find(|c| !c.admin).unwrap();
    let api = cgr_request::client::ApiClient::new(&format!("http://{}", running.addr), &dev.id, &dev.secret);
    let body = serde_json::json!({"image": "go", "justification": "builds", "environment": "dev"});
    let (_, v) = api
        .call(reqwest::Method::POST, "/requests", Some(&body), &[])
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        last = api
            .call(reqwest::Method::GET, &format!("/requests/{id}"), None, &[])
            .await
            .unwrap()
            .1;
        if last["status"] == "provisioned" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["result"]["pull_string"], "cgr.dev/acme.dev/go:latest", "{last:#}");
    assert_eq!(fake.repo_names(), ["go"]);
}
