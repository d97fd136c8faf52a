//! A client of the HTTP API that signs every call with an API client's HMAC secret: the
//! CLI's, and a library for Rust programs (README, "Calling the API"). `submit` and
//! `request` are the typed calls most programs need; `call` reaches any route.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use domain::auth::client::{sign, Signing, CLIENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

pub struct ApiClient {
    base: String,
    id: String,
    secret: String,
    http: reqwest::Client,
    /// The second each Idempotency-Key was last signed at (only this second's are kept).
    keyed: Mutex<HashMap<String, i64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {0}: {1}\n  Is the server running? Start it with `cgr-request serve`, or point --url / CGR_REQUEST_URL at it.")]
    Unreachable(String, String),
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String, body: Value },
}

/// An HTTP client with TLS through ring, the one TLS stack the whole build uses.
pub fn http_client() -> reqwest::Client {
    // A no-op once a provider is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("an HTTP client with ring's TLS builds")
}

impl ApiClient {
    pub fn new(base: &str, id: &str, secret: &str) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            id: id.into(),
            secret: secret.into(),
            http: http_client(),
            keyed: Mutex::new(HashMap::new()),
        }
    }

    /// A timestamp this client has not yet signed this Idempotency-Key with. The server
    /// takes a signature once, and timestamps are whole seconds: a retry within the same
    /// second waits for the next one, so that its signature is fresh.
    async fn fresh_timestamp(&self, key: &str) -> i64 {
        loop {
            let now = chrono::Utc::now();
            let ts = now.timestamp();
            {
                let mut used = self.keyed.lock().unwrap_or_else(|e| e.into_inner());
                used.retain(|_, at| *at >= ts);
                if used.get(key) != Some(&ts) {
                    used.insert(key.to_string(), ts);
                    return ts;
                }
            }
            let to_next = 1000 - u64::from(now.timestamp_subsec_millis().min(999));
            tokio::time::sleep(Duration::from_millis(to_next)).await;
        }
    }

    /// Sends a signed call; `path` includes any query string. Extra headers go as given.
    ///
    /// A call under an Idempotency-Key is safe to send again, from this process or another
    /// (a re-run workflow): when the server has taken this very signature already (another
    /// sender signed the same key in the same second), it is signed afresh in the next
    /// second and answers the original request.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), CallError> {
        let keyed = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(IDEMPOTENCY_HEADER));
        match self.call_once(method.clone(), path, body, headers).await {
            Err(CallError::Api {
                status: 409, body: b, ..
            }) if keyed && b["replayed"] == true => self.call_once(method, path, body, headers).await,
            other => other,
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), CallError> {
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("JSON serialises"))
            .unwrap_or_default();
        let key = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(IDEMPOTENCY_HEADER))
            .map_or("", |(_, v)| *v);
        let ts = if key.is_empty() {
            chrono::Utc::now().timestamp()
        } else {
            self.fresh_timestamp(key).await
        };
        let content_type = if body.is_some() { "application/json" } else { "" };
        let what = Signing {
            method: method.as_str(),
            path,
            content_type,
            idempotency_key: key,
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

impl ApiClient {
    /// Asks for an image (`POST /requests`) under an Idempotency-Key, so that calling it
    /// again with the same key (after a lost answer, from any process) answers the same
    /// request instead of making another.
    pub async fn submit(&self, ask: &Ask<'_>, idempotency_key: &str) -> Result<Submitted, CallError> {
        let mut body = serde_json::json!({ "image": ask.image, "justification": ask.justification });
        if let Some(env) = ask.environment {
            body["environment"] = env.into();
        }
        let (status, v) = self
            .call(
                Method::POST,
                "/requests",
                Some(&body),
                &[(IDEMPOTENCY_HEADER, idempotency_key)],
            )
            .await?;
        typed(status, v)
    }

    /// A request with its audit timeline (`GET /requests/{id}`).
    pub async fn request(&self, id: domain::RequestId) -> Result<domain::RequestView, CallError> {
        let (status, v) = self.call(Method::GET, &format!("/requests/{id}"), None, &[]).await?;
        typed(status, v)
    }
}

/// A successful answer read as `T`; one that does not read is an error with the status
/// and body as they came.
fn typed<T: serde::de::DeserializeOwned>(status: u16, v: Value) -> Result<T, CallError> {
    serde_json::from_value(v.clone()).map_err(|e| CallError::Api {
        status,
        message: format!("unreadable answer: {e}"),
        body: v,
    })
}

/// What to ask for.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// `name[:tag]`, e.g. `python:3.12`.
    pub image: &'a str,
    /// Why, in the requester's words (approvers read it).
    pub justification: &'a str,
    /// `dev`, `staging` or `prod`, where it matters.
    pub environment: Option<&'a str>,
}

/// A query string from name/value pairs, percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("string pairs always encode")
}

/// What `POST /requests` answers (202 for a new request, 200 for an idempotent repeat or
/// a join of the open request for the same image).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Submitted {
    pub id: domain::RequestId,
    pub image: String,
    pub status: domain::Status,
    /// The image was already asked for: this is that open request, now followed too.
    #[serde(default)]
    pub joined: bool,
}
