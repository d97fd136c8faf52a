//! The command line: every command, flag and its help.

use std::path::PathBuf;

use app::config::DEFAULT_DATA_DIR;
use cgr_request::audit::AuditArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cgr-request",
    version,
    about = "Ask for Chainguard images for your organization's registry, follow them, approve them."
)]
pub struct Cli {
    /// The Image Request API.
    #[arg(
        long,
        global = true,
        env = "CGR_REQUEST_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API client id (default: from the local credentials file).
    #[arg(long, global = true, env = "CGR_REQUEST_CLIENT")]
    pub client: Option<String>,
    /// API client secret (default: from the local credentials file).
    #[arg(long, global = true, env = "CGR_REQUEST_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Where the local server keeps its state, and where local credentials are read from.
    #[arg(long, global = true, env = "IMAGE_REQUEST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// One row per week (`report` only).
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rating {
    Up,
    Down,
}

/// `--wait [--timeout D]`, wherever a command can follow what it started to its end.
#[derive(Args, Clone, Copy)]
pub struct WaitArgs {
    /// Follow the request (or requests) until it ends.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (`90s`, `10m`, `1h30m`) and exit 4;
    /// without it, follow to the end.
    #[arg(long, value_parser = humantime::parse_duration, requires = "wait")]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the whole system locally: HTTP API, consumers, embedded state.
    ///
    /// Example: cgr-request serve --listen 127.0.0.1:8080
    Serve {
        /// Address to listen on (default 127.0.0.1:8080, or IMAGE_REQUEST_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Ask for an image.
    ///
    /// Example: cgr-request add python:3.12 --justification "Data pipeline" --env staging --wait
    Add {
        /// `name[:tag]`, e.g. `busybox` or `python:3.12`.
        image: String,
        /// Why you need it (required; approvers read it).
        #[arg(long, short = 'j')]
        justification: String,
        /// dev, staging or prod.
        #[arg(long)]
        env: Option<String>,
        /// Submitting again with the same key returns the same request (default: a fresh
        /// key per run, so a submission is never mistaken for a replay).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Ask for an image to be removed from the organization (approved like an addition).
    ///
    /// Example: cgr-request remove redis --justification "No service uses it since March" --wait
    Remove {
        /// The image's name, e.g. `redis`.
        image: String,
        /// Why it should go (required; approvers read it).
        #[arg(long, short = 'j')]
        justification: String,
        /// Submitting again with the same key returns the same request.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Show a request, its result and its audit timeline.
    ///
    /// Example: cgr-request status req-01JD3XQ4Z8K9M2N5P7R8S0T1V2 --wait --timeout 10m
    Status {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Rate a request that gave you a pull string: up or down, with an optional comment.
    /// Rating again replaces your earlier rating.
    ///
    /// Example: cgr-request rate req-01JD3XQ4Z8K9M2N5P7R8S0T1V2 up --comment "ready in minutes"
    Rate {
        id: String,
        #[arg(value_enum)]
        rating: Rating,
        /// What was good, or could be better (up to 1,000 characters).
        #[arg(long)]
        comment: Option<String>,
    },
    /// What the tool achieved, per ISO week and in total (admin client): requests and
    /// outcomes, approval and delivery times, approvers, top images, people who asked,
    /// satisfaction, time saved. README, "Measuring success", defines every figure.
    ///
    /// Example: cgr-request report --weeks 8
    /// Example: cgr-request report --since 2026-07-01 --until 2026-09-30 -o csv > q3.csv
    /// Example: cgr-request report --weeks 12 --html report.html
    Report {
        /// The last N ISO weeks, this one included (default 4).
        #[arg(long, conflicts_with = "since")]
        weeks: Option<u32>,
        /// The first day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// The last day, included (YYYY-MM-DD; default today).
        #[arg(long, requires = "since")]
        until: Option<String>,
        /// Also write the report as a self-contained HTML page with charts.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Admin commands (need an admin client).
    ///
    /// Example: cgr-request admin pending
    #[command(subcommand)]
    Admin(Admin),
    /// Look through the Chainguard catalog.
    ///
    /// Example: cgr-request catalog search python
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Check a requested-images.yaml (for a PR check): one GitHub annotation per problem,
    /// exit 1 when there is any.
    ///
    /// Without credentials (a pull request from a fork has none), or with --offline, it
    /// checks what needs no server: YAML, the file's shape, every field, duplicates. With a
    /// client (--client/--secret or CGR_REQUEST_CLIENT/CGR_REQUEST_SECRET, or the local
    /// credentials) it also asks the API about the catalog and the organization.
    ///
    /// Example: cgr-request validate-file requested-images.yaml --offline
    ValidateFile {
        file: PathBuf,
        /// Only the checks that need no server and no credentials.
        #[arg(long)]
        offline: bool,
    },
    /// Submit a requested-images.yaml (for the merge workflow): idempotent per entry and
    /// commit; with --pull-request and --merged-by, approved by the merge.
    ///
    /// Example: cgr-request submit-file requested-images.yaml --pull-request 42 --merged-by octocat --wait
    SubmitFile {
        file: PathBuf,
        /// The merge commit (default: GITHUB_SHA).
        #[arg(long, env = "GITHUB_SHA")]
        commit: String,
        /// `owner/name` (default: GITHUB_REPOSITORY).
        #[arg(long, env = "GITHUB_REPOSITORY")]
        repository: Option<String>,
        /// The merged PR's number.
        #[arg(long, requires = "merged_by")]
        pull_request: Option<u64>,
        /// Who merged it (a GitHub login): the approver on record.
        #[arg(long, requires = "pull_request")]
        merged_by: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print a shell's completion script for cgr-request.
    ///
    /// Example: cgr-request completions bash > ~/.local/share/bash-completion/completions/cgr-request
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the HTTP API's OpenAPI document, as generated from the code (what
    /// infra/openapi.json holds and GET /openapi.json serves).
    ///
    /// Example: cgr-request openapi > infra/openapi.json
    Openapi,
    /// Answer ops questions from the audit trail: DynamoDB when REQUESTS_TABLE and
    /// AUDIT_TABLE are set (with the usual AWS environment), else the local state.
    ///
    /// Example: cgr-request audit --status pending_approval
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        verify: Option<AuditCmd>,
        #[command(flatten)]
        args: AuditArgs,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Recompute a request's hash chain and check every event's seal with the audit keys;
    /// names the first broken event and exits 1.
    ///
    /// The keys come from --keys FILE (the audit-keys parameter's JSON), or
    /// IMAGE_REQUEST_AUDIT_KEYS (the same JSON), or the local credentials.json.
    ///
    /// With --all, every request with an event in a time range (a quarter's evidence run),
    /// then a summary.
    ///
    /// Example: cgr-request audit verify req-01JD3XQ4Z8K9M2N5P7R8S0T1V2 --keys audit-keys.json
    /// Example: cgr-request audit verify --all --since 2026-07-01 --until 2026-10-01 --keys audit-keys.json
    Verify {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every request touched from --since (to --until, default now).
        #[arg(long, requires = "since")]
        all: bool,
        /// From this time on (RFC 3339, or a date).
        #[arg(long)]
        since: Option<String>,
        /// Before this time (RFC 3339, or a date: the start of that day).
        #[arg(long)]
        until: Option<String>,
        /// The audit keys' JSON: `{"active": "a1", "keys": {"a1": "…"}}`.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum Admin {
    /// Requests waiting for a decision, oldest first.
    ///
    /// Example: cgr-request admin pending
    Pending,
    /// Approve a request waiting for a decision: it is provisioned next.
    ///
    /// Example: cgr-request admin approve req-01JD3XQ4Z8K9M2N5P7R8S0T1V2 --reason "fine for staging"
    Approve {
        id: String,
        /// Why, for the audit trail and the requester.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a request waiting for a decision; the requester is told why.
    ///
    /// Example: cgr-request admin deny req-01JD3XQ4Z8K9M2N5P7R8S0T1V2 --reason "use nginx from the org"
    Deny {
        id: String,
        /// Required: the requester reads it.
        #[arg(long)]
        reason: String,
    },
    /// Provision a failed request again.
    ///
    /// Example: cgr-request admin retry req-01JD3XQ4Z8K9M2N5P7R8S0T1V2
    Retry { id: String },
    /// The organization's repositories against its limit, and what could be removed:
    /// those nobody asked for through this tool first, then those asked for longest ago.
    ///
    /// Example: cgr-request admin capacity
    Capacity,
    /// Move a queue's dead letters back onto it, once their cause is fixed. Works on the
    /// queues themselves: SQS where `<QUEUE>_QUEUE_URL` and `<QUEUE>_DLQ_URL` name them
    /// (the stack's outputs), the local server's data folder otherwise.
    ///
    /// Example: cgr-request admin redrive provision
    Redrive { queue: RedriveQueue },
}

/// A work queue with dead letters.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedriveQueue {
    Validate,
    Provision,
    Notify,
}

impl From<RedriveQueue> for app::ports::QueueName {
    fn from(q: RedriveQueue) -> Self {
        match q {
            RedriveQueue::Validate => app::ports::QueueName::Validate,
            RedriveQueue::Provision => app::ports::QueueName::Provision,
            RedriveQueue::Notify => app::ports::QueueName::Notify,
        }
    }
}

#[derive(Subcommand)]
pub enum CatalogCmd {
    /// Catalog names matching a word, best first.
    ///
    /// Example: cgr-request catalog search python
    Search { word: String },
}
