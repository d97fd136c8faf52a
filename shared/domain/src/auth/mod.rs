//! Authentication: HMAC-signed API clients, Slack's request signatures and signed
//! approval-link tokens. All three compute and compare their tags through [`tag`] and
//! [`tag_matches`], so there is one constant-time comparison to trust.

pub mod client;
pub mod slack;
pub mod token;

use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    for p in parts {
        m.update(p);
    }
    m
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub(crate) fn tag(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    mac(key, parts).finalize().into_bytes().to_vec()
}

/// Whether `given` is the tag of `parts` under `key`, compared in constant time.
pub(crate) fn tag_matches(key: &[u8], parts: &[&[u8]], given: &[u8]) -> bool {
    mac(key, parts).verify_slice(given).is_ok()
}
