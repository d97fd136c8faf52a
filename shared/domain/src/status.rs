//! The request status machine: the one place where transitions are defined.
//!
//! Stores persist what [`Status::apply`] returns, under a condition on the previous
//! status and version; no other code decides what status comes next.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Names come from one table: serde, `Display`, `FromStr` and `as_str` all use the
/// variant in snake case, and every list of statuses is built from [`Status::ALL`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    Received,
    Validating,
    Rejected,
    AlreadyAvailable,
    PendingApproval,
    Approved,
    Denied,
    Expired,
    Cancelled,
    Provisioning,
    Provisioned,
    Failed,
}

/// What happened to a request; each is valid from some statuses only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::VariantArray)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Intake stored the request (no previous status).
    Submit,
    StartValidation,
    Reject,
    FoundAvailable,
    RequireApproval,
    /// Approved during validation, by a policy rule or a merged pull request: no person
    /// was asked, so it is valid only while the request is being validated.
    AutoApprove,
    /// A person's decision on a request waiting for one.
    Approve,
    Deny,
    Expire,
    Cancel,
    StartProvisioning,
    CompleteProvisioning,
    Fail,
    /// A removal's last steps: the repository is deleted (the statuses are an addition's).
    StartRemoval,
    CompleteRemoval,
    /// Someone else asked for the same image while this request was open: they watch it
    /// (told of its outcome) instead of starting a second one. The status stays.
    Join,
    /// Someone who asked (the requester or a watcher) rates what they got, once the
    /// request ended with a pull string; a later rating by the same person replaces theirs.
    RateUp,
    RateDown,
    /// The approvers were reminded of a request still waiting for them (by the sweep).
    /// The status stays, and so does the time it expires from.
    Remind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be {action}")]
pub struct Refused {
    pub from: Status,
    pub action: Action,
}

impl Status {
    pub const ALL: &'static [Status] = <Status as strum::VariantArray>::VARIANTS;

    pub fn apply(self, action: Action) -> Result<Status, Refused> {
        use Action as A;
        use Status as S;
        let next = match (self, action) {
            (S::Received, A::StartValidation) => S::Validating,
            (S::Validating, A::Reject) => S::Rejected,
            (S::Validating, A::FoundAvailable) => S::AlreadyAvailable,
            (S::Validating, A::RequireApproval) => S::PendingApproval,
            (S::Validating, A::AutoApprove) => S::Approved,
            (S::PendingApproval, A::Approve) => S::Approved,
            (S::PendingApproval, A::Deny) => S::Denied,
            (S::PendingApproval, A::Expire) => S::Expired,
            (S::PendingApproval, A::Cancel) => S::Cancelled,
            // `failed → provisioning` is an admin's retry.
            (S::Approved | S::Failed, A::StartProvisioning) => S::Provisioning,
            (S::Provisioning, A::CompleteProvisioning) => S::Provisioned,
            (S::Approved | S::Failed, A::StartRemoval) => S::Provisioning,
            (S::Provisioning, A::CompleteRemoval) => S::Provisioned,
            (S::Provisioning, A::Fail) => S::Failed,
            // Validation that kept failing until its message dead-lettered; an admin's retry
            // checks it again.
            (S::Validating, A::Fail) => S::Failed,
            (S::Failed, A::StartValidation) => S::Validating,
            (open, A::Join) if open.is_open() => open,
            (done @ (S::Provisioned | S::AlreadyAvailable), A::RateUp | A::RateDown) => done,
            (S::PendingApproval, A::Remind) => S::PendingApproval,
            (from, action) => return Err(Refused { from, action }),
        };
        Ok(next)
    }

    /// Nothing more happens to a request in a terminal status (but `failed` may be retried).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Rejected
                | Status::AlreadyAvailable
                | Status::Denied
                | Status::Expired
                | Status::Cancelled
                | Status::Provisioned
                | Status::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status in words for people (pages, notices): what it means, not its name.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Received => "received, not yet checked",
            Status::Validating => "being checked against the catalog and policy",
            Status::Rejected => "rejected by the checks",
            Status::AlreadyAvailable => "already in the registry",
            Status::PendingApproval => "waiting for a decision",
            Status::Approved => "approved, about to be added",
            Status::Denied => "denied",
            Status::Expired => "expired: nobody decided in time",
            Status::Cancelled => "cancelled",
            Status::Provisioning => "being added to the registry",
            Status::Provisioned => "added to the registry",
            Status::Failed => "failed while being added",
        }
    }

    /// Received to provisioning: one such request per image at a time (others join it).
    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }

    /// Statuses a request can still move on from, for "open" and "stuck" queries.
    pub fn open() -> impl Iterator<Item = Status> {
        Self::ALL.iter().copied().filter(|s| !s.is_terminal())
    }
}

impl Action {
    /// Whether the action is one a request of `kind` may take: an addition is provisioned
    /// (or found available), a removal is removed.
    pub fn fits(self, kind: crate::Kind) -> bool {
        use Action as A;
        match self {
            // A removal gives nobody a pull string to rate.
            A::FoundAvailable | A::StartProvisioning | A::CompleteProvisioning | A::RateUp | A::RateDown => {
                kind.is_add()
            }
            A::StartRemoval | A::CompleteRemoval => !kind.is_add(),
            _ => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Submit => "submitted",
            Action::StartValidation => "validation started",
            Action::Reject => "rejected",
            Action::FoundAvailable => "found already available",
            Action::RequireApproval => "sent for approval",
            Action::AutoApprove => "approved without asking",
            Action::Approve => "approved",
            Action::Deny => "denied",
            Action::Expire => "expired",
            Action::Cancel => "cancelled",
            Action::StartProvisioning => "provisioning started",
            Action::CompleteProvisioning => "provisioned",
            Action::Fail => "failed",
            Action::Join => "joined by another requester",
            Action::StartRemoval => "removal started",
            Action::CompleteRemoval => "removed",
            Action::RateUp => "rated up",
            Action::RateDown => "rated down",
            Action::Remind => "approvers reminded",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a status: one of {names}", names = Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))]
pub struct BadStatus(String);

impl FromStr for Status {
    type Err = BadStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| BadStatus(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use Status as S;

    const ACTIONS: &[Action] = <Action as strum::VariantArray>::VARIANTS;

    /// The designed transitions (README, "How a request moves"), written out as edges.
    const DESIGNED: [(Status, Status); 23] = [
        (S::Received, S::Validating),
        (S::Validating, S::Rejected),
        (S::Validating, S::AlreadyAvailable),
        (S::Validating, S::PendingApproval),
        (S::Validating, S::Approved),
        (S::PendingApproval, S::Approved),
        (S::PendingApproval, S::Denied),
        (S::PendingApproval, S::Expired),
        (S::PendingApproval, S::Cancelled),
        (S::Approved, S::Provisioning),
        (S::Provisioning, S::Provisioned),
        (S::Provisioning, S::Failed),
        (S::Failed, S::Provisioning),
        (S::Failed, S::Provisioning),
        // Checks that ran out of deliveries, and an admin's retry of them.
        (S::Validating, S::Failed),
        (S::Failed, S::Validating),
        // Ratings: an end stays an end.
        (S::Provisioned, S::Provisioned),
        (S::AlreadyAvailable, S::AlreadyAvailable),
        // Joins (and reminders, while it waits): an open request stays where it is.
        (S::Received, S::Received),
        (S::Validating, S::Validating),
        (S::PendingApproval, S::PendingApproval),
        (S::Approved, S::Approved),
        (S::Provisioning, S::Provisioning),
    ];

    #[test]
    fn machine_allows_exactly_the_designed_edges() {
        let mut edges = vec![];
        for &from in Status::ALL {
            for &a in ACTIONS {
                if let Ok(to) = from.apply(a) {
                    edges.push((from, to));
                }
            }
        }
        for e in DESIGNED {
            assert!(edges.contains(&e), "missing {e:?}");
        }
        for e in &edges {
            assert!(DESIGNED.contains(e), "undesigned {e:?}");
        }
    }

    #[test]
    fn decided_requests_refuse_a_second_decision() {
        for from in [S::Approved, S::Denied, S::Provisioned, S::Rejected] {
            assert_eq!(from.apply(A::Deny), Err(Refused { from, action: A::Deny }));
        }
        assert!(S::Denied.apply(A::Approve).is_err());
    }

    #[test]
    fn people_decide_pending_requests_and_policy_decides_only_in_validation() {
        assert_eq!(S::PendingApproval.apply(A::Approve), Ok(S::Approved));
        assert_eq!(S::Validating.apply(A::AutoApprove), Ok(S::Approved));
        for from in [S::Validating, S::Received, S::Approved] {
            assert_eq!(
                from.apply(A::Approve),
                Err(Refused {
                    from,
                    action: A::Approve
                })
            );
        }
        for from in [S::PendingApproval, S::Received] {
            assert!(from.apply(A::AutoApprove).is_err(), "{from}");
        }
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for &s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }
}
