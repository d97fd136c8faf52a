//! How a request and a list of requests read in a terminal.

use domain::{Request, RequestView};

pub fn request(v: &RequestView) {
    let r = &v.request;
    let row = |k: &str, val: String| {
        if !val.is_empty() {
            println!("{k:<14}{val}");
        }
    };
    row("Request", r.id.to_string());
    row("Kind", r.kind.to_string());
    row("Image", r.image.to_string());
    row("Status", format!("{} ({})", r.status(), r.status_words()));
    row("Requested by", r.requester.to_string());
    row("Environment", r.environment.map(|e| e.to_string()).unwrap_or_default());
    row("Justification", r.justification.to_string());
    row("Outcome", r.outcome.clone().unwrap_or_default());
    row("Did you mean", r.suggestions.join(", "));
    if let Some(d) = &r.decision {
        let verdict = if d.approved { "approved" } else { "denied" };
        row(
            "Decision",
            format!("{verdict} by {} at {} via {}", d.by, d.at.to_rfc3339(), d.channel),
        );
        row("Reason", d.reason.clone().unwrap_or_default());
    }
    if !r.watchers.is_empty() {
        let who: Vec<String> = r.watchers.iter().map(|w| w.who.to_string()).collect();
        row("Also asked by", who.join(", "));
    }
    if let Some(first) = r.first_asked() {
        row(
            "First asked",
            format!(
                "by {} on {} ({})",
                first.requester,
                first.at.format("%Y-%m-%d"),
                first.id
            ),
        );
    }
    if let Some(res) = &r.result {
        row("Pull", res.pull_string.clone());
        row("Tags", res.tags.join(", "));
        row("Repo id", res.repo_id.clone());
    }
    println!("\nAudit timeline");
    // The same columns and words as `cgr-request audit`.
    cgr_request::audit::print_events(&v.audit);
}

pub fn pending(list: &[Request]) {
    if list.is_empty() {
        println!("nothing pending");
        return;
    }
    let rows = list.iter().map(|r| {
        vec![
            r.id.to_string(),
            r.image.to_string(),
            r.requester.to_string(),
            r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.justification.to_string(),
        ]
    });
    println!(
        "{}",
        cgr_request::audit::table(
            &["REQUEST", "IMAGE", "REQUESTED BY", "SUBMITTED", "JUSTIFICATION"],
            rows
        )
    );
}
