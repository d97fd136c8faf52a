//! Credential files: client secrets, link-signing keys and Slack secrets. Locally they
//! are generated once into `<data dir>/credentials.json` (mode 0600), which the CLI reads
//! too; on AWS the same JSON lives in an SSM SecureString parameter.

use std::path::{Path, PathBuf};

use domain::auth::token::TokenKeys;
use domain::{Environment, Principal};
use rand::RngCore;

use super::{ClientConfig, ConfigError, LocalCredentials, Settings, SlackSecrets, SlackSettings, CREDENTIALS_FILE};

impl Settings {
    /// Fills in clients and link-signing keys that are not configured from
    /// `credentials.json`, creating it with fresh random secrets the first time.
    pub fn with_local_credentials(self) -> Result<Settings, ConfigError> {
        if !self.clients.is_empty() && self.approval_keys.is_some() && self.audit_keys.is_some() {
            return Ok(self);
        }
        let creds = load_or_create_credentials(&self.data_dir)?;
        self.with_credentials(creds)
    }

    /// Fills in clients, link-signing keys and Slack secrets the settings lack from a
    /// credentials file, then checks them.
    pub fn with_credentials(self, creds: LocalCredentials) -> Result<Settings, ConfigError> {
        self.with_audit_keys(creds.audit_keys)?.with_secrets(
            Some(creds.clients),
            Some(creds.approval_keys),
            creds.slack,
        )
    }

    /// The audit keys, where the settings have none yet.
    pub fn with_audit_keys(mut self, keys: Option<TokenKeys>) -> Result<Settings, ConfigError> {
        if self.audit_keys.is_none() {
            self.audit_keys = keys;
        }
        self.check()?;
        Ok(self)
    }

    /// Fills in whichever secrets are given and the settings lack (a Lambda is given only
    /// those it uses), then checks them.
    pub fn with_secrets(
        mut self,
        clients: Option<Vec<ClientConfig>>,
        approval_keys: Option<TokenKeys>,
        slack: Option<SlackSecrets>,
    ) -> Result<Settings, ConfigError> {
        if self.clients.is_empty() {
            self.clients = clients.unwrap_or_default();
        }
        if self.approval_keys.is_none() {
            self.approval_keys = approval_keys;
        }
        self.add_slack_secrets(slack);
        self.check()?;
        Ok(self)
    }

    /// Slack secrets from a credentials file or parameter, where the environment gave
    /// none. Slack is on once its secrets are there.
    pub fn add_slack_secrets(&mut self, secrets: Option<SlackSecrets>) {
        if let Some(secrets) = secrets {
            let slack = self.slack.get_or_insert_with(SlackSettings::default);
            if slack.secrets.signing_secret.is_empty() {
                slack.secrets = secrets;
            }
        }
    }
}

pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CREDENTIALS_FILE)
}

pub fn read_credentials(data_dir: &Path) -> Result<LocalCredentials, ConfigError> {
    let path = credentials_path(data_dir);
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read(path.clone(), e))?;
    secret_json(&text).map_err(|e| ConfigError::Parse(path, e))
}

/// Parses JSON that holds secrets. The error says where and what kind of mistake, never
/// the text around it: serde's own messages quote values ("invalid type: string \"…\""),
/// which here would be a secret in a log.
pub fn secret_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Eof => "cut short",
            serde_json::error::Category::Data => "not the fields and types expected",
            serde_json::error::Category::Io => "unreadable",
        };
        format!("{kind} (line {}, column {})", e.line(), e.column())
    })
}

fn load_or_create_credentials(data_dir: &Path) -> Result<LocalCredentials, ConfigError> {
    let path = credentials_path(data_dir);
    if path.exists() {
        let mut creds = read_credentials(data_dir)?;
        if creds.audit_keys.is_none() {
            // A file from before the audit trail was sealed: it gains its keys once.
            creds.audit_keys = Some(fresh_keys("a1"));
            let text = serde_json::to_string_pretty(&creds).expect("credentials serialise");
            let tmp = path.with_extension("json.new");
            let _ = std::fs::remove_file(&tmp);
            write_private(&tmp, text.as_bytes()).map_err(|e| ConfigError::Write(tmp.clone(), e))?;
            std::fs::rename(&tmp, &path).map_err(|e| ConfigError::Write(path.clone(), e))?;
        }
        return Ok(creds);
    }
    std::fs::create_dir_all(data_dir).map_err(|e| ConfigError::Write(data_dir.into(), e))?;
    let creds = LocalCredentials {
        clients: vec![
            ClientConfig {
                id: "dev".into(),
                secret: random_secret(),
                principal: Principal::Email("developer@example.com".into()),
                admin: false,
                assert_requester: false,
                pre_approve: false,
                // The local walkthrough's `--env dev` auto-approves: this client vouches.
                environments: vec![Environment::Dev],
                repository_environments: Default::default(),
            },
            ClientConfig {
                id: "admin".into(),
                secret: random_secret(),
                principal: Principal::Email("platform-admin@example.com".into()),
                admin: true,
                assert_requester: false,
                pre_approve: false,
                environments: vec![],
                repository_environments: Default::default(),
            },
            // What a merge workflow uses: submits for the PR's author, approved by the merge.
            ClientConfig {
                id: "merge-bot".into(),
                secret: random_secret(),
                principal: Principal::Service("github-merge".into()),
                admin: false,
                assert_requester: true,
                pre_approve: true,
                environments: vec![],
                repository_environments: Default::default(),
            },
        ],
        approval_keys: fresh_keys("k1"),
        audit_keys: Some(fresh_keys("a1")),
        slack: None,
    };
    let text = serde_json::to_string_pretty(&creds).expect("credentials serialise");
    write_private(&path, text.as_bytes()).map_err(|e| ConfigError::Write(path.clone(), e))?;
    Ok(creds)
}

/// One fresh random key under `id`, active.
fn fresh_keys(id: &str) -> TokenKeys {
    TokenKeys {
        active: id.into(),
        keys: [(id.to_string(), random_secret())].into(),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_secret_is_located_never_quoted() {
        for text in [
            r#"[{"id": "ci", "secret": 12345678901234567890, "principal": "service:ci"}]"#,
            r#"{"clients": "the-secret-itself"}"#,
            r#"{"active": "k1", "keys": {"k1": "s3cr3t-value" "#,
        ] {
            let err = secret_json::<Vec<ClientConfig>>(text).unwrap_err();
            for secret in ["12345678901234567890", "the-secret-itself", "s3cr3t-value"] {
                assert!(!err.contains(secret), "{err}");
            }
            assert!(err.contains("line 1, column"), "{err}");
        }
    }
}
