//! Adapters of the embedded backend (the local default). The AWS adapters join them here.

pub mod aws;
pub mod chainguard;
pub mod outbox;
pub mod simulated;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use crate::app::App;
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::ports::{Clock, Registry, SystemClock};

/// The embedded backend wired into an [`App`]: SQLite under the data folder, the outbox
/// folder beside it, and the simulated org unless another registry is given.
pub struct Embedded {
    pub app: App,
    pub db: sqlite::Sqlite,
}

impl Embedded {
    pub fn open(settings: Settings) -> Result<Self, String> {
        Self::open_with(settings, None, Arc::new(SystemClock))
    }

    /// Default settings with everything under `dir`: what tests and examples start from.
    pub fn open_in(dir: &Path) -> Result<Self, String> {
        let settings = Settings {
            data_dir: dir.into(),
            ..Settings::default()
        };
        Self::open(settings.with_local_credentials().map_err(|e| e.to_string())?)
    }

    pub fn open_with(
        settings: Settings,
        registry: Option<Arc<dyn Registry>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let dir: &Path = &settings.data_dir;
        let db = sqlite::Sqlite::open(&dir.join("image-request.db"))
            .map_err(|e| format!("opening the database in {}: {e}", dir.display()))?;
        let outbox = outbox::Outbox::new(dir.join("outbox"))
            .map_err(|e| format!("creating the outbox in {}: {e}", dir.display()))?;
        let registry = registry.unwrap_or_else(|| {
            Arc::new(simulated::SimulatedOrg::new(
                db.clone(),
                &settings.org_name,
                Catalog::embedded(),
            ))
        });
        let slack = crate::app::slack_from(&settings).map_err(|e| e.to_string())?;
        let app = App {
            store: Arc::new(db.clone()),
            audit: Arc::new(db.clone()),
            queue: Arc::new(db.clone()),
            notifier: Arc::new(outbox),
            registry,
            clock,
            settings: Arc::new(settings),
            slack,
        };
        Ok(Embedded { app, db })
    }
}
