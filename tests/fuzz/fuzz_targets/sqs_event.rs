//! What a queue consumer receives: any event JSON, and any message body, read to work
//! items or refused (never a panic); a work item's trace id is safe to log.
#![no_main]
use app::consumer::{work_item, MAX_TRACE_ID};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use libfuzzer_sys::fuzz_target;

fn check(m: &SqsMessage) {
    if let Ok(item) = work_item(m) {
        let t = &item.trace_id;
        assert!(!t.is_empty() && t.len() <= MAX_TRACE_ID && t.bytes().all(|b| b.is_ascii_graphic()));
        let again = serde_json::to_string(&item).unwrap();
        assert_eq!(serde_json::from_str::<app::ports::WorkItem>(&again).unwrap(), item);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<SqsEvent>(data) {
        event.records.iter().for_each(check);
    }
    if let Ok(body) = std::str::from_utf8(data) {
        let mut m = SqsMessage::default();
        m.body = Some(body.to_string());
        check(&m);
    }
});
