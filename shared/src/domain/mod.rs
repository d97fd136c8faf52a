//! The domain: parsed values, the status machine, policy and the audit chain. No I/O here.

pub mod audit;
mod ids;
mod image;
pub mod policy;
mod principal;
mod request;
mod status;

pub use audit::{verify_chain, AuditEvent, ChainBreak, Refusal};
pub use ids::{BadRequestId, RequestId};
pub use image::{ImageRef, ImageRefError};
pub use policy::{Policy, Verdict};
pub use principal::{BadPrincipal, Principal};
pub use request::{
    clean_text, Change, Channel, Decision, Environment, Justification, NewRequest, PreApproval, ProvisionResult,
    Request, TextError, Transition, MAX_IDEMPOTENCY_KEY_LEN, MAX_REASON_CHARS,
};
pub use status::{Action, Refused, Status};
