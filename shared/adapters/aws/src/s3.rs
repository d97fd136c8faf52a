//! The audit archive in S3: one object per event, written with `If-None-Match: *`, so
//! that S3 itself refuses a second write of a key (a redelivered stream batch writes
//! nothing, and nobody with only `PutObject` can replace an object). The bucket's Object
//! Lock (compliance mode, infra/template.yaml) keeps every object for the retention period.

use app::archive::{Archive, ArchiveError};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

pub struct S3Archive {
    client: Client,
    bucket: String,
}

impl S3Archive {
    pub fn new(client: Client, bucket: &str) -> Self {
        S3Archive {
            client,
            bucket: bucket.to_string(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError(e.to_string())
}

#[async_trait]
impl Archive for S3Archive {
    async fn put_once(&self, key: &str, body: &[u8]) -> Result<bool, ArchiveError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                match status {
                    // There already (412), or being written by a concurrent delivery (409).
                    Some(412) | Some(409) => Ok(false),
                    _ => Err(unavailable(aws_sdk_s3::error::DisplayErrorContext(e))),
                }
            }
        }
    }

    async fn read(&self, prefix: &str) -> Result<Vec<Vec<u8>>, ArchiveError> {
        let mut keys = vec![];
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys.sort();
        let mut out = vec![];
        for key in keys {
            let object = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            let bytes = object.body.collect().await.map_err(unavailable)?.into_bytes();
            out.push(bytes.to_vec());
        }
        Ok(out)
    }
}
