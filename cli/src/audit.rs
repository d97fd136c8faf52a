//! `cgr-request audit`: the ops questions, answered straight from the stores (DynamoDB
//! when `REQUESTS_TABLE` and `AUDIT_TABLE` name the tables, the local SQLite otherwise),
//! each one Query on an index, never a Scan.

use anyhow::{anyhow, Context};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Args;
use serde::Serialize;

use app::ports::{AuditLog, AuditQuery, RequestQuery, RequestStore};
use aws_adapter::dynamo::DynamoStore;
use domain::auth::token::TokenKeys;
use domain::{verify_sealed, AuditEvent, Principal, Refusal, Request, RequestId, Status};
use embedded::sqlite::Sqlite;

#[derive(Debug, Clone, Default, Args)]
pub struct AuditArgs {
    /// One request's full timeline (and its refused attempts).
    #[arg(long, conflicts_with_all = ["approver", "stuck_for"])]
    pub request: Option<String>,
    /// Requests by this requester, newest first (`email:dev@example.com`, or just the address).
    #[arg(long)]
    pub requester: Option<String>,
    /// Every audit event this principal caused, newest first: an approver's decisions and
    /// retries, or a service's steps (`service:policy`, `service:provision`).
    #[arg(long, visible_alias = "actor", conflicts_with = "stuck_for")]
    pub approver: Option<String>,
    /// Requests for this image name, newest first.
    #[arg(long)]
    pub image: Option<String>,
    /// Additions or removals only (`add`, `remove`).
    #[arg(long)]
    pub kind: Option<domain::Kind>,
    /// Requests in this status (`pending_approval` lists oldest first).
    #[arg(long)]
    pub status: Option<String>,
    /// Non-terminal requests not updated for this long (`90m`, `6h`, `2d`), oldest first.
    #[arg(long)]
    pub stuck_for: Option<String>,
    /// From this time on (RFC 3339, or a date: `2026-11-28`).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339, or a date: the start of that day).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many rows (default 100, at most 1,000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// What an audit query found.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Timeline {
        request: Box<Request>,
        events: Vec<AuditEvent>,
        refused_attempts: Vec<Refusal>,
        /// Notices given up on (the NotificationsUndeliverable alarm's).
        undelivered: Vec<app::ports::Undelivered>,
    },
    Requests {
        requests: Vec<Request>,
    },
    Events {
        events: Vec<AuditEvent>,
    },
}

/// The stores the audit commands read.
#[derive(Clone)]
pub struct Stores {
    pub requests: Arc<dyn RequestStore>,
    pub audit: Arc<dyn AuditLog>,
    /// The write-once copy of the events, where there is one to compare with.
    pub archive: Option<Arc<dyn app::archive::Archive>>,
    /// Where they are, for messages.
    pub place: String,
}

/// DynamoDB where the environment names the tables (the AWS SDK's usual environment,
/// `AWS_ENDPOINT_URL` included), with the S3 archive where `AUDIT_ARCHIVE_BUCKET` names
/// it; otherwise the local server's database and archive folder.
pub async fn open(data_dir: &Path) -> anyhow::Result<Stores> {
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    if let (Some(requests), Some(audit)) = (env("REQUESTS_TABLE"), env("AUDIT_TABLE")) {
        let sdk = aws_adapter::sdk_config().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &requests, &audit);
        // The write-once archive the stack's archive function fills (output ArchiveBucketName).
        let archive = env("AUDIT_ARCHIVE_BUCKET").map(|bucket| {
            Arc::new(aws_adapter::s3::S3Archive::new(aws_sdk_s3::Client::new(&sdk), &bucket))
                as Arc<dyn app::archive::Archive>
        });
        return Ok(Stores {
            requests: Arc::new(store.clone()),
            audit: Arc::new(store),
            archive,
            place: format!("DynamoDB tables {requests} and {audit}"),
        });
    }
    let path = data_dir.join("image-request.db");
    if !path.exists() {
        return Err(anyhow!(
            "no local state at {}: start `cgr-request serve` there, or set REQUESTS_TABLE and AUDIT_TABLE to read DynamoDB",
            path.display()
        ));
    }
    let db = Sqlite::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Stores {
        requests: Arc::new(db.clone()),
        audit: Arc::new(db),
        archive: Some(Arc::new(embedded::archive::FolderArchive::new(
            data_dir.join(crate::server::ARCHIVE_DIR),
        ))),
        place: path.display().to_string(),
    })
}

fn principal(s: &str) -> anyhow::Result<Principal> {
    let s = if !s.contains(':') && s.contains('@') {
        format!("email:{s}")
    } else {
        s.to_string()
    };
    Ok(s.parse()?)
}

pub fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| anyhow!("`{s}` is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| Duration::from_std(d).ok())
        .ok_or_else(|| anyhow!("`{s}` is not a duration like 45s, 90m, 6h, 2d or 1h30m"))
}

/// Answers the question the arguments ask.
pub async fn query(stores: &Stores, a: &AuditArgs, now: DateTime<Utc>) -> anyhow::Result<Report> {
    let since = a.since.as_deref().map(parse_time).transpose()?;
    let until = a.until.as_deref().map(parse_time).transpose()?;
    if let Some(id) = &a.request {
        let id: RequestId = id.parse()?;
        let request = stores
            .requests
            .get(id)
            .await?
            .ok_or_else(|| anyhow!("no request {id} in {}", stores.place))?;
        return Ok(Report::Timeline {
            request: Box::new(request),
            events: stores.audit.timeline(id).await?,
            refused_attempts: stores.audit.refusals(id).await?,
            undelivered: stores.audit.undeliverable(id).await?,
        });
    }
    if let Some(who) = &a.approver {
        let events = stores
            .audit
            .query(&AuditQuery {
                actor: Some(principal(who)?),
                since,
                until,
                limit: a.limit,
            })
            .await?;
        return Ok(Report::Events { events });
    }
    let status: Option<Status> = a.status.as_deref().map(str::parse).transpose()?;
    let q = RequestQuery {
        status,
        requester: a.requester.as_deref().map(principal).transpose()?,
        image: a.image.clone(),
        kind: a.kind,
        decided_by: None,
        created_after: since,
        created_before: until,
        updated_before: a.stuck_for.as_deref().map(parse_duration).transpose()?.map(|d| now - d),
        limit: a.limit,
    };
    let requests = stores.requests.list(&q).await?;
    Ok(Report::Requests { requests })
}

/// The result of `audit verify`.
#[derive(Debug, Serialize)]
pub struct Verified {
    pub request_id: RequestId,
    pub events: usize,
    pub head: String,
    /// The archived events compared, where there is an archive.
    pub archived: Option<usize>,
}

/// The audit keys a verifier uses: from `file`, else `IMAGE_REQUEST_AUDIT_KEYS`, else the
/// local `credentials.json` in `data_dir`.
pub fn audit_keys(data_dir: &Path, file: Option<&Path>) -> anyhow::Result<TokenKeys> {
    let parse = |text: &str, from: &str| {
        app::config::credentials::secret_json::<TokenKeys>(text).map_err(|e| anyhow!("the audit keys in {from}: {e}"))
    };
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return parse(&text, &f.display().to_string());
    }
    if let Some(text) = std::env::var("IMAGE_REQUEST_AUDIT_KEYS").ok().filter(|t| !t.is_empty()) {
        return parse(&text, "IMAGE_REQUEST_AUDIT_KEYS");
    }
    app::config::credentials::read_credentials(data_dir)
        .ok()
        .and_then(|c| c.audit_keys)
        .ok_or_else(|| {
            anyhow!("verifying needs the audit keys: --keys FILE or IMAGE_REQUEST_AUDIT_KEYS (the audit-keys parameter's JSON), or a local credentials.json")
        })
}

/// Recomputes the request's hash chain, checks every event's seal with `keys`, and checks
/// that it ends where the request says its trail ends (so a trail cut short is caught
/// too). The error names the first bad event.
pub async fn verify(stores: &Stores, id: &str, keys: &TokenKeys) -> anyhow::Result<Verified> {
    let id: RequestId = id.parse()?;
    let request = stores
        .requests
        .get(id)
        .await?
        .ok_or_else(|| anyhow!("no request {id} in {}", stores.place))?;
    let events = stores.audit.timeline(id).await?;
    verify_sealed(&events, keys).map_err(|b| anyhow!("{b}"))?;
    let head = events.last().map(|e| e.hash.clone()).unwrap_or_default();
    if events.len() as u64 != request.version() || head != request.audit_head() {
        return Err(anyhow!(
            "audit chain broken at event {}: the request is at version {} with head {}, the trail has {} events ending in {}",
            events.len() + 1,
            request.version(),
            request.audit_head(),
            events.len(),
            if head.is_empty() { "nothing" } else { &head },
        ));
    }
    // Last, the write-once copy: what the table lost or had rewritten, the archive kept.
    let archived = match &stores.archive {
        None => None,
        Some(archive) => {
            // The archive follows the table by a moment (a stream batch, the local
            // archiver's poll): a last event not archived yet is looked for again.
            let mut tries = 0;
            loop {
                let copy = app::archive::archived(archive.as_ref(), id).await?;
                match app::archive::compare(&events, &copy) {
                    Ok(()) => break Some(copy.len()),
                    Err(b) if tries < 8 && b.seq > copy.len() as u64 && copy.len() < events.len() => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    Err(b) => return Err(anyhow!("{b}")),
                }
            }
        }
    };
    Ok(Verified {
        request_id: id,
        events: events.len(),
        head,
        archived,
    })
}

/// What `audit verify --all` found.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub checked: usize,
    pub broken: Vec<Broken>,
}

#[derive(Debug, Serialize)]
pub struct Broken {
    pub request_id: RequestId,
    pub problem: String,
}

/// Verifies every request with an event in `[since, until)`: an evidence run.
pub async fn verify_all(
    stores: &Stores,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    keys: &TokenKeys,
) -> anyhow::Result<Summary> {
    let ids = stores.audit.touched(since, until).await?;
    let mut broken = vec![];
    for id in &ids {
        if let Err(e) = verify(stores, &id.to_string(), keys).await {
            broken.push(Broken {
                request_id: *id,
                problem: e.to_string(),
            });
        }
    }
    Ok(Summary {
        checked: ids.len(),
        broken,
    })
}

fn short(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Columns as wide as their widest cell, two spaces apart: how every list of the CLI prints.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        t.add_row(row);
    }
    // The preset's blank borders: a leading space on every line, trailing ones.
    t.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A timeline, as `audit` and `status` both print it: the same columns and words.
pub fn print_events(events: &[AuditEvent]) {
    let rows = events.iter().map(|e| {
        vec![
            short(&e.at),
            e.request_id.to_string(),
            e.seq.to_string(),
            e.actor.to_string(),
            e.action.to_string(),
            format!("{} -> {}", e.from.map_or("-".to_string(), |f| f.to_string()), e.to),
            e.channel.to_string(),
            e.reason.clone().unwrap_or_default(),
        ]
    });
    println!(
        "{}",
        table(
            &[
                "TIME",
                "REQUEST",
                "#",
                "ACTOR",
                "ACTION",
                "FROM -> TO",
                "CHANNEL",
                "REASON"
            ],
            rows
        )
    );
}

pub fn print(report: &Report) {
    match report {
        Report::Timeline {
            request,
            events,
            refused_attempts,
            undelivered,
        } => {
            println!(
                "{}  {}  {}  requested by {} at {}",
                request.id,
                request.image,
                request.status(),
                request.requester,
                short(&request.created_at)
            );
            print_events(events);
            if !refused_attempts.is_empty() {
                println!("\nRefused attempts");
                let rows = refused_attempts.iter().map(|r| {
                    vec![
                        short(&r.at),
                        r.actor.to_string(),
                        r.action.to_string(),
                        r.status.to_string(),
                        r.why.clone(),
                    ]
                });
                println!("{}", table(&["TIME", "ACTOR", "ACTION", "WHILE", "WHY"], rows));
            }
            if !undelivered.is_empty() {
                println!("\nUndeliverable notices (nobody was told these; tell them yourself)");
                let rows = undelivered.iter().map(|u| {
                    vec![
                        short(&u.at),
                        u.channel.clone(),
                        u.to.clone(),
                        u.notice.clone(),
                        u.why.clone(),
                    ]
                });
                println!("{}", table(&["TIME", "CHANNEL", "TO", "NOTICE", "WHY"], rows));
            }
        }
        Report::Events { events } => print_events(events),
        Report::Requests { requests } => {
            let rows = requests.iter().map(|r| {
                vec![
                    r.id.to_string(),
                    r.status().to_string(),
                    match r.kind.is_add() {
                        true => r.image.to_string(),
                        false => format!("remove {}", r.image.name()),
                    },
                    r.requester.to_string(),
                    short(&r.created_at),
                    short(&r.updated_at),
                    r.decision.as_ref().map(|d| d.by.to_string()).unwrap_or_default(),
                ]
            });
            println!(
                "{}",
                table(
                    &[
                        "REQUEST",
                        "STATUS",
                        "IMAGE",
                        "REQUESTED BY",
                        "CREATED",
                        "UPDATED",
                        "DECIDED BY"
                    ],
                    rows
                )
            );
        }
    }
}
