//! The application context every handler receives: the ports and the settings, built
//! once at start-up.

use std::sync::Arc;

use crate::auth::token::TokenKeys;
use crate::config::ConfigError;
use crate::config::{ClientConfig, Settings};
use crate::ports::{AuditLog, Clock, Notifier, Queue, Registry, RequestStore};
use crate::slack::Slack;

/// The Slack app the settings describe, if any.
pub fn slack_from(settings: &Settings) -> Result<Option<Arc<Slack>>, ConfigError> {
    settings
        .slack
        .as_ref()
        .map(|s| Slack::from_settings(s).map(Arc::new))
        .transpose()
}

#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn RequestStore>,
    pub audit: Arc<dyn AuditLog>,
    pub queue: Arc<dyn Queue>,
    pub notifier: Arc<dyn Notifier>,
    pub registry: Arc<dyn Registry>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// The Slack app, where one is configured.
    pub slack: Option<Arc<Slack>>,
}

impl App {
    pub fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.settings.clients.iter().find(|c| c.id == id)
    }

    pub fn token_keys(&self) -> &TokenKeys {
        self.settings
            .approval_keys
            .as_ref()
            .expect("approval keys are loaded before the app is built")
    }
}
