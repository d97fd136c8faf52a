//! Environment overrides: single-value variables a deployment template or a shell sets,
//! applied over the defaults and the TOML file.

use std::path::PathBuf;

use super::{ChainguardSettings, ConfigError, Settings, SlackSettings, DEFAULT_DATA_DIR};

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

impl Settings {
    /// Defaults, then the config file, then environment overrides.
    pub fn load() -> Result<Settings, ConfigError> {
        let env = |k: &'static str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let data_dir = env("IMAGE_REQUEST_DATA_DIR").map(PathBuf::from);
        let file = env("IMAGE_REQUEST_CONFIG").map(PathBuf::from).or_else(|| {
            let p = data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
                .join("config.toml");
            p.exists().then_some(p)
        });
        let mut s = match file {
            Some(path) => Self::from_file(&path)?,
            None => Settings::default(),
        };
        if let Some(d) = data_dir {
            s.data_dir = d;
        }
        if let Some(v) = env("IMAGE_REQUEST_LISTEN") {
            s.listen = v
                .parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Env("IMAGE_REQUEST_LISTEN", v, e.to_string()))?;
        }
        if let Some(v) = env("IMAGE_REQUEST_PUBLIC_URL") {
            s.public_url = Some(v);
        }
        if let Some(v) = env("IMAGE_REQUEST_ORG") {
            s.org_name = v;
        }
        // What a deployment template sets from its parameters.
        if let Some(v) = env("IMAGE_REQUEST_APPROVERS") {
            s.approvers = list(&v);
        }
        if let Some(v) = env("IMAGE_REQUEST_CHAINGUARD_ORG_ID") {
            s.chainguard.get_or_insert_with(ChainguardSettings::default).org_id = v;
        }
        if let Some(cg) = s.chainguard.as_mut() {
            if let Some(v) = env("IMAGE_REQUEST_CHAINGUARD_IDENTITY") {
                cg.identity = Some(v);
            }
            if let Some(v) = env("CHAINGUARD_API_URL") {
                cg.api_url = v;
            }
            if let Some(v) = env("CHAINGUARD_ISSUER_URL") {
                cg.issuer_url = v;
            }
        }
        let slack_secret = env("SLACK_SIGNING_SECRET");
        let slack_env = [
            "IMAGE_REQUEST_SLACK_APPROVALS_CHANNEL",
            "IMAGE_REQUEST_SLACK_APPROVERS",
            "IMAGE_REQUEST_SLACK_CHANNEL_ENVIRONMENTS",
        ];
        if slack_secret.is_some() || s.slack.is_some() || slack_env.iter().any(|k| env(k).is_some()) {
            let slack = s.slack.get_or_insert_with(SlackSettings::default);
            if let Some(v) = slack_secret {
                slack.secrets.signing_secret = v;
            }
            if let Some(v) = env("SLACK_BOT_TOKEN") {
                slack.secrets.bot_token = v;
            }
            if let Some(v) = env("SLACK_API_URL") {
                slack.api_url = v;
            }
            if let Some(v) = env("IMAGE_REQUEST_SLACK_APPROVALS_CHANNEL") {
                slack.approvals_channel = Some(v);
            }
            if let Some(v) = env("IMAGE_REQUEST_SLACK_APPROVERS") {
                slack.approvers = list(&v);
            }
            if let Some(v) = env("IMAGE_REQUEST_SLACK_CHANNEL_ENVIRONMENTS") {
                slack.channel_environments = serde_json::from_str(&v).map_err(|e| {
                    ConfigError::Env("IMAGE_REQUEST_SLACK_CHANNEL_ENVIRONMENTS", v.clone(), e.to_string())
                })?;
            }
        }
        if let Some(v) = env("IMAGE_REQUEST_POLICY") {
            s.policy = serde_json::from_str(&v)
                .map_err(|e| ConfigError::Env("IMAGE_REQUEST_POLICY", v.clone(), e.to_string()))?;
        }
        // What the report counts against, and when approvers hear of the org filling up.
        let number = |k: &'static str, v: String| {
            v.parse::<f64>()
                .map_err(|e| ConfigError::Env(k, v.clone(), e.to_string()))
        };
        if let Some(v) = env("IMAGE_REQUEST_MANUAL_MINUTES_PER_REQUEST") {
            s.report.manual_minutes_per_request = number("IMAGE_REQUEST_MANUAL_MINUTES_PER_REQUEST", v)?;
        }
        if let Some(v) = env("IMAGE_REQUEST_APPROVER_MINUTES_PER_DECISION") {
            s.report.approver_minutes_per_decision = number("IMAGE_REQUEST_APPROVER_MINUTES_PER_DECISION", v)?;
        }
        if let Some(v) = env("IMAGE_REQUEST_REMINDER_AFTER_HOURS") {
            s.reminder_after_hours = v.parse().map_err(|e: std::num::ParseIntError| {
                ConfigError::Env("IMAGE_REQUEST_REMINDER_AFTER_HOURS", v.clone(), e.to_string())
            })?;
        }
        if let Some(v) = env("IMAGE_REQUEST_CAPACITY_ALERT_PERCENT") {
            s.capacity_alert_percent = v.parse().map_err(|e: std::num::ParseIntError| {
                ConfigError::Env("IMAGE_REQUEST_CAPACITY_ALERT_PERCENT", v.clone(), e.to_string())
            })?;
        }
        s.check()?;
        Ok(s)
    }
}
