//! The embedded backend: one SQLite database holding the requests, the append-only audit
//! trail, the work queues (with visibility timeout, receive count and dead letters) and
//! the simulated org's repos. Writes are transactions, so a crash loses nothing committed.

//!
//! `store` holds the requests port, `audit` the audit log's, `queue` the work queues'.

mod audit;
mod queue;
mod store;

pub use queue::{DeadLetter, SqliteSource};

use std::path::Path;
use std::sync::{Arc, Mutex};

use app::ports::StoreError;
use domain::{timestamp as ts, AuditEvent, Request};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    requester TEXT NOT NULL,
    image TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_status ON requests (status, created_at);
CREATE INDEX IF NOT EXISTS requests_by_requester ON requests (requester, created_at);
CREATE INDEX IF NOT EXISTS requests_by_image ON requests (image, created_at);

CREATE TABLE IF NOT EXISTS audit (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit (actor, at);
CREATE TRIGGER IF NOT EXISTS audit_is_append_only_u BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_is_append_only_d BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refusals_by_request ON refusals (request_id, id);
CREATE TRIGGER IF NOT EXISTS refusals_are_append_only_u BEFORE UPDATE ON refusals
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS refusals_are_append_only_d BEFORE DELETE ON refusals
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

-- How far the archiver has copied the audit table (its rowids only grow).
CREATE TABLE IF NOT EXISTS archive_cursor (
    name TEXT PRIMARY KEY,
    last_rowid INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
);

-- Notices written with their transition (app::outbox); done once delivered or given up.
CREATE TABLE IF NOT EXISTS outbox (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    done_at INTEGER,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (created_at) WHERE done_at IS NULL;

CREATE TABLE IF NOT EXISTS undelivered (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS undelivered_by_request ON undelivered (request_id, id);
CREATE TRIGGER IF NOT EXISTS undelivered_is_append_only_u BEFORE UPDATE ON undelivered
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS undelivered_is_append_only_d BEFORE DELETE ON undelivered
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    visible_at INTEGER NOT NULL,
    receipt TEXT,
    sent_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue (queue, visible_at);

CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    dead_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sim_repos (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"#;

/// One connection shared by every port; SQLite serialises writers anyway, and the
/// blocking calls run off the async runtime's threads.
#[derive(Clone)]
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Sqlite {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        Self::init(Connection::open(path).map_err(unavailable)?)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(Sqlite {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| unavailable("a previous database call panicked"))?;
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain values serialise")
}

/// The JSON `body` column of every row a query returns, read back into values.
impl Sqlite {
    /// Up to `limit` audit events written after the archiver's cursor, oldest first, and
    /// the cursor that follows them.
    pub async fn events_after_cursor(&self, limit: usize) -> Result<(i64, Vec<AuditEvent>), StoreError> {
        self.with(move |c| {
            let from: i64 = c
                .query_row(
                    "SELECT last_rowid FROM archive_cursor WHERE name = 'archive'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?
                .unwrap_or(0);
            let mut stmt = c
                .prepare("SELECT rowid, body FROM audit WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(rusqlite::params![from, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            let cursor = rows.last().map_or(from, |(id, _)| *id);
            let events = rows
                .into_iter()
                .map(|(_, b)| serde_json::from_str::<AuditEvent>(&b).map_err(corrupt))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((cursor, events))
        })
        .await
    }

    pub async fn set_archive_cursor(&self, rowid: i64) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO archive_cursor (name, last_rowid) VALUES ('archive', ?1)
                 ON CONFLICT (name) DO UPDATE SET last_rowid = MAX(last_rowid, excluded.last_rowid)",
                [rowid],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

fn bodies<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare(sql).map_err(unavailable)?;
    let rows = stmt.query_map(args, |r| r.get::<_, String>(0)).map_err(unavailable)?;
    rows.map(|b| serde_json::from_str(&b.map_err(unavailable)?).map_err(corrupt))
        .collect()
}

fn read_request(body: String) -> Result<Request, StoreError> {
    serde_json::from_str(&body).map_err(corrupt)
}

fn insert_event(tx: &rusqlite::Transaction<'_>, e: &AuditEvent) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (request_id, seq, at, actor, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            e.request_id.to_string(),
            e.seq as i64,
            ts(e.at),
            e.actor.to_string(),
            to_json(e)
        ],
    )
    .map_err(|err| match err.sqlite_error_code() {
        // The event's sequence number is taken: someone else's transition won.
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict,
        _ => unavailable(err),
    })?;
    Ok(())
}
