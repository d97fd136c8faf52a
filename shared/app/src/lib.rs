//! The application: the ports the functions depend on, the workflow that moves a request
//! through the status machine (`App`, transitions, the sweep), the queue consumer driver,
//! settings, and the words of every message. Adapters live in their own crates; this crate
//! names no AWS service, no database and no HTTP server (see ARCHITECTURE.md).

pub mod archive;
pub mod capacity;
pub mod config;
pub mod consumer;
pub mod failpoints;
pub mod metrics;
pub mod mrkdwn;
pub mod notify;
pub mod outbox;
pub mod ports;
pub mod report;
#[cfg(feature = "requested-images")]
pub mod requested_images;
pub mod slack_payloads;
pub mod telemetry;
pub mod trial;
pub mod workflow;

use std::sync::Arc;

use domain::auth::token::TokenKeys;

use crate::config::{ClientConfig, Settings};
use crate::metrics::{MeasuredNotifier, MeasuredRegistry, Metrics};
use crate::ports::{AuditLog, Chat, Clock, Notifier, Queue, Registry, RequestStore, Unwired};

/// What every handler receives: the ports and the settings, built once at start-up.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn RequestStore>,
    pub audit: Arc<dyn AuditLog>,
    pub queue: Arc<dyn Queue>,
    pub notifier: Arc<dyn Notifier>,
    pub registry: Arc<dyn Registry>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// Chat (Slack), where one is configured.
    pub chat: Option<Arc<dyn Chat>>,
    /// Off until a sink is set (`Metrics::set`): a Lambda prints EMF lines.
    pub metrics: Metrics,
}

impl App {
    /// An app with storage only; each entry point adds the ports it uses. A port nobody
    /// added answers every call with an error naming it (see [`Unwired`]).
    pub fn new(
        store: Arc<dyn RequestStore>,
        audit: Arc<dyn AuditLog>,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> App {
        let unwired = Arc::new(Unwired::new(&settings.org_name));
        App {
            store,
            audit,
            queue: unwired.clone(),
            notifier: unwired.clone(),
            registry: unwired,
            clock,
            settings: Arc::new(settings),
            chat: None,
            metrics: Metrics::default(),
        }
    }

    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> App {
        self.queue = queue;
        self
    }

    /// Every message is counted (`NotificationsSent`, `NotificationsFailed`).
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> App {
        self.notifier = Arc::new(MeasuredNotifier {
            inner: notifier,
            metrics: self.metrics.clone(),
        });
        self
    }

    /// Every call is counted and timed (`ChainguardCalls`, `ChainguardLatency`).
    pub fn with_registry(mut self, registry: Arc<dyn Registry>) -> App {
        self.registry = Arc::new(MeasuredRegistry {
            inner: registry,
            metrics: self.metrics.clone(),
        });
        self
    }

    pub fn with_chat(mut self, chat: Option<Arc<dyn Chat>>) -> App {
        self.chat = chat;
        self
    }

    pub fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.settings.clients.iter().find(|c| c.id == id)
    }

    pub fn token_keys(&self) -> &TokenKeys {
        self.settings
            .approval_keys
            .as_ref()
            .expect("approval keys are loaded before the app is built")
    }

    /// What seals audit events, where the deployment has it.
    pub fn audit_keys(&self) -> Option<&TokenKeys> {
        self.settings.audit_keys.as_ref()
    }

    /// Whether a Slack user may approve from Slack.
    pub fn is_slack_approver(&self, user_id: &str) -> bool {
        self.settings
            .slack
            .as_ref()
            .is_some_and(|s| s.approvers.iter().any(|a| a == user_id))
    }
}
