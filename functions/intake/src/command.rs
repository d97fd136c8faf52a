//! `/request-image`'s grammar:
//!
//! ```text
//! /request-image <image>[:<tag>] [--env dev|staging|prod] <justification…>
//! /request-image search <word>
//! /request-image status <request id>
//! /request-image help
//! ```

use domain::{Environment, ImageRef, Justification, RequestId};

pub const USAGE: &str = "*Usage*\n\
• `/request-image <image>[:<tag>] [--env dev|staging|prod] <why you need it>` — ask for an image, e.g. `/request-image redis:7.4 --env dev Caching layer for sessions`\n\
• `/request-image search <word>` — catalog images matching a word\n\
• `/request-image status <request id>` — where a request stands\n\
• `/request-image help` — this text";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Search(String),
    Status(RequestId),
    Request {
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
                image,
                environment,
                justification,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
