//! The validate Lambda: SQS batches from the validate queue, and the scheduled sweep.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    app::telemetry::init();
    let app = validate::wire(&aws_adapter::Lambda::start().await?)?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let budget = app::consumer::Budget::lambda(event.context.deadline, validate::RECORD_BUDGET);
        validate::handle_any(app, event.payload, budget)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
