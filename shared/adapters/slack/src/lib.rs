//! The Slack adapter: the chat port over Slack's Web API (`chat.postMessage`) and a
//! command's `response_url`. What the messages say lives in the app crate (`mrkdwn`);
//! the routes that receive Slack's calls live in intake and approval.

pub mod client;

use std::sync::Arc;

use app::config::{ConfigError, Settings, SlackSettings};
use app::mrkdwn;
use app::ports::{Chat, ChatError};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::{Principal, Request};
use serde_json::json;

pub use client::{SlackClient, SlackError, CALL_BUDGET};

/// How long Slack honours a command's `response_url`.
pub const RESPONSE_URL_LIFETIME_MINUTES: i64 = 30;

pub struct Slack {
    pub settings: SlackSettings,
    pub client: SlackClient,
}

/// The chat port the settings ask for: Slack where it is configured.
pub fn from_settings(settings: &Settings) -> Result<Option<Arc<dyn Chat>>, ConfigError> {
    let Some(s) = &settings.slack else {
        return Ok(None);
    };
    if s.secrets.signing_secret.is_empty() {
        return Err(ConfigError::Invalid(
            "Slack is configured without a signing secret (SLACK_SIGNING_SECRET, or `slack` in the secrets)".into(),
        ));
    }
    Ok(Some(Arc::new(Slack::new(s))))
}

impl From<SlackError> for ChatError {
    fn from(e: SlackError) -> Self {
        match e {
            SlackError::Api(m) => ChatError::Refused(m),
            SlackError::Unavailable(m) => ChatError::Unavailable(m),
        }
    }
}

impl Slack {
    pub fn new(settings: &SlackSettings) -> Slack {
        Slack {
            client: SlackClient::new(&settings.api_url, &settings.secrets.bot_token)
                .with_response_url_base(&settings.response_url_base),
            settings: settings.clone(),
        }
    }
}

#[async_trait]
impl Chat for Slack {
    /// In the conversation they asked from while its `response_url` lives (30 minutes;
    /// each request uses it at most twice, under Slack's five), by direct message after, or
    /// when the reply address fails.
    async fn tell(&self, r: &Request, text: &str, now: DateTime<Utc>) -> Result<(), ChatError> {
        let Principal::Slack { user, .. } = &r.requester else {
            return Ok(());
        };
        let fresh = now - r.created_at < Duration::minutes(RESPONSE_URL_LIFETIME_MINUTES);
        // An outcome with a pull string carries 👍 / 👎 (`text` stays the notification's).
        let blocks = mrkdwn::outcome_blocks(r, text);
        match (&r.response_url, fresh) {
            (Some(url), true) => {
                let mut body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
                if let Some(b) = &blocks {
                    body["blocks"] = b.clone();
                }
                match self.client.respond(url, &body).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::warn!(request_id = %r.id, error = %e, "the reply address failed; sending a direct message");
                        Ok(self
                            .client
                            .post_message(user, text, blocks.as_ref())
                            .await
                            .map(|_| ())?)
                    }
                }
            }
            _ => Ok(self
                .client
                .post_message(user, text, blocks.as_ref())
                .await
                .map(|_| ())?),
        }
    }

    async fn post_approval(&self, r: &Request) -> Result<(), ChatError> {
        let Some(channel) = &self.settings.approvals_channel else {
            return Ok(());
        };
        let text = format!("Approval needed: {} for {}", r.image, r.requester);
        self.client
            .post_message(channel, &text, Some(&mrkdwn::approval_blocks(r)))
            .await?;
        Ok(())
    }

    async fn respond(&self, reply_to: &str, body: &serde_json::Value) -> Result<(), ChatError> {
        Ok(self.client.respond(reply_to, body).await?)
    }
}
