//! intake's part of the OpenAPI document (`infra/openapi.json`).

use http_api::openapi::Shared;
use utoipa::OpenApi;

/// A Slack message in Slack's own format, as a slash command or a click is answered.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SlackMessage {
    /// `ephemeral`: shown to the user who acted, alone.
    response_type: Option<String>,
    /// The message, in Slack's mrkdwn.
    text: String,
}

#[derive(OpenApi)]
#[openapi(
    paths(
        super::openapi_json,
        super::submit,
        super::list,
        super::status,
        super::catalog,
        super::rate,
        super::weekly_report,
        super::slack::command
    ),
    components(schemas(
        super::SubmitBody,
        super::Accepted,
        super::RequestList,
        super::CatalogAnswer,
        super::RatingBody,
        domain::report::Report,
        SlackMessage
    )),
    tags(
        (name = "requests", description = "Ask for an image and follow the request"),
        (name = "reports", description = "What the tool achieved, for admins"),
        (name = "catalog", description = "The Chainguard catalog and the organization's images"),
        (name = "slack", description = "Slack's slash command and buttons"),
        (name = "contract", description = "This document"),
    ),
    modifiers(&Shared),
)]
pub struct Api;
