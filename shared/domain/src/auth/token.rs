//! Approval-link tokens: `<kid>.<payload>.<mac>` (URL-safe base64), binding a request, an
//! approver, a decision and an expiry. Keys are named by id so they can be rotated: new
//! links use the active key, links signed with an older key still verify while it is kept.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::RequestId;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalClaims {
    #[serde(rename = "r")]
    pub request_id: RequestId,
    /// The approver's email address.
    #[serde(rename = "a")]
    pub approver: String,
    #[serde(rename = "d")]
    pub approve: bool,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// A rating link's claims: who may rate which request, and how. Signed under the audit
/// keys (which every function holds to seal events, so signing these gives none of them a
/// power it lacked) in a context of its own, so that no approval link, audit seal or rating
/// link can pass for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingClaims {
    #[serde(rename = "r")]
    pub request_id: RequestId,
    /// The requester or watcher, as a principal.
    #[serde(rename = "w")]
    pub who: String,
    #[serde(rename = "u")]
    pub up: bool,
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Claims that end.
pub trait Expiring: Serialize + serde::de::DeserializeOwned {
    /// Unix seconds.
    fn expires(&self) -> i64;
    /// What the MAC covers before the key id and payload: one per kind of link.
    const CONTEXT: &'static [u8];
}

impl Expiring for ApprovalClaims {
    fn expires(&self) -> i64 {
        self.expires
    }
    const CONTEXT: &'static [u8] = b"image-request/approval/v1.";
}

impl Expiring for RatingClaims {
    fn expires(&self) -> i64 {
        self.expires
    }
    const CONTEXT: &'static [u8] = b"image-request/rating/v1.";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this link is not a valid approval link (it may have been cut short or altered)")]
    Invalid,
    #[error("this approval link expired at {0}; ask for a new one")]
    Expired(DateTime<Utc>),
}

/// Signing keys by id, and which one signs new links.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenKeys {
    pub active: String,
    pub keys: BTreeMap<String, String>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TokenKeys")
            .field("active", &self.active)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn signed_parts<'a>(context: &'static [u8], kid: &'a str, payload: &'a str) -> [&'a [u8]; 4] {
    [context, kid.as_bytes(), b".", payload.as_bytes()]
}

impl TokenKeys {
    pub fn sign<C: Expiring>(&self, claims: &C) -> String {
        let key = self
            .keys
            .get(&self.active)
            .expect("the active key id names a key (checked when configuration loads)");
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let tag = B64.encode(super::tag(
            key.as_bytes(),
            &signed_parts(C::CONTEXT, &self.active, &payload),
        ));
        format!("{}.{payload}.{tag}", self.active)
    }

    /// Verifies the MAC in constant time before looking at the claims, then the expiry.
    pub fn verify<C: Expiring>(&self, token: &str, now: DateTime<Utc>) -> Result<C, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let mut parts = token.split('.');
        let (Some(kid), Some(payload), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let key = self.keys.get(kid).ok_or(TokenError::Invalid)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Invalid)?;
        if !super::tag_matches(key.as_bytes(), &signed_parts(C::CONTEXT, kid, payload), &tag) {
            return Err(TokenError::Invalid);
        }
        let claims: C = B64
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Invalid)?;
        if now.timestamp() >= claims.expires() {
            return Err(TokenError::Expired(
                DateTime::from_timestamp(claims.expires(), 0).unwrap_or_default(),
            ));
        }
        Ok(claims)
    }
}

/// The key under which a link's use is recorded: a digest, so the stored key can never
/// be turned back into a working link.
pub fn use_key(token: &str) -> String {
    use sha2::Digest;
    format!("link:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(active: &str) -> TokenKeys {
        TokenKeys {
            active: active.into(),
            keys: [
                ("k1".to_string(), "first-secret".to_string()),
                ("k2".to_string(), "second-secret".to_string()),
            ]
            .into(),
        }
    }

    fn claims(exp: i64) -> ApprovalClaims {
        ApprovalClaims {
            request_id: RequestId::new(),
            approver: "admin@example.com".into(),
            approve: true,
            expires: exp,
        }
    }

    #[test]
    fn signed_tokens_verify_until_they_expire() {
        let now = Utc::now();
        let c = claims(now.timestamp() + 60);
        let t = keys("k1").sign(&c);
        assert_eq!(keys("k1").verify(&t, now), Ok(c.clone()));
        assert!(matches!(
            keys("k1").verify::<ApprovalClaims>(&t, now + chrono::Duration::seconds(61)),
            Err(TokenError::Expired(_))
        ));
    }

    #[test]
    fn a_link_of_one_kind_never_passes_for_another() {
        let now = Utc::now();
        let rating = RatingClaims {
            request_id: RequestId::new(),
            who: "email:dev@example.com".into(),
            up: true,
            expires: now.timestamp() + 60,
        };
        let t = keys("k1").sign(&rating);
        assert_eq!(keys("k1").verify::<RatingClaims>(&t, now), Ok(rating));
        assert_eq!(keys("k1").verify::<ApprovalClaims>(&t, now), Err(TokenError::Invalid));
        let a = keys("k1").sign(&claims(now.timestamp() + 60));
        assert_eq!(keys("k1").verify::<RatingClaims>(&a, now), Err(TokenError::Invalid));
    }

    #[test]
    fn rotated_keys_still_verify_old_links() {
        let now = Utc::now();
        let t = keys("k1").sign(&claims(now.timestamp() + 60));
        assert!(keys("k2").verify::<ApprovalClaims>(&t, now).is_ok());
        assert!(keys("k2").sign(&claims(now.timestamp() + 60)).starts_with("k2."));
    }

    #[test]
    fn tampered_tokens_are_invalid() {
        let now = Utc::now();
        let t = keys("k1").sign(&claims(now.timestamp() + 60));
        let (kid, rest) = t.split_once('.').unwrap();
        let (payload, tag) = rest.split_once('.').unwrap();
        let other = B64.encode(
            serde_json::to_vec(&ApprovalClaims {
                approve: false,
                ..claims(now.timestamp() + 60)
            })
            .unwrap(),
        );
        for bad in [
            format!("{kid}.{other}.{tag}"),
            format!("k2.{payload}.{tag}"),
            format!("k9.{payload}.{tag}"),
            format!("{kid}.{payload}"),
            format!("{t}.x"),
            "x".repeat(2000),
            String::new(),
        ] {
            assert_eq!(
                keys("k1").verify::<ApprovalClaims>(&bad, now),
                Err(TokenError::Invalid),
                "{bad}"
            );
        }
    }
}
