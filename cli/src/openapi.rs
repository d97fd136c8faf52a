//! The API's contract, generated from the handlers and the types they read and answer
//! (utoipa): intake's and approval's parts, with what every route shares. Committed as
//! `infra/openapi.json` and served at `GET /openapi.json`; a test holds the two equal.

use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa::OpenApi as _;

pub fn document() -> OpenApi {
    let mut api = intake::openapi::Api::openapi();
    api.merge(approval::openapi::Api::openapi());
    api.info = InfoBuilder::new()
        .title("Image Request API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Ask for Chainguard images for your organization's registry, follow the requests, \
             and decide on them. Every error answers `{\"error\": …}`; signed routes take an API \
             client's HMAC signature (see the `client_signature` scheme and the README's \
             \"Authenticating API calls\").",
        ))
        .build();
    api
}

/// The document as committed: pretty JSON with a final newline.
pub fn json() -> String {
    document().to_pretty_json().expect("the document serialises") + "\n"
}
