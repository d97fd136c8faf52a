//! What Slack sends us, read before anything acts on it: the `/request-image` slash
//! command's form and its text, and an approver's button click. Pure parsing, so that the
//! fuzz targets reach it without the functions' AWS clients.
//!
//! The command's grammar:
//!
//! ```text
//! /request-image <image>[:<tag>] [--env dev|staging|prod] <justification…>
//! /request-image search <word>
//! /request-image status <request id>
//! /request-image help
//! ```

use serde::Deserialize;

use domain::{Environment, ImageRef, Justification, Kind, Principal, RequestId};

pub const USAGE: &str = "*Usage*\n\
• `/request-image <image>[:<tag>] [--env dev|staging|prod] <why you need it>` — ask for an image, e.g. `/request-image redis:7.4 --env dev Caching layer for sessions`\n\
• `/request-image remove <image> <why it should go>` — ask for an image to be removed from the organization, e.g. `/request-image remove redis No service uses it since March`\n\
• `/request-image search <word>` — catalog images matching a word\n\
• `/request-image status <request id>` — where a request stands\n\
• `/request-image help` — this text";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Search(String),
    Status(RequestId),
    Request {
        kind: Kind,
        image: ImageRef,
        environment: Option<Environment>,
        justification: Justification,
    },
}

/// Parses the command's text; the error says what is wrong, to show above the usage.
pub fn parse(text: &str) -> Result<Command, String> {
    let text = text.trim();
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    match first {
        "" | "help" => Ok(Command::Help),
        "search" if rest.is_empty() => Err("`search` needs a word".into()),
        "search" => Ok(Command::Search(rest.to_string())),
        "status" => rest
            .parse()
            .map(Command::Status)
            .map_err(|e| format!("`status` needs a request id: {e}")),
        "remove" => {
            let (image, why) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if image.is_empty() {
                return Err("`remove` needs an image, then why it should go".into());
            }
            let image = ImageRef::parse(image).map_err(|e| e.to_string())?;
            if why.trim().is_empty() {
                return Err("say why it should go after the image".into());
            }
            Ok(Command::Request {
                kind: Kind::Remove,
                image,
                environment: None,
                justification: Justification::parse(why.trim()).map_err(|e| e.to_string())?,
            })
        }
        image => {
            let image = ImageRef::parse(image).map_err(|e| e.to_string())?;
            let (environment, rest) = match rest.strip_prefix("--env") {
                Some(after) => {
                    let after = after.strip_prefix('=').unwrap_or(after).trim_start();
                    let (env, rest) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
                    (
                        Some(env.parse::<Environment>().map_err(|e| e.to_string())?),
                        rest.trim(),
                    )
                }
                None => (None, rest),
            };
            if rest.is_empty() {
                return Err("say why you need it after the image".into());
            }
            let justification = Justification::parse(rest).map_err(|e| e.to_string())?;
            Ok(Command::Request {
                kind: Kind::Add,
                image,
                environment,
                justification,
            })
        }
    }
}

/// The fields of Slack's slash-command form that we use; Slack sends more, which are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlashCommand {
    pub team_id: String,
    pub user_id: String,
    pub channel_id: String,
    pub text: String,
    pub response_url: String,
    pub trigger_id: String,
    pub ssl_check: Option<String>,
}

impl SlashCommand {
    pub fn from_form(body: &[u8]) -> Option<SlashCommand> {
        serde_urlencoded::from_bytes(body).ok()
    }

    /// Who typed it: `slack:<team>/<user>`.
    pub fn requester(&self) -> Option<Principal> {
        format!("slack:{}/{}", self.team_id, self.user_id).parse().ok()
    }
}

/// What an interaction payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// Approve (`true`) or Deny clicked on a request's message.
    Decide(Click),
    /// 👍 (`approve` is `true`) or 👎 clicked on a requester's outcome message; `approver`
    /// is whoever clicked.
    Rate(Click),
    /// Any other interaction (another block, a modal, a shortcut): nothing to do.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub approve: bool,
    pub id: RequestId,
    /// `slack:<team>/<user>`.
    pub approver: Principal,
    /// The Slack user id, which the settings list as approvers.
    pub user_id: String,
    pub response_url: Option<String>,
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: User,
    #[serde(default)]
    team: Option<Team>,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct Team {
    id: String,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: String,
}

/// Reads `POST /slack/interactions`' form (`payload=<JSON>`); the error is what to answer.
pub fn interaction(body: &[u8]) -> Result<Interaction, &'static str> {
    let p = serde_urlencoded::from_bytes::<InteractionForm>(body)
        .ok()
        .and_then(|f| serde_json::from_str::<Payload>(&f.payload).ok())
        .ok_or("not a Slack interaction payload")?;
    let Some(action) = p.actions.first().filter(|_| p.kind == "block_actions") else {
        return Ok(Interaction::Ignored);
    };
    let (approve, rating) = match action.action_id.as_str() {
        "approve" => (true, false),
        "deny" => (false, false),
        "rate_up" => (true, true),
        "rate_down" => (false, true),
        _ => return Ok(Interaction::Ignored),
    };
    let id = action
        .value
        .parse::<RequestId>()
        .map_err(|_| "the button carries no request id")?;
    let team = p.team.map(|t| t.id).or(p.user.team_id).unwrap_or_default();
    let approver = format!("slack:{team}/{}", p.user.id)
        .parse::<Principal>()
        .map_err(|_| "Slack sent no usable team and user id")?;
    let click = Click {
        approve,
        id,
        approver,
        user_id: p.user.id,
        response_url: p.response_url,
    };
    Ok(if rating {
        Interaction::Rate(click)
    } else {
        Interaction::Decide(click)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(payload: serde_json::Value) -> Vec<u8> {
        serde_urlencoded::to_string([("payload", payload.to_string())])
            .unwrap()
            .into_bytes()
    }

    #[test]
    fn a_click_names_the_decision_the_request_and_who() {
        let id = "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2";
        let body = form(serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U1", "team_id": "T0"},
            "team": {"id": "T1"},
            "actions": [{"action_id": "deny", "value": id}],
            "response_url": "https://hooks.slack.com/actions/x",
        }));
        let Ok(Interaction::Decide(c)) = interaction(&body) else {
            panic!()
        };
        assert!(!c.approve);
        assert_eq!(c.id.to_string(), id);
        assert_eq!(c.approver.to_string(), "slack:T1/U1", "the team beats the user's team");
        assert_eq!(c.user_id, "U1");
        assert_eq!(c.response_url.as_deref(), Some("https://hooks.slack.com/actions/x"));
    }

    #[test]
    fn other_interactions_are_ignored_and_garbage_is_refused() {
        let other = form(serde_json::json!({"type": "view_submission", "user": {"id": "U1"}}));
        assert_eq!(interaction(&other), Ok(Interaction::Ignored));
        let button = form(serde_json::json!({
            "type": "block_actions", "user": {"id": "U1"},
            "actions": [{"action_id": "snooze", "value": "x"}],
        }));
        assert_eq!(interaction(&button), Ok(Interaction::Ignored));
        let no_id = form(serde_json::json!({
            "type": "block_actions", "user": {"id": "U1", "team_id": "T1"},
            "actions": [{"action_id": "approve", "value": "nope"}],
        }));
        assert_eq!(interaction(&no_id), Err("the button carries no request id"));
        assert_eq!(interaction(b"payload=%7B"), Err("not a Slack interaction payload"));
        assert_eq!(interaction(b"\xff"), Err("not a Slack interaction payload"));
    }

    #[test]
    fn a_slash_command_names_its_requester() {
        let c = SlashCommand::from_form(b"team_id=T1&user_id=U2&text=redis+because&trigger_id=t").unwrap();
        assert_eq!(c.requester().unwrap().to_string(), "slack:T1/U2");
        assert_eq!(c.text, "redis because");
        assert!(SlashCommand::from_form(b"team_id=T1").unwrap().requester().is_none());
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("search  python "), Ok(Command::Search("python".into())));
        assert!(matches!(
            parse("status req-01JD3XQ4Z8K9M2N5P7R8S0T1V2"),
            Ok(Command::Status(_))
        ));
        let Ok(Command::Request {
            kind: Kind::Add,
            image,
            environment,
            justification,
        }) = parse("redis:7.4 --env dev Caching layer for sessions")
        else {
            panic!()
        };
        assert_eq!(image.to_string(), "redis:7.4");
        assert_eq!(environment, Some(Environment::Dev));
        assert_eq!(justification.as_str(), "Caching layer for sessions");
        assert!(matches!(
            parse("busybox --env=prod debugging"),
            Ok(Command::Request {
                environment: Some(Environment::Prod),
                ..
            })
        ));
        assert!(matches!(
            parse("busybox debugging in staging"),
            Ok(Command::Request { environment: None, .. })
        ));
        let Ok(Command::Request {
            kind: Kind::Remove,
            image,
            justification,
            ..
        }) = parse("remove redis  No service uses it since March")
        else {
            panic!()
        };
        assert_eq!(
            (image.name(), justification.as_str()),
            ("redis", "No service uses it since March")
        );
        assert!(parse("remove").unwrap_err().contains("needs an image"));
        assert!(parse("remove redis").unwrap_err().contains("why it should go"));
    }

    #[test]
    fn malformed_commands_say_what_is_wrong() {
        assert!(parse("search").unwrap_err().contains("needs a word"));
        assert!(parse("status nope").unwrap_err().contains("request id"));
        assert!(parse("redis").unwrap_err().contains("why"));
        assert!(parse("redis --env moon because").unwrap_err().contains("moon"));
        assert!(parse("Redis!! because").is_err());
    }
}
