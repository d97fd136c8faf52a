//! approval's part of the OpenAPI document (`infra/openapi.json`).

use http_api::openapi::Shared;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(
        super::confirm_page,
        super::decide_by_link,
        super::decide_by_client,
        super::retry,
        super::capacity,
        super::rating_page,
        super::rate_by_link,
        super::slack::interaction
    ),
    components(schemas(super::DecisionBody, super::LinkForm, super::RatingForm)),
    tags((name = "approvals", description = "Approve or deny: links from email, admin clients")),
    modifiers(&Shared),
)]
pub struct Api;
