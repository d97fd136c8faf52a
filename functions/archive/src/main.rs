//! The archive Lambda: the audit table's stream into the S3 archive.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    app::telemetry::init();
    let bucket = std::env::var("ARCHIVE_BUCKET").map_err(|_| "ARCHIVE_BUCKET is not set")?;
    let sdk = aws_adapter::lambda_sdk_config()?;
    let archive = aws_adapter::s3::S3Archive::new(aws_sdk_s3::Client::new(&sdk), &bucket);
    let archive = &archive;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<DynamoDbEventResponse, lambda_runtime::Error>(archive::handle(archive, event.payload).await)
    }))
    .await
}
