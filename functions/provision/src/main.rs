//! The provision Lambda: SQS batches from the provision queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::Embedded;
use shared::config::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // The embedded backend until the AWS adapters land ("Run on AWS").
    let settings = Settings::load()?.with_local_credentials()?;
    let app = Embedded::open(settings)?.app;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(provision::handle(app, event.payload).await)
    }))
    .await
}
