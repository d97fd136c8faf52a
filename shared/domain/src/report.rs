//! What the tool achieved, per ISO week: adoption, outcomes, approval and delivery times,
//! satisfaction and the time saved. Computed from requests and their audit events only, so
//! every figure can be traced back to the trail. README ("Measuring success") defines each.
//!
//! Every figure counts the requests *submitted* in a week (a cohort), by what had become of
//! them when the report was made: a request submitted on Sunday and approved on Monday
//! counts its approval in Sunday's week.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::{Action, AuditEvent, Principal, RejectReason, Request, Status};

/// How many images `top_images` names, per week and in total.
pub const TOP_IMAGES: usize = 5;

/// What the report's arithmetic is told: the manual process it replaces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// A person's time per image through the manual path (a ticket, a Console session).
    pub manual_minutes_per_request: f64,
    /// A person's time per decision through this tool (reading the page, one click).
    pub approver_minutes_per_decision: f64,
}

impl Default for Costs {
    fn default() -> Self {
        Costs {
            manual_minutes_per_request: 240.0,
            approver_minutes_per_decision: 2.0,
        }
    }
}

/// The figures of one week, or of the whole range.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// `YYYY-Www` (ISO week); absent on the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week: Option<String>,
    pub requests: u64,
    /// Approved without a person: by a policy rule or a merged pull request.
    pub auto_approved: u64,
    /// Approved by a person.
    pub approved: u64,
    pub denied: u64,
    pub expired: u64,
    pub rejected: u64,
    /// `rejected`, by the check that rejected (every reason, zeros included).
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub already_available: u64,
    /// Asks that joined one of these requests instead of starting another.
    pub joined: u64,
    pub provisioned: u64,
    /// Removals done.
    pub removed: u64,
    /// In `failed` now (a retried request that then succeeded is not counted).
    pub failed: u64,
    /// Submitted to a person's decision.
    pub approval_time_p50_seconds: Option<u64>,
    pub approval_time_p90_seconds: Option<u64>,
    /// Submitted to a pull string (provisioned, or found already available).
    pub time_to_pull_string_p50_seconds: Option<u64>,
    pub time_to_pull_string_p90_seconds: Option<u64>,
    /// Decisions by people, most first.
    pub approvers: Vec<ApproverFigures>,
    /// The images most asked for (requests and joins), most first.
    pub top_images: Vec<ImageCount>,
    /// Distinct people who asked (requesters and those who joined).
    pub requesters: u64,
    pub satisfaction_up: u64,
    pub satisfaction_down: u64,
    /// Share of ratings that are up, in percent; absent without ratings.
    pub satisfaction_score: Option<f64>,
    /// Pull strings delivered × the manual minutes, less the people's decisions × their
    /// minutes, in hours.
    pub time_saved_hours: f64,
    /// The org's repositories as the last validation in the range counted them, and its limit.
    pub capacity_used: Option<u64>,
    pub capacity_limit: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverFigures {
    pub approver: Principal,
    pub decisions: u64,
    pub approved: u64,
    pub denied: u64,
    /// Submitted to this person's decision, median.
    pub median_seconds: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCount {
    pub image: String,
    pub requests: u64,
}

/// A report: the range, each ISO week it touches (oldest first, empty weeks included)
/// and the total.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Requests submitted at or after `since` and before `until`.
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub manual_minutes_per_request: f64,
    pub approver_minutes_per_decision: f64,
    pub weeks: Vec<Figures>,
    pub total: Figures,
}

impl Report {
    /// The last day the range covers (`until` is the start of the day after, or now).
    pub fn last_day(&self) -> NaiveDate {
        (self.until - Duration::milliseconds(1)).date_naive()
    }
}

/// `YYYY-Www` of a time (UTC).
pub fn iso_week(t: DateTime<Utc>) -> String {
    let w = t.date_naive().iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Midnight (UTC) of the Monday of `t`'s ISO week.
pub fn week_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let w = t.date_naive().iso_week();
    let monday = NaiveDate::from_isoywd_opt(w.year(), w.week(), Weekday::Mon).unwrap_or(t.date_naive());
    monday.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The `p`th percentile by nearest rank (the smallest value with at least p% at or below
/// it): always a measured value, never an interpolation.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank - 1).copied()
}

/// One request as the report reads it: what it is now, and its events in order.
pub struct History<'a> {
    pub request: &'a Request,
    pub events: &'a [AuditEvent],
}

#[derive(Default)]
struct Tally {
    f: Figures,
    approval_secs: Vec<u64>,
    pull_secs: Vec<u64>,
    by_approver: BTreeMap<Principal, (u64, u64, Vec<u64>)>,
    images: HashMap<String, u64>,
    people: BTreeSet<Principal>,
    people_decisions: u64,
    delivered: u64,
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_seconds().max(0) as u64
}

impl Tally {
    fn add(&mut self, h: &History) {
        let r = h.request;
        let f = &mut self.f;
        f.requests += 1;
        let submitted = r.created_at;
        let mut ratings: HashMap<&Principal, bool> = HashMap::new();
        for e in h.events {
            match e.action {
                Action::AutoApprove => f.auto_approved += 1,
                Action::Approve | Action::Deny => {
                    let approved = e.action == Action::Approve;
                    if approved {
                        f.approved += 1;
                    } else {
                        f.denied += 1;
                    }
                    let wait = secs(submitted, e.at);
                    self.approval_secs.push(wait);
                    self.people_decisions += 1;
                    let a = self.by_approver.entry(e.actor.clone()).or_default();
                    if approved {
                        a.0 += 1;
                    } else {
                        a.1 += 1;
                    }
                    a.2.push(wait);
                }
                Action::Expire => f.expired += 1,
                Action::Reject => {
                    f.rejected += 1;
                    if let Some(why) = r.rejected_for {
                        *f.rejected_by_reason.entry(why.as_str().to_string()).or_default() += 1;
                    }
                }
                Action::FoundAvailable | Action::CompleteProvisioning => {
                    if e.action == Action::FoundAvailable {
                        f.already_available += 1;
                    } else {
                        f.provisioned += 1;
                    }
                    self.pull_secs.push(secs(submitted, e.at));
                    self.delivered += 1;
                }
                Action::CompleteRemoval => f.removed += 1,
                Action::Join => {
                    f.joined += 1;
                    *self.images.entry(r.image.name().to_string()).or_default() += 1;
                    self.people.insert(e.actor.clone());
                }
                // A later rating by the same person replaces theirs.
                Action::RateUp | Action::RateDown => {
                    ratings.insert(&e.actor, e.action == Action::RateUp);
                }
                _ => {}
            }
        }
        if r.status() == Status::Failed {
            f.failed += 1;
        }
        // Histories come oldest first: the last count seen is the newest.
        if let Some(c) = r.capacity {
            f.capacity_used = Some(c.used);
            f.capacity_limit = Some(c.limit);
        }
        let up = ratings.values().filter(|up| **up).count() as u64;
        f.satisfaction_up += up;
        f.satisfaction_down += ratings.len() as u64 - up;
        *self.images.entry(r.image.name().to_string()).or_default() += 1;
        self.people.insert(r.requester.clone());
    }

    fn figures(mut self, week: Option<String>, costs: Costs) -> Figures {
        let mut f = std::mem::take(&mut self.f);
        f.week = week;
        for why in <RejectReason as strum::VariantArray>::VARIANTS {
            f.rejected_by_reason.entry(why.as_str().to_string()).or_default();
        }
        self.approval_secs.sort_unstable();
        self.pull_secs.sort_unstable();
        f.approval_time_p50_seconds = percentile(&self.approval_secs, 50);
        f.approval_time_p90_seconds = percentile(&self.approval_secs, 90);
        f.time_to_pull_string_p50_seconds = percentile(&self.pull_secs, 50);
        f.time_to_pull_string_p90_seconds = percentile(&self.pull_secs, 90);
        f.approvers = self
            .by_approver
            .into_iter()
            .map(|(approver, (approved, denied, mut waits))| {
                waits.sort_unstable();
                ApproverFigures {
                    approver,
                    decisions: approved + denied,
                    approved,
                    denied,
                    median_seconds: percentile(&waits, 50).unwrap_or(0),
                }
            })
            .collect();
        f.approvers.sort_by_key(|a| std::cmp::Reverse(a.decisions));
        let mut images: Vec<ImageCount> = self
            .images
            .into_iter()
            .map(|(image, requests)| ImageCount { image, requests })
            .collect();
        images.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.image.cmp(&b.image)));
        images.truncate(TOP_IMAGES);
        f.top_images = images;
        f.requesters = self.people.len() as u64;
        let rated = f.satisfaction_up + f.satisfaction_down;
        f.satisfaction_score = (rated > 0).then(|| round1(100.0 * f.satisfaction_up as f64 / rated as f64));
        let minutes = self.delivered as f64 * costs.manual_minutes_per_request
            - self.people_decisions as f64 * costs.approver_minutes_per_decision;
        f.time_saved_hours = round1(minutes / 60.0);
        f
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The report over requests submitted in `[since, until)`; histories outside it are ignored.
pub fn report(
    histories: &[History],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    costs: Costs,
    now: DateTime<Utc>,
) -> Report {
    let mut weeks: BTreeMap<DateTime<Utc>, Tally> = BTreeMap::new();
    let mut start = week_start(since);
    while start < until {
        weeks.insert(start, Tally::default());
        start += Duration::weeks(1);
    }
    let mut total = Tally::default();
    let mut histories: Vec<&History> = histories.iter().collect();
    histories.sort_by_key(|h| (h.request.created_at, h.request.id));
    for h in histories {
        let at = h.request.created_at;
        if at < since || at >= until {
            continue;
        }
        total.add(h);
        weeks.entry(week_start(at)).or_default().add(h);
    }
    Report {
        since,
        until,
        generated_at: now,
        manual_minutes_per_request: costs.manual_minutes_per_request,
        approver_minutes_per_decision: costs.approver_minutes_per_decision,
        weeks: weeks
            .into_iter()
            .map(|(start, t)| t.figures(Some(iso_week(start)), costs))
            .collect(),
        total: total.figures(None, costs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn weeks_are_iso_weeks_named_by_their_iso_year() {
        // 2026-01-01 is a Thursday: ISO week 1 of 2026. 2027-01-01 is a Friday: week 53 of 2026.
        assert_eq!(iso_week(at("2026-01-01T10:00:00Z")), "2026-W01");
        assert_eq!(iso_week(at("2027-01-01T10:00:00Z")), "2026-W53");
        assert_eq!(week_start(at("2026-11-29T23:59:00Z")), at("2026-11-23T00:00:00Z"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[1, 100], 90), Some(100));
    }

    #[test]
    fn an_empty_range_still_has_its_weeks() {
        let r = report(
            &[],
            at("2026-11-02T00:00:00Z"),
            at("2026-11-16T00:00:00Z"),
            Costs::default(),
            at("2026-11-20T00:00:00Z"),
        );
        let names: Vec<_> = r.weeks.iter().map(|w| w.week.clone().unwrap()).collect();
        assert_eq!(names, ["2026-W45", "2026-W46"]);
        assert_eq!(r.total.requests, 0);
        assert_eq!(r.total.satisfaction_score, None);
        assert_eq!(
            r.total.rejected_by_reason.len(),
            <RejectReason as strum::VariantArray>::VARIANTS.len()
        );
    }
}
