//! A local stand-in for Slack: the Web API's `chat.postMessage` (bot token checked) and
//! `response_url`s. It records what it is sent, and answers the next matching call from a
//! script when told to (e.g. `429` with `Retry-After`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

pub const BOT_TOKEN: &str = "xoxb-test-bot-token";
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// (path prefix, status, retry-after seconds, body) answered once, in order.
    script: VecDeque<(String, u16, Option<u64>, Value)>,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let state: Arc<Mutex<State>> = Arc::default();
        let s = state.clone();
        let app = Router::new().fallback(move |_m: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move { handle(&s, uri, headers, body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSlack { url, state }
    }

    pub fn api_url(&self) -> String {
        format!("{}/api", self.url)
    }

    /// A `response_url` as Slack would give one.
    pub fn response_url(&self, name: &str) -> String {
        format!("{}/response/{name}", self.url)
    }

    pub fn script(&self, path_prefix: &str, status: u16, retry_after: Option<u64>, body: Value) {
        self.state
            .lock()
            .unwrap()
            .script
            .push_back((path_prefix.into(), status, retry_after, body));
    }

    pub fn calls(&self, path_prefix: &str) -> Vec<Call> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

fn handle(state: &Mutex<State>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = state.lock().unwrap();
    let path = uri.path().to_string();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    st.calls.push(Call {
        path: path.clone(),
        authorization: authorization.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    if let Some(i) = st.script.iter().position(|(p, ..)| path.starts_with(p.as_str())) {
        let (_, status, retry_after, body) = st.script.remove(i).unwrap();
        let mut resp = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return resp;
    }
    if path.starts_with("/response/") {
        return (StatusCode::OK, "ok").into_response();
    }
    if path == "/api/chat.postMessage" {
        if authorization.as_deref() != Some(&*format!("Bearer {BOT_TOKEN}")) {
            return axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
        }
        return axum::Json(json!({"ok": true, "channel": "C0APPROVALS", "ts": "1795838400.000100"})).into_response();
    }
    axum::Json(json!({"ok": false, "error": "unknown_method"})).into_response()
}
