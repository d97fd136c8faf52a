//! `cgr-request`: ask for Chainguard images, follow them, approve them, and run the local stack.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Value};

use app::config::{read_credentials, Settings, DEFAULT_DATA_DIR};
use cgr_request::audit::{self, AuditArgs};
use cgr_request::client::{url_encode, ApiClient, CallError};
use cgr_request::pr;
use cgr_request::server;

#[derive(Parser)]
#[command(
    name = "cgr-request",
    version,
    about = "Ask for Chainguard images for your organization's registry, follow them, approve them."
)]
struct Cli {
    /// The Image Request API.
    #[arg(
        long,
        global = true,
        env = "CGR_REQUEST_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API client id (default: from the local credentials file).
    #[arg(long, global = true, env = "CGR_REQUEST_CLIENT")]
    client: Option<String>,
    /// API client secret (default: from the local credentials file).
    #[arg(long, global = true, env = "CGR_REQUEST_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Where the local server keeps its state, and where local credentials are read from.
    #[arg(long, global = true, env = "IMAGE_REQUEST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system locally: HTTP API, consumers, embedded state.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080, or IMAGE_REQUEST_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Ask for an image.
    Add {
        /// `name[:tag]`, e.g. `busybox` or `python:3.12`.
        image: String,
        /// Why you need it (required; approvers read it).
        #[arg(long, short = 'j')]
        justification: String,
        /// dev, staging or prod.
        #[arg(long)]
        env: Option<String>,
        /// Submitting again with the same key returns the same request.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Follow the request until it ends.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Show a request, its result and its audit timeline.
    Status {
        id: String,
        /// Follow the request until it ends.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Admin commands (need an admin client).
    #[command(subcommand)]
    Admin(Admin),
    /// Look through the Chainguard catalog.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Check a requested-images.yaml (for a PR check): one GitHub annotation per problem,
    /// exit 1 when there is any.
    ValidateFile { file: PathBuf },
    /// Submit a requested-images.yaml (for the merge workflow): idempotent per entry and
    /// commit; with --pull-request and --merged-by, approved by the merge.
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
        /// Wait for every request to end and print the pull strings.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Answer ops questions from the audit trail: DynamoDB when REQUESTS_TABLE and
    /// AUDIT_TABLE are set (with the usual AWS environment), else the local state.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        verify: Option<AuditCmd>,
        #[command(flatten)]
        args: AuditArgs,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute a request's hash chain; names the first broken event and exits 1.
    Verify { id: String },
}

#[derive(Subcommand)]
enum Admin {
    /// Requests waiting for a decision, oldest first.
    Pending,
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Deny {
        id: String,
        /// Required: the requester reads it.
        #[arg(long)]
        reason: String,
    },
    /// Provision a failed request again.
    Retry { id: String },
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// Catalog names matching a word, best first.
    Search { word: String },
}

/// A request that ended badly exits with this code under `--wait`.
const EXIT_UNSUCCESSFUL: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    if let Command::Serve { listen } = cli.command {
        app::telemetry::init();
        let mut settings = Settings::load().map_err(|e| e.to_string())?;
        settings.data_dir = cli.data_dir.clone();
        if let Some(l) = listen {
            settings.listen = l;
        }
        let running = server::start(settings, server::Options::default()).await?;
        eprintln!(
            "Image Request is listening on http://{}\n  state:       {}\n  outbox:      {}\n  credentials: {}\nStop with Ctrl-C.",
            running.addr,
            running.app.settings.data_dir.join("image-request.db").display(),
            running.app.settings.data_dir.join("outbox").display(),
            app::config::credentials_path(&running.app.settings.data_dir).display(),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
            _ = running.wait() => return Err("the server stopped".into()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Audit { verify, args } = &cli.command {
        let stores = audit::open(&cli.data_dir).await?;
        if let Some(AuditCmd::Verify { id }) = verify {
            let verified = audit::verify(&stores, id).await?;
            match cli.output {
                Output::Json => println!("{:#}", json!(verified)),
                Output::Table => println!(
                    "{}: the audit chain holds ({} events, head {})",
                    verified.request_id, verified.events, verified.head
                ),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let report = audit::query(&stores, args, chrono::Utc::now()).await?;
        match cli.output {
            Output::Json => println!("{:#}", json!(report)),
            Output::Table => audit::print(&report),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let admin = matches!(cli.command, Command::Admin(_));
    let api = client_for(&cli, admin)?;
    let out = cli.output;
    match cli.command {
        Command::Serve { .. } | Command::Audit { .. } => unreachable!("handled above"),
        Command::ValidateFile { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let (checked, problems) = pr::validate(&api, &text).await?;
            let shown = file.display().to_string();
            for p in &problems {
                println!("{}", p.annotation(&shown));
            }
            if !problems.is_empty() {
                eprintln!("{shown}: {} problem(s)", problems.len());
                return Ok(ExitCode::FAILURE);
            }
            println!("{shown}: {} image(s) OK", checked.len());
        }
        Command::SubmitFile {
            file,
            commit,
            repository,
            pull_request,
            merged_by,
            wait,
            timeout_secs,
        } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let (checked, problems) = pr::check_offline(&text);
            if !problems.is_empty() {
                for p in &problems {
                    println!("{}", p.annotation(&file.display().to_string()));
                }
                return Ok(ExitCode::FAILURE);
            }
            let merge = match (pull_request, merged_by) {
                (Some(pull_request), Some(merged_by)) => Some(pr::Merge {
                    repository: repository
                        .ok_or("--repository (or GITHUB_REPOSITORY) is needed with --pull-request")?,
                    pull_request,
                    merged_by,
                    commit: commit.clone(),
                }),
                _ => None,
            };
            let submitted = pr::submit(&api, &checked, &commit, merge.as_ref()).await?;
            for (c, id, status, new) in &submitted {
                let note = if *new { "" } else { "  (already submitted)" };
                match out {
                    Output::Table => println!("{id}  {}  {status}{note}", c.image),
                    Output::Json => {}
                }
            }
            if out == Output::Json && !wait {
                let list: Vec<Value> = submitted
                    .iter()
                    .map(|(c, id, status, new)| json!({"image": c.image.to_string(), "id": id, "status": status, "new": new}))
                    .collect();
                println!("{:#}", json!({ "requests": list }));
            }
            if wait {
                let mut all_ok = true;
                let mut results = vec![];
                for (c, id, _, _) in &submitted {
                    let v = wait_until_done(&api, id, timeout_secs).await?;
                    let status = v["status"].as_str().unwrap_or("").to_string();
                    let ok = matches!(status.as_str(), "provisioned" | "already_available");
                    all_ok &= ok;
                    if out == Output::Table {
                        match v["result"]["pull_string"].as_str() {
                            Some(pull) if ok => println!("{}  docker pull {pull}", c.image),
                            _ => println!("{}  {status}: {}", c.image, v["outcome"].as_str().unwrap_or("")),
                        }
                    }
                    results.push(v);
                }
                if out == Output::Json {
                    println!("{:#}", json!({ "requests": results }));
                }
                if !all_ok {
                    return Ok(ExitCode::from(EXIT_UNSUCCESSFUL));
                }
            }
        }
        Command::Add {
            image,
            justification,
            env,
            idempotency_key,
            wait,
            timeout_secs,
        } => {
            let mut body = json!({ "image": image, "justification": justification, "channel": "cli" });
            if let Some(e) = env {
                body["environment"] = json!(e);
            }
            let headers: Vec<(&str, &str)> = idempotency_key
                .as_deref()
                .map(|k| vec![("idempotency-key", k)])
                .unwrap_or_default();
            let (_, v) = api
                .call(Method::POST, "/requests", Some(&body), &headers)
                .await
                .map_err(explain)?;
            let id = v["id"].as_str().unwrap_or_default().to_string();
            match out {
                Output::Json if !wait => println!("{v:#}"),
                Output::Json => {}
                Output::Table => println!(
                    "{id}  {}  {}\nFollow it with: cgr-request status {id} --wait",
                    v["image"].as_str().unwrap_or(""),
                    v["status"].as_str().unwrap_or("")
                ),
            }
            if wait {
                return follow(&api, &id, timeout_secs, out).await;
            }
        }
        Command::Status { id, wait, timeout_secs } => {
            if wait {
                return follow(&api, &id, timeout_secs, out).await;
            }
            let v = get_request(&api, &id).await?;
            match out {
                Output::Json => println!("{v:#}"),
                Output::Table => print_request(&v),
            }
        }
        Command::Admin(cmd) => {
            let v = match cmd {
                Admin::Pending => {
                    api.call(Method::GET, "/requests?status=pending_approval", None, &[])
                        .await
                }
                Admin::Approve { id, reason } => {
                    let body = json!({ "decision": "approve", "reason": reason });
                    api.call(Method::POST, &format!("/requests/{id}/decision"), Some(&body), &[])
                        .await
                }
                Admin::Deny { id, reason } => {
                    let body = json!({ "decision": "deny", "reason": reason });
                    api.call(Method::POST, &format!("/requests/{id}/decision"), Some(&body), &[])
                        .await
                }
                Admin::Retry { id } => {
                    api.call(Method::POST, &format!("/requests/{id}/retry"), Some(&json!({})), &[])
                        .await
                }
            }
            .map_err(explain)?
            .1;
            match (out, v.get("requests")) {
                (Output::Json, _) => println!("{v:#}"),
                (Output::Table, Some(list)) => print_list(list),
                (Output::Table, None) => println!(
                    "{}  {}  {}",
                    v["id"].as_str().unwrap_or(""),
                    v["image"].as_str().unwrap_or(""),
                    v["status"].as_str().unwrap_or("")
                ),
            }
        }
        Command::Catalog(CatalogCmd::Search { word }) => {
            let q: String = url_encode(&word);
            let (_, v) = api
                .call(Method::GET, &format!("/catalog?q={q}"), None, &[])
                .await
                .map_err(explain)?;
            match out {
                Output::Json => println!("{v:#}"),
                Output::Table => {
                    let matches = v["matches"].as_array().cloned().unwrap_or_default();
                    if matches.is_empty() {
                        println!("no catalog image matches `{word}`");
                    }
                    for m in matches {
                        println!("{}", m.as_str().unwrap_or(""));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Credentials from flags or environment, else the local server's credentials file.
fn client_for(cli: &Cli, admin: bool) -> Result<ApiClient, String> {
    if let (Some(id), Some(secret)) = (&cli.client, &cli.secret) {
        return Ok(ApiClient::new(&cli.url, id, secret));
    }
    let creds = read_credentials(&cli.data_dir).map_err(|e| {
        format!("{e}\n  Give --client and --secret (or CGR_REQUEST_CLIENT / CGR_REQUEST_SECRET), or start the local server once with `cgr-request serve` to create local credentials.")
    })?;
    let chosen = match &cli.client {
        Some(id) => creds.clients.iter().find(|c| &c.id == id),
        None => creds.clients.iter().find(|c| c.admin == admin),
    };
    let c = chosen.ok_or_else(|| {
        format!(
            "no {} client in {}",
            if admin { "admin" } else { "non-admin" },
            cli.data_dir.display()
        )
    })?;
    Ok(ApiClient::new(&cli.url, &c.id, &c.secret))
}

fn explain(e: CallError) -> String {
    match &e {
        CallError::Api { status: 401, .. } => {
            format!("{e}\n  The server did not accept this client's signature: check --client/--secret and the clock.")
        }
        CallError::Api { status: 403, .. } => format!("{e}\n  Admin commands need an admin client."),
        _ => e.to_string(),
    }
}

async fn get_request(api: &ApiClient, id: &str) -> Result<Value, String> {
    api.call(Method::GET, &format!("/requests/{id}"), None, &[])
        .await
        .map(|(_, v)| v)
        .map_err(explain)
}

const TERMINAL: [&str; 7] = [
    "rejected",
    "already_available",
    "denied",
    "expired",
    "cancelled",
    "provisioned",
    "failed",
];

/// The request once it has ended (quietly; `follow` is the talkative one).
async fn wait_until_done(api: &ApiClient, id: &str, timeout_secs: u64) -> Result<Value, String> {
    let started = Instant::now();
    loop {
        let v = get_request(api, id).await?;
        if TERMINAL.contains(&v["status"].as_str().unwrap_or("")) {
            return Ok(v);
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            return Err(format!("{id} has not ended after {timeout_secs} s"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Prints each status change until the request ends; the exit code says how it ended.
async fn follow(api: &ApiClient, id: &str, timeout_secs: u64, out: Output) -> Result<ExitCode, String> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let v = get_request(api, id).await?;
        let status = v["status"].as_str().unwrap_or("").to_string();
        if status != last {
            if out == Output::Table {
                let note = if status == "pending_approval" {
                    "  (waiting for an approver)"
                } else {
                    ""
                };
                println!("{}  {id}  {status}{note}", chrono::Utc::now().format("%H:%M:%S"));
            }
            last = status.clone();
        }
        if TERMINAL.contains(&status.as_str()) {
            match out {
                Output::Json => println!("{v:#}"),
                Output::Table => print_request(&v),
            }
            let ok = matches!(status.as_str(), "provisioned" | "already_available");
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_UNSUCCESSFUL)
            });
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            return Err(format!(
                "{id} is still {status} after {timeout_secs} s; check again with `cgr-request status {id}`"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_request(v: &Value) {
    let row = |k: &str, val: String| {
        if !val.is_empty() {
            println!("{k:<14}{val}");
        }
    };
    row("Request", s(&v["id"]));
    row("Image", s(&v["image"]));
    row("Status", s(&v["status"]));
    row("Requested by", s(&v["requester"]));
    row("Environment", s(&v["environment"]));
    row("Justification", s(&v["justification"]));
    row("Outcome", s(&v["outcome"]));
    if let Some(sugg) = v["suggestions"].as_array() {
        row("Did you mean", sugg.iter().map(s).collect::<Vec<_>>().join(", "));
    }
    if let Some(d) = v.get("decision").filter(|d| !d.is_null()) {
        let verdict = if d["approved"].as_bool() == Some(true) {
            "approved"
        } else {
            "denied"
        };
        row(
            "Decision",
            format!(
                "{verdict} by {} at {} via {}",
                s(&d["by"]),
                s(&d["at"]),
                s(&d["channel"])
            ),
        );
    }
    if let Some(r) = v.get("result").filter(|r| !r.is_null()) {
        row("Pull", s(&r["pull_string"]));
        row(
            "Tags",
            r["tags"]
                .as_array()
                .map(|t| t.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        );
        row("Repo id", s(&r["repo_id"]));
    }
    if let Some(events) = v["audit"].as_array() {
        println!("\nAudit timeline");
        println!(
            "{:>3}  {:<24}  {:<34}  {:<24}  {:<36}  {:<8}  REASON",
            "#", "TIME", "ACTOR", "ACTION", "FROM -> TO", "CHANNEL"
        );
        for e in events {
            let from = if e["from"].is_null() { "-".into() } else { s(&e["from"]) };
            println!(
                "{:>3}  {:<24}  {:<34}  {:<24}  {:<36}  {:<8}  {}",
                s(&e["seq"]),
                s(&e["at"]),
                s(&e["actor"]),
                s(&e["action"]).replace('_', " "),
                format!("{from} -> {}", s(&e["to"])),
                s(&e["channel"]),
                s(&e["reason"])
            );
        }
    }
}

fn print_list(list: &Value) {
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("nothing pending");
        return;
    }
    println!(
        "{:<30}  {:<28}  {:<30}  {:<20}  JUSTIFICATION",
        "REQUEST", "IMAGE", "REQUESTED BY", "SUBMITTED"
    );
    for r in items {
        println!(
            "{:<30}  {:<28}  {:<30}  {:<20}  {}",
            s(&r["id"]),
            s(&r["image"]),
            s(&r["requester"]),
            s(&r["created_at"]).chars().take(19).collect::<String>(),
            s(&r["justification"])
        );
    }
}
