//! HMAC-SHA256 request signatures for API clients (CLI, forms, CI).
//!
//! A client sends `X-Client-Id`, `X-Timestamp` (Unix seconds) and
//! `X-Signature: v1=<hex>` where the MAC, keyed by the client's secret, covers
//! `v1:<timestamp>:<METHOD>:<path and query>:` followed by the raw body. Binding the
//! method and path means a captured signature cannot be replayed against another route.

pub const CLIENT_HEADER: &str = "x-client-id";
pub const TIMESTAMP_HEADER: &str = "x-timestamp";
pub const SIGNATURE_HEADER: &str = "x-signature";
/// How far a request's timestamp may be from the server's clock.
pub const REPLAY_WINDOW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header: sign requests as described in the README (\"Authenticating API calls\")")]
    Missing(&'static str),
    #[error("unknown client id")]
    UnknownClient,
    #[error("X-Timestamp must be Unix seconds")]
    BadTimestamp,
    #[error("request timestamp is {0} s away from the server clock (at most {REPLAY_WINDOW_SECS} s allowed): check the clock, then sign again")]
    Stale(i64),
    #[error("signature does not match")]
    Mismatch,
}

/// What the MAC covers: `v1:<timestamp>:<METHOD>:<path>:` then the raw body.
fn prefix(timestamp: &str, method: &str, path: &str) -> String {
    format!("v1:{timestamp}:{method}:{path}:")
}

/// The `X-Signature` value for a request.
pub fn sign(secret: &[u8], timestamp: i64, method: &str, path: &str, body: &[u8]) -> String {
    let tag = super::tag(secret, &[prefix(&timestamp.to_string(), method, path).as_bytes(), body]);
    format!("v1={}", hex::encode(tag))
}

/// Checks the timestamp window, then the MAC in constant time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now - ts;
    if skew.abs() > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let given = signature
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    if super::tag_matches(secret, &[prefix(timestamp, method, path).as_bytes(), body], &given) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let sig = sign(b"s3cret", 1_700_000_000, "POST", "/requests", b"{}");
        assert_eq!(
            verify(b"s3cret", "1700000000", &sig, "POST", "/requests", b"{}", 1_700_000_010),
            Ok(())
        );
        for (secret, path, body) in [
            (&b"other"[..], "/requests", &b"{}"[..]),
            (b"s3cret", "/catalog", b"{}"),
            (b"s3cret", "/requests", b"{ }"),
        ] {
            assert_eq!(
                verify(secret, "1700000000", &sig, "POST", path, body, 1_700_000_010),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let sig = sign(b"k", 1_000, "GET", "/x", b"");
        assert_eq!(
            verify(b"k", "1000", &sig, "GET", "/x", b"", 1_301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(b"k", "1000", &sig, "GET", "/x", b"", 699),
            Err(SignatureError::Stale(-301))
        );
        assert_eq!(
            verify(b"k", "soon", &sig, "GET", "/x", b"", 1_000),
            Err(SignatureError::BadTimestamp)
        );
    }
}
