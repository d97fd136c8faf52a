//! An approver's click as Slack posts it (`payload=<JSON>`): reading it answers (never
//! panics), and a decision names a real request id and a Slack principal.
#![no_main]
use app::slack_payloads::{interaction, Interaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Interaction::Decide(c)) = interaction(data) {
        assert!(c.approver.to_string().starts_with("slack:"));
        assert_eq!(c.id.to_string().parse::<domain::RequestId>().ok(), Some(c.id));
    }
});
