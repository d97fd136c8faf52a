//! The intake Lambda: API Gateway HTTP API events into the intake router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    app::telemetry::init();
    let app = intake::wire(&aws_adapter::Lambda::start().await?)?;
    lambda_http::run(intake::router(app)).await
}
