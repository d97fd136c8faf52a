//! Slack's v0 signature headers: verification answers and never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (ts, sig, body) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let _ = domain::auth::slack::verify(b"signing-secret", ts, sig, body.as_bytes(), 1_800_000_000);
});
