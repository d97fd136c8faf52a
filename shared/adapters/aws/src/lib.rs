//! The AWS adapters: DynamoDB (requests and audit), SQS (work queues), SNS (approval and
//! outcome messages), SSM Parameter Store (secrets). Every client is built from one
//! `SdkConfig`, so `AWS_ENDPOINT_URL` points them all at an emulator without code changes.
//!
//! SQS and SNS are features: each Lambda enables the clients it calls and links no
//! other (ARCHITECTURE.md, "Which Lambda links what").

pub mod dynamo;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "setup")]
pub mod setup;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;

use std::collections::HashMap;
use std::sync::Arc;

use app::config::{ConfigError, Settings};
use app::ports::SystemClock;
use app::App;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_types::SdkConfig;

/// Where this deployment's resources are, from the functions' environment.
#[derive(Debug, Clone)]
pub struct AwsNames {
    pub requests_table: String,
    pub audit_table: String,
    pub queues: QueueUrls,
    pub approvals_topic: String,
    pub notifications_topic: String,
}

/// The work queues and their dead-letter queues.
#[derive(Debug, Clone)]
pub struct QueueUrls {
    pub validate: String,
    pub provision: String,
    pub notify: String,
    pub validate_dlq: Option<String>,
    pub provision_dlq: Option<String>,
    pub notify_dlq: Option<String>,
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
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From a function's environment variables, wherever they are read from (the tests
    /// read a deployed stack's).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| {
            get(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Env(
                name,
                String::new(),
                "is required when running on AWS".into(),
            ))
        };
        Ok(AwsNames {
            requests_table: var("REQUESTS_TABLE")?,
            audit_table: var("AUDIT_TABLE")?,
            queues: QueueUrls {
                validate: var("VALIDATE_QUEUE_URL")?,
                provision: var("PROVISION_QUEUE_URL")?,
                notify: var("NOTIFY_QUEUE_URL")?,
                validate_dlq: var("VALIDATE_DLQ_URL").ok(),
                provision_dlq: var("PROVISION_DLQ_URL").ok(),
                notify_dlq: var("NOTIFY_DLQ_URL").ok(),
            },
            approvals_topic: var("APPROVALS_TOPIC_ARN")?,
            notifications_topic: var("NOTIFICATIONS_TOPIC_ARN")?,
        })
    }
}

/// The SDK configuration through the full provider chain (environment, profiles, SSO,
/// assume-role), for people at a terminal.
#[cfg(feature = "provider-chain")]
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// HTTPS through rustls with ring, for every AWS client we build: a Lambda's, the CLI's,
/// the emulator's.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration of a Lambda: region, the function's credentials and
/// `AWS_ENDPOINT_URL`, all from its environment. Built by hand rather than through
/// aws-config's provider chain: a Lambda's credentials are always in its environment, and
/// the chain (profiles, SSO, STS, IMDS) would add its code to every bootstrap.
pub fn lambda_sdk_config() -> Result<SdkConfig, ConfigError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::Env(
            "AWS_REGION",
            String::new(),
            "is required when running on AWS".into(),
        ))?;
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        env("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut b = SdkConfig::builder()
        .http_client(https_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    if let Some(url) = env("AWS_ENDPOINT_URL") {
        b = b.endpoint_url(url);
    }
    Ok(b.build())
}

/// Reads SSM parameters in one round trip (`GetParameters`, decrypting SecureStrings):
/// each round trip is paid by every cold start. Answers the values found, by name; a name
/// the account does not have is absent.
async fn parameters(sdk: &SdkConfig, names: &[&str]) -> Result<HashMap<String, String>, ConfigError> {
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameters()
        .set_names(Some(names.iter().map(|n| n.to_string()).collect()))
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| ConfigError::Invalid(format!("reading SSM parameters {names:?}: {}", e.into_service_error())))?;
    Ok(out
        .parameters
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| Some((p.name?, p.value?)))
        .collect())
}

/// A secret parameter's JSON, where the function was told its name.
fn secret<T: serde::de::DeserializeOwned>(
    found: &HashMap<String, String>,
    name: Option<&str>,
    required: bool,
) -> Result<Option<T>, ConfigError> {
    let Some(name) = name else { return Ok(None) };
    match found.get(name) {
        Some(text) => app::config::credentials::secret_json(text)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("SSM parameter {name}: {e}"))),
        None if required => Err(ConfigError::Invalid(format!(
            "SSM parameter {name} not found (infra/README.md, \"Set the secrets\")"
        ))),
        None => Ok(None),
    }
}

/// The DynamoDB store and audit log.
pub fn store(sdk: &SdkConfig, names: &AwsNames) -> Arc<dynamo::DynamoStore> {
    Arc::new(dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &names.requests_table,
        &names.audit_table,
    ))
}

#[cfg(feature = "sqs")]
pub fn queue(sdk: &SdkConfig, names: &AwsNames) -> Arc<sqs::SqsQueue> {
    Arc::new(sqs::SqsQueue::new(aws_sdk_sqs::Client::new(sdk), names.queues.clone()))
}

#[cfg(feature = "sns")]
pub fn notifier(sdk: &SdkConfig, names: &AwsNames) -> Arc<sns::SnsNotifier> {
    Arc::new(sns::SnsNotifier::new(
        aws_sdk_sns::Client::new(sdk),
        &names.approvals_topic,
        &names.notifications_topic,
    ))
}

/// The function's short name (`intake`, …), from the name Lambda gives it
/// (`image-request-<stage>-intake`): the metrics' `Function` dimension.
pub fn function_name() -> String {
    let full = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    full.rsplit('-')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("local")
        .to_string()
}

/// What each Lambda's `main` starts from, once per cold start: settings from the
/// environment, secrets and the public URL from SSM, the SDK configuration. The function
/// then wires the adapters it uses into [`Lambda::app`] and nothing else.
pub struct Lambda {
    pub sdk: SdkConfig,
    pub names: AwsNames,
    pub settings: Settings,
}

impl Lambda {
    pub async fn start() -> Result<Lambda, ConfigError> {
        let settings = Settings::load()?;
        let names = AwsNames::from_env()?;
        let sdk = lambda_sdk_config()?;
        // The API's URL lives in a parameter the stack writes: the functions cannot name the
        // API in their own environment without a dependency cycle in the template. It is
        // read with the secrets, in one round trip. Each function is told only the secrets
        // it uses (least privilege: intake and provision cannot mint approval links).
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let clients = env("CLIENTS_PARAMETER");
        let keys = env("APPROVAL_KEYS_PARAMETER");
        // Every function writes audit events, so every function seals them.
        let audit_keys = env("AUDIT_KEYS_PARAMETER");
        let slack = env("SLACK_PARAMETER");
        let url = env("PUBLIC_URL_PARAMETER").filter(|_| settings.public_url.is_none());
        let wanted: Vec<&str> = [&clients, &keys, &audit_keys, &slack, &url]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let found = if wanted.is_empty() {
            HashMap::new()
        } else {
            parameters(&sdk, &wanted).await?
        };
        let mut settings = settings.with_audit_keys(secret(&found, audit_keys.as_deref(), true)?)?;
        settings = settings.with_secrets(
            secret(&found, clients.as_deref(), true)?,
            secret(&found, keys.as_deref(), true)?,
            // Slack is optional: no parameter, no Slack.
            secret(&found, slack.as_deref(), false)?,
        )?;
        if let Some(name) = &url {
            let value = found
                .get(name)
                .ok_or_else(|| ConfigError::Invalid(format!("SSM parameter {name} not found")))?;
            settings.public_url = Some(value.clone());
        }
        Ok(Lambda { sdk, names, settings })
    }

    /// The app on DynamoDB with the system clock, printing its metrics as EMF lines; add
    /// the other ports the function uses.
    pub fn app(&self) -> App {
        let store = store(&self.sdk, &self.names);
        let app = App::new(store.clone(), store, self.settings.clone(), Arc::new(SystemClock));
        app.metrics.set(Arc::new(app::metrics::Stdout), &function_name());
        app
    }

    #[cfg(feature = "sqs")]
    pub fn queue(&self) -> Arc<sqs::SqsQueue> {
        queue(&self.sdk, &self.names)
    }

    #[cfg(feature = "sns")]
    pub fn notifier(&self) -> Arc<sns::SnsNotifier> {
        notifier(&self.sdk, &self.names)
    }
}
