//! The request store and audit log on DynamoDB.
//!
//! Requests table, key `pk` (the request id). Every ops question is a Query on an index,
//! then the full items by key (`BatchGetItem`): indexes project only what their query
//! needs, because each projected attribute that changes costs an index write on every
//! transition (index upkeep was about 70% of the per-request cost with `ALL`).
//!
//! | index | partition | sort | projects | answers |
//! | --- | --- | --- | --- | --- |
//! | `by_status` | `status` | `created_at` | keys, `image_name`, `requester`, `updated_at` | pending approvals oldest first; any status; stuck requests (one query per open status, `updated_at` filtered) |
//! | `by_requester` | `requester` | `created_at` | keys | a requester's requests, newest first |
//! | `by_image` | `image_name` | `created_at` | keys | requests for an image |
//! | `by_time` | `all` (always `REQ`) | `created_at` | keys | by day or time range |
//! | `by_approver` | `decided_by` (set once a person decides) | `decided_at` | keys | decisions by approver |
//!
//! Audit table, key `request_id` + `seq`, append-only (the code only puts and queries):
//! `by_actor` (`who`, `at_key`) and `by_day` (`day`, `at_key`).
//!
//! `by_actor` and `by_approver` are sparse: they hold people and clients, not the
//! pipeline's own services (`service:*`), whose steps are three of every request's five
//! events and whose policy decisions are most decisions. Those are found by request or by
//! day instead, and each index entry they skip is a write unit saved on every request.
//!
//! Refused attempts are kept beside the chain, under `request_id = refused#<id>`, and
//! notices given up on under `undelivered#<id>` (no `at_key`, so the indexes, which hold
//! chain events only, leave them out).
//!
//! Outbox entries (`app::outbox`) are `pk = outbox#<id>#<seq>`, written in the
//! transition's transaction; while pending they carry `status = outbox`, which puts them
//! in `by_status` for the sweep; once done, `ttl` removes them.
//!
//! Idempotency keys live in the requests table as `pk = idem#<client>:<key>` with a `ttl`,
//! and approval-link uses as `pk = claim#<key>` with a `ttl`; reads and conditions treat
//! an item past its `ttl` as absent, since TTL deletion lags by days.
//!
//! One open request per image: `pk = open#<image name>` names the image's latest request.
//! A request's creation puts it in the same transaction, on the condition that there is
//! none, or that it still names the request the creator found ended; nothing deletes it
//! (a delete when a request ends would cost two more write units per request, and the
//! takeover is as atomic).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_item};

use app::outbox::{Entry, CLAIM_DAYS, SENT_RECORD_DAYS};
use app::ports::{effective_limit, AuditLog, AuditQuery, Created, RequestQuery, RequestStore, StoreError, Undelivered};
use domain::{timestamp as ts, AuditEvent, BadRequestId, Principal, Refusal, Request, RequestId, Status, Transition};

/// How long an idempotency key holds.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

pub const BY_STATUS: &str = "by_status";
pub const BY_REQUESTER: &str = "by_requester";
pub const BY_IMAGE: &str = "by_image";
pub const BY_TIME: &str = "by_time";
pub const BY_APPROVER: &str = "by_approver";
/// What `by_status` projects beside the keys (every other requests index: keys only).
pub const BY_STATUS_INCLUDES: [&str; 3] = ["image_name", "requester", "updated_at"];
pub const BY_ACTOR: &str = "by_actor";
pub const BY_DAY: &str = "by_day";
/// Timelines read at once for a report (each a Query of one partition).
const TIMELINE_QUERIES_AT_ONCE: usize = 16;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    requests: String,
    audit: String,
}

/// A request as stored: the index attributes at the top level, the whole record in `request`.
#[derive(Serialize, Deserialize)]
struct RequestItem {
    pk: String,
    status: Status,
    version: u64,
    requester: String,
    image_name: String,
    created_at: String,
    updated_at: String,
    all: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_at: Option<String>,
    request: Request,
}

impl RequestItem {
    fn new(r: &Request) -> Self {
        RequestItem {
            pk: r.id.to_string(),
            status: r.status(),
            version: r.version(),
            requester: r.requester.to_string(),
            image_name: r.image.name().to_string(),
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            all: "REQ".into(),
            decided_by: r
                .decision
                .as_ref()
                .filter(|d| !is_service(&d.by))
                .map(|d| d.by.to_string()),
            decided_at: r.decision.as_ref().map(|d| ts(d.at)),
            request: r.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    request_id: String,
    /// Unix seconds; DynamoDB's TTL deletes the item some time after.
    ttl: i64,
}

/// An outbox entry (`app::outbox`) as stored: pending while `status` is `outbox`, which
/// puts it in `by_status` for the sweep (no other query asks for that status).
#[derive(Serialize, Deserialize)]
struct OutboxItem {
    pk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done_at: Option<String>,
    entry: Entry,
}

const OUTBOX_PENDING: &str = "outbox";

impl OutboxItem {
    fn pending(e: &Entry) -> Self {
        OutboxItem {
            pk: outbox_key(e.request.id, e.seq),
            status: Some(OUTBOX_PENDING.into()),
            created_at: ts(e.at),
            updated_at: ts(e.at),
            done_at: None,
            entry: e.clone(),
        }
    }
}

fn outbox_key(id: RequestId, seq: u64) -> String {
    format!("outbox#{id}#{seq}")
}

/// Which request holds an image open (see the module's notes).
#[derive(Serialize, Deserialize)]
struct OpenItem {
    pk: String,
    request_id: String,
}

fn open_key(image_name: &str) -> String {
    format!("open#{image_name}")
}

pub type Item = HashMap<String, AttributeValue>;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The pipeline's own steps, which the sparse indexes leave out (see the module comment).
fn is_service(p: &Principal) -> bool {
    matches!(p, Principal::Service(_))
}

/// The audit table's item for an event: the event, and the attributes its indexes read.
pub fn audit_item(e: &AuditEvent) -> Result<Item, StoreError> {
    let mut item: Item = to_item(e).map_err(corrupt)?;
    item.insert("at_key".into(), s(ts(e.at)));
    item.insert("day".into(), s(e.at.format("%Y-%m-%d").to_string()));
    if !is_service(&e.actor) {
        item.insert("who".into(), s(e.actor.to_string()));
    }
    Ok(item)
}

fn put(table: &str, item: Item, condition: &str) -> Result<Put, StoreError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .build()
        .map_err(unavailable)
}

/// A cancelled transaction whose conditions failed is a conflict; anything else is an outage.
fn classify(e: SdkError<TransactWriteItemsError>) -> StoreError {
    match e.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            let reasons = c.cancellation_reasons();
            let conditional = reasons.is_empty() || reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed"));
            if conditional {
                StoreError::Conflict
            } else {
                unavailable(format!(
                    "transaction cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                ))
            }
        }
        other => unavailable(other),
    }
}

impl DynamoStore {
    pub fn new(client: Client, requests_table: &str, audit_table: &str) -> Self {
        DynamoStore {
            client,
            requests: requests_table.into(),
            audit: audit_table.into(),
        }
    }

    /// One item of the requests table by its key, read consistently.
    async fn item<T: serde::de::DeserializeOwned>(&self, pk: String) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.requests)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(e.into_service_error()))?;
        out.item.map(|item| from_item(item).map_err(corrupt)).transpose()
    }

    async fn live_idempotency(&self, key: &str, now: DateTime<Utc>) -> Result<Option<RequestId>, StoreError> {
        let Some(idem) = self.item::<IdempotencyItem>(format!("idem#{key}")).await? else {
            return Ok(None);
        };
        // TTL deletion lags by days: an expired key is no key.
        if idem.ttl <= now.timestamp() {
            return Ok(None);
        }
        idem.request_id.parse().map(Some).map_err(|e: BadRequestId| corrupt(e))
    }

    /// The request holding an image open, as its guard item says.
    async fn open_holder(&self, image_name: &str) -> Result<Option<RequestId>, StoreError> {
        let Some(open) = self.item::<OpenItem>(open_key(image_name)).await? else {
            return Ok(None);
        };
        open.request_id.parse().map(Some).map_err(|e: BadRequestId| corrupt(e))
    }

    /// One attempt at the creation transaction: the request, its first event, its
    /// idempotency key and its image's guard, taken from `ended` (the request the guard
    /// named, found no longer open) or, without one, only where there is no guard yet.
    async fn try_create(
        &self,
        request: &Request,
        event: &AuditEvent,
        ended: Option<RequestId>,
    ) -> Result<Created, StoreError> {
        let mut guard = Put::builder().table_name(&self.requests).set_item(Some(
            to_item(OpenItem {
                pk: open_key(request.image.name()),
                request_id: request.id.to_string(),
            })
            .map_err(corrupt)?,
        ));
        guard = match ended {
            None => guard.condition_expression("attribute_not_exists(pk)"),
            Some(h) => guard
                .condition_expression("request_id = :ended")
                .expression_attribute_values(":ended", s(h.to_string())),
        };
        let item: Item = to_item(RequestItem::new(request)).map_err(corrupt)?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put(&self.requests, item, "attribute_not_exists(pk)")?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(put(
                        &self.audit,
                        audit_item(event)?,
                        "attribute_not_exists(request_id)",
                    )?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(guard.build().map_err(unavailable)?)
                    .build(),
            );
        if let Some(key) = &request.idempotency_key {
            let idem = IdempotencyItem {
                pk: format!("idem#{key}"),
                request_id: request.id.to_string(),
                ttl: (request.created_at + Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp(),
            };
            let p = Put::builder()
                .table_name(&self.requests)
                .set_item(Some(to_item(idem).map_err(corrupt)?))
                .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
                .expression_attribute_names("#ttl", "ttl")
                // The request's own time: a key expired then is free for it.
                .expression_attribute_values(":now", AttributeValue::N(request.created_at.timestamp().to_string()))
                .build()
                .map_err(unavailable)?;
            tx = tx.transact_items(TransactWriteItem::builder().put(p).build());
        }
        match tx.send().await.map_err(classify) {
            Ok(_) => Ok(Created::New(request.clone())),
            Err(StoreError::Conflict) => {
                let key = request.idempotency_key.as_deref().ok_or(StoreError::Conflict)?;
                let id = self
                    .live_idempotency(key, request.created_at)
                    .await?
                    .ok_or(StoreError::Conflict)?;
                let existing = self
                    .get(id)
                    .await?
                    .ok_or_else(|| corrupt(format!("idempotency key names missing {id}")))?;
                Ok(Created::Existing(existing))
            }
            Err(e) => Err(e),
        }
    }

    /// Every item of one audit-table partition (a request's events, or its refusals).
    async fn audit_partition(&self, key: String) -> Result<Vec<Item>, StoreError> {
        self.all_pages(
            self.client
                .query()
                .table_name(&self.audit)
                .key_condition_expression("request_id = :id")
                .expression_attribute_values(":id", s(key))
                .consistent_read(true),
        )
        .await
    }

    /// Every item a query matches, page by page.
    async fn all_pages(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        query
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| unavailable(e.into_service_error()))
    }

    /// The requests an index query names, read in full and kept where `keep` says, page
    /// by page until `limit` are collected. The key condition (and `filter`, on what the
    /// index projects) narrows before the items are read; `keep` decides on the full item.
    #[allow(clippy::too_many_arguments)]
    async fn query_requests(
        &self,
        index: &str,
        key_condition: &str,
        filter: Option<&str>,
        values: &[(&str, AttributeValue)],
        newest_first: bool,
        limit: usize,
        keep: &(dyn Fn(&Request) -> bool + Sync),
    ) -> Result<Vec<Request>, StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.requests)
            .index_name(index)
            .key_condition_expression(key_condition)
            .scan_index_forward(!newest_first)
            .projection_expression("pk")
            .set_filter_expression(filter.map(str::to_string))
            .limit(limit.min(100) as i32);
        for (k, v) in values {
            q = q.expression_attribute_values(*k, v.clone());
        }
        if key_condition.contains("#status") {
            q = q.expression_attribute_names("#status", "status");
        }
        if key_condition.contains("#all") {
            q = q.expression_attribute_names("#all", "all");
        }
        let mut pages = q.into_paginator().send();
        let mut out = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(e.into_service_error()))?;
            let ids: Vec<String> = page
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|mut i| match i.remove("pk") {
                    Some(AttributeValue::S(pk)) => Some(pk),
                    _ => None,
                })
                .collect();
            for r in self.get_many(&ids).await? {
                if keep(&r) {
                    out.push(r);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Requests by id, in the order given (strongly consistent; missing ones skipped).
    async fn get_many(&self, ids: &[String]) -> Result<Vec<Request>, StoreError> {
        let mut found: HashMap<String, Request> = HashMap::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| HashMap::from([("pk".to_string(), s(id))]))
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(unavailable)?,
            );
            // What DynamoDB could not read this time comes back as unprocessed keys.
            while let Some(ask) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.requests, ask)
                    .send()
                    .await
                    .map_err(|e| unavailable(e.into_service_error()))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.requests)
                    .unwrap_or_default()
                {
                    let r: RequestItem = from_item(item).map_err(corrupt)?;
                    found.insert(r.pk, r.request);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.requests))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

#[async_trait]
impl RequestStore for DynamoStore {
    async fn claim_once(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.requests)
            .item("pk", s(format!("claim#{key}")))
            .item("ttl", AttributeValue::N(until.timestamp().to_string()))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                PutItemError::ConditionalCheckFailedException(_) => Ok(false),
                other => Err(unavailable(other)),
            },
        }
    }

    async fn holds(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        #[derive(Deserialize)]
        struct Claim {
            ttl: i64,
        }
        // TTL deletion lags by days: an expired claim is no claim.
        let claim: Option<Claim> = self.item(format!("claim#{key}")).await?;
        Ok(claim.is_some_and(|c| c.ttl > now.timestamp()))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.requests)
            .key("pk", s(format!("claim#{key}")))
            .send()
            .await
            .map_err(|e| unavailable(e.into_service_error()))?;
        Ok(())
    }

    async fn create(&self, request: &Request, event: &AuditEvent) -> Result<Created, StoreError> {
        let mut ended = None;
        // A few rounds at most: each lost one means another creator took the guard first.
        for round in 0..5u32 {
            match self.try_create(request, event, ended).await {
                Err(StoreError::Conflict) => {}
                other => return other,
            }
            let Some(holder) = self.open_holder(request.image.name()).await? else {
                ended = None;
                continue;
            };
            if holder == request.id {
                // The same signed submission, sent again.
                return Err(StoreError::Conflict);
            }
            match self.get(holder).await? {
                Some(open) if open.status().is_open() => return Ok(Created::OpenExists(open)),
                Some(_) => ended = Some(holder),
                // Not there: a creation whose transaction is not visible in full yet (an
                // emulator's, never DynamoDB's), or a request deleted by hand. Wait for the
                // first; take the guard over only from the second.
                None if round < 3 => {
                    ended = None;
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                }
                None => ended = Some(holder),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn get(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        Ok(self.item::<RequestItem>(id.to_string()).await?.map(|r| r.request))
    }

    async fn commit(&self, t: &Transition, outbox: Option<&Entry>) -> Result<(), StoreError> {
        let item: Item = to_item(RequestItem::new(&t.request)).map_err(corrupt)?;
        let guarded = Put::builder()
            .table_name(&self.requests)
            .set_item(Some(item))
            .condition_expression("#status = :expected_status AND version = :expected_version")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected_status", s(t.expected_status.as_str()))
            .expression_attribute_values(":expected_version", AttributeValue::N(t.expected_version.to_string()))
            .build()
            .map_err(unavailable)?;
        let mut items = vec![
            TransactWriteItem::builder().put(guarded).build(),
            TransactWriteItem::builder()
                .put(put(
                    &self.audit,
                    audit_item(&t.event)?,
                    "attribute_not_exists(request_id)",
                )?)
                .build(),
        ];
        if let Some(e) = outbox {
            let item = to_item(OutboxItem::pending(e)).map_err(corrupt)?;
            items.push(
                TransactWriteItem::builder()
                    .put(put(&self.requests, item, "attribute_not_exists(pk)")?)
                    .build(),
            );
            let until = (e.at + Duration::days(CLAIM_DAYS)).timestamp();
            for key in &e.claims {
                let claim = Put::builder()
                    .table_name(&self.requests)
                    .item("pk", s(format!("claim#{key}")))
                    .item("ttl", AttributeValue::N(until.to_string()))
                    .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":now", AttributeValue::N(e.at.timestamp().to_string()))
                    .build()
                    .map_err(unavailable)?;
                items.push(TransactWriteItem::builder().put(claim).build());
            }
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn outbox(&self, id: RequestId, seq: u64) -> Result<Option<Entry>, StoreError> {
        let item: Option<OutboxItem> = self.item(outbox_key(id, seq)).await?;
        Ok(item.filter(|i| i.done_at.is_none()).map(|i| i.entry))
    }

    async fn outbox_done(&self, id: RequestId, seq: u64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let ttl = (at + Duration::days(SENT_RECORD_DAYS)).timestamp();
        let out = self
            .client
            .update_item()
            .table_name(&self.requests)
            .key("pk", s(outbox_key(id, seq)))
            // Out of `by_status` (the sweep's list of pending entries) and gone in time.
            .update_expression("SET done_at = :at, #ttl = :ttl REMOVE #status")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":at", s(ts(at)))
            .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(unavailable(other)),
            },
        }
    }

    async fn outbox_pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(RequestId, u64)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.requests)
            .index_name(BY_STATUS)
            .key_condition_expression("#status = :pending AND created_at < :before")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(OUTBOX_PENDING))
            .expression_attribute_values(":before", s(ts(before)))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| unavailable(e.into_service_error()))?;
        let mut found = vec![];
        for item in out.items.unwrap_or_default() {
            let Some(AttributeValue::S(pk)) = item.get("pk") else {
                continue;
            };
            let parsed = pk
                .strip_prefix("outbox#")
                .and_then(|rest| rest.rsplit_once('#'))
                .and_then(|(id, seq)| Some((id.parse().ok()?, seq.parse().ok()?)));
            found.push(parsed.ok_or_else(|| corrupt(format!("an outbox key that does not parse: {pk}")))?);
        }
        Ok(found)
    }

    async fn list(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let limit = effective_limit(q.limit);
        let keep = |r: &Request| {
            q.status.is_none_or(|st| r.status() == st)
                && q.requester.as_ref().is_none_or(|p| &r.requester == p)
                && q.image.as_deref().is_none_or(|i| r.image.name() == i)
                && q.kind.is_none_or(|k| r.kind == k)
                && q.decided_by
                    .as_ref()
                    .is_none_or(|p| r.decision.as_ref().is_some_and(|d| &d.by == p))
                && q.created_after.is_none_or(|t| r.created_at >= t)
                && q.created_before.is_none_or(|t| r.created_at < t)
                && q.updated_before
                    .is_none_or(|t| !r.status().is_terminal() && r.updated_at < t)
        };
        // Stuck requests without a status: one query per status a request can move on from.
        if let (None, Some(_)) = (q.status, q.updated_before) {
            let mut out = vec![];
            for st in Status::open() {
                let one = RequestQuery {
                    status: Some(st),
                    ..q.clone()
                };
                out.extend(self.list(&one).await?);
            }
            out.sort_by_key(|r| r.updated_at);
            out.truncate(limit);
            return Ok(out);
        }
        // The most selective index; the rest of the query is checked on the full items.
        let mut values: Vec<(&str, AttributeValue)> = vec![];
        let person_decided = q.decided_by.as_ref().filter(|p| !is_service(p));
        let (index, mut key, newest_first, sorts_by_created) = if let Some(p) = person_decided {
            values.push((":who", s(p.to_string())));
            (BY_APPROVER, "decided_by = :who".to_string(), true, false)
        } else if let Some(p) = &q.requester {
            values.push((":who", s(p.to_string())));
            (BY_REQUESTER, "requester = :who".to_string(), true, true)
        } else if let Some(i) = &q.image {
            values.push((":img", s(i.clone())));
            (BY_IMAGE, "image_name = :img".to_string(), true, true)
        } else if let Some(st) = q.status {
            values.push((":st", s(st.as_str())));
            // Pending approvals and stuck requests: oldest first.
            let oldest_first = st == Status::PendingApproval || q.updated_before.is_some();
            (BY_STATUS, "#status = :st".to_string(), !oldest_first, true)
        } else {
            values.push((":all", s("REQ")));
            (BY_TIME, "#all = :all".to_string(), true, true)
        };
        if sorts_by_created {
            match (q.created_after, q.created_before) {
                (Some(a), Some(b)) => {
                    values.push((":after", s(ts(a))));
                    values.push((":before", s(ts(b))));
                    key = format!("{key} AND created_at BETWEEN :after AND :before");
                }
                (Some(a), None) => {
                    values.push((":after", s(ts(a))));
                    key = format!("{key} AND created_at >= :after");
                }
                (None, Some(b)) => {
                    values.push((":before", s(ts(b))));
                    key = format!("{key} AND created_at < :before");
                }
                (None, None) => {}
            }
        }
        // `by_status` projects `updated_at`, so stuck requests are found without reading
        // every request in the status (the sweep asks this every few minutes).
        let filter = match (index, q.updated_before) {
            (BY_STATUS, Some(cut)) => {
                values.push((":cut", s(ts(cut))));
                Some("updated_at < :cut")
            }
            _ => None,
        };
        self.query_requests(index, &key, filter, &values, newest_first, limit, &keep)
            .await
    }

    async fn created_between(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<Request>, StoreError> {
        // BETWEEN is inclusive; `until` is not.
        let values = [(":all", s("REQ")), (":after", s(ts(since))), (":before", s(ts(until)))];
        let mut out = self
            .query_requests(
                BY_TIME,
                "#all = :all AND created_at BETWEEN :after AND :before",
                None,
                &values,
                false,
                usize::MAX,
                &|r| r.created_at < until,
            )
            .await?;
        out.sort_by_key(|r| (r.created_at, r.id));
        Ok(out)
    }
}

fn refusals_key(id: RequestId) -> String {
    format!("refused#{id}")
}

fn undelivered_key(id: RequestId) -> String {
    format!("undelivered#{id}")
}

/// Milliseconds, times 1,000, plus a random tail: unique without a counter to contend on.
fn beside_seq(at: DateTime<Utc>) -> u64 {
    at.timestamp_millis().max(0) as u64 * 1000 + u64::from(rand::random::<u16>() % 1000)
}

impl DynamoStore {
    /// Keeps a record beside the chain in the audit table (a refused attempt, a notice
    /// given up on): `{request_id: <key>, seq, <field>: record}`, put once.
    async fn put_beside(
        &self,
        key: String,
        at: DateTime<Utc>,
        field: &str,
        record: &impl Serialize,
    ) -> Result<(), StoreError> {
        let item: Item = HashMap::from([
            ("request_id".to_string(), s(key)),
            ("seq".to_string(), AttributeValue::N(beside_seq(at).to_string())),
            (
                field.to_string(),
                serde_dynamo::to_attribute_value(record).map_err(corrupt)?,
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.audit)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(request_id)")
            .send()
            .await
            .map_err(|e| unavailable(e.into_service_error()))?;
        Ok(())
    }

    /// The records kept beside the chain under `key`, oldest first.
    async fn beside<T: serde::de::DeserializeOwned>(&self, key: String, field: &str) -> Result<Vec<T>, StoreError> {
        self.audit_partition(key)
            .await?
            .into_iter()
            .map(|mut i| {
                let v = i
                    .remove(field)
                    .ok_or_else(|| corrupt(format!("a record without `{field}`")))?;
                serde_dynamo::from_attribute_value(v).map_err(corrupt)
            })
            .collect()
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn refused(&self, r: &Refusal) -> Result<(), StoreError> {
        self.put_beside(refusals_key(r.request_id), r.at, "refusal", r).await
    }

    async fn refusals(&self, id: RequestId) -> Result<Vec<Refusal>, StoreError> {
        self.beside(refusals_key(id), "refusal").await
    }

    async fn undelivered(&self, u: &Undelivered) -> Result<(), StoreError> {
        self.put_beside(undelivered_key(u.request_id), u.at, "undelivered", u)
            .await
    }

    async fn undeliverable(&self, id: RequestId) -> Result<Vec<Undelivered>, StoreError> {
        self.beside(undelivered_key(id), "undelivered").await
    }

    async fn timeline(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        let items = self.audit_partition(id.to_string()).await?;
        items.into_iter().map(|i| from_item(i).map_err(corrupt)).collect()
    }

    async fn timelines(&self, ids: &[RequestId]) -> Result<Vec<(RequestId, Vec<AuditEvent>)>, StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        // One Query per request, sixteen at a time: a quarter's report reads thousands,
        // inside a function's 10 seconds.
        futures_util::stream::iter(ids.iter().copied())
            .map(|id| async move { self.timeline(id).await.map(|t| (id, t)) })
            .buffered(TIMELINE_QUERIES_AT_ONCE)
            .try_collect()
            .await
    }

    async fn touched(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<RequestId>, StoreError> {
        let mut ids = std::collections::BTreeSet::new();
        let (from, to) = (ts(since), ts(until));
        let mut day = since.date_naive();
        // One Query per day of `by_day` (a quarter is some 90), never a Scan.
        while day <= until.date_naive() {
            let items = self
                .all_pages(
                    self.client
                        .query()
                        .table_name(&self.audit)
                        .index_name(BY_DAY)
                        .key_condition_expression("#d = :d AND at_key BETWEEN :since AND :until")
                        .expression_attribute_names("#d", "day")
                        .expression_attribute_values(":d", s(day.format("%Y-%m-%d").to_string()))
                        .expression_attribute_values(":since", s(from.clone()))
                        .expression_attribute_values(":until", s(to.clone()))
                        .projection_expression("request_id, at_key"),
                )
                .await?;
            for item in items {
                let at = item.get("at_key").and_then(|v| v.as_s().ok());
                // BETWEEN is inclusive; `until` is not.
                if at.is_some_and(|a| *a >= to) {
                    continue;
                }
                if let Some(Ok(id)) = item.get("request_id").and_then(|v| v.as_s().ok()).map(|v| v.parse()) {
                    ids.insert(id);
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(ids.into_iter().collect())
    }

    async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = effective_limit(q.limit);
        let since = q.since.map(ts).unwrap_or_else(|| "0000".into());
        let until = q.until.map(ts).unwrap_or_else(|| "9999".into());
        // One partition per actor; without an actor, or for a service (which `by_actor`
        // leaves out), one per day, newest day first.
        let partitions: Vec<(&str, &str, String)> = match &q.actor {
            Some(a) if !is_service(a) => vec![(BY_ACTOR, "who", a.to_string())],
            _ => {
                let last = q.until.unwrap_or_else(Utc::now).date_naive();
                let first = q.since.map_or(last - Duration::days(30), |d| d.date_naive());
                let mut days = vec![];
                let mut d = last;
                while d >= first && days.len() < 366 {
                    days.push((BY_DAY, "day", d.format("%Y-%m-%d").to_string()));
                    d -= Duration::days(1);
                }
                days
            }
        };
        let mut out: Vec<AuditEvent> = vec![];
        for (index, attr, value) in partitions {
            let mut items = self
                .client
                .query()
                .table_name(&self.audit)
                .index_name(index)
                .key_condition_expression("#p = :p AND at_key BETWEEN :since AND :until")
                .expression_attribute_names("#p", attr)
                .expression_attribute_values(":p", s(value.clone()))
                .expression_attribute_values(":since", s(since.clone()))
                .expression_attribute_values(":until", s(until.clone()))
                .scan_index_forward(false)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = items.next().await {
                let e: AuditEvent =
                    from_item(item.map_err(|e| unavailable(e.into_service_error()))?).map_err(corrupt)?;
                // BETWEEN is inclusive; `until` is not. A service's events come from days.
                if q.until.is_some_and(|u| e.at >= u) || q.actor.as_ref().is_some_and(|a| a != &e.actor) {
                    continue;
                }
                out.push(e);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}
