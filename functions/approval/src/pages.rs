//! The HTML an admin sees after clicking an emailed link. Escaped by construction (maud).

use maud::{html, Markup, DOCTYPE};

use domain::auth::token::ApprovalClaims;
use domain::Request;

fn layout(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex";
                title { (title) " · Image Request" }
                style { "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}.quoted{white-space:pre-wrap;overflow-wrap:anywhere;border-left:3px solid #ccc;padding-left:.5rem}"
                        "dt{font-weight:600;margin-top:.6rem}dd{margin:0}textarea{width:100%;min-height:4rem}"
                        "button{font-size:1rem;padding:.5rem 1.2rem;margin-top:1rem;border-radius:4px;border:1px solid #444}"
                        ".approve{background:#1f7a3a;color:#fff}.deny{background:#a32020;color:#fff}" }
            }
            body { h1 { (title) } (body) }
        }
    }
    .into_string()
}

fn details(r: &Request) -> Markup {
    html! {
        dl {
            dt { "Image" } dd { code { (r.image) } }
            dt { "Requested by" } dd { (r.requester) }
            dt { "Justification" } dd class="quoted" { (r.justification) }
            dt { "Environment" } dd { (r.environment_shown()) }
            dt { "Channel" } dd { (r.channel) }
            dt { "Submitted" } dd { (r.created_at.format("%Y-%m-%d %H:%M UTC")) }
            dt { "Request" } dd { code { (r.id) } }
            dt { "Status" } dd { (r.status()) }
        }
    }
}

/// The page behind an emailed link: the request, and a form that confirms the decision.
pub fn confirm(r: &Request, claims: &ApprovalClaims) -> String {
    let (verb, class) = if claims.approve {
        ("Approve", "approve")
    } else {
        ("Deny", "deny")
    };
    layout(
        &format!("{verb} {}?", r.image),
        html! {
            p { "You are deciding as " strong { (claims.approver) } ". Nothing has changed yet." }
            (details(r))
            form method="post" {
                label for="reason" { "Reason (optional, shown to the requester and kept in the audit trail)" }
                textarea id="reason" name="reason" maxlength="1000" {}
                button type="submit" class=(class) { (verb) }
            }
        },
    )
}

pub fn decided(r: &Request) -> String {
    let verdict = if r.decision.as_ref().is_some_and(|d| d.approved) {
        "Approved"
    } else {
        "Denied"
    };
    layout(
        &format!("{verdict}: {}", r.image),
        html! {
            p { "Recorded. The requester will be told." }
            (details(r))
        },
    )
}

pub fn problem(title: &str, message: &str) -> String {
    layout(title, html! { p { (message) } })
}
