//! validate and provision on the Chainguard API (the local fake of it): the catalog and
//! "did you mean" from the API, entitlements, the pull string from the org's name, and
//! Chainguard's own message shown when it refuses.

use pipeline_tests::fake_chainguard::{FakeChainguard, ORG_ID};
use pipeline_tests::start_with;
use serde_json::json;

#[tokio::test]
async fn requests_are_validated_and_provisioned_through_the_chainguard_api() {
    let fake = FakeChainguard::start().await;
    let s = start_with(|c| c.org_name = "acme.dev".into(), Some(fake.client(None))).await;

    let go = s.submit("go", Some("dev")).await;
    let v = s.wait_for(&go, "provisioned").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/acme.dev/go:latest");
    assert_eq!(v["result"]["tags"], json!(["latest", "latest-dev"]));
    assert!(v["result"]["repo_id"].as_str().unwrap().starts_with(ORG_ID));
    assert_eq!(fake.repo_names(), ["go"]);

    let typo = s.submit("pyhton", Some("dev")).await;
    let v = s.wait_for(&typo, "rejected").await;
    assert_eq!(v["suggestions"][0], "python");

    let again = s.submit("go", Some("dev")).await;
    let v = s.wait_for(&again, "already_available").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/acme.dev/go:latest");

    // Chainguard refuses: the request fails with its message, and the requester reads it.
    fake.script(
        "POST /registry/v1/repos/",
        400,
        json!({"code": 9, "message": "source image curl is not syncable"}),
    );
    let curl = s.submit("curl", Some("dev")).await;
    let v = s.wait_for(&curl, "failed").await;
    assert!(
        v["outcome"]
            .as_str()
            .unwrap()
            .contains("source image curl is not syncable"),
        "{}",
        v["outcome"]
    );
    s.settle().await;
    assert!(s
        .outbox()
        .await
        .iter()
        .any(|(n, t)| n.contains(&curl) && n.contains("outcome") && t.contains("not syncable")));

    // The plan lists what the org may add.
    fake.state.lock().unwrap().entitlements = json!({"activeImages": [{"name": "go"}, {"name": "git"}]});
    let nginx = s.submit("nginx", Some("dev")).await;
    let v = s.wait_for(&nginx, "rejected").await;
    assert!(v["outcome"].as_str().unwrap().contains("plan"), "{}", v["outcome"]);
    let git = s.submit("git", Some("dev")).await;
    s.wait_for(&git, "provisioned").await;
    assert_eq!(fake.repo_names(), ["go", "git"]);
}

#[tokio::test]
async fn tags_are_checked_against_the_catalog_images_tags_from_the_api() {
    let fake = FakeChainguard::start().await;
    fake.state.lock().unwrap().catalog_tags.insert(
        "go".into(),
        vec!["latest".into(), "latest-dev".into(), "1.24".into(), "1.24-dev".into()],
    );
    let s = start_with(|c| c.org_name = "acme.dev".into(), Some(fake.client(None))).await;

    let old = s.submit("go:1.23", Some("dev")).await;
    let v = s.wait_for(&old, "rejected").await;
    assert!(
        v["outcome"].as_str().unwrap().contains("has no tag `1.23`"),
        "{}",
        v["outcome"]
    );
    assert_eq!(v["suggestions"][0], "go:1.24");
    assert!(fake.repo_names().is_empty());
    let asked = fake
        .log()
        .iter()
        .filter(|r| {
            r.path_and_query
                .starts_with("/registry/v1/tags?uidp.childrenOf=720909c9f5279097d847ad02a2f24ba8f59de36a%2F")
        })
        .count();
    assert_eq!(
        asked,
        1,
        "the catalog image's own tags were read: {:?}",
        fake.log().iter().map(|r| &r.path_and_query).collect::<Vec<_>>()
    );

    let go = s.submit("go:1.24", Some("dev")).await;
    let v = s.wait_for(&go, "provisioned").await;
    assert_eq!(v["result"]["pull_string"], "cgr.dev/acme.dev/go:1.24");
}

#[tokio::test]
async fn removals_delete_through_the_api_retrying_a_5xx_and_counting_a_404_as_done() {
    let fake = FakeChainguard::start().await;
    let s = start_with(
        |c| {
            c.org_name = "acme.dev".into();
            c.policy.auto_approve_removals = vec!["*".into()];
        },
        Some(fake.client(None)),
    )
    .await;
    for image in ["go", "git"] {
        let id = s.submit(image, Some("dev")).await;
        s.wait_for(&id, "provisioned").await;
    }
    let remove = |image: &str| {
        let body =
            json!({"image": image, "justification": "unused", "kind": "remove", "requester": "email:ops@example.com"});
        let s = &s;
        async move { s.submit_for(body).await }
    };

    // A 503 on the delete is retried, and the repo goes.
    fake.script(
        "DELETE /registry/v1/repos/",
        503,
        json!({"code": 14, "message": "unavailable"}),
    );
    let (_, v) = remove("go").await;
    let v = s.wait_for(v["id"].as_str().unwrap(), "provisioned").await;
    assert_eq!(fake.repo_names(), ["git"]);
    assert_eq!(fake.calls("DELETE /registry/v1/repos/"), 2, "one 503, then the delete");
    let last = v["audit"].as_array().unwrap().last().unwrap().clone();
    assert!(last["reason"].as_str().unwrap().ends_with("deleted"), "{last}");

    // A 404: gone already (someone in the Console, or another delivery), so done.
    fake.script(
        "DELETE /registry/v1/repos/",
        404,
        json!({"code": 5, "message": "not found"}),
    );
    let (_, v) = remove("git").await;
    let v = s.wait_for(v["id"].as_str().unwrap(), "provisioned").await;
    let last = v["audit"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "`git` was no longer in the org: nothing to delete");

    // The fake deletes strictly: a repo of another org, or none, is 404.
    let ours = fake
        .log()
        .iter()
        .rev()
        .find(|r| r.method == "DELETE")
        .unwrap()
        .path_and_query
        .clone();
    assert!(ours.starts_with(&format!("/registry/v1/repos/{ORG_ID}/")), "{ours}");
}

#[tokio::test]
async fn a_plan_with_a_lower_repo_maximum_is_the_limit() {
    let fake = FakeChainguard::start().await;
    fake.state.lock().unwrap().entitlements = json!({"maxTotalImages": "1"});
    fake.state
        .lock()
        .unwrap()
        .repos
        .push(json!({"id": format!("{ORG_ID}/0000000000000001"), "name": "go"}));
    let s = start_with(|_| {}, Some(fake.client(None))).await;
    let id = s.submit("git", Some("dev")).await;
    let v = s.wait_for(&id, "rejected").await;
    assert!(
        v["outcome"].as_str().unwrap().contains("limit of 1"),
        "{}",
        v["outcome"]
    );
}
