//! Request ids: `req-` followed by a ULID, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(ulid::Ulid);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a request id: ids look like req-01JD3XQ4Z8K9M2N5P7R8S0T1V2")]
pub struct BadRequestId(String);

impl RequestId {
    pub fn new() -> Self {
        RequestId(ulid::Ulid::new())
    }

    pub fn from_ulid(u: ulid::Ulid) -> Self {
        RequestId(u)
    }

    /// The id a signed submission gets: its time from the signed timestamp, its random
    /// part from the signature. The same signed bytes sent twice name the same request,
    /// so the store's "no such id yet" condition is what makes a signature single-use.
    pub fn derived(unix_secs: i64, seed: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed);
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        let ms = u64::try_from(unix_secs).unwrap_or(0).saturating_mul(1000);
        RequestId(ulid::Ulid::from_parts(ms, u128::from_be_bytes(random)))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for RequestId {
    type Err = BadRequestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRequestId(s.chars().take(64).collect());
        let rest = s.strip_prefix("req-").ok_or_else(bad)?;
        if rest.len() != 26 {
            return Err(bad());
        }
        ulid::Ulid::from_string(rest).map(RequestId).map_err(|_| bad())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req-{}", self.0)
    }
}

impl TryFrom<String> for RequestId {
    type Error = BadRequestId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RequestId> for String {
    fn from(r: RequestId) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_by_time() {
        let a = RequestId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = RequestId::new();
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<RequestId>().unwrap(), a);
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "req-",
            "01JD3XQ4Z8K9M2N5P7R8S0T1V2",
            "req-../../etc",
            "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2X",
        ] {
            assert!(bad.parse::<RequestId>().is_err(), "{bad}");
        }
    }
}
