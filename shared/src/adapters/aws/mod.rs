//! The AWS adapters: DynamoDB (requests and audit), SQS (work queues), SNS (approval and
//! outcome messages), SSM Parameter Store (secrets). Every client is built from one
//! `SdkConfig`, so `AWS_ENDPOINT_URL` points them all at an emulator without code changes.

pub mod dynamo;
pub mod setup;
pub mod sns;
pub mod sqs;

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::adapters::simulated::SimulatedOrg;
use crate::adapters::sqlite::Sqlite;
use crate::adapters::Embedded;
use crate::app::App;
use crate::catalog::Catalog;
use crate::config::{ConfigError, LocalCredentials, Settings};
use crate::ports::{Clock, Registry, SystemClock};

/// Where this deployment's resources are, from the functions' environment.
#[derive(Debug, Clone)]
pub struct AwsNames {
    pub requests_table: String,
    pub audit_table: String,
    pub queues: sqs::QueueUrls,
    pub approvals_topic: String,
    pub notifications_topic: String,
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Env(
            name,
            String::new(),
            "is required when running on AWS".into(),
        ))
}

impl AwsNames {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(AwsNames {
            requests_table: var("REQUESTS_TABLE")?,
            audit_table: var("AUDIT_TABLE")?,
            queues: sqs::QueueUrls {
                validate: var("VALIDATE_QUEUE_URL")?,
                provision: var("PROVISION_QUEUE_URL")?,
                validate_dlq: var("VALIDATE_DLQ_URL").ok(),
                provision_dlq: var("PROVISION_DLQ_URL").ok(),
            },
            approvals_topic: var("APPROVALS_TOPIC_ARN")?,
            notifications_topic: var("NOTIFICATIONS_TOPIC_ARN")?,
        })
    }
}

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads client secrets and link-signing keys from an SSM SecureString parameter holding
/// the JSON of `credentials.json`, into settings that lack them.
pub async fn load_secrets(sdk: &SdkConfig, parameter: &str, mut settings: Settings) -> Result<Settings, ConfigError> {
    let text = self::parameter(sdk, parameter, true).await?;
    let creds: LocalCredentials = serde_json::from_str(&text)
        .map_err(|e| ConfigError::Invalid(format!("SSM parameter {parameter} is not credentials JSON: {e}")))?;
    if settings.clients.is_empty() {
        settings.clients = creds.clients;
    }
    if settings.approval_keys.is_none() {
        settings.approval_keys = Some(creds.approval_keys);
    }
    settings.add_slack_secrets(creds.slack);
    settings.check()?;
    Ok(settings)
}

async fn parameter(sdk: &SdkConfig, name: &str, decrypt: bool) -> Result<String, ConfigError> {
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(decrypt)
        .send()
        .await
        .map_err(|e| ConfigError::Invalid(format!("reading SSM parameter {name}: {}", e.into_service_error())))?;
    Ok(out.parameter.and_then(|p| p.value).unwrap_or_default())
}

/// The application on AWS, and the queue adapter (a message source for local consumers).
pub fn app(
    sdk: &SdkConfig,
    names: &AwsNames,
    settings: Settings,
    registry: Arc<dyn Registry>,
    clock: Arc<dyn Clock>,
) -> Result<(App, sqs::SqsQueue), ConfigError> {
    let store = dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &names.requests_table,
        &names.audit_table,
    );
    let queue = sqs::SqsQueue::new(aws_sdk_sqs::Client::new(sdk), names.queues.clone());
    let notifier = sns::SnsNotifier::new(
        aws_sdk_sns::Client::new(sdk),
        &names.approvals_topic,
        &names.notifications_topic,
    );
    let slack = crate::app::slack_from(&settings)?;
    let app = App {
        store: Arc::new(store.clone()),
        audit: Arc::new(store),
        queue: Arc::new(queue.clone()),
        notifier: Arc::new(notifier),
        registry,
        clock,
        settings: Arc::new(settings),
        slack,
    };
    Ok((app, queue))
}

/// What each Lambda's `main` does once per cold start: settings from the environment,
/// secrets from SSM (`SECRETS_PARAMETER`), one set of clients. Without `REQUESTS_TABLE`
/// it runs on the embedded backend, for `cargo lambda watch` on a laptop.
pub async fn lambda_app() -> Result<App, ConfigError> {
    let settings = Settings::load()?;
    if std::env::var_os("REQUESTS_TABLE").is_none() {
        let settings = settings.with_local_credentials()?;
        tracing::warn!("REQUESTS_TABLE is not set: running on the embedded backend");
        return Embedded::open(settings).map(|e| e.app).map_err(ConfigError::Invalid);
    }
    let sdk = sdk_config().await;
    let names = AwsNames::from_env()?;
    // The API's URL lives in a parameter the stack writes: the functions cannot name the
    // API in their own environment without a dependency cycle in the template. Both reads
    // at once: each is a round trip paid by every cold start.
    let url_parameter = var("PUBLIC_URL_PARAMETER")
        .ok()
        .filter(|_| settings.public_url.is_none());
    let public_url = async {
        match &url_parameter {
            Some(name) => parameter(&sdk, name, false).await.map(Some),
            None => Ok(None),
        }
    };
    let secrets = var("SECRETS_PARAMETER")?;
    let (settings, public_url) = tokio::try_join!(load_secrets(&sdk, &secrets, settings), public_url)?;
    let mut settings = settings;
    if public_url.is_some() {
        settings.public_url = public_url;
    }
    // intake and approval never provision: the template gives them no Chainguard identity,
    // and catalog searches use the built-in snapshot (validation checks the live catalog).
    let no_identity = settings.chainguard.as_ref().is_some_and(|c| c.identity.is_none())
        && std::env::var_os("CHAINGUARD_TOKEN").is_none();
    let registry: Arc<dyn Registry> = if no_identity {
        tracing::info!("no Chainguard identity for this function: catalog searches use the built-in snapshot");
        let db = Sqlite::in_memory().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Arc::new(SimulatedOrg::new(db, &settings.org_name, Catalog::embedded()))
    } else {
        match crate::adapters::chainguard::from_settings(&settings, sdk.credentials_provider())? {
            Some(cg) => Arc::new(cg),
            None => {
                tracing::warn!("no Chainguard org configured: provisioning into the SIMULATED org");
                let db = Sqlite::in_memory().map_err(|e| ConfigError::Invalid(e.to_string()))?;
                Arc::new(SimulatedOrg::new(db, &settings.org_name, Catalog::embedded()))
            }
        }
    };
    Ok(app(&sdk, &names, settings, registry, Arc::new(SystemClock))?.0)
}
