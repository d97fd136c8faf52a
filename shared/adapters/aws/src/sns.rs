//! Notifications on SNS. Approval requests and approver alerts go to the approvals topic
//! with an `approver` attribute: each approver's email subscription has a filter policy
//! `{"approver": ["<their address>"]}`, so each admin receives only the message carrying
//! their own links. Outcomes go to the notifications topic with `channel`, `status` and
//! `requester` attributes for subscribers (email, Slack, a PR bot) to filter on.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use app::ports::{Message, MessageKind, Notifier, NotifyError};

#[derive(Clone)]
pub struct SnsNotifier {
    client: Client,
    approvals_topic: String,
    notifications_topic: String,
}

fn attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .expect("data type is set")
}

/// SNS subjects: at most 100 characters, ASCII-printable, no line breaks.
pub fn subject(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect();
    if clean.len() > 100 {
        format!("{}...", &clean[..97])
    } else {
        clean
    }
}

impl SnsNotifier {
    pub fn new(client: Client, approvals_topic: &str, notifications_topic: &str) -> Self {
        SnsNotifier {
            client,
            approvals_topic: approvals_topic.into(),
            notifications_topic: notifications_topic.into(),
        }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn send(&self, m: &Message) -> Result<(), NotifyError> {
        let kind = serde_json::to_value(m.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut req = self
            .client
            .publish()
            .subject(subject(&m.subject))
            .message(&m.text)
            .message_attributes("kind", attr(&kind))
            .message_attributes("request_id", attr(&m.request_id.to_string()))
            .message_attributes("status", attr(m.status.as_str()));
        // What a subscriber deduplicates on: the one duplicate possible is a crash between
        // this publish and its record (app::outbox).
        if !m.id.is_empty() {
            req = req.message_attributes("notification_id", attr(&m.id));
        }
        req = match m.kind {
            MessageKind::ApprovalRequest | MessageKind::ApproverAlert => req
                .topic_arn(&self.approvals_topic)
                .message_attributes("approver", attr(&m.to)),
            MessageKind::Outcome => req
                .topic_arn(&self.notifications_topic)
                .message_attributes("requester", attr(&m.to))
                .message_attributes("channel", attr(&m.channel.to_string())),
        };
        req.send()
            .await
            .map_err(|e| NotifyError(e.into_service_error().to_string()))?;
        tracing::info!(request_id = %m.request_id, kind, "published");
        Ok(())
    }
}
