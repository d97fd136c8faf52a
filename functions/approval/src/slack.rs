//! `POST /slack/interactions`: an approver's click on Approve or Deny in the approvals
//! channel. Signature first; then the clicking user must be a configured Slack approver;
//! then the same decision path as the email links. The message is replaced with who
//! decided and when, through the click's `response_url`, before answering `200`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use app::mrkdwn::{decided_text, who};
use app::slack_payloads::{self as payloads, Click, Interaction};
use app::App;
use domain::{Action, Channel};
use http_api::{ApiError, SlackSigned};

use crate::{decide, DecideError};

#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/slack/interactions", tag = "slack",
    request_body(content_type = "application/x-www-form-urlencoded",
        description = "Slack's interaction form: `payload`, the click as JSON"),
    responses(
        (status = 200, description = "Taken; the message is updated through the click's `response_url`"),
        (status = 404, description = "Slack is not configured here", body = http_api::openapi::ErrorBody),
    ),
    security(("slack_signature" = [])),
))]
pub async fn interaction(State(app): State<App>, signed: SlackSigned) -> Response {
    let Click {
        approve,
        id,
        approver,
        user_id,
        response_url,
    } = match payloads::interaction(&signed.body) {
        Ok(Interaction::Decide(click)) => click,
        Ok(Interaction::Rate(click)) => return rate(&app, click).await,
        Ok(Interaction::Ignored) => return StatusCode::OK.into_response(),
        Err(why) => return ApiError::bad_request(why).into_response(),
    };
    let reply = |body: serde_json::Value| {
        let (chat, url) = (app.chat.clone(), response_url.clone());
        async move {
            if let (Some(chat), Some(url)) = (chat, url) {
                if let Err(e) = chat.respond(&url, &body).await {
                    tracing::error!(request_id = %id, error = %e, "could not update the Slack message");
                }
            }
        }
    };

    if !app.is_slack_approver(&user_id) {
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

/// A requester's (or watcher's) 👍 or 👎 on their outcome message: recorded, and answered
/// to them alone.
async fn rate(app: &App, click: Click) -> Response {
    let text = match app
        .rate(click.id, &click.approver, click.approve, None, Channel::Slack)
        .await
    {
        Ok(_) => format!(
            "Thank you: your {} for `{}` is recorded. Click again to change it.",
            if click.approve { "👍" } else { "👎" },
            click.id
        ),
        Err(e) => format!("Not recorded: {e}"),
    };
    if let (Some(chat), Some(url)) = (&app.chat, &click.response_url) {
        let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
        if let Err(e) = chat.respond(url, &body).await {
            tracing::error!(request_id = %click.id, error = %e, "could not answer a rating in Slack");
        }
    }
    StatusCode::OK.into_response()
}
