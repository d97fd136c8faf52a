//! `requested-images.yaml`, the pull-request flow's file, read and checked without the
//! API: YAML, fields, duplicates, each problem on its line. The CLI's `validate-file` and
//! `submit-file` check the catalog and submit; this is what they read first, and what the
//! fuzz target reaches.
//!
//! ```yaml
//! images:
//!   - name: redis:7.4
//!     justification: Caching layer for sessions
//!     requestedBy: alice            # a GitHub login, an email address, or kind:value
//!     environment: staging          # optional: dev, staging or prod
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use domain::{Environment, ImageRef, Justification, Principal};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    #[serde(default)]
    pub justification: Option<String>,
    pub requested_by: String,
    #[serde(default)]
    pub environment: Option<String>,
    /// `remove: true`: the image is to be removed from the organization, not added.
    /// Left out of the idempotency key when false, so existing keys stay what they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
}

/// One problem, on one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl Problem {
    /// The form GitHub Actions turns into an annotation on the PR's diff.
    pub fn annotation(&self, file: &str) -> String {
        let escape = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
        format!("::error file={file},line={}::{}", self.line, escape(&self.message))
    }
}

/// A checked entry, ready to submit.
#[derive(Debug, Clone)]
pub struct Checked {
    pub line: usize,
    pub entry: Entry,
    pub image: ImageRef,
    pub requester: Principal,
}

/// `alice` → `github:alice`; `a@b.c` → `email:a@b.c`; `kind:value` as it is.
pub fn requester(s: &str) -> Result<Principal, String> {
    let s = s.trim();
    let full = if s.contains(':') {
        s.to_string()
    } else if s.contains('@') {
        format!("email:{s}")
    } else {
        format!("github:{s}")
    };
    full.parse().map_err(|e| format!("{e}"))
}

/// The line of each list item under `images:` (1-based), for annotations.
fn entry_lines(text: &str) -> Vec<usize> {
    let mut indent = None;
    let mut lines = vec![];
    let mut in_images = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("images:") {
            in_images = true;
            continue;
        }
        if !in_images || !trimmed.starts_with("- ") {
            continue;
        }
        let here = line.len() - trimmed.len();
        if *indent.get_or_insert(here) == here {
            lines.push(i + 1);
        }
    }
    lines
}

/// The keys an entry may have.
const ENTRY_KEYS: [&str; 5] = ["name", "justification", "requestedBy", "environment", "remove"];

/// The line (1-based) of `key:` within lines `from..to` of the file, where it is written
/// in block style; else `fallback`.
fn key_line(text: &str, key: &str, from: usize, to: usize, fallback: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .take(to.saturating_sub(from.saturating_sub(1)))
        .find(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ");
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(fallback, |(i, _)| i + 1)
}

/// Reads one entry's fields, reporting every problem of its shape (unknown keys, missing
/// or non-text fields) rather than the first.
fn entry(text: &str, v: &serde_yaml_ng::Value, line: usize, end: usize, bad: &mut Vec<Problem>) -> Option<Entry> {
    let Some(map) = v.as_mapping() else {
        bad.push(Problem {
            line,
            message: "each entry is a mapping with name, justification and requestedBy".into(),
        });
        return None;
    };
    let mut unreadable = false;
    let mut field = |key: &str, required: bool| -> Option<String> {
        match map.get(key) {
            None | Some(serde_yaml_ng::Value::Null) if required => {
                bad.push(Problem {
                    line,
                    message: format!("missing `{key}`"),
                });
                None
            }
            None | Some(serde_yaml_ng::Value::Null) => None,
            Some(serde_yaml_ng::Value::String(s)) => Some(s.clone()),
            Some(serde_yaml_ng::Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                unreadable = true;
                bad.push(Problem {
                    line: key_line(text, key, line, end, line),
                    message: format!("`{key}` must be text"),
                });
                None
            }
        }
    };
    let name = field("name", true);
    let justification = field("justification", false);
    let requested_by = field("requestedBy", true);
    let environment = field("environment", false);
    let remove = match map.get("remove") {
        None | Some(serde_yaml_ng::Value::Null) => false,
        Some(serde_yaml_ng::Value::Bool(b)) => *b,
        Some(_) => {
            unreadable = true;
            bad.push(Problem {
                line: key_line(text, "remove", line, end, line),
                message: "`remove` must be true or false".into(),
            });
            false
        }
    };
    for key in map.keys() {
        let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_string);
        if !ENTRY_KEYS.contains(&key.as_str()) {
            bad.push(Problem {
                line: key_line(text, &key, line, end, line),
                message: format!("unknown field `{key}`, expected one of {}", ENTRY_KEYS.join(", ")),
            });
        }
    }
    // An unknown key is reported and the rest still checked; without a name, a requester or
    // a readable field there is nothing more to check.
    if unreadable {
        return None;
    }
    Some(Entry {
        name: name?,
        justification,
        requested_by: requested_by?,
        environment,
        remove,
    })
}

/// Everything that can be checked without the API or any credential (a pull request from
/// a fork has none): YAML, the file's shape, every field's grammar, duplicates. Reports
/// every problem it finds, each on its line; only YAML that does not parse stops it.
pub fn check_offline(text: &str) -> (Vec<Checked>, Vec<Problem>) {
    // YAML also breaks lines at a lone CR, NEL, LS and PS; git and GitHub do not, so its
    // line numbers would point past the file (found by the fuzz target). Such a file is
    // refused, on the line git gives the character.
    let odd_break = text.char_indices().find_map(|(i, c)| {
        let name = match c {
            '\r' if !text[i + 1..].starts_with('\n') => "a carriage return (CR) without a line feed",
            '\u{85}' => "a next-line character (U+0085)",
            '\u{2028}' => "a line separator (U+2028)",
            '\u{2029}' => "a paragraph separator (U+2029)",
            _ => return None,
        };
        Some((i, name))
    });
    if let Some((i, name)) = odd_break {
        return (
            vec![],
            vec![Problem {
                line: text[..i].matches('\n').count() + 1,
                message: format!("{name}, which YAML reads as a line break: use LF (or CRLF) line endings only"),
            }],
        );
    }
    let doc: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            return (
                vec![],
                vec![Problem {
                    line,
                    message: format!("not a valid requested-images file: {e}"),
                }],
            );
        }
    };
    let mut problems = vec![];
    let images = match doc.as_mapping() {
        Some(top) => {
            for key in top.keys() {
                let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_string);
                if key != "images" {
                    problems.push(Problem {
                        line: key_line(text, &key, 1, usize::MAX, 1),
                        message: format!("unknown field `{key}`, expected `images`"),
                    });
                }
            }
            top.get("images")
        }
        None => None,
    };
    let Some(images) = images.and_then(|i| i.as_sequence()) else {
        problems.push(Problem {
            line: 1,
            message: "the file needs `images:`, a list of the images to ask for".into(),
        });
        return (vec![], problems);
    };
    let lines = entry_lines(text);
    let mut checked = vec![];
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, v) in images.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        let end = lines.get(i + 1).map_or(usize::MAX, |next| next - 1);
        let Some(entry) = entry(text, v, line, end, &mut problems) else {
            continue;
        };
        let mut bad = |message: String| problems.push(Problem { line, message });
        let image = match ImageRef::parse(&entry.name) {
            Ok(image) => image,
            Err(e) => {
                bad(e.to_string());
                continue;
            }
        };
        if let Some(first) = seen.insert(image.to_string(), line) {
            bad(format!("{image} is listed twice (first on line {first})"));
            continue;
        }
        match entry.justification.as_deref().map(str::trim) {
            None | Some("") => bad(format!("{image}: missing justification (approvers read it)")),
            Some(j) => {
                if let Err(e) = Justification::parse(j) {
                    bad(format!("{image}: {e}"));
                }
            }
        }
        if let Some(env) = &entry.environment {
            if entry.remove {
                bad(format!(
                    "{image}: a removal has no environment (leave out `environment`)"
                ));
            } else if let Err(e) = env.parse::<Environment>() {
                bad(format!("{image}: {e}"));
            }
        }
        match requester(&entry.requested_by) {
            Ok(requester) => checked.push(Checked {
                line,
                entry,
                image,
                requester,
            }),
            Err(e) => bad(format!("{image}: requestedBy: {e}")),
        }
    }
    checked.retain(|c| !problems.iter().any(|p| p.line == c.line));
    problems.sort_by_key(|p| p.line);
    (checked, problems)
}

/// Same entry, same commit, same key: re-running a merge workflow submits nothing twice.
pub fn idempotency_key(entry: &Entry, commit: &str) -> String {
    let canonical = serde_json::to_string(&(commit, entry)).expect("entries serialise");
    format!("pr-{}", &hex::encode(Sha256::digest(canonical.as_bytes()))[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_may_ask_for_a_removal_and_keeps_its_key_when_it_does_not() {
        let (checked, problems) = check_offline(
            "images:\n  - name: redis\n    justification: unused since March\n    requestedBy: alice\n    remove: true\n  - name: go\n    justification: builds\n    requestedBy: bob\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(checked[0].entry.remove && !checked[1].entry.remove);
        // An addition's key is what it was before `remove` existed.
        let add = Entry {
            name: "go".into(),
            justification: Some("builds".into()),
            requested_by: "bob".into(),
            environment: None,
            remove: false,
        };
        let canonical = serde_json::to_string(&("c0ffee", &add)).unwrap();
        assert!(!canonical.contains("remove"), "{canonical}");
        assert_ne!(
            idempotency_key(&add, "c0ffee"),
            idempotency_key(
                &Entry {
                    remove: true,
                    ..add.clone()
                },
                "c0ffee"
            )
        );
        let (_, problems) = check_offline(
            "images:\n  - name: redis\n    justification: x\n    requestedBy: a\n    remove: yes please\n  - name: go\n    justification: x\n    requestedBy: b\n    remove: true\n    environment: dev\n",
        );
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`remove` must be true or false",
                "go:latest: a removal has no environment (leave out `environment`)"
            ]
        );
    }

    const GOOD: &str = "# images this repo needs\nimages:\n  - name: redis:7.4\n    justification: Caching\n    requestedBy: alice\n  - name: python\n    justification: Data jobs\n    requestedBy: bob@example.com\n    environment: staging\n";

    #[test]
    fn a_good_file_checks_clean_with_entry_lines() {
        let (checked, problems) = check_offline(GOOD);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(checked.iter().map(|c| c.line).collect::<Vec<_>>(), [3, 6]);
        assert_eq!(checked[0].requester.to_string(), "github:alice");
        assert_eq!(checked[1].requester.to_string(), "email:bob@example.com");
    }

    #[test]
    fn each_problem_is_reported_on_its_line() {
        let bad = "images:\n  - name: redis\n    requestedBy: alice\n  - name: Redis!\n    justification: x\n    requestedBy: bob\n  - name: redis:latest\n    justification: again\n    requestedBy: carol\n  - name: go\n    justification: builds\n    requestedBy: dave\n    environment: moon\n";
        let (checked, problems) = check_offline(bad);
        assert!(checked.is_empty(), "{checked:?}");
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 4, 7, 10], "{problems:#?}");
        assert!(problems[0].message.contains("missing justification"));
        assert!(problems[2].message.contains("listed twice (first on line 2)"));
        assert!(problems[3].message.contains("moon"));
        assert_eq!(
            Problem {
                line: 4,
                message: "a\nb 100%".into()
            }
            .annotation("requested-images.yaml"),
            "::error file=requested-images.yaml,line=4::a%0Ab 100%25"
        );
    }

    #[test]
    fn bad_yaml_and_unknown_keys_point_at_their_line() {
        let (_, p) = check_offline("images:\n  - name: redis\n    justification: [unclosed\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].line >= 3 && p[0].message.contains("not a valid"), "{p:?}");
        let (_, p) =
            check_offline("images:\n  - name: redis\n    justification: x\n    requestedBy: a\n    colour: blue\n");
        assert!(p[0].message.contains("colour"), "{p:?}");
        assert_eq!(p[0].line, 5);
    }

    #[test]
    fn a_broken_file_reports_every_problem_on_its_line() {
        let broken = "images:\n  - name: redis\n    colour: blue\n  - justification: no name\n    requestedBy: bob\n  - name: go\n    justification: [a, list]\n    requestedBy: carol\n  - just a string\nextra: 1\n";
        let (checked, p) = check_offline(broken);
        assert!(checked.is_empty());
        let got: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, "missing `requestedBy`"),
                (
                    3,
                    "unknown field `colour`, expected one of name, justification, requestedBy, environment, remove"
                ),
                (4, "missing `name`"),
                (7, "`justification` must be text"),
                (9, "each entry is a mapping with name, justification and requestedBy"),
                (10, "unknown field `extra`, expected `images`"),
            ]
        );
        let (_, p) = check_offline("images: redis\n");
        assert!(p[0].message.contains("needs `images:`"), "{p:?}");
        // Line endings: CRLF reads as LF; a lone CR is refused on its line.
        let (checked, p) = check_offline(&GOOD.replace('\n', "\r\n"));
        assert_eq!((checked.len(), p.len()), (2, 0), "{p:?}");
        for (odd, says) in [('\r', "carriage return"), ('\u{2029}', "U+2029"), ('\u{85}', "U+0085")] {
            let (_, p) = check_offline(&format!("images:\n  - name: go{odd}    justification: x\n"));
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].line, 2);
            assert!(p[0].message.contains(says), "{p:?}");
        }
    }

    #[test]
    fn the_key_depends_on_the_entry_and_the_commit_only() {
        let (c, _) = check_offline(GOOD);
        let k = idempotency_key(&c[0].entry, "abc1234");
        assert_eq!(k, idempotency_key(&c[0].entry, "abc1234"));
        assert_ne!(k, idempotency_key(&c[0].entry, "def5678"));
        assert_ne!(k, idempotency_key(&c[1].entry, "abc1234"));
        assert!(k.len() <= 64);
    }
}
