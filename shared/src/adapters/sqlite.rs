//! The embedded backend: one SQLite database holding the requests, the append-only audit
//! trail, the work queues (with visibility timeout, receive count and dead letters) and
//! the simulated org's repos. Writes are transactions, so a crash loses nothing committed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::consumer::{Delivery, MessageSource};
use crate::domain::{AuditEvent, Refusal, Request, RequestId, Status, Transition};
use crate::ports::{
    effective_limit, AuditLog, AuditQuery, Created, Queue, QueueError, QueueName, RequestQuery, RequestStore,
    StoreError, WorkItem,
};

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

CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
);

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

/// Sortable, millisecond RFC 3339: the form every time column holds.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
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

#[async_trait]
impl RequestStore for Sqlite {
    async fn claim_once(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let (key, until) = (key.to_string(), until.timestamp_millis());
        self.with(move |c| {
            let changed = c
                .execute(
                    "INSERT INTO claims (key, until_ms) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET until_ms = excluded.until_ms WHERE claims.until_ms <= ?3",
                    params![key, until, now_ms()],
                )
                .map_err(unavailable)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM claims WHERE key = ?1", [key])
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }

    async fn create(&self, request: &Request, event: &AuditEvent) -> Result<Created, StoreError> {
        let (request, event) = (request.clone(), event.clone());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            if let Some(key) = &request.idempotency_key {
                let existing: Option<String> = tx
                    .query_row("SELECT body FROM requests WHERE idempotency_key = ?1", [key], |r| r.get(0))
                    .optional()
                    .map_err(unavailable)?;
                if let Some(body) = existing {
                    return Ok(Created::Existing(read_request(body)?));
                }
            }
            tx.execute(
                "INSERT INTO requests (id, status, version, requester, image, idempotency_key, created_at, updated_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    request.id.to_string(),
                    request.status.as_str(),
                    request.version as i64,
                    request.requester.to_string(),
                    request.image.name(),
                    request.idempotency_key,
                    ts(request.created_at),
                    ts(request.updated_at),
                    to_json(&request)
                ],
            )
            .map_err(unavailable)?;
            insert_event(&tx, &event)?;
            tx.commit().map_err(unavailable)?;
            Ok(Created::New(request))
        })
        .await
    }

    async fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.with(move |c| {
            c.query_row("SELECT body FROM requests WHERE id = ?1", [id.to_string()], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(unavailable)?
            .map(read_request)
            .transpose()
        })
        .await
    }

    async fn commit(&self, t: &Transition) -> Result<(), StoreError> {
        let t = t.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let r = &t.request;
            let n = tx
                .execute(
                    "UPDATE requests SET status = ?1, version = ?2, updated_at = ?3, body = ?4
                     WHERE id = ?5 AND status = ?6 AND version = ?7",
                    params![
                        r.status.as_str(),
                        r.version as i64,
                        ts(r.updated_at),
                        to_json(r),
                        r.id.to_string(),
                        t.expected_status.as_str(),
                        t.expected_version as i64
                    ],
                )
                .map_err(unavailable)?;
            if n == 0 {
                return Err(StoreError::Conflict);
            }
            insert_event(&tx, &t.event)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn list(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let q = q.clone();
        self.with(move |c| {
            let mut sql = String::from("SELECT body FROM requests WHERE 1 = 1");
            let mut args: Vec<String> = vec![];
            if let Some(s) = q.status {
                args.push(s.as_str().into());
                sql += &format!(" AND status = ?{}", args.len());
            }
            if let Some(p) = &q.requester {
                args.push(p.to_string());
                sql += &format!(" AND requester = ?{}", args.len());
            }
            if let Some(i) = &q.image {
                args.push(i.clone());
                sql += &format!(" AND image = ?{}", args.len());
            }
            if let Some(p) = &q.decided_by {
                args.push(p.to_string());
                sql += &format!(" AND json_extract(body, '$.decision.by') = ?{}", args.len());
            }
            if let Some(t) = q.created_after {
                args.push(ts(t));
                sql += &format!(" AND created_at >= ?{}", args.len());
            }
            if let Some(t) = q.created_before {
                args.push(ts(t));
                sql += &format!(" AND created_at < ?{}", args.len());
            }
            if let Some(t) = q.updated_before {
                args.push(ts(t));
                sql += &format!(" AND updated_at < ?{} AND status IN ({OPEN_STATUSES})", args.len());
            }
            let oldest_first = q.status == Some(Status::PendingApproval) || q.updated_before.is_some();
            sql += if oldest_first {
                " ORDER BY created_at ASC, id ASC"
            } else {
                " ORDER BY created_at DESC, id DESC"
            };
            sql += &format!(" LIMIT {}", effective_limit(q.limit));
            let mut stmt = c.prepare(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            rows.map(|b| read_request(b.map_err(unavailable)?)).collect()
        })
        .await
    }
}

/// The non-terminal statuses, as an SQL list.
const OPEN_STATUSES: &str = "'received', 'validating', 'pending_approval', 'approved', 'provisioning'";

#[async_trait]
impl AuditLog for Sqlite {
    async fn refused(&self, r: &Refusal) -> Result<(), StoreError> {
        let (id, body) = (r.request_id.to_string(), to_json(r));
        self.with(move |c| {
            c.execute(
                "INSERT INTO refusals (request_id, body) VALUES (?1, ?2)",
                params![id, body],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn refusals(&self, id: RequestId) -> Result<Vec<Refusal>, StoreError> {
        self.with(move |c| {
            bodies(
                c,
                "SELECT body FROM refusals WHERE request_id = ?1 ORDER BY id",
                [id.to_string()],
            )
        })
        .await
    }

    async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let q = q.clone();
        self.with(move |c| {
            let mut sql = String::from("SELECT body FROM audit WHERE 1 = 1");
            let mut args: Vec<String> = vec![];
            if let Some(a) = &q.actor {
                args.push(a.to_string());
                sql += &format!(" AND actor = ?{}", args.len());
            }
            if let Some(t) = q.since {
                args.push(ts(t));
                sql += &format!(" AND at >= ?{}", args.len());
            }
            if let Some(t) = q.until {
                args.push(ts(t));
                sql += &format!(" AND at < ?{}", args.len());
            }
            sql += &format!(
                " ORDER BY at DESC, request_id DESC, seq DESC LIMIT {}",
                effective_limit(q.limit)
            );
            bodies(c, &sql, rusqlite::params_from_iter(args.iter()))
        })
        .await
    }

    async fn timeline(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        self.with(move |c| {
            bodies(
                c,
                "SELECT body FROM audit WHERE request_id = ?1 ORDER BY seq",
                [id.to_string()],
            )
        })
        .await
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub queue: String,
    pub body: String,
    pub receive_count: u32,
}

impl Sqlite {
    pub async fn send_raw(&self, queue: QueueName, body: String) -> Result<(), StoreError> {
        self.with(move |c| {
            let now = now_ms();
            c.execute(
                "INSERT INTO queue (queue, body, visible_at, sent_at) VALUES (?1, ?2, ?3, ?3)",
                params![queue.as_str(), body, now],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Receives up to `max` visible messages and hides them for `visibility_ms`. Messages
    /// already delivered `max_receives` times move to the dead letters instead, as SQS's
    /// redrive policy does.
    pub async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_ms: i64,
        max_receives: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.with(move |c| {
            let now = now_ms();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            tx.execute(
                "INSERT INTO dead_letters (id, queue, body, receive_count, sent_at, dead_at)
                 SELECT id, queue, body, receive_count, sent_at, ?3 FROM queue
                 WHERE queue = ?1 AND visible_at <= ?3 AND receive_count >= ?2",
                params![queue.as_str(), max_receives, now],
            )
            .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM queue WHERE queue = ?1 AND visible_at <= ?3 AND receive_count >= ?2",
                params![queue.as_str(), max_receives, now],
            )
            .map_err(unavailable)?;
            let picked: Vec<(i64, String, u32, i64)> = {
                let mut stmt = tx
                    .prepare("SELECT id, body, receive_count, sent_at FROM queue WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3")
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![queue.as_str(), now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)?
            };
            let mut out = Vec::with_capacity(picked.len());
            for (id, body, count, sent_at) in picked {
                let receipt = format!("{id}:{}", ulid::Ulid::new());
                tx.execute(
                    "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 WHERE id = ?1",
                    params![id, now + visibility_ms, receipt],
                )
                .map_err(unavailable)?;
                out.push(Delivery {
                    message_id: id.to_string(),
                    receipt,
                    body,
                    receive_count: count + 1,
                    sent_at_ms: sent_at,
                });
            }
            tx.commit().map_err(unavailable)?;
            Ok(out)
        })
        .await
    }

    /// Deletes a delivered message; a stale receipt (the message was delivered again since) deletes nothing.
    pub async fn delete(&self, receipt: String) -> Result<bool, StoreError> {
        self.with(move |c| {
            Ok(c.execute("DELETE FROM queue WHERE receipt = ?1", [receipt])
                .map_err(unavailable)?
                == 1)
        })
        .await
    }

    pub async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT queue, body, receive_count FROM dead_letters WHERE queue = ?1 ORDER BY id")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([queue.as_str()], |r| {
                    Ok(DeadLetter {
                        queue: r.get(0)?,
                        body: r.get(1)?,
                        receive_count: r.get(2)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)
        })
        .await
    }

    /// Messages waiting or in flight.
    pub async fn queue_depth(&self, queue: QueueName) -> Result<usize, StoreError> {
        self.with(move |c| {
            c.query_row("SELECT COUNT(*) FROM queue WHERE queue = ?1", [queue.as_str()], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(unavailable)
        })
        .await
    }
}

/// The embedded queue as a consumer sees it, with SQS's visibility timeout and redrive.
pub struct SqliteSource {
    pub db: Sqlite,
    pub visibility_ms: i64,
    pub max_receives: u32,
}

#[async_trait]
impl MessageSource for SqliteSource {
    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<Delivery>, String> {
        self.db
            .receive(queue, max, self.visibility_ms, self.max_receives)
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&self, _queue: QueueName, receipt: &str) -> Result<(), String> {
        self.db
            .delete(receipt.to_string())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<usize, String> {
        self.db
            .dead_letters(queue)
            .await
            .map(|d| d.len())
            .map_err(|e| e.to_string())
    }

    async fn depth(&self, queue: QueueName) -> Result<usize, String> {
        self.db.queue_depth(queue).await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Queue for Sqlite {
    async fn send(&self, queue: QueueName, item: &WorkItem) -> Result<(), QueueError> {
        self.send_raw(queue, to_json(item))
            .await
            .map_err(|e| QueueError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> WorkItem {
        WorkItem {
            request_id: RequestId::new(),
            trace_id: "t".into(),
        }
    }

    #[tokio::test]
    async fn unacknowledged_messages_come_back_then_go_to_the_dead_letters() {
        let db = Sqlite::in_memory().unwrap();
        db.send(QueueName::Validate, &item()).await.unwrap();
        let first = db.receive(QueueName::Validate, 10, 0, 2).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        let second = db.receive(QueueName::Validate, 10, 0, 2).await.unwrap();
        assert_eq!(second[0].receive_count, 2);
        assert!(
            !db.delete(first[0].receipt.clone()).await.unwrap(),
            "a stale receipt deletes nothing"
        );
        assert!(db.receive(QueueName::Validate, 10, 0, 2).await.unwrap().is_empty());
        assert_eq!(db.dead_letters(QueueName::Validate).await.unwrap().len(), 1);
        assert_eq!(db.queue_depth(QueueName::Validate).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn hidden_messages_are_not_delivered_twice_and_deleted_ones_never() {
        let db = Sqlite::in_memory().unwrap();
        db.send(QueueName::Provision, &item()).await.unwrap();
        let got = db.receive(QueueName::Provision, 10, 60_000, 5).await.unwrap();
        assert!(db
            .receive(QueueName::Provision, 10, 60_000, 5)
            .await
            .unwrap()
            .is_empty());
        assert!(
            db.receive(QueueName::Validate, 10, 0, 5).await.unwrap().is_empty(),
            "queues are separate"
        );
        assert!(db.delete(got[0].receipt.clone()).await.unwrap());
        assert_eq!(db.queue_depth(QueueName::Provision).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_audit_table_refuses_updates_and_deletes() {
        let db = Sqlite::in_memory().unwrap();
        let err = db
            .with(|c| {
                c.execute("INSERT INTO audit VALUES ('r', 1, 't', 'a', '{}')", [])
                    .map_err(unavailable)?;
                c.execute("UPDATE audit SET body = 'x'", []).map_err(unavailable)
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"));
        let err = db
            .with(|c| c.execute("DELETE FROM audit", []).map_err(unavailable))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"));
    }
}
