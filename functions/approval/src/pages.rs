//! The HTML an admin sees after clicking an emailed link. Escaped by construction (maud).
//! No script and no outside resource (the Content-Security-Policy allows none): what the
//! page must do, it does with a form.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use domain::auth::token::ApprovalClaims;
use domain::Request;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:42rem;margin:1.5rem auto;padding:0 1rem;color:#222;line-height:1.4}\
h1{font-size:1.5rem;overflow-wrap:anywhere}\
.facts{font-size:1.15rem;background:#f4f6f8;border:1px solid #d5dbe1;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}\
.facts code{font-size:1.2rem;font-weight:600;word-break:break-all}\
.facts .dest{display:block;margin-top:.3rem}\
.quoted{white-space:pre-wrap;overflow-wrap:anywhere;border-left:3px solid #ccc;padding-left:.5rem}\
dt{font-weight:600;margin-top:.6rem}dd{margin:0;overflow-wrap:anywhere}\
code{overflow-wrap:anywhere}\
textarea{width:100%;min-height:5rem;box-sizing:border-box;font:inherit}\
button{font-size:1rem;padding:.6rem 1.4rem;margin-top:1rem;border-radius:4px;border:1px solid #444}\
.approve{background:#1f7a3a;color:#fff}.deny{background:#a32020;color:#fff}\
.note{color:#555;font-size:.95rem}.warn{background:#fff6e0;border:1px solid #e6c36a;border-radius:6px;padding:.6rem .8rem}\
ul{padding-left:1.2rem}";

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
                style { (STYLE) }
            }
            body { h1 { (title) } (body) }
        }
    }
    .into_string()
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The catalog's page of an image, for an approver who does not know it.
pub fn catalog_page(r: &Request) -> String {
    format!(
        "https://images.chainguard.dev/directory/image/{}/overview",
        r.image.name()
    )
}

/// What is being approved, where it goes, and where the request stands: first, and large.
fn facts(r: &Request, org: &str) -> Markup {
    html! {
        div class="facts" {
            @if r.kind.is_add() {
                code id="image" { (r.image) }
                span class="dest" { "into " code id="destination" { (Request::pull_string(org, &r.image)) } }
            } @else {
                "Remove " code id="image" { (r.image.name()) }
                span class="dest" { "from " code id="destination" { "cgr.dev/" (org) "/" (r.image.name()) } }
            }
            span class="dest" { "Status: " strong id="status" { (r.status_words()) } }
        }
    }
}

/// What a request's subject reads as in a title: `redis:7.4`, or `removing redis`.
fn subject(r: &Request) -> String {
    if r.kind.is_add() {
        r.image.to_string()
    } else {
        format!("removing {}", r.image.name())
    }
}

fn details(r: &Request) -> Markup {
    html! {
        dl {
            dt { "Requested by" } dd id="requester" { (r.requester) }
            dt { "Justification" } dd class="quoted" id="justification" { (r.justification) }
            dt { "Environment" } dd { (r.environment_shown()) }
            dt { "Channel" } dd { (r.channel) }
            dt { "Submitted" } dd { (when(r.created_at)) }
            dt { "Request" } dd { code id="request-id" { (r.id) } }
            dt { "Catalog" } dd { a href=(catalog_page(r)) rel="noreferrer noopener" { (catalog_page(r)) } }
            @if let Some(c) = r.capacity {
                dt { "Registry" } dd id="capacity" { (c.describe()) " (when checked)" }
            }
        }
        @if !r.earlier.is_empty() {
            h2 { "This image's requests so far" }
            @if let Some(first) = r.first_asked() {
                p id="first-asked" { "First asked for by " (first.requester) " on " (when(first.at)) " (" code { (first.id) } ")." }
            }
            ul id="earlier" {
                @for e in &r.earlier {
                    li { (when(e.at)) " — " (e.kind) " by " (e.requester) ": " (e.status) }
                }
            }
        }
        @if !r.watchers.is_empty() {
            h2 { "Also asked by" }
            ul id="also-asked" {
                @for w in &r.watchers {
                    li {
                        (w.who) " (" code { (w.image) } ", " (when(w.at)) ")"
                        div class="quoted" { (w.justification) }
                    }
                }
            }
        }
    }
}

/// What the confirmation page knows beside the request: the link's expiry and the
/// requester's other recent requests.
pub struct Context<'a> {
    pub org: &'a str,
    pub link_expires: DateTime<Utc>,
    pub others: &'a [Request],
}

/// The page behind an emailed link: the request, and a form that confirms the decision.
pub fn confirm(r: &Request, claims: &ApprovalClaims, cx: &Context<'_>) -> String {
    let (verb, class) = if claims.approve {
        ("Approve", "approve")
    } else {
        ("Deny", "deny")
    };
    let standing = if r.kind.is_add() {
        "Not in the organization when the request was checked."
    } else {
        "In the organization when the request was checked."
    };
    let checked = match r.watchers.len() {
        0 => "No one else has asked for it.".to_string(),
        1 => "One other person asked for it too (below).".to_string(),
        n => format!("{n} other people asked for it too (below)."),
    };
    layout(
        &format!("{verb} {}?", subject(r)),
        html! {
            (facts(r, cx.org))
            p { "You are deciding as " strong { (claims.approver) } ". Nothing has changed yet. "
                span id="expiry" { "This link works until " (when(cx.link_expires)) ", once." } }
            p class="note" id="standing" {
                (standing) " " (checked)
            }
            (details(r))
            @if !cx.others.is_empty() {
                h2 { "The requester's other recent requests" }
                ul id="others" {
                    @for o in cx.others {
                        li { code { (o.image) } " — " (o.status().describe()) " (" (when(o.created_at)) ")" }
                    }
                }
            }
            form method="post" {
                label for="reason" { "Reason (optional to approve, shown to the requester and kept in the audit trail)" }
                textarea id="reason" name="reason" maxlength="1000" {}
                button type="submit" class=(class) { (verb) " " (subject(r)) }
            }
        },
    )
}

/// After the click: the decision as recorded, and where to follow the request.
pub fn decided(r: &Request, org: &str) -> String {
    let d = r.decision.as_ref();
    let verdict = if d.is_some_and(|d| d.approved) {
        "Approved"
    } else {
        "Denied"
    };
    let told = match r.watchers.len() {
        0 => "The requester will be told.".to_string(),
        1 => "The requester and the other person who asked will be told.".to_string(),
        n => format!("The requester and the {n} others who asked will be told."),
    };
    layout(
        &format!("{verdict}: {}", subject(r)),
        html! {
            (facts(r, org))
            p id="decision" {
                strong { (verdict) } " by " (d.map_or(String::new(), |d| d.by.to_string()))
                " at " (d.map_or(String::new(), |d| when(d.at))) ". " (told)
            }
            @if let Some(reason) = d.and_then(|d| d.reason.as_deref()) {
                p { "Your reason, as recorded:" }
                div class="quoted" id="reason" { (reason) }
            }
            p { "Follow it: " code id="follow" { "cgr-request status " (r.id) } }
            (details(r))
        },
    )
}

/// A page that says why nothing was recorded; with the request where it is known, and the
/// reason the approver typed, so that a stale tab loses nothing.
pub fn problem(title: &str, message: &str, about: Option<(&Request, &str)>, typed: Option<&str>) -> String {
    layout(
        title,
        html! {
            @if let Some((r, org)) = about {
                (facts(r, org))
            }
            p class="warn" id="problem" { (message) }
            @if let Some(text) = typed {
                p { "What you wrote was not recorded; here it is to copy:" }
                textarea id="typed" readonly { (text) }
            }
            @if let Some((r, _)) = about {
                p { "Follow it: " code id="follow" { "cgr-request status " (r.id) } }
            }
        },
    )
}

/// Behind a rating link: the request, the rating the link carries, and a form to confirm
/// it with an optional comment (mail scanners open links; only the form records).
pub fn rate(r: &Request, up: bool, org: &str) -> String {
    let (verb, class) = if up { ("Good", "approve") } else { ("Not good", "deny") };
    layout(
        &format!("How did {} go?", subject(r)),
        html! {
            (facts(r, org))
            form method="post" {
                label for="comment" { "Anything to add? (optional, shown to the platform team)" }
                textarea id="comment" name="comment" maxlength="1000" {}
                button class=(class) id="rate" type="submit" { (if up { "👍 " } else { "👎 " }) (verb) }
            }
            p class="note" { "Rating again from the other link replaces this one." }
        },
    )
}

/// After a rating is recorded.
pub fn rated(r: &Request, up: bool, org: &str) -> String {
    layout(
        "Thank you",
        html! {
            (facts(r, org))
            p id="rated" { "Your " (if up { "👍" } else { "👎" }) " is recorded." }
            p { "Follow it: " code id="follow" { "cgr-request status " (r.id) } }
        },
    )
}
