//! The Chainguard registry API client, and the `Registry` port on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::auth::{AuthError, Tokens};
use super::types::{Entitlements, Items, Repo, RpcStatus, SyncConfig, Tag};
use app::ports::{self, Registry, RegistryError};
use domain::Catalog;

/// The Chainguard group whose repos are the public catalog.
pub const CATALOG_GROUP: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a";

#[derive(Debug, Clone)]
pub struct Options {
    pub api_url: String,
    /// The organization's UIDP (40 hex characters).
    pub org_id: String,
    /// Its name, as in `cgr.dev/<name>/…`.
    pub org_name: String,
    /// Per HTTP call.
    pub timeout: Duration,
    pub catalog_ttl: Duration,
    /// Tries per call for retryable failures, within `retry_budget`.
    pub attempts: u32,
    pub base_delay: Duration,
    /// The most one call may take, every try and wait included: a hard ceiling, which
    /// the functions' time budgets count on (see [`CALL_BUDGET`]).
    pub retry_budget: Duration,
}

/// The default [`Options::retry_budget`]: what validate's and provision's per-request time
/// budgets assume one Chainguard call takes at worst.
pub const CALL_BUDGET: Duration = Duration::from_secs(10);

impl Options {
    pub fn new(api_url: &str, org_id: &str, org_name: &str) -> Self {
        Options {
            api_url: api_url.trim_end_matches('/').to_string(),
            org_id: org_id.to_string(),
            org_name: org_name.to_string(),
            timeout: Duration::from_secs(5),
            catalog_ttl: Duration::from_secs(15 * 60),
            attempts: 4,
            base_delay: Duration::from_millis(200),
            retry_budget: CALL_BUDGET,
        }
    }
}

/// One failed call, before it is classified for the queue.
#[derive(Debug)]
pub enum CallError {
    Status(StatusCode, String),
    Transport(String),
    Auth(AuthError),
}

impl CallError {
    fn retryable(&self) -> bool {
        match self {
            CallError::Status(s, msg) => {
                s.is_server_error()
                    // Shortly after a role binding, permissions take a moment to apply.
                    || *s == StatusCode::FORBIDDEN
                    || (*s == StatusCode::TOO_MANY_REQUESTS && !at_repo_limit(msg))
            }
            CallError::Transport(_) => true,
            CallError::Auth(a) => matches!(a, AuthError::Retryable(_)),
        }
    }

    pub fn into_registry(self) -> RegistryError {
        let retry = self.retryable();
        let text = match self {
            CallError::Status(s, msg) if msg.is_empty() => format!("Chainguard API answered {}", s.as_u16()),
            CallError::Status(s, msg) => format!("Chainguard API answered {}: {msg}", s.as_u16()),
            CallError::Transport(e) => format!("Chainguard API unreachable: {e}"),
            CallError::Auth(e) => e.to_string(),
        };
        if retry {
            RegistryError::Retryable(text)
        } else {
            RegistryError::Permanent(text)
        }
    }
}

/// An answer's body as `T`, or the error its status and `google.rpc.Status` body say.
pub fn decode<T: DeserializeOwned>(status: StatusCode, path: &str, bytes: &[u8]) -> Result<T, CallError> {
    if !status.is_success() {
        return Err(CallError::Status(status, rpc_message(bytes)));
    }
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| CallError::Status(StatusCode::BAD_GATEWAY, format!("unreadable answer from {path}: {e}")))
}

/// The message of an error body (a `google.rpc.Status`): at most [`MAX_MESSAGE`]
/// characters, control characters dropped, since it is shown to people and logged and the
/// server is outside our control. Empty when the body says nothing readable.
pub fn rpc_message(body: &[u8]) -> String {
    let Ok(status) = serde_json::from_slice::<RpcStatus>(body) else {
        return String::new();
    };
    let mut kept = status.message.chars().filter(|c| !c.is_control());
    let mut out: String = kept.by_ref().take(MAX_MESSAGE).collect();
    if kept.next().is_some() {
        out.push('…');
    }
    out
}

/// The most characters of an API error message kept.
pub const MAX_MESSAGE: usize = 300;

/// What the org's entitlements say of one image: an empty list checks nothing, and a
/// negative maximum is none.
pub fn entitlement(e: &Entitlements, name: &str) -> ports::Entitlement {
    ports::Entitlement {
        allowed: (!e.active_images.is_empty()).then(|| e.active_images.iter().any(|i| i.name == name)),
        max_images: e.max_total_images.and_then(|n| usize::try_from(n).ok()),
    }
}

fn at_repo_limit(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("limit") && (m.contains("repo") || m.contains("image"))
}

/// The public catalog as last read: its names, and each image's repo (id and tags).
struct CatalogCache {
    read_at: Instant,
    names: Arc<Catalog>,
    repos: Arc<HashMap<String, Repo>>,
}

pub struct Chainguard {
    opts: Options,
    http: reqwest::Client,
    tokens: Tokens,
    catalog: Mutex<Option<CatalogCache>>,
}

impl Chainguard {
    pub fn new(opts: Options, tokens: Tokens, http: reqwest::Client) -> Self {
        Chainguard {
            opts,
            http,
            tokens,
            catalog: Mutex::new(None),
        }
    }

    /// An HTTP client with the timeouts every call needs.
    pub fn http_client(timeout: Duration) -> reqwest::Client {
        // TLS through ring (no-op where a provider is installed already): see Cargo.toml.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("image-request/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in")
    }

    /// One call, with a fresh token once after a 401.
    async fn once<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let mut refreshed = false;
        loop {
            let token = self.tokens.get().await.map_err(CallError::Auth)?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.opts.api_url))
                .bearer_auth(token)
                .header("accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| CallError::Transport(e.without_url().to_string()))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::warn!("Chainguard API answered 401; exchanging a new token once");
                self.tokens.invalidate().await;
                refreshed = true;
                continue;
            }
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| CallError::Transport(e.without_url().to_string()))?;
            return decode(status, path, &bytes);
        }
    }

    /// A call with jittered exponential backoff for retryable failures, inside the budget.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let budget = self.opts.retry_budget;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.opts.base_delay)
            .with_max_times(self.opts.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let call = (|| self.once(&method, path, body))
            .retry(backoff)
            .when(CallError::retryable)
            // The budget counts the calls' own time too, not only the waits.
            .adjust(move |_, delay| delay.filter(|d| started.elapsed() + *d <= budget))
            .notify(|e, delay| tracing::warn!(error = ?e, "Chainguard call failed; retrying in {delay:?}"));
        // And a try in flight when the budget runs out is cut short, not waited for.
        tokio::time::timeout(budget, call)
            .await
            .unwrap_or_else(|_| Err(CallError::Transport(format!("no answer within {budget:?}"))))
    }

    pub async fn list_repos(&self, parent: &str, name: Option<&str>) -> Result<Vec<Repo>, RegistryError> {
        let mut q = vec![("uidp.childrenOf", parent)];
        if let Some(n) = name {
            q.push(("name", n));
        }
        let query = serde_urlencoded::to_string(q).expect("strings encode");
        let items: Items<Repo> = self
            .call(Method::GET, &format!("/registry/v1/repos?{query}"), None)
            .await
            .map_err(CallError::into_registry)?;
        Ok(items.items)
    }

    pub async fn list_tags(&self, repo_id: &str) -> Result<Vec<Tag>, RegistryError> {
        let query = serde_urlencoded::to_string([("uidp.childrenOf", repo_id)]).expect("strings encode");
        let items: Items<Tag> = self
            .call(Method::GET, &format!("/registry/v1/tags?{query}"), None)
            .await
            .map_err(CallError::into_registry)?;
        Ok(items.items)
    }

    pub async fn entitlements(&self) -> Result<Entitlements, RegistryError> {
        self.call(
            Method::GET,
            &format!("/registry/v1/entitlements/{}:effective", self.opts.org_id),
            None,
        )
        .await
        .map_err(CallError::into_registry)
    }

    /// The public catalog, read at most once per `catalog_ttl`.
    async fn catalog_repos(&self) -> Result<(Arc<Catalog>, Arc<HashMap<String, Repo>>), RegistryError> {
        let mut cached = self.catalog.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.read_at.elapsed() < self.opts.catalog_ttl {
                return Ok((c.names.clone(), c.repos.clone()));
            }
        }
        let repos = self.list_repos(CATALOG_GROUP, None).await?;
        if repos.is_empty() {
            return Err(RegistryError::Retryable(
                "the Chainguard catalog came back empty".into(),
            ));
        }
        let names = Arc::new(Catalog::from_names(repos.iter().map(|r| r.name.as_str())));
        let repos = Arc::new(
            repos
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect::<HashMap<_, _>>(),
        );
        *cached = Some(CatalogCache {
            read_at: Instant::now(),
            names: names.clone(),
            repos: repos.clone(),
        });
        Ok((names, repos))
    }

    /// The repo, with its tags (read from the tags API when the repo lists none).
    async fn to_port(&self, r: Repo) -> Result<ports::Repo, RegistryError> {
        let mut tags = r.active_tags;
        if tags.is_empty() && !r.id.is_empty() {
            tags = self.list_tags(&r.id).await?.into_iter().map(|t| t.name).collect();
        }
        Ok(ports::Repo {
            id: r.id,
            name: r.name,
            tags,
        })
    }
}

#[async_trait]
impl Registry for Chainguard {
    fn org_name(&self) -> &str {
        &self.opts.org_name
    }

    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError> {
        Ok(self.catalog_repos().await?.0)
    }

    async fn catalog_tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let (_, repos) = self.catalog_repos().await?;
        let Some(repo) = repos.get(name) else {
            return Err(RegistryError::Permanent(format!(
                "`{name}` is not in the Chainguard catalog"
            )));
        };
        if !repo.active_tags.is_empty() {
            return Ok(repo.active_tags.clone());
        }
        Ok(self.list_tags(&repo.id).await?.into_iter().map(|t| t.name).collect())
    }

    async fn org_repos(&self) -> Result<Vec<ports::Repo>, RegistryError> {
        Ok(self
            .list_repos(&self.opts.org_id, None)
            .await?
            .into_iter()
            .map(|r| ports::Repo {
                id: r.id,
                name: r.name,
                tags: r.active_tags,
            })
            .collect())
    }

    async fn find_repo(&self, name: &str) -> Result<Option<ports::Repo>, RegistryError> {
        // An empty list is "not found"; a server that ignores `name` is filtered here.
        let found = self
            .list_repos(&self.opts.org_id, Some(name))
            .await?
            .into_iter()
            .find(|r| r.name == name);
        match found {
            Some(r) => self.to_port(r).await.map(Some),
            None => Ok(None),
        }
    }

    async fn create_repo(&self, name: &str, source: &str) -> Result<ports::Repo, RegistryError> {
        let body = serde_json::to_value(Repo {
            name: name.to_string(),
            sync_config: Some(SyncConfig {
                source: source.to_string(),
                ..SyncConfig::default()
            }),
            ..Repo::default()
        })
        .expect("repos serialise");
        let path = format!("/registry/v1/repos/{}?preventExisting=true", self.opts.org_id);
        match self.call::<Repo>(Method::POST, &path, Some(&body)).await {
            Ok(r) => {
                tracing::info!(repo = name, id = r.id, "created the repo");
                self.to_port(r).await
            }
            Err(CallError::Status(StatusCode::CONFLICT, _)) => match self.find_repo(name).await? {
                Some(r) => {
                    tracing::info!(repo = name, id = r.id, "the repo exists already");
                    Ok(r)
                }
                None => Err(RegistryError::Retryable(format!(
                    "Chainguard says {name} exists but does not list it yet"
                ))),
            },
            Err(e) => Err(e.into_registry()),
        }
    }

    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError> {
        let Some(repo) = self.find_repo(name).await? else {
            return Ok(None);
        };
        let path = format!("/registry/v1/repos/{}", repo.id);
        match self.call::<serde_json::Value>(Method::DELETE, &path, None).await {
            Ok(_) => {
                tracing::info!(repo = name, id = repo.id, "deleted the repo");
                Ok(Some(repo.id))
            }
            // Gone between the lookup and the delete (another delivery, someone in the
            // Console): what was asked is done.
            Err(CallError::Status(StatusCode::NOT_FOUND, _)) => Ok(None),
            Err(e) => Err(e.into_registry()),
        }
    }

    async fn entitled(&self, name: &str) -> Result<ports::Entitlement, RegistryError> {
        match self.entitlements().await {
            Ok(e) => Ok(entitlement(&e, name)),
            // Entitlements are early access: where the org cannot read them, do not block.
            Err(RegistryError::Permanent(why)) => {
                tracing::warn!(error = why, "entitlements unreadable; not checking them");
                Ok(ports::Entitlement::default())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenSource;
    use app::ports::Registry;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn what_the_api_says_is_bounded_before_anyone_reads_it() {
        let long = serde_json::json!({"code": 8, "message": format!("repo limit\n{}", "x".repeat(1000))});
        let msg = rpc_message(long.to_string().as_bytes());
        assert!(msg.starts_with("repo limitxxx") && msg.ends_with('…'), "{msg}");
        assert_eq!(msg.chars().count(), MAX_MESSAGE + 1);
        assert_eq!(rpc_message(b"<html>bad gateway</html>"), "");
        let e = decode::<Repo>(StatusCode::TOO_MANY_REQUESTS, "/p", long.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(e.into_registry(), RegistryError::Permanent(m) if m.contains("repo limit")),
            "the repo limit is not retried"
        );
        let e = decode::<Repo>(StatusCode::OK, "/p", b"[1").unwrap_err();
        assert!(matches!(e, CallError::Status(StatusCode::BAD_GATEWAY, m) if m.contains("unreadable answer from /p")));
        assert_eq!(decode::<Repo>(StatusCode::OK, "/p", b"  \n").unwrap(), Repo::default());
    }

    #[test]
    fn entitlements_check_only_what_they_list() {
        let e: Entitlements =
            serde_json::from_str(r#"{"activeImages":[{"name":"python"}],"maxTotalImages":"-1"}"#).unwrap();
        assert_eq!(entitlement(&e, "python").allowed, Some(true));
        assert_eq!(entitlement(&e, "go").allowed, Some(false));
        assert_eq!(entitlement(&e, "go").max_images, None);
        let none = Entitlements::default();
        assert_eq!(entitlement(&none, "go").allowed, None);
    }

    #[test]
    fn an_exchanged_token_is_a_header_value_used_at_most_an_hour() {
        use crate::auth::{exchanged, MAX_TOKEN_LIFE};
        let now = chrono::Utc::now();
        let body = |token: &str, expiry: &str| serde_json::json!({"token": token, "expiry": expiry}).to_string();
        let (t, until) = exchanged(StatusCode::OK, body("tok", "9999-01-01T00:00:00Z").as_bytes(), now).unwrap();
        assert_eq!((t.as_str(), until), ("tok", now + MAX_TOKEN_LIFE));
        let (_, until) = exchanged(StatusCode::OK, body("tok", "soon").as_bytes(), now).unwrap();
        assert_eq!(until, now + chrono::Duration::minutes(30));
        for bad in ["", "tok\r\nx-injected: 1", "tok en"] {
            assert!(
                exchanged(StatusCode::OK, body(bad, "").as_bytes(), now).is_err(),
                "{bad:?}"
            );
        }
        let refused = exchanged(StatusCode::FORBIDDEN, br#"{"message":"no binding"}"#, now).unwrap_err();
        assert!(refused.to_string().contains("403 no binding"), "{refused}");
    }

    // Paused time: the clock moves only when every task waits, so no wall clock decides.
    #[tokio::test(start_paused = true)]
    async fn a_chainguard_that_never_answers_costs_at_most_the_budget() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let opts = Options::new(&url, &"a".repeat(40), "example.com");
        let http = Chainguard::http_client(opts.timeout);
        let tokens = Tokens::new(TokenSource::Static("token".into()), &url, "audience", http.clone());
        let cg = Chainguard::new(opts, tokens, http);
        let started = tokio::time::Instant::now();
        let err = cg.find_repo("python").await.expect_err("no answer is an error");
        assert!(
            matches!(&err, RegistryError::Retryable(m) if m.contains(&format!("no answer within {CALL_BUDGET:?}"))),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), CALL_BUDGET, "given up exactly at the budget");
        // The first try timed out (5 s); the second was cut short by the budget.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
