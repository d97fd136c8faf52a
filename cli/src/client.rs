//! A small client of the HTTP API that signs every call with the client's HMAC secret.

use reqwest::Method;
use serde_json::Value;

use domain::auth::client::{sign, Signing, CLIENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

pub struct ApiClient {
    base: String,
    id: String,
    secret: String,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {0}: {1}\n  Is the server running? Start it with `cgr-request serve`, or point --url / CGR_REQUEST_URL at it.")]
    Unreachable(String, String),
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String, body: Value },
}

impl ApiClient {
    pub fn new(base: &str, id: &str, secret: &str) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            id: id.into(),
            secret: secret.into(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client with default TLS builds"),
        }
    }

    /// Sends a signed call; `path` includes any query string. Extra headers go as given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), CallError> {
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("JSON serialises"))
            .unwrap_or_default();
        let ts = chrono::Utc::now().timestamp();
        let content_type = if body.is_some() { "application/json" } else { "" };
        let what = Signing {
            method: method.as_str(),
            path,
            content_type,
            idempotency_key: headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(IDEMPOTENCY_HEADER))
                .map_or("", |(_, v)| *v),
        };
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(CLIENT_HEADER, &self.id)
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(self.secret.as_bytes(), ts, what, &bytes));
        if body.is_some() {
            req = req.header("content-type", content_type).body(bytes);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Unreachable(self.base.clone(), e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| CallError::Unreachable(self.base.clone(), e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_string);
            return Err(CallError::Api {
                status,
                message,
                body: value,
            });
        }
        Ok((status, value))
    }
}

/// A query string from name/value pairs, percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("string pairs always encode")
}

/// What `POST /requests` answers (202 for a new request, 200 for an idempotent repeat).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Submitted {
    pub id: domain::RequestId,
    pub image: String,
    pub status: domain::Status,
}
