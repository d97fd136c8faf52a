//! The write-once archive of audit events: a copy nobody can rewrite, which `audit verify`
//! compares the table with, so that a trail cut short *and* its request rewound to match
//! is caught too. One object per event, under a key made of the request id and the
//! sequence number, written once: a redelivered event writes nothing. The embedded
//! backend's folder implements the port here; the consumers share [`archive_events`].

use async_trait::async_trait;

use domain::{AuditEvent, ChainBreak, RequestId};

/// The object key of an event: `audit/<request id>/<sequence, 10 digits>.json`.
pub fn key(id: RequestId, seq: u64) -> String {
    format!("{}{seq:010}.json", prefix(id))
}

/// Where a request's events are.
pub fn prefix(id: RequestId) -> String {
    format!("audit/{id}/")
}

#[derive(Debug, thiserror::Error)]
#[error("the audit archive is unavailable: {0}")]
pub struct ArchiveError(pub String);

#[async_trait]
pub trait Archive: Send + Sync {
    /// Writes `body` under `key` unless an object is there already (write-once): true
    /// when it wrote.
    async fn put_once(&self, key: &str, body: &[u8]) -> Result<bool, ArchiveError>;
    /// The bodies of every object under `prefix`, in key order.
    async fn read(&self, prefix: &str) -> Result<Vec<Vec<u8>>, ArchiveError>;
}

/// What every archive consumer does with the events it is given: each once, as stored
/// (seal included). Returns how many were new.
pub async fn archive_events(archive: &dyn Archive, events: &[AuditEvent]) -> Result<usize, ArchiveError> {
    let mut written = 0;
    for e in events {
        let body = serde_json::to_vec(e).expect("audit events serialise");
        if archive.put_once(&key(e.request_id, e.seq), &body).await? {
            written += 1;
        }
    }
    Ok(written)
}

/// A request's archived events, in sequence order.
pub async fn archived(archive: &dyn Archive, id: RequestId) -> Result<Vec<AuditEvent>, ArchiveError> {
    archive
        .read(&prefix(id))
        .await?
        .iter()
        .map(|b| {
            serde_json::from_slice(b).map_err(|e| ArchiveError(format!("an archived event of {id} does not read: {e}")))
        })
        .collect()
}

/// The table's events against the archive's: the first sequence number where they differ.
pub fn compare(table: &[AuditEvent], archive: &[AuditEvent]) -> Result<(), ChainBreak> {
    let last = table.iter().chain(archive).map(|e| e.seq).max().unwrap_or(0);
    for seq in 1..=last {
        let t = table.iter().find(|e| e.seq == seq);
        let a = archive.iter().find(|e| e.seq == seq);
        let why = match (t, a) {
            (Some(t), Some(a)) if t == a => continue,
            (Some(_), Some(_)) => "it differs from its archived copy (changed after it was written)",
            (None, Some(_)) => "it is in the archive but not in the table (deleted)",
            (Some(_), None) => "it is not in the archive (written around the archive, or not archived yet)",
            (None, None) => "it is in neither the table nor the archive",
        };
        return Err(ChainBreak { seq, why: why.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_sequence_order() {
        let id: RequestId = "req-01JD3XQ4Z8K9M2N5P7R8S0T1V2".parse().unwrap();
        assert_eq!(key(id, 7), "audit/req-01JD3XQ4Z8K9M2N5P7R8S0T1V2/0000000007.json");
        assert!(key(id, 9) < key(id, 10));
    }
}
