//! What every operation of the OpenAPI document (`infra/openapi.json`) shares: the error
//! body every error answers with, the error statuses every route may answer, and the
//! signatures that authenticate a call, described in words (HMAC is not an OpenAPI scheme).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

/// `{"error": …}`: every error answer of every route. Some add fields that say more.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong and what to do, in words.
    error: String,
    /// The body field that was refused (`400`).
    field: Option<String>,
    /// The request an Idempotency-Key already names (`422`).
    id: Option<domain::RequestId>,
    /// The request a decision was about (`409`, `404`).
    request_id: Option<domain::RequestId>,
    /// `true` when the signature was used before (`409`).
    replayed: Option<bool>,
}

/// `{id}`: the request a route is about.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct RequestPath {
    /// The request's id, `req-…`.
    id: String,
}

/// The statuses any route may answer, whoever answers them (the extractor, the limits,
/// the service), each with [`ErrorBody`].
const EVERY_ROUTE: [(&str, &str); 5] = [
    ("400", "The input is not valid: the error says which field and why."),
    ("413", "The body is larger than the configured limit."),
    ("414", "The path and query are longer than 8 KiB."),
    ("415", "The body's Content-Type is not one this route takes."),
    ("503", "The service is temporarily unavailable; try again shortly."),
];

/// The statuses of a signed route.
const SIGNED_ROUTE: [(&str, &str); 2] = [
    ("401", "The signature is missing, wrong or outside its 5-minute window."),
    (
        "403",
        "This client may not do this (an admin route, another's request, a requester it may not name).",
    ),
];

pub const CLIENT_SIGNATURE: &str = "client_signature";
pub const SLACK_SIGNATURE: &str = "slack_signature";

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))))
                .build(),
        )
        .build()
        .into()
}

fn add_errors(op: &mut Operation) {
    let signed = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let statuses = EVERY_ROUTE
        .iter()
        .chain(signed.then_some(SIGNED_ROUTE.iter()).into_iter().flatten());
    for (status, description) in statuses {
        op.responses
            .responses
            .entry((*status).to_string())
            .or_insert_with(|| error(description));
    }
}

/// Adds the error body, the error statuses of every route, and the signature schemes.
pub struct Shared;

impl Modify for Shared {
    fn modify(&self, api: &mut OpenApi) {
        for item in api.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_errors(op);
            }
        }
        let components = api.components.get_or_insert_with(Default::default);
        components.schemas.insert("ErrorBody".into(), ErrorBody::schema());
        components.security_schemes.insert(
            CLIENT_SIGNATURE.into(),
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Signature",
                "An API client's HMAC-SHA256 signature. Send `X-Client-Id`, `X-Timestamp` (Unix \
                 seconds, within 5 minutes of the server) and `X-Signature: v2=<hex>`, the HMAC \
                 under the client's secret of `v2:<timestamp>:<METHOD>:<path and query>:<Content-Type>:\
                 <Idempotency-Key>:<raw body>` (a header not sent is empty between its colons). A \
                 submission's signature is taken once: sign each attempt again.",
            ))),
        );
        components.security_schemes.insert(
            SLACK_SIGNATURE.into(),
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Slack-Signature",
                "Slack's v0 request signature over `X-Slack-Request-Timestamp` and the raw body, \
                 under the Slack app's signing secret.",
            ))),
        );
    }
}
