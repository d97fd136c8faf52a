//! The application context every handler receives: the ports and the settings, built
//! once at start-up.

use std::sync::Arc;

use crate::auth::token::TokenKeys;
use crate::config::{ClientConfig, Settings};
use crate::ports::{AuditLog, Clock, Notifier, Queue, Registry, RequestStore};

#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn RequestStore>,
    pub audit: Arc<dyn AuditLog>,
    pub queue: Arc<dyn Queue>,
    pub notifier: Arc<dyn Notifier>,
    pub registry: Arc<dyn Registry>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
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
