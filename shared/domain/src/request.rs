//! The request: what was asked, by whom, and everything that happened to it since.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audit::AuditEvent;
use super::{Action, ImageRef, Principal, Refused, RequestId, Status};

pub const MAX_JUSTIFICATION_CHARS: usize = 1000;
pub const MAX_REASON_CHARS: usize = 1000;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Why the image is needed: required, non-blank, bounded, free of control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Justification(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{0} is required and may not be blank")]
    Blank(&'static str),
    #[error("{0} is {1} characters long; at most {2} are allowed")]
    TooLong(&'static str, usize, usize),
    #[error("{0} contains a control character")]
    Control(&'static str),
    #[error("{what} contains {name} (U+{code:04X}) at position {at}, an invisible character that can make text read differently than it is: remove it")]
    Invisible {
        what: &'static str,
        name: &'static str,
        code: u32,
        at: usize,
    },
    #[error("{0} has nothing visible: write words")]
    NothingVisible(&'static str),
}

/// The invisible characters people most often meet by name; any other format character
/// (Unicode category Cf) is refused too, by code point.
fn invisible_name(c: char) -> &'static str {
    match c {
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{00AD}' => "SOFT HYPHEN",
        _ => "a format character",
    }
}

/// Trims, normalizes (NFC) and bounds free text that people write (justifications,
/// reasons), refusing what could make it read differently than it is: control characters
/// other than newline and tab, every invisible format character (bidi overrides and
/// isolates, zero-width characters: Unicode category Cf), and text with nothing visible.
pub fn clean_text(what: &'static str, s: &str, max: usize) -> Result<String, TextError> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};
    // HTML forms send every line break of a textarea as CRLF: a break, kept as LF. A lone
    // CR is still a control character, refused below.
    let t: String = s.replace("\r\n", "\n").trim().nfc().collect();
    if t.is_empty() {
        return Err(TextError::Blank(what));
    }
    let n = t.chars().count();
    if n > max {
        return Err(TextError::TooLong(what, n, max));
    }
    for (i, c) in t.chars().enumerate() {
        if c.general_category() == GeneralCategory::Format {
            return Err(TextError::Invisible {
                what,
                name: invisible_name(c),
                code: c as u32,
                at: i + 1,
            });
        }
        if c.is_control() && c != '\n' && c != '\t' {
            return Err(TextError::Control(what));
        }
    }
    let visible = |c: char| {
        matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter
                | GeneralCategoryGroup::Number
                | GeneralCategoryGroup::Punctuation
                | GeneralCategoryGroup::Symbol
        )
    };
    if !t.chars().any(visible) {
        return Err(TextError::NothingVisible(what));
    }
    Ok(t)
}

impl Justification {
    pub fn parse(s: &str) -> Result<Self, TextError> {
        clean_text("justification", s, MAX_JUSTIFICATION_CHARS).map(Justification)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Justification {
    type Error = TextError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Justification::parse(&s)
    }
}

impl From<Justification> for String {
    fn from(j: Justification) -> String {
        j.0
    }
}

impl fmt::Display for Justification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::Display, strum::VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Environment {
    Dev,
    Staging,
    Prod,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an environment: use dev, staging or prod")]
pub struct BadEnvironment(String);

impl Environment {
    /// Parses a name, with an error that says which names there are.
    pub fn parse(s: &str) -> Result<Self, BadEnvironment> {
        <Environment as strum::VariantArray>::VARIANTS
            .iter()
            .copied()
            .find(|e| e.to_string() == s)
            .ok_or_else(|| BadEnvironment(s.chars().take(40).collect()))
    }
}

impl std::str::FromStr for Environment {
    type Err = BadEnvironment;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::parse(s)
    }
}

/// Where a request or a decision came from. One table of names, as for [`Status`].
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
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Channel {
    Api,
    Cli,
    Form,
    Slack,
    PullRequest,
    /// An approval link from an email.
    Email,
    /// The pipeline itself (queues, policy).
    System,
}

/// What a request asks for: an image added to the organization's registry (what every
/// request asked before removals existed, so the default when a stored one says nothing),
/// or one removed from it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Kind {
    #[default]
    Add,
    Remove,
}

impl Kind {
    pub fn is_add(&self) -> bool {
        *self == Kind::Add
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub by: Principal,
    pub at: DateTime<Utc>,
    pub approved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub channel: Channel,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionResult {
    pub repo_id: String,
    pub pull_string: String,
    pub tags: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    /// `add` or `remove`.
    #[serde(default)]
    pub kind: Kind,
    pub image: ImageRef,
    pub requester: Principal,
    pub justification: Justification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Who vouched for the environment (a client allowed to claim it, a Slack channel or
    /// a repository mapped to it). Without one, the environment is the requester's claim:
    /// shown to approvers as such, and never counted by the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_vouched_by: Option<String>,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    // `status`, `version` and `audit_head` move only through `Request::apply`: readable
    // everywhere, writable only here.
    pub(crate) status: Status,
    /// Equals the sequence number of the request's last audit event.
    pub(crate) version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ProvisionResult>,
    /// Why the request ended where it did (rejection, failure), in words for the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
    /// Which check rejected it, where one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_for: Option<RejectReason>,
    /// The org's repositories when validation counted them (approvers see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// When the approvers were last reminded of it, while it waited for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded_at: Option<DateTime<Utc>>,
    /// Hash of the last audit event, so the next one can chain to it without a read.
    pub(crate) audit_head: String,
    /// Where a Slack command's answers go while Slack honours it. A capability: stored,
    /// never shown (see `Request::public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub response_url: Option<String>,
    /// The merged pull request that approved this request, where one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_approval: Option<PreApproval>,
    /// Others who asked for the same image while this request was open, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watchers: Vec<Watcher>,
    /// For a removal: the image's earlier requests, oldest first, as validation found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Earlier>,
}

/// Why a rating was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("only whoever asked for a request (its requester or someone who joined it) may rate it")]
    NotAsker,
    #[error("{0}; a request is rated once it ended with a pull string")]
    Refused(Refused),
}

/// How many repositories the org holds, against the most it may.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub used: u64,
    pub limit: u64,
}

impl Capacity {
    /// Percent used, rounded down.
    pub fn percent(self) -> u64 {
        (self.used * 100).checked_div(self.limit).unwrap_or(100)
    }

    /// `1,234 of 2,500 repositories used`.
    pub fn describe(self) -> String {
        format!(
            "{} of {} repositories used",
            thousands(self.used),
            thousands(self.limit)
        )
    }
}

/// `2500` as `2,500`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Why validation rejected a request, for reports (the reason in words is `outcome`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RejectReason {
    NotInCatalog,
    UnknownTag,
    DeniedByPolicy,
    /// The org's plan does not include the image.
    NotEntitled,
    OrgLimit,
    /// A removal of an image the org does not have.
    NotInOrg,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Someone who asked for the same image while the request was open, and was told of it
/// instead of starting another (`Action::Join`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watcher {
    pub who: Principal,
    /// What they asked for (the same image; the tag may differ).
    pub image: ImageRef,
    pub justification: Justification,
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

/// An earlier request for the same image, as a removal's approvers see it: who asked for
/// the image first, and what was asked since.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earlier {
    pub id: RequestId,
    pub kind: Kind,
    pub requester: Principal,
    pub status: Status,
    pub at: DateTime<Utc>,
}

/// The most earlier requests a removal keeps (the oldest, then the newest).
pub const MAX_EARLIER: usize = 20;

/// The most watchers one request keeps (a bound on its stored size).
pub const MAX_WATCHERS: usize = 50;

/// A request with its audit timeline and refused attempts: what `GET /requests/{id}`
/// answers, and what the CLI reads back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    #[serde(flatten)]
    pub request: Request,
    pub audit: Vec<AuditEvent>,
    #[serde(default)]
    pub refused_attempts: Vec<super::Refusal>,
}

impl RequestView {
    /// As API clients see it: without the Slack `response_url` (see [`Request::public`]).
    pub fn public(&self) -> serde_json::Value {
        without_response_url(serde_json::to_value(self).expect("requests serialise"))
    }
}

/// The Slack `response_url` is a capability: stored, never shown.
fn without_response_url(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("response_url");
    }
    v
}

/// A reviewed, merged pull request as an approval: which one, who merged it, at what commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PreApprovalFields", into = "PreApprovalFields")]
pub struct PreApproval {
    repository: String,
    pull_request: u64,
    merged_by: String,
    commit: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreApprovalFields {
    repository: String,
    pull_request: u64,
    merged_by: String,
    commit: String,
}

/// Why a pull request's fields do not describe a merged pull request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPreApproval {
    #[error("repository `{0}` is not owner/name")]
    Repository(String),
    #[error("pull_request must be the PR's number")]
    PullRequest,
    #[error("merged_by `{0}` is not a GitHub login")]
    MergedBy(String),
    #[error("commit `{0}` is not a commit SHA")]
    Commit(String),
}

impl TryFrom<PreApprovalFields> for PreApproval {
    type Error = BadPreApproval;
    fn try_from(f: PreApprovalFields) -> Result<Self, BadPreApproval> {
        PreApproval::new(&f.repository, f.pull_request, &f.merged_by, &f.commit)
    }
}

impl From<PreApproval> for PreApprovalFields {
    fn from(p: PreApproval) -> Self {
        PreApprovalFields {
            repository: p.repository,
            pull_request: p.pull_request,
            merged_by: p.merged_by,
            commit: p.commit,
        }
    }
}

impl PreApproval {
    /// The repository (`owner/name`) whose merged pull request approved the request.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `owner/name`, a PR number, a GitHub login and a commit SHA (7 to 40 hex).
    pub fn new(repository: &str, pull_request: u64, merged_by: &str, commit: &str) -> Result<Self, BadPreApproval> {
        let name_ok = |s: &str| {
            !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match repository.split_once('/') {
            Some((owner, name)) if name_ok(owner) && name_ok(name) => {}
            _ => return Err(BadPreApproval::Repository(repository.into())),
        }
        if pull_request == 0 {
            return Err(BadPreApproval::PullRequest);
        }
        if merged_by.is_empty()
            || merged_by.len() > 39
            || !merged_by.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(BadPreApproval::MergedBy(merged_by.into()));
        }
        if !(7..=40).contains(&commit.len()) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadPreApproval::Commit(commit.into()));
        }
        Ok(PreApproval {
            repository: repository.into(),
            pull_request,
            merged_by: merged_by.into(),
            commit: commit.to_ascii_lowercase(),
        })
    }

    pub fn merged_by(&self) -> Principal {
        Principal::Github(self.merged_by.to_ascii_lowercase())
    }

    /// What the audit trail says approved it.
    pub fn describe(&self) -> String {
        let short = &self.commit[..self.commit.len().min(12)];
        format!(
            "approved by merging {}#{} (commit {short})",
            self.repository, self.pull_request
        )
    }
}

impl Channel {
    /// The channels an API client may name for what it submits; the others (Slack, email
    /// links, the system) are set by the routes that receive them.
    pub const SUBMITTED_BY_CLIENTS: [Channel; 4] = [Channel::Api, Channel::Cli, Channel::Form, Channel::PullRequest];
}

/// Who did what, through which channel and why: the input of every transition.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub actor: Principal,
    pub channel: Channel,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A transition ready to commit: the new request and its audit event, conditional on the
/// request still being at `expected_status` / `expected_version`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub expected_status: Status,
    pub expected_version: u64,
    pub request: Request,
    pub event: AuditEvent,
}

fn environment_words(env: Option<Environment>, vouched_by: Option<&str>) -> String {
    match (env, vouched_by) {
        (None, _) => "any environment".into(),
        (Some(e), Some(who)) => format!("{e} (vouched for by {who})"),
        (Some(e), None) => format!("{e} (claimed, not verified)"),
    }
}

/// What a new request is made of, once every field has been parsed.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub kind: Kind,
    pub image: ImageRef,
    pub requester: Principal,
    pub justification: Justification,
    pub environment: Option<Environment>,
    /// See [`Request::environment_vouched_by`]; set by intake from its own configuration,
    /// never from the submission.
    pub environment_vouched_by: Option<String>,
    pub channel: Channel,
    pub idempotency_key: Option<String>,
}

impl Request {
    pub fn status(&self) -> Status {
        self.status
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn audit_head(&self) -> &str {
        &self.audit_head
    }

    /// The environment the policy may count: only one somebody vouched for.
    pub fn vouched_environment(&self) -> Option<Environment> {
        self.environment.filter(|_| self.environment_vouched_by.is_some())
    }

    /// The environment as approvers and auditors read it: with who vouched for it, or
    /// marked as the requester's unverified claim.
    pub fn environment_shown(&self) -> String {
        environment_words(self.environment, self.environment_vouched_by.as_deref())
    }

    /// A request as intake stores it, with its first audit event.
    pub fn submit(new: NewRequest, id: RequestId, at: DateTime<Utc>) -> (Request, AuditEvent) {
        let event = AuditEvent::first(
            id,
            new.kind,
            at,
            new.requester.clone(),
            new.channel,
            Some(format!(
                "{}{} for {}: {}",
                if new.kind.is_add() { "" } else { "remove " },
                new.image,
                environment_words(new.environment, new.environment_vouched_by.as_deref()),
                new.justification
            )),
        );
        let req = Request {
            id,
            kind: new.kind,
            image: new.image,
            requester: new.requester,
            justification: new.justification,
            environment: new.environment,
            environment_vouched_by: new.environment_vouched_by,
            channel: new.channel,
            idempotency_key: new.idempotency_key,
            status: Status::Received,
            version: event.seq,
            created_at: at,
            updated_at: at,
            decision: None,
            result: None,
            outcome: None,
            suggestions: vec![],
            rejected_for: None,
            capacity: None,
            reminded_at: None,
            audit_head: event.hash.clone(),
            response_url: None,
            pre_approval: None,
            watchers: vec![],
            earlier: vec![],
        };
        (req, event)
    }

    /// Where the request stands, in words for people, as its kind reads it.
    pub fn status_words(&self) -> &'static str {
        match (self.kind, self.status) {
            (Kind::Remove, Status::Approved) => "approved, about to be removed",
            (Kind::Remove, Status::Provisioning) => "being removed from the registry",
            (Kind::Remove, Status::Provisioned) => "removed from the registry",
            (Kind::Remove, Status::Failed) => "failed while being removed",
            (_, s) => s.describe(),
        }
    }

    /// Who asked for the image first: the oldest earlier addition that got it into the org.
    pub fn first_asked(&self) -> Option<&Earlier> {
        self.earlier
            .iter()
            .find(|e| e.kind.is_add() && matches!(e.status, Status::Provisioned | Status::AlreadyAvailable))
            .or_else(|| self.earlier.first())
    }

    /// Whether `who` asked for this request already (its requester or a watcher).
    pub fn asked_by(&self, who: &Principal) -> bool {
        self.requester == *who || self.watchers.iter().any(|w| w.who == *who)
    }

    /// The approvers are reminded of a request waiting for them: recorded, with `reminded_at`;
    /// `updated_at` (what expiry counts from) stays.
    pub fn remind(&self, by: Principal, at: DateTime<Utc>, reason: String) -> Result<Transition, Refused> {
        let change = Change {
            action: Action::Remind,
            actor: by,
            channel: Channel::System,
            reason: Some(reason),
            at,
        };
        let kept = self.updated_at;
        self.apply(change, |r| {
            r.reminded_at = Some(at);
            r.updated_at = kept;
        })
    }

    /// `who` rates the request: only those who asked for it may, once it ended with a pull
    /// string. `comment` is theirs, cleaned and bounded like a reason.
    pub fn rate(
        &self,
        who: &Principal,
        up: bool,
        comment: Option<String>,
        channel: Channel,
        at: DateTime<Utc>,
    ) -> Result<Transition, RateError> {
        if !self.asked_by(who) {
            return Err(RateError::NotAsker);
        }
        let change = Change {
            action: if up { Action::RateUp } else { Action::RateDown },
            actor: who.clone(),
            channel,
            reason: comment,
            at,
        };
        // A rating is not progress either: `updated_at` stays.
        let kept = self.updated_at;
        self.apply(change, |r| r.updated_at = kept).map_err(RateError::Refused)
    }

    /// The asker of `other` (a new request for the same image) joins this open request as
    /// a watcher: `None` when they asked for it already or it has [`MAX_WATCHERS`]
    /// (nothing changes), refused when it is no longer open.
    pub fn join(&self, other: &Request) -> Result<Option<Transition>, Refused> {
        let to = self.status.apply(Action::Join)?;
        debug_assert_eq!(to, self.status);
        if self.asked_by(&other.requester) || self.watchers.len() >= MAX_WATCHERS {
            return Ok(None);
        }
        let change = Change {
            action: Action::Join,
            actor: other.requester.clone(),
            channel: other.channel,
            reason: Some(format!(
                "{} for {}: {}",
                other.image,
                other.environment_shown(),
                other.justification
            )),
            at: other.created_at,
        };
        let watcher = Watcher {
            who: other.requester.clone(),
            image: other.image.clone(),
            justification: other.justification.clone(),
            channel: other.channel,
            at: other.created_at,
        };
        // A join is not progress: `updated_at` (what expiry and the sweep count from) stays.
        let kept = self.updated_at;
        self.apply(change, |r| {
            r.watchers.push(watcher);
            r.updated_at = kept;
        })
        .map(Some)
    }

    /// Applies a change through the status machine; `edit` fills in what the change
    /// brings (a decision, a result). Nothing is stored until the transition is committed.
    pub fn apply(&self, change: Change, edit: impl FnOnce(&mut Request)) -> Result<Transition, Refused> {
        if !change.action.fits(self.kind) {
            return Err(Refused {
                from: self.status,
                action: change.action,
            });
        }
        let to = self.status.apply(change.action)?;
        let event = AuditEvent::next(self, &change, to);
        let mut request = self.clone();
        request.status = to;
        request.version = event.seq;
        request.updated_at = change.at;
        request.audit_head = event.hash.clone();
        edit(&mut request);
        Ok(Transition {
            expected_status: self.status,
            expected_version: self.version,
            request,
            event,
        })
    }

    /// The request as API clients see it: everything but the Slack `response_url`.
    pub fn public(&self) -> serde_json::Value {
        without_response_url(serde_json::to_value(self).expect("requests serialise"))
    }

    /// `cgr.dev/<org>/<name>:<tag>`
    pub fn pull_string(org: &str, image: &ImageRef) -> String {
        format!("cgr.dev/{org}/{}:{}", image.name(), image.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forms_crlf_line_breaks_are_kept_as_lf_and_a_lone_cr_is_refused() {
        assert_eq!(clean_text("reason", "one\r\ntwo\r\n", 100).unwrap(), "one\ntwo");
        assert!(matches!(
            clean_text("reason", "one\rtwo", 100),
            Err(TextError::Control(_))
        ));
    }

    #[test]
    fn text_that_could_deceive_is_refused_by_name_and_position() {
        for (text, says) in [
            ("fine\u{202E}txt.exe", "RIGHT-TO-LEFT OVERRIDE (U+202E) at position 5"),
            (
                "ok \u{2066}hidden\u{2069}",
                "LEFT-TO-RIGHT ISOLATE (U+2066) at position 4",
            ),
            ("\u{200B}\u{2060}", "ZERO WIDTH SPACE (U+200B) at position 1"),
            ("a\u{FEFF}b", "ZERO WIDTH NO-BREAK SPACE (U+FEFF)"),
            ("tag\u{E0041}", "a format character (U+E0041)"),
            ("\u{0301}\u{0301}", "nothing visible"),
            ("bell\u{7}", "control character"),
            ("   ", "blank"),
        ] {
            let err = Justification::parse(text).expect_err(text).to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn text_is_normalized_and_keeps_its_lines() {
        // "é" as e + combining acute becomes the one precomposed character.
        let j = Justification::parse("caf\u{0065}\u{0301} build\nsecond line").unwrap();
        assert_eq!(j.as_str(), "caf\u{00E9} build\nsecond line");
        assert!(Justification::parse("Build images: 日本語 ✓").is_ok());
    }

    #[test]
    fn justification_is_trimmed_and_bounded() {
        assert_eq!(Justification::parse("  Debug shell ").unwrap().as_str(), "Debug shell");
        assert!(matches!(Justification::parse("   "), Err(TextError::Blank(_))));
        assert!(matches!(
            Justification::parse(&"x".repeat(1001)),
            Err(TextError::TooLong(_, 1001, 1000))
        ));
        assert!(matches!(Justification::parse("a\u{7}b"), Err(TextError::Control(_))));
    }

    #[test]
    fn environments_parse() {
        assert_eq!(Environment::parse("prod").unwrap(), Environment::Prod);
        let err = Environment::parse("production").unwrap_err().to_string();
        assert!(err.contains("use dev, staging or prod"), "{err}");
        for c in <Channel as strum::VariantArray>::VARIANTS {
            assert_eq!(c.to_string().parse::<Channel>().unwrap(), *c);
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{c}\""));
        }
    }
}
