//! Approval tokens from a link's path: verification answers, never panics, and accepts
//! only tokens signed with the key.
#![no_main]
use chrono::TimeZone;
use domain::auth::token::TokenKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = TokenKeys {
        active: "k1".into(),
        keys: [("k1".to_string(), "a-secret-of-at-least-thirty-two-bytes".to_string())].into(),
    };
    let now = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(claims) = keys.verify(token, now) {
            assert_eq!(keys.sign(&claims), token, "only what the key signed verifies");
        }
    }
});
