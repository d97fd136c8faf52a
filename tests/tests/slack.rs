//! Slack end to end against a local fake of Slack: the slash command in every form,
//! signature refusals that store nothing, Approve / Deny buttons for approvers only, and
//! the requester told where they asked (or by direct message once the reply URL is old).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use app::config::{SlackSecrets, SlackSettings};
use chrono::Utc;
use domain::auth::slack::sign;
use pipeline_tests::fake_slack::{FakeSlack, BOT_TOKEN, SIGNING_SECRET};
use pipeline_tests::{start_full, ShiftedClock, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use slack::SlackClient;

const TEAM: &str = "T0TEAM";
const DEV: &str = "U0DEV";
const ADMIN: &str = "U0ADMIN";

async fn stack(fake: &FakeSlack, clock: Arc<ShiftedClock>) -> Stack {
    let api = fake.api_url();
    let hooks = fake.response_url("");
    start_full(
        move |c| {
            c.slack = Some(SlackSettings {
                api_url: api,
                response_url_base: hooks,
                approvals_channel: Some("C0APPROVALS".into()),
                approvers: vec![ADMIN.into()],
                // Commands from #dev vouch for `dev`; from anywhere else it is a claim.
                channel_environments: [("C0DEV".to_string(), vec![domain::Environment::Dev])].into(),
                secrets: SlackSecrets {
                    signing_secret: SIGNING_SECRET.into(),
                    bot_token: BOT_TOKEN.into(),
                },
            })
        },
        None,
        clock,
    )
    .await
}

/// Posts `body` as Slack would: form-encoded, signed at `ts`.
async fn slack_post(s: &Stack, path: &str, body: &str, ts: i64, secret: &str) -> (u16, Value) {
    let headers = vec![
        ("content-type", "application/x-www-form-urlencoded".to_string()),
        ("x-slack-request-timestamp", ts.to_string()),
        (
            "x-slack-signature",
            sign(secret.as_bytes(), &ts.to_string(), body.as_bytes()),
        ),
    ];
    s.raw(Method::POST, path, body.as_bytes().to_vec(), &headers).await
}

fn command_body(text: &str, user: &str, trigger: &str, response_url: &str) -> String {
    command_body_in("C0DEV", text, user, trigger, response_url)
}

fn command_body_in(channel: &str, text: &str, user: &str, trigger: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "deprecated-verification-token"),
        ("team_id", TEAM),
        ("team_domain", "example"),
        ("channel_id", channel),
        ("user_id", user),
        ("user_name", "dev"),
        ("command", "/request-image"),
        ("text", text),
        ("response_url", response_url),
        ("trigger_id", trigger),
        ("api_app_id", "A0APP"),
    ])
    .unwrap()
}

async fn command(s: &Stack, fake: &FakeSlack, text: &str, trigger: &str) -> String {
    let body = command_body(text, DEV, trigger, &fake.response_url(trigger));
    let (status, v) = slack_post(s, "/slack/commands", &body, Utc::now().timestamp(), SIGNING_SECRET).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    v["text"].as_str().unwrap().to_string()
}

fn request_id(text: &str) -> String {
    text.split('`')
        .find(|w| w.starts_with("req-"))
        .unwrap_or_else(|| panic!("no request id in {text}"))
        .to_string()
}

/// A click on a button of the approval message, in Slack's `block_actions` shape.
fn click_body(user: &str, action: &str, id: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": TEAM},
        "team": {"id": TEAM, "domain": "example"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "channel_id": "C0APPROVALS"},
        "trigger_id": "111.222.333",
        "channel": {"id": "C0APPROVALS"},
        "response_url": response_url,
        "actions": [{"action_id": action, "block_id": "decision", "value": id, "type": "button", "action_ts": "1795838400.1"}]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

async fn wait_calls(fake: &FakeSlack, prefix: &str, n: usize) -> Vec<pipeline_tests::fake_slack::Call> {
    for _ in 0..300 {
        let calls = fake.calls(prefix);
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} calls to {prefix}: {:?}", fake.calls(""));
}

#[tokio::test]
async fn every_command_form_answers_ephemerally_and_a_trigger_submits_once() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    assert!(command(&s, &fake, "help", "t0").await.contains("/request-image search"));
    assert!(command(&s, &fake, "", "t0").await.contains("Usage"));
    let found = command(&s, &fake, "search python", "t0").await;
    assert!(found.lines().nth(1).unwrap().contains("`python`"), "{found}");
    let bad = command(&s, &fake, "redis --env moon caching", "t0").await;
    assert!(bad.contains("moon") && bad.contains("Usage"), "{bad}");
    assert!(command(&s, &fake, "status req-nope", "t0").await.contains("request id"));
    assert_eq!(
        s.counts().await.requests,
        0,
        "nothing stored by help, search or mistakes"
    );

    let got = command(&s, &fake, "go --env dev Build images in CI", "t1").await;
    let id = request_id(&got);
    let again = command(&s, &fake, "go --env dev Build images in CI", "t1").await;
    assert!(again.contains(&id) && again.contains("Already received"), "{again}");
    assert_eq!(s.counts().await.requests, 1, "the same trigger never creates two");
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(v["requester"], format!("slack:{TEAM}/{DEV}"));
    assert_eq!(v["channel"], "slack");
    assert!(v.get("response_url").is_none(), "the reply URL is never shown: {v}");

    // The outcome reaches the conversation the command came from.
    let replies = wait_calls(&fake, "/response/t1", 1).await;
    assert!(replies[0].body["text"]
        .as_str()
        .unwrap()
        .contains("cgr.dev/example.com/go:latest"));
    assert_eq!(replies[0].body["response_type"], "ephemeral");

    let status = command(&s, &fake, &format!("status {id}"), "t2").await;
    assert!(
        status.contains("provisioned") && status.contains("docker pull"),
        "{status}"
    );
    // Someone else's request is not shown.
    let body = command_body(&format!("status {id}"), "U0OTHER", "t3", &fake.response_url("t3"));
    let (_, v) = slack_post(&s, "/slack/commands", &body, Utc::now().timestamp(), SIGNING_SECRET).await;
    assert!(v["text"].as_str().unwrap().contains("no request"), "{v}");

    // Slack's URL check.
    let (status, _) = slack_post(
        &s,
        "/slack/commands",
        "ssl_check=1&token=x",
        Utc::now().timestamp(),
        SIGNING_SECRET,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn forged_replayed_unsigned_and_oversized_commands_store_nothing() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    let body = command_body("go --env dev builds", DEV, "t9", &fake.response_url("t9"));
    let now = Utc::now().timestamp();
    let before = s.counts().await;
    assert_eq!(
        slack_post(&s, "/slack/commands", &body, now, "wrong-secret").await.0,
        401
    );
    assert_eq!(
        slack_post(&s, "/slack/commands", &body, now - 301, SIGNING_SECRET)
            .await
            .0,
        401
    );
    let (status, _) = s
        .raw(
            Method::POST,
            "/slack/commands",
            body.clone().into_bytes(),
            &[("content-type", "application/x-www-form-urlencoded".into())],
        )
        .await;
    assert_eq!(status, 401);
    let huge = command_body(&format!("go {}", "x".repeat(20_000)), DEV, "t9", "");
    assert_eq!(
        slack_post(&s, "/slack/commands", &huge, now, SIGNING_SECRET).await.0,
        413
    );
    let click = click_body(
        ADMIN,
        "approve",
        "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2",
        &fake.response_url("c"),
    );
    assert_eq!(
        slack_post(&s, "/slack/interactions", &click, now, "wrong-secret")
            .await
            .0,
        401
    );
    assert_eq!(s.counts().await, before);
    assert!(fake.calls("/response/").is_empty());
}

#[tokio::test]
async fn approvers_decide_with_buttons_and_others_cannot() {
    let fake = FakeSlack::start().await;
    let clock = Arc::new(ShiftedClock::default());
    let s = stack(&fake, clock.clone()).await;
    let id = request_id(&command(&s, &fake, "busybox Debug shell for staging", "t1").await);
    s.wait_for(&id, "pending_approval").await;

    // The approval message: details and two buttons with confirm dialogs.
    let posted = wait_calls(&fake, "/api/chat.postMessage", 1).await;
    let msg = &posted[0];
    assert_eq!(msg.authorization.as_deref(), Some(&*format!("Bearer {BOT_TOKEN}")));
    assert_eq!(msg.body["channel"], "C0APPROVALS");
    let blocks = msg.body["blocks"].to_string();
    assert!(
        blocks.contains("busybox:latest") && blocks.contains(&format!("<@{DEV}>")) && blocks.contains("Debug shell")
    );
    assert!(blocks.contains("*Registry:* 0 of 2,500 repositories used"), "{blocks}");
    let buttons = msg.body["blocks"][1]["elements"].as_array().unwrap();
    assert_eq!(buttons.len(), 2);
    assert!(buttons
        .iter()
        .all(|b| b["value"] == id.as_str() && b["confirm"].is_object()));

    // A click by someone who is not an approver changes nothing, is told so, and is audited.
    let now = Utc::now().timestamp();
    let click = click_body("U0INTRUDER", "approve", &id, &fake.response_url("c1"));
    assert_eq!(
        slack_post(&s, "/slack/interactions", &click, now, SIGNING_SECRET)
            .await
            .0,
        200
    );
    assert_eq!(s.get(&id).await["status"], "pending_approval");
    let told = fake.calls("/response/c1");
    assert_eq!(told[0].body["response_type"], "ephemeral");
    assert_eq!(told[0].body["replace_original"], false);
    let v = s.get(&id).await;
    assert_eq!(v["refused_attempts"][0]["actor"], format!("slack:{TEAM}/U0INTRUDER"));

    // Half an hour later the approver clicks Approve: the message shows who and when.
    clock.offset_secs.store(31 * 60, Ordering::SeqCst);
    // (Slack signs with its clock; the stack's has moved on, so sign at the stack's time.)
    let now = now + 31 * 60;
    let click = click_body(ADMIN, "approve", &id, &fake.response_url("c2"));
    assert_eq!(
        slack_post(&s, "/slack/interactions", &click, now, SIGNING_SECRET)
            .await
            .0,
        200
    );
    let replaced = fake.calls("/response/c2");
    assert_eq!(replaced[0].body["replace_original"], true);
    let text = replaced[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("approved") && text.contains(&format!("<@{ADMIN}>")),
        "{text}"
    );
    // The command's reply URL is past its 30 minutes: the requester gets a direct message.
    let dms: Vec<_> = wait_calls(&fake, "/api/chat.postMessage", 2)
        .await
        .into_iter()
        .filter(|c| c.body["channel"] == DEV)
        .collect();
    assert!(
        dms[0].body["text"].as_str().unwrap().contains("docker pull"),
        "{:?}",
        dms[0]
    );
    assert!(fake.calls("/response/t1").is_empty());
    clock.offset_secs.store(0, Ordering::SeqCst);
    let now = Utc::now().timestamp();
    let v = s.wait_for(&id, "provisioned").await;
    assert_eq!(v["decision"]["by"], format!("slack:{TEAM}/{ADMIN}"));
    assert_eq!(v["decision"]["channel"], "slack");

    // A second click, after the decision: nothing changes, the buttons are replaced.
    let click = click_body(ADMIN, "deny", &id, &fake.response_url("c3"));
    assert_eq!(
        slack_post(&s, "/slack/interactions", &click, now, SIGNING_SECRET)
            .await
            .0,
        200
    );
    assert_eq!(s.get(&id).await["status"], "provisioned");
    let text = fake.calls("/response/c3")[0].body["text"].as_str().unwrap().to_string();
    assert!(text.contains("*approved* by"), "{text}");
}

#[tokio::test]
async fn a_deny_click_tells_the_requester_why() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    let id = request_id(&command(&s, &fake, "nginx Reverse proxy", "t1").await);
    s.wait_for(&id, "pending_approval").await;
    let click = click_body(ADMIN, "deny", &id, &fake.response_url("c1"));
    slack_post(
        &s,
        "/slack/interactions",
        &click,
        Utc::now().timestamp(),
        SIGNING_SECRET,
    )
    .await;
    let v = s.wait_for(&id, "denied").await;
    assert_eq!(v["decision"]["reason"], "denied in Slack");
    let text = fake.calls("/response/c1")[0].body["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("denied") && text.contains(&format!("<@{ADMIN}>")),
        "{text}"
    );
    // The requester hears who denied it, when, and why.
    let told = wait_calls(&fake, "/response/t1", 1).await;
    let said = told[0].body["text"].as_str().unwrap();
    assert!(
        said.contains("Denied by slack:") && said.contains("> denied in Slack"),
        "{said}"
    );
}

#[tokio::test]
async fn the_slack_client_waits_out_rate_limits_and_gives_up_on_errors() {
    let fake = FakeSlack::start().await;
    let client = SlackClient::new(&fake.api_url(), BOT_TOKEN);
    fake.script(
        "/api/chat.postMessage",
        429,
        Some(1),
        json!({"ok": false, "error": "ratelimited"}),
    );
    fake.script("/api/chat.postMessage", 503, None, json!({}));
    let started = std::time::Instant::now();
    client.post_message("C1", "hello", None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(fake.calls("/api/chat.postMessage").len(), 3);

    fake.script(
        "/api/chat.postMessage",
        200,
        None,
        json!({"ok": false, "error": "channel_not_found"}),
    );
    let err = client.post_message("C404", "hello", None).await.unwrap_err();
    assert_eq!(err.to_string(), "Slack answered channel_not_found");
    assert_eq!(fake.calls("/api/chat.postMessage").len(), 4, "not retried");

    // A Retry-After longer than the client will wait is not waited out.
    fake.script("/api/chat.postMessage", 429, Some(120), json!({}));
    assert!(client.post_message("C1", "hello", None).await.is_err());
}

/// API Gateway hands the Lambda a form body base64-encoded: the signature is over the
/// decoded bytes, which is what the router sees.
#[tokio::test]
async fn a_base64_encoded_api_gateway_event_verifies_on_the_decoded_body() {
    use base64::Engine;
    use tower::ServiceExt;
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    let body = command_body(
        "go --env dev From the Lambda",
        DEV,
        "t-apigw",
        &fake.response_url("t-apigw"),
    );
    let ts = Utc::now().timestamp().to_string();
    let sig = sign(SIGNING_SECRET.as_bytes(), &ts, body.as_bytes());
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/intake-post-request.json"
    ))
    .unwrap();
    let mut e: Value = serde_json::from_str(&fixture).unwrap();
    e["rawPath"] = json!("/slack/commands");
    e["routeKey"] = json!("POST /slack/commands");
    e["requestContext"]["http"]["path"] = json!("/slack/commands");
    e["headers"] = json!({
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
    });
    e["isBase64Encoded"] = json!(true);
    e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    let req = lambda_http::request::from_str(&e.to_string()).unwrap();
    let resp = intake::router(s.running.app.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert!(v["text"].as_str().unwrap().contains("Got it"), "{v}");
    assert_eq!(s.counts().await.requests, 1);
}

#[tokio::test]
async fn a_users_own_env_dev_outside_a_vouching_channel_goes_to_the_approvers() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    // Any user, any channel not mapped to `dev`: the claim is kept, never counted.
    let body = command_body_in(
        "C0RANDOM",
        "redis --env dev caching",
        DEV,
        "t1",
        &fake.response_url("t1"),
    );
    let (_, v) = slack_post(&s, "/slack/commands", &body, Utc::now().timestamp(), SIGNING_SECRET).await;
    let id = request_id(v["text"].as_str().unwrap());
    let v = s.wait_for(&id, "pending_approval").await;
    assert_eq!(v["environment"], "dev");
    assert!(v.get("environment_vouched_by").is_none(), "{v}");
    // The approvers see it for what it is.
    let mail = s.approval_mail(&id, "platform-admin@example.com").await;
    assert!(mail.contains("dev (claimed, not verified)"), "{mail}");
    let posted = wait_calls(&fake, "/api/chat.postMessage", 1).await;
    assert!(
        posted[0].body.to_string().contains("claimed, not verified"),
        "{:?}",
        posted[0].body
    );
    // From the channel that vouches, the same command is approved by the policy.
    let got = command(&s, &fake, "nginx --env dev caching", "t2").await;
    let v = s.wait_for(&request_id(&got), "provisioned").await;
    assert_eq!(v["environment_vouched_by"], "Slack channel C0DEV");
}

#[tokio::test]
async fn asking_in_slack_for_an_image_already_asked_for_joins_it_and_the_outcome_comes_by_dm() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    let id = s.submit("postgres", None).await;
    s.wait_for(&id, "pending_approval").await;
    let reply = command(&s, &fake, "postgres reporting for the data team", "t9").await;
    assert!(
        reply.contains("already asked for") && reply.contains("You joined it") && reply.contains(&id),
        "{reply}"
    );
    let v = s.get(&id).await;
    assert_eq!(v["watchers"][0]["channel"], "slack", "{v}");
    let (status, _) = s
        .admin
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/decision"),
            Some(&json!({"decision": "approve", "reason": "fine"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    s.wait_for(&id, "provisioned").await;
    // The watcher asked from Slack: told there, by direct message.
    for _ in 0..300 {
        let dm = fake
            .calls("/api/chat.postMessage")
            .into_iter()
            .find(|c| c.body["channel"] == DEV && c.body.to_string().contains("docker pull"));
        if let Some(dm) = dm {
            assert!(dm.body.to_string().contains("Approved by"), "{:?}", dm.body);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no direct message to the watcher: {:?}", fake.calls(""));
}

#[tokio::test]
async fn a_removal_asked_in_slack_reaches_the_approvers_with_who_asked_first() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    let added = s.submit("redis", Some("dev")).await;
    s.wait_for(&added, "provisioned").await;
    let reply = command(&s, &fake, "remove redis No service uses it since March", "t5").await;
    assert!(reply.starts_with("Got it: removing `redis` asked for as"), "{reply}");
    let id = request_id(&reply);
    let v = s.wait_for(&id, "pending_approval").await;
    assert_eq!((&v["kind"], &v["channel"]), (&json!("remove"), &json!("slack")));
    let posted = wait_calls(&fake, "/api/chat.postMessage", 1).await;
    let message = posted[0].body.to_string();
    assert!(
        message.contains("*remove* `redis`")
            && message.contains("First asked for by")
            && message.contains("Remove `redis` from"),
        "{message}"
    );
}

#[tokio::test]
async fn the_requester_rates_from_the_buttons_under_their_answer_and_nobody_else_can() {
    let fake = FakeSlack::start().await;
    let s = stack(&fake, Arc::default()).await;
    // Asked from #dev for dev: approved by policy, the answer comes where they asked.
    let id = request_id(&command(&s, &fake, "go --env dev Build tool", "t1").await);
    s.wait_for(&id, "provisioned").await;
    let told = wait_calls(&fake, "/response/t1", 1).await;
    let answer = told
        .iter()
        .find(|c| c.body["blocks"].is_array())
        .expect("an answer with buttons");
    assert!(answer.body["text"].as_str().unwrap().contains("docker pull"));
    let actions = answer.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap();
    let ids: Vec<&str> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rate_up", "rate_down"]);
    assert!(actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["value"] == id.as_str()));

    // Someone else's click records nothing and says why.
    let now = Utc::now().timestamp();
    let click = click_body(ADMIN, "rate_down", &id, &fake.response_url("r1"));
    assert_eq!(
        slack_post(&s, "/slack/interactions", &click, now, SIGNING_SECRET)
            .await
            .0,
        200
    );
    let said = fake.calls("/response/r1")[0].body["text"].as_str().unwrap().to_string();
    assert!(said.starts_with("Not recorded: only whoever asked"), "{said}");
    // The requester's click is recorded, in the trail, answered to them alone.
    let click = click_body(DEV, "rate_up", &id, &fake.response_url("r2"));
    assert_eq!(
        slack_post(&s, "/slack/interactions", &click, now, SIGNING_SECRET)
            .await
            .0,
        200
    );
    let said = &fake.calls("/response/r2")[0].body;
    assert_eq!(said["response_type"], "ephemeral");
    assert!(said["text"].as_str().unwrap().contains("is recorded"), "{said}");
    let v = s.get(&id).await;
    let last = v["audit"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["action"].as_str(),
            last["actor"].as_str(),
            last["channel"].as_str()
        ),
        (Some("rate_up"), Some(&*format!("slack:{TEAM}/{DEV}")), Some("slack"))
    );
    assert_eq!(v["status"], "provisioned");
}

#[tokio::test]
async fn when_the_reply_address_fails_the_requester_gets_a_direct_message() {
    let fake = FakeSlack::start().await;
    // Slack refuses the command's reply address (used up, or revoked) the first time.
    fake.script("/response/t1", 404, None, json!({"ok": false, "error": "used_url"}));
    let s = stack(&fake, Arc::default()).await;
    let id = request_id(&command(&s, &fake, "go --env dev Build tool", "t1").await);
    s.wait_for(&id, "provisioned").await;
    let dms: Vec<_> = wait_calls(&fake, "/api/chat.postMessage", 1)
        .await
        .into_iter()
        .filter(|c| c.body["channel"] == DEV)
        .collect();
    let dm = dms.first().expect("a direct message to the requester");
    assert!(
        dm.body["text"].as_str().unwrap().contains("docker pull"),
        "{:?}",
        dm.body
    );
    assert!(
        dm.body["blocks"].to_string().contains("rate_up"),
        "the buttons come too"
    );
    assert_eq!(fake.calls("/response/t1").len(), 1, "the failed answer, once");
}

#[tokio::test]
async fn when_the_reply_address_and_the_direct_message_both_fail_the_notice_is_undeliverable() {
    let fake = FakeSlack::start().await;
    // Every try (five deliveries of the notice): the reply address refused, and the
    // direct message too.
    for _ in 0..5 {
        fake.script("/response/t3", 404, None, json!({"ok": false, "error": "used_url"}));
        fake.script(
            "/api/chat.postMessage",
            200,
            None,
            json!({"ok": false, "error": "channel_not_found"}),
        );
    }
    let s = stack(&fake, Arc::default()).await;
    let id = request_id(&command(&s, &fake, "go --env dev Build tool", "t3").await);
    s.wait_for(&id, "provisioned").await;
    s.settle().await;
    assert_eq!(fake.calls("/response/t3").len(), 5, "tried on every delivery");
    let undelivered = s.running.app.audit.undeliverable(id.parse().unwrap()).await.unwrap();
    assert_eq!(undelivered.len(), 1, "{undelivered:?}");
    assert_eq!(undelivered[0].channel, "chat");
    assert_eq!(undelivered[0].to, format!("slack:{TEAM}/{DEV}"));
    assert!(
        undelivered[0].why.contains("channel_not_found"),
        "{}",
        undelivered[0].why
    );
    // The mail of the same outcome went, once.
    let mails = s
        .outbox()
        .await
        .into_iter()
        .filter(|(name, _)| name.contains(&id) && name.contains("outcome"))
        .count();
    assert_eq!(mails, 1);
}
