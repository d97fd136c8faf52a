//! Image references (`name[:tag]`) as the only form the rest of the code ever sees.
//!
//! The grammar is the OCI distribution one, narrowed: no registry host, no digest, no
//! uppercase. A parse error says which character or rule broke, so the requester can fix it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// OCI repositories are at most 255 characters including the host; we allow the name alone that much.
pub const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    name: String,
    tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty: give a name such as `busybox` or `python:3.12`")]
    Empty,
    #[error("image name is {0} characters long; at most {MAX_NAME_LEN} are allowed")]
    NameTooLong(usize),
    #[error(
        "character {0:?} (U+{1:04X}) at position {2} is not allowed: use lowercase letters, digits, `.`, `_` and `-`"
    )]
    BadChar(char, u32, usize),
    #[error("`{0}` is not a valid path component: each part between `/` must start and end with a lowercase letter or digit, with single `.`, `_`/`__` or dashes between")]
    BadComponent(String),
    #[error(
        "tag `{0}` is not valid: a tag is 1 to 128 of letters, digits, `_`, `.`, `-` and may not start with `.` or `-`"
    )]
    BadTag(String),
    #[error("`{given}` names a registry, a path or a digest: ask for `{ask}`, the catalog name (the org's registry is where it goes)")]
    Qualified { given: String, ask: String },
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, ImageRefError> {
        if input.is_empty() {
            return Err(ImageRefError::Empty);
        }
        // `cgr.dev/chainguard/busybox`, `docker.io/library/nginx:1.25`, `python@sha256:…`:
        // refused here, with the name to ask for, rather than accepted and rejected later.
        if input.contains('/') || input.contains('@') {
            let (before_digest, _) = input.split_once('@').unwrap_or((input, ""));
            let last = before_digest.rsplit('/').next().unwrap_or(before_digest);
            let ask: String = last.chars().take(MAX_NAME_LEN + 130).collect();
            return Err(ImageRefError::Qualified {
                given: input.chars().take(200).collect(),
                ask: if ask.is_empty() { "busybox".into() } else { ask },
            });
        }
        // Report the first non-ASCII or forbidden character before anything else: it is
        // the most useful message for look-alikes such as `ｂusybox` or `pуthon`.
        let mut in_tag = false;
        for (i, c) in input.chars().enumerate() {
            let ok = c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-' | ':')
                || c.is_ascii_lowercase()
                || (in_tag && c.is_ascii_uppercase());
            if !ok {
                return Err(ImageRefError::BadChar(c, c as u32, i + 1));
            }
            in_tag |= c == ':';
        }
        let (name, tag) = match input.split_once(':') {
            Some((n, t)) => (n, t),
            None => (input, DEFAULT_TAG),
        };
        if name.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ImageRefError::NameTooLong(name.len()));
        }
        for component in name.split('/') {
            if !valid_component(component) {
                return Err(ImageRefError::BadComponent(component.to_string()));
            }
        }
        if !valid_tag(tag) {
            return Err(ImageRefError::BadTag(tag.to_string()));
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl TryFrom<String> for ImageRef {
    type Error = ImageRefError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ImageRef::parse(&s)
    }
}

impl From<ImageRef> for String {
    fn from(i: ImageRef) -> String {
        i.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name_gets_latest() {
        let i = ImageRef::parse("busybox").unwrap();
        assert_eq!((i.name(), i.tag()), ("busybox", "latest"));
    }

    #[test]
    fn names_and_tags_parse() {
        let i = ImageRef::parse("openjdk-17_x:17.0.2-r1").unwrap();
        assert_eq!((i.name(), i.tag()), ("openjdk-17_x", "17.0.2-r1"));
        assert!(ImageRef::parse("python:3.12-DEV").is_ok(), "tags may hold uppercase");
    }

    #[test]
    fn registries_paths_and_digests_are_refused_with_the_name_to_ask_for() {
        for (given, ask) in [
            ("cgr.dev/chainguard/busybox", "busybox"),
            ("docker.io/library/nginx:1.25", "nginx:1.25"),
            ("localhost:5000/team/redis", "redis"),
            ("python@sha256:0123abcd", "python"),
            ("cgr.dev/chainguard/go@sha256:0123", "go"),
            ("jdk/openjdk-17", "openjdk-17"),
        ] {
            let err = ImageRef::parse(given).expect_err(given);
            assert_eq!(
                err,
                ImageRefError::Qualified {
                    given: given.into(),
                    ask: ask.into()
                }
            );
            assert!(err.to_string().contains(&format!("ask for `{ask}`")), "{err}");
        }
    }

    #[test]
    fn every_catalog_name_parses() {
        for name in include_str!("../data/chainguard-images.txt").lines() {
            ImageRef::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn grammar_breakers_are_refused_with_a_reason() {
        let long = "a".repeat(300);
        for (bad, why) in [
            ("", "empty"),
            ("../etc/passwd", "ask for `passwd`"),
            ("busybox/../../x", "ask for `x`"),
            ("BusyBox", "'B'"),
            ("busy box", "' '"),
            ("ｂusybox", "U+FF42"),
            ("pуthon", "U+0443"),
            (long.as_str(), "300 characters"),
            ("busybox:", "tag ``"),
            ("busybox:.hidden", "tag `.hidden`"),
            ("busybox@sha256:abc", "digest"),
            ("a//b", "ask for `b`"),
            ("a..b", "`a..b`"),
            ("-lead", "`-lead`"),
            ("a:b:c", "tag `b:c`"),
        ] {
            let err = ImageRef::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
