//! approval: the admins' way in. `GET /approvals/{token}` shows a confirmation page and
//! changes nothing (mail scanners open links); `POST /approvals/{token}` records the
//! decision the token is bound to. Admin clients decide through `POST
//! /requests/{id}/decision` and retry failed provisioning through `POST /requests/{id}/retry`.
//! Every path goes through [`decide`], so the first decision wins and any later one is
//! told who decided and when.

#[cfg(feature = "openapi")]
pub mod openapi;
mod pages;

mod slack;

use axum::extract::{Path, Request as HttpRequest, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use app::ports::{QueueName, RequestQuery, StoreError};
use app::workflow::Applied;
use app::App;
use domain::auth::token::{ApprovalClaims, RatingClaims, TokenError};
use domain::{clean_text, Action, Channel, Decision, Principal, Request, RequestId, Status, MAX_REASON_CHARS};
use http_api::{read_body, ApiError, Signed};

/// Every route `router` serves, as API Gateway routes; `infra/template.yaml` must declare
/// exactly these for this function (a test holds both to it).
pub const ROUTES: &[&str] = &[
    "GET /approvals/{token}",
    "POST /approvals/{token}",
    "POST /requests/{id}/decision",
    "POST /requests/{id}/retry",
    "GET /capacity",
    "GET /ratings/{token}",
    "POST /ratings/{token}",
    "POST /slack/interactions",
];

/// The app as the approval Lambda wires it: a decision queues provisioning or tells the
/// requester (mail, and chat where they asked there); it provisions nothing, and reads the
/// org's repositories for `GET /capacity` only (the read-only identity).
pub fn wire(lambda: &aws_adapter::Lambda) -> Result<App, app::config::ConfigError> {
    let registry = chainguard::registry_or_trial(&lambda.settings, lambda.sdk.credentials_provider())?;
    Ok(lambda
        .app()
        .with_queue(lambda.queue())
        .with_registry(registry)
        .with_chat(::slack::from_settings(&lambda.settings)?))
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/approvals/{token}", get(confirm_page).post(decide_by_link))
        .route("/requests/{id}/decision", post(decide_by_client))
        .route("/requests/{id}/retry", post(retry))
        .route("/capacity", get(capacity))
        .route("/ratings/{token}", get(rating_page).post(rate_by_link))
        .route("/slack/interactions", post(slack::interaction))
        .layer(axum::middleware::from_fn(http_api::bounded_uri))
        .layer(axum::middleware::map_response(http_api::hygiene))
        .with_state(app)
}

#[derive(Debug)]
pub enum DecideError {
    NotFound,
    /// The request is no longer waiting for a decision.
    AlreadyDecided {
        status: Status,
        by: Option<Principal>,
        at: DateTime<Utc>,
    },
    Unavailable(StoreError),
}

impl DecideError {
    fn already(r: &Request) -> Self {
        DecideError::AlreadyDecided {
            status: r.status(),
            by: r.decision.as_ref().map(|d| d.by.clone()),
            at: r.decision.as_ref().map_or(r.updated_at, |d| d.at),
        }
    }

    pub fn message(&self) -> String {
        match self {
            DecideError::NotFound => "no such request".into(),
            DecideError::AlreadyDecided {
                status,
                by: Some(by),
                at,
            } => format!(
                "already decided by {by} at {} (now {status})",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            DecideError::AlreadyDecided { status, by: None, at } => format!(
                "no longer waiting for a decision: {status} since {}",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            DecideError::Unavailable(_) => "the service is temporarily unavailable; try again shortly".into(),
        }
    }

    fn status_code(&self) -> StatusCode {
        match self {
            DecideError::NotFound => StatusCode::NOT_FOUND,
            DecideError::AlreadyDecided { .. } => StatusCode::CONFLICT,
            DecideError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Records an approver's decision on a pending request: a conditional write, so of two
/// simultaneous decisions exactly one is stored. Then queues provisioning, or tells the
/// requester of a denial.
pub async fn decide(
    app: &App,
    id: RequestId,
    approver: Principal,
    approve: bool,
    reason: Option<String>,
    channel: Channel,
) -> Result<Request, DecideError> {
    let mut r = app
        .store
        .get(id)
        .await
        .map_err(DecideError::Unavailable)?
        .ok_or(DecideError::NotFound)?;
    loop {
        let change = app.change(
            if approve { Action::Approve } else { Action::Deny },
            approver.clone(),
            channel,
            reason.clone(),
        );
        // The status machine accepts a person's decision only while the request waits
        // for one: anything else comes back refused, below.
        let decision = Decision {
            by: approver.clone(),
            at: change.at,
            approved: approve,
            reason: reason.clone(),
            channel,
        };
        match app.apply(&r, change.clone(), |r| r.decision = Some(decision)).await {
            Ok(Applied::Done(done)) => {
                // A denial's news goes through the outbox, with the transition.
                if approve {
                    if let Err(e) = app.enqueue(QueueName::Provision, done.id, &done.id.to_string()).await {
                        tracing::error!(request_id = %done.id, error = %e, "approved but not queued; the sweep will queue it");
                    }
                }
                return Ok(done);
            }
            Ok(Applied::Refused(current, _)) => {
                let e = DecideError::already(&current);
                app.refuse(&current, &change, &e.message()).await;
                return Err(e);
            }
            // Someone else wrote first: read what they did and report it.
            Err(StoreError::Conflict) => {
                r = app
                    .store
                    .get(id)
                    .await
                    .map_err(DecideError::Unavailable)?
                    .ok_or(DecideError::NotFound)?
            }
            Err(e) => return Err(DecideError::Unavailable(e)),
        }
    }
}

/// Why a link cannot be used, as the page the admin sees: naming the request where the
/// link's claims can be trusted (it verified, but its approver was removed).
struct LinkProblem(StatusCode, String, Option<RequestId>);

impl LinkProblem {
    async fn page(self, app: &App, typed: Option<&str>) -> Response {
        let r = match self.2 {
            Some(id) => app.store.get(id).await.ok().flatten(),
            None => None,
        };
        let about = r.as_ref().map(|r| (r, app.settings.org_name.as_str()));
        let html = pages::problem("This link cannot be used", &self.1, about, typed);
        (self.0, Html(html)).into_response()
    }
}

/// The token's claims, if it verifies and its approver is still an approver.
fn check_token(app: &App, token: &str) -> Result<ApprovalClaims, LinkProblem> {
    let claims = app
        .token_keys()
        .verify::<ApprovalClaims>(token, app.clock.now())
        .map_err(|e| {
            let code = match e {
                TokenError::Invalid => StatusCode::FORBIDDEN,
                TokenError::Expired(_) => StatusCode::GONE,
            };
            LinkProblem(code, e.to_string(), None)
        })?;
    if !app
        .settings
        .approvers
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&claims.approver))
    {
        return Err(LinkProblem(
            StatusCode::FORBIDDEN,
            format!(
                "{} is no longer an approver, so this link no longer decides anything. Nothing was recorded.",
                claims.approver
            ),
            Some(claims.request_id),
        ));
    }
    Ok(claims)
}

/// A page about a request that is not waiting for this link's decision.
fn not_waiting(app: &App, r: &Request, title: &str, why: &str, typed: Option<&str>) -> Response {
    let e = DecideError::already(r);
    let html = pages::problem(title, why, Some((r, app.settings.org_name.as_str())), typed);
    (e.status_code(), Html(html)).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::problem("Not found", "This request does not exist.", None, None)),
    )
        .into_response()
}

/// `{token}`: an approval link's credential.
#[cfg(feature = "openapi")]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct LinkToken {
    /// An approval email's signed token, `<key id>.<claims>.<MAC>`: an HMAC-SHA256 under
    /// the approval key binding the request, the approver, the decision and the expiry.
    /// The link is the credential: it works once, until it expires.
    token: String,
}

/// Why a link cannot be used: the page says so.
#[cfg(feature = "openapi")]
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum LinkProblems {
    /// The link does not verify, or its approver is no longer an approver
    #[response(status = 403, content_type = "text/html")]
    Forbidden(String),
    /// The request does not exist
    #[response(status = 404, content_type = "text/html")]
    NotFound(String),
    /// Already decided (by whom and when), or the link was used
    #[response(status = 409, content_type = "text/html")]
    Decided(String),
    /// The link has expired
    #[response(status = 410, content_type = "text/html")]
    Expired(String),
}

/// The page an approval email links to: the request's facts and a button to confirm.
/// Opening it changes nothing.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/approvals/{token}", tag = "approvals",
    params(LinkToken),
    responses(
        (status = 200, description = "The confirmation page", content_type = "text/html", body = String),
        LinkProblems,
    ),
))]
async fn confirm_page(State(app): State<App>, Path(token): Path<String>) -> Response {
    let claims = match check_token(&app, &token) {
        Ok(c) => c,
        Err(problem) => return problem.page(&app, None).await,
    };
    match app.store.get(claims.request_id).await {
        Ok(Some(r)) if r.status() == Status::PendingApproval => {
            // The requester's other recent requests: context for the decision, best effort.
            let others: Vec<Request> = app
                .store
                .list(&RequestQuery {
                    requester: Some(r.requester.clone()),
                    limit: 6,
                    ..RequestQuery::default()
                })
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|o| o.id != r.id)
                .take(5)
                .collect();
            let cx = pages::Context {
                org: &app.settings.org_name,
                link_expires: DateTime::from_timestamp(claims.expires, 0).unwrap_or_else(|| app.clock.now()),
                others: &others,
            };
            Html(pages::confirm(&r, &claims, &cx)).into_response()
        }
        Ok(Some(r)) => {
            let why = format!("{}: {}.", r.image, DecideError::already(&r).message());
            not_waiting(&app, &r, "Already decided", &why, None)
        }
        Ok(None) => not_found(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkForm {
    #[serde(default)]
    reason: String,
}

fn optional_reason(s: &str) -> Result<Option<String>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    clean_text("reason", s, MAX_REASON_CHARS)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The confirmation page's form: records the link's decision (once; the first decision on
/// a request wins) and answers the page that says what was recorded.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/approvals/{token}", tag = "approvals",
    params(LinkToken),
    request_body(content = LinkForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Recorded: the decision, the reason, and where to follow the request", content_type = "text/html", body = String),
        (status = 400, description = "The reason is not valid", content_type = "text/html", body = String),
        LinkProblems,
        (status = 415, description = "The body is not the page's form", content_type = "text/html", body = String),
    ),
))]
async fn decide_by_link(State(app): State<App>, Path(token): Path<String>, req: HttpRequest) -> Response {
    let claims = check_token(&app, &token);
    let body = match read_body(req, app.settings.max_body_bytes).await {
        Ok((parts, b)) => {
            let form = parts
                .headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(http_api::is_form);
            if !b.is_empty() && !form {
                let why = "This page's form sends application/x-www-form-urlencoded; nothing else is read.";
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    Html(pages::problem("Not recorded", why, None, None)),
                )
                    .into_response();
            }
            b
        }
        Err(e) => return e.into_response(),
    };
    let form = serde_urlencoded_form(&body);
    // What the approver typed, given back on every page that records nothing.
    let typed_text = form.as_ref().ok().map(|f| f.reason.trim().to_string());
    let typed = typed_text.as_deref().filter(|t| !t.is_empty());
    let claims = match claims {
        Ok(c) => c,
        Err(problem) => return problem.page(&app, typed).await,
    };
    let reason = match form.and_then(|f| optional_reason(&f.reason)) {
        Ok(r) => r,
        Err(why) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(pages::problem("Not recorded", &why, None, typed)),
            )
                .into_response()
        }
    };
    let approver = Principal::Email(claims.approver.to_ascii_lowercase());
    // A link works once: its use is a conditional item that lives as long as the link.
    let key = domain::auth::token::use_key(&token);
    let until = DateTime::from_timestamp(claims.expires, 0).unwrap_or_else(|| app.clock.now());
    match app.store.claim_once(&key, app.clock.now(), until).await {
        Ok(true) => {}
        Ok(false) => return used_link(&app, &claims, approver, reason, typed).await,
        Err(e) => return ApiError::internal(e).into_response(),
    }
    match decide(
        &app,
        claims.request_id,
        approver,
        claims.approve,
        reason,
        Channel::Email,
    )
    .await
    {
        Ok(r) => Html(pages::decided(&r, &app.settings.org_name)).into_response(),
        Err(e) => {
            if matches!(e, DecideError::Unavailable(_)) {
                // Nothing was decided: let the admin click again.
                if let Err(e) = app.store.release(&key).await {
                    tracing::error!(request_id = %claims.request_id, error = %e, "could not release a link's use");
                }
            }
            match (&e, app.store.get(claims.request_id).await) {
                (DecideError::AlreadyDecided { .. }, Ok(Some(r))) => {
                    let why = format!("{}: {}. Your decision was not recorded.", r.image, e.message());
                    not_waiting(&app, &r, "Not recorded", &why, typed)
                }
                _ => (
                    e.status_code(),
                    Html(pages::problem("Not recorded", &e.message(), None, typed)),
                )
                    .into_response(),
            }
        }
    }
}

/// A second use of a link: refused, recorded, and answered with where the request stands.
async fn used_link(
    app: &App,
    claims: &ApprovalClaims,
    approver: Principal,
    reason: Option<String>,
    typed: Option<&str>,
) -> Response {
    let r = match app.store.get(claims.request_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let action = if claims.approve { Action::Approve } else { Action::Deny };
    let change = app.change(action, approver, Channel::Email, reason);
    let why = if r.status() == Status::PendingApproval {
        "this link has already been used".to_string()
    } else {
        DecideError::already(&r).message()
    };
    app.refuse(&r, &change, &why).await;
    let shown = format!("{}: {why}. Your decision was not recorded.", r.image);
    let html = pages::problem(
        "Not recorded",
        &shown,
        Some((&r, app.settings.org_name.as_str())),
        typed,
    );
    (StatusCode::CONFLICT, Html(html)).into_response()
}

fn serde_urlencoded_form(body: &[u8]) -> Result<LinkForm, String> {
    serde_urlencoded::from_bytes(body).map_err(|e| format!("the form is not valid: {e}"))
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Verb {
    Approve,
    Deny,
}

/// An admin client's decision.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verb,
    /// Shown to the requester; required to deny (at most 1,000 characters).
    #[serde(default)]
    reason: Option<String>,
}

fn parse_id(id: &str) -> Result<RequestId, ApiError> {
    id.parse()
        .map_err(|e: domain::BadRequestId| ApiError::bad_request(e.to_string()))
}

/// An admin client approves or denies a pending request (the CLI's `admin approve|deny`).
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/requests/{id}/decision", tag = "approvals",
    params(http_api::openapi::RequestPath),
    request_body(content = DecisionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded; the request as it stands now", body = domain::Request),
        (status = 404, description = "No such request", body = http_api::openapi::ErrorBody),
        (status = 409, description = "Already decided, by whom and when", body = http_api::openapi::ErrorBody),
    ),
    security(("client_signature" = [])),
))]
async fn decide_by_client(
    State(app): State<App>,
    Path(id): Path<String>,
    signed: Signed,
) -> Result<Json<serde_json::Value>, ApiError> {
    signed.require_admin()?;
    let id = parse_id(&id)?;
    let body: DecisionBody = signed.json()?;
    let reason = optional_reason(body.reason.as_deref().unwrap_or("")).map_err(ApiError::bad_request)?;
    let approve = matches!(body.decision, Verb::Approve);
    if !approve && reason.is_none() {
        return Err(ApiError::bad_request("a denial needs a reason: the requester reads it"));
    }
    decide(&app, id, signed.client.principal.clone(), approve, reason, Channel::Cli)
        .await
        .map(|r| Json(r.public()))
        .map_err(|e| ApiError::new(e.status_code(), e.message()).with(json!({ "request_id": id })))
}

/// An admin's retry of a failed request, from where it stopped: `failed → validating` (its
/// checks failed) or `failed → provisioning`, then queued.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/requests/{id}/retry", tag = "approvals",
    params(http_api::openapi::RequestPath),
    responses(
        (status = 200, description = "Provisioning again; the request as it stands now", body = domain::Request),
        (status = 404, description = "No such request", body = http_api::openapi::ErrorBody),
        (status = 409, description = "The request has not failed", body = http_api::openapi::ErrorBody),
    ),
    security(("client_signature" = [])),
))]
async fn retry(
    State(app): State<App>,
    Path(id): Path<String>,
    signed: Signed,
) -> Result<Json<serde_json::Value>, ApiError> {
    signed.require_admin()?;
    let id = parse_id(&id)?;
    let r = app
        .store
        .get(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no request {id}")))?;
    // From where it stopped: a request that failed before anyone approved it failed its
    // checks, and is checked again; else it is provisioned (or removed) again.
    let (start, queue) = match (r.decision.is_some(), r.kind.is_add()) {
        (false, _) => (Action::StartValidation, QueueName::Validate),
        (true, true) => (Action::StartProvisioning, QueueName::Provision),
        (true, false) => (Action::StartRemoval, QueueName::Provision),
    };
    let change = app.change(
        start,
        signed.client.principal.clone(),
        Channel::Cli,
        Some("retried by an admin".into()),
    );
    match app.apply(&r, change.clone(), |r| r.outcome = None).await {
        Ok(Applied::Done(done)) => {
            app.enqueue(queue, done.id, &done.id.to_string())
                .await
                .map_err(ApiError::internal)?;
            Ok(Json(done.public()))
        }
        Ok(Applied::Refused(current, refused)) => {
            app.refuse(&current, &change, &refused.to_string()).await;
            Err(ApiError::new(StatusCode::CONFLICT, refused.to_string()))
        }
        Err(StoreError::Conflict) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "the request changed meanwhile; look at it again",
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The org's repository count against its limit, and what could be removed: repositories
/// nobody asked for through this tool first, then those whose last request is oldest.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/capacity", tag = "approvals",
    responses((status = 200, description = "Used, limit and the cleanup list", body = Object)),
    security(("client_signature" = [])),
))]
async fn capacity(State(app): State<App>, signed: Signed) -> Result<Json<app::capacity::CapacityReport>, ApiError> {
    signed.require_admin()?;
    let unavailable = |e: app::ports::RegistryError| {
        ApiError::new(StatusCode::BAD_GATEWAY, format!("the registry could not be read: {e}"))
    };
    let repos = app.registry.org_repos().await.map_err(unavailable)?;
    // The plan's own limit, where it sets one: the same whatever image is named.
    let plan = app.registry.entitled("static").await.map_err(unavailable)?.max_images;
    let limit = app::capacity::limit(app.settings.org_repo_limit, plan);
    Ok(Json(
        app.capacity_report(&repos, limit).await.map_err(ApiError::internal)?,
    ))
}

/// A rating link's claims, or the page that says why it cannot be used.
fn check_rating(app: &App, token: &str) -> Result<RatingClaims, LinkProblem> {
    let problem = |code: StatusCode, why: String| LinkProblem(code, why, None);
    let keys = app
        .audit_keys()
        .ok_or_else(|| problem(StatusCode::FORBIDDEN, "Rating links are not signed here.".into()))?;
    keys.verify::<RatingClaims>(token, app.clock.now())
        .map_err(|e| match e {
            TokenError::Invalid => problem(
                StatusCode::FORBIDDEN,
                "This is not a valid rating link (it may have been cut short or altered).".into(),
            ),
            TokenError::Expired(at) => problem(
                StatusCode::GONE,
                format!("This rating link expired at {}.", at.format("%Y-%m-%d %H:%M UTC")),
            ),
        })
}

/// A 👍 / 👎 link from an outcome mail: shows the request and a form; changes nothing.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/ratings/{token}", tag = "approvals",
    params(("token" = String, Path, description = "A rating link's signed claims")),
    responses(
        (status = 200, description = "The request and the form that records the rating", content_type = "text/html", body = String),
        (status = 403, description = "Not a valid rating link", content_type = "text/html", body = String),
        (status = 404, description = "No such request", content_type = "text/html", body = String),
        (status = 410, description = "The link expired", content_type = "text/html", body = String),
    ),
))]
async fn rating_page(State(app): State<App>, Path(token): Path<String>) -> Response {
    let claims = match check_rating(&app, &token) {
        Ok(c) => c,
        Err(problem) => return problem.page(&app, None).await,
    };
    match app.store.get(claims.request_id).await {
        Ok(Some(r)) => Html(pages::rate(&r, claims.up, &app.settings.org_name)).into_response(),
        Ok(None) => not_found(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingForm {
    #[serde(default)]
    comment: String,
}

/// The rating page's form: records the link's rating (each link once) with the comment.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/ratings/{token}", tag = "approvals",
    params(("token" = String, Path, description = "A rating link's signed claims")),
    request_body(content = RatingForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Recorded", content_type = "text/html", body = String),
        (status = 400, description = "The comment is not valid", content_type = "text/html", body = String),
        (status = 403, description = "Not a valid rating link, or not the link's to rate", content_type = "text/html", body = String),
        (status = 409, description = "This link was used already, or the request cannot be rated", content_type = "text/html", body = String),
        (status = 410, description = "The link expired", content_type = "text/html", body = String),
    ),
))]
async fn rate_by_link(State(app): State<App>, Path(token): Path<String>, req: HttpRequest) -> Response {
    let claims = match check_rating(&app, &token) {
        Ok(c) => c,
        Err(problem) => return problem.page(&app, None).await,
    };
    let not_recorded = |code: StatusCode, why: &str, typed: Option<&str>| {
        (code, Html(pages::problem("Not recorded", why, None, typed))).into_response()
    };
    let body = match read_body(req, app.settings.max_body_bytes).await {
        Ok((_, b)) => b,
        Err(e) => return e.into_response(),
    };
    let form: RatingForm = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => return not_recorded(StatusCode::BAD_REQUEST, &format!("the form is not valid: {e}"), None),
    };
    let typed = Some(form.comment.trim()).filter(|t| !t.is_empty());
    let comment = match typed.map(|c| clean_text("comment", c, MAX_REASON_CHARS)).transpose() {
        Ok(c) => c,
        Err(e) => return not_recorded(StatusCode::BAD_REQUEST, &e.to_string(), typed),
    };
    let Ok(who) = claims.who.parse::<Principal>() else {
        return not_recorded(StatusCode::FORBIDDEN, "This link names nobody who can rate.", typed);
    };
    let key = domain::auth::token::use_key(&token);
    let until = DateTime::from_timestamp(claims.expires, 0).unwrap_or_else(|| app.clock.now());
    match app.store.claim_once(&key, app.clock.now(), until).await {
        Ok(true) => {}
        Ok(false) => {
            return not_recorded(
                StatusCode::CONFLICT,
                "This link was used already. The other link in the mail changes your rating.",
                typed,
            )
        }
        Err(e) => return ApiError::internal(e).into_response(),
    }
    match app
        .rate(claims.request_id, &who, claims.up, comment, Channel::Email)
        .await
    {
        Ok(r) => Html(pages::rated(&r, claims.up, &app.settings.org_name)).into_response(),
        Err(e) => {
            if let app::report::RateFailed::Store(_) = e {
                // Nothing was recorded: the link may be used again.
                if let Err(e) = app.store.release(&key).await {
                    tracing::error!(request_id = %claims.request_id, error = %e, "could not release a rating link's use");
                }
            }
            let code = match &e {
                app::report::RateFailed::NotFound(_) => StatusCode::NOT_FOUND,
                app::report::RateFailed::Refused(domain::RateError::NotAsker) => StatusCode::FORBIDDEN,
                app::report::RateFailed::Refused(_) => StatusCode::CONFLICT,
                app::report::RateFailed::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            not_recorded(code, &e.to_string(), typed)
        }
    }
}
