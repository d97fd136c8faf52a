//! provision: creates the approved image's repo in the org (idempotently: an existing
//! repo is success) and records `provisioned` with the pull string and tags. For a
//! removal, deletes the repo instead (a repo already gone is success). A transient
//! registry failure is left to redelivery; on the last delivery, or on a permanent
//! failure, the request ends `failed`. Whom each of these tells (the requester, everyone
//! who asked for the image before, the approvers) is written with the transition and
//! delivered from the notify queue (`app::outbox`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use app::consumer::{process_batch_within, Budget};
use app::ports::{RegistryError, StoreError, WorkItem};
use app::workflow::{Applied, StepError};
use app::App;
use domain::{Action, Channel, Principal, ProvisionResult, Request, Status};

/// The app as the provision Lambda wires it: the org (or the trial org), and the notify
/// queue for the outcomes its transitions write. It sends no mail and calls no chat.
pub fn wire(lambda: &aws_adapter::Lambda) -> Result<App, app::config::ConfigError> {
    let registry = chainguard::registry_or_trial(&lambda.settings, lambda.sdk.credentials_provider())?;
    Ok(lambda.app().with_queue(lambda.queue()).with_registry(registry))
}

/// The longest one request may take before it is handed back to the queue: a lookup and
/// a create in Chainguard (each at most `chainguard::CALL_BUDGET`, token exchange
/// included) and the store. Two fit the
/// template's 60 s timeout (batch size 2) with `consumer::ANSWER_MARGIN` to spare.
pub const RECORD_BUDGET: std::time::Duration = std::time::Duration::from_secs(28);

/// The local consumer's handler: one SQS batch, no deadline.
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    handle_within(app, event, Budget::unbounded()).await
}

/// One SQS batch inside an invocation's time. A request given up part-way is redelivered:
/// an existing repo counts as created, so nothing is made twice.
pub async fn handle_within(app: &App, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    process_batch_within(event, budget, |item, d| provision(app, item, d.attempt)).await
}

fn actor() -> Principal {
    Principal::service("provision")
}

/// Provisions one request, from wherever it stands. `attempt` is the delivery count.
pub async fn provision(app: &App, item: WorkItem, attempt: u32) -> Result<(), StepError> {
    let mut r = app.load(item.request_id).await?;
    for _ in 0..8 {
        let applied = match r.status() {
            Status::Approved => {
                let start = if r.kind.is_add() {
                    Action::StartProvisioning
                } else {
                    Action::StartRemoval
                };
                app.apply(&r, app.change(start, actor(), Channel::System, None), |_| {})
                    .await
            }
            Status::Provisioning => match done(app, &r).await {
                Ok((action, why, result)) => {
                    app.apply(&r, app.change(action, actor(), Channel::System, Some(why)), |r| {
                        r.result = result
                    })
                    .await
                }
                Err(RegistryError::Retryable(why)) if attempt < app.settings.max_receives => {
                    return Err(StepError::Retryable(why))
                }
                Err(e) => {
                    let last_try = matches!(e, RegistryError::Retryable(_));
                    let why = if last_try {
                        format!("gave up after {attempt} attempts: {e}")
                    } else {
                        e.to_string()
                    };
                    app.fail(&r, actor(), &why).await?;
                    // On the last try, report failure too so the message lands in the dead letters.
                    return Err(if last_try {
                        StepError::Retryable(why)
                    } else {
                        StepError::Permanent(why)
                    });
                }
            },
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
        "the request kept changing under provisioning".into(),
    ))
}

/// The registry's part: the repo created (an addition) or deleted (a removal); the action
/// that records it, why, and the result to keep.
async fn done(app: &App, r: &Request) -> Result<(Action, String, Option<ProvisionResult>), RegistryError> {
    if !r.kind.is_add() {
        let why = match app.registry.delete_repo(r.image.name()).await? {
            Some(id) => format!("repo {id} deleted"),
            None => format!("`{}` was no longer in the org: nothing to delete", r.image.name()),
        };
        return Ok((Action::CompleteRemoval, why, None));
    }
    let repo = app.registry.create_repo(r.image.name(), r.image.name()).await?;
    // Created in the registry, then the process dies before `provisioned` is committed.
    app::failpoint!(
        "provision.after_create",
        Err(RegistryError::Retryable(
            "failpoint provision.after_create: died after the create".into()
        ))
    );
    let result = ProvisionResult {
        pull_string: Request::pull_string(app.registry.org_name(), &r.image),
        repo_id: repo.id,
        tags: repo.tags,
    };
    let why = format!("repo {} created", result.repo_id);
    Ok((Action::CompleteProvisioning, why, Some(result)))
}
