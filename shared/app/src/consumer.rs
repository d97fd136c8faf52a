//! Turning an SQS batch into per-message work: each record is parsed on its own, and
//! only the records whose work failed retryably are reported back, so SQS redelivers
//! exactly those (`ReportBatchItemFailures`).

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::Instrument;

use crate::ports::{QueueError, QueueName, WorkItem};
use crate::workflow::StepError;

/// A message handed to a consumer; `receipt` deletes it, and only this delivery of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at_ms: i64,
}

/// Where the local server (and the tests) pull messages from when no Lambda event
/// source mapping does it for them: the embedded queue, or SQS.
#[async_trait]
pub trait MessageSource: Send + Sync {
    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<Delivery>, QueueError>;
    async fn delete(&self, queue: QueueName, receipt: &str) -> Result<(), QueueError>;
    /// Messages in the queue's dead letters.
    async fn dead_letters(&self, queue: QueueName) -> Result<usize, QueueError>;
    /// Messages waiting or in flight.
    async fn depth(&self, queue: QueueName) -> Result<usize, QueueError>;
    /// Moves the queue's dead letters back onto it (`cgr-request admin redrive`): how many
    /// moved. Consumers start from the status they find, so a message whose request has
    /// meanwhile ended changes nothing.
    async fn redrive(&self, queue: QueueName) -> Result<usize, QueueError>;
}

/// Deliveries as the `SqsEvent` Lambda would receive.
pub fn to_sqs_event(deliveries: &[Delivery]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for d in deliveries {
        let mut m = SqsMessage::default();
        m.message_id = Some(d.message_id.clone());
        m.receipt_handle = Some(d.receipt.clone());
        m.body = Some(d.body.clone());
        m.attributes
            .insert("ApproximateReceiveCount".into(), d.receive_count.to_string());
        m.attributes.insert("SentTimestamp".into(), d.sent_at_ms.to_string());
        event.records.push(m);
    }
    event
}

/// One turn of an event source mapping: receive a batch, hand it to the handler, delete
/// what it did not report failed (the rest comes back after the visibility timeout).
/// Returns how many messages were handled.
pub async fn pump<F, Fut>(source: &dyn MessageSource, queue: QueueName, handler: F) -> Result<usize, QueueError>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let deliveries = source.receive(queue, 10).await?;
    if deliveries.is_empty() {
        return Ok(0);
    }
    let response = handler(to_sqs_event(&deliveries)).await;
    let failed: HashSet<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    for d in &deliveries {
        if !failed.contains(&d.message_id) {
            if let Err(e) = source.delete(queue, &d.receipt).await {
                tracing::error!(queue = queue.as_str(), error = %e, "delete failed; the message will be delivered again");
            }
        }
    }
    Ok(deliveries.len())
}

/// The delivery's attempt number, from SQS's `ApproximateReceiveCount`.
pub fn receive_count(m: &aws_lambda_events::event::sqs::SqsMessage) -> u32 {
    m.attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Which delivery of its message a record is, and the receipt that hands it back early
/// or late (`Queue::retry_in`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub attempt: u32,
    pub receipt: String,
}

pub async fn process_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(WorkItem, Delivered) -> Fut,
    Fut: Future<Output = Result<(), StepError>>,
{
    process_batch_within(event, Budget::unbounded(), handle).await
}

/// What an invocation has to work in: when it must have answered (the Lambda's deadline)
/// and the longest one record may take. A record that could not finish before the
/// deadline is not started, and one that overruns its time is given up: both are
/// reported failed, so SQS delivers them again (every step is idempotent), instead of
/// the whole batch dying with the function's timeout.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub deadline: Option<Instant>,
    pub per_record: Option<Duration>,
}

/// Kept back from the deadline to send the batch response.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(2);

impl Budget {
    pub fn unbounded() -> Self {
        Budget {
            deadline: None,
            per_record: None,
        }
    }

    /// From a Lambda invocation's deadline (milliseconds since the epoch).
    pub fn lambda(deadline_epoch_ms: u64, per_record: Duration) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let left = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
        Budget {
            deadline: Some(Instant::now() + left),
            per_record: Some(per_record),
        }
    }

    /// Whether a record started now could use all its time and still leave the margin.
    fn fits(&self) -> bool {
        match (self.deadline, self.per_record) {
            (Some(d), Some(r)) => Instant::now() + r + ANSWER_MARGIN <= d,
            (Some(d), None) => Instant::now() + ANSWER_MARGIN <= d,
            _ => true,
        }
    }
}

/// The longest trace id a message may carry: it is logged with every line of its work.
pub const MAX_TRACE_ID: usize = 128;

/// Reads a record's body as the work it names; the error says why it cannot be worked on.
pub fn work_item(record: &SqsMessage) -> Result<WorkItem, String> {
    let body = record.body.as_deref().ok_or("no body")?;
    let item: WorkItem = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let t = &item.trace_id;
    if t.is_empty() || t.len() > MAX_TRACE_ID || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the trace id must be 1 to {MAX_TRACE_ID} visible ASCII characters"
        ));
    }
    Ok(item)
}

/// [`process_batch`] inside a [`Budget`].
/// The failpoint `consumer.before_delete` (a no-op unless a build enables failpoints).
fn dies_before_answering() -> bool {
    crate::failpoint!("consumer.before_delete", true);
    false
}

pub async fn process_batch_within<F, Fut>(event: SqsEvent, budget: Budget, handle: F) -> SqsBatchResponse
where
    F: Fn(WorkItem, Delivered) -> Fut,
    Fut: Future<Output = Result<(), StepError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        if !budget.fits() {
            tracing::warn!(
                message_id,
                "no time left in this invocation; the message will be delivered again"
            );
            response.add_failure(message_id);
            continue;
        }
        let attempt = receive_count(&record);
        let item = match work_item(&record) {
            Ok(item) => item,
            Err(why) => {
                // Unreadable messages go to the dead letters for a person to look at.
                tracing::error!(message_id, error = why, "unreadable queue message");
                response.add_failure(message_id);
                continue;
            }
        };
        let span = tracing::info_span!("message", request_id = %item.request_id, trace_id = %item.trace_id, attempt);
        let delivered = Delivered {
            attempt,
            receipt: record.receipt_handle.clone().unwrap_or_default(),
        };
        let work = handle(item, delivered).instrument(span.clone());
        let outcome = match budget.per_record {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(StepError::Retryable(format!("gave up after {limit:?}")))),
            None => work.await,
        };
        match outcome {
            // The work done, the process dies before its answer: the message stays.
            Ok(()) if dies_before_answering() => response.add_failure(message_id),
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
        let resp = process_batch(event, |w, d| async move {
            match w.request_id.to_string().chars().last() {
                Some('2') => {
                    assert_eq!(d.attempt, 3);
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

    #[test]
    fn a_body_names_a_request_and_a_loggable_trace() {
        let body = |trace: &str| serde_json::json!({"request_id": "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2", "trace_id": trace});
        let ok = work_item(&record("m", &body("req-01JD3XQ4Z8K9M2N5P7R8S0T1V2").to_string(), 1)).unwrap();
        assert_eq!(ok.request_id.to_string(), "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2");
        for bad in ["", "a\nfake log line", &"x".repeat(MAX_TRACE_ID + 1)] {
            let e = work_item(&record("m", &body(bad).to_string(), 1)).unwrap_err();
            assert!(e.contains("trace id"), "{e}");
        }
        let extra = r#"{"request_id":"req-01JD3XQ4Z8K9M2N5P7R8S0T1V2","trace_id":"t","x":1}"#;
        assert!(work_item(&record("m", extra, 1)).unwrap_err().contains("unknown field"));
        assert_eq!(work_item(&SqsMessage::default()).unwrap_err(), "no body");
    }

    fn batch(n: usize) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = (0..n)
            .map(|i| {
                record(
                    &format!("m{i}"),
                    &format!(r#"{{"request_id":"req-01JD3XQ4Z8K9M2N5P7R8S0T1V{i}","trace_id":"t"}}"#),
                    1,
                )
            })
            .collect();
        event
    }

    // Paused time: the clock moves only when every task waits, so these hold on any machine.
    #[tokio::test(start_paused = true)]
    async fn a_record_over_its_time_is_given_up_and_the_rest_still_run() {
        let budget = Budget {
            deadline: Some(Instant::now() + Duration::from_secs(60)),
            per_record: Some(Duration::from_secs(10)),
        };
        let started = std::sync::Mutex::new(vec![]);
        let resp = process_batch_within(batch(3), budget, |w, _| {
            let id = w.request_id.to_string();
            started.lock().unwrap().push(id.clone());
            async move {
                if id.ends_with('0') {
                    // A call that never answers.
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        })
        .await;
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m0"]);
        assert_eq!(started.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn records_that_cannot_finish_before_the_deadline_are_not_started() {
        // 25 s each inside 60 s: two fit with the margin, the third is handed back.
        let budget = Budget {
            deadline: Some(Instant::now() + Duration::from_secs(60)),
            per_record: Some(Duration::from_secs(25)),
        };
        let started = std::sync::Mutex::new(0);
        let resp = process_batch_within(batch(3), budget, |_, _| {
            *started.lock().unwrap() += 1;
            async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                Ok(())
            }
        })
        .await;
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m2"]);
        assert_eq!(*started.lock().unwrap(), 2);
    }

    #[test]
    fn a_lambda_deadline_becomes_the_time_left() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let b = Budget::lambda(now_ms + 30_000, Duration::from_secs(20));
        let left = b.deadline.unwrap() - Instant::now();
        assert!(
            left <= Duration::from_secs(30) && left > Duration::from_secs(20),
            "{left:?}"
        );
        // A deadline already past leaves nothing: no record starts.
        assert!(!Budget::lambda(now_ms - 1, Duration::from_secs(1)).fits());
    }
}
