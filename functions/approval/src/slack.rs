//! `POST /slack/interactions`: an approver's click on Approve or Deny in the approvals
//! channel. Signature first; then the clicking user must be a configured Slack approver;
//! then the same decision path as the email links. The message is replaced with who
//! decided and when, through the click's `response_url`, before answering `200`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use app::mrkdwn::{decided_text, who};
use app::App;
use domain::{Action, Channel, Principal, RequestId};
use http_api::{ApiError, SlackSigned};

use crate::{decide, DecideError};

#[derive(Deserialize)]
struct Form {
    payload: String,
}

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: User,
    #[serde(default)]
    team: Option<Team>,
    #[serde(default)]
    actions: Vec<Clicked>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct Team {
    id: String,
}

#[derive(Deserialize)]
struct Clicked {
    action_id: String,
    #[serde(default)]
    value: String,
}

pub async fn interaction(State(app): State<App>, signed: SlackSigned) -> Response {
    let SlackSigned { body } = signed;
    let parsed = serde_urlencoded::from_bytes::<Form>(&body)
        .ok()
        .and_then(|f| serde_json::from_str::<Interaction>(&f.payload).ok());
    let Some(i) = parsed else {
        return ApiError::bad_request("not a Slack interaction payload").into_response();
    };
    let Some(click) = i.actions.first().filter(|_| i.kind == "block_actions") else {
        return StatusCode::OK.into_response();
    };
    let approve = match click.action_id.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return StatusCode::OK.into_response(),
    };
    let Ok(id) = click.value.parse::<RequestId>() else {
        return ApiError::bad_request("the button carries no request id").into_response();
    };
    let team = i.team.map(|t| t.id).or(i.user.team_id).unwrap_or_default();
    let Ok(approver) = format!("slack:{team}/{}", i.user.id).parse::<Principal>() else {
        return ApiError::bad_request("Slack sent no usable team and user id").into_response();
    };
    let reply = |body: serde_json::Value| {
        let (chat, url) = (app.chat.clone(), i.response_url.clone());
        async move {
            if let (Some(chat), Some(url)) = (chat, url) {
                if let Err(e) = chat.respond(&url, &body).await {
                    tracing::error!(request_id = %id, error = %e, "could not update the Slack message");
                }
            }
        }
    };

    if !app.is_slack_approver(&i.user.id) {
        if let Ok(Some(r)) = app.store.get(id).await {
            let action = if approve { Action::Approve } else { Action::Deny };
            let change = app.change(action, approver.clone(), Channel::Slack, None);
            app.refuse(&r, &change, "not a Slack approver").await;
        }
        reply(json!({
            "response_type": "ephemeral",
            "replace_original": false,
            "text": format!("Only the configured approvers can decide; {} is not one of them.", who(&approver)),
        }))
        .await;
        return StatusCode::OK.into_response();
    }

    let reason = (!approve).then(|| "denied in Slack".to_string());
    match decide(&app, id, approver, approve, reason, Channel::Slack).await {
        Ok(r) => reply(json!({ "replace_original": true, "text": decided_text(&r) })).await,
        Err(DecideError::AlreadyDecided { .. }) => {
            // Someone was first (here or by email): show what stands, buttons gone.
            if let Ok(Some(r)) = app.store.get(id).await {
                reply(json!({ "replace_original": true, "text": decided_text(&r) })).await;
            }
        }
        Err(e) => {
            reply(json!({
                "response_type": "ephemeral",
                "replace_original": false,
                "text": format!("Not recorded: {}", e.message()),
            }))
            .await
        }
    }
    StatusCode::OK.into_response()
}
