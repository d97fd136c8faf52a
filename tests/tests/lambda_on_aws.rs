//! The whole pipeline through the Lambda handlers on the AWS adapters, on the local
//! emulator: API Gateway v2 events into the intake and approval routers, and SQS events
//! built from messages really received from the emulator's queues into validate and
//! provision. The test plays the event source mapping: receive a batch, invoke, delete
//! what the handler did not report failed, leave the rest to be delivered again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use app::config::{ClientConfig, Settings};
use app::consumer::{to_sqs_event, MessageSource};
use app::ports::{QueueName, Registry, RegistryError, Repo, SystemClock};
use app::App;
use async_trait::async_trait;
use aws_adapter::sqs::SqsQueue;
use aws_adapter::AwsNames;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use axum::body::to_bytes;
use base64::Engine;
use domain::auth::client::{sign, CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use domain::Catalog;
use domain::{verify_sealed, Status};
use embedded::simulated::SimulatedOrg;
use embedded::sqlite::Sqlite;
use pipeline_tests::aws::{self, Mailboxes};
use serde_json::{json, Value};
use tower::ServiceExt;

const APPROVERS: [&str; 2] = ["platform-admin@example.com", "security-lead@example.com"];
const PUBLIC_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com";

struct Deployment {
    sdk: aws_config::SdkConfig,
    names: AwsNames,
    mail: Mailboxes,
    app: App,
    /// Each function's own app, as its `main` wires it, where the test uses those.
    wired: Option<Wired>,
    queues: SqsQueue,
    dev: ClientConfig,
    _dir: tempfile::TempDir,
}

struct Wired {
    intake: App,
    approval: App,
    validate: App,
    provision: App,
}

/// Fresh resources, and the credentials a deployment keeps in SSM.
async fn resources(max_receives: u32) -> (aws_config::SdkConfig, AwsNames, Mailboxes, tempfile::TempDir, String) {
    let sdk = aws::sdk().await;
    let approvers: Vec<String> = APPROVERS.iter().map(|a| a.to_string()).collect();
    let (names, mail) = aws::create(&sdk, &aws::unique_prefix(), max_receives, 0, &approvers).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().into(),
        ..Settings::default()
    };
    settings.with_local_credentials().unwrap();
    let credentials = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
    (sdk, names, mail, dir, credentials)
}

/// The app wired as each Lambda wires it, with the registry the test chooses.
async fn deployment(registry: Option<Arc<dyn Registry>>, max_receives: u32) -> Deployment {
    let (sdk, names, mail, dir, credentials) = resources(max_receives).await;
    let creds: app::config::LocalCredentials = serde_json::from_str(&credentials).unwrap();
    let settings = Settings {
        public_url: Some(PUBLIC_URL.into()),
        max_receives,
        clients: creds.clients,
        approval_keys: Some(creds.approval_keys),
        ..Settings::default()
    };
    let registry = registry.unwrap_or_else(|| {
        Arc::new(SimulatedOrg::new(
            Sqlite::in_memory().unwrap(),
            "example.com",
            Catalog::embedded(),
        ))
    });
    let store = aws_adapter::store(&sdk, &names);
    let queues = aws_adapter::queue(&sdk, &names);
    let app = App::new(store.clone(), store, settings, Arc::new(SystemClock))
        .with_queue(queues.clone())
        .with_notifier(aws_adapter::notifier(&sdk, &names))
        .with_registry(registry);
    finish(sdk, names, mail, app, (*queues).clone(), dir)
}

fn finish(
    sdk: aws_config::SdkConfig,
    names: AwsNames,
    mail: Mailboxes,
    app: App,
    queues: SqsQueue,
    dir: tempfile::TempDir,
) -> Deployment {
    let dev = app.settings.clients.iter().find(|c| !c.admin).unwrap().clone();
    Deployment {
        sdk,
        names,
        mail,
        app,
        queues,
        dev,
        wired: None,
        _dir: dir,
    }
}

/// An API Gateway HTTP API (payload 2.0) event, from the fixture's shape.
fn api_event(method: &str, path: &str, body: &[u8], headers: &[(&str, String)], base64: bool) -> lambda_http::Request {
    let text = std::fs::read_to_string(format!(
        "{}/../events/intake-post-request.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut e: Value = serde_json::from_str(&text).unwrap();
    e["rawPath"] = json!(path);
    e["routeKey"] = json!(format!("{method} {path}"));
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    let mut h = serde_json::Map::new();
    h.insert("host".into(), json!("abc123.execute-api.us-east-1.amazonaws.com"));
    for (k, v) in headers {
        h.insert(k.to_string(), json!(v));
    }
    e["headers"] = Value::Object(h);
    e["isBase64Encoded"] = json!(base64);
    e["body"] = if base64 {
        json!(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        json!(String::from_utf8(body.to_vec()).unwrap())
    };
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

impl Deployment {
    fn signed(&self, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let ts = chrono::Utc::now().timestamp();
        vec![
            (CLIENT_HEADER, self.dev.id.clone()),
            (TIMESTAMP_HEADER, ts.to_string()),
            (
                SIGNATURE_HEADER,
                sign(
                    self.dev.secret.as_bytes(),
                    ts,
                    domain::auth::client::Signing {
                        method,
                        path,
                        content_type: "application/json",
                        idempotency_key: "",
                    },
                    body,
                ),
            ),
            ("content-type", "application/json".into()),
        ]
    }

    async fn intake(&self, req: lambda_http::Request) -> (u16, Value) {
        let app = self.wired.as_ref().map_or(&self.app, |w| &w.intake);
        respond(intake::router(app.clone()).oneshot(req).await.unwrap()).await
    }

    async fn approval(&self, req: lambda_http::Request) -> (u16, Value) {
        let app = self.wired.as_ref().map_or(&self.app, |w| &w.approval);
        respond(approval::router(app.clone()).oneshot(req).await.unwrap()).await
    }

    async fn submit(&self, image: &str, env: Option<&str>) -> String {
        let mut body = json!({ "image": image, "justification": "needed on AWS" });
        if let Some(e) = env {
            body["environment"] = json!(e);
        }
        let body = body.to_string().into_bytes();
        let headers = self.signed("POST", "/requests", &body);
        let (status, v) = self
            .intake(api_event("POST", "/requests", &body, &headers, false))
            .await;
        assert_eq!(status, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn status(&self, id: &str) -> Status {
        self.app.store.get(id.parse().unwrap()).await.unwrap().unwrap().status()
    }

    /// One turn of the event source mapping; returns the handler's answer and the
    /// request id of each record in the batch, by message id.
    async fn deliver(&self, queue: QueueName) -> (SqsBatchResponse, HashMap<String, String>) {
        let deliveries = self.queues.receive(queue, 10).await.unwrap();
        let ids = deliveries
            .iter()
            .map(|d| {
                let id = serde_json::from_str::<Value>(&d.body)
                    .ok()
                    .and_then(|v| v["request_id"].as_str().map(String::from))
                    .unwrap_or_else(|| "unreadable".into());
                (d.message_id.clone(), id)
            })
            .collect();
        let event = to_sqs_event(&deliveries);
        let response = match queue {
            // Validate consumes the notify queue too (its second event source).
            QueueName::Validate | QueueName::Notify => {
                validate::handle(self.wired.as_ref().map_or(&self.app, |w| &w.validate), event).await
            }
            QueueName::Provision => {
                provision::handle(self.wired.as_ref().map_or(&self.app, |w| &w.provision), event).await
            }
        };
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for d in &deliveries {
            if !failed.contains(&d.message_id.as_str()) {
                self.queues.delete(queue, &d.receipt).await.unwrap();
            }
        }
        (response, ids)
    }

    async fn depth(&self, queue: QueueName) -> usize {
        self.queues.depth(queue).await.unwrap()
    }
}

async fn respond(resp: axum::response::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn set_env(pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        std::env::set_var(k, v);
    }
}

#[tokio::test]
async fn happy_path_through_every_lambda_handler_with_the_lambda_bootstrap() {
    let sdk = aws::sdk().await;
    let approvers: Vec<String> = APPROVERS.iter().map(|a| a.to_string()).collect();
    let stage = aws::unique_prefix();
    let deployed = aws::deploy(&stage, 3, 0, &approvers).await;
    let names = deployed.names.clone();
    let mail = aws::mailboxes(&sdk, &names, &stage, &approvers).await;
    let dir = tempfile::tempdir().unwrap();
    Settings {
        data_dir: dir.path().into(),
        ..Settings::default()
    }
    .with_local_credentials()
    .unwrap();
    let credentials = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
    // The stack names the secrets' parameters; an operator creates them (infra/README.md).
    let envs = &deployed.environments;
    let stored: app::config::LocalCredentials = serde_json::from_str(&credentials).unwrap();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    // The stack made the public-URL parameter the functions are told to read; its value,
    // the HTTP API's URL, is one the emulator cannot fill in.
    let url_parameter = &envs["IntakeFunction"]["PUBLIC_URL_PARAMETER"];
    let made = ssm.get_parameter().name(url_parameter).send().await.unwrap();
    assert!(made.parameter.unwrap().value.unwrap().contains("execute-api"));
    assert_eq!(
        envs["IntakeFunction"]["CLIENTS_PARAMETER"],
        format!("/image-request/{stage}/secrets/clients")
    );
    deployed.set_secrets(&sdk, &stored, PUBLIC_URL).await;
    // Each function starts with its environment as the stack resolved it, plus what the
    // Lambda service adds (region, credentials) and where the emulator is. Only this test
    // in this binary touches the environment.
    let approvers_joined = APPROVERS.join(",");
    let moto = aws::moto_url();
    let start = |function: &str| {
        for secret in [
            "CLIENTS_PARAMETER",
            "APPROVAL_KEYS_PARAMETER",
            "SLACK_PARAMETER",
            "AUDIT_KEYS_PARAMETER",
        ] {
            std::env::remove_var(secret);
        }
        let mut vars: Vec<(&str, &str)> = envs[function].iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.extend([
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            // moto's CloudFormation writes an `AWS::NoValue` inside `Fn::Join` as "None".
            ("IMAGE_REQUEST_APPROVERS", approvers_joined.as_str()),
            ("IMAGE_REQUEST_DATA_DIR", dir.path().to_str().unwrap()),
        ]);
        set_env(&vars);
        aws_adapter::Lambda::start()
    };
    let intake_lambda = start("IntakeFunction").await.unwrap();
    let approval_lambda = start("ApprovalFunction").await.unwrap();
    let validate_lambda = start("ValidateFunction").await.unwrap();
    let provision_lambda = start("ProvisionFunction").await.unwrap();
    // Each reads only the secrets it uses: no function but approval and validate holds a
    // link-signing key, none but intake and approval a client secret.
    let holds = |l: &aws_adapter::Lambda| (!l.settings.clients.is_empty(), l.settings.approval_keys.is_some());
    assert_eq!(holds(&intake_lambda), (true, false), "intake");
    assert_eq!(holds(&approval_lambda), (true, true), "approval");
    assert_eq!(holds(&validate_lambda), (false, true), "validate");
    assert_eq!(holds(&provision_lambda), (false, false), "provision");
    let wired = Wired {
        intake: intake::wire(&intake_lambda).unwrap(),
        approval: approval::wire(&approval_lambda).unwrap(),
        validate: validate::wire(&validate_lambda).unwrap(),
        provision: provision::wire(&provision_lambda).unwrap(),
    };
    let app = wired.approval.clone();
    assert_eq!(
        app.settings.clients.iter().map(|c| &c.secret).collect::<Vec<_>>(),
        stored.clients.iter().map(|c| &c.secret).collect::<Vec<_>>(),
        "client secrets come from SSM"
    );
    assert_eq!(app.settings.public_url.as_deref(), Some(PUBLIC_URL));
    let queues = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), names.queues.clone());
    let mut d = finish(sdk, names, mail, app, queues, dir);
    d.wired = Some(wired);

    let auto = d.submit("go", Some("dev")).await;
    let manual = d.submit("busybox", None).await;
    let (resp, ids) = d.deliver(QueueName::Validate).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(ids.len(), 2, "both requests were queued for validation");
    assert_eq!(d.status(&auto).await, Status::Approved);
    assert_eq!(d.status(&manual).await, Status::PendingApproval);

    // The approval emails were written with the transition: validate sends them from the
    // notify queue (one outbox entry).
    let (resp, ids) = d.deliver(QueueName::Notify).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(ids.len(), 1);
    // Each approver's email carries their own links; the admin clicks Approve.
    let mail = d.mail.all().await;
    let email = &mail
        .iter()
        .find(|(n, t)| n.contains(&manual) && n.contains("approval_request") && t.contains(APPROVERS[0]))
        .expect("approval email for the first approver")
        .1;
    let link = email.lines().find_map(|l| l.strip_prefix("Approve: ")).unwrap().trim();
    let path = link.strip_prefix(PUBLIC_URL).unwrap();
    let form = b"reason=fine+for+staging";
    let (status, page) = d
        .approval(api_event(
            "POST",
            path,
            form,
            &[("content-type", "application/x-www-form-urlencoded".into())],
            true,
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(d.status(&manual).await, Status::Approved);

    let (resp, ids) = d.deliver(QueueName::Provision).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(ids.len(), 2);
    for id in [&auto, &manual] {
        let path = format!("/requests/{id}");
        let headers = d.signed("GET", &path, b"");
        let (status, v) = d.intake(api_event("GET", &path, b"", &headers, false)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "provisioned");
        assert!(v["result"]["pull_string"]
            .as_str()
            .unwrap()
            .starts_with("cgr.dev/example.com/"));
        let chain = d.app.audit.timeline(id.parse().unwrap()).await.unwrap();
        assert_eq!(chain.last().unwrap().to, Status::Provisioned);
        // Every function sealed what it wrote, with the key the stack's parameter holds.
        verify_sealed(&chain, stored.audit_keys.as_ref().unwrap()).unwrap();
    }
    assert_eq!(
        (d.depth(QueueName::Validate).await, d.depth(QueueName::Provision).await),
        (0, 0)
    );
    let (resp, ids) = d.deliver(QueueName::Notify).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(ids.len(), 2, "an outcome entry each");
    assert_eq!(d.depth(QueueName::Notify).await, 0);
    // Outcomes reach the notifications topic, with attributes a subscriber filters on.
    let outcomes: Vec<_> = d
        .mail
        .all()
        .await
        .into_iter()
        .filter(|(n, _)| n.contains("-outcome-"))
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|(_, t)| t.contains("X-Image-Request-Status: provisioned")));
}

#[tokio::test]
async fn a_duplicated_delivery_changes_nothing() {
    let d = deployment(None, 3).await;
    let id = d.submit("go", Some("dev")).await;
    d.deliver(QueueName::Validate).await;
    d.deliver(QueueName::Provision).await;
    d.deliver(QueueName::Notify).await;
    assert_eq!(d.status(&id).await, Status::Provisioned);
    let before = (
        d.app.store.get(id.parse().unwrap()).await.unwrap(),
        d.app.audit.timeline(id.parse().unwrap()).await.unwrap().len(),
        aws::count(&d.sdk, &d.names).await,
        d.mail.all().await.len(),
    );
    // SQS delivers at least once: the same message twice, to both consumers.
    for queue in QueueName::ALL {
        for _ in 0..2 {
            match queue {
                // The outcome's outbox entry, again: its notices were recorded as sent.
                QueueName::Notify => {
                    let seq = before.0.as_ref().unwrap().version();
                    assert!(d.app.enqueue_notice(id.parse().unwrap(), seq, "dup").await);
                }
                _ => d.app.enqueue(queue, id.parse().unwrap(), "dup").await.unwrap(),
            }
        }
        let (resp, ids) = d.deliver(queue).await;
        assert_eq!(ids.len(), 2);
        assert!(
            resp.batch_item_failures.is_empty(),
            "a duplicate is success, not a failure"
        );
    }
    let after = (
        d.app.store.get(id.parse().unwrap()).await.unwrap(),
        d.app.audit.timeline(id.parse().unwrap()).await.unwrap().len(),
        aws::count(&d.sdk, &d.names).await,
        d.mail.all().await.len(),
    );
    assert_eq!(format!("{after:?}"), format!("{before:?}"));
}

/// The simulated org, except that creating one named image fails (retryably) once.
struct FailsOnce {
    inner: SimulatedOrg,
    image: &'static str,
    left: AtomicU32,
}

#[async_trait]
impl Registry for FailsOnce {
    fn org_name(&self) -> &str {
        self.inner.org_name()
    }
    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError> {
        self.inner.catalog().await
    }
    async fn org_repos(&self) -> Result<Vec<Repo>, RegistryError> {
        self.inner.org_repos().await
    }
    async fn find_repo(&self, name: &str) -> Result<Option<Repo>, RegistryError> {
        self.inner.find_repo(name).await
    }
    async fn catalog_tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        self.inner.catalog_tags(name).await
    }
    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError> {
        self.inner.delete_repo(name).await
    }
    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError> {
        if name == self.image && self.left.load(Ordering::SeqCst) > 0 {
            self.left.fetch_sub(1, Ordering::SeqCst);
            return Err(RegistryError::Retryable("503 Unavailable".into()));
        }
        self.inner.create_repo(name, source).await
    }
}

#[tokio::test]
async fn a_failure_mid_batch_redelivers_only_that_message() {
    let registry = Arc::new(FailsOnce {
        inner: SimulatedOrg::new(Sqlite::in_memory().unwrap(), "example.com", Catalog::embedded()),
        image: "curl",
        left: AtomicU32::new(1),
    });
    let d = deployment(Some(registry), 3).await;
    let ids = [
        d.submit("go", Some("dev")).await,
        d.submit("curl", Some("dev")).await,
        d.submit("git", Some("dev")).await,
    ];
    d.deliver(QueueName::Validate).await;
    let (resp, batch) = d.deliver(QueueName::Provision).await;
    assert_eq!(batch.len(), 3, "one batch of three");
    let failed: Vec<&String> = resp
        .batch_item_failures
        .iter()
        .map(|f| &batch[&f.item_identifier])
        .collect();
    assert_eq!(failed, [&ids[1]], "only curl's record is reported");
    assert_eq!(d.status(&ids[0]).await, Status::Provisioned);
    assert_eq!(d.status(&ids[2]).await, Status::Provisioned);
    assert_eq!(d.status(&ids[1]).await, Status::Provisioning);
    assert_eq!(d.depth(QueueName::Provision).await, 1, "the others were deleted");

    let (resp, batch) = d.deliver(QueueName::Provision).await;
    assert_eq!(batch.values().collect::<Vec<_>>(), [&ids[1]], "redelivered alone");
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(d.status(&ids[1]).await, Status::Provisioned);
    assert_eq!(d.depth(QueueName::Provision).await, 0);
}

#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dead_letter_queue() {
    let d = deployment(None, 2).await;
    let id = d.submit("go", Some("dev")).await;
    // A message no consumer can read, in the same batch as a good one.
    aws_sdk_sqs::Client::new(&d.sdk)
        .send_message()
        .queue_url(&d.names.queues.validate)
        .message_body("{\"request_id\": 42}")
        .send()
        .await
        .unwrap();
    let (resp, batch) = d.deliver(QueueName::Validate).await;
    assert_eq!(batch.len(), 2);
    assert_eq!(resp.batch_item_failures.len(), 1);
    assert_eq!(batch[&resp.batch_item_failures[0].item_identifier], "unreadable");
    assert_eq!(d.status(&id).await, Status::Approved, "the good record went on");

    let (resp, _) = d.deliver(QueueName::Validate).await;
    assert_eq!(resp.batch_item_failures.len(), 1, "second and last delivery fails too");
    // The redrive policy moves it on the next receive: nothing left to deliver.
    let (_, batch) = d.deliver(QueueName::Validate).await;
    assert!(batch.is_empty(), "{batch:?}");
    assert_eq!(d.queues.dead_letters(QueueName::Validate).await.unwrap(), 1);
    assert_eq!(d.depth(QueueName::Validate).await, 0);
}
