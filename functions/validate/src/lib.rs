//! validate: checks a received request against the catalog, the org and the policy, and
//! moves it to `rejected`, `already_available`, `pending_approval` (its notices asking
//! each approver, with their own links) or `approved` (queued for provisioning). It also
//! consumes the notify queue: every notice any function's transition wrote is sent here
//! (`app::outbox`).
//!
//! Idempotent: each step starts from the status it finds, so a redelivered message
//! continues where a crash stopped, and one whose work is done changes nothing.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use app::consumer::{process_batch_within, Budget, Delivered};
use app::ports::{QueueName, RequestQuery, StoreError, WorkItem};
use app::workflow::{Alerts, Applied, StepError};
use app::App;
use domain::{
    Action, Capacity, Change, Channel, Decision, Earlier, Principal, ProvisionResult, RejectReason, Request, Verdict,
    MAX_EARLIER,
};

/// The app as the validate Lambda wires it: the live catalog and org (or the trial org),
/// the provision queue, mail and chat for approvals and outcomes.
pub fn wire(lambda: &aws_adapter::Lambda) -> Result<App, app::config::ConfigError> {
    let registry = chainguard::registry_or_trial(&lambda.settings, lambda.sdk.credentials_provider())?;
    Ok(lambda
        .app()
        .with_queue(lambda.queue())
        .with_notifier(lambda.notifier())
        .with_registry(registry)
        .with_chat(slack::from_settings(&lambda.settings)?))
}

/// The longest one record may take before it is handed back to the queue: a request's
/// checks (a few Chainguard reads, each at most `chainguard::CALL_BUDGET`, the catalog
/// cached, and the store), or an outbox entry's messages (SNS, and Slack calls of at most
/// `slack::CALL_BUDGET` each; an entry cut short resumes with what it has not recorded as
/// sent). Inside the template's 30 s timeout with
/// `consumer::ANSWER_MARGIN` to spare; later records of a batch that would not fit are
/// handed back unstarted (infra/template.yaml, "Timeouts").
pub const RECORD_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// The local consumer's handler: one SQS batch, no deadline.
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    handle_within(app, event, Budget::unbounded()).await
}

/// One SQS batch inside an invocation's time.
pub async fn handle_within(app: &App, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    process_batch_within(event, budget, |item, d| async move {
        match item.notice {
            // The notify queue's messages: an outbox entry to deliver.
            Some(seq) => notices(app, item.request_id, seq, d).await,
            None => validate(app, item, d.attempt).await,
        }
    })
    .await
}

/// Delivers an outbox entry; where a channel failed, the message comes back after
/// `notice_retry_secs`, doubled at each try, and on its last try what still fails is
/// recorded undeliverable.
async fn notices(app: &App, id: domain::RequestId, seq: u64, d: Delivered) -> Result<(), StepError> {
    let last_try = d.attempt >= app.settings.max_receives;
    let failed = match app.dispatch(id, seq, last_try).await {
        Err(StepError::Retryable(why)) => why,
        other => return other.map(|_| ()),
    };
    let after = app::outbox::backoff(app.settings.notice_retry_secs, d.attempt);
    if let Err(e) = app.queue.retry_in(QueueName::Notify, &d.receipt, after).await {
        tracing::warn!(error = %e, "could not delay the notice's next try; it comes back after the queue's visibility timeout");
    }
    Err(StepError::Retryable(failed))
}

fn actor() -> Principal {
    Principal::service("validate")
}

/// What the checks concluded.
enum Finding {
    Reject {
        why: RejectReason,
        reason: String,
        suggestions: Vec<String>,
    },
    Available(ProvisionResult),
    AutoApprove(String),
    /// Approved by whoever merged the pull request that asked for it.
    PreApproved(Principal, String),
    NeedsApproval,
}

/// A removal: the image must be in the org; approved by a merged pull request or the
/// policy's `auto_approve_removals`, else by a person.
async fn check_removal(app: &App, r: &Request) -> Result<Finding, StepError> {
    let name = r.image.name();
    if app.registry.find_repo(name).await?.is_none() {
        return Ok(Finding::Reject {
            why: RejectReason::NotInOrg,
            reason: format!("`{name}` is not in `{}`", app.registry.org_name()),
            suggestions: vec![],
        });
    }
    if let Some(pre) = &r.pre_approval {
        return Ok(Finding::PreApproved(pre.merged_by(), pre.describe()));
    }
    Ok(match app.settings.policy.evaluate_removal(&r.image) {
        Verdict::AutoApprove { rule } => Finding::AutoApprove(rule),
        _ => Finding::NeedsApproval,
    })
}

/// A removal's history, for its approvers and to tell those who asked before: the image's
/// earlier requests, oldest first, the first (who got it into the org) and the newest
/// after it, at most `MAX_EARLIER`. An addition has none.
async fn history(app: &App, r: &Request) -> Result<Vec<Earlier>, StepError> {
    if r.kind.is_add() {
        return Ok(vec![]);
    }
    let found = app
        .store
        .list(&RequestQuery {
            image: Some(r.image.name().to_string()),
            limit: 1000,
            ..RequestQuery::default()
        })
        .await?;
    let mut all: Vec<Earlier> = found
        .into_iter()
        .filter(|e| e.id != r.id)
        .map(|e| Earlier {
            id: e.id,
            kind: e.kind,
            requester: e.requester.clone(),
            status: e.status(),
            at: e.created_at,
        })
        .collect();
    all.sort_by_key(|e| e.at);
    if all.len() > MAX_EARLIER {
        let newest = all.split_off(all.len() - (MAX_EARLIER - 1));
        all.truncate(1);
        all.extend(newest);
    }
    Ok(all)
}

/// `counted` gets the org's repository count where the checks got that far, and `alerts`
/// the approvers' capacity alerts it makes (sent with the finding's transition).
async fn check(
    app: &App,
    r: &Request,
    counted: &mut Option<Capacity>,
    alerts: &mut Alerts,
) -> Result<Finding, StepError> {
    if !r.kind.is_add() {
        return check_removal(app, r).await;
    }
    let name = r.image.name();
    let catalog = app.registry.catalog().await?;
    if !catalog.contains(name) {
        return Ok(Finding::Reject {
            why: RejectReason::NotInCatalog,
            reason: format!("`{name}` is not in the Chainguard catalog"),
            suggestions: catalog.suggest(name, 3),
        });
    }
    // The pull string names the tag asked for: it must be one the image has.
    let tag = r.image.tag();
    let tags = app.registry.catalog_tags(name).await?;
    if !tags.iter().any(|t| t == tag) {
        return Ok(Finding::Reject {
            why: RejectReason::UnknownTag,
            reason: format!("`{name}` has no tag `{tag}` in the Chainguard catalog (tags are case-sensitive)"),
            suggestions: domain::catalog::closest_tags(tag, &tags, 3)
                .into_iter()
                .map(|t| format!("{name}:{t}"))
                .collect(),
        });
    }
    if let Some(repo) = app.registry.find_repo(name).await? {
        return Ok(Finding::Available(ProvisionResult {
            pull_string: Request::pull_string(app.registry.org_name(), &r.image),
            repo_id: repo.id,
            tags: repo.tags,
        }));
    }
    // Only a vouched environment counts: a requester's own claim never approves itself.
    let verdict = app
        .settings
        .policy
        .evaluate(&r.image, r.vouched_environment(), &r.requester);
    if let Verdict::Deny { rule } = &verdict {
        return Ok(Finding::Reject {
            why: RejectReason::DeniedByPolicy,
            reason: format!("denied by policy ({rule})"),
            suggestions: vec![],
        });
    }
    let entitlement = app.registry.entitled(name).await?;
    if entitlement.allowed == Some(false) {
        return Ok(Finding::Reject {
            why: RejectReason::NotEntitled,
            reason: format!("`{name}` is not among the images your organization's plan may add"),
            suggestions: vec![],
        });
    }
    let repos = app.registry.org_repos().await?;
    let count = repos.len();
    let limit = app::capacity::limit(app.settings.org_repo_limit, entitlement.max_images);
    let capacity = Capacity {
        used: count as u64,
        limit: limit as u64,
    };
    *counted = Some(capacity);
    *alerts = app.capacity_alerts(r, capacity, &repos).await;
    if count >= limit {
        return Ok(Finding::Reject {
            why: RejectReason::OrgLimit,
            reason: format!("the organization has {count} repositories, at its limit of {limit}"),
            suggestions: vec![],
        });
    }
    // A merged, reviewed pull request is the approval (after every check above).
    if let Some(pre) = &r.pre_approval {
        return Ok(Finding::PreApproved(pre.merged_by(), pre.describe()));
    }
    Ok(match verdict {
        Verdict::AutoApprove { rule } => Finding::AutoApprove(rule),
        _ => Finding::NeedsApproval,
    })
}

fn change(app: &App, action: Action, reason: Option<String>) -> Change {
    app.change(action, actor(), Channel::System, reason)
}

/// What the checks found beside their finding, kept on the request or sent with it.
struct Found {
    history: Vec<Earlier>,
    capacity: Option<Capacity>,
    alerts: Alerts,
}

async fn approve(
    app: &App,
    r: &Request,
    (by, channel, why): (Principal, Channel, String),
    Found {
        history,
        capacity,
        alerts,
    }: Found,
) -> Result<Applied, StoreError> {
    let c = app.change(Action::AutoApprove, by, channel, Some(why.clone()));
    let decision = Decision {
        by: c.actor.clone(),
        at: c.at,
        approved: true,
        reason: Some(why),
        channel,
    };
    app.apply_telling(
        r,
        c,
        |r| {
            r.decision = Some(decision);
            r.earlier = history;
            r.capacity = capacity;
        },
        alerts,
    )
    .await
}

/// Validates one request, from wherever it stands. On the queue's last delivery, checks
/// that still cannot be made fail the request (its approvers told, an admin may retry) as
/// the message goes to the dead letters.
pub async fn validate(app: &App, item: WorkItem, attempt: u32) -> Result<(), StepError> {
    let mut r = app.load(item.request_id).await?;
    for _ in 0..8 {
        let applied = match r.status() {
            domain::Status::Received => app.apply(&r, change(app, Action::StartValidation, None), |_| {}).await,
            domain::Status::Validating => {
                let (mut capacity, mut alerts) = (None, Alerts::default());
                let finding = match check(app, &r, &mut capacity, &mut alerts).await {
                    Err(StepError::Retryable(why)) if attempt >= app.settings.max_receives => {
                        let why = format!("checks gave up after {attempt} attempts: {why}");
                        app.fail(&r, actor(), &why).await?;
                        return Err(StepError::Retryable(why));
                    }
                    other => other?,
                };
                // What goes on to a decision carries a removal's history: its approvers see
                // who asked for the image and what since, and those people are told at the end.
                let history = match finding {
                    Finding::Reject { .. } | Finding::Available(_) => vec![],
                    _ => history(app, &r).await?,
                };
                match finding {
                    Finding::Reject {
                        why,
                        reason,
                        suggestions,
                    } => {
                        let change = change(app, Action::Reject, Some(reason.clone()));
                        let edit = |r: &mut Request| {
                            r.outcome = Some(reason);
                            r.rejected_for = Some(why);
                            r.capacity = capacity;
                            r.suggestions = suggestions;
                        };
                        app.apply_telling(&r, change, edit, alerts).await
                    }
                    Finding::Available(result) => {
                        let why = format!("already in the org as {}", result.pull_string);
                        app.apply(&r, change(app, Action::FoundAvailable, Some(why)), |r| {
                            r.result = Some(result)
                        })
                        .await
                    }
                    Finding::NeedsApproval => {
                        let edit = |r: &mut Request| {
                            r.earlier = history;
                            r.capacity = capacity;
                        };
                        app.apply_telling(&r, change(app, Action::RequireApproval, None), edit, alerts)
                            .await
                    }
                    Finding::AutoApprove(rule) => {
                        let by = Principal::service("policy");
                        approve(
                            app,
                            &r,
                            (by, Channel::System, rule),
                            Found {
                                history,
                                capacity,
                                alerts,
                            },
                        )
                        .await
                    }
                    Finding::PreApproved(by, why) => {
                        approve(
                            app,
                            &r,
                            (by, Channel::PullRequest, why),
                            Found {
                                history,
                                capacity,
                                alerts,
                            },
                        )
                        .await
                    }
                }
            }
            // Approved by policy: make sure provisioning was queued (a crash may have come between).
            domain::Status::Approved => {
                app.enqueue(QueueName::Provision, r.id, &item.trace_id).await?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        r = match applied {
            Ok(Applied::Done(next)) => next,
            Ok(Applied::Refused(..)) => return Ok(()),
            Err(StoreError::Conflict) => app.load(item.request_id).await?,
            Err(e) => return Err(e.into()),
        };
    }
    Err(StepError::Retryable(
        "the request kept changing under validation".into(),
    ))
}

/// Why an invocation failed as a whole (a batch's single messages fail on their own).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("an event with `Records` that is not an SQS event: {0}")]
    NotSqs(serde_json::Error),
    #[error("the sweep could not read or write requests: {0}")]
    Sweep(#[from] StoreError),
}

/// What the validate Lambda receives: its queue's batches, or the schedule's tick that
/// runs the sweep (one function fewer to deploy and grant).
pub async fn handle_any(app: &App, event: serde_json::Value, budget: Budget) -> Result<serde_json::Value, InvokeError> {
    if event.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event).map_err(InvokeError::NotSqs)?;
        return Ok(serde_json::to_value(handle_within(app, batch, budget).await).expect("batch responses serialise"));
    }
    let report = app.sweep(chrono::Duration::minutes(5)).await?;
    let oldest = oldest_pending_age(app).await?;
    // Hours, so the alarm's threshold is the template's parameter as given; no dimension,
    // as the alarm reads it.
    app.metrics
        .put_unlabelled("OldestPendingApprovalHours", oldest as f64 / 3600.0);
    tracing::info!(
        requeued = report.requeued,
        expired = report.expired,
        reminded = report.reminded,
        oldest_pending_secs = oldest,
        "sweep done"
    );
    Ok(serde_json::json!({
        "requeued": report.requeued,
        "expired": report.expired,
        "reminded": report.reminded,
        "oldest_pending_secs": oldest
    }))
}

/// Seconds the oldest pending approval has waited (0 when none waits).
pub async fn oldest_pending_age(app: &App) -> Result<i64, app::ports::StoreError> {
    let oldest = app
        .store
        .list(&app::ports::RequestQuery {
            status: Some(domain::Status::PendingApproval),
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(oldest
        .first()
        .map_or(0, |r| (app.clock.now() - r.created_at).num_seconds().max(0)))
}
