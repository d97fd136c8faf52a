//! Turning an SQS batch into per-message work: each record is parsed on its own, and
//! only the records whose work failed retryably are reported back, so SQS redelivers
//! exactly those (`ReportBatchItemFailures`).

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::Instrument;

use crate::ports::WorkItem;
use crate::workflow::StepError;

/// The delivery's attempt number, from SQS's `ApproximateReceiveCount`.
pub fn receive_count(m: &aws_lambda_events::event::sqs::SqsMessage) -> u32 {
    m.attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

pub async fn process_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(WorkItem, u32) -> Fut,
    Fut: Future<Output = Result<(), StepError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let attempt = receive_count(&record);
        let item = match record.body.as_deref().map(serde_json::from_str::<WorkItem>) {
            Some(Ok(item)) => item,
            other => {
                // Unreadable messages go to the dead letters for a person to look at.
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "no body".into(),
                };
                tracing::error!(message_id, error = why, "unreadable queue message");
                response.add_failure(message_id);
                continue;
            }
        };
        let span = tracing::info_span!("message", request_id = %item.request_id, trace_id = %item.trace_id, attempt);
        match handle(item, attempt).instrument(span.clone()).await {
            Ok(()) => {}
            Err(StepError::Retryable(why)) => {
                span.in_scope(|| tracing::warn!(error = why, "will be delivered again"));
                response.add_failure(message_id);
            }
            Err(StepError::Permanent(why)) => {
                // The handler recorded what it could on the request: do not bounce it.
                span.in_scope(|| tracing::error!(error = why, "permanent failure"));
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn record(id: &str, body: &str, count: u32) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.attributes.insert("ApproximateReceiveCount".into(), count.to_string());
        m
    }

    #[tokio::test]
    async fn only_retryable_and_unreadable_records_are_reported() {
        let item = |n: &str| format!(r#"{{"request_id":"req-01JD3XQ4Z8K9M2N5P7R8S0T1V{n}","trace_id":"t"}}"#);
        let mut event = SqsEvent::default();
        event.records = vec![
            record("ok", &item("1"), 1),
            record("retry", &item("2"), 3),
            record("perm", &item("3"), 1),
            record("junk", "{", 1),
        ];
        let resp = process_batch(event, |w, attempt| async move {
            match w.request_id.to_string().chars().last() {
                Some('2') => {
                    assert_eq!(attempt, 3);
                    Err(StepError::Retryable("busy".into()))
                }
                Some('3') => Err(StepError::Permanent("gone".into())),
                _ => Ok(()),
            }
        })
        .await;
        let ids: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["retry", "junk"]);
    }
}
