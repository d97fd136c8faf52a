//! HMAC-SHA256 request signatures for API clients (CLI, forms, CI).
//!
//! A client sends `X-Client-Id`, `X-Timestamp` (Unix seconds) and
//! `X-Signature: v2=<hex>` where the MAC, keyed by the client's secret, covers
//! `v2:<timestamp>:<METHOD>:<path and query>:<Content-Type>:<Idempotency-Key>:` followed
//! by the raw body (an absent header is empty). Binding the method, path and headers
//! means a captured signature cannot be replayed against another route, with another
//! body type, or under another idempotency key; intake makes each signature good for one
//! request (the request's id is derived from it).

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

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Everything a signature covers but the body. Headers the request does not send are "".
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub path: &'a str,
    pub content_type: &'a str,
    pub idempotency_key: &'a str,
}

impl Signing<'_> {
    /// What the MAC covers before the raw body.
    fn prefix(&self, timestamp: &str) -> String {
        let Signing {
            method,
            path,
            content_type,
            idempotency_key,
        } = self;
        format!("v2:{timestamp}:{method}:{path}:{content_type}:{idempotency_key}:")
    }
}

/// The `X-Signature` value for a request.
pub fn sign(secret: &[u8], timestamp: i64, what: Signing<'_>, body: &[u8]) -> String {
    let tag = super::tag(secret, &[what.prefix(&timestamp.to_string()).as_bytes(), body]);
    format!("v2={}", hex::encode(tag))
}

/// Checks the timestamp window, then the MAC in constant time. Answers the timestamp.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    what: Signing<'_>,
    body: &[u8],
    now: i64,
) -> Result<i64, SignatureError> {
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: no overflow for timestamps at the ends of the range.
    if now.abs_diff(ts) > REPLAY_WINDOW_SECS as u64 {
        return Err(SignatureError::Stale(now.saturating_sub(ts)));
    }
    let given = signature
        .strip_prefix("v2=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    if super::tag_matches(secret, &[what.prefix(timestamp).as_bytes(), body], &given) {
        Ok(ts)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>(content_type: &'a str, key: &'a str) -> Signing<'a> {
        Signing {
            method: "POST",
            path: "/requests",
            content_type,
            idempotency_key: key,
        }
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let json = post("application/json", "");
        let sig = sign(b"s3cret", 1_700_000_000, json, b"{}");
        assert_eq!(
            verify(b"s3cret", "1700000000", &sig, json, b"{}", 1_700_000_010),
            Ok(1_700_000_000)
        );
        let other_path = Signing {
            path: "/catalog",
            ..json
        };
        for (secret, what, body) in [
            (&b"other"[..], json, &b"{}"[..]),
            (b"s3cret", other_path, b"{}"),
            (b"s3cret", json, b"{ }"),
            // The same bytes as another type, or under an idempotency key: not the same call.
            (b"s3cret", post("text/plain", ""), b"{}"),
            (b"s3cret", post("", ""), b"{}"),
            (b"s3cret", post("application/json", "k1"), b"{}"),
        ] {
            assert_eq!(
                verify(secret, "1700000000", &sig, what, body, 1_700_000_010),
                Err(SignatureError::Mismatch)
            );
        }
        // The first version, which covered neither header, is not accepted.
        assert_eq!(
            verify(
                b"s3cret",
                "1700000000",
                &sig.replace("v2=", "v1="),
                json,
                b"{}",
                1_700_000_010
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_future_and_extreme_timestamps_are_refused() {
        let get = Signing {
            method: "GET",
            path: "/x",
            content_type: "",
            idempotency_key: "",
        };
        let sig = sign(b"k", 1_000, get, b"");
        assert_eq!(
            verify(b"k", "1000", &sig, get, b"", 1_301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(b"k", "1000", &sig, get, b"", 699),
            Err(SignatureError::Stale(-301))
        );
        assert_eq!(
            verify(b"k", "soon", &sig, get, b"", 1_000),
            Err(SignatureError::BadTimestamp)
        );
        // No overflow at the ends of the range.
        for ts in [i64::MIN, i64::MAX] {
            assert!(matches!(
                verify(b"k", &ts.to_string(), &sig, get, b"", 1_000),
                Err(SignatureError::Stale(_))
            ));
        }
        assert!(matches!(
            verify(b"k", "1000", &sig, get, b"", i64::MIN),
            Err(SignatureError::Stale(_))
        ));
    }
}
