//! The one way out to Slack: Web API calls with the bot token, and posts to a command's
//! or a click's `response_url`. Rate limits (`429` + `Retry-After`, or `ratelimited`)
//! and outages are retried a few times; nothing here logs a token or a response URL.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    #[error("Slack answered {0}")]
    Api(String),
    #[error("Slack is unavailable: {0}")]
    Unavailable(String),
}

pub struct SlackClient {
    http: reqwest::Client,
    api_url: String,
    bot_token: String,
    pub attempts: u32,
    /// The longest `Retry-After` honoured; longer ones give up (the caller logs).
    pub max_wait: Duration,
    pub base_delay: Duration,
    /// The most one call may take, every try and wait included (see [`CALL_BUDGET`]).
    pub budget: Duration,
    /// What a `response_url` must start with to be called: Slack's hooks.
    response_url_base: String,
}

/// The default [`SlackClient::budget`]: what the functions' time budgets assume one Slack
/// call takes at worst. Short, because Slack itself waits only 3 s for an interaction's
/// answer, and a slow Slack must not cost a decision its function's timeout.
pub const CALL_BUDGET: Duration = Duration::from_millis(2500);

impl SlackClient {
    pub fn new(api_url: &str, bot_token: &str) -> Self {
        // TLS through ring (no-op where a provider is installed already): see Cargo.toml.
        let _ = rustls::crypto::ring::default_provider().install_default();
        SlackClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("a TLS backend is compiled in"),
            api_url: api_url.trim_end_matches('/').to_string(),
            bot_token: bot_token.to_string(),
            attempts: 3,
            max_wait: Duration::from_secs(1),
            base_delay: Duration::from_millis(200),
            budget: CALL_BUDGET,
            response_url_base: "https://hooks.slack.com/".into(),
        }
    }

    /// Where response URLs may point (tests: a local fake).
    pub fn with_response_url_base(mut self, base: &str) -> Self {
        self.response_url_base = base.to_string();
        self
    }

    /// A Web API method (`chat.postMessage`, …) with a JSON body.
    pub async fn api(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.api_url);
        self.post(&url, body, true).await
    }

    /// Posts to a `response_url` (no token: the URL is the credential). The URL comes in
    /// a payload: only one on Slack's hooks is called, so a forged or stored URL cannot
    /// make the server post anywhere else.
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), SlackError> {
        if !response_url.starts_with(&self.response_url_base) {
            return Err(SlackError::Api(format!(
                "a response URL not on {}: not called",
                self.response_url_base
            )));
        }
        self.post(response_url, body, false).await.map(|_| ())
    }

    pub async fn post_message(&self, channel: &str, text: &str, blocks: Option<&Value>) -> Result<Value, SlackError> {
        let mut body = serde_json::json!({ "channel": channel, "text": text });
        if let Some(b) = blocks {
            body["blocks"] = b.clone();
        }
        self.api("chat.postMessage", &body).await
    }

    /// One call, retried with jittered exponential backoff while Slack is rate limiting
    /// or unavailable; a `Retry-After` longer than `max_wait` gives up at once.
    async fn post(&self, url: &str, body: &Value, with_token: bool) -> Result<Value, SlackError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let max_wait = self.max_wait;
        let budget = self.budget;
        let call = (|| self.post_once(url, body, with_token))
            .retry(backoff)
            .when(|f: &Failure| f.retryable)
            .adjust(move |f: &Failure, delay| {
                let delay = f.retry_after.or(delay)?;
                (delay <= max_wait).then_some(delay)
            })
            .notify(|f: &Failure, delay| tracing::warn!(error = %f.error, "Slack call failed; retrying in {delay:?}"));
        match tokio::time::timeout(budget, call).await {
            Ok(result) => result.map_err(|f| f.error),
            Err(_) => Err(SlackError::Unavailable(format!("no answer within {budget:?}"))),
        }
    }

    async fn post_once(&self, url: &str, body: &Value, with_token: bool) -> Result<Value, Failure> {
        let mut req = self.http.post(url).json(body);
        if with_token {
            req = req.bearer_auth(&self.bot_token);
        }
        let retry = |error, retry_after| Failure {
            error,
            retryable: true,
            retry_after,
        };
        let resp = match req.send().await {
            Err(e) => return Err(retry(SlackError::Unavailable(e.without_url().to_string()), None)),
            Ok(resp) => resp,
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        // Web API methods answer JSON with `ok`; response URLs answer `ok` as text.
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let fail = |error| Failure {
            error,
            retryable: false,
            retry_after: None,
        };
        if status.as_u16() == 429 || v["error"] == "ratelimited" {
            Err(retry(SlackError::Unavailable("rate limited".into()), retry_after))
        } else if status.is_server_error() {
            Err(retry(SlackError::Unavailable(format!("{}", status.as_u16())), None))
        } else if !status.is_success() {
            Err(fail(SlackError::Api(format!("{} {}", status.as_u16(), text.trim()))))
        } else if v["ok"] == false {
            Err(fail(SlackError::Api(
                v["error"].as_str().unwrap_or("an error").to_string(),
            )))
        } else {
            Ok(v)
        }
    }
}

/// One failed call: what went wrong, whether another try may help, and when Slack said
/// to come back.
struct Failure {
    error: SlackError,
    retryable: bool,
    retry_after: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A Slack that accepts connections and never answers.
    async fn stalled() -> (String, Arc<AtomicUsize>) {
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
        (url, accepted)
    }

    // Paused time: the clock moves only when every task waits, so no wall clock decides.
    #[tokio::test(start_paused = true)]
    async fn a_slack_that_never_answers_costs_at_most_the_budget() {
        let (url, accepted) = stalled().await;
        let client = SlackClient::new(&url, "xoxb-test");
        let started = tokio::time::Instant::now();
        let err = client
            .post_message("C1", "hello", None)
            .await
            .expect_err("no answer is an error");
        assert_eq!(
            err,
            SlackError::Unavailable(format!("no answer within {CALL_BUDGET:?}"))
        );
        assert_eq!(started.elapsed(), CALL_BUDGET, "given up exactly at the budget");
        // One try timed out (2 s) and the retry was cut short by the budget.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_url_off_slacks_hooks_is_never_called() {
        let (url, accepted) = stalled().await;
        let client = SlackClient::new(&url, "xoxb-test");
        let err = client
            .respond(&format!("{url}/response/x"), &serde_json::json!({"text": "hi"}))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SlackError::Api(m) if m.contains("https://hooks.slack.com/")),
            "{err:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was sent");
        // Pointed at the local server as its base, the same call goes out.
        let local = SlackClient::new(&url, "xoxb-test").with_response_url_base(&url);
        let _ = local
            .respond(&format!("{url}/response/x"), &serde_json::json!({}))
            .await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
