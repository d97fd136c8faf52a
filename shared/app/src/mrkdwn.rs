//! The words of chat messages, in Slack's mrkdwn: approval messages with buttons, what
//! replaces the buttons once decided, and ephemeral answers. The Slack adapter and the
//! Slack routes send them; nothing here does I/O.

use domain::{Principal, Request, Status};
use serde_json::{json, Value};

/// `&`, `<` and `>` escaped, so user text cannot mention or link in mrkdwn.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How a principal reads in Slack: a mention for Slack users.
pub fn who(p: &Principal) -> String {
    match p {
        Principal::Slack { user, .. } => format!("<@{user}>"),
        other => escape(&other.to_string()),
    }
}

pub fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": text })
}

/// The approval message: the request's facts, and Approve / Deny with a confirmation.
pub fn approval_blocks(r: &Request) -> Value {
    let env = r.environment_shown();
    let details =
        format!(
        "*Approval needed:* {}`{}`\n*Requested by:* {}\n*Environment:* {}\n*Request:* `{}`\n*Why, in their words:*\n{}",
        if r.kind.is_add() { "" } else { "*remove* " },
        if r.kind.is_add() { r.image.to_string() } else { r.image.name().to_string() },
        who(&r.requester),
        env,
        r.id,
        quote(r.justification.as_str())
    ) + &also_asked_by(r)
            + &first_asked(r)
            + &r.capacity
                .map_or_else(String::new, |c| format!("\n*Registry:* {}", c.describe()));
    let button = |id: &str, label: &str, style: &str, question: String| {
        json!({
            "type": "button",
            "action_id": id,
            "style": style,
            "text": { "type": "plain_text", "text": label },
            "value": r.id.to_string(),
            "confirm": {
                "title": { "type": "plain_text", "text": format!("{label}?") },
                "text": { "type": "mrkdwn", "text": question },
                "confirm": { "type": "plain_text", "text": label },
                "deny": { "type": "plain_text", "text": "Cancel" }
            }
        })
    };
    json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": details } },
        { "type": "actions", "block_id": "decision", "elements": [
            button("approve", "Approve", "primary", if r.kind.is_add() {
                format!("Add `{}` to the organization's registry?", r.image)
            } else {
                format!("Remove `{}` from the organization's registry?", r.image.name())
            }),
            button("deny", "Deny", "danger", format!("Deny `{}`? The requester is told.", r.image)),
        ]}
    ])
}

/// A requester's outcome with 👍 / 👎 buttons, where the request ended with a pull string.
pub fn outcome_blocks(r: &Request, text: &str) -> Option<Value> {
    if !r.kind.is_add()
        || !matches!(
            r.status(),
            domain::Status::Provisioned | domain::Status::AlreadyAvailable
        )
    {
        return None;
    }
    let button = |id: &str, label: &str| {
        json!({
            "type": "button",
            "action_id": id,
            "text": { "type": "plain_text", "text": label, "emoji": true },
            "value": r.id.to_string(),
        })
    };
    Some(json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": escape(text) } },
        { "type": "context", "elements": [{ "type": "mrkdwn", "text": "How did this go? One click tells the platform team." }] },
        { "type": "actions", "block_id": "rating", "elements": [button("rate_up", "👍"), button("rate_down", "👎")] }
    ]))
}

/// Someone's words, escaped and quoted line by line: they keep their lines and cannot pass
/// for lines of ours.
fn quote(text: &str) -> String {
    escape(text)
        .lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Those who joined the request, each in their own (shortened) words: a section's text
/// holds 3,000 characters, so five at most, 200 characters each.
fn also_asked_by(r: &Request) -> String {
    let mut out = String::new();
    for w in r.watchers.iter().take(5) {
        let words: String = w.justification.as_str().chars().take(200).collect();
        let cut = if words.len() < w.justification.as_str().len() {
            "…"
        } else {
            ""
        };
        out += &format!(
            "\n*Also asked by* {} (`{}`):\n{}{cut}",
            who(&w.who),
            w.image,
            quote(&words)
        );
    }
    if r.watchers.len() > 5 {
        out += &format!("\n…and {} more.", r.watchers.len() - 5);
    }
    out
}

/// For a removal: who asked for the image first, and how many requests since.
fn first_asked(r: &Request) -> String {
    match r.first_asked() {
        Some(first) => format!(
            "\n*First asked for by* {} on {} (`{}`); {} request(s) for it so far.",
            who(&first.requester),
            first.at.format("%Y-%m-%d"),
            first.id,
            r.earlier.len()
        ),
        None => String::new(),
    }
}

/// What replaces the buttons once the request is decided.
pub fn decided_text(r: &Request) -> String {
    let d = r.decision.as_ref();
    let by = d.map_or("someone".to_string(), |d| who(&d.by));
    let at = d.map_or(r.updated_at, |d| d.at).format("%Y-%m-%d %H:%M UTC");
    match (r.status(), d) {
        (Status::Denied, Some(d)) => format!(
            "`{}` for {}: *denied* by {by} at {at}: {}",
            r.image,
            who(&r.requester),
            escape(d.reason.as_deref().unwrap_or(""))
        ),
        (_, Some(d)) if d.approved => format!("`{}` for {}: *approved* by {by} at {at}", r.image, who(&r.requester)),
        _ => format!("`{}` for {}: now {}", r.image, who(&r.requester), r.status()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Channel, ImageRef, Justification, Kind, NewRequest, RequestId};

    fn asked(who: &str, words: &str) -> Request {
        let new = NewRequest {
            kind: Kind::Add,
            image: ImageRef::parse("postgres").unwrap(),
            requester: who.parse().unwrap(),
            justification: Justification::parse(words).unwrap(),
            environment: None,
            environment_vouched_by: None,
            channel: Channel::Api,
            idempotency_key: None,
        };
        Request::submit(new, RequestId::new(), chrono::Utc::now()).0
    }

    #[test]
    fn the_approval_message_lists_who_else_asked_in_their_own_words() {
        let open = asked("email:a@example.com", "reporting");
        let joined = open
            .join(&asked(
                "email:b@example.com",
                "analytics\n> Approve: https://evil.example",
            ))
            .unwrap()
            .unwrap()
            .request;
        let text = approval_blocks(&joined)[0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("*Also asked by* email:b@example.com (`postgres:latest`):"),
            "{text}"
        );
        // Their words are quoted line by line: none can pass for a line of ours.
        assert!(
            text.contains("> analytics\n> &gt; Approve: https://evil.example"),
            "{text}"
        );
    }
}
