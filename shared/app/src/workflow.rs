//! Steps every function shares: applying a change through the status machine and
//! committing it, classifying failures for the queues, and the sweep that recovers
//! requests a crash left between two steps.

use chrono::Duration;

use crate::notify;
use crate::outbox;
use crate::ports::{Created, NotifyError, QueueError, QueueName, RegistryError, RequestQuery, StoreError, WorkItem};
use crate::App;
use domain::{Action, Change, Channel, Principal, Refusal, Refused, Request, RequestId, Status, Transition};

/// How long a request may stay `validating` or `provisioning` before the sweep queues it
/// again: longer than a message's whole redelivery budget (on AWS, 5 deliveries × the
/// provision queue's 360 s visibility is 30 minutes; tests/tests/template.rs holds the
/// template under it), so that no consumer still holds it. Consumers are idempotent, so a
/// spare message changes nothing.
pub const IN_FLIGHT_GRACE_MINUTES: i64 = 45;

/// How long a rating link in an outcome mail works.
pub const RATING_LINK_DAYS: i64 = 30;

/// What a queue consumer does with a failed message.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Leave the message on the queue: it will be delivered again.
    #[error("will retry: {0}")]
    Retryable(String),
    /// Retrying cannot help; the outcome is recorded on the request.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict | StoreError::Unavailable(_) => StepError::Retryable(e.to_string()),
            StoreError::Corrupt(_) => StepError::Permanent(e.to_string()),
        }
    }
}

impl From<RegistryError> for StepError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Retryable(m) => StepError::Retryable(m),
            RegistryError::Permanent(m) => StepError::Permanent(m),
        }
    }
}

impl From<QueueError> for StepError {
    fn from(e: QueueError) -> Self {
        StepError::Retryable(e.to_string())
    }
}

impl From<NotifyError> for StepError {
    fn from(e: NotifyError) -> Self {
        StepError::Retryable(e.to_string())
    }
}

/// What a submission came to.
#[derive(Debug)]
pub enum Submitted {
    /// Stored `received`; to be queued for validation.
    New(Request),
    /// The request this idempotency key made before.
    Existing(Request),
    /// Another request for the image was open: the asker now watches it (or did already).
    Joined(Request),
    /// Another request for the image is open and asks the opposite (an addition while a
    /// removal is open, or the reverse): nothing was written; ask again when it ends.
    Opposed(Request),
}

/// The outcome of trying to apply a change.
#[derive(Debug)]
pub enum Applied {
    /// Committed; the request as it now stands.
    Done(Request),
    /// The status machine refuses the change from where the request stands.
    Refused(Request, Refused),
}

impl App {
    pub fn change(&self, action: Action, actor: Principal, channel: Channel, reason: Option<String>) -> Change {
        Change {
            action,
            actor,
            channel,
            reason,
            at: self.clock.now(),
        }
    }

    pub async fn load(&self, id: RequestId) -> Result<Request, StepError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| StepError::Permanent(format!("request {id} does not exist")))
    }

    /// Applies `change` to the request as last read and commits it with its audit event.
    /// A conflict (someone else moved the request first) is returned as such: the caller
    /// re-reads and decides again.
    pub async fn apply(
        &self,
        request: &Request,
        change: Change,
        edit: impl FnOnce(&mut Request),
    ) -> Result<Applied, StoreError> {
        self.apply_telling(request, change, edit, Alerts::default()).await
    }

    /// [`App::apply`] with notices beyond the transition's own (see [`App::commit_telling`]).
    pub async fn apply_telling(
        &self,
        request: &Request,
        change: Change,
        edit: impl FnOnce(&mut Request),
        alerts: Alerts,
    ) -> Result<Applied, StoreError> {
        match request.apply(change, edit) {
            Err(refused) => Ok(Applied::Refused(request.clone(), refused)),
            Ok(t) => Ok(Applied::Done(
                self.commit_telling(t, alerts.intents, alerts.claims).await?,
            )),
        }
    }

    /// Seals a transition's event and commits the two together (under the transition's
    /// conditions) with the notices it makes (`outbox::intents`), then logs and measures it
    /// and queues the notices: every transition, whichever `Request` method made it
    /// (`apply`, `join`, `rate`, `remind`), is written this one way.
    pub async fn commit(&self, t: Transition) -> Result<Request, StoreError> {
        self.commit_telling(t, vec![], vec![]).await
    }

    /// [`App::commit`], with notices beyond the transition's own (`extra`), decided by
    /// taking `claims`: each must be free, or nothing is written (`StoreError::Conflict`).
    pub async fn commit_telling(
        &self,
        mut t: Transition,
        extra: Vec<outbox::Intent>,
        claims: Vec<String>,
    ) -> Result<Request, StoreError> {
        self.seal(&mut t.event);
        crate::failpoint!(
            "store.commit",
            Err(StoreError::Unavailable(
                "failpoint store.commit: the store is unavailable".into()
            ))
        );
        let mut intents = outbox::intents(&t);
        intents.extend(extra);
        let entry = (!intents.is_empty()).then(|| outbox::Entry {
            request: t.request.clone(),
            seq: t.event.seq,
            at: t.event.at,
            intents,
            claims,
        });
        self.store.commit(&t, entry.as_ref()).await?;
        // Committed, then the process dies: nothing after this runs, the caller sees an error.
        crate::failpoint!(
            "commit.after",
            Err(StoreError::Unavailable(
                "failpoint commit.after: died after the commit".into()
            ))
        );
        tracing::info!(request_id = %t.request.id, from = %t.expected_status, to = %t.request.status(), actor = %t.event.actor, action = ?t.event.action, "transition");
        self.measure(&t.request, &t.event);
        if let Some(e) = entry {
            // A message lost here is queued again by the sweep: the entry waits, pending.
            self.enqueue_notice(e.request.id, e.seq, &e.id()).await;
        }
        Ok(t.request)
    }

    /// The metrics a committed transition makes (`app::metrics::METRICS`).
    fn measure(&self, r: &Request, e: &domain::AuditEvent) {
        let since = |t: chrono::DateTime<chrono::Utc>| (e.at - t).num_milliseconds().max(0) as f64 / 1000.0;
        let outcome = match e.action {
            Action::AutoApprove => "auto_approved",
            Action::Approve => "approved",
            Action::Deny => "denied",
            Action::Expire => "expired",
            Action::Reject => "rejected",
            Action::FoundAvailable => "already_available",
            Action::CompleteProvisioning => "provisioned",
            Action::CompleteRemoval => "removed",
            Action::Fail => "failed",
            _ => return,
        };
        self.metrics.put("Decisions", 1.0, &[("Outcome", outcome)]);
        match e.action {
            Action::Approve | Action::Deny => self.metrics.put("ApprovalLatency", since(r.created_at), &[]),
            Action::Reject => {
                let why = r.rejected_for.map_or("other", |w| w.as_str());
                self.metrics.put("Refusals", 1.0, &[("Reason", why)]);
            }
            // From the approval (a person's or the policy's) to the pull string.
            Action::CompleteProvisioning => {
                let from = r.decision.as_ref().map_or(r.created_at, |d| d.at);
                self.metrics.put("ProvisioningLatency", since(from), &[]);
            }
            _ => {}
        }
    }

    /// Records that `change` was refused where `current` stands. A refusal that cannot be
    /// recorded is logged: the caller's answer (a 409) must not turn into a 500.
    pub async fn refuse(&self, current: &Request, change: &Change, why: &str) {
        let refusal = Refusal {
            request_id: current.id,
            at: change.at,
            actor: change.actor.clone(),
            action: change.action,
            status: current.status(),
            why: why.to_string(),
            channel: change.channel,
        };
        tracing::warn!(request_id = %current.id, actor = %change.actor, action = ?change.action, status = %current.status(), "refused: {why}");
        if let Err(e) = self.audit.refused(&refusal).await {
            tracing::error!(request_id = %current.id, error = %e, "could not record a refused attempt");
        }
    }

    /// Stores a new request, or joins the asker to the open request for the same image
    /// (one open request per image). `once`, where given, is claimed before a join, so
    /// that the same submission cannot be joined twice (a replayed signature); a claim
    /// already taken is `StoreError::Conflict`, as a replayed creation is.
    pub async fn submit(
        &self,
        request: &Request,
        event: &domain::AuditEvent,
        once: Option<&str>,
    ) -> Result<Submitted, StoreError> {
        let mut claimed = false;
        let mut event = event.clone();
        self.seal(&mut event);
        // A join races with the open request's own steps: re-read and try again.
        for _ in 0..8 {
            let open = match self.store.create(request, &event).await? {
                Created::New(r) => {
                    self.metrics
                        .put("RequestsSubmitted", 1.0, &[("Channel", r.channel.into())]);
                    return Ok(Submitted::New(r));
                }
                Created::Existing(r) => return Ok(Submitted::Existing(r)),
                Created::OpenExists(open) if open.kind != request.kind => return Ok(Submitted::Opposed(open)),
                Created::OpenExists(open) => open,
            };
            if let (Some(key), false) = (once, claimed) {
                let now = self.clock.now();
                if !self.store.claim_once(key, now, now + Duration::minutes(10)).await? {
                    return Err(StoreError::Conflict);
                }
                claimed = true;
            }
            let transition = match open.join(request) {
                // Ended meanwhile: the image is free, so the next try creates.
                Err(_) => continue,
                Ok(None) => return Ok(Submitted::Joined(open)),
                Ok(Some(t)) => t,
            };
            match self.commit(transition).await {
                Ok(joined) => return Ok(Submitted::Joined(joined)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the open request for this image kept changing; try again".into(),
        ))
    }

    /// Seals an event with the audit key, where the deployment has one (always, once
    /// configured: a function without it writes unsealed events, which `audit verify`
    /// reports).
    pub fn seal(&self, event: &mut domain::AuditEvent) {
        if let Some(keys) = self.audit_keys() {
            event.seal(keys);
        }
    }

    pub async fn enqueue(&self, queue: QueueName, id: RequestId, trace_id: &str) -> Result<(), QueueError> {
        crate::failpoint!(
            "queue.send",
            Err(QueueError("failpoint queue.send: the queue is unavailable".into()))
        );
        self.queue
            .send(
                queue,
                &WorkItem {
                    request_id: id,
                    trace_id: trace_id.to_string(),
                    notice: None,
                },
            )
            .await
    }

    /// Queues an outbox entry for the dispatcher; false (logged) where the queue refused:
    /// the entry stays pending and the sweep queues it again.
    pub async fn enqueue_notice(&self, id: RequestId, seq: u64, trace_id: &str) -> bool {
        let item = WorkItem {
            request_id: id,
            trace_id: trace_id.to_string(),
            notice: Some(seq),
        };
        let sent = async {
            crate::failpoint!(
                "queue.send",
                Err(QueueError("failpoint queue.send: the queue is unavailable".into()))
            );
            self.queue.send(QueueName::Notify, &item).await
        };
        match sent.await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(request_id = %id, seq, error = %e, "notices not queued; the sweep will queue them");
                false
            }
        }
    }

    /// 👍 / 👎 links for `who`'s mail, where the request ended with a pull string: each
    /// signed for them, used once, valid for `RATING_LINK_DAYS`. None without audit keys
    /// (they sign these links).
    pub fn rating_links(&self, r: &Request, who: &Principal) -> String {
        let ended_well = matches!(r.status(), Status::Provisioned | Status::AlreadyAvailable);
        let Some(keys) = self.audit_keys().filter(|_| r.kind.is_add() && ended_well) else {
            return String::new();
        };
        let expires = (self.clock.now() + Duration::days(RATING_LINK_DAYS)).timestamp();
        let link = |up: bool| {
            let token = keys.sign(&domain::auth::token::RatingClaims {
                request_id: r.id,
                who: who.to_string(),
                up,
                expires,
            });
            format!("{}/ratings/{token}", self.settings.public_url())
        };
        format!(
            "\n\nHow did this go? One click tells the platform team (you can add a comment):\n  Good:      {}\n  Not good:  {}\n",
            link(true),
            link(false)
        )
    }

    /// Moves a request that cannot go on (validating or provisioning) to `failed` with why;
    /// the requester and the approvers, who may retry it (`admin retry`), are told through
    /// the outbox (`outbox::intents`).
    pub async fn fail(&self, r: &Request, by: Principal, why: &str) -> Result<(), StoreError> {
        let change = self.change(Action::Fail, by, Channel::System, Some(why.to_string()));
        self.apply(r, change, |r| r.outcome = Some(why.to_string())).await?;
        Ok(())
    }

    /// One email per approver, each with approve and deny links bound to that approver,
    /// working until the request expires (`approval_ttl_hours` after it began to wait).
    /// A reminder says how long it had waited at `at` (when it was decided to remind).
    pub fn approval_requests(
        &self,
        r: &Request,
        reminder: bool,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::ports::Message> {
        let ttl = Duration::hours(i64::from(self.settings.approval_ttl_hours));
        let expires = r.updated_at + ttl;
        let base = self.settings.public_url();
        let mut out = vec![];
        for approver in &self.settings.approvers {
            let link = |approve| {
                let token = self.token_keys().sign(&domain::auth::token::ApprovalClaims {
                    request_id: r.id,
                    approver: approver.clone(),
                    approve,
                    expires: expires.timestamp(),
                });
                format!("{base}/approvals/{token}")
            };
            let mut message = notify::approval_request(r, approver, &link(true), &link(false), expires);
            if reminder {
                message = notify::reminder(message, r, at);
            }
            out.push(message);
        }
        out
    }

    /// Reminds the approvers of requests that have waited `reminder_after_hours` since they
    /// began to wait, or since the last reminder: each reminder is a transition
    /// (`Action::Remind`), so two sweeps at once remind once.
    async fn remind(&self, now: chrono::DateTime<chrono::Utc>) -> Result<usize, StoreError> {
        let hours = self.settings.reminder_after_hours;
        if hours == 0 {
            return Ok(0);
        }
        let every = Duration::hours(i64::from(hours));
        let waiting = self
            .store
            .list(&RequestQuery {
                status: Some(Status::PendingApproval),
                updated_before: Some(now - every),
                limit: 100,
                ..RequestQuery::default()
            })
            .await?;
        let mut reminded = 0;
        for r in waiting {
            if r.reminded_at.is_some_and(|t| now - t < every) {
                continue;
            }
            let waited = (now - r.updated_at).num_hours();
            let why = format!("waiting for a decision for {waited} hours");
            let Ok(t) = r.remind(Principal::service("sweeper"), now, why) else {
                continue;
            };
            match self.commit(t).await {
                Ok(_) => reminded += 1,
                // Decided (or reminded) meanwhile.
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reminded)
    }

    /// Recovers what a crash between a commit and the next step would strand, reminds
    /// approvers, and expires approvals nobody decided: requests left `received` or
    /// `approved` longer than `grace`, or `validating` or `provisioning` longer than
    /// [`IN_FLIGHT_GRACE_MINUTES`], are queued again (consumers are idempotent, so a spare
    /// message is harmless), and pending approvals older than the approval TTL expire.
    pub async fn sweep(&self, grace: Duration) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let in_flight = grace.max(Duration::minutes(IN_FLIGHT_GRACE_MINUTES));
        for (status, queue, grace) in [
            (Status::Received, QueueName::Validate, grace),
            (Status::Approved, QueueName::Provision, grace),
            // A consumer may still hold these: only once every delivery has run out.
            (Status::Validating, QueueName::Validate, in_flight),
            (Status::Provisioning, QueueName::Provision, in_flight),
        ] {
            let stuck = self
                .store
                .list(&RequestQuery {
                    status: Some(status),
                    updated_before: Some(now - grace),
                    limit: 100,
                    ..RequestQuery::default()
                })
                .await?;
            for r in stuck {
                if self
                    .enqueue(queue, r.id, &format!("sweep-{}", ulid::Ulid::new()))
                    .await
                    .is_ok()
                {
                    tracing::warn!(request_id = %r.id, status = %r.status(), "requeued a request stuck since {}", r.updated_at);
                    report.requeued += 1;
                }
            }
        }
        let ttl = Duration::hours(i64::from(self.settings.approval_ttl_hours));
        let stale = self
            .store
            .list(&RequestQuery {
                status: Some(Status::PendingApproval),
                updated_before: Some(now - ttl),
                limit: 100,
                ..RequestQuery::default()
            })
            .await?;
        for r in stale {
            let change = self.change(
                Action::Expire,
                Principal::service("sweeper"),
                Channel::System,
                Some(format!("no decision within {} hours", self.settings.approval_ttl_hours)),
            );
            match self.apply(&r, change, |_| {}).await {
                Ok(Applied::Done(_)) => report.expired += 1,
                Ok(Applied::Refused(..)) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        // After expiry: what expires now is not worth a reminder.
        report.reminded = self.remind(now).await?;
        // Only once their message's every try has run out: one still backing off would be
        // sent twice over.
        report.notices = self.requeue_notices(in_flight).await?;
        Ok(report)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub requeued: usize,
    pub expired: usize,
    /// Requests whose approvers were reminded.
    pub reminded: usize,
    /// Outbox entries queued again.
    pub notices: usize,
}

/// Notices a step adds to its transition's own, and the claims that decided them (the
/// org's capacity alerts).
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    pub intents: Vec<outbox::Intent>,
    pub claims: Vec<String>,
}
