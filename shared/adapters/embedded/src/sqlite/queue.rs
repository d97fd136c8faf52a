//! The work queues on SQLite: visibility timeout, receive count and dead letters, as SQS
//! behaves for the local server and the tests.

use app::consumer::{Delivery, MessageSource};
use app::ports::{Queue, QueueError, QueueName, StoreError, WorkItem};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, TransactionBehavior};
use serde::Serialize;

use super::{to_json, unavailable, Sqlite};

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
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

    /// Moves a queue's dead letters back onto it, in one transaction, as new messages.
    pub async fn redrive(&self, queue: QueueName) -> Result<usize, StoreError> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let moved = tx
                .execute(
                    "INSERT INTO queue (queue, body, visible_at, sent_at)
                     SELECT queue, body, ?2, sent_at FROM dead_letters WHERE queue = ?1 ORDER BY id",
                    params![queue.as_str(), now_ms()],
                )
                .map_err(unavailable)?;
            tx.execute("DELETE FROM dead_letters WHERE queue = ?1", [queue.as_str()])
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(moved)
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
    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<Delivery>, QueueError> {
        self.db
            .receive(queue, max, self.visibility_ms, self.max_receives)
            .await
            .map_err(QueueError::from)
    }

    async fn delete(&self, _queue: QueueName, receipt: &str) -> Result<(), QueueError> {
        self.db
            .delete(receipt.to_string())
            .await
            .map(|_| ())
            .map_err(QueueError::from)
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<usize, QueueError> {
        self.db
            .dead_letters(queue)
            .await
            .map(|d| d.len())
            .map_err(QueueError::from)
    }

    async fn depth(&self, queue: QueueName) -> Result<usize, QueueError> {
        self.db.queue_depth(queue).await.map_err(QueueError::from)
    }

    async fn redrive(&self, queue: QueueName) -> Result<usize, QueueError> {
        self.db.redrive(queue).await.map_err(QueueError::from)
    }
}

#[async_trait]
impl Queue for Sqlite {
    async fn send(&self, queue: QueueName, item: &WorkItem) -> Result<(), QueueError> {
        self.send_raw(queue, to_json(item)).await.map_err(QueueError::from)
    }

    async fn retry_in(&self, _queue: QueueName, receipt: &str, after: std::time::Duration) -> Result<(), QueueError> {
        let (receipt, at) = (receipt.to_string(), now_ms() + after.as_millis() as i64);
        self.with(move |c| {
            c.execute(
                "UPDATE queue SET visible_at = ?2 WHERE receipt = ?1",
                params![receipt, at],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
        .map_err(QueueError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RequestId;

    fn item() -> WorkItem {
        WorkItem {
            request_id: RequestId::new(),
            trace_id: "t".into(),
            notice: None,
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
}
