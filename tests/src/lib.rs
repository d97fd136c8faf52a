//! The harness of the cross-function tests: a whole local stack per test, on a free
//! loopback port and a fresh data folder, with clients that sign like the CLI does.
//!
//! The backend is the embedded one, or, with `IMAGE_REQUEST_TEST_BACKEND=aws`, the AWS
//! adapters on the local emulator: the same tests prove both.

pub mod aws;
pub mod fake_chainguard;
pub mod fake_slack;
pub mod faults;
pub mod invariants;
pub mod outage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use app::config::{ClientConfig, Settings};
use app::ports::{QueueName, Registry, RegistryError, Repo};
use async_trait::async_trait;
use aws_adapter::AwsNames;
use cgr_request::client::{ApiClient, CallError};
use cgr_request::server::{self, Backend, Options, Running};
use domain::auth::client::{sign, CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use domain::Catalog;
use embedded::simulated::SimulatedOrg;
use embedded::sqlite::Sqlite;
use reqwest::Method;
use serde_json::{json, Value};

pub struct Stack {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub dev: ApiClient,
    pub admin: ApiClient,
    pub dev_client: ClientConfig,
    pub http: reqwest::Client,
    /// On the AWS backend: the test's resources and the mailboxes SNS delivers to.
    pub aws: Option<(aws_config::SdkConfig, AwsNames, aws::Mailboxes)>,
    /// The EMF lines the stack printed (as a Lambda prints them).
    pub metrics: Arc<app::metrics::Recorder>,
}

/// How often the local consumers poll an empty queue.
const POLL: Duration = Duration::from_millis(10);

/// A stack (on the suite's backend) whose consumers poll an empty queue every `poll`:
/// for long runs, where the tests' 10 ms would be most of the emulator's work.
pub async fn start_polling(
    poll: Duration,
    registry: Option<Arc<dyn Registry>>,
    clock: Arc<dyn app::ports::Clock>,
) -> Stack {
    start_on(aws::wanted(), |_| {}, registry, clock, None, None, poll).await
}

pub async fn start() -> Stack {
    start_with(|_| {}, None).await
}

pub async fn start_with(configure: impl FnOnce(&mut Settings), registry: Option<Arc<dyn Registry>>) -> Stack {
    start_full(configure, registry, Arc::new(app::ports::SystemClock)).await
}

pub async fn start_full(
    configure: impl FnOnce(&mut Settings),
    registry: Option<Arc<dyn Registry>>,
    clock: Arc<dyn app::ports::Clock>,
) -> Stack {
    start_on(aws::wanted(), configure, registry, clock, None, None, POLL).await
}

/// A stack on the AWS adapters whose calls to the emulator go through `endpoint` (an
/// outage relay); its resources are deployed, and its mail read, directly.
pub async fn start_aws_via(
    endpoint: &str,
    registry: Option<Arc<dyn Registry>>,
    clock: Arc<dyn app::ports::Clock>,
) -> Stack {
    start_on(true, |_| {}, registry, clock, None, Some(endpoint.to_string()), POLL).await
}

/// A stack with `faults` around its queue and notifier, switched by the test.
pub async fn start_faulty(
    configure: impl FnOnce(&mut Settings),
    faults: &Arc<faults::Faults>,
    clock: Arc<dyn app::ports::Clock>,
) -> Stack {
    start_on(aws::wanted(), configure, None, clock, Some(faults.wrap()), None, POLL).await
}

/// A stack on the AWS adapters whatever the suite's backend: for tests of AWS-only tools.
pub async fn start_aws() -> Stack {
    start_on(true, |_| {}, None, Arc::new(app::ports::SystemClock), None, None, POLL).await
}

async fn start_on(
    on_aws: bool,
    configure: impl FnOnce(&mut Settings),
    registry: Option<Arc<dyn Registry>>,
    clock: Arc<dyn app::ports::Clock>,
    wrap: Option<Arc<dyn Fn(app::App) -> app::App + Send + Sync>>,
    via: Option<String>,
    poll: Duration,
) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().into(),
        visibility_timeout_secs: 0,
        notice_retry_secs: 0,
        ..Settings::default()
    };
    configure(&mut settings);
    let metrics = Arc::new(app::metrics::Recorder::default());
    let mut opts = Options {
        poll_interval: poll,
        registry,
        clock,
        metrics: Some(metrics.clone()),
        wrap,
        ..Options::default()
    };
    let mut aws_parts = None;
    if on_aws {
        let sdk = aws::sdk().await;
        let (names, mail) = aws::create(
            &sdk,
            &aws::unique_prefix(),
            settings.max_receives,
            settings.visibility_timeout_secs,
            &settings.approvers,
        )
        .await;
        let backend_sdk = match &via {
            Some(endpoint) => aws_adapter::setup::emulator_config(endpoint).await,
            None => sdk.clone(),
        };
        opts.backend = Backend::Aws {
            sdk: backend_sdk,
            names: names.clone(),
        };
        aws_parts = Some((sdk, names, mail));
    }
    let running = server::start(settings, opts).await.unwrap();
    let base = format!("http://{}", running.addr);
    let creds = &running.app.settings.clients;
    let dev_client = creds.iter().find(|c| !c.admin).unwrap().clone();
    let admin_client = creds.iter().find(|c| c.admin).unwrap();
    Stack {
        dev: ApiClient::new(&base, &dev_client.id, &dev_client.secret),
        admin: ApiClient::new(&base, &admin_client.id, &admin_client.secret),
        dev_client,
        base,
        dir,
        running,
        http: cgr_request::client::http_client(),
        aws: aws_parts,
        metrics,
    }
}

/// Row counts that must not move when a call is refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Counts {
    pub requests: i64,
    pub audit: i64,
    pub queued: i64,
    pub repos: i64,
}

impl Stack {
    pub async fn submit(&self, image: &str, env: Option<&str>) -> String {
        let mut body = json!({ "image": image, "justification": "needed for the tests" });
        if let Some(e) = env {
            body["environment"] = json!(e);
        }
        // As the CLI does: a key per submission, so two alike in one second are two.
        let key = ulid::Ulid::new().to_string();
        let (status, v) = self
            .dev
            .call(Method::POST, "/requests", Some(&body), &[("idempotency-key", &key)])
            .await
            .unwrap();
        assert_eq!(status, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// A client of the running stack's configuration, by id (`merge-bot` submits for others).
    pub fn client(&self, id: &str) -> ApiClient {
        let c = self.running.app.settings.clients.iter().find(|c| c.id == id).unwrap();
        ApiClient::new(&self.base, &c.id, &c.secret)
    }

    /// Submits as someone else, through a client that names its requester (as a form
    /// tool does): the answer's status and body.
    pub async fn submit_as(&self, requester: &str, image: &str, justification: &str) -> (u16, Value) {
        self.submit_for(json!({ "image": image, "justification": justification, "requester": requester }))
            .await
    }

    /// `POST /requests` with this body (naming its `requester`) through that client, from
    /// a form: the answer's status and body, refusals included.
    pub async fn submit_for(&self, mut body: Value) -> (u16, Value) {
        body["channel"] = json!("form");
        let key = ulid::Ulid::new().to_string();
        match self
            .client("merge-bot")
            .call(Method::POST, "/requests", Some(&body), &[("idempotency-key", &key)])
            .await
        {
            Ok(answer) => answer,
            Err(CallError::Api { status, body, .. }) => (status, body),
            Err(e) => panic!("{e}"),
        }
    }

    /// Submits a few milliseconds after the previous call: times are kept to the
    /// millisecond, so "newest first" then has a single answer.
    pub async fn submit_apart(&self, image: &str, env: Option<&str>) -> String {
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.submit(image, env).await
    }

    pub async fn get(&self, id: &str) -> Value {
        self.admin
            .call(Method::GET, &format!("/requests/{id}"), None, &[])
            .await
            .unwrap()
            .1
    }

    /// Polls until the request reaches `status` (10 s at most, then fails with what it saw).
    pub async fn wait_for(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..1000 {
            last = self.get(id).await;
            if last["status"] == status {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never reached {status}: {last:#}");
    }

    /// Waits until the queues are empty, nothing is in flight, and the audit archive has
    /// caught up.
    pub async fn settle(&self) {
        self.settle_for(Duration::from_secs(15)).await
    }

    /// [`Stack::settle`], waiting up to `limit`.
    pub async fn settle_for(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.counts().await.queued == 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                if self.counts().await.queued == 0 {
                    self.archive_settled().await;
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("queues never drained");
    }

    pub async fn counts(&self) -> Counts {
        let (requests, audit) = match &self.aws {
            Some((sdk, names, _)) => aws::count(sdk, names).await,
            None => self
                .running
                .db
                .with(|c| {
                    c.query_row(
                        "SELECT (SELECT COUNT(*) FROM requests), (SELECT COUNT(*) FROM audit)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(|e| app::ports::StoreError::Unavailable(e.to_string()))
                })
                .await
                .unwrap(),
        };
        let mut queued = 0;
        for q in QueueName::ALL {
            queued += self.running.source.depth(q).await.unwrap() as i64;
        }
        let repos = self
            .running
            .db
            .with(|c| {
                c.query_row("SELECT COUNT(*) FROM sim_repos", [], |r| r.get(0))
                    .map_err(|e| app::ports::StoreError::Unavailable(e.to_string()))
            })
            .await
            .unwrap();
        Counts {
            requests,
            audit,
            queued,
            repos,
        }
    }

    pub async fn dead_letters(&self, queue: QueueName) -> usize {
        self.running.source.dead_letters(queue).await.unwrap()
    }

    /// Every message sent to a person so far: (a name with the request id and kind, the text).
    pub async fn outbox(&self) -> Vec<(String, String)> {
        if let Some((_, _, mail)) = &self.aws {
            return mail.all().await;
        }
        let dir: PathBuf = self.dir.path().join("outbox");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    /// `approver`'s approval email about request `id`, once it has arrived (on AWS, mail
    /// comes through SNS a moment after the request moves).
    pub async fn approval_mail(&self, id: &str, approver: &str) -> String {
        self.mail(id, "approval_request", approver).await
    }

    /// The message of `kind` (`outcome`, `approval_request`, …) about request `id` to
    /// address `to`, once it has arrived.
    pub async fn mail(&self, id: &str, kind: &str, to: &str) -> String {
        for _ in 0..100 {
            let found =
                self.outbox().await.into_iter().find(|(name, text)| {
                    name.contains(id) && name.contains(kind) && text.contains(&format!("To: {to}"))
                });
            if let Some((_, text)) = found {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {kind} message to {to} about {id}: {:#?}", self.outbox().await)
    }

    /// The (approve, deny) links of `approver`'s email about request `id`.
    pub async fn links(&self, id: &str, approver: &str) -> (String, String) {
        let text = self.approval_mail(id, approver).await;
        let find = |label: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| panic!("no {label} link"))
        };
        (find("Approve: "), find("Deny:    "))
    }

    /// As a writer with access to the tables but not the audit key would: stores `e` in
    /// place of the event with its sequence number, or adds it (SQLite's append-only
    /// triggers dropped first, as the database's owner can; a plain PutItem on DynamoDB,
    /// which any principal with `PutItem` can send).
    pub async fn overwrite_event(&self, e: &domain::AuditEvent) {
        if let Some((sdk, names, _)) = &self.aws {
            aws_sdk_dynamodb::Client::new(sdk)
                .put_item()
                .table_name(&names.audit_table)
                .set_item(Some(aws_adapter::dynamo::audit_item(e).unwrap()))
                .send()
                .await
                .unwrap();
            return;
        }
        let (id, seq, at, actor, body) = (
            e.request_id.to_string(),
            e.seq as i64,
            domain::timestamp(e.at),
            e.actor.to_string(),
            serde_json::to_string(e).unwrap(),
        );
        self.running
            .db
            .with(move |c| {
                c.execute_batch(
                    "DROP TRIGGER IF EXISTS audit_is_append_only_u; DROP TRIGGER IF EXISTS audit_is_append_only_d;",
                )
                .unwrap();
                c.execute(
                    "INSERT OR REPLACE INTO audit (request_id, seq, at, actor, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![id, seq, at, actor, body],
                )
                .unwrap();
                Ok(())
            })
            .await
            .unwrap();
    }

    /// Deletes a stored event, as such a writer would.
    pub async fn delete_event(&self, id: &str, seq: u64) {
        if let Some((sdk, names, _)) = &self.aws {
            aws_sdk_dynamodb::Client::new(sdk)
                .delete_item()
                .table_name(&names.audit_table)
                .key("request_id", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
                .key("seq", aws_sdk_dynamodb::types::AttributeValue::N(seq.to_string()))
                .send()
                .await
                .unwrap();
            return;
        }
        let id = id.to_string();
        self.running
            .db
            .with(move |c| {
                c.execute_batch("DROP TRIGGER IF EXISTS audit_is_append_only_d;")
                    .unwrap();
                c.execute(
                    "DELETE FROM audit WHERE request_id = ?1 AND seq = ?2",
                    rusqlite::params![id, seq as i64],
                )
                .unwrap();
                Ok(())
            })
            .await
            .unwrap();
    }

    /// Points the stored request's trail at `version` and `head`: what a forger who hashed
    /// the chain again, or cut its end off, must do so that it ends where the request says.
    pub async fn rewind(&self, id: &str, version: u64, head: &str) {
        if let Some((sdk, names, _)) = &self.aws {
            use aws_sdk_dynamodb::types::AttributeValue;
            aws_sdk_dynamodb::Client::new(sdk)
                .update_item()
                .table_name(&names.requests_table)
                .key("pk", AttributeValue::S(id.into()))
                .update_expression("SET #r.#h = :h, #r.#v = :v, #v = :v")
                .expression_attribute_names("#r", "request")
                .expression_attribute_names("#h", "audit_head")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":h", AttributeValue::S(head.into()))
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
                .send()
                .await
                .unwrap();
            return;
        }
        let (id, head) = (id.to_string(), head.to_string());
        self.running
            .db
            .with(move |c| {
                c.execute(
                    "UPDATE requests SET version = ?1, body = json_set(body, '$.audit_head', ?2, '$.version', ?1) WHERE id = ?3",
                    rusqlite::params![version as i64, head, id],
                )
                .unwrap();
                Ok(())
            })
            .await
            .unwrap();
    }

    /// Waits until the embedded backend's archiver has copied every audit event (the AWS
    /// backend has no archive function yet).
    pub async fn archive_settled(&self) {
        if self.aws.is_some() {
            return;
        }
        for _ in 0..500 {
            if self.running.db.events_after_cursor(1).await.unwrap().1.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the archive never caught up");
    }

    /// A raw signed call with full control over what is sent.
    pub async fn raw(&self, method: Method, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Headers that sign a JSON `body` as the dev client, at `ts`, with `secret`.
    pub fn signed_headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        ts: i64,
        secret: &str,
    ) -> Vec<(&'static str, String)> {
        self.signed_headers_as(method, path, body, ts, secret, "application/json")
    }

    /// The same, for a body of another content type (which the signature covers).
    pub fn signed_headers_as(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        ts: i64,
        secret: &str,
        content_type: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            (CLIENT_HEADER, self.dev_client.id.clone()),
            (TIMESTAMP_HEADER, ts.to_string()),
            (
                SIGNATURE_HEADER,
                sign(
                    secret.as_bytes(),
                    ts,
                    domain::auth::client::Signing {
                        method,
                        path,
                        content_type,
                        idempotency_key: "",
                    },
                    body,
                ),
            ),
            ("content-type", content_type.into()),
        ]
    }
}

pub fn api_status(e: CallError) -> u16 {
    match e {
        CallError::Api { status, .. } => status,
        other => panic!("not an API error: {other}"),
    }
}

/// A registry that fails as told, then behaves like the simulated org.
pub struct FlakyRegistry {
    inner: SimulatedOrg,
    /// Create calls that fail before one succeeds; `u32::MAX` means always.
    pub failures_left: AtomicU32,
    pub permanent: bool,
    pub create_calls: AtomicU32,
    /// While set, the catalog's tags cannot be read (503): validation fails.
    pub reads_down: std::sync::atomic::AtomicBool,
}

impl FlakyRegistry {
    pub fn new(failures: u32, permanent: bool) -> Arc<Self> {
        Arc::new(FlakyRegistry {
            inner: SimulatedOrg::new(Sqlite::in_memory().unwrap(), "example.com", Catalog::embedded()),
            failures_left: AtomicU32::new(failures),
            permanent,
            create_calls: AtomicU32::new(0),
            reads_down: Default::default(),
        })
    }
}

#[async_trait]
impl Registry for FlakyRegistry {
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
        if self.reads_down.load(Ordering::SeqCst) {
            return Err(RegistryError::Retryable("503 Unavailable".into()));
        }
        self.inner.catalog_tags(name).await
    }
    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError> {
        self.inner.delete_repo(name).await
    }
    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError> {
        self.create_calls.fetch_add(1, Ordering::SeqCst);
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            if left != u32::MAX {
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
            }
            return Err(if self.permanent {
                RegistryError::Permanent("400 InvalidArgument: repo name rejected".into())
            } else {
                RegistryError::Retryable("503 Unavailable".into())
            });
        }
        self.inner.create_repo(name, source).await
    }
}

/// The system clock plus an offset that tests move, to see hours pass.
#[derive(Default)]
pub struct ShiftedClock {
    pub offset_secs: std::sync::atomic::AtomicI64,
}

impl app::ports::Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        app::ports::SystemClock.now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }
}

/// A clock that stands still (at a whole second) until a test moves it: times in the
/// trail, and so in reports, are then exact. Clients sign with the real time, which the
/// server accepts within its skew: submit before moving the clock.
pub struct FrozenClock {
    pub base: chrono::DateTime<chrono::Utc>,
    pub offset_secs: std::sync::atomic::AtomicI64,
}

impl Default for FrozenClock {
    fn default() -> Self {
        FrozenClock {
            base: chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap(),
            offset_secs: Default::default(),
        }
    }
}

impl FrozenClock {
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }
}

impl app::ports::Clock for FrozenClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.base + chrono::Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }
}
