//! The schemas of the values that cross the API as strings (ids, image references,
//! principals, text), for the OpenAPI document. Only built with the `openapi` feature.

use std::borrow::Cow;

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::{ImageRef, Justification, PreApproval, Principal, RequestId, MAX_JUSTIFICATION_CHARS};

fn string(description: &str, pattern: Option<&str>, max: Option<usize>, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .min_length(Some(1))
        .max_length(max)
        .examples([example])
        .build()
        .into()
}

macro_rules! string_schema {
    ($t:ty, $name:literal, $description:expr, $pattern:expr, $max:expr, $example:literal) => {
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                string($description, $pattern, $max, $example)
            }
        }
        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_schema!(
    RequestId,
    "RequestId",
    "A request's id: `req-` and a ULID.",
    Some("^req-[0-9A-HJKMNP-TV-Z]{26}$"),
    Some(30),
    "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2"
);
string_schema!(
    ImageRef,
    "ImageRef",
    "A catalog image name with an optional tag (`python`, `python:3.12`); no registry host, path or digest.",
    None,
    Some(crate::image::MAX_NAME_LEN + 129),
    "python:3.12"
);
string_schema!(
    Principal,
    "Principal",
    "Who: `email:<address>`, `slack:<team>/<user>`, `github:<login>`, `client:<id>` or `service:<step>`.",
    Some("^[a-z]+:.+$"),
    None,
    "email:developer@example.com"
);
string_schema!(
    Justification,
    "Justification",
    "Why the image is needed, as the requester wrote it (NFC, no invisible or bidi control characters).",
    None,
    Some(MAX_JUSTIFICATION_CHARS),
    "Data pipeline for the reporting team"
);

impl PartialSchema for PreApproval {
    fn schema() -> RefOr<Schema> {
        let s = |d: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(d));
        ObjectBuilder::new()
            .description(Some("The merged pull request that approved the request."))
            .property("repository", s("`owner/name`"))
            .property(
                "pull_request",
                ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
            )
            .property("merged_by", s("the GitHub login that merged it"))
            .property("commit", s("the merge commit's SHA"))
            .required("repository")
            .required("pull_request")
            .required("merged_by")
            .required("commit")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for PreApproval {}
