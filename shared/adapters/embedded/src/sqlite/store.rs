//! The requests port on SQLite: conditional commits, idempotency keys, link claims, lists.

use app::outbox::{Entry, CLAIM_DAYS};
use app::ports::{effective_limit, Created, RequestQuery, RequestStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::{timestamp as ts, AuditEvent, Request, RequestId, Status, Transition};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{corrupt, insert_event, read_request, to_json, unavailable, Sqlite};

/// Takes `key` until `until_ms` unless a claim on it holds at `now_ms`: whether it was taken.
fn take_claim(c: &rusqlite::Connection, key: &str, until_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
    let changed = c
        .execute(
            "INSERT INTO claims (key, until_ms) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET until_ms = excluded.until_ms WHERE claims.until_ms <= ?3",
            params![key, until_ms, now_ms],
        )
        .map_err(unavailable)?;
    Ok(changed == 1)
}

#[async_trait]
impl RequestStore for Sqlite {
    async fn claim_once(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let (key, now, until) = (key.to_string(), now.timestamp_millis(), until.timestamp_millis());
        self.with(move |c| take_claim(c, &key, until, now)).await
    }

    async fn holds(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let (key, now) = (key.to_string(), now.timestamp_millis());
        self.with(move |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM claims WHERE key = ?1 AND until_ms > ?2)",
                params![key, now],
                |r| r.get::<_, bool>(0),
            )
            .map_err(unavailable)
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
            // Inside the same immediate transaction: no other writer can open one meanwhile.
            let open: Option<String> = tx
                .query_row(
                    &format!(
                        "SELECT body FROM requests WHERE image = ?1 AND status IN ({}) AND id != ?2 ORDER BY created_at LIMIT 1",
                        open_statuses()
                    ),
                    params![request.image.name(), request.id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            if let Some(body) = open {
                return Ok(Created::OpenExists(read_request(body)?));
            }
            tx.execute(
                "INSERT INTO requests (id, status, version, requester, image, idempotency_key, created_at, updated_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    request.id.to_string(),
                    request.status().as_str(),
                    request.version() as i64,
                    request.requester.to_string(),
                    request.image.name(),
                    request.idempotency_key,
                    ts(request.created_at),
                    ts(request.updated_at),
                    to_json(&request)
                ],
            )
            .map_err(|e| match e.sqlite_error_code() {
                // The id is taken: the same signed submission, sent again.
                Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict,
                _ => unavailable(e),
            })?;
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

    async fn commit(&self, t: &Transition, outbox: Option<&Entry>) -> Result<(), StoreError> {
        let (t, outbox) = (t.clone(), outbox.cloned());
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
                        r.status().as_str(),
                        r.version() as i64,
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
            if let Some(e) = &outbox {
                let (at, until) = (
                    e.at.timestamp_millis(),
                    (e.at + Duration::days(CLAIM_DAYS)).timestamp_millis(),
                );
                for key in &e.claims {
                    if !take_claim(&tx, key, until, at)? {
                        return Err(StoreError::Conflict);
                    }
                }
                tx.execute(
                    "INSERT INTO outbox (request_id, seq, body, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![r.id.to_string(), e.seq as i64, to_json(e), at],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn outbox(&self, id: RequestId, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM outbox WHERE request_id = ?1 AND seq = ?2 AND done_at IS NULL",
                    params![id.to_string(), seq as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
        })
        .await
    }

    async fn outbox_done(&self, id: RequestId, seq: u64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE outbox SET done_at = ?3 WHERE request_id = ?1 AND seq = ?2 AND done_at IS NULL",
                params![id.to_string(), seq as i64, at.timestamp_millis()],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn outbox_pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(RequestId, u64)>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT request_id, seq FROM outbox WHERE done_at IS NULL AND created_at < ?1
                     ORDER BY created_at LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![before.timestamp_millis(), limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(unavailable)?;
            let mut out = vec![];
            for row in rows {
                let (id, seq) = row.map_err(unavailable)?;
                out.push((id.parse().map_err(corrupt)?, seq as u64));
            }
            Ok(out)
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
            if let Some(k) = q.kind {
                // Requests stored before removals existed say no kind: additions.
                args.push(k.as_str().into());
                sql += &format!(" AND COALESCE(json_extract(body, '$.kind'), 'add') = ?{}", args.len());
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
                sql += &format!(" AND updated_at < ?{} AND status IN ({})", args.len(), open_statuses());
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

    async fn created_between(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<Request>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT body FROM requests WHERE created_at >= ?1 AND created_at < ?2 ORDER BY created_at, id")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([ts(since), ts(until)], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            rows.map(|b| read_request(b.map_err(unavailable)?)).collect()
        })
        .await
    }
}

/// `status IN (…)` for requests that can still move on: from the status machine's table.
fn open_statuses() -> String {
    Status::open().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}
