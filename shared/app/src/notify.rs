//! The words of every message the pipeline sends: approval requests to admins, outcomes
//! to requesters, alerts to approvers. Adapters only deliver them.

use chrono::{DateTime, Utc};

use crate::ports::{Message, MessageKind};
use domain::{Request, Status};

/// Someone else's words, every line marked as a quotation: a justification cannot draw a
/// line of the message itself (a fake "Approve: https://…").
pub fn quoted(text: &str) -> String {
    text.lines().map(|l| format!("> {l}\n")).collect()
}

fn details(r: &Request) -> String {
    format!(
        "Request:       {}\nImage:         {}\nRequested by:  {}\nEnvironment:   {}\nChannel:       {}\nSubmitted:     {}\n\nThe requester's justification, as written:\n{}{}",
        r.id,
        r.image,
        r.requester,
        r.environment_shown(),
        r.channel,
        r.created_at.format("%Y-%m-%d %H:%M UTC"),
        quoted(r.justification.as_str()),
        also_asked_by(r),
    ) + &earlier_lines(r)
        + &r.capacity.map_or_else(String::new, |c| format!("\nRegistry:      {} (when checked)\n", c.describe()))
}

/// The org's repository count crossed the alert share, or reached the limit (with what
/// could be removed, oldest asked for first).
pub fn capacity_alert(
    r: &Request,
    approver: &str,
    c: domain::Capacity,
    cleanup: &[crate::capacity::Candidate],
) -> Message {
    let full = c.used >= c.limit;
    let mut text = format!(
        "{} ({}%) in the organization's registry.{}\n\nCounted while validating {} ({}).\n",
        c.describe(),
        c.percent(),
        if full {
            " It is at its limit: requests for new images are rejected until repositories are removed."
        } else {
            " At the limit, requests for new images are rejected."
        },
        r.image,
        r.id,
    );
    if !cleanup.is_empty() {
        text += "\nCould go first (nobody asked for them here, then the longest since asked):\n";
        for cand in cleanup {
            text += &match (&cand.last_requested, &cand.requester) {
                (Some(at), Some(who)) => format!("  {}  last asked {} by {}\n", cand.name, at.format("%Y-%m-%d"), who),
                _ => format!("  {}  never asked for through Image Request\n", cand.name),
            };
        }
    }
    text +=
        "\nThe whole list: cgr-request admin capacity\nRemove one: cgr-request remove IMAGE --justification \"…\"\n";
    Message {
        id: String::new(),
        kind: MessageKind::ApproverAlert,
        to: approver.to_string(),
        subject: format!(
            "Registry {}: {}",
            if full { "full" } else { "filling up" },
            c.describe()
        ),
        text,
        request_id: r.id,
        status: r.status(),
        channel: r.channel,
    }
}

/// For a removal: who asked for the image first, and the requests since.
pub fn earlier_lines(r: &Request) -> String {
    if r.earlier.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    if let Some(first) = r.first_asked() {
        out += &format!(
            "\nFirst asked for by {} on {} ({}, {}).",
            first.requester,
            first.at.format("%Y-%m-%d"),
            first.id,
            first.status
        );
    }
    out += &format!("\nRequests for it so far: {}", r.earlier.len());
    for e in &r.earlier {
        out += &format!(
            "\n  {}  {:<6}  {}  {}  ({})",
            e.at.format("%Y-%m-%d"),
            e.kind,
            e.requester,
            e.status,
            e.id
        );
    }
    out + "\n"
}

/// Everyone who joined the request, each with their own words.
pub fn also_asked_by(r: &Request) -> String {
    r.watchers
        .iter()
        .map(|w| {
            format!(
                "\nAlso asked by {} ({}, {}):\n{}",
                w.who,
                w.image,
                w.at.format("%Y-%m-%d %H:%M UTC"),
                quoted(w.justification.as_str())
            )
        })
        .collect()
}

/// One approver's email, with links that only this approver can use.
pub fn approval_request(
    r: &Request,
    approver: &str,
    approve_url: &str,
    deny_url: &str,
    expires: DateTime<Utc>,
) -> Message {
    let (verb, what) = match r.kind.is_add() {
        true => ("", "add"),
        false => ("remove ", "remove"),
    };
    let direction = if r.kind.is_add() { "to" } else { "from" };
    Message {
        id: String::new(),
        kind: MessageKind::ApprovalRequest,
        to: approver.to_string(),
        subject: format!("Approval needed: {verb}{} for {}", r.image, r.requester),
        text: format!(
            "{} asks to {what} {} {direction} the organization's registry.\n\nApprove: {approve_url}\nDeny:    {deny_url}\n\nEach link opens a confirmation page first; nothing changes until you confirm there.\nThese links are yours alone and expire at {}.\n\n{}",
            r.requester,
            r.image,
            expires.format("%Y-%m-%d %H:%M UTC"),
            details(r),
        ),
        request_id: r.id,
        status: r.status(),
        channel: r.channel,
    }
}

/// An approval request sent again to its approver after the request waited: the same
/// links (fresh, to the same expiry), a subject and a first line that say so.
pub fn reminder(mut m: Message, r: &Request, now: DateTime<Utc>) -> Message {
    m.subject = format!("Reminder: {}", m.subject);
    m.text = format!(
        "Still waiting for a decision, {} hours after it was sent for approval.\n\n{}",
        (now - r.updated_at).num_hours(),
        m.text
    );
    m
}

/// Where a person is told: their email address, or their principal.
fn address(who: &domain::Principal) -> String {
    who.email().map_or_else(|| who.to_string(), str::to_string)
}

/// Who decided, when, and why: what a requester wants to know of a decision.
pub fn decision_line(r: &Request) -> Option<String> {
    let d = r.decision.as_ref()?;
    let verdict = if d.approved { "Approved" } else { "Denied" };
    let why = d
        .reason
        .as_deref()
        .map_or(String::new(), |reason| format!(", saying:\n{}", quoted(reason)));
    Some(format!(
        "{verdict} by {} on {}{why}",
        d.by,
        d.at.format("%Y-%m-%d at %H:%M UTC")
    ))
}

/// A removal's news, for its requester and everyone who asked for the image before.
fn removal_outcome(r: &Request) -> (String, String) {
    let name = r.image.name();
    match r.status() {
        Status::Provisioned => (
            format!("Removed: {name}"),
            format!("{name} was removed from your organization's registry: pulls of it there stop working."),
        ),
        Status::Rejected => (
            format!("Not removed: {name}"),
            format!("{name} was not removed: {}", r.outcome.as_deref().unwrap_or("rejected")),
        ),
        Status::Denied => (
            format!("Removal denied: {name}"),
            format!("{name} stays in the registry."),
        ),
        Status::Expired => (
            format!("Removal expired: {name}"),
            format!("Nobody decided on removing {name} in time; ask again if it should still go."),
        ),
        Status::Failed => (
            format!("Removal failed: {name}"),
            format!(
                "{name} could not be removed: {}\nThe approvers have been told.",
                r.outcome.as_deref().unwrap_or("unknown error")
            ),
        ),
        other => (
            format!("Remove {name}: {other}"),
            format!("The removal of {name} is now {other}."),
        ),
    }
}

/// The requester's news once their request ends (or starts provisioning).
pub fn outcome(r: &Request) -> Message {
    let (subject, lead) = if !r.kind.is_add() {
        removal_outcome(r)
    } else {
        addition_outcome(r)
    };
    // The decision travels with every outcome: who approved or denied, when, and why.
    let lead = match decision_line(r) {
        Some(d) => format!("{lead}\n\n{d}"),
        None => lead,
    };
    Message {
        id: String::new(),
        kind: MessageKind::Outcome,
        to: address(&r.requester),
        subject,
        text: format!("{lead}\n\n{}", details(r)),
        request_id: r.id,
        status: r.status(),
        channel: r.channel,
    }
}

fn addition_outcome(r: &Request) -> (String, String) {
    match r.status() {
        Status::Provisioned => (
            format!("Ready: {}", r.image),
            format!(
                "{} is in your organization's registry. Pull it with:\n\n    docker pull {}\n\nTags: {}",
                r.image,
                r.result.as_ref().map_or("", |x| x.pull_string.as_str()),
                r.result.as_ref().map_or(String::new(), |x| x.tags.join(", ")),
            ),
        ),
        Status::AlreadyAvailable => (
            format!("Already available: {}", r.image),
            format!(
                "{} is already in your organization's registry:\n\n    docker pull {}",
                r.image,
                r.result.as_ref().map_or("", |x| x.pull_string.as_str())
            ),
        ),
        Status::Rejected => (
            format!("Not added: {}", r.image),
            format!(
                "{} was not added: {}{}",
                r.image,
                r.outcome.as_deref().unwrap_or("rejected"),
                if r.suggestions.is_empty() {
                    String::new()
                } else {
                    format!("\nDid you mean: {}?", r.suggestions.join(", "))
                }
            ),
        ),
        Status::Denied => (format!("Denied: {}", r.image), format!("{} was not added.", r.image)),
        Status::Expired => (
            format!("Expired: {}", r.image),
            format!(
                "Nobody decided on {} in time; submit it again if you still need it.",
                r.image
            ),
        ),
        Status::Failed => (
            format!("Failed: {}", r.image),
            format!(
                "{} could not be added: {}\nThe approvers have been told.",
                r.image,
                r.outcome.as_deref().unwrap_or("unknown error")
            ),
        ),
        other => (format!("{}: {other}", r.image), format!("{} is now {other}.", r.image)),
    }
}

/// The news of a removal for someone who asked for the image before: addressed to them.
pub fn removal_for_earlier(r: &Request, who: &domain::Principal) -> Message {
    let mut m = outcome(r);
    m.to = address(who);
    m.text = format!(
        "You asked for {} earlier; {} asked for it to be removed.\n\n{}",
        r.image.name(),
        r.requester,
        m.text
    );
    m
}

/// A watcher's news: the outcome as the requester hears it, addressed to the watcher,
/// with the pull string of the tag they asked for where the repo has it.
pub fn outcome_for_watcher(r: &Request, w: &domain::Watcher) -> Message {
    let mut m = outcome(r);
    m.to = address(&w.who);
    let yours = r
        .result
        .as_ref()
        .filter(|res| w.image.tag() != r.image.tag() && res.tags.iter().any(|t| t == w.image.tag()));
    let pull = match yours {
        Some(res) => format!(
            "\nFor the tag you asked for:\n\n    docker pull {}\n",
            res.pull_string
                .rsplit_once(':')
                .map_or(res.pull_string.clone(), |(repo, _)| format!("{repo}:{}", w.image.tag()))
        ),
        None => String::new(),
    };
    m.text = format!(
        "You asked for {} on {}, while {} had asked for it already: this is that request's news.\n{pull}\n{}",
        w.image,
        w.at.format("%Y-%m-%d %H:%M UTC"),
        r.requester,
        m.text
    );
    m
}

/// Tells an approver something needs a person (a provisioning that kept failing).
pub fn approver_alert(r: &Request, approver: &str, what: &str) -> Message {
    Message {
        id: String::new(),
        kind: MessageKind::ApproverAlert,
        to: approver.to_string(),
        subject: format!("Needs attention: {} ({})", r.image, r.status()),
        text: format!(
            "{what}\n\nRetry with: cgr-request admin retry {}\n\n{}",
            r.id,
            details(r)
        ),
        request_id: r.id,
        status: r.status(),
        channel: r.channel,
    }
}
