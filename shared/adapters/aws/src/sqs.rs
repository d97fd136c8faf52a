//! The work queues on SQS. Messages carry the request id and trace id as message
//! attributes too, so they can be read (and filtered) without parsing the body.

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;

use crate::QueueUrls;
use app::consumer::{Delivery, MessageSource};
use app::ports::{Queue, QueueError, QueueName, WorkItem};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

fn attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .expect("data type is set")
}

impl SqsQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        SqsQueue { client, urls }
    }

    pub fn url(&self, q: QueueName) -> &str {
        match q {
            QueueName::Validate => &self.urls.validate,
            QueueName::Provision => &self.urls.provision,
            QueueName::Notify => &self.urls.notify,
        }
    }

    fn dlq(&self, q: QueueName) -> Option<&str> {
        match q {
            QueueName::Validate => self.urls.validate_dlq.as_deref(),
            QueueName::Provision => self.urls.provision_dlq.as_deref(),
            QueueName::Notify => self.urls.notify_dlq.as_deref(),
        }
    }

    async fn count(&self, url: &str) -> Result<usize, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| QueueError(e.into_service_error().to_string()))?;
        let attrs = out.attributes.unwrap_or_default();
        let n = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: QueueName, item: &WorkItem) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(self.url(queue))
            .message_body(serde_json::to_string(item).expect("work items serialise"))
            .message_attributes("request_id", attr(&item.request_id.to_string()))
            .message_attributes("trace_id", attr(&item.trace_id))
            .send()
            .await
            .map_err(|e| QueueError(e.into_service_error().to_string()))?;
        Ok(())
    }

    async fn retry_in(&self, queue: QueueName, receipt: &str, after: std::time::Duration) -> Result<(), QueueError> {
        // SQS's longest visibility is 12 hours.
        let secs = after.as_secs().min(12 * 3600) as i32;
        self.client
            .change_message_visibility()
            .queue_url(self.url(queue))
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| QueueError(e.into_service_error().to_string()))?;
        Ok(())
    }
}

/// Moves every message from one queue to another: received (hidden for a minute), sent
/// on, then deleted, ten at a time, until a receive finds none. At least once: a crash
/// between a send and its delete leaves a copy in both, which the consumers' idempotence
/// absorbs. (SQS's `StartMessageMoveTask` does the same server-side; no emulator here
/// speaks it, and this is what the tests can hold.)
pub async fn move_messages(client: &Client, from: &str, to: &str) -> Result<usize, QueueError> {
    let err = |e: String| QueueError(e);
    let mut moved = 0;
    loop {
        let got = client
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| err(e.into_service_error().to_string()))?
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            return Ok(moved);
        }
        for m in got {
            client
                .send_message()
                .queue_url(to)
                .message_body(m.body.unwrap_or_default())
                .send()
                .await
                .map_err(|e| err(e.into_service_error().to_string()))?;
            client
                .delete_message()
                .queue_url(from)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .map_err(|e| err(e.into_service_error().to_string()))?;
            moved += 1;
        }
    }
}

#[async_trait]
impl MessageSource for SqsQueue {
    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(self.url(queue))
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| QueueError(e.into_service_error().to_string()))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let get = |k: MessageSystemAttributeName| attrs.get(&k).and_then(|v| v.parse().ok());
                Delivery {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count: get(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1) as u32,
                    sent_at_ms: get(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                }
            })
            .collect())
    }

    async fn delete(&self, queue: QueueName, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(self.url(queue))
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| QueueError(e.into_service_error().to_string()))?;
        Ok(())
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<usize, QueueError> {
        match self.dlq(queue) {
            Some(url) => self.count(url).await,
            None => Ok(0),
        }
    }

    async fn redrive(&self, queue: QueueName) -> Result<usize, QueueError> {
        let Some(dlq) = self.dlq(queue) else {
            return Err(QueueError(format!("no dead-letter queue is named for {queue}")));
        };
        move_messages(&self.client, dlq, self.url(queue)).await
    }

    async fn depth(&self, queue: QueueName) -> Result<usize, QueueError> {
        self.count(self.url(queue)).await
    }
}
