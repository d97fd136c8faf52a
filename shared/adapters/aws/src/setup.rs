//! Creates the tables, queues and topics the AWS adapters expect, with the same keys,
//! indexes and redrive policies as `infra/template.yaml`. Used against the local emulator
//! (tests, and trying the AWS adapters without an account).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_types::SdkConfig;

use super::dynamo::{BY_ACTOR, BY_APPROVER, BY_DAY, BY_IMAGE, BY_REQUESTER, BY_STATUS, BY_STATUS_INCLUDES, BY_TIME};
use super::{AwsNames, QueueUrls};

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key fields set")
}

fn attr(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .expect("attribute fields set")
}

fn gsi(name: &str, pk: &str, sk: &str, projection: Projection) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(projection)
        .build()
        .expect("index fields set")
}

/// What a requests-table index projects: `by_status` a few small attributes, the others
/// keys only (`infra/template.yaml` declares the same; a test compares them).
pub fn request_projection(index: &str) -> (ProjectionType, Vec<&'static str>) {
    if index == BY_STATUS {
        (ProjectionType::Include, BY_STATUS_INCLUDES.to_vec())
    } else {
        (ProjectionType::KeysOnly, vec![])
    }
}

/// The requests table's indexes: (name, partition key, sort key). `infra/template.yaml`
/// declares the same (a test compares them).
pub const REQUEST_INDEXES: [(&str, &str, &str); 5] = [
    (BY_STATUS, "status", "created_at"),
    (BY_REQUESTER, "requester", "created_at"),
    (BY_IMAGE, "image_name", "created_at"),
    (BY_TIME, "all", "created_at"),
    (BY_APPROVER, "decided_by", "decided_at"),
];

pub const AUDIT_INDEXES: [(&str, &str, &str); 2] = [(BY_ACTOR, "who", "at_key"), (BY_DAY, "day", "at_key")];

/// Creates every resource under names starting with `prefix`.
pub async fn create(
    sdk: &SdkConfig,
    prefix: &str,
    max_receives: u32,
    visibility_secs: u64,
) -> Result<AwsNames, String> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let requests = format!("{prefix}-requests");
    let audit = format!("{prefix}-audit");
    let string = ScalarAttributeType::S;
    let mut t = ddb
        .create_table()
        .table_name(&requests)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash));
    for a in [
        "pk",
        "status",
        "requester",
        "image_name",
        "all",
        "decided_by",
        "created_at",
        "decided_at",
    ] {
        t = t.attribute_definitions(attr(a, string.clone()));
    }
    for (name, pk, sk) in REQUEST_INDEXES {
        let (kind, include) = request_projection(name);
        let projection = Projection::builder()
            .projection_type(kind)
            .set_non_key_attributes((!include.is_empty()).then(|| include.iter().map(|a| a.to_string()).collect()))
            .build();
        t = t.global_secondary_indexes(gsi(name, pk, sk, projection));
    }
    t.send().await.map_err(|e| err(&e.into_service_error()))?;
    let mut t = ddb
        .create_table()
        .table_name(&audit)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("request_id", KeyType::Hash))
        .key_schema(key("seq", KeyType::Range))
        .attribute_definitions(attr("request_id", string.clone()))
        .attribute_definitions(attr("seq", ScalarAttributeType::N));
    for a in ["who", "day", "at_key"] {
        t = t.attribute_definitions(attr(a, string.clone()));
    }
    for (name, pk, sk) in AUDIT_INDEXES {
        // Audit events are small and never change: projecting them whole costs no more.
        let all = Projection::builder().projection_type(ProjectionType::All).build();
        t = t.global_secondary_indexes(gsi(name, pk, sk, all));
    }
    t.send().await.map_err(|e| err(&e.into_service_error()))?;

    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut urls = vec![];
    for q in ["validate", "provision", "notify"] {
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{q}-dlq"))
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(|e| err(&e.into_service_error()))?;
        let dlq_url = dlq.queue_url.unwrap_or_default();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| err(&e.into_service_error()))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let redrive =
            serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives }).to_string();
        let main = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{q}"))
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_secs.to_string())
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .map_err(|e| err(&e.into_service_error()))?;
        urls.push((main.queue_url.unwrap_or_default(), dlq_url));
    }
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut topics = vec![];
    for t in ["approvals", "notifications"] {
        let out = sns
            .create_topic()
            .name(format!("{prefix}-{t}"))
            .send()
            .await
            .map_err(|e| err(&e.into_service_error()))?;
        topics.push(out.topic_arn.unwrap_or_default());
    }
    let (notify, provision, validate) = (
        urls.pop().unwrap_or_default(),
        urls.pop().unwrap_or_default(),
        urls.pop().unwrap_or_default(),
    );
    Ok(AwsNames {
        requests_table: requests,
        audit_table: audit,
        queues: QueueUrls {
            validate: validate.0,
            provision: provision.0,
            notify: notify.0,
            validate_dlq: Some(validate.1),
            provision_dlq: Some(provision.1),
            notify_dlq: Some(notify.1),
        },
        approvals_topic: topics[0].clone(),
        notifications_topic: topics[1].clone(),
    })
}

/// SDK configuration for a local emulator: its endpoint, a fixed region and dummy keys
/// (emulators accept any), so nothing on the machine's AWS profile is read or needed.
pub async fn emulator_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .endpoint_url(endpoint)
        .http_client(crate::https_client())
        .load()
        .await
}
