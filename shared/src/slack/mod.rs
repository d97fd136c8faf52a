//! Slack: the `/request-image` command, Approve / Deny buttons for approvers, and answers
//! to requesters where they asked. The HTTP handlers live in the intake and approval
//! functions; this module holds what they share.

pub mod client;
pub mod command;
pub mod verify;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::config::{ConfigError, SlackSettings};
use crate::domain::{Principal, Request, Status};
pub use client::{SlackClient, SlackError};

/// How long Slack honours a command's `response_url`.
pub const RESPONSE_URL_LIFETIME_MINUTES: i64 = 30;

pub struct Slack {
    pub settings: SlackSettings,
    pub client: SlackClient,
}

/// `&`, `<` and `>` escaped, so user text cannot mention or link in mrkdwn.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How a principal reads in Slack: a mention for Slack users.
pub fn who(p: &Principal) -> String {
    match p {
        Principal::Slack { user, .. } => format!("<@{user}>"),
        other => escape(&other.to_string()),
    }
}

pub fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": text })
}

impl Slack {
    pub fn from_settings(settings: &SlackSettings) -> Result<Slack, ConfigError> {
        if settings.secrets.signing_secret.is_empty() {
            return Err(ConfigError::Invalid(
                "Slack is configured without a signing secret (SLACK_SIGNING_SECRET, or `slack` in the secrets)".into(),
            ));
        }
        Ok(Slack {
            client: SlackClient::new(&settings.api_url, &settings.secrets.bot_token),
            settings: settings.clone(),
        })
    }

    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), verify::SlackAuthError> {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        verify::verify(
            self.settings.secrets.signing_secret.as_bytes(),
            h(verify::TIMESTAMP_HEADER),
            h(verify::SIGNATURE_HEADER),
            body,
            now.timestamp(),
        )
    }

    pub fn is_approver(&self, user_id: &str) -> bool {
        self.settings.approvers.iter().any(|a| a == user_id)
    }

    /// Tells a Slack requester: in the conversation they asked from while its
    /// `response_url` lives (30 minutes; each request uses it at most twice, under Slack's
    /// five), by direct message after that.
    pub async fn tell(&self, r: &Request, text: &str, now: DateTime<Utc>) -> Result<(), SlackError> {
        let Principal::Slack { user, .. } = &r.requester else {
            return Ok(());
        };
        let fresh = now - r.created_at < Duration::minutes(RESPONSE_URL_LIFETIME_MINUTES);
        match (&r.response_url, fresh) {
            (Some(url), true) => {
                let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
                self.client.respond(url, &body).await
            }
            _ => self.client.post_message(user, text, None).await.map(|_| ()),
        }
    }

    /// The approval message with Approve / Deny buttons, to the approvals channel.
    pub async fn post_approval(&self, r: &Request) -> Result<(), SlackError> {
        let Some(channel) = &self.settings.approvals_channel else {
            return Ok(());
        };
        let text = format!("Approval needed: {} for {}", r.image, r.requester);
        self.client
            .post_message(channel, &text, Some(&approval_blocks(r)))
            .await
            .map(|_| ())
    }
}

pub fn approval_blocks(r: &Request) -> Value {
    let env = r.environment.map_or("not given".to_string(), |e| e.to_string());
    let details = format!(
        "*Approval needed:* `{}`\n*Requested by:* {}\n*Environment:* {}\n*Why:* {}\n*Request:* `{}`",
        r.image,
        who(&r.requester),
        env,
        escape(r.justification.as_str()),
        r.id
    );
    let button = |id: &str, label: &str, style: &str, question: String| {
        json!({
            "type": "button",
            "action_id": id,
            "style": style,
            "text": { "type": "plain_text", "text": label },
            "value": r.id.to_string(),
            "confirm": {
                "title": { "type": "plain_text", "text": format!("{label}?") },
                "text": { "type": "mrkdwn", "text": question },
                "confirm": { "type": "plain_text", "text": label },
                "deny": { "type": "plain_text", "text": "Cancel" }
            }
        })
    };
    json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": details } },
        { "type": "actions", "block_id": "decision", "elements": [
            button("approve", "Approve", "primary", format!("Add `{}` to the organization's registry?", r.image)),
            button("deny", "Deny", "danger", format!("Deny `{}`? The requester is told.", r.image)),
        ]}
    ])
}

/// What replaces the buttons once the request is decided.
pub fn decided_text(r: &Request) -> String {
    let d = r.decision.as_ref();
    let by = d.map_or("someone".to_string(), |d| who(&d.by));
    let at = d.map_or(r.updated_at, |d| d.at).format("%Y-%m-%d %H:%M UTC");
    match (r.status, d) {
        (Status::Denied, Some(d)) => format!(
            "`{}` for {}: *denied* by {by} at {at}: {}",
            r.image,
            who(&r.requester),
            escape(d.reason.as_deref().unwrap_or(""))
        ),
        (_, Some(d)) if d.approved => format!("`{}` for {}: *approved* by {by} at {at}", r.image, who(&r.requester)),
        _ => format!("`{}` for {}: now {}", r.image, who(&r.requester), r.status),
    }
}
