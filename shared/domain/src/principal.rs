//! Who acts: requesters, approvers and the services themselves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A person or system, written `kind:value`: `slack:<team>/<user>`, `email:<addr>`,
/// `github:<login>`, `iam:<arn>`, or `service:<name>` for the pipeline's own steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Principal {
    Slack { team: String, user: String },
    Email(String),
    Github(String),
    Iam(String),
    Service(String),
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("`{shown}` is not a principal: {why} (use slack:<team>/<user>, email:<addr>, github:<login> or iam:<arn>)")]
pub struct BadPrincipal {
    shown: String,
    why: &'static str,
}

impl Principal {
    pub fn service(name: &str) -> Self {
        Principal::Service(name.to_string())
    }

    /// The email address to write to, where the principal has one.
    pub fn email(&self) -> Option<&str> {
        match self {
            Principal::Email(a) => Some(a),
            _ => None,
        }
    }
}

fn is_slack_id(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.bytes().filter(|&b| b == b'@').count() == 1
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b',' | b';' | b'\\'))
}

fn is_github_login(s: &str) -> bool {
    (1..=39).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_arn(s: &str) -> bool {
    s.starts_with("arn:aws") && s.len() <= 2048 && s.split(':').count() >= 6 && s.bytes().all(|b| b.is_ascii_graphic())
}

impl FromStr for Principal {
    type Err = BadPrincipal;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadPrincipal {
            shown: s.chars().take(80).collect(),
            why,
        };
        let (kind, value) = s.split_once(':').ok_or_else(|| bad("no `kind:` prefix"))?;
        match kind {
            "slack" => {
                let (team, user) = value
                    .split_once('/')
                    .ok_or_else(|| bad("slack principals are <team>/<user>"))?;
                if is_slack_id(team) && is_slack_id(user) {
                    Ok(Principal::Slack {
                        team: team.into(),
                        user: user.into(),
                    })
                } else {
                    Err(bad("Slack team and user ids are uppercase letters and digits"))
                }
            }
            "email" if is_email(value) => Ok(Principal::Email(value.to_ascii_lowercase())),
            "email" => Err(bad("not an email address")),
            "github" if is_github_login(value) => Ok(Principal::Github(value.into())),
            "github" => Err(bad("not a GitHub login")),
            "iam" if is_arn(value) => Ok(Principal::Iam(value.into())),
            "iam" => Err(bad("not an AWS ARN")),
            "service" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') => {
                Ok(Principal::Service(value.into()))
            }
            _ => Err(bad("unknown kind")),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Slack { team, user } => write!(f, "slack:{team}/{user}"),
            Principal::Email(a) => write!(f, "email:{a}"),
            Principal::Github(l) => write!(f, "github:{l}"),
            Principal::Iam(a) => write!(f, "iam:{a}"),
            Principal::Service(n) => write!(f, "service:{n}"),
        }
    }
}

impl TryFrom<String> for Principal {
    type Error = BadPrincipal;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Principal> for String {
    fn from(p: Principal) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for s in [
            "slack:T0123/U0456",
            "email:dev@example.com",
            "github:octo-cat",
            "iam:arn:aws:iam::123456789012:role/ci",
            "service:validate",
        ] {
            assert_eq!(s.parse::<Principal>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_principals_are_refused() {
        for s in [
            "dev@example.com",
            "email:nobody",
            "email:a@b@c.com",
            "email:<x>@y.com",
            "slack:T1",
            "github:-x",
            "iam:nope",
            "root:me",
        ] {
            assert!(s.parse::<Principal>().is_err(), "{s}");
        }
    }
}
