//! The audit log port on SQLite: events, refusals and undeliverable notices, append-only
//! by trigger.

use app::ports::{effective_limit, AuditLog, AuditQuery, StoreError, Undelivered};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{timestamp as ts, AuditEvent, Refusal, RequestId};
use rusqlite::params;

use super::{bodies, to_json, unavailable, Sqlite};

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

    async fn undelivered(&self, u: &Undelivered) -> Result<(), StoreError> {
        let (id, body) = (u.request_id.to_string(), to_json(u));
        self.with(move |c| {
            c.execute(
                "INSERT INTO undelivered (request_id, body) VALUES (?1, ?2)",
                params![id, body],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn undeliverable(&self, id: RequestId) -> Result<Vec<Undelivered>, StoreError> {
        self.with(move |c| {
            bodies(
                c,
                "SELECT body FROM undelivered WHERE request_id = ?1 ORDER BY id",
                [id.to_string()],
            )
        })
        .await
    }

    async fn touched(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<RequestId>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT DISTINCT request_id FROM audit WHERE at >= ?1 AND at < ?2 ORDER BY request_id")
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let ids = stmt
                .query_map([ts(since), ts(until)], |r| r.get::<_, String>(0))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            ids.into_iter()
                .map(|id| {
                    id.parse()
                        .map_err(|e: domain::BadRequestId| StoreError::Corrupt(e.to_string()))
                })
                .collect()
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

    async fn timelines(&self, ids: &[RequestId]) -> Result<Vec<(RequestId, Vec<AuditEvent>)>, StoreError> {
        let wanted =
            serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>()).map_err(unavailable)?;
        let events: Vec<AuditEvent> = self
            .with(move |c| {
                bodies(
                    c,
                    "SELECT body FROM audit WHERE request_id IN (SELECT value FROM json_each(?1)) ORDER BY request_id, seq",
                    [wanted],
                )
            })
            .await?;
        let mut by_id: std::collections::HashMap<RequestId, Vec<AuditEvent>> = std::collections::HashMap::new();
        for e in events {
            by_id.entry(e.request_id).or_default().push(e);
        }
        Ok(ids
            .iter()
            .map(|id| (*id, by_id.remove(id).unwrap_or_default()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
