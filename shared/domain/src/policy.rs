//! Approval policy: configured rules that deny or auto-approve a request in validate.

use serde::{Deserialize, Serialize};

use super::{Environment, ImageRef, Principal};

/// Patterns are exact names, or use `*` for any run of characters (`*-fips`, `python*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Requests for these environments are approved without an admin.
    pub auto_approve_environments: Vec<Environment>,
    /// Images approved without an admin.
    pub auto_approve_images: Vec<String>,
    /// Requesters (principals such as `email:lead@example.com`, or `github:*`) approved without an admin.
    pub auto_approve_requesters: Vec<String>,
    /// Images never added; wins over every auto-approve rule.
    pub deny_images: Vec<String>,
    /// Images whose removal is approved without an admin. Empty by default: removals go
    /// to the approvers, and no other rule (environment, requester) approves one.
    pub auto_approve_removals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deny { rule: String },
    AutoApprove { rule: String },
    NeedsApproval,
}

impl Policy {
    pub fn evaluate(&self, image: &ImageRef, env: Option<Environment>, requester: &Principal) -> Verdict {
        if let Some(p) = self.deny_images.iter().find(|p| glob(p, image.name())) {
            return Verdict::Deny {
                rule: format!("deny_images: `{}` matches `{p}`", image.name()),
            };
        }
        if let Some(e) = env.filter(|e| self.auto_approve_environments.contains(e)) {
            return Verdict::AutoApprove {
                rule: format!("auto_approve_environments: {e}"),
            };
        }
        if let Some(p) = self.auto_approve_images.iter().find(|p| glob(p, image.name())) {
            return Verdict::AutoApprove {
                rule: format!("auto_approve_images: `{}` matches `{p}`", image.name()),
            };
        }
        let who = requester.to_string();
        if let Some(p) = self.auto_approve_requesters.iter().find(|p| glob(p, &who)) {
            return Verdict::AutoApprove {
                rule: format!("auto_approve_requesters: `{who}` matches `{p}`"),
            };
        }
        Verdict::NeedsApproval
    }
}

impl Policy {
    /// A removal: approved without an admin only through `auto_approve_removals`.
    pub fn evaluate_removal(&self, image: &ImageRef) -> Verdict {
        match self.auto_approve_removals.iter().find(|p| glob(p, image.name())) {
            Some(p) => Verdict::AutoApprove {
                rule: format!("auto_approve_removals: `{}` matches `{p}`", image.name()),
            },
            None => Verdict::NeedsApproval,
        }
    }
}

/// `*`-only wildcard match.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn dev() -> Principal {
        "email:dev@example.com".parse().unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob("*-fips", "python-fips"));
        assert!(!glob("*-fips", "python"));
        assert!(glob("py*on", "python"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("busybox", "busybox"));
    }

    #[test]
    fn deny_wins_over_auto_approve() {
        let p = Policy {
            auto_approve_environments: vec![Environment::Dev],
            deny_images: vec!["*-fips".into()],
            ..Policy::default()
        };
        assert!(matches!(
            p.evaluate(&img("go-fips"), Some(Environment::Dev), &dev()),
            Verdict::Deny { .. }
        ));
        assert!(matches!(
            p.evaluate(&img("go"), Some(Environment::Dev), &dev()),
            Verdict::AutoApprove { .. }
        ));
        assert_eq!(
            p.evaluate(&img("go"), Some(Environment::Prod), &dev()),
            Verdict::NeedsApproval
        );
    }

    #[test]
    fn requester_and_image_rules() {
        let p = Policy {
            auto_approve_images: vec!["busybox".into()],
            auto_approve_requesters: vec!["github:*".into()],
            ..Policy::default()
        };
        assert!(matches!(
            p.evaluate(&img("busybox"), None, &dev()),
            Verdict::AutoApprove { .. }
        ));
        assert!(matches!(
            p.evaluate(&img("nginx"), None, &"github:octo".parse().unwrap()),
            Verdict::AutoApprove { .. }
        ));
        assert_eq!(p.evaluate(&img("nginx"), None, &dev()), Verdict::NeedsApproval);
    }
}
