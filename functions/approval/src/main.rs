//! The approval Lambda: API Gateway HTTP API events into the approval router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    app::telemetry::init();
    let app = approval::wire(&aws_adapter::Lambda::start().await?)?;
    lambda_http::run(approval::router(app)).await
}
