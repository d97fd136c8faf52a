//! Metrics as CloudWatch Embedded Metric Format lines: one JSON line per measurement,
//! printed to standard output, which Lambda sends to CloudWatch Logs, where CloudWatch
//! turns it into metrics. No API call, no client, nothing to wait for. Locally they are
//! off (or recorded, in tests). `infra/template.yaml`'s dashboard graphs every one of
//! [`METRICS`].

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::ports::{Entitlement, Message, Notifier, NotifyError, Registry, RegistryError, Repo};
use domain::Catalog;

/// Where the metrics live in CloudWatch.
pub const NAMESPACE: &str = "ImageRequest";

/// Every metric, its unit and its dimensions (besides `Function`).
pub const METRICS: &[(&str, &str, &[&str])] = &[
    ("RequestsSubmitted", "Count", &["Channel"]),
    ("Decisions", "Count", &["Outcome"]),
    ("ApprovalLatency", "Seconds", &[]),
    ("ProvisioningLatency", "Seconds", &[]),
    ("Refusals", "Count", &["Reason"]),
    ("ChainguardCalls", "Count", &["Operation", "Outcome"]),
    ("ChainguardLatency", "Milliseconds", &["Operation"]),
    ("NotificationsSent", "Count", &["Kind"]),
    ("NotificationsFailed", "Count", &["Kind"]),
    // Without even `Function`: their alarms read them so.
    ("OldestPendingApprovalHours", "None", &[]),
    ("NotificationsUndeliverable", "Count", &[]),
];

/// Where the lines go.
pub trait MetricSink: Send + Sync {
    fn emit(&self, line: &str);
}

/// Standard output: what a Lambda's log group reads.
pub struct Stdout;

impl MetricSink for Stdout {
    fn emit(&self, line: &str) {
        println!("{line}");
    }
}

/// Keeps the lines, for tests.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl MetricSink for Recorder {
    fn emit(&self, line: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push(line.to_string());
        }
    }
}

/// The app's metrics: off until a sink is set. Shared by every clone of the app and every
/// port it measures, so setting the sink once (at start) reaches them all.
#[derive(Clone, Default)]
pub struct Metrics(Arc<RwLock<Option<Labelled>>>);

/// A sink and the function whose measurements it takes.
type Labelled = (Arc<dyn MetricSink>, String);

impl Metrics {
    /// Sends every measurement to `sink`, labelled with the function that made it.
    pub fn set(&self, sink: Arc<dyn MetricSink>, function: &str) {
        if let Ok(mut s) = self.0.write() {
            *s = Some((sink, function.to_string()));
        }
    }

    /// One measurement of `name` (one of [`METRICS`]) with its dimensions' values.
    pub fn put(&self, name: &str, value: f64, dimensions: &[(&str, &str)]) {
        self.emit(name, value, dimensions, true);
    }

    /// One measurement without any dimension, not even the function's.
    pub fn put_unlabelled(&self, name: &str, value: f64) {
        self.emit(name, value, &[], false);
    }

    fn emit(&self, name: &str, value: f64, dimensions: &[(&str, &str)], labelled: bool) {
        let Ok(guard) = self.0.read() else { return };
        let Some((sink, function)) = guard.as_ref() else {
            return;
        };
        let Some((_, unit, _)) = METRICS.iter().find(|(n, _, _)| *n == name) else {
            debug_assert!(false, "{name} is not one of METRICS");
            return;
        };
        sink.emit(&line(
            labelled.then_some(function.as_str()),
            name,
            unit,
            value,
            dimensions,
        ));
    }
}

/// One EMF line; `function`, where given, is its first dimension.
pub fn line(function: Option<&str>, name: &str, unit: &str, value: f64, dimensions: &[(&str, &str)]) -> String {
    let mut keys: Vec<&str> = function.map(|_| "Function").into_iter().collect();
    keys.extend(dimensions.iter().map(|(k, _)| *k));
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [keys],
                "Metrics": [{ "Name": name, "Unit": unit }],
            }],
        }),
    );
    if let Some(f) = function {
        doc.insert("Function".into(), Value::from(f));
    }
    for (k, v) in dimensions {
        doc.insert((*k).into(), Value::from(*v));
    }
    doc.insert(name.into(), json!(value));
    Value::Object(doc).to_string()
}

/// A registry whose every call is counted and timed (`ChainguardCalls`, `ChainguardLatency`).
pub struct MeasuredRegistry {
    pub inner: Arc<dyn Registry>,
    pub metrics: Metrics,
}

impl MeasuredRegistry {
    async fn measure<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let started = Instant::now();
        let out = call.await;
        let outcome = match &out {
            Ok(_) => "ok",
            Err(RegistryError::Retryable(_)) => "retryable",
            Err(RegistryError::Permanent(_)) => "permanent",
        };
        self.metrics.put(
            "ChainguardCalls",
            1.0,
            &[("Operation", operation), ("Outcome", outcome)],
        );
        self.metrics.put(
            "ChainguardLatency",
            started.elapsed().as_secs_f64() * 1000.0,
            &[("Operation", operation)],
        );
        out
    }
}

#[async_trait]
impl Registry for MeasuredRegistry {
    fn org_name(&self) -> &str {
        self.inner.org_name()
    }
    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError> {
        self.measure("catalog", self.inner.catalog()).await
    }
    async fn org_repos(&self) -> Result<Vec<Repo>, RegistryError> {
        self.measure("org_repos", self.inner.org_repos()).await
    }
    async fn find_repo(&self, name: &str) -> Result<Option<Repo>, RegistryError> {
        self.measure("find_repo", self.inner.find_repo(name)).await
    }
    async fn catalog_tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        self.measure("catalog_tags", self.inner.catalog_tags(name)).await
    }
    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError> {
        self.measure("create_repo", self.inner.create_repo(name, source)).await
    }
    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError> {
        self.measure("delete_repo", self.inner.delete_repo(name)).await
    }
    async fn entitled(&self, name: &str) -> Result<Entitlement, RegistryError> {
        self.measure("entitled", self.inner.entitled(name)).await
    }
}

/// A notifier whose every message is counted, sent or failed, by kind.
pub struct MeasuredNotifier {
    pub inner: Arc<dyn Notifier>,
    pub metrics: Metrics,
}

#[async_trait]
impl Notifier for MeasuredNotifier {
    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        let out = self.inner.send(message).await;
        let name = if out.is_ok() {
            "NotificationsSent"
        } else {
            "NotificationsFailed"
        };
        self.metrics.put(name, 1.0, &[("Kind", message.kind.into())]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_embedded_metric_format() {
        let v: Value = serde_json::from_str(&line(
            Some("validate"),
            "Refusals",
            "Count",
            1.0,
            &[("Reason", "unknown_tag")],
        ))
        .unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], NAMESPACE);
        assert_eq!(m["Dimensions"], json!([["Function", "Reason"]]));
        assert_eq!(m["Metrics"], json!([{ "Name": "Refusals", "Unit": "Count" }]));
        assert_eq!(
            (v["Function"].as_str(), v["Reason"].as_str(), v["Refusals"].as_f64()),
            (Some("validate"), Some("unknown_tag"), Some(1.0))
        );
        assert!(v["_aws"]["Timestamp"].as_i64().unwrap() > 0);
    }

    #[test]
    fn an_unlabelled_line_has_no_dimension_at_all() {
        let v: Value = serde_json::from_str(&line(None, "OldestPendingApprovalHours", "None", 2.5, &[])).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(
            (v.get("Function"), v["OldestPendingApprovalHours"].as_f64()),
            (None, Some(2.5))
        );
    }

    #[test]
    fn nothing_is_printed_until_a_sink_is_set() {
        let m = Metrics::default();
        m.put("Decisions", 1.0, &[("Outcome", "approved")]);
        let r = Arc::new(Recorder::default());
        m.clone().set(r.clone(), "approval");
        m.put("Decisions", 1.0, &[("Outcome", "approved")]);
        assert_eq!(r.lines().len(), 1);
    }
}
