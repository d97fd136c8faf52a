//! The org's repository count against its limit: approvers alerted once per crossing of
//! `capacity_alert_percent` and once at the limit, and what could be cleaned up (the org's
//! repositories nobody asked for through this tool first, then those asked for longest ago).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::outbox::Intent;
use crate::ports::{Repo, StoreError};
use crate::workflow::Alerts;
use crate::App;
use domain::{Capacity, Principal, Request};

/// The claims that remember an alert was sent, until the count falls back below.
const NEAR: &str = "capacity#near";
const FULL: &str = "capacity#full";

/// How many candidates an alert names (`cgr-request admin capacity` lists them all).
pub const ALERT_CANDIDATES: usize = 20;

/// A repository that could go, and why it is listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub name: String,
    /// The last request for it through this tool; none: nobody asked for it here.
    pub last_requested: Option<DateTime<Utc>>,
    pub requester: Option<Principal>,
    pub request_id: Option<domain::RequestId>,
}

/// What `GET /capacity` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub used: u64,
    pub limit: u64,
    pub percent: u64,
    pub alert_percent: u8,
    pub candidates: Vec<Candidate>,
}

/// The org's repositories, those no request asked for first (by name), then by their
/// last request, oldest first.
pub fn candidates(repos: &[Repo], requests: &[Request]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = repos
        .iter()
        .map(|repo| {
            let last = requests
                .iter()
                .filter(|r| r.image.name() == repo.name)
                .max_by_key(|r| (r.created_at, r.id));
            Candidate {
                name: repo.name.clone(),
                last_requested: last.map(|r| r.created_at),
                requester: last.map(|r| r.requester.clone()),
                request_id: last.map(|r| r.id),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.last_requested
            .cmp(&b.last_requested)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// The limit an org is held to: its plan's where it has one, never above the configured.
pub fn limit(configured: usize, plan: Option<usize>) -> usize {
    plan.map_or(configured, |m| m.min(configured))
}

impl App {
    /// Every request ever made (a `by_time` Query on DynamoDB): what the cleanup list
    /// compares the org's repositories with.
    async fn all_requests(&self) -> Result<Vec<Request>, StoreError> {
        let now = self.clock.now();
        self.store
            .created_between(DateTime::<Utc>::UNIX_EPOCH, now + Duration::seconds(1))
            .await
    }

    pub async fn capacity_report(&self, repos: &[Repo], limit: usize) -> Result<CapacityReport, StoreError> {
        let c = Capacity {
            used: repos.len() as u64,
            limit: limit as u64,
        };
        Ok(CapacityReport {
            used: c.used,
            limit: c.limit,
            percent: c.percent(),
            alert_percent: self.settings.capacity_alert_percent,
            candidates: candidates(repos, &self.all_requests().await?),
        })
    }

    /// The approvers' alerts a count makes: the first time it reaches the alert share, and
    /// again at the limit (with the cleanup list); a count back below re-arms each. Each
    /// alert goes with a claim that the validation's own transition takes (so a crossing
    /// is told once, and not lost to a crash before the commit). What fails here is
    /// logged: the request's own validation goes on.
    pub async fn capacity_alerts(&self, r: &Request, c: Capacity, repos: &[Repo]) -> Alerts {
        let near = c.percent() >= u64::from(self.settings.capacity_alert_percent);
        let full = c.used >= c.limit;
        let mut alerts = Alerts::default();
        for (key, crossed) in [(NEAR, near), (FULL, full)] {
            match self.crossing(key, crossed, repos).await {
                Ok(Some(cleanup)) => {
                    tracing::warn!(request_id = %r.id, used = c.used, limit = c.limit, "the organization's repository count crossed an alert threshold");
                    alerts.intents.push(Intent::Capacity {
                        capacity: c,
                        cleanup: cleanup.into_iter().take(ALERT_CANDIDATES).collect(),
                    });
                    alerts.claims.push(key.to_string());
                }
                Ok(None) => {}
                Err(e) => tracing::error!(request_id = %r.id, error = %e, "could not check the capacity alert"),
            }
        }
        alerts
    }

    /// Whether `key`'s line is newly crossed (with the cleanup list at the limit); a line
    /// no longer crossed gives its claim back.
    async fn crossing(&self, key: &str, crossed: bool, repos: &[Repo]) -> Result<Option<Vec<Candidate>>, StoreError> {
        let now = self.clock.now();
        let held = self.store.holds(key, now).await?;
        if !crossed {
            if held {
                self.store.release(key).await?;
            }
            return Ok(None);
        }
        if held {
            return Ok(None);
        }
        Ok(Some(match key {
            FULL => candidates(repos, &self.all_requests().await?),
            _ => vec![],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_nobody_asked_for_come_first_then_the_oldest_asked() {
        let repo = |n: &str| Repo {
            id: n.into(),
            name: n.into(),
            tags: vec![],
        };
        let asked = |image: &str, at: &str| {
            let (r, _) = Request::submit(
                domain::NewRequest {
                    kind: domain::Kind::Add,
                    image: domain::ImageRef::parse(image).unwrap(),
                    requester: "email:dev@example.com".parse().unwrap(),
                    justification: domain::Justification::parse("for a test").unwrap(),
                    environment: None,
                    environment_vouched_by: None,
                    channel: domain::Channel::Cli,
                    idempotency_key: None,
                },
                domain::RequestId::new(),
                at.parse().unwrap(),
            );
            r
        };
        let repos = [repo("python"), repo("nginx"), repo("redis"), repo("go")];
        let requests = [
            asked("python", "2026-10-01T00:00:00Z"),
            asked("python:3.12", "2026-11-01T00:00:00Z"),
            asked("nginx", "2026-09-01T00:00:00Z"),
        ];
        let names: Vec<_> = candidates(&repos, &requests)
            .into_iter()
            .map(|c| (c.name, c.last_requested.map(|t| t.to_rfc3339())))
            .collect();
        assert_eq!(
            names,
            [
                ("go".to_string(), None),
                ("redis".to_string(), None),
                ("nginx".to_string(), Some("2026-09-01T00:00:00+00:00".to_string())),
                ("python".to_string(), Some("2026-11-01T00:00:00+00:00".to_string())),
            ]
        );
        assert_eq!(limit(2500, Some(100)), 100);
        assert_eq!(limit(2500, None), 2500);
    }
}
