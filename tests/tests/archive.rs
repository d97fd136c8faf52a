//! The archive function on the emulator: stream records of real audit items into a bucket
//! with Object Lock, once each; and `audit verify` against that archive.

use std::sync::Arc;

use app::archive::{archived, Archive};
use aws_adapter::s3::S3Archive;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule, VersioningConfiguration,
};
use pipeline_tests::start_aws;
use serde_json::{json, Value};

/// A bucket as the template makes it: versioned, Object Lock in compliance mode.
async fn locked_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_object_lock_configuration()
        .bucket(name)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .days(400)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The stream's records for a request's audit items, as DynamoDB Streams delivers them
/// to the function (new images in DynamoDB's JSON), with a refusal mixed in. Built from
/// the table's items: moto hands its own stream's records to the stack's event source
/// mapping (disabled, its function never runs) and keeps none to read back.
async fn stream_batch(sdk: &aws_config::SdkConfig, table: &str, id: &str) -> Value {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let mut records = vec![];
    for key in [id.to_string(), format!("refused#{id}")] {
        let items = ddb
            .query()
            .table_name(table)
            .key_condition_expression("request_id = :id")
            .expression_attribute_values(":id", aws_sdk_dynamodb::types::AttributeValue::S(key))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        for item in items {
            let keys: serde_dynamo::Item = item
                .iter()
                .filter(|(k, _)| *k == "request_id" || *k == "seq")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>()
                .into();
            let image: serde_dynamo::Item = item.into();
            let n = records.len() + 1;
            records.push(json!({
                "eventID": format!("e{n}"), "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-29T00:00:00.000"),
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_796_000_000, "Keys": keys, "NewImage": image,
                    "SequenceNumber": format!("{n:021}"), "SizeBytes": 512, "StreamViewType": "NEW_IMAGE"
                }
            }));
        }
    }
    json!({ "Records": records })
}

#[tokio::test]
async fn stream_records_are_archived_once_and_verify_compares_with_the_archive() {
    let s = start_aws().await;
    let id = s.submit("busybox", None).await;
    s.wait_for(&id, "pending_approval").await;
    let (_, deny) = s.links(&id, "platform-admin@example.com").await;
    // A refused attempt too: the second use of a link is recorded beside the chain.
    s.http.post(&deny).form(&[("reason", "not now")]).send().await.unwrap();
    s.http.post(&deny).send().await.unwrap();
    s.wait_for(&id, "denied").await;
    let (sdk, names, _) = s.aws.as_ref().unwrap();
    let s3 = aws_sdk_s3::Client::new(sdk);
    let bucket = format!("archive-{}", ulid::Ulid::new().to_string().to_lowercase());
    locked_bucket(&s3, &bucket).await;
    let archive = S3Archive::new(s3.clone(), &bucket);

    let batch: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(stream_batch(sdk, &names.audit_table, &id).await).unwrap();
    let events = s.running.app.audit.timeline(id.parse().unwrap()).await.unwrap();
    assert!(batch.records.len() > events.len(), "the refusal is in the batch too");
    let answer = archive::handle(&archive, batch.clone()).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(
        archived(&archive, id.parse().unwrap()).await.unwrap(),
        events,
        "the events, as stored"
    );

    // Delivered again: nothing is written twice (S3 refuses a second write of a key).
    let versions = |s3: aws_sdk_s3::Client| {
        let bucket = bucket.clone();
        async move {
            s3.list_object_versions()
                .bucket(&bucket)
                .send()
                .await
                .unwrap()
                .versions()
                .len()
        }
    };
    let before = versions(s3.clone()).await;
    assert_eq!(before, events.len());
    let answer = archive::handle(&archive, batch).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(versions(s3.clone()).await, before);
    assert!(!archive
        .put_once(&app::archive::key(id.parse().unwrap(), 1), b"forged")
        .await
        .unwrap());

    // Object Lock in compliance mode: an archived event cannot be deleted.
    let first = app::archive::key(id.parse().unwrap(), 1);
    let version = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix(&first)
        .send()
        .await
        .unwrap()
        .versions()[0]
        .version_id()
        .unwrap()
        .to_string();
    let deleted = s3
        .delete_object()
        .bucket(&bucket)
        .key(&first)
        .version_id(version)
        .send()
        .await;
    assert!(deleted.is_err(), "a locked version cannot be deleted");

    // audit verify against this archive: a trail cut short and rewound is caught.
    let keys = s.running.app.audit_keys().unwrap().clone();
    let stores = cgr_request::audit::Stores {
        requests: s.running.app.store.clone(),
        audit: s.running.app.audit.clone(),
        archive: Some(Arc::new(archive) as Arc<dyn Archive>),
        place: "the test stack".into(),
    };
    let ok = cgr_request::audit::verify(&stores, &id, &keys).await.unwrap();
    assert_eq!(ok.archived, Some(events.len()));
    let last = events.last().unwrap();
    s.delete_event(&id, last.seq).await;
    s.rewind(&id, last.seq - 1, &events[events.len() - 2].hash).await;
    let err = cgr_request::audit::verify(&stores, &id, &keys)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("broken at event {}", last.seq)) && err.contains("in the archive but not in the table"),
        "{err}"
    );
}
