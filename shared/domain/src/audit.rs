//! Audit events: an append-only trail per request, each event chained to the previous
//! one by a SHA-256 hash so that a changed or missing event can be detected.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
}

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
        })
    }

    fn sealed(mut e: AuditEvent) -> Self {
        e.hash = e.compute_hash();
        e
    }

    pub fn compute_hash(&self) -> String {
        let body = serde_json::to_vec(&Hashed {
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
        .expect("audit events serialise");
        hex::encode(Sha256::digest(body))
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
    let mut prev = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if e.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                why: format!("event {expected_seq} is missing (found {} next)", e.seq),
            });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak {
                seq: e.seq,
                why: "it does not chain to the event before it".into(),
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                why: "its content does not match its hash (changed after it was written)".into(),
            });
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
}
