//! The provision Lambda: SQS batches from the provision queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    app::telemetry::init();
    let app = provision::wire(&aws_adapter::Lambda::start().await?)?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let budget = app::consumer::Budget::lambda(event.context.deadline, provision::RECORD_BUDGET);
        Ok::<SqsBatchResponse, lambda_runtime::Error>(provision::handle_within(app, event.payload, budget).await)
    }))
    .await
}
