//! `/request-image` as Slack posts it: the form answers (never panics); a command that
//! parses carries an image that displays back to itself and a justification within bounds.
#![no_main]
use app::slack_payloads::{parse, Command, SlashCommand};
use libfuzzer_sys::fuzz_target;

fn check(text: &str) {
    if let Ok(Command::Request {
        image, justification, ..
    }) = parse(text)
    {
        assert_eq!(domain::ImageRef::parse(&image.to_string()).as_ref(), Ok(&image));
        assert!(justification.as_str().chars().count() <= domain::MAX_JUSTIFICATION_CHARS);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(cmd) = SlashCommand::from_form(data) {
        if let Some(who) = cmd.requester() {
            assert!(who.to_string().starts_with("slack:"));
        }
        check(&cmd.text);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
});
