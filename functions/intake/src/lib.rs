//! intake: the HTTP entry for asking. `POST /requests` parses and authenticates a request,
//! stores it (`received`, with its first audit event) and queues it for validation;
//! `GET /requests/{id}` answers its status and audit timeline; `GET /requests` lists them
//! for admins; `GET /catalog?q=` searches the catalog; `POST /requests/{id}/rating` takes
//! a requester's 👍 or 👎; `GET /reports/weekly` answers admins what the tool achieved.

#[cfg(feature = "openapi")]
pub mod openapi;
mod slack;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use app::ports::{QueueName, RequestQuery, StoreError};
use app::report::{Range, RateFailed};
use app::workflow::Submitted;
use app::App;
use domain::{
    Channel, Environment, ImageRef, Justification, Kind, NewRequest, PreApproval, Principal, Request, RequestId,
    RequestView, Status, MAX_IDEMPOTENCY_KEY_LEN,
};
use http_api::{ApiError, Signed};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Every route `router` serves, as API Gateway routes; `infra/template.yaml` must declare
/// exactly these for this function (a test holds both to it).
pub const ROUTES: &[&str] = &[
    "GET /openapi.json",
    "POST /requests",
    "GET /requests",
    "GET /requests/{id}",
    "GET /catalog",
    "POST /requests/{id}/rating",
    "GET /reports/weekly",
    "POST /slack/commands",
];

/// The app as the intake Lambda wires it: it stores and queues requests, sends no mail
/// and provisions nothing, so DynamoDB, the validate queue and the built-in catalog
/// snapshot (catalog searches; validation checks the live catalog).
pub fn wire(lambda: &aws_adapter::Lambda) -> Result<App, app::config::ConfigError> {
    let snapshot = std::sync::Arc::new(app::trial::TrialOrg::new(&lambda.settings.org_name));
    Ok(lambda.app().with_queue(lambda.queue()).with_registry(snapshot))
}

/// The routes this function serves; the local server mounts the same router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/requests", post(submit).get(list))
        .route("/requests/{id}", get(status))
        .route("/catalog", get(catalog))
        .route("/requests/{id}/rating", post(rate))
        .route("/reports/weekly", get(weekly_report))
        .route("/slack/commands", post(slack::command))
        .layer(axum::middleware::from_fn(http_api::bounded_uri))
        .layer(axum::middleware::map_response(http_api::hygiene))
        .with_state(app)
}

/// The API's contract, as committed (generated from these handlers by `cgr-request openapi`;
/// a test holds the two equal). Public: it describes, it grants nothing.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/openapi.json", tag = "contract",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)),
))]
async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../../infra/openapi.json"),
    )
        .into_response()
}

/// What a client submits: JSON, or the same fields as a URL-encoded form (a form tool's
/// webhook, where blank fields count as absent).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// A catalog image name with an optional tag: `python`, `python:3.12`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            examples("python:3.12"),
            pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$",
            max_length = 255
        )
    )]
    pub image: String,
    /// `add` (the default) to have the image added to the organization, or `remove` to
    /// have it removed.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(add|remove)?$"))]
    pub kind: Option<String>,
    /// Why it is needed (or, to remove it, why it should go): 1 to 1,000 characters, shown to approvers.
    #[cfg_attr(
        feature = "openapi",
        schema(examples("Data pipeline for the reporting team"), min_length = 1, max_length = 1000)
    )]
    pub justification: String,
    /// `dev`, `staging` or `prod`: counts for auto-approval only where the client is
    /// configured to vouch for it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(dev|staging|prod)?$"))]
    pub environment: Option<String>,
    /// Only for clients trusted to name another requester (`email:…`, `github:…`).
    #[serde(default)]
    pub requester: Option<String>,
    /// `api`, `cli`, `form` or `pull_request` (default `api`, or `form` for a form body).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(api|cli|form|pull_request)?$"))]
    pub channel: Option<String>,
    /// The merged pull request that approved it; only for clients allowed to pre-approve.
    #[serde(default)]
    pub approval: Option<PreApproval>,
}

/// Every field parsed; the first bad one is refused with what to fix.
fn parse_submission(
    body: SubmitBody,
    signed: &Signed,
    idempotency_key: Option<String>,
) -> Result<(NewRequest, Option<PreApproval>), ApiError> {
    if body.approval.is_some() && !signed.client.pre_approve {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "client `{}` may not submit pre-approved requests: leave out `approval`",
                signed.client.id
            ),
        ));
    }
    let field = |name: &str, e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("{name}: {e}")).with(json!({ "field": name }))
    };
    let kind = match body.kind.as_deref() {
        None | Some("") => Kind::Add,
        Some(k) => k
            .parse::<Kind>()
            .map_err(|_| field("kind", &format!("`{k}` is not one of add, remove")))?,
    };
    let image = ImageRef::parse(&body.image).map_err(|e| field("image", &e))?;
    let justification = Justification::parse(&body.justification).map_err(|e| field("justification", &e))?;
    // Form tools send empty fields for what was left blank.
    let environment = body
        .environment
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(str::parse::<Environment>)
        .transpose()
        .map_err(|e| field("environment", &e))?;
    let channel = match body.channel.as_deref() {
        None if signed.form => Channel::Form,
        None => Channel::Api,
        Some(name) => name
            .parse::<Channel>()
            .ok()
            .filter(|c| Channel::SUBMITTED_BY_CLIENTS.contains(c))
            .ok_or_else(|| {
                let names: Vec<&str> = Channel::SUBMITTED_BY_CLIENTS.iter().map(|c| c.into()).collect();
                field("channel", &format!("`{name}` is not one of {}", names.join(", ")))
            })?,
    };
    let requester = match body.requester.filter(|r| !r.is_empty()) {
        None => signed.client.principal.clone(),
        Some(p) if signed.client.assert_requester => p.parse::<Principal>().map_err(|e| field("requester", &e))?,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "client `{}` may not submit on behalf of someone else: leave out `requester`",
                    signed.client.id
                ),
            ))
        }
    };
    // The client's configuration vouches, never the body: a claim is kept, not counted.
    let repository = body.approval.as_ref().map(|a| a.repository());
    let environment_vouched_by = environment.and_then(|e| signed.client.vouch(e, repository));
    let new = NewRequest {
        kind,
        image,
        requester,
        justification,
        environment,
        environment_vouched_by,
        channel,
        idempotency_key,
    };
    Ok((new, body.approval))
}

fn idempotency_key(headers: &HeaderMap, client: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()));
    let key = key.ok_or_else(|| {
        ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        ))
    })?;
    // Scoped per client, so two clients cannot collide on (or probe) each other's keys.
    Ok(Some(format!("{client}:{key}")))
}

/// What `POST /requests` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, serde::Serialize)]
pub struct Accepted {
    pub id: RequestId,
    pub status: Status,
    pub image: ImageRef,
    /// Where to follow it (`GET`, signed).
    pub status_url: String,
    /// The image was already asked for, and that request is open: this is that request,
    /// and the asker now watches it (told of its outcome); nothing new was made.
    pub joined: bool,
}

fn accepted(app: &App, r: &Request, joined: bool) -> Accepted {
    Accepted {
        id: r.id,
        status: r.status(),
        image: r.image.clone(),
        status_url: format!("{}/requests/{}", app.settings.public_url(), r.id),
        joined,
    }
}

/// Submits a request: stored `received` with its first audit event, then queued for
/// validation. Idempotent under an `Idempotency-Key`; a signature is taken once.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/requests", tag = "requests",
    request_body(content(
        (SubmitBody = "application/json"),
        (SubmitBody = "application/x-www-form-urlencoded"),
    )),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 128 visible ASCII characters; the same key answers the same request")),
    responses(
        (status = 202, description = "Received: a new request", body = Accepted),
        (status = 200, description = "The request this Idempotency-Key already made, or the open request for the same image, now joined (`joined`)", body = Accepted),
        (status = 409, description = "This signature was already used", body = http_api::openapi::ErrorBody),
        (status = 422, description = "This Idempotency-Key made a different request", body = http_api::openapi::ErrorBody),
    ),
    security(("client_signature" = [])),
))]
async fn submit(State(app): State<App>, headers: HeaderMap, signed: Signed) -> Result<Response, ApiError> {
    let body: SubmitBody = signed.parse()?;
    let key = idempotency_key(&headers, &signed.client.id)?;
    let (new, pre_approval) = parse_submission(body, &signed, key)?;
    // The id comes from the signature: the same signed bytes again name the same request,
    // which the store refuses to create twice, so a signature is used once. A client that
    // lost the answer signs again under the same Idempotency-Key (covered by the
    // signature) and gets the original request back.
    let id = signed.request_id();
    let (mut request, event) = Request::submit(new, id, app.clock.now());
    request.pre_approval = pre_approval;
    let replayed = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "this signature was already used: a submission is signed once (to retry safely, \
             send an Idempotency-Key and sign each attempt again)",
        )
        .with(json!({ "replayed": true }))
    };
    // A join is claimed under the signature's id, so it too is taken once.
    let once = format!("submission#{id}");
    let created = match app.submit(&request, &event, Some(&once)).await {
        Err(StoreError::Conflict) => return Err(replayed()),
        other => other.map_err(ApiError::internal)?,
    };
    match created {
        // Found by its key, and named by this very signature: the same bytes again.
        Submitted::Existing(existing) if existing.id == id => Err(replayed()),
        Submitted::Joined(open) => Ok((StatusCode::OK, Json(accepted(&app, &open, true))).into_response()),
        Submitted::Opposed(open) => Err(opposed(&open)),
        Submitted::Existing(existing) => {
            if existing.kind != request.kind
                || existing.image != request.image
                || existing.justification != request.justification
                || existing.environment != request.environment
            {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "this Idempotency-Key was used for a different request; use a new key",
                )
                .with(json!({ "id": existing.id })));
            }
            Ok((StatusCode::OK, Json(accepted(&app, &existing, false))).into_response())
        }
        Submitted::New(r) => {
            tracing::info!(request_id = %r.id, image = %r.image, requester = %r.requester, "request received");
            if let Err(e) = app.enqueue(QueueName::Validate, r.id, &r.id.to_string()).await {
                // Stored, so not lost: the sweep queues it again.
                tracing::error!(request_id = %r.id, error = %e, "could not queue for validation");
            }
            Ok((StatusCode::ACCEPTED, Json(accepted(&app, &r, false))).into_response())
        }
    }
}

/// An addition while a removal of the image is open, or the reverse: refused, naming it.
fn opposed(open: &Request) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "`{}` has an open request to {} it ({}, {}): ask again when that one has ended",
            open.image.name(),
            open.kind,
            open.id,
            open.status_words()
        ),
    )
    .with(json!({ "id": open.id, "kind": open.kind, "status": open.status() }))
}

/// Who may read a request: its requester, admins, and clients that submit for others.
fn may_read(signed: &Signed, r: &Request) -> bool {
    signed.client.admin || signed.client.assert_requester || r.asked_by(&signed.client.principal)
}

/// A request with its audit timeline, as `GET /requests/{id}` answers it.
pub async fn request_view(app: &App, r: &Request) -> Result<Value, ApiError> {
    let view = RequestView {
        request: r.clone(),
        audit: app.audit.timeline(r.id).await.map_err(ApiError::internal)?,
        refused_attempts: app.audit.refusals(r.id).await.map_err(ApiError::internal)?,
    };
    Ok(view.public())
}

/// A request with its audit timeline and refused attempts: its requester's, or any for
/// admins and clients that submit for others.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/requests/{id}", tag = "requests",
    params(http_api::openapi::RequestPath),
    responses(
        (status = 200, description = "The request, its audit timeline and refused attempts", body = domain::RequestView),
        (status = 404, description = "No such request (or not this client's to read)", body = http_api::openapi::ErrorBody),
    ),
    security(("client_signature" = [])),
))]
async fn status(State(app): State<App>, Path(id): Path<String>, signed: Signed) -> Result<Json<Value>, ApiError> {
    let r = readable(&app, &signed, parse_id(&id)?).await?;
    Ok(Json(request_view(&app, &r).await?))
}

/// The request, where this client may read it; else `404`, as if it did not exist: whoever
/// may not read a request does not learn that it exists.
async fn readable(app: &App, signed: &Signed, id: RequestId) -> Result<Request, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no request {id}"));
    let r = app
        .store
        .get(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    match may_read(signed, &r) {
        true => Ok(r),
        false => Err(not_found()),
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only requests in this status (`pending_approval`, `failed`, …).
    status: Option<String>,
    /// Only this requester's (`email:…`, `slack:…`, `github:…`).
    requester: Option<String>,
    /// Only requests for this image name.
    image: Option<String>,
    /// At most this many, newest first (1 to 500, default 50).
    limit: Option<usize>,
}

/// What `GET /requests` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize)]
pub struct RequestList {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<domain::Request>))]
    pub requests: Vec<Value>,
}

/// Requests, newest first, for admin clients.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/requests", tag = "requests",
    params(ListParams),
    responses((status = 200, description = "Matching requests, newest first", body = RequestList)),
    security(("client_signature" = [])),
))]
async fn list(
    State(app): State<App>,
    Query(p): Query<ListParams>,
    signed: Signed,
) -> Result<Json<RequestList>, ApiError> {
    signed.require_admin()?;
    let query = RequestQuery {
        status: p
            .status
            .as_deref()
            .map(str::parse::<Status>)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        requester: p
            .requester
            .as_deref()
            .map(str::parse::<Principal>)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        image: p
            .image
            .as_deref()
            .map(ImageRef::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .map(|i| i.name().to_string()),
        limit: p.limit.unwrap_or(50).clamp(1, 500),
        ..RequestQuery::default()
    };
    let requests = app.store.list(&query).await.map_err(ApiError::internal)?;
    Ok(Json(RequestList {
        requests: requests.iter().map(Request::public).collect(),
    }))
}

#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogParams {
    /// A word to search the catalog for (1 to 100 characters).
    q: Option<String>,
    /// An exact image name: is it in the catalog, and already in the org?
    name: Option<String>,
    /// At most this many matches (1 to 50, default 10).
    limit: Option<usize>,
}

/// What `GET /catalog` answers: a search's matches, or what is known of one name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum CatalogAnswer {
    Search {
        query: String,
        /// Catalog names, best first.
        matches: Vec<String>,
    },
    Name {
        name: String,
        in_catalog: bool,
        /// Close catalog names, where it is not in the catalog.
        suggestions: Vec<String>,
        /// Already in the organization.
        provisioned: bool,
        pull_string: Option<String>,
    },
}

/// Searches the catalog (`q`), or checks one name (`name`): in the catalog, already in the
/// organization.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/catalog", tag = "catalog",
    params(CatalogParams),
    responses((status = 200, description = "Matches, or the name's standing", body = CatalogAnswer)),
    security(("client_signature" = [])),
))]
async fn catalog(
    State(app): State<App>,
    Query(p): Query<CatalogParams>,
    _signed: Signed,
) -> Result<Json<CatalogAnswer>, ApiError> {
    let catalog = app.registry.catalog().await.map_err(ApiError::internal)?;
    if let Some(name) = p.name {
        let image = ImageRef::parse(&name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
        let in_catalog = catalog.contains(image.name());
        let repo = match in_catalog {
            true => app.registry.find_repo(image.name()).await.map_err(ApiError::internal)?,
            false => None,
        };
        return Ok(Json(CatalogAnswer::Name {
            name: image.name().to_string(),
            in_catalog,
            suggestions: if in_catalog {
                vec![]
            } else {
                catalog.suggest(image.name(), 3)
            },
            provisioned: repo.is_some(),
            pull_string: repo.map(|_| Request::pull_string(app.registry.org_name(), &image)),
        }));
    }
    let q = p.q.unwrap_or_default();
    if q.trim().is_empty() || q.len() > 100 {
        return Err(ApiError::bad_request("q must be 1 to 100 characters (or give name=)"));
    }
    let matches = catalog.search(&q, p.limit.unwrap_or(10).clamp(1, 50));
    Ok(Json(CatalogAnswer::Search { query: q, matches }))
}

fn parse_id(id: &str) -> Result<RequestId, ApiError> {
    id.parse()
        .map_err(|e: domain::BadRequestId| ApiError::bad_request(e.to_string()))
}

/// A rating of a request that ended with a pull string.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    /// `up` or `down`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(up|down)$"))]
    pub rating: String,
    /// What could be better (or was good): up to 1,000 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub comment: Option<String>,
    /// Only for clients trusted to name another requester: who is rating.
    #[serde(default)]
    pub rater: Option<String>,
}

/// Rates a request its requester (or someone who joined it) got a pull string from: 👍 or
/// 👎, with an optional comment. Recorded in the audit trail; rating again replaces the
/// earlier rating in reports.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/requests/{id}/rating", tag = "requests",
    params(http_api::openapi::RequestPath),
    request_body = RatingBody,
    responses(
        (status = 200, description = "Recorded; the request as it now stands", body = domain::Request),
        (status = 403, description = "Only whoever asked for the request may rate it", body = http_api::openapi::ErrorBody),
        (status = 404, description = "No such request", body = http_api::openapi::ErrorBody),
        (status = 409, description = "Not ended with a pull string, or this signature was used already", body = http_api::openapi::ErrorBody),
    ),
    security(("client_signature" = [])),
))]
async fn rate(State(app): State<App>, Path(id): Path<String>, signed: Signed) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let body: RatingBody = signed.parse()?;
    let up = match body.rating.as_str() {
        "up" => true,
        "down" => false,
        other => {
            return Err(
                ApiError::bad_request(format!("rating: `{other}` is not one of up, down"))
                    .with(json!({ "field": "rating" })),
            )
        }
    };
    let comment = body
        .comment
        .filter(|c| !c.trim().is_empty())
        .map(|c| domain::clean_text("comment", &c, domain::MAX_REASON_CHARS))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()).with(json!({ "field": "comment" })))?;
    let rater = match body.rater.filter(|r| !r.is_empty()) {
        None => signed.client.principal.clone(),
        Some(p) if signed.client.assert_requester => p
            .parse::<Principal>()
            .map_err(|e| ApiError::bad_request(format!("rater: {e}")).with(json!({ "field": "rater" })))?,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "client `{}` may not rate on behalf of someone else: leave out `rater`",
                    signed.client.id
                ),
            ))
        }
    };
    readable(&app, &signed, id).await?;
    let now = app.clock.now();
    let once = format!("rating#{}", signed.request_id());
    if !app
        .store
        .claim_once(&once, now, now + chrono::Duration::minutes(10))
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this signature was already used: sign each rating once",
        )
        .with(json!({ "replayed": true })));
    }
    match app.rate(id, &rater, up, comment, Channel::Api).await {
        Ok(r) => Ok(Json(r.public())),
        Err(RateFailed::NotFound(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no request {id}"))),
        Err(RateFailed::Refused(e @ domain::RateError::NotAsker)) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, e.to_string()))
        }
        Err(RateFailed::Refused(e)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(RateFailed::Store(e)) => Err(ApiError::internal(e)),
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// The last N ISO weeks, this one included (1 to 57; default 4).
    weeks: Option<u32>,
    /// The first day (`YYYY-MM-DD`, UTC) instead.
    since: Option<String>,
    /// The last day, included (`YYYY-MM-DD`; default today); only with `since`.
    until: Option<String>,
}

/// What the tool achieved per ISO week and in total, for admins: requests, outcomes,
/// approval and delivery times, approvers, top images, adoption, satisfaction and the time
/// saved (README, "Measuring success", defines every figure).
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/reports/weekly", tag = "reports",
    params(ReportParams),
    responses((status = 200, description = "The report", body = domain::report::Report)),
    security(("client_signature" = [])),
))]
async fn weekly_report(
    State(app): State<App>,
    Query(p): Query<ReportParams>,
    signed: Signed,
) -> Result<Json<domain::report::Report>, ApiError> {
    signed.require_admin()?;
    let now = app.clock.now();
    let range = match (p.weeks, p.since) {
        (Some(_), Some(_)) => Err("give weeks or since, not both".to_string()),
        (_, None) if p.until.is_some() => Err("until needs since".to_string()),
        (weeks, None) => Range::weeks(weeks.unwrap_or(4), now),
        (None, Some(since)) => Range::dates(&since, p.until.as_deref(), now),
    }
    .map_err(ApiError::bad_request)?;
    Ok(Json(app.report(range).await.map_err(ApiError::internal)?))
}
