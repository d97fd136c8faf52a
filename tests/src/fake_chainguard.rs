//! A local server speaking the Chainguard API: registry v1
//! repos, tags and entitlements, the STS exchange, `google.rpc.Status` errors. It records
//! every request, and answers the next matching request from a script when told to.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chainguard::client::CATALOG_GROUP;
use serde_json::{json, Value};

pub const ORG_ID: &str = "ae2a22d98354389440591848465119d347e1baa5";
pub const IDENTITY: &str = "ae2a22d98354389440591848465119d347e1baa5/0123456789abcdef";
/// A token the fake accepts without an exchange (what `CHAINGUARD_TOKEN` would hold).
pub const STATIC_TOKEN: &str = "static-token-c2VjcmV0";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct State {
    pub repos: Vec<Value>,
    pub catalog: Vec<String>,
    /// Tags of catalog images that differ from the simulated catalog's (`app::trial::catalog_tags`).
    pub catalog_tags: std::collections::HashMap<String, Vec<String>>,
    pub entitlements: Value,
    pub repo_limit: usize,
    /// (`"METHOD /path-prefix"`, status, body) answered once, in order, to the first match.
    pub script: VecDeque<(String, u16, Value)>,
    pub log: Vec<Recorded>,
    /// The next requests wait this long each before they are answered (slow answers, and
    /// timeouts where the client gives up first).
    pub slow: VecDeque<std::time::Duration>,
    /// Out of every 100 API calls (token exchanges aside), how many answer 503 at random.
    pub fail_percent: u64,
    /// How many calls `fail_percent` failed.
    pub failed_at_random: u64,
    rng: u64,
    pub tokens: HashSet<String>,
    issued: usize,
}

#[derive(Clone)]
pub struct FakeChainguard {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl FakeChainguard {
    /// The real Chainguard client, pointed at this fake (org `acme.dev`), retrying fast;
    /// each try given `timeout` where set.
    pub fn client(&self, timeout: Option<std::time::Duration>) -> Arc<chainguard::Chainguard> {
        use chainguard::{Chainguard, Options, TokenSource, Tokens};
        let mut opts = Options::new(&self.url, ORG_ID, "acme.dev");
        opts.base_delay = std::time::Duration::from_millis(5);
        if let Some(t) = timeout {
            opts.timeout = t;
        }
        let http = Chainguard::http_client(opts.timeout);
        let tokens = Tokens::new(
            TokenSource::Static(STATIC_TOKEN.into()),
            &self.url,
            &self.url,
            http.clone(),
        );
        Arc::new(Chainguard::new(opts, tokens, http))
    }

    pub async fn start() -> FakeChainguard {
        let catalog: Vec<String> = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/domain/data/chainguard-images.txt"
        ))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
        let state = Arc::new(Mutex::new(State {
            catalog,
            repo_limit: 2500,
            entitlements: json!({"plan": "STANDARD", "activeTiers": ["APPLICATION"], "maxTotalImages": "-1"}),
            tokens: [STATIC_TOKEN.to_string()].into(),
            ..State::default()
        }));
        let s = state.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let wait = s.lock().unwrap().slow.pop_front();
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
                handle(&s, method, uri, headers, body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeChainguard {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// The next request matching `"METHOD /path-prefix"` gets this answer.
    pub fn script(&self, route: &str, status: u16, body: Value) {
        self.state
            .lock()
            .unwrap()
            .script
            .push_back((route.into(), status, body));
    }

    /// The next `n` requests each wait `delay` before their answer.
    pub fn slow(&self, n: usize, delay: std::time::Duration) {
        self.state.lock().unwrap().slow.extend(std::iter::repeat_n(delay, n));
    }

    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn calls(&self, route: &str) -> usize {
        self.log()
            .iter()
            .filter(|r| format!("{} {}", r.method, r.path_and_query).starts_with(route))
            .count()
    }

    /// Every token issued or accepted so far stops working (as after a rotation).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    pub fn repo_names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .repos
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn status(code: u16, grpc: i32, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({"code": grpc, "message": message, "details": []})),
    )
        .into_response()
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
}

fn handle(state: &Mutex<State>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = state.lock().unwrap();
    let path_and_query = uri.path_and_query().map_or("/".into(), |p| p.to_string());
    st.log.push(Recorded {
        method: method.to_string(),
        path_and_query: path_and_query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into(),
    });
    let route = format!("{method} {}", uri.path());
    if let Some(i) = st.script.iter().position(|(r, _, _)| route.starts_with(r.as_str())) {
        let (_, code, body) = st.script.remove(i).unwrap();
        return (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response();
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    if uri.path() == "/sts/exchange" {
        let q = query(&uri);
        let has = |k: &str| q.iter().any(|(n, v)| n == k && !v.is_empty());
        if bearer.is_empty() || !has("aud") || !has("identity") {
            return status(400, 3, "aud, identity and a bearer proof are required");
        }
        st.issued += 1;
        let token = format!("exchanged-token-{}", st.issued);
        st.tokens.insert(token.clone());
        let expiry = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        return axum::Json(json!({"token": token, "refreshToken": "r", "expiry": expiry})).into_response();
    }
    if !st.tokens.contains(&bearer) {
        return status(401, 16, "unauthenticated");
    }
    if st.fail_percent > 0 {
        // xorshift64: a fixed sequence, so a run can be repeated.
        let mut x = if st.rng == 0 { 0x9E37_79B9_7F4A_7C15 } else { st.rng };
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        st.rng = x;
        if x % 100 < st.fail_percent {
            st.failed_at_random += 1;
            return status(503, 14, "unavailable (at random)");
        }
    }
    let q = query(&uri);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (method.as_str(), uri.path()) {
        ("GET", "/registry/v1/repos") => {
            let parent = get("uidp.childrenOf").unwrap_or_default();
            let items: Vec<Value> = if parent == CATALOG_GROUP {
                st.catalog
                    .iter()
                    .enumerate()
                    .map(|(i, n)| json!({"id": format!("{CATALOG_GROUP}/{i:016x}"), "name": n, "catalogTier": "APPLICATION"}))
                    .collect()
            } else if parent == ORG_ID {
                st.repos
                    .iter()
                    .filter(|r| get("name").is_none_or(|n| r["name"] == n.as_str()))
                    .cloned()
                    .collect()
            } else {
                vec![]
            };
            // v1 says "not found" with an empty list.
            axum::Json(json!({ "items": items })).into_response()
        }
        ("POST", p) if p == format!("/registry/v1/repos/{ORG_ID}") => {
            if get("preventExisting").as_deref() != Some("true") {
                return status(400, 3, "this fake insists on preventExisting=true");
            }
            let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                return status(400, 3, "body is not JSON");
            };
            let name = req["name"].as_str().unwrap_or("").to_string();
            if st.repos.iter().any(|r| r["name"] == name.as_str()) {
                return status(409, 6, &format!("repo {name} already exists"));
            }
            if st.repos.len() >= st.repo_limit {
                return status(429, 8, "organization has reached its image repository limit");
            }
            let id = format!("{ORG_ID}/{:016x}", st.repos.len() + 1);
            // What a newer server sends: extra fields, and some fields left out.
            let repo = json!({
                "id": id, "name": name, "catalogTier": "APPLICATION", "bundles": [],
                "sync_config": {"source": req["sync_config"]["source"], "uniqueTags": false, "syncApks": true},
                "activeTags": ["latest", "latest-dev"], "createTime": chrono::Utc::now().to_rfc3339(),
                "someFutureField": {"nested": true}
            });
            st.repos.push(repo.clone());
            axum::Json(repo).into_response()
        }
        ("DELETE", p) if p.starts_with("/registry/v1/repos/") => {
            // Strictly: a repo of this org, by its full id; 404 when there is none.
            let id = &p["/registry/v1/repos/".len()..];
            let in_org = id.strip_prefix(&format!("{ORG_ID}/")).is_some_and(|r| r.len() == 16);
            match st.repos.iter().position(|r| r["id"] == id) {
                Some(i) if in_org => {
                    st.repos.remove(i);
                    axum::Json(json!({})).into_response()
                }
                _ => status(404, 5, &format!("repo {id} not found")),
            }
        }
        ("GET", "/registry/v1/tags") => {
            let parent = get("uidp.childrenOf").unwrap_or_default();
            let known = st.repos.iter().any(|r| r["id"] == parent.as_str());
            let catalog_image = parent
                .strip_prefix(&format!("{CATALOG_GROUP}/"))
                .and_then(|i| usize::from_str_radix(i, 16).ok())
                .and_then(|i| st.catalog.get(i));
            let items = if let Some(name) = catalog_image {
                let tags = st
                    .catalog_tags
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| app::trial::catalog_tags(name));
                let items: Vec<Value> = tags
                    .iter()
                    .enumerate()
                    .map(|(i, t)| json!({"id": format!("{parent}/{i:016x}"), "name": t, "digest": format!("sha256:{i:064x}")}))
                    .collect();
                json!(items)
            } else if known {
                json!([{"id": format!("{parent}/t1"), "name": "latest", "digest": "sha256:00"}])
            } else {
                json!([])
            };
            axum::Json(json!({ "items": items })).into_response()
        }
        ("GET", p) if p == format!("/registry/v1/entitlements/{ORG_ID}:effective") => {
            axum::Json(st.entitlements.clone()).into_response()
        }
        _ => status(404, 5, "no such route in the fake"),
    }
}
