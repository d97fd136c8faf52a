//! `POST /slack/commands`: the `/request-image` slash command. Slack's signature is
//! checked on the raw body before anything is read; every answer a user should see is an
//! ephemeral message with `200` (Slack shows nothing useful for other statuses), well
//! inside Slack's 3-second deadline: a request is stored and queued, never processed here.

use app::mrkdwn::{ephemeral, escape};
use app::ports::QueueName;
use app::slack_payloads::{self as payloads, Command, SlashCommand, USAGE};
use app::workflow::Submitted;
use app::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{Channel, NewRequest, Principal, Request, RequestId};
use http_api::SlackSigned;

/// `/request-image`, as Slack posts it: every answer is `200` with a message for the user
/// alone, in Slack's format.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/slack/commands", tag = "slack",
    request_body(content_type = "application/x-www-form-urlencoded",
        description = "Slack's slash-command form (`team_id`, `user_id`, `channel_id`, `text`, `response_url`, `trigger_id`, …)"),
    responses(
        (status = 200, description = "A message for the user who typed it", body = crate::openapi::SlackMessage),
        (status = 404, description = "Slack is not configured here", body = http_api::openapi::ErrorBody),
    ),
    security(("slack_signature" = [])),
))]
pub async fn command(State(app): State<App>, signed: SlackSigned) -> Response {
    let body = signed.body;
    let Some(cmd) = SlashCommand::from_form(&body) else {
        return say("I could not read that command.");
    };
    if cmd.ssl_check.is_some() {
        return StatusCode::OK.into_response();
    }
    let Some(requester) = cmd.requester() else {
        return say("Slack sent no usable team and user id.");
    };
    let text = match payloads::parse(&cmd.text) {
        Err(why) => format!("{}\n\n{USAGE}", escape(&why)),
        Ok(Command::Help) => USAGE.to_string(),
        Ok(Command::Search(word)) => search(&app, &word).await,
        Ok(Command::Status(id)) => status(&app, id, &requester, &cmd.user_id).await,
        Ok(Command::Request {
            kind,
            image,
            environment,
            justification,
        }) => {
            // The channel vouches (as configured), never the user's `--env`.
            let environment_vouched_by = environment
                .filter(|e| {
                    app.settings
                        .slack
                        .as_ref()
                        .and_then(|s| s.channel_environments.get(&cmd.channel_id))
                        .is_some_and(|envs| envs.contains(e))
                })
                .map(|_| format!("Slack channel {}", cmd.channel_id));
            let new = NewRequest {
                kind,
                image,
                requester,
                justification,
                environment,
                environment_vouched_by,
                channel: Channel::Slack,
                // Slash commands are not retried, but a double submit must not ask twice.
                idempotency_key: (!cmd.trigger_id.is_empty()).then(|| format!("slack:trigger:{}", cmd.trigger_id)),
            };
            submit(&app, new, &cmd.response_url).await
        }
    };
    say(&text)
}

fn say(text: &str) -> Response {
    (StatusCode::OK, Json(ephemeral(text))).into_response()
}

async fn submit(app: &App, new: NewRequest, response_url: &str) -> String {
    let (mut request, event) = Request::submit(new, RequestId::new(), app.clock.now());
    request.response_url = (!response_url.is_empty()).then(|| response_url.to_string());
    match app.submit(&request, &event, None).await {
        Ok(Submitted::Existing(r)) => format!("Already received as `{}` ({}).", r.id, r.status()),
        Ok(Submitted::Joined(r)) => format!(
            "`{}` was already asked for by {}: request `{}` is *{}*. You joined it, and I will tell you when it is decided; `/request-image status {}` shows where it stands.",
            r.image.name(),
            escape(&r.requester.to_string()),
            r.id,
            r.status(),
            r.id
        ),
        Ok(Submitted::Opposed(r)) => format!(
            "`{}` has an open request to {} it (`{}`, {}): ask again when that one has ended.",
            r.image.name(),
            r.kind,
            r.id,
            r.status_words()
        ),
        Ok(Submitted::New(r)) => {
            tracing::info!(request_id = %r.id, image = %r.image, requester = %r.requester, "request received from Slack");
            if let Err(e) = app.enqueue(QueueName::Validate, r.id, &r.id.to_string()).await {
                tracing::error!(request_id = %r.id, error = %e, "could not queue for validation; the sweep will");
            }
            let what = match r.kind.is_add() {
                true => format!("`{}`", r.image),
                false => format!("removing `{}`", r.image.name()),
            };
            format!(
                "Got it: {what} asked for as `{}`. I will tell you here when it is decided; `/request-image status {}` shows where it stands.",
                r.id, r.id
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store a Slack request");
            "Something went wrong storing your request; please try again in a minute.".into()
        }
    }
}

async fn search(app: &App, word: &str) -> String {
    match app.registry.catalog().await {
        Ok(c) => {
            let found = c.search(word, 10);
            if found.is_empty() {
                format!("No catalog image matches `{}`.", escape(word))
            } else {
                let lines: Vec<String> = found.iter().map(|n| format!("• `{n}`")).collect();
                format!(
                    "Catalog images matching `{}`, best first:\n{}",
                    escape(word),
                    lines.join("\n")
                )
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "catalog unavailable for a Slack search");
            "The catalog is unavailable right now; please try again in a minute.".into()
        }
    }
}

/// Requesters see their own requests; Slack approvers see any.
async fn status(app: &App, id: RequestId, asker: &Principal, user_id: &str) -> String {
    let may_see = |r: &Request| r.asked_by(asker) || app.is_slack_approver(user_id);
    match app.store.get(id).await {
        Ok(Some(r)) if may_see(&r) => {
            let mut text = format!("`{}`: `{}` is *{}*", r.id, r.image, r.status());
            if let Some(res) = &r.result {
                text += &format!("\nPull it with `docker pull {}`", res.pull_string);
            }
            if let Some(o) = &r.outcome {
                text += &format!("\n{}", escape(o));
            }
            text
        }
        Ok(_) => format!("You have no request `{id}`."),
        Err(e) => {
            tracing::error!(error = %e, "store unavailable for a Slack status");
            "Requests cannot be read right now; please try again in a minute.".into()
        }
    }
}
