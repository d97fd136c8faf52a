//! The local stack: the intake and approval routers on one listener, the validate and
//! provision consumers polling the embedded queues through the very handlers the
//! Lambdas run, and the sweep that recovers stranded requests and expires approvals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::Router;
use tokio::task::JoinHandle;

use app::config::Settings;
use app::consumer::{pump, MessageSource};
use app::ports::{Clock, QueueName, Registry};
use app::App;
use aws_adapter::AwsNames;
use domain::Catalog;
use embedded::simulated::SimulatedOrg;
use embedded::sqlite::{Sqlite, SqliteSource};
use embedded::Embedded;
use http_api::ApiError;

/// Every route of the HTTP API: intake's and approval's routers on one listener.
pub fn router(app: App) -> Router {
    intake::router(app.clone())
        .merge(approval::router(app))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route: see the README for the API") })
        // Each function bounds its own routes; this bounds the fallback's too.
        .layer(axum::middleware::from_fn(http_api::bounded_uri))
}

/// Knobs tests turn; the defaults suit a person at a terminal.
#[derive(Clone)]
pub struct Options {
    pub poll_interval: Duration,
    pub sweep_interval: Duration,
    /// How long a request may sit `received` or `approved` before the sweep queues it again.
    pub sweep_grace: Duration,
    pub registry: Option<Arc<dyn Registry>>,
    pub clock: Arc<dyn Clock>,
    pub backend: Backend,
    /// Where metrics go (as a Lambda prints them); none: off.
    pub metrics: Option<Arc<dyn app::metrics::MetricSink>>,
    /// Decorates the ports once they are built: the tests' fault injection.
    pub wrap: Option<Arc<dyn Fn(App) -> App + Send + Sync>>,
}

/// Where requests, the audit trail, the queues and the messages live.
// Built once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Default)]
pub enum Backend {
    /// SQLite and the outbox folder under the data folder.
    #[default]
    Embedded,
    /// DynamoDB, SQS and SNS (or an emulator speaking their protocol, via `AWS_ENDPOINT_URL`).
    Aws {
        sdk: aws_config::SdkConfig,
        names: AwsNames,
    },
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_interval: Duration::from_millis(50),
            sweep_interval: Duration::from_secs(30),
            sweep_grace: Duration::from_secs(60),
            registry: None,
            clock: Arc::new(app::ports::SystemClock),
            backend: Backend::Embedded,
            metrics: None,
            wrap: None,
        }
    }
}

/// A running local stack; dropping it stops everything.
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    /// The embedded database (on AWS, it holds only the simulated org).
    pub db: Sqlite,
    /// Where the consumers receive from: the embedded queue or SQS.
    pub source: Arc<dyn MessageSource>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Running {
    /// Waits for the server task (it ends only on error).
    pub async fn wait(mut self) {
        if let Some(t) = self.tasks.pop() {
            let _ = t.await;
        }
    }
}

/// The audit archive's folder under the data folder (embedded backend).
pub const ARCHIVE_DIR: &str = "archive";

pub async fn start(settings: Settings, opts: Options) -> anyhow::Result<Running> {
    let mut settings = settings
        .with_local_credentials()
        .context("loading the local credentials")?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (set IMAGE_REQUEST_LISTEN to another address)",
            settings.listen
        )
    })?;
    let addr = listener.local_addr()?;
    settings.listen = addr;
    // The test's registry, else the Chainguard API where an org is configured, else the simulated org.
    let registry: Option<Arc<dyn Registry>> = match opts.registry.clone() {
        Some(r) => Some(r),
        None => chainguard::from_settings(&settings, None)
            .context("configuring the Chainguard API")?
            .map(|c| Arc::new(c) as Arc<dyn Registry>),
    };
    let chat = slack::from_settings(&settings).context("configuring Slack")?;
    let mut archiver = None;
    let (app, db, source): (App, Sqlite, Arc<dyn MessageSource>) = match &opts.backend {
        Backend::Embedded => {
            let Embedded { app, db } = Embedded::open_with(settings, registry, opts.clock.clone())?;
            archiver = Some(embedded::archive::Archiver {
                db: db.clone(),
                archive: embedded::archive::FolderArchive::new(app.settings.data_dir.join(ARCHIVE_DIR)),
            });
            let app = app.with_chat(chat);
            let source = SqliteSource {
                db: db.clone(),
                visibility_ms: (app.settings.visibility_timeout_secs * 1000) as i64,
                max_receives: app.settings.max_receives,
            };
            (app, db, Arc::new(source))
        }
        Backend::Aws { sdk, names } => {
            let dir = &settings.data_dir;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let db = Sqlite::open(&dir.join("simulated-org.db")).context("opening the simulated org")?;
            let registry = registry
                .unwrap_or_else(|| Arc::new(SimulatedOrg::new(db.clone(), &settings.org_name, Catalog::embedded())));
            let store = aws_adapter::store(sdk, names);
            let queue = aws_adapter::queue(sdk, names);
            let app = App::new(store.clone(), store, settings, opts.clock.clone())
                .with_queue(queue.clone())
                .with_notifier(aws_adapter::notifier(sdk, names))
                .with_registry(registry)
                .with_chat(chat);
            (app, db, queue)
        }
    };
    if let Some(sink) = &opts.metrics {
        app.metrics.set(sink.clone(), "local");
    }
    let app = match &opts.wrap {
        Some(wrap) => wrap(app),
        None => app,
    };
    let mut tasks = vec![];
    for queue in QueueName::ALL {
        tasks.push(tokio::spawn(consume(
            app.clone(),
            source.clone(),
            queue,
            opts.poll_interval,
        )));
    }
    // The audit archive, as DynamoDB Streams and the archive function would fill it.
    if let Some(archiver) = archiver {
        let poll = opts.poll_interval;
        tasks.push(tokio::spawn(async move {
            loop {
                match archiver.run_once().await {
                    Ok(0) => tokio::time::sleep(poll).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "archiving audit events failed");
                        tokio::time::sleep(poll * 10).await;
                    }
                }
            }
        }));
    }
    let sweeper = app.clone();
    let (every, grace) = (
        opts.sweep_interval,
        chrono::Duration::from_std(opts.sweep_grace).unwrap_or_default(),
    );
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = sweeper.sweep(grace).await {
                tracing::error!(error = %e, "sweep failed");
            }
        }
    }));
    let routes = router(app.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, routes).await {
            tracing::error!(error = %e, "server stopped");
        }
    }));
    tracing::info!(%addr, data_dir = %app.settings.data_dir.display(), "image-request is serving");
    Ok(Running {
        addr,
        app,
        db,
        source,
        tasks,
    })
}

/// Plays SQS's event source mapping, through the very handlers the Lambdas run.
async fn consume(app: App, source: Arc<dyn MessageSource>, queue: QueueName, poll: Duration) {
    loop {
        let handled = pump(source.as_ref(), queue, |event| async {
            match queue {
                // The notify queue's consumer is validate's, as on AWS (app::outbox).
                QueueName::Validate | QueueName::Notify => validate::handle(&app, event).await,
                QueueName::Provision => provision::handle(&app, event).await,
            }
        })
        .await;
        match handled {
            Ok(0) => tokio::time::sleep(poll).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(queue = queue.as_str(), error = %e, "receive failed");
                tokio::time::sleep(poll * 10).await;
            }
        }
    }
}
