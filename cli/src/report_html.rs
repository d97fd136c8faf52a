//! `report --html`: the report as one self-contained page (inline SVG charts and CSS, no
//! script and nothing fetched), for people who would rather look than read. Escaped by
//! construction (maud).

use maud::{html, Markup, DOCTYPE};

use domain::report::{Figures, Report};

/// Seconds as people say them: `45s`, `12m`, `2h 05m`, `3d 4h`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.5rem;overflow-wrap:anywhere}code{overflow-wrap:anywhere}h2{font-size:1.15rem;margin-top:2rem}\
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{background:#f4f6f8;border:1px solid #d5dbe1;border-radius:6px;padding:.6rem .9rem;min-width:8rem}\
.card b{display:block;font-size:1.4rem}\
svg{width:100%;height:auto;max-width:56rem}svg text{font-size:14px;fill:#333}\
.legend span{display:inline-block;margin-right:1rem;font-size:.9rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}\
table{border-collapse:collapse;display:block;max-width:100%;overflow-x:auto}td,th{padding:.2rem .6rem;text-align:right;white-space:nowrap}td:first-child,th:first-child{text-align:left}\
.note{color:#555;font-size:.9rem}";

/// Outcome series, stacked bottom-up, with their colours.
const OUTCOMES: &[(&str, &str)] = &[
    ("added", "#1f7a3a"),
    ("had it already", "#6fbf73"),
    ("denied", "#a32020"),
    ("rejected", "#e07b39"),
    ("expired", "#9e9e9e"),
    ("failed", "#6a1b9a"),
    ("open or other", "#90caf9"),
];

fn outcome_counts(f: &Figures) -> [u64; 7] {
    let ended = f.provisioned + f.already_available + f.denied + f.rejected + f.expired + f.failed;
    [
        f.provisioned,
        f.already_available,
        f.denied,
        f.rejected,
        f.expired,
        f.failed,
        f.requests.saturating_sub(ended),
    ]
}

/// A week's non-empty outcome segments, bottom up: (outcome, count below it, count).
fn stacked(f: &Figures) -> Vec<(usize, u64, u64)> {
    let mut below = 0;
    let mut out = vec![];
    for (k, n) in outcome_counts(f).into_iter().enumerate() {
        if n > 0 {
            out.push((k, below, n));
        }
        below += n;
    }
    out
}

/// A line: its name, colour and value in a week (none: no point that week).
type Series<'a> = (&'a str, &'a str, fn(&Figures) -> Option<f64>);

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 28.0;

/// Axes with a few gridlines from 0 to `max`, and a label under each week.
fn frame(weeks: &[String], (max, steps): (f64, u32), unit: &dyn Fn(f64) -> String) -> Markup {
    let plot_h = H - BOTTOM - 10.0;
    let step = (W - LEFT) / weeks.len().max(1) as f64;
    html! {
        @for i in 0..=steps {
            @let v = max * f64::from(i) / f64::from(steps);
            @let y = H - BOTTOM - plot_h * f64::from(i) / f64::from(steps);
            line x1=(LEFT) x2=(W) y1=(y) y2=(y) stroke="#e0e0e0" {}
            text x=(LEFT - 4.0) y=(y + 4.0) text-anchor="end" { (unit(v)) }
        }
        @for (i, w) in weeks.iter().enumerate() {
            text x=(LEFT + step * (i as f64 + 0.5)) y=(H - 8.0) text-anchor="middle" { (w.split('-').nth(1).unwrap_or(w)) }
        }
    }
}

/// The top of an axis and its number of gridline steps: whole, round steps (1, 2, 5 × 10ⁿ)
/// of at least 1, at most four of them, so that every label is a value the data can take.
fn scale(max: f64) -> (f64, u32) {
    if max <= 0.0 {
        return (1.0, 1);
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|m| *m >= raw)
        .unwrap_or(raw)
        .max(1.0)
        .ceil();
    let steps = (max / step).ceil().max(1.0);
    (step * steps, steps as u32)
}

fn weeks_of(r: &Report) -> Vec<String> {
    r.weeks.iter().map(|f| f.week.clone().unwrap_or_default()).collect()
}

fn requests_chart(r: &Report) -> Markup {
    let weeks = weeks_of(r);
    let axis = scale(r.weeks.iter().map(|f| f.requests).max().unwrap_or(0) as f64);
    let max = axis.0;
    let plot_h = H - BOTTOM - 10.0;
    let step = (W - LEFT) / weeks.len().max(1) as f64;
    html! {
        svg id="requests-chart" viewBox={"0 0 " (W) " " (H)} role="img" aria-label="Requests per week by outcome" {
            (frame(&weeks, axis, &|v| format!("{v:.0}")))
            @for (i, f) in r.weeks.iter().enumerate() {
                @let x = LEFT + step * i as f64 + step * 0.15;
                @for (k, below, n) in stacked(f) {
                    @let y0 = H - BOTTOM - plot_h * (below as f64) / max;
                    @let h = plot_h * (n as f64) / max;
                    rect x=(x) y=(y0 - h) width=(step * 0.7) height=(h) fill=(OUTCOMES[k].1) {
                        title { (f.week.as_deref().unwrap_or("")) ": " (n) " " (OUTCOMES[k].0) }
                    }
                }
            }
        }
        p class="legend" {
            @for (name, colour) in OUTCOMES { span { i style={"background:" (colour)} {} (name) } }
        }
    }
}

fn lines_chart(id: &str, label: &str, r: &Report, series: &[Series], unit: &dyn Fn(f64) -> String) -> Markup {
    let weeks = weeks_of(r);
    let axis = scale(
        r.weeks
            .iter()
            .flat_map(|f| series.iter().filter_map(move |(_, _, get)| get(f)))
            .fold(0.0, f64::max),
    );
    let max = axis.0;
    let plot_h = H - BOTTOM - 10.0;
    let step = (W - LEFT) / weeks.len().max(1) as f64;
    let points = |get: fn(&Figures) -> Option<f64>| -> Vec<(f64, f64)> {
        r.weeks
            .iter()
            .enumerate()
            .filter_map(|(i, f)| get(f).map(|v| (LEFT + step * (i as f64 + 0.5), H - BOTTOM - plot_h * v / max)))
            .collect()
    };
    html! {
        svg id=(id) viewBox={"0 0 " (W) " " (H)} role="img" aria-label=(label) {
            (frame(&weeks, axis, unit))
            @for (name, colour, get) in series {
                @let pts = points(*get);
                polyline fill="none" stroke=(colour) stroke-width="2"
                    points=(pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")) {}
                @for (x, y) in &pts {
                    circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" fill=(colour) { title { (name) } }
                }
            }
        }
        p class="legend" {
            @for (name, colour, _) in series { span { i style={"background:" (colour)} {} (name) } }
        }
    }
}

/// The whole page.
pub fn page(r: &Report) -> String {
    let t = &r.total;
    let last_capacity = r.weeks.iter().rev().find_map(|f| f.capacity_used.zip(f.capacity_limit));
    let title = format!(
        "Image Request: {} to {}",
        r.since.format("%Y-%m-%d"),
        r.last_day().format("%Y-%m-%d")
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (STYLE) }
            }
            body {
                h1 { (title) }
                p class="note" { "Requests submitted in the range, by what had become of them on " (r.generated_at.format("%Y-%m-%d %H:%M UTC")) "." }
                div class="cards" {
                    div class="card" id="card-requests" { b { (t.requests) } "requests" }
                    div class="card" { b { (t.requesters) } "people asked" }
                    div class="card" { b { (t.approval_time_p50_seconds.map_or("-".into(), duration)) } "approval, median" }
                    div class="card" { b { (t.time_to_pull_string_p50_seconds.map_or("-".into(), duration)) } "to a pull string, median" }
                    div class="card" { b { (t.satisfaction_score.map_or("-".into(), |s| format!("{s}%"))) } "rated up" }
                    div class="card" id="card-saved" { b { (format!("{:.1} h", t.time_saved_hours)) } "saved" }
                    @if let Some((used, limit)) = last_capacity {
                        div class="card" id="card-capacity" { b { (domain::thousands(used)) " / " (domain::thousands(limit)) } "repositories used" }
                    }
                }
                h2 { "Requests per week, by outcome" }
                (requests_chart(r))
                h2 { "Approval time per week (submitted to a person's decision)" }
                (lines_chart("approval-chart", "Approval time per week", r, &[
                    ("p50", "#1565c0", |f| f.approval_time_p50_seconds.map(|s| s as f64)),
                    ("p90", "#ef6c00", |f| f.approval_time_p90_seconds.map(|s| s as f64)),
                ], &|v| duration(v as u64)))
                h2 { "Satisfaction per week" }
                (lines_chart("satisfaction-chart", "Ratings per week", r, &[
                    ("rated up", "#1f7a3a", |f| Some(f.satisfaction_up as f64)),
                    ("rated down", "#a32020", |f| Some(f.satisfaction_down as f64)),
                ], &|v| format!("{v:.0}")))
                h2 { "Repositories used" }
                @if r.weeks.iter().any(|f| f.capacity_used.is_some()) {
                    (lines_chart("capacity-chart", "Repositories used per week", r, &[
                        ("used", "#37474f", |f| f.capacity_used.map(|u| u as f64)),
                        ("limit", "#a32020", |f| f.capacity_limit.map(|l| l as f64)),
                    ], &|v| format!("{v:.0}")))
                } @else {
                    p class="note" { "No validation counted the organization's repositories in this range." }
                }
                h2 { "Who decided" }
                @if t.approvers.is_empty() {
                    p class="note" { "No person decided a request in this range." }
                } @else {
                    table {
                        tr { th { "approver" } th { "decisions" } th { "approved" } th { "denied" } th { "median wait" } }
                        @for a in &t.approvers {
                            tr { td { (a.approver) } td { (a.decisions) } td { (a.approved) } td { (a.denied) } td { (duration(a.median_seconds)) } }
                        }
                    }
                }
                h2 { "Most asked for" }
                ul { @for i in &t.top_images { li { code { (i.image) } " (" (i.requests) ")" } } }
                p class="note" {
                    "Time saved: pull strings delivered × " (r.manual_minutes_per_request)
                    " minutes of the manual path, less people's decisions × " (r.approver_minutes_per_decision) " minutes."
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(12 * 60 + 5), "12m");
        assert_eq!(duration(2 * 3600 + 5 * 60), "2h 05m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600), "3d 4h");
    }

    #[test]
    fn axes_step_by_whole_round_numbers() {
        assert_eq!(scale(0.0), (1.0, 1));
        assert_eq!(scale(2.0), (2.0, 2));
        assert_eq!(scale(7.0), (8.0, 4));
        assert_eq!(scale(23.0), (30.0, 3));
        assert_eq!(scale(2500.0), (3000.0, 3));
        assert_eq!(scale(7200.0), (8000.0, 4));
    }
}
