//! The Chainguard API client: the registry v1 calls
//! provisioning and validation need, and keyless authentication through the STS.

pub mod auth;
pub mod client;
pub mod types;

pub use auth::{TokenSource, Tokens};
pub use client::{Chainguard, Options, CALL_BUDGET};

use std::sync::Arc;

use app::config::{ConfigError, Settings};
use app::ports::Registry;
use app::trial::TrialOrg;
use aws_credential_types::provider::SharedCredentialsProvider;

/// The registry the settings ask for: the Chainguard API when an org is configured (with
/// `CHAINGUARD_TOKEN`, or keyless through `identity` and these AWS credentials), else `None`.
pub fn from_settings(
    settings: &Settings,
    aws: Option<SharedCredentialsProvider>,
) -> Result<Option<Chainguard>, ConfigError> {
    let Some(cg) = &settings.chainguard else {
        return Ok(None);
    };
    let token = std::env::var("CHAINGUARD_TOKEN").ok().filter(|t| !t.is_empty());
    let source = match (token, &cg.identity, aws) {
        (Some(t), _, _) => TokenSource::Static(t),
        (None, Some(identity), Some(aws)) => TokenSource::Keyless {
            identity: identity.clone(),
            aws,
        },
        (None, Some(_), None) => {
            return Err(ConfigError::Invalid(
                "chainguard.identity needs AWS credentials to prove it; locally, set CHAINGUARD_TOKEN".into(),
            ))
        }
        (None, None, _) => {
            return Err(ConfigError::Invalid(
                "a Chainguard org is configured but neither CHAINGUARD_TOKEN nor chainguard.identity is set".into(),
            ))
        }
    };
    let opts = Options::new(&cg.api_url, &cg.org_id, &settings.org_name);
    let http = Chainguard::http_client(opts.timeout);
    let tokens = Tokens::new(source, &cg.issuer_url, &cg.api_url, http.clone());
    tracing::info!(
        org = settings.org_name,
        org_id = cg.org_id,
        api = cg.api_url,
        "provisioning through the Chainguard API"
    );
    Ok(Some(Chainguard::new(opts, tokens, http)))
}

/// The registry a provisioning function uses: the Chainguard org where one is configured,
/// else the trial org (in memory: no org, nothing real is provisioned).
pub fn registry_or_trial(
    settings: &Settings,
    aws: Option<SharedCredentialsProvider>,
) -> Result<Arc<dyn Registry>, ConfigError> {
    Ok(match from_settings(settings, aws)? {
        Some(cg) => Arc::new(cg),
        None => {
            tracing::warn!("no Chainguard org configured: provisioning into the in-memory TRIAL org");
            Arc::new(TrialOrg::new(&settings.org_name))
        }
    })
}
