//! `report`: what the tool achieved, from `GET /reports/weekly`, as a table (two tables,
//! so that each fits in 100 columns), JSON, CSV (one row per week) or an HTML page.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cgr_request::client::{query, ApiClient};
use cgr_request::report_html::{duration, page};
use domain::report::{Figures, Report};
use reqwest::Method;

use super::explain;
use crate::args::Output;

pub async fn run(
    api: &ApiClient,
    weeks: Option<u32>,
    since: Option<String>,
    until: Option<String>,
    html: Option<PathBuf>,
    out: Output,
) -> Result<ExitCode> {
    let weeks = weeks.map(|w| w.to_string());
    let mut pairs = vec![];
    if let Some(w) = &weeks {
        pairs.push(("weeks", w.as_str()));
    }
    if let Some(s) = &since {
        pairs.push(("since", s.as_str()));
    }
    if let Some(u) = &until {
        pairs.push(("until", u.as_str()));
    }
    let path = match pairs.is_empty() {
        true => "/reports/weekly".to_string(),
        false => format!("/reports/weekly?{}", query(&pairs)),
    };
    let (_, v) = api.call(Method::GET, &path, None, &[]).await.map_err(explain)?;
    let report: Report = serde_json::from_value(v.clone()).context("reading the report")?;
    if let Some(file) = &html {
        std::fs::write(file, page(&report)).with_context(|| format!("writing {}", file.display()))?;
    }
    match out {
        Output::Json => println!("{v:#}"),
        Output::Csv => print!("{}", csv(&report)),
        Output::Table => print!("{}", table(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A count: its JSON (and CSV) name, its column in the table, and where it is.
type Count = (&'static str, &'static str, fn(&Figures) -> u64);

/// The counts, in the order both the table and the CSV give them.
const COUNTS: &[Count] = &[
    ("requests", "ASKED", |f| f.requests),
    ("auto_approved", "AUTO", |f| f.auto_approved),
    ("approved", "APPROVED", |f| f.approved),
    ("denied", "DENIED", |f| f.denied),
    ("expired", "EXPIRED", |f| f.expired),
    ("rejected", "REJECTED", |f| f.rejected),
    ("already_available", "HAD IT", |f| f.already_available),
    ("joined", "JOINED", |f| f.joined),
    ("provisioned", "ADDED", |f| f.provisioned),
    ("removed", "REMOVED", |f| f.removed),
    ("failed", "FAILED", |f| f.failed),
];

fn opt(d: Option<u64>) -> String {
    d.map_or_else(|| "-".to_string(), duration)
}

fn label(f: &Figures) -> String {
    f.week.clone().unwrap_or_else(|| "total".into())
}

/// The report as people read it in a terminal: outcomes, then times and satisfaction,
/// then who decided and what was asked for.
pub fn table(r: &Report) -> String {
    let all: Vec<&Figures> = r.weeks.iter().chain([&r.total]).collect();
    let mut s = format!(
        "Requests submitted {} to {} ({} week{}), as of {}\n\n",
        r.since.format("%Y-%m-%d"),
        r.last_day().format("%Y-%m-%d"),
        r.weeks.len(),
        if r.weeks.len() == 1 { "" } else { "s" },
        r.generated_at.format("%Y-%m-%d %H:%M UTC"),
    );
    let outcomes = all.iter().map(|f| {
        let mut row = vec![label(f)];
        row.extend(COUNTS.iter().map(|(_, _, get)| get(f).to_string()));
        row
    });
    let mut header = vec!["WEEK"];
    header.extend(COUNTS.iter().map(|(_, column, _)| *column));
    s += &cgr_request::audit::table(&header, outcomes);
    s += "\n\n";
    let times = all.iter().map(|f| {
        vec![
            label(f),
            f.requesters.to_string(),
            opt(f.approval_time_p50_seconds),
            opt(f.approval_time_p90_seconds),
            opt(f.time_to_pull_string_p50_seconds),
            opt(f.time_to_pull_string_p90_seconds),
            f.satisfaction_up.to_string(),
            f.satisfaction_down.to_string(),
            f.satisfaction_score.map_or_else(|| "-".into(), |p| format!("{p}%")),
            format!("{:.1}", f.time_saved_hours),
        ]
    });
    s += &cgr_request::audit::table(
        &[
            "WEEK",
            "PEOPLE",
            "APPROVAL P50",
            "P90",
            "PULL STRING P50",
            "P90",
            "UP",
            "DOWN",
            "SCORE",
            "SAVED (H)",
        ],
        times,
    );
    let t = &r.total;
    let rejected: Vec<String> = t
        .rejected_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{} {n}", why.replace('_', " ")))
        .collect();
    if !rejected.is_empty() {
        s += &format!("\n\nRejected: {}", rejected.join(", "));
    }
    if !t.approvers.is_empty() {
        s += "\n\n";
        s += &cgr_request::audit::table(
            &["APPROVER", "DECISIONS", "APPROVED", "DENIED", "MEDIAN WAIT"],
            t.approvers.iter().map(|a| {
                vec![
                    a.approver.to_string(),
                    a.decisions.to_string(),
                    a.approved.to_string(),
                    a.denied.to_string(),
                    duration(a.median_seconds),
                ]
            }),
        );
    }
    if !t.top_images.is_empty() {
        let top: Vec<String> = t
            .top_images
            .iter()
            .map(|i| format!("{} ({})", i.image, i.requests))
            .collect();
        s += &format!("\n\nMost asked for: {}", top.join(", "));
    }
    s += &format!(
        "\n\nTime saved: {:.1} h = pull strings delivered × {} min, less people's decisions × {} min.\n",
        t.time_saved_hours, r.manual_minutes_per_request, r.approver_minutes_per_decision
    );
    s
}

/// One row per week, the scalar figures under their JSON names.
pub fn csv(r: &Report) -> String {
    let reasons: Vec<&String> = r.total.rejected_by_reason.keys().collect();
    let mut header: Vec<String> = vec!["week".into()];
    header.extend(COUNTS.iter().map(|(name, _, _)| name.to_string()));
    header.extend(reasons.iter().map(|why| format!("rejected_{why}")));
    header.extend(
        [
            "approval_time_p50_seconds",
            "approval_time_p90_seconds",
            "time_to_pull_string_p50_seconds",
            "time_to_pull_string_p90_seconds",
            "requesters",
            "satisfaction_up",
            "satisfaction_down",
            "satisfaction_score",
            "time_saved_hours",
        ]
        .map(String::from),
    );
    let mut out = header.join(",") + "\n";
    let num = |o: Option<u64>| o.map(|v| v.to_string()).unwrap_or_default();
    for f in &r.weeks {
        let mut row = vec![label(f)];
        row.extend(COUNTS.iter().map(|(_, _, get)| get(f).to_string()));
        row.extend(
            reasons
                .iter()
                .map(|why| f.rejected_by_reason.get(*why).copied().unwrap_or(0).to_string()),
        );
        row.extend([
            num(f.approval_time_p50_seconds),
            num(f.approval_time_p90_seconds),
            num(f.time_to_pull_string_p50_seconds),
            num(f.time_to_pull_string_p90_seconds),
            f.requesters.to_string(),
            f.satisfaction_up.to_string(),
            f.satisfaction_down.to_string(),
            f.satisfaction_score.map(|s| s.to_string()).unwrap_or_default(),
            f.time_saved_hours.to_string(),
        ]);
        out += &(row.join(",") + "\n");
    }
    out
}
