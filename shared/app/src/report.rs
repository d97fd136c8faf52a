//! Reports over the store: the range a caller asks for, and the requests and events in it
//! (the figures themselves are `domain::report`'s).

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::ports::StoreError;
use crate::App;
use domain::report::{week_start, History, Report};
use domain::{Channel, Principal, RateError, Request, RequestId};

/// The longest range one report covers: a year and a bit, for a yearly review.
pub const MAX_DAYS: i64 = 400;

/// Which requests a report counts: submitted at or after `since`, before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Range {
    /// The last `weeks` ISO weeks, this one (so far) included.
    pub fn weeks(weeks: u32, now: DateTime<Utc>) -> Result<Range, String> {
        if !(1..=57).contains(&weeks) {
            return Err("weeks must be 1 to 57".into());
        }
        Ok(Range {
            since: week_start(now) - Duration::weeks(i64::from(weeks) - 1),
            until: now,
        })
    }

    /// From the start of `since` to the end of `until` (both days included; `until`
    /// defaults to today).
    pub fn dates(since: &str, until: Option<&str>, now: DateTime<Utc>) -> Result<Range, String> {
        let day = |what: &str, s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{what} `{s}` is not a date (YYYY-MM-DD)"))
        };
        let start = day("since", since)?;
        let end = match until {
            Some(u) => day("until", u)?,
            None => now.date_naive(),
        };
        if end < start {
            return Err(format!("until {end} is before since {start}"));
        }
        if (end - start).num_days() >= MAX_DAYS {
            return Err(format!("a report covers at most {MAX_DAYS} days"));
        }
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        Ok(Range {
            since: midnight(start),
            until: midnight(end) + Duration::days(1),
        })
    }
}

/// Why a rating was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RateFailed {
    #[error("no request {0}")]
    NotFound(RequestId),
    #[error(transparent)]
    Refused(#[from] RateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl App {
    /// Records `who`'s rating of a request that ended with a pull string (in its audit
    /// trail); a later rating of theirs replaces this one in reports.
    pub async fn rate(
        &self,
        id: RequestId,
        who: &Principal,
        up: bool,
        comment: Option<String>,
        channel: Channel,
    ) -> Result<Request, RateFailed> {
        for _ in 0..8 {
            let r = self.store.get(id).await?.ok_or(RateFailed::NotFound(id))?;
            let t = r.rate(who, up, comment.clone(), channel, self.clock.now())?;
            match self.commit(t).await {
                Ok(rated) => return Ok(rated),
                // Someone else rated at the same moment: read again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable("the request kept changing; try again".into()).into())
    }

    /// The report over `range`: one pass over the requests created in it, then their events.
    pub async fn report(&self, range: Range) -> Result<Report, StoreError> {
        let requests = self.store.created_between(range.since, range.until).await?;
        let ids: Vec<_> = requests.iter().map(|r| r.id).collect();
        let timelines = self.audit.timelines(&ids).await?;
        let histories: Vec<History> = requests
            .iter()
            .zip(&timelines)
            .map(|(request, (_, events))| History { request, events })
            .collect();
        Ok(domain::report::report(
            &histories,
            range.since,
            range.until,
            self.settings.report.costs(),
            self.clock.now(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_whole_weeks_or_whole_days() {
        let now = at("2026-11-29T18:00:00Z");
        let r = Range::weeks(2, now).unwrap();
        assert_eq!((r.since, r.until), (at("2026-11-16T00:00:00Z"), now));
        let r = Range::dates("2026-11-02", Some("2026-11-08"), now).unwrap();
        assert_eq!(
            (r.since, r.until),
            (at("2026-11-02T00:00:00Z"), at("2026-11-09T00:00:00Z"))
        );
        assert_eq!(
            Range::dates("2026-11-02", None, now).unwrap().until,
            at("2026-11-30T00:00:00Z")
        );
        assert!(Range::dates("2026-11-09", Some("2026-11-02"), now)
            .unwrap_err()
            .contains("before"));
        assert!(Range::dates("2025-01-01", None, now).unwrap_err().contains("400 days"));
        assert!(Range::dates("11/02/2026", None, now)
            .unwrap_err()
            .contains("YYYY-MM-DD"));
        assert!(Range::weeks(0, now).is_err());
    }
}
