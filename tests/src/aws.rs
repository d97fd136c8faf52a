//! The AWS backend of the harness: every test deploys its own stack from
//! `infra/template.yaml` (through SAM's translator, into the emulator's CloudFormation:
//! moto's server at `MOTO_URL`), so what the tests exercise is what a deployment creates;
//! and mailboxes that catch what SNS delivers, through the same subscriptions and filter
//! policies the template's email subscriptions use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use aws_adapter::{setup, AwsNames};
use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

/// Set to `aws` to run the suite against the AWS adapters on the emulator.
pub const BACKEND_VAR: &str = "IMAGE_REQUEST_TEST_BACKEND";

pub fn wanted() -> bool {
    match std::env::var(BACKEND_VAR).as_deref() {
        Ok("aws") => true,
        Ok("embedded") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_VAR}={other}: expected `aws` or `embedded`"),
    }
}

pub fn moto_url() -> String {
    std::env::var("MOTO_URL").unwrap_or_else(|_| {
        panic!("the AWS tests need MOTO_URL: run tests/run.sh, or `source tests/emulator.sh` first")
    })
}

/// A fresh SDK configuration per test: clients hold connection pools bound to the
/// runtime that made them, and every `#[tokio::test]` has its own runtime.
pub async fn sdk() -> SdkConfig {
    setup::emulator_config(&moto_url()).await
}

/// A queue per approver subscribed to the approvals topic with that approver's filter
/// policy, and one on the notifications topic: what email subscriptions would receive.
pub struct Mailboxes {
    sqs: aws_sdk_sqs::Client,
    queues: Vec<String>,
    approvers: Vec<String>,
    seen: Mutex<Vec<(String, String)>>,
}

/// One stack or queue creation at a time per test process: moto's SQS iterates every queue
/// while it creates one with a redrive policy, and fails ("dictionary changed size during
/// iteration") when another test creates a queue meanwhile.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The repository's root, where the template and the venv are.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python (tests/run.sh makes it), or the one on the PATH.
pub fn python() -> PathBuf {
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// `infra/template.yaml` through SAM's translator (tests/infra/sam.py), once per test
/// process, so every stack is what `sam deploy` would create from the template as it is now.
fn translated_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = root().join("target/sam");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("template-{}.json", std::process::id()));
        let run = Command::new(python())
            .arg(root().join("tests/infra/sam.py"))
            .arg("translate")
            .arg(root().join("infra/template.yaml"))
            .arg(&out)
            .output()
            .expect("python runs (tests/run.sh installs the venv)");
        assert!(
            run.status.success(),
            "SAM's translator refused infra/template.yaml, or the result cannot deploy:\n{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        // One file for everyone who reads it after: renamed into place whole.
        let shared = dir.join("template.json");
        std::fs::rename(&out, &shared).unwrap();
        shared
    })
}

/// A stack deployed from the template into the emulator's CloudFormation.
pub struct Deployed {
    pub stack: String,
    /// Each function's environment as the stack resolved it, by logical id (`IntakeFunction`).
    pub environments: HashMap<String, HashMap<String, String>>,
    /// Physical ids by logical id.
    pub resources: HashMap<String, String>,
    pub names: AwsNames,
}

/// Deploys the template as stack `image-request-<stage>` (tests/infra/stack.py), with the
/// work queues' visibility timeout and redrive count set for a test's patience.
pub async fn deploy(stage: &str, max_receives: u32, visibility: u64, approvers: &[String]) -> Deployed {
    let _one_at_a_time = CREATING.lock().await;
    let template = translated_template();
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/infra/stack.py"))
        .arg("deploy")
        .arg(stage)
        .arg(template)
        .arg("--visibility")
        .arg(visibility.to_string())
        .arg("--max-receives")
        .arg(max_receives.to_string())
        .env("MOTO_URL", moto_url());
    for a in approvers {
        cmd.arg("--approver").arg(a);
    }
    let run = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        run.status.success(),
        "the stack did not deploy into the emulator:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    #[derive(serde::Deserialize)]
    struct Out {
        stack: String,
        environments: HashMap<String, HashMap<String, String>>,
        resources: HashMap<String, String>,
    }
    let out: Out = serde_json::from_slice(&run.stdout).unwrap();
    // The names every function is given (the template's globals).
    let names = AwsNames::from_vars(|k| out.environments["IntakeFunction"].get(k).cloned()).unwrap();
    Deployed {
        stack: out.stack,
        environments: out.environments,
        resources: out.resources,
        names,
    }
}

impl Deployed {
    /// What an operator does after the deploy (infra/README.md, "Set the secrets"): the
    /// clients and link keys into the parameters the stack names; and the API's URL into
    /// the stack's public-URL parameter, which the emulator's CloudFormation cannot fill
    /// (it skips API Gateway v2).
    pub async fn set_secrets(&self, sdk: &SdkConfig, creds: &app::config::LocalCredentials, public_url: &str) {
        let ssm = aws_sdk_ssm::Client::new(sdk);
        let env = |function: &str, var: &str| self.environments[function][var].clone();
        let secret = aws_sdk_ssm::types::ParameterType::SecureString;
        for (name, value, kind) in [
            (
                env("IntakeFunction", "CLIENTS_PARAMETER"),
                serde_json::to_string(&creds.clients).unwrap(),
                secret.clone(),
            ),
            (
                env("ApprovalFunction", "APPROVAL_KEYS_PARAMETER"),
                serde_json::to_string(&creds.approval_keys).unwrap(),
                secret,
            ),
            (
                env("IntakeFunction", "AUDIT_KEYS_PARAMETER"),
                serde_json::to_string(&creds.audit_keys).unwrap(),
                aws_sdk_ssm::types::ParameterType::SecureString,
            ),
            (
                env("IntakeFunction", "PUBLIC_URL_PARAMETER"),
                public_url.to_string(),
                aws_sdk_ssm::types::ParameterType::String,
            ),
        ] {
            ssm.put_parameter()
                .name(name)
                .r#type(kind)
                .value(value)
                .overwrite(true)
                .send()
                .await
                .unwrap();
        }
    }
}

/// The stack's resources (see [`deploy`]), and mailboxes on its topics.
pub async fn create(
    sdk: &SdkConfig,
    prefix: &str,
    max_receives: u32,
    visibility: u64,
    approvers: &[String],
) -> (AwsNames, Mailboxes) {
    let names = deploy(prefix, max_receives, visibility, approvers).await.names;
    let mail = mailboxes(sdk, &names, prefix, approvers).await;
    (names, mail)
}

/// What the approvers' and requesters' email subscriptions would receive, caught in queues
/// subscribed the same way (moto's CloudFormation skips the template's subscriptions).
pub async fn mailboxes(sdk: &SdkConfig, names: &AwsNames, prefix: &str, approvers: &[String]) -> Mailboxes {
    let _one_at_a_time = CREATING.lock().await;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut queues = vec![];
    let mut subscriptions: Vec<(String, Option<String>)> = approvers
        .iter()
        .map(|a| {
            (
                names.approvals_topic.clone(),
                Some(serde_json::json!({ "approver": [a] }).to_string()),
            )
        })
        .collect();
    subscriptions.push((names.notifications_topic.clone(), None));
    for (i, (topic, filter)) in subscriptions.into_iter().enumerate() {
        let url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-mail-{i}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let mut sub = sns.subscribe().topic_arn(topic).protocol("sqs").endpoint(arn);
        if let Some(f) = filter {
            sub = sub.attributes("FilterPolicy", f);
        }
        sub.send().await.unwrap();
        queues.push(url);
    }
    Mailboxes {
        sqs,
        queues,
        approvers: approvers.to_vec(),
        seen: Mutex::new(vec![]),
    }
}

fn attr<'a>(envelope: &'a Value, name: &str) -> &'a str {
    envelope["MessageAttributes"][name]["Value"].as_str().unwrap_or("")
}

impl Mailboxes {
    /// Every message delivered so far, named like the outbox's files
    /// (`<n>-<request id>-<kind>-<to>`), as RFC 5322-ish text.
    pub async fn all(&self) -> Vec<(String, String)> {
        for (i, url) in self.queues.iter().enumerate() {
            let approver_box = i + 1 < self.queues.len();
            loop {
                let got = self
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .unwrap()
                    .messages
                    .unwrap_or_default();
                if got.is_empty() {
                    break;
                }
                for m in got {
                    let envelope: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                    let kind = attr(&envelope, "kind");
                    let to = if approver_box {
                        attr(&envelope, "approver")
                    } else {
                        attr(&envelope, "requester")
                    };
                    assert!(
                        !to.is_empty(),
                        "SNS message without its recipient attribute: {envelope}"
                    );
                    if approver_box {
                        assert_eq!(
                            to, self.approvers[i],
                            "the filter policy let another approver's message through"
                        );
                    }
                    let text = format!(
                        "To: {to}\nSubject: {}\nX-Image-Request-Notice: {}\nX-Image-Request-Status: {}\n\n{}\n",
                        envelope["Subject"].as_str().unwrap_or(""),
                        attr(&envelope, "notification_id"),
                        attr(&envelope, "status"),
                        envelope["Message"].as_str().unwrap_or(""),
                    );
                    {
                        let mut seen = self.seen.lock().unwrap();
                        let name = format!("{:06}-{}-{kind}-{to}", seen.len(), attr(&envelope, "request_id"));
                        seen.push((name, text));
                    }
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        self.seen.lock().unwrap().clone()
    }
}

/// Rows in the test's tables. A scan is fine here: the tables hold one test's data.
pub async fn count(sdk: &SdkConfig, names: &AwsNames) -> (i64, i64) {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let requests = ddb
        .scan()
        .table_name(&names.requests_table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .filter_expression("begins_with(pk, :req)")
        .expression_attribute_values(":req", aws_sdk_dynamodb::types::AttributeValue::S("req-".into()))
        .send()
        .await
        .unwrap()
        .count as i64;
    let audit = ddb
        .scan()
        .table_name(&names.audit_table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .filter_expression("begins_with(request_id, :req)")
        .expression_attribute_values(":req", aws_sdk_dynamodb::types::AttributeValue::S("req-".into()))
        .send()
        .await
        .unwrap()
        .count as i64;
    (requests, audit)
}

/// Names no other test uses, so tests share one emulator in parallel. Short enough for
/// the template's `Stage` (16 characters): the ULID's random tail.
pub fn unique_prefix() -> String {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    format!("t{}", &id[id.len() - 15..])
}
