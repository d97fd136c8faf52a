//! The outbox: what a transition must tell people is written in the transition's own
//! transaction (an [`Entry`] of [`Intent`]s beside the request and its audit event) and
//! delivered afterwards by [`App::dispatch`], from the notify queue (validate's second
//! event source on AWS, a consumer in `serve`). A crash between the commit and the sends
//! loses nothing: the entry stays pending and the sweep queues it again.
//!
//! Delivery is at least once and deduplicated by notice id: each delivery's id is
//! recorded (a `sent#<id>` claim) right after it is sent and checked before, so the only
//! possible duplicate is a crash between one send and its record. What still fails on the
//! queue's last delivery is recorded undeliverable ([`Undelivered`], shown by `cgr-request
//! audit`) and counted (`NotificationsUndeliverable`, alarmed).
//!
//! The entry holds intents, not rendered mail: links are signed when they are sent, so no
//! bearer link ever rests in a table.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::capacity::Candidate;
use crate::notify;
use crate::ports::{Message, StoreError, Undelivered};
use crate::workflow::StepError;
use crate::App;
use domain::{Action, Capacity, Channel, Principal, Request, RequestId, Status, Transition};

/// How long a delivery's `sent#` record is kept: longer than any entry can stay pending.
pub const SENT_RECORD_DAYS: i64 = 14;

/// How long the claims an entry takes hold, unless given back (a capacity line crossed
/// stays told until the count falls back).
pub const CLAIM_DAYS: i64 = 3650;

/// How long a notice waits after its `attempt`th try failed: `base_secs`, doubled at each
/// try, at most SQS's 12 hours.
pub fn backoff(base_secs: u64, attempt: u32) -> std::time::Duration {
    let secs = base_secs.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    std::time::Duration::from_secs(secs.min(12 * 3600))
}

/// What a transition must tell, and to whom, in words decided when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Intent {
    /// The news: the requester (by mail, and in chat where they asked), every watcher, and
    /// for a finished removal those who asked for the image before.
    Outcome,
    /// Each approver's mail with their own links; the first time, the chat post too.
    AskApprovers { reminder: bool },
    /// Each approver: something needs a person.
    AlertApprovers { what: String },
    /// Each approver: the org's repository count crossed a line (with what could go).
    Capacity {
        capacity: Capacity,
        cleanup: Vec<Candidate>,
    },
}

/// One transition's notices, keyed by the request and the transition's audit `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The request as the transition left it: what the messages say.
    pub request: Request,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub intents: Vec<Intent>,
    /// Claims taken with the entry (each only if free): what decided a notice that must
    /// go once, like a capacity alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
}

impl Entry {
    pub fn id(&self) -> String {
        entry_id(self.request.id, self.seq)
    }
}

pub fn entry_id(id: RequestId, seq: u64) -> String {
    format!("{id}.{seq:03}")
}

/// What a committed transition must tell, from the status machine's action: one table
/// for every function, so no handler can forget a notice.
pub fn intents(t: &Transition) -> Vec<Intent> {
    let r = &t.request;
    match t.event.action {
        Action::RequireApproval => vec![Intent::AskApprovers { reminder: false }],
        Action::Remind => vec![Intent::AskApprovers { reminder: true }],
        Action::Reject
        | Action::FoundAvailable
        | Action::Deny
        | Action::Expire
        | Action::CompleteProvisioning
        | Action::CompleteRemoval => vec![Intent::Outcome],
        Action::Fail => {
            let what = match (t.expected_status, r.kind.is_add()) {
                (Status::Validating, _) => "Checking",
                (_, true) => "Provisioning",
                (_, false) => "Removing",
            };
            let why = r.outcome.as_deref().unwrap_or("unknown error");
            vec![
                Intent::Outcome,
                Intent::AlertApprovers {
                    what: format!("{what} {} failed: {why}", r.image),
                },
            ]
        }
        _ => vec![],
    }
}

/// One message to send: its id (the dedup key, and the outbox file's name locally) and
/// where it goes.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub to: Route,
}

#[derive(Debug, Clone)]
pub enum Route {
    Mail(Message),
    /// A chat answer to someone (the request as addressed to them: their reply address
    /// or, without one, a direct message).
    Tell(Box<Request>, String),
    /// The approval post with buttons.
    PostApproval(Box<Request>),
}

impl Route {
    pub fn channel(&self) -> &'static str {
        match self {
            Route::Mail(_) => "mail",
            Route::Tell(..) | Route::PostApproval(_) => "chat",
        }
    }

    pub fn recipient(&self) -> String {
        match self {
            Route::Mail(m) => m.to.clone(),
            Route::Tell(r, _) => r.requester.to_string(),
            Route::PostApproval(_) => "approvals channel".into(),
        }
    }
}

/// A notice's id: the entry's, its place in the entry, and a digest of where it goes (no
/// address in a key or a file name).
fn delivery_id(entry: &Entry, n: usize, route: &Route) -> String {
    let digest = Sha256::digest(format!("{}\n{}", route.channel(), route.recipient()).as_bytes());
    let kind = match route {
        Route::Mail(m) => m.kind.as_str(),
        Route::Tell(..) => "chat",
        Route::PostApproval(_) => "chat_approval",
    };
    format!("{}.{n:02}.{}.{kind}", entry.id(), &hex::encode(digest)[..12])
}

/// What a dispatch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub sent: usize,
    /// Sent before (recorded): not sent again.
    pub skipped: usize,
    /// Given up on the last try: recorded undeliverable.
    pub undeliverable: usize,
}

impl App {
    /// The messages an entry makes, each with its id, in a fixed order. Links are signed
    /// now; a reminder's approval links keep the request's expiry.
    pub fn deliveries(&self, entry: &Entry) -> Vec<Delivery> {
        let r = &entry.request;
        let mut routes = vec![];
        for intent in &entry.intents {
            match intent {
                Intent::Outcome => self.outcome_routes(r, &mut routes),
                Intent::AskApprovers { reminder } => {
                    for m in self.approval_requests(r, *reminder, entry.at) {
                        routes.push(Route::Mail(m));
                    }
                    if !reminder && self.chat.is_some() {
                        routes.push(Route::PostApproval(Box::new(r.clone())));
                    }
                }
                Intent::AlertApprovers { what } => {
                    for a in &self.settings.approvers {
                        routes.push(Route::Mail(notify::approver_alert(r, a, what)));
                    }
                }
                Intent::Capacity { capacity, cleanup } => {
                    for a in &self.settings.approvers {
                        routes.push(Route::Mail(notify::capacity_alert(r, a, *capacity, cleanup)));
                    }
                }
            }
        }
        routes
            .into_iter()
            .enumerate()
            .map(|(n, to)| {
                let id = delivery_id(entry, n, &to);
                let to = match to {
                    Route::Mail(mut m) => {
                        m.id = id.clone();
                        Route::Mail(m)
                    }
                    other => other,
                };
                Delivery { id, to }
            })
            .collect()
    }

    fn outcome_routes(&self, r: &Request, routes: &mut Vec<Route>) {
        let message = notify::outcome(r);
        let mut mailed = message.clone();
        mailed.text += &self.rating_links(r, &r.requester);
        routes.push(Route::Mail(mailed));
        // Requesters who asked from chat hear back there too.
        if self.chat.is_some() && r.channel == Channel::Slack {
            routes.push(Route::Tell(Box::new(r.clone()), message.text));
        }
        // A removal done: those who asked for the image before hear it too (by mail).
        if !r.kind.is_add() && r.status() == Status::Provisioned {
            let mut told: Vec<&Principal> = vec![&r.requester];
            told.extend(r.watchers.iter().map(|w| &w.who));
            for earlier in &r.earlier {
                if !told.contains(&&earlier.requester) {
                    told.push(&earlier.requester);
                    routes.push(Route::Mail(notify::removal_for_earlier(r, &earlier.requester)));
                }
            }
        }
        // Those who joined hear the same news, by mail, and in chat by direct message.
        for w in &r.watchers {
            let message = notify::outcome_for_watcher(r, w);
            let mut mailed = message.clone();
            mailed.text += &self.rating_links(r, &w.who);
            routes.push(Route::Mail(mailed));
            if self.chat.is_some() && w.channel == Channel::Slack {
                // As if they had asked: no reply address of theirs is kept, so Slack DMs them.
                let mut theirs = r.clone();
                theirs.requester = w.who.clone();
                theirs.response_url = None;
                routes.push(Route::Tell(Box::new(theirs), message.text));
            }
        }
    }

    async fn send_one(&self, d: &Delivery) -> Result<(), String> {
        match &d.to {
            Route::Mail(m) => self.notifier.send(m).await.map_err(|e| e.to_string()),
            Route::Tell(r, text) => match &self.chat {
                Some(chat) => chat.tell(r, text, self.clock.now()).await.map_err(|e| e.to_string()),
                None => Ok(()),
            },
            Route::PostApproval(r) => match &self.chat {
                Some(chat) => chat.post_approval(r).await.map_err(|e| e.to_string()),
                None => Ok(()),
            },
        }
    }

    /// Delivers one entry's notices that were not sent before. On `last_try`, what still
    /// fails is recorded undeliverable and the entry is done; before it, a failure leaves
    /// the entry pending and is retryable (the queue delivers it again).
    pub async fn dispatch(&self, id: RequestId, seq: u64, last_try: bool) -> Result<Dispatched, StepError> {
        let Some(entry) = self.store.outbox(id, seq).await? else {
            // Done already (a redelivery), or never written: nothing to send.
            return Ok(Dispatched::default());
        };
        let mut report = Dispatched::default();
        let mut failed = vec![];
        for d in self.deliveries(&entry) {
            let key = format!("sent#{}", d.id);
            if self.store.holds(&key, self.clock.now()).await? {
                report.skipped += 1;
                continue;
            }
            match self.send_one(&d).await {
                Ok(()) => {
                    report.sent += 1;
                    crate::failpoint!(
                        "dispatch.after_send",
                        Err(StepError::Retryable(
                            "failpoint dispatch.after_send: died between a send and its record".into()
                        ))
                    );
                    let now = self.clock.now();
                    // The one window for a duplicate: a crash between the send and this.
                    self.store
                        .claim_once(&key, now, now + Duration::days(SENT_RECORD_DAYS))
                        .await?;
                }
                Err(why) => {
                    tracing::warn!(request_id = %id, notice = d.id, channel = d.to.channel(), error = why, "a notice was not delivered");
                    failed.push((d, why));
                }
            }
        }
        if !failed.is_empty() && !last_try {
            return Err(StepError::Retryable(format!(
                "{} notice(s) of {} not delivered: {}",
                failed.len(),
                entry.id(),
                failed[0].1
            )));
        }
        for (d, why) in failed {
            let u = Undelivered {
                request_id: id,
                at: self.clock.now(),
                notice: d.id.clone(),
                channel: d.to.channel().into(),
                to: d.to.recipient(),
                why,
            };
            tracing::error!(request_id = %id, notice = d.id, "a notice is undeliverable");
            self.audit.undelivered(&u).await?;
            self.metrics.put_unlabelled("NotificationsUndeliverable", 1.0);
            report.undeliverable += 1;
        }
        self.store.outbox_done(id, seq, self.clock.now()).await?;
        Ok(report)
    }

    /// Entries left pending longer than `grace` (a crash after their commit, or a queue
    /// that refused the message), queued again. The sweep gives the in-flight grace, longer
    /// than a notice's every try and wait (`backoff`), so no live message is doubled.
    pub(crate) async fn requeue_notices(&self, grace: Duration) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut n = 0;
        for (id, seq) in self.store.outbox_pending(now - grace, 100).await? {
            if self
                .enqueue_notice(id, seq, &format!("sweep-{}", ulid::Ulid::new()))
                .await
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_failed_notice_backs_off_doubling_up_to_twelve_hours() {
        let secs = |attempt| backoff(60, attempt).as_secs();
        assert_eq!([secs(1), secs(2), secs(3), secs(4)], [60, 120, 240, 480]);
        assert_eq!(backoff(60, 40), Duration::from_secs(12 * 3600));
        assert_eq!(backoff(0, 3), Duration::ZERO);
    }

    #[test]
    fn what_each_transition_tells_comes_from_its_action() {
        use domain::{Channel, ImageRef, Justification, NewRequest};
        let new = NewRequest {
            kind: Default::default(),
            image: ImageRef::parse("nginx").unwrap(),
            requester: "email:dev@example.com".parse().unwrap(),
            justification: Justification::parse("needed").unwrap(),
            environment: None,
            environment_vouched_by: None,
            channel: Channel::Api,
            idempotency_key: None,
        };
        let (r, _) = Request::submit(new, RequestId::new(), chrono::Utc::now());
        let step = |r: &Request, action: Action, edit: fn(&mut Request)| {
            let change = domain::Change {
                action,
                actor: Principal::service("test"),
                channel: Channel::System,
                reason: None,
                at: chrono::Utc::now(),
            };
            r.apply(change, edit).unwrap()
        };
        let t = step(&r, Action::StartValidation, |_| {});
        assert!(intents(&t).is_empty(), "starting tells nobody");
        let validating = t.request.clone();
        let asked = step(&validating, Action::RequireApproval, |_| {});
        assert_eq!(intents(&asked), [Intent::AskApprovers { reminder: false }]);
        let failed = step(&validating, Action::Fail, |r| {
            r.outcome = Some("the API is down".into())
        });
        assert_eq!(
            intents(&failed),
            [
                Intent::Outcome,
                Intent::AlertApprovers {
                    what: "Checking nginx:latest failed: the API is down".into()
                }
            ]
        );
        let denied = step(&asked.request, Action::Deny, |_| {});
        assert_eq!(intents(&denied), [Intent::Outcome]);
    }
}
