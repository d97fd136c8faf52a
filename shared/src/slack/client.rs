//! The one way out to Slack: Web API calls with the bot token, and posts to a command's
//! or a click's `response_url`. Rate limits (`429` + `Retry-After`, or `ratelimited`)
//! and outages are retried a few times; nothing here logs a token or a response URL.

use std::time::Duration;

use rand::Rng;
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
}

impl SlackClient {
    pub fn new(api_url: &str, bot_token: &str) -> Self {
        SlackClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a TLS backend is compiled in"),
            api_url: api_url.trim_end_matches('/').to_string(),
            bot_token: bot_token.to_string(),
            attempts: 3,
            max_wait: Duration::from_secs(5),
            base_delay: Duration::from_millis(200),
        }
    }

    /// A Web API method (`chat.postMessage`, …) with a JSON body.
    pub async fn api(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.api_url);
        self.post(&url, body, true).await
    }

    /// Posts to a `response_url` (no token: the URL is the credential).
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), SlackError> {
        self.post(response_url, body, false).await.map(|_| ())
    }

    pub async fn post_message(&self, channel: &str, text: &str, blocks: Option<&Value>) -> Result<Value, SlackError> {
        let mut body = serde_json::json!({ "channel": channel, "text": text });
        if let Some(b) = blocks {
            body["blocks"] = b.clone();
        }
        self.api("chat.postMessage", &body).await
    }

    async fn post(&self, url: &str, body: &Value, with_token: bool) -> Result<Value, SlackError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.http.post(url).json(body);
            if with_token {
                req = req.bearer_auth(&self.bot_token);
            }
            let (err, retry_after): (SlackError, Option<Duration>) = match req.send().await {
                Err(e) => (SlackError::Unavailable(e.without_url().to_string()), None),
                Ok(resp) => {
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
                    if status.as_u16() == 429 || v["error"] == "ratelimited" {
                        (SlackError::Unavailable("rate limited".into()), retry_after)
                    } else if status.is_server_error() {
                        (SlackError::Unavailable(format!("{}", status.as_u16())), None)
                    } else if !status.is_success() {
                        return Err(SlackError::Api(format!("{} {}", status.as_u16(), text.trim())));
                    } else if v["ok"] == false {
                        return Err(SlackError::Api(v["error"].as_str().unwrap_or("an error").to_string()));
                    } else {
                        return Ok(v);
                    }
                }
            };
            if attempt >= self.attempts {
                return Err(err);
            }
            let delay = retry_after.unwrap_or_else(|| {
                (self.base_delay * 2u32.pow(attempt - 1)).mul_f64(rand::rng().random_range(0.5..=1.0))
            });
            if delay > self.max_wait {
                return Err(err);
            }
            tracing::warn!(attempt, error = %err, "Slack call failed; retrying in {delay:?}");
            tokio::time::sleep(delay).await;
        }
    }
}
