//! Audit events: an append-only trail per request, each event chained to the previous
//! one by a SHA-256 hash so that a changed or missing event can be detected, and sealed
//! with an HMAC-SHA256 under the audit key (`key_id`, `mac`), so that nobody without the
//! key can rewrite the chain and hash it again. ARCHITECTURE.md ("The audit chain")
//! defines the bytes both are computed over, for verifiers in other languages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::token::TokenKeys;
use super::request::{Change, Channel, Kind, Request};
use super::{Action, Principal, RequestId, Status};

/// The `prev_hash` of a request's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub request_id: RequestId,
    /// The request's kind, where it is not `add` (so that an addition's events, and their
    /// hashes, are what they were before removals existed).
    #[serde(default, skip_serializing_if = "Kind::is_add")]
    pub kind: Kind,
    /// 1 for the submission, then one more per transition.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Principal,
    pub action: Action,
    pub from: Option<Status>,
    pub to: Status,
    pub reason: Option<String>,
    pub channel: Channel,
    pub prev_hash: String,
    pub hash: String,
    /// The audit key that sealed the event (`None`: written without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// HMAC-SHA256 under that key of [`MAC_CONTEXT`] and the canonical bytes, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What a MAC is computed over before the canonical bytes: a MAC of an audit event can
/// never pass for any other MAC made with the same key.
pub const MAC_CONTEXT: &[u8] = b"image-request/audit/v1\n";

/// An attempt the status machine refused (a second decision, a retry of a request that
/// has not failed). Kept beside the chain, not in it: a refusal changes nothing, so it
/// must not move the request's version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub request_id: RequestId,
    pub at: DateTime<Utc>,
    pub actor: Principal,
    pub action: Action,
    /// Where the request stood.
    pub status: Status,
    pub why: String,
    pub channel: Channel,
}

/// The hashed part of an event: every field but `hash`, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    request_id: &'a RequestId,
    #[serde(skip_serializing_if = "Kind::is_add")]
    kind: Kind,
    seq: u64,
    at: &'a DateTime<Utc>,
    actor: &'a Principal,
    action: Action,
    from: Option<Status>,
    to: Status,
    reason: &'a Option<String>,
    channel: Channel,
    prev_hash: &'a str,
}

impl AuditEvent {
    pub(super) fn first(
        id: RequestId,
        kind: Kind,
        at: DateTime<Utc>,
        actor: Principal,
        channel: Channel,
        reason: Option<String>,
    ) -> Self {
        Self::sealed(AuditEvent {
            request_id: id,
            kind,
            seq: 1,
            at,
            actor,
            action: Action::Submit,
            from: None,
            to: Status::Received,
            reason,
            channel,
            prev_hash: GENESIS.to_string(),
            hash: String::new(),
            key_id: None,
            mac: None,
        })
    }

    pub(super) fn next(prev: &Request, change: &Change, to: Status) -> Self {
        Self::sealed(AuditEvent {
            request_id: prev.id,
            kind: prev.kind,
            seq: prev.version + 1,
            at: change.at,
            actor: change.actor.clone(),
            action: change.action,
            from: Some(prev.status),
            to,
            reason: change.reason.clone(),
            channel: change.channel,
            prev_hash: prev.audit_head.clone(),
            hash: String::new(),
            key_id: None,
            mac: None,
        })
    }

    fn sealed(mut e: AuditEvent) -> Self {
        e.hash = e.compute_hash();
        e
    }

    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical()))
    }

    /// Seals the event with the active audit key.
    pub fn seal(&mut self, keys: &TokenKeys) {
        let key = keys
            .keys
            .get(&keys.active)
            .expect("the active key id names a key (checked when configuration loads)");
        self.mac = Some(hex::encode(crate::auth::tag(
            key.as_bytes(),
            &[MAC_CONTEXT, &self.canonical()],
        )));
        self.key_id = Some(keys.active.clone());
    }

    /// The bytes the hash and the MAC are computed over: the event's JSON without `hash`,
    /// `key_id` and `mac`, fields in a fixed order, no spaces (ARCHITECTURE.md).
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&Hashed {
            request_id: &self.request_id,
            kind: self.kind,
            seq: self.seq,
            at: &self.at,
            actor: &self.actor,
            action: self.action,
            from: self.from,
            to: self.to,
            reason: &self.reason,
            channel: self.channel,
            prev_hash: &self.prev_hash,
        })
        .expect("audit events serialise")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq}: {why}")]
pub struct ChainBreak {
    pub seq: u64,
    pub why: String,
}

/// Checks a request's events, in order: contiguous sequence numbers from 1, each hash
/// right, each event chained to the one before.
pub fn verify_chain(events: &[AuditEvent]) -> Result<(), ChainBreak> {
    verify(events, None)
}

/// [`verify_chain`], and every event's seal: a MAC under a key of `keys` holds over the
/// event as it is. Only someone with the audit key can change an event and seal it again.
/// The first broken event is named, whichever check it fails.
pub fn verify_sealed(events: &[AuditEvent], keys: &TokenKeys) -> Result<(), ChainBreak> {
    verify(events, Some(keys))
}

fn verify(events: &[AuditEvent], keys: Option<&TokenKeys>) -> Result<(), ChainBreak> {
    let mut prev = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        let broken = |seq: u64, why: &str| Err(ChainBreak { seq, why: why.into() });
        if e.seq != expected_seq {
            return broken(
                expected_seq,
                &format!("event {expected_seq} is missing (found {} next)", e.seq),
            );
        }
        if e.prev_hash != prev {
            return broken(e.seq, "it does not chain to the event before it");
        }
        if e.compute_hash() != e.hash {
            return broken(
                e.seq,
                "its content does not match its hash (changed after it was written)",
            );
        }
        if let Some(keys) = keys {
            let (Some(kid), Some(mac)) = (&e.key_id, &e.mac) else {
                return broken(e.seq, "it carries no seal (written without the audit key)");
            };
            let Some(key) = keys.keys.get(kid) else {
                return broken(
                    e.seq,
                    &format!("it is sealed with audit key `{kid}`, which this verifier was not given"),
                );
            };
            let given = hex::decode(mac).unwrap_or_default();
            if !crate::auth::tag_matches(key.as_bytes(), &[MAC_CONTEXT, &e.canonical()], &given) {
                return broken(
                    e.seq,
                    "its seal does not match: changed, or hashed again by someone without the audit key",
                );
            }
        }
        prev = e.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, ImageRef, Justification, NewRequest};

    fn chain() -> Vec<AuditEvent> {
        let now = Utc::now();
        let (r, first) = Request::submit(
            NewRequest {
                kind: Default::default(),
                image: ImageRef::parse("busybox").unwrap(),
                requester: "email:dev@example.com".parse().unwrap(),
                justification: Justification::parse("debug").unwrap(),
                environment: None,
                environment_vouched_by: None,
                channel: Channel::Cli,
                idempotency_key: None,
            },
            RequestId::new(),
            now,
        );
        let change = |action| Change {
            action,
            actor: Principal::service("validate"),
            channel: Channel::System,
            reason: None,
            at: now,
        };
        let t1 = r.apply(change(Action::StartValidation), |_| {}).unwrap();
        let t2 = t1.request.apply(change(Action::RequireApproval), |_| {}).unwrap();
        vec![first, t1.event, t2.event]
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify_chain(&chain()), Ok(()));
    }

    #[test]
    fn a_changed_event_is_named() {
        let mut c = chain();
        c[1].reason = Some("rewritten".into());
        assert_eq!(verify_chain(&c).unwrap_err().seq, 2);
    }

    #[test]
    fn a_missing_event_is_named() {
        let mut c = chain();
        c.remove(1);
        let err = verify_chain(&c).unwrap_err();
        assert_eq!(err.seq, 2);
        assert!(err.why.contains("missing"));
    }

    fn keys(active: &str, pairs: &[(&str, &str)]) -> TokenKeys {
        TokenKeys {
            active: active.into(),
            keys: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn sealed(keys: &TokenKeys) -> Vec<AuditEvent> {
        let mut c = chain();
        for e in &mut c {
            e.seal(keys);
        }
        c
    }

    #[test]
    fn a_chain_rewritten_and_hashed_again_without_the_key_is_caught() {
        let k = keys("a1", &[("a1", &"k".repeat(32))]);
        let mut c = sealed(&k);
        assert_eq!(verify_sealed(&c, &k), Ok(()));
        // A writer edits event 2 and recomputes every hash after it: the plain chain holds…
        c[1].reason = Some("rewritten".into());
        let mut prev = c[0].hash.clone();
        for e in &mut c[1..] {
            e.prev_hash = prev;
            e.hash = e.compute_hash();
            prev = e.hash.clone();
        }
        assert_eq!(verify_chain(&c), Ok(()));
        // …but not the seal.
        let err = verify_sealed(&c, &k).unwrap_err();
        assert_eq!(err.seq, 2);
        assert!(err.why.contains("without the audit key"), "{}", err.why);
        // Sealed with a guessed key: no better.
        c[1].seal(&keys("a1", &[("a1", &"x".repeat(32))]));
        assert_eq!(verify_sealed(&c, &k).unwrap_err().seq, 2);
    }

    #[test]
    fn rotated_keys_still_verify_old_events_and_unsealed_ones_are_named() {
        let old = keys("a1", &[("a1", &"k".repeat(32))]);
        let c = sealed(&old);
        let rotated = keys("a2", &[("a1", &"k".repeat(32)), ("a2", &"m".repeat(32))]);
        assert_eq!(verify_sealed(&c, &rotated), Ok(()));
        let err = verify_sealed(&c, &keys("a2", &[("a2", &"m".repeat(32))])).unwrap_err();
        assert!(err.why.contains("audit key `a1`"), "{}", err.why);
        let err = verify_sealed(&chain(), &old).unwrap_err();
        assert_eq!(err.seq, 1);
        assert!(err.why.contains("no seal"), "{}", err.why);
    }
}
