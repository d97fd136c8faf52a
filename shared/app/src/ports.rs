//! Ports: what the functions need from the outside world. Each has an AWS adapter and an
//! embedded one (ARCHITECTURE.md lists them); handlers only ever see these traits.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::outbox::Entry;
use domain::{AuditEvent, Catalog, Channel, Principal, Refusal, Request, RequestId, Status, Transition};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The conditional write failed: the request is no longer where the caller read it.
    #[error("the request changed since it was read")]
    Conflict,
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
}

/// The result of creating a request under an idempotency key.
#[derive(Debug, Clone)]
pub enum Created {
    New(Request),
    /// A request with the same idempotency key exists already; nothing was written.
    Existing(Request),
    /// Another request for the same image is open (received to provisioning); nothing was
    /// written. The caller joins it (`Request::join`).
    OpenExists(Request),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestQuery {
    pub status: Option<Status>,
    pub requester: Option<Principal>,
    pub image: Option<String>,
    /// Additions or removals only.
    #[serde(default)]
    pub kind: Option<domain::Kind>,
    /// Requests decided by this approver.
    pub decided_by: Option<Principal>,
    /// Created at or after / before these times.
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Only requests not in a terminal status, last updated before this time (stuck requests).
    pub updated_before: Option<DateTime<Utc>>,
    pub limit: usize,
}

#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Stores a new request with its first audit event, unless its idempotency key is
    /// already taken (the existing request is returned) or another request for the same
    /// image name is open (that one is returned): one open request per image, decided
    /// atomically with the write. A terminal transition's commit frees the image.
    async fn create(&self, request: &Request, event: &AuditEvent) -> Result<Created, StoreError>;
    async fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError>;
    /// Writes the new request and appends its audit event together, only if the stored
    /// request is still at the transition's expected status and version; with `outbox`,
    /// its notices (and the claims they were decided by, each only if free) in the same
    /// transaction.
    async fn commit(&self, transition: &Transition, outbox: Option<&Entry>) -> Result<(), StoreError>;
    /// A pending outbox entry (none once it is done, or if it was never written).
    async fn outbox(&self, id: RequestId, seq: u64) -> Result<Option<Entry>, StoreError>;
    /// Marks an entry delivered (or given up): it is no longer pending.
    async fn outbox_done(&self, id: RequestId, seq: u64, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Pending entries written before `before`, oldest first (what the sweep queues again).
    async fn outbox_pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(RequestId, u64)>, StoreError>;
    /// Takes `key` for one use until `until` (an approval link's use): true the first
    /// time, false while an earlier claim holds. Claims expired at `now` count as absent.
    async fn claim_once(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Gives a claim back, when what it guarded could not be done.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
    /// Whether a claim on `key` holds at `now` (a read: nothing is taken).
    async fn holds(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Newest first, except pending approvals and stuck requests: oldest first.
    /// `limit` 0 means 100; at most 1,000 are returned.
    async fn list(&self, query: &RequestQuery) -> Result<Vec<Request>, StoreError>;
    /// Every request created at or after `since` and before `until`, oldest first, however
    /// many (what a report counts). No scan: `by_time` on DynamoDB.
    async fn created_between(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<Request>, StoreError>;
}

/// Audit events by actor and/or time, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<Principal>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: usize,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// A request's events in sequence order.
    async fn timeline(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError>;
    /// Several requests' events, each in sequence order (one Query per request on
    /// DynamoDB; one statement on SQLite).
    async fn timelines(&self, ids: &[RequestId]) -> Result<Vec<(RequestId, Vec<AuditEvent>)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((*id, self.timeline(*id).await?));
        }
        Ok(out)
    }
    /// Events across requests, newest first; `limit` 0 means 100.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
    /// Records an attempt the status machine refused (append-only, like the events).
    async fn refused(&self, refusal: &Refusal) -> Result<(), StoreError>;
    /// A request's refused attempts, oldest first.
    async fn refusals(&self, id: RequestId) -> Result<Vec<Refusal>, StoreError>;
    /// Records a notice given up on (append-only, beside the chain like refusals).
    async fn undelivered(&self, u: &Undelivered) -> Result<(), StoreError>;
    /// A request's notices given up on, oldest first.
    async fn undeliverable(&self, id: RequestId) -> Result<Vec<Undelivered>, StoreError>;
    /// Every request with an event at or after `since` and before `until`, once each,
    /// sorted: what an evidence run verifies. No scan: by day on DynamoDB.
    async fn touched(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<RequestId>, StoreError>;
}

/// A notice the dispatcher gave up on: who was not told what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undelivered {
    pub request_id: RequestId,
    pub at: DateTime<Utc>,
    /// The notice's id (`app::outbox`).
    pub notice: String,
    /// `mail` or `chat`.
    pub channel: String,
    pub to: String,
    pub why: String,
}

/// The effective page size of a query.
pub fn effective_limit(limit: usize) -> usize {
    if limit == 0 {
        100
    } else {
        limit.min(1000)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::Display, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum QueueName {
    Validate,
    Provision,
    /// Outbox entries to deliver (`app::outbox`).
    Notify,
}

impl QueueName {
    pub const ALL: [QueueName; 3] = [QueueName::Validate, QueueName::Provision, QueueName::Notify];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A queue message: which request to work on, and the trace it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkItem {
    pub request_id: RequestId,
    pub trace_id: String,
    /// On the notify queue: the outbox entry's `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        QueueError(e.to_string())
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: QueueName, item: &WorkItem) -> Result<(), QueueError>;
    /// Hands a received message back, to be delivered again no sooner than `after` (its
    /// visibility from now): how a consumer backs off.
    async fn retry_in(&self, queue: QueueName, receipt: &str, after: std::time::Duration) -> Result<(), QueueError>;
}

/// A rendered message to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The notice's id (`app::outbox`): what a receiver deduplicates on.
    pub id: String,
    pub kind: MessageKind,
    /// An email address, or a principal where there is no address.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub request_id: RequestId,
    pub status: Status,
    /// The channel the request came through (where a subscriber may answer the requester).
    pub channel: Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MessageKind {
    ApprovalRequest,
    Outcome,
    ApproverAlert,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("notification could not be sent: {0}")]
pub struct NotifyError(pub String);

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, message: &Message) -> Result<(), NotifyError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("the chat service answered {0}")]
    Refused(String),
    #[error("the chat service is unavailable: {0}")]
    Unavailable(String),
}

/// Chat (Slack): answers to requesters where they asked, and approval messages with
/// buttons. The workflow speaks to this port only; the Slack adapter implements it.
#[async_trait]
pub trait Chat: Send + Sync {
    /// Tells a requester who asked from chat, where they asked; others are left alone.
    async fn tell(&self, request: &Request, text: &str, now: DateTime<Utc>) -> Result<(), ChatError>;
    /// Posts a request waiting for approval, with Approve / Deny, where a channel is set.
    async fn post_approval(&self, request: &Request) -> Result<(), ChatError>;
    /// Answers on a reply address the chat service sent with a call (a click's
    /// `response_url`): the body replaces or follows the message clicked.
    async fn respond(&self, reply_to: &str, body: &serde_json::Value) -> Result<(), ChatError>;
}

/// A repository in the organization's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("registry temporarily unavailable: {0}")]
    Retryable(String),
    #[error("{0}")]
    Permanent(String),
}

#[async_trait]
pub trait Registry: Send + Sync {
    /// The org's name as it appears in pull strings (`cgr.dev/<org>/…`).
    fn org_name(&self) -> &str;
    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError>;
    async fn org_repos(&self) -> Result<Vec<Repo>, RegistryError>;
    async fn find_repo(&self, name: &str) -> Result<Option<Repo>, RegistryError>;
    /// The tags a catalog image has (what a request may name and a pull may use).
    async fn catalog_tags(&self, name: &str) -> Result<Vec<String>, RegistryError>;
    /// Creates the repo, or returns it where it exists already.
    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError>;
    /// Deletes the org's repo of that name: the id of the repo deleted, or `None` where
    /// there was none (already gone counts as done, so a redelivery deletes nothing twice).
    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError>;
    /// What the org's plan allows; unknown parts are `None`.
    async fn entitled(&self, name: &str) -> Result<Entitlement, RegistryError> {
        let _ = name;
        Ok(Entitlement::default())
    }
}

/// What an org's plan says about adding an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entitlement {
    /// Whether the image is among those the org may add (`None`: the plan does not say).
    pub allowed: Option<bool>,
    /// The most repositories the org may hold, where the plan sets one.
    pub max_images: Option<usize>,
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time, to the millisecond (what every store keeps exactly).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }
}

/// The port an entry point did not wire: every call fails, naming what is missing. Each
/// Lambda wires only the adapters it uses (intake sends no mail, approval provisions
/// nothing), so reaching one of these is a wiring bug, reported rather than hidden.
pub struct Unwired {
    org_name: String,
}

impl Unwired {
    pub fn new(org_name: &str) -> Self {
        Unwired {
            org_name: org_name.into(),
        }
    }
}

fn unwired(port: &str) -> String {
    format!("this function has no {port} wired (see ARCHITECTURE.md, \"Which Lambda links what\")")
}

#[async_trait]
impl Queue for Unwired {
    async fn send(&self, _: QueueName, _: &WorkItem) -> Result<(), QueueError> {
        Err(QueueError(unwired("queue")))
    }
    async fn retry_in(&self, _: QueueName, _: &str, _: std::time::Duration) -> Result<(), QueueError> {
        Err(QueueError(unwired("queue")))
    }
}

#[async_trait]
impl Notifier for Unwired {
    async fn send(&self, _: &Message) -> Result<(), NotifyError> {
        Err(NotifyError(unwired("notifier")))
    }
}

#[async_trait]
impl Registry for Unwired {
    fn org_name(&self) -> &str {
        &self.org_name
    }
    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError> {
        Err(RegistryError::Permanent(unwired("registry")))
    }
    async fn org_repos(&self) -> Result<Vec<Repo>, RegistryError> {
        Err(RegistryError::Permanent(unwired("registry")))
    }
    async fn find_repo(&self, _: &str) -> Result<Option<Repo>, RegistryError> {
        Err(RegistryError::Permanent(unwired("registry")))
    }
    async fn catalog_tags(&self, _: &str) -> Result<Vec<String>, RegistryError> {
        Err(RegistryError::Permanent(unwired("registry")))
    }
    async fn create_repo(&self, _: &str, _: &str) -> Result<Repo, RegistryError> {
        Err(RegistryError::Permanent(unwired("registry")))
    }
    async fn delete_repo(&self, _: &str) -> Result<Option<String>, RegistryError> {
        Err(RegistryError::Permanent(unwired("registry")))
    }
}
