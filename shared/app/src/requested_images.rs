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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub images: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    #[serde(default)]
    pub justification: Option<String>,
    pub requested_by: String,
    #[serde(default)]
    pub environment: Option<String>,
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

/// Everything that can be checked without the API: YAML, fields, duplicates.
pub fn check_offline(text: &str) -> (Vec<Checked>, Vec<Problem>) {
    let file: File = match serde_yaml_ng::from_str(text) {
        Ok(f) => f,
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
    let lines = entry_lines(text);
    let mut problems = vec![];
    let mut checked = vec![];
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, entry) in file.images.into_iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
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
            if let Err(e) = env.parse::<Environment>() {
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
    fn the_key_depends_on_the_entry_and_the_commit_only() {
        let (c, _) = check_offline(GOOD);
        let k = idempotency_key(&c[0].entry, "abc1234");
        assert_eq!(k, idempotency_key(&c[0].entry, "abc1234"));
        assert_ne!(k, idempotency_key(&c[0].entry, "def5678"));
        assert_ne!(k, idempotency_key(&c[1].entry, "abc1234"));
        assert!(k.len() <= 64);
    }
}
