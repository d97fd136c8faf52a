//! Tokens for the Chainguard API: a static one (local use), or keyless: the function's
//! own AWS role proves who it is through a SigV4-signed `sts:GetCallerIdentity` request,
//! which the Chainguard STS exchanges for a token. Tokens are cached until shortly before
//! they expire; nothing here ever logs a token or a signed request.

use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use tokio::sync::Mutex;

use super::types::Exchanged;

/// The request the Chainguard STS verifies, as the AWS SDKs send it.
pub const STS_URL: &str = "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15";
const STS_HOST: &str = "sts.amazonaws.com";
/// Refresh this long before the token's expiry.
const EARLY: i64 = 5 * 60;

pub enum TokenSource {
    Static(String),
    Keyless {
        /// The assumable identity's UIDP.
        identity: String,
        aws: SharedCredentialsProvider,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("TokenSource::Static(<redacted>)"),
            TokenSource::Keyless { identity, .. } => write!(f, "TokenSource::Keyless({identity})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The exchange might work later (network, 5xx, 429).
    #[error("token exchange unavailable: {0}")]
    Retryable(String),
    #[error("token exchange refused: {0}")]
    Refused(String),
}

/// Builds the proof: the signed `GetCallerIdentity` request, serialised as HTTP/1.1 text,
/// URL-safe base64 with padding.
pub fn caller_identity_proof(
    creds: &Credentials,
    issuer: &str,
    identity: &str,
    at: SystemTime,
) -> Result<String, String> {
    let headers = [
        ("accept", "application/json"),
        ("chainguard-audience", issuer),
        ("chainguard-identity", identity),
        ("host", STS_HOST),
    ];
    let signable = SignableRequest::new("POST", STS_URL, headers.iter().copied(), SignableBody::Bytes(&[]))
        .map_err(|e| e.to_string())?;
    let identity_aws = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity_aws)
        .region("us-east-1")
        .name("sts")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let mut req = http::Request::builder().method("POST").uri(STS_URL);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let mut req = req.body(()).map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut req);
    let mut text = format!(
        "POST {} HTTP/1.1\r\n",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut names: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        for v in req.headers().get_all(name) {
            text += &format!("{}: {}\r\n", canonical(name), v.to_str().map_err(|e| e.to_string())?);
        }
    }
    text += "Content-Length: 0\r\n\r\n";
    Ok(URL_SAFE.encode(text))
}

/// `x-amz-date` → `X-Amz-Date`, as Go's request writer prints header names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Hands out a valid token, exchanging a new one when the cached one is near its end.
pub struct Tokens {
    source: TokenSource,
    issuer: String,
    audience: String,
    http: reqwest::Client,
    cached: Mutex<Option<(String, DateTime<Utc>)>>,
}

impl Tokens {
    pub fn new(source: TokenSource, issuer: &str, audience: &str, http: reqwest::Client) -> Self {
        Tokens {
            source,
            issuer: issuer.trim_end_matches('/').to_string(),
            audience: audience.to_string(),
            http,
            cached: Mutex::new(None),
        }
    }

    pub async fn get(&self) -> Result<String, AuthError> {
        let (identity, aws) = match &self.source {
            TokenSource::Static(t) => return Ok(t.clone()),
            TokenSource::Keyless { identity, aws } => (identity, aws),
        };
        let mut cached = self.cached.lock().await;
        if let Some((token, expiry)) = cached.as_ref() {
            if Utc::now() + Duration::seconds(EARLY) < *expiry {
                return Ok(token.clone());
            }
        }
        let creds = aws
            .provide_credentials()
            .await
            .map_err(|e| AuthError::Retryable(format!("no AWS credentials to prove the identity with: {e}")))?;
        let proof =
            caller_identity_proof(&creds, &self.issuer, identity, SystemTime::now()).map_err(AuthError::Refused)?;
        let resp = self
            .http
            .get(format!("{}/sts/exchange", self.issuer))
            .query(&[("aud", self.audience.as_str()), ("identity", identity.as_str())])
            .bearer_auth(proof)
            .send()
            .await
            .map_err(|e| AuthError::Retryable(e.without_url().to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| AuthError::Retryable(format!("unreadable exchange answer: {}", e.without_url())))?;
        let (token, expiry) = exchanged(status, &body, Utc::now())?;
        tracing::info!(identity, %expiry, "exchanged a Chainguard token");
        *cached = Some((token.clone(), expiry));
        Ok(token)
    }

    /// After a 401: the next `get` exchanges afresh.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// The longest a token from the exchange is used, whatever expiry it claims.
pub const MAX_TOKEN_LIFE: Duration = Duration::hours(1);

/// The token and until when to use it, from the STS exchange's answer.
pub fn exchanged(status: StatusCode, body: &[u8], now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AuthError> {
    if !status.is_success() {
        let msg = crate::client::rpc_message(body);
        let why = format!("{} {}", status.as_u16(), msg);
        return Err(if status.as_u16() == 429 || status.is_server_error() {
            AuthError::Retryable(why)
        } else {
            AuthError::Refused(why)
        });
    }
    let ex: Exchanged =
        serde_json::from_slice(body).map_err(|e| AuthError::Retryable(format!("unreadable exchange answer: {e}")))?;
    if ex.token.is_empty() {
        return Err(AuthError::Refused("the exchange answered no token".into()));
    }
    // It goes in an Authorization header.
    if !ex.token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::Refused(
            "the exchange answered a token that is not a header value".into(),
        ));
    }
    let expiry = DateTime::parse_from_rfc3339(&ex.expiry)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + Duration::minutes(30))
        .min(now + MAX_TOKEN_LIFE);
    Ok((ex.token, expiry))
}
