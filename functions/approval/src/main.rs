//! The approval Lambda: API Gateway HTTP API events into the approval router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::adapters::aws::lambda_app().await?;
    lambda_http::run(approval::router(app)).await
}
