//! The domain: parsed values, the status machine, policy, the audit chain, the catalog's
//! name matching and the signatures that authenticate callers. Pure: no I/O, no async,
//! no AWS, no SQL, no HTTP (see ARCHITECTURE.md for what each crate may depend on).

pub mod audit;
pub mod auth;
pub mod catalog;
mod ids;
mod image;
#[cfg(feature = "openapi")]
mod openapi;
pub mod policy;
mod principal;
pub mod report;
mod request;
mod status;

pub use audit::{verify_chain, verify_sealed, AuditEvent, ChainBreak, Refusal};
pub use catalog::Catalog;
pub use ids::{BadRequestId, RequestId};
pub use image::{ImageRef, ImageRefError};
pub use policy::{Policy, Verdict};
pub use principal::{BadPrincipal, Principal};
pub use request::{
    clean_text, thousands, BadEnvironment, BadPreApproval, Capacity, Change, Channel, Decision, Earlier, Environment,
    Justification, Kind, NewRequest, PreApproval, ProvisionResult, RateError, RejectReason, Request, RequestView,
    TextError, Transition, Watcher, MAX_EARLIER, MAX_IDEMPOTENCY_KEY_LEN, MAX_JUSTIFICATION_CHARS, MAX_REASON_CHARS,
    MAX_WATCHERS,
};
pub use status::{Action, BadStatus, Refused, Status};

use chrono::{DateTime, SecondsFormat, Utc};

/// How every store writes a time where it sorts or compares as text: RFC 3339, UTC,
/// milliseconds (`2026-11-29T07:07:49.123Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
