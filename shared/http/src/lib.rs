//! What every HTTP route shares: JSON errors with precise status codes, the size limit,
//! and the extractor that authenticates an HMAC-signed client before any handler runs.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use app::config::ClientConfig;
use app::App;
use domain::auth::client::{
    self, SignatureError, CLIENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use domain::auth::slack as slack_auth;
use domain::RequestId;

#[cfg(feature = "openapi")]
pub mod openapi;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub extra: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            extra: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn with(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is temporarily unavailable; try again shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let (Some(Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.extend(extra);
        }
        (self.status, Json(body)).into_response()
    }
}

/// How much of a body declared too large is still read (and dropped) before the `413`,
/// so that a plain client, still sending, reads the answer instead of a broken pipe.
const DRAIN_BYTES: usize = 1 << 20;

/// What every answer of the HTTP routes gets on its way out, whoever produced it (a
/// handler, axum's own 404, 405 and extractor rejections, hyper's limits): an error
/// without a body, or with axum's plain-text one, gets the documented `{"error": …}` (a 405
/// has its `Allow` too), nothing is cached, and pages may load nothing but their own
/// inline style and post only to this origin.
pub async fn hygiene(resp: Response) -> Response {
    use axum::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    let plain = |ct: &HeaderValue| ct.to_str().is_ok_and(|v| v.starts_with("text/plain"));
    let bare = parts.headers.get(CONTENT_TYPE).is_none_or(plain);
    let body = if (status.is_client_error() || status.is_server_error()) && bare {
        // axum's rejections say what was wrong in a line of text (a query string's
        // unknown field, a path's bad segment): keep the words, in the documented shape.
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_string();
        let error = match status {
            // axum adds the `Allow` header after this layer has run.
            StatusCode::METHOD_NOT_ALLOWED => {
                "method not allowed on this path: the Allow header lists what it takes".to_string()
            }
            _ if !text.is_empty() => text,
            _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
        };
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        axum::body::Body::from(json!({ "error": error }).to_string())
    } else {
        body
    };
    parts
        .headers
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let html = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        parts.headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    Response::from_parts(parts, body)
}

/// The longest path and query a route takes. Ours are short; API Gateway refuses beyond
/// 10,240 bytes of request line, and hyper, under the local server, beyond 64 KiB with a
/// bodyless `414` no layer sees. Below both, the answer is ours and says why.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses a path and query over [`MAX_URI_BYTES`] before any route parses it.
pub async fn bounded_uri(req: Request, next: axum::middleware::Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the path and query are {len} bytes; at most {MAX_URI_BYTES} are taken"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Reads a body up to the configured limit; larger ones are `413` before anything is parsed.
pub async fn read_body(req: Request, limit: usize) -> Result<(axum::http::request::Parts, Bytes), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        if n <= DRAIN_BYTES {
            let _ = axum::body::to_bytes(body, DRAIN_BYTES).await;
        }
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    Ok((parts, bytes))
}

/// An authenticated API call: the client and the exact bytes it signed.
pub struct Signed {
    pub client: ClientConfig,
    pub body: Bytes,
    /// Sent as `application/x-www-form-urlencoded` (a form tool's webhook), not JSON.
    pub form: bool,
    /// The signed timestamp and the signature, which name what this call creates
    /// ([`Signed::request_id`]).
    pub timestamp: i64,
    pub signature: String,
}

impl Signed {
    /// The id of the request this call submits: derived from the signature, so the same
    /// signed bytes sent again name the same request and are refused as a replay.
    pub fn request_id(&self) -> RequestId {
        RequestId::derived(
            self.timestamp,
            format!("{}:{}", self.client.id, self.signature).as_bytes(),
        )
    }
}

/// Whether a Content-Type value names a URL-encoded form (a form tool's webhook, a page's form).
pub fn is_form(content_type: &str) -> bool {
    content_type.starts_with("application/x-www-form-urlencoded")
}

fn header<'a>(h: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureError::Missing(name))
}

impl FromRequest<App> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let (parts, body) = read_body(req, app.settings.max_body_bytes).await?;
        let unauthorized = |e: SignatureError| {
            tracing::warn!(reason = %e, path = parts.uri.path(), "refused an unauthenticated call");
            ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
        };
        let id = header(&parts.headers, CLIENT_HEADER).map_err(unauthorized)?;
        let ts = header(&parts.headers, TIMESTAMP_HEADER).map_err(unauthorized)?;
        let sig = header(&parts.headers, SIGNATURE_HEADER).map_err(unauthorized)?;
        // Unknown clients are checked against a throwaway key so timing does not reveal which ids exist.
        let known = app.client(id);
        let secret = known.map_or("unknown-client-placeholder-key", |c| c.secret.as_str());
        let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
        // Headers that are not text cannot have been signed as text.
        let signed_header = |name| {
            parts
                .headers
                .get(name)
                .map_or(Ok(""), |v| v.to_str().map_err(|_| SignatureError::Mismatch))
        };
        let what = client::Signing {
            method: parts.method.as_str(),
            path,
            content_type: signed_header(axum::http::header::CONTENT_TYPE.as_str()).map_err(unauthorized)?,
            idempotency_key: signed_header(IDEMPOTENCY_HEADER).map_err(unauthorized)?,
        };
        let timestamp = client::verify(secret.as_bytes(), ts, sig, what, &body, app.clock.now().timestamp())
            .map_err(unauthorized)?;
        let client = known
            .ok_or(SignatureError::UnknownClient)
            .map_err(unauthorized)?
            .clone();
        let content_type = what.content_type;
        let form = is_form(content_type);
        if !body.is_empty() && !form && !content_type.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "a body sent as `{content_type}`: send application/json (POST /requests also takes application/x-www-form-urlencoded)"
                ),
            ));
        }
        Ok(Signed {
            client,
            body,
            form,
            timestamp,
            signature: sig.to_string(),
        })
    }
}

/// A request Slack signed: the exact bytes Slack sent, checked (v0 signature, timestamp)
/// before any handler reads them. `404` where Slack is not configured.
pub struct SlackSigned {
    pub body: Bytes,
}

impl FromRequest<App> for SlackSigned {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let secret = match &app.settings.slack {
            Some(s) if !s.secrets.signing_secret.is_empty() => s.secrets.signing_secret.as_bytes(),
            _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "Slack is not configured")),
        };
        let (parts, body) = read_body(req, app.settings.max_body_bytes).await?;
        let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
        slack_auth::verify(
            secret,
            h(slack_auth::TIMESTAMP_HEADER),
            h(slack_auth::SIGNATURE_HEADER),
            &body,
            app.clock.now().timestamp(),
        )
        .map_err(|e| {
            tracing::warn!(reason = %e, path = parts.uri.path(), "refused a call said to be from Slack");
            ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
        })?;
        Ok(SlackSigned { body })
    }
}

impl Signed {
    /// Parses the signed body as JSON, refusing unknown fields with the serde message.
    /// The signed body as JSON, for routes that take nothing else.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.form {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "this route takes application/json",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::bad_request(format!("body is not valid: {e}")))
    }

    /// Parses the signed body as JSON, or as form fields when it was sent as a form;
    /// either way unknown fields are refused.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.form {
            serde_urlencoded::from_bytes(&self.body)
                .map_err(|e| ApiError::bad_request(format!("form is not valid: {e}")))
        } else {
            self.json()
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.client.admin {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("client `{}` is not an admin client", self.client.id),
            ))
        }
    }
}
