//! The embedded backend, the local default: one SQLite database for requests, the audit
//! trail, the work queues and the simulated org's repos, and an outbox folder of `.eml`
//! files for the messages. `serve` and the tests compose it; no Lambda links it.

pub mod archive;
pub mod outbox;
pub mod simulated;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use app::config::{ConfigError, Settings};
use app::ports::{Clock, Registry, StoreError, SystemClock};
use app::App;
use domain::Catalog;

/// Why the embedded backend could not open.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("opening the database in {0}: {1}")]
    Database(PathBuf, StoreError),
    #[error("creating the outbox in {0}: {1}")]
    Outbox(PathBuf, std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The embedded backend wired into an [`App`]: SQLite under the data folder, the outbox
/// folder beside it, and the simulated org unless another registry is given. Chat is
/// the caller's to add (`App::with_chat`).
pub struct Embedded {
    pub app: App,
    pub db: sqlite::Sqlite,
}

impl Embedded {
    pub fn open(settings: Settings) -> Result<Self, EmbeddedError> {
        Self::open_with(settings, None, Arc::new(SystemClock))
    }

    /// Default settings with everything under `dir`: what tests and examples start from.
    pub fn open_in(dir: &Path) -> Result<Self, EmbeddedError> {
        let settings = Settings {
            data_dir: dir.into(),
            ..Settings::default()
        };
        Self::open(settings.with_local_credentials()?)
    }

    pub fn open_with(
        settings: Settings,
        registry: Option<Arc<dyn Registry>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EmbeddedError> {
        let dir: &Path = &settings.data_dir;
        let db =
            sqlite::Sqlite::open(&dir.join("image-request.db")).map_err(|e| EmbeddedError::Database(dir.into(), e))?;
        let outbox = outbox::Outbox::new(dir.join("outbox")).map_err(|e| EmbeddedError::Outbox(dir.into(), e))?;
        let registry = registry.unwrap_or_else(|| {
            Arc::new(simulated::SimulatedOrg::new(
                db.clone(),
                &settings.org_name,
                Catalog::embedded(),
            ))
        });
        let app = App::new(Arc::new(db.clone()), Arc::new(db.clone()), settings, clock)
            .with_queue(Arc::new(db.clone()))
            .with_notifier(Arc::new(outbox))
            .with_registry(registry);
        Ok(Embedded { app, db })
    }
}
