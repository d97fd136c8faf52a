//! archive: the audit table's stream (new images) into the write-once archive, through
//! `app::archive::archive_events`, the code the embedded backend's archiver runs too.
//! Each record on its own: a record that fails is reported (partial batch failure) and
//! delivered again; one archived already writes nothing.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use app::archive::{archive_events, Archive};
use domain::AuditEvent;

/// An audit event from a stream record's new image; `None` for what is not an event (a
/// refused attempt or an undeliverable notice, kept beside the chain under
/// `refused#<id>` and `undelivered#<id>`, or a record without a new image).
pub fn event(record: &EventRecord) -> Result<Option<AuditEvent>, String> {
    let image = &record.change.new_image;
    let is_event = image
        .get("request_id")
        .and_then(|v| match v {
            serde_dynamo::AttributeValue::S(s) => Some(!s.contains('#')),
            _ => None,
        })
        .unwrap_or(false);
    if !is_event {
        return Ok(None);
    }
    serde_dynamo::from_item(image.clone())
        .map(Some)
        .map_err(|e| format!("a new image that is not an audit event: {e}"))
}

/// One stream batch.
pub async fn handle(archive: &dyn Archive, batch: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &batch.records {
        let done = match event(record) {
            Ok(None) => Ok(()),
            Ok(Some(e)) => archive_events(archive, std::slice::from_ref(&e))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        if let Err(why) = done {
            tracing::error!(sequence = ?record.change.sequence_number, error = why, "could not archive a record");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            // Records after a failure are delivered again anyway (the stream keeps its
            // order from the first failure on): stop here.
            break;
        }
    }
    response
}
