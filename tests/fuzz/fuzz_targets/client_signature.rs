//! Client signature headers and bodies as an attacker sends them: verification answers
//! (never panics) and accepts nothing it did not sign.
#![no_main]
use domain::auth::client::{sign, verify, Signing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (ts, sig, ct, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let what = Signing {
        method: "POST",
        path: "/requests",
        content_type: ct,
        idempotency_key: "",
    };
    let now = 1_800_000_000;
    if verify(b"the-secret", ts, sig, what, body.as_bytes(), now).is_ok() {
        // Only the real MAC over exactly these parts verifies.
        let ts: i64 = ts.parse().unwrap();
        assert_eq!(sig, sign(b"the-secret", ts, what, body.as_bytes()));
    }
});
