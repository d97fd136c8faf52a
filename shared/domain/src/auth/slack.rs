//! Slack's request signatures (v0): HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the
//! app's signing secret, compared in constant time, timestamps at most 5 minutes off.

pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const MAX_SKEW_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackAuthError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("the Slack timestamp is not a number")]
    BadTimestamp,
    #[error("the Slack timestamp is more than 5 minutes off: a replay, or a wrong clock")]
    Stale,
    #[error("the Slack signature does not match the body")]
    Mismatch,
}

/// `v0=<hex>` for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(super::tag(secret, &[b"v0:", timestamp.as_bytes(), b":", body]))
    )
}

pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SlackAuthError> {
    let ts = timestamp.ok_or(SlackAuthError::Missing(TIMESTAMP_HEADER))?;
    let sig = signature.ok_or(SlackAuthError::Missing(SIGNATURE_HEADER))?;
    let at: i64 = ts.parse().map_err(|_| SlackAuthError::BadTimestamp)?;
    // `abs_diff`: no overflow for timestamps at the ends of the range.
    if now.abs_diff(at) > MAX_SKEW_SECS as u64 {
        return Err(SlackAuthError::Stale);
    }
    let given = sig
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SlackAuthError::Mismatch)?;
    if super::tag_matches(secret, &[b"v0:", ts.as_bytes(), b":", body], &given) {
        Ok(())
    } else {
        Err(SlackAuthError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's own example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies_with_the_clock_at_its_time() {
        assert_eq!(sign(SECRET.as_bytes(), TS, BODY.as_bytes()), SIG);
        let at = 1531420618;
        assert_eq!(
            verify(SECRET.as_bytes(), Some(TS), Some(SIG), BODY.as_bytes(), at + 60),
            Ok(())
        );
    }

    #[test]
    fn replays_forgeries_and_missing_headers_are_refused() {
        let at = 1531420618;
        let v = |ts: Option<&str>, sig: Option<&str>, body: &str, now: i64| {
            verify(SECRET.as_bytes(), ts, sig, body.as_bytes(), now)
        };
        assert_eq!(v(Some(TS), Some(SIG), BODY, at + 301), Err(SlackAuthError::Stale));
        assert_eq!(v(Some(TS), Some(SIG), BODY, at - 301), Err(SlackAuthError::Stale));
        let changed = BODY.replace("roadrunner", "coyote");
        assert_eq!(v(Some(TS), Some(SIG), &changed, at), Err(SlackAuthError::Mismatch));
        assert_eq!(
            v(None, Some(SIG), BODY, at),
            Err(SlackAuthError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            v(Some(TS), None, BODY, at),
            Err(SlackAuthError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(v(Some("soon"), Some(SIG), BODY, at), Err(SlackAuthError::BadTimestamp));
        assert_eq!(v(Some(TS), Some("v0=00"), BODY, at), Err(SlackAuthError::Mismatch));
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
            assert_eq!(
                verify(SECRET.as_bytes(), Some(&ts), Some(SIG), BODY.as_bytes(), 1_000),
                Err(SlackAuthError::Stale)
            );
        }
    }
}
