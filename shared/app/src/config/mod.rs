//! Configuration, read once at start-up into typed settings. Errors name the file or
//! variable at fault.
//!
//! Sources, later ones winning: built-in defaults, the TOML file (`IMAGE_REQUEST_CONFIG`,
//! or `<data dir>/config.toml` where it exists), then single-value environment variables.
//! Locally, client secrets and link-signing keys that are not configured are generated
//! once into `<data dir>/credentials.json` (mode 0600), which the CLI reads too.
//!
//! This module holds the settings and their checks; `env` the environment overrides,
//! `credentials` the credential files.

pub mod credentials;
mod env;

pub use credentials::{credentials_path, random_secret, read_credentials};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use domain::auth::token::TokenKeys;
use domain::{Environment, Policy, Principal};

pub const DEFAULT_DATA_DIR: &str = ".image-request";
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// An API client allowed to call the HTTP API with an HMAC signature.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: String,
    pub secret: String,
    /// Who this client acts as: the requester of what it submits, the approver of what it decides.
    pub principal: Principal,
    /// May list and decide requests (`cgr-request admin …`).
    #[serde(default)]
    pub admin: bool,
    /// May name another requester in the body (a form tool or chat bridge that authenticated its user).
    #[serde(default)]
    pub assert_requester: bool,
    /// May submit requests already approved by a merged pull request (the merge
    /// workflow's client): no admin is asked again.
    #[serde(default)]
    pub pre_approve: bool,
    /// The environments this client vouches for: a request it submits claiming one of
    /// them counts for the policy's `auto_approve_environments`. Anything else it claims
    /// is shown to approvers as unverified. None by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<Environment>,
    /// For a merge workflow's client: repositories (`acme/infra`, or `acme/*`) whose
    /// merged pull requests vouch for these environments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repository_environments: BTreeMap<String, Vec<Environment>>,
}

impl ClientConfig {
    /// Who vouches for `env` on a submission from this client (from a merged pull request
    /// of `repository`, where there is one); `None`: nobody, it stays a claim.
    pub fn vouch(&self, env: Environment, repository: Option<&str>) -> Option<String> {
        if self.environments.contains(&env) {
            return Some(format!("client {}", self.id));
        }
        let repo = repository?;
        self.repository_environments
            .iter()
            .find(|(pattern, envs)| envs.contains(&env) && domain::policy::glob(pattern, repo))
            .map(|_| format!("repository {repo}"))
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("admin", &self.admin)
            .field("environments", &self.environments)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the local server listens.
    pub listen: SocketAddr,
    /// The base URL that approval links point at.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    /// The organization's name in pull strings: `cgr.dev/<org_name>/<image>`.
    pub org_name: String,
    /// Chainguard's per-org repository limit.
    pub org_repo_limit: usize,
    pub approval_ttl_hours: u32,
    /// Hours a request may wait for a decision before its approvers are reminded, and
    /// again after as many more (0: never).
    pub reminder_after_hours: u32,
    /// Deliveries of a queue message before it goes to the dead letters.
    pub max_receives: u32,
    pub visibility_timeout_secs: u64,
    /// Seconds before a notice whose channel failed is tried again, doubled at each try
    /// (60: then 2, 4 and 8 minutes).
    pub notice_retry_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Email addresses of the admins who approve.
    pub approvers: Vec<String>,
    pub policy: Policy,
    pub clients: Vec<ClientConfig>,
    pub approval_keys: Option<TokenKeys>,
    /// Keys that seal audit events (HMAC-SHA256, `domain::audit`): the active one seals,
    /// older ones still verify. Without them, events are written unsealed.
    pub audit_keys: Option<TokenKeys>,
    /// The real Chainguard org to provision into; without it, the simulated org.
    pub chainguard: Option<ChainguardSettings>,
    /// The Slack app; without it, `/slack/*` answers 404.
    pub slack: Option<SlackSettings>,
    /// What `cgr-request report` counts the time saved against.
    pub report: ReportSettings,
    /// The share of `org_repo_limit` in use (percent) at which approvers are alerted, once
    /// per crossing.
    pub capacity_alert_percent: u8,
}

/// The manual process the tool replaces, in a person's minutes (README, "Measuring success").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    pub manual_minutes_per_request: f64,
    pub approver_minutes_per_decision: f64,
}

impl Default for ReportSettings {
    fn default() -> Self {
        let c = domain::report::Costs::default();
        ReportSettings {
            manual_minutes_per_request: c.manual_minutes_per_request,
            approver_minutes_per_decision: c.approver_minutes_per_decision,
        }
    }
}

impl ReportSettings {
    pub fn costs(&self) -> domain::report::Costs {
        domain::report::Costs {
            manual_minutes_per_request: self.manual_minutes_per_request,
            approver_minutes_per_decision: self.approver_minutes_per_decision,
        }
    }
}

/// Where the Chainguard API is and which org it acts for. The token is never part of the
/// settings: `CHAINGUARD_TOKEN` (local use), or keyless through `identity` (Lambda).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainguardSettings {
    /// The organization's UIDP: 40 hex characters.
    pub org_id: String,
    pub api_url: String,
    pub issuer_url: String,
    /// The assumable identity's UIDP, for keyless authentication from AWS.
    pub identity: Option<String>,
}

impl Default for ChainguardSettings {
    fn default() -> Self {
        ChainguardSettings {
            org_id: String::new(),
            api_url: "https://console-api.enforce.dev".into(),
            issuer_url: "https://issuer.enforce.dev".into(),
            identity: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: ([127, 0, 0, 1], 8080).into(),
            public_url: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            org_name: "example.com".into(),
            org_repo_limit: 2500,
            approval_ttl_hours: 72,
            reminder_after_hours: 24,
            max_receives: 5,
            visibility_timeout_secs: 30,
            notice_retry_secs: 60,
            max_body_bytes: 16 * 1024,
            approvers: vec!["platform-admin@example.com".into(), "security-lead@example.com".into()],
            policy: Policy {
                auto_approve_environments: vec![domain::Environment::Dev],
                ..Policy::default()
            },
            clients: vec![],
            approval_keys: None,
            audit_keys: None,
            chainguard: None,
            slack: None,
            report: ReportSettings::default(),
            capacity_alert_percent: 90,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not valid configuration: {1}")]
    Parse(PathBuf, String),
    #[error("environment variable {0}={1:?} is not valid: {2}")]
    Env(&'static str, String, String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// What `credentials.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalCredentials {
    pub clients: Vec<ClientConfig>,
    pub approval_keys: TokenKeys,
    /// What seals the audit trail; added to an older file the first time it is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_keys: Option<TokenKeys>,
    /// The Slack app's signing secret and bot token, where Slack is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSecrets>,
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSecrets {
    pub signing_secret: String,
    pub bot_token: String,
}

impl std::fmt::Debug for SlackSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackSecrets(<redacted>)")
    }
}

/// The Slack app: where approvals are posted, who may click Approve, and its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackSettings {
    pub api_url: String,
    /// Channel id for approval messages with buttons; none: approvals stay in email.
    pub approvals_channel: Option<String>,
    /// Slack user ids (`U…`) allowed to approve from Slack.
    pub approvers: Vec<String>,
    /// Channel ids (`C…`) whose commands vouch for these environments: `/request-image
    /// redis --env dev` from a channel mapped to `dev` counts for the policy; from
    /// anywhere else it is the user's unverified claim.
    pub channel_environments: BTreeMap<String, Vec<Environment>>,
    /// Where a command's or click's `response_url` may point: Slack's own hooks. Anything
    /// else in a payload is never called (tests point it at a local fake).
    pub response_url_base: String,
    /// From `credentials.json` / the secrets parameter, or `SLACK_SIGNING_SECRET` and
    /// `SLACK_BOT_TOKEN`; never from the TOML file.
    #[serde(skip)]
    pub secrets: SlackSecrets,
}

impl Default for SlackSettings {
    fn default() -> Self {
        SlackSettings {
            api_url: "https://slack.com/api".into(),
            approvals_channel: None,
            approvers: vec![],
            channel_environments: BTreeMap::new(),
            response_url_base: "https://hooks.slack.com/".into(),
            secrets: SlackSecrets::default(),
        }
    }
}

impl Settings {
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e.to_string()))
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_receives == 0 {
            return bad("max_receives must be at least 1".into());
        }
        if self.approval_ttl_hours == 0 {
            return bad("approval_ttl_hours must be at least 1".into());
        }
        if !(1..=100).contains(&self.capacity_alert_percent) {
            return bad("capacity_alert_percent must be 1 to 100".into());
        }
        let minutes = [
            (
                "report.manual_minutes_per_request",
                self.report.manual_minutes_per_request,
            ),
            (
                "report.approver_minutes_per_decision",
                self.report.approver_minutes_per_decision,
            ),
        ];
        for (name, m) in minutes {
            if !(0.0..=10_000.0).contains(&m) {
                return bad(format!("{name} must be 0 to 10000 minutes"));
            }
        }
        for a in &self.approvers {
            if Principal::Email(a.clone()).to_string().parse::<Principal>().is_err() {
                return bad(format!("approver `{a}` is not an email address"));
            }
        }
        if let Some(cg) = &self.chainguard {
            let uidp = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !uidp(&cg.org_id, 40) {
                return bad(format!(
                    "chainguard.org_id `{}` is not an organization UIDP (40 hex characters)",
                    cg.org_id
                ));
            }
            if let Some(id) = &cg.identity {
                let ok = id
                    .split_once('/')
                    .is_some_and(|(org, child)| uidp(org, 40) && uidp(child, 16));
                if !ok {
                    return bad(format!(
                        "chainguard.identity `{id}` is not an identity UIDP (<40 hex>/<16 hex>)"
                    ));
                }
            }
        }
        if let Some(slack) = &self.slack {
            for u in &slack.approvers {
                if !(u.starts_with('U') || u.starts_with('W'))
                    || !u.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                {
                    return bad(format!("slack.approvers: `{u}` is not a Slack user id (U…)"));
                }
            }
        }
        for (name, keys) in [("approval_keys", &self.approval_keys), ("audit_keys", &self.audit_keys)] {
            let Some(k) = keys else { continue };
            if !k.keys.contains_key(&k.active) {
                return bad(format!("{name}.active `{}` names no key in {name}.keys", k.active));
            }
            if k.keys.values().any(|v| v.len() < 32) {
                return bad(format!("{name}.keys: every key must be at least 32 characters"));
            }
        }
        for c in &self.clients {
            if c.secret.len() < 32 {
                return bad(format!("client `{}`: the secret must be at least 32 characters", c.id));
            }
        }
        Ok(())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_vouches_only_for_what_it_is_configured_with() {
        let mut c: ClientConfig = serde_json::from_value(serde_json::json!({
            "id": "merge-bot", "secret": "s", "principal": "service:github-merge",
            "repository_environments": {"acme/infra-*": ["dev", "staging"]}
        }))
        .unwrap();
        // Nothing by default: a claim stays a claim.
        assert_eq!(c.vouch(Environment::Dev, None), None);
        assert_eq!(c.vouch(Environment::Dev, Some("acme/app")), None);
        assert_eq!(
            c.vouch(Environment::Staging, Some("acme/infra-dev")).as_deref(),
            Some("repository acme/infra-dev")
        );
        assert_eq!(c.vouch(Environment::Prod, Some("acme/infra-dev")), None);
        c.environments = vec![Environment::Dev];
        assert_eq!(c.vouch(Environment::Dev, None).as_deref(), Some("client merge-bot"));
    }

    #[test]
    fn local_credentials_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            data_dir: dir.path().into(),
            ..Settings::default()
        };
        let a = s.clone().with_local_credentials().unwrap();
        let b = s.with_local_credentials().unwrap();
        assert_eq!(a.clients[0].secret, b.clients[0].secret);
        assert_eq!(a.clients.len(), 3);
        assert!(a.clients.iter().any(|c| c.pre_approve && !c.admin));
        assert!(a.clients.iter().any(|c| c.admin));
        assert!(
            !format!("{a:?}").contains(&a.clients[0].secret),
            "Debug never shows secrets"
        );
    }

    #[test]
    fn config_files_with_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "org_name = \"acme\"\napprover = [\"x@y.z\"]\n").unwrap();
        let err = Settings::from_file(&p).unwrap_err().to_string();
        assert!(err.contains("approver"), "{err}");
        std::fs::write(&p, "org_name = \"acme\"\n[policy]\ndeny_images = [\"*-fips\"]\n").unwrap();
        let s = Settings::from_file(&p).unwrap();
        assert_eq!(s.org_name, "acme");
        assert_eq!(s.policy.deny_images, vec!["*-fips"]);
    }
}
