//! The approval Lambda: API Gateway HTTP API events into the approval router.

use shared::adapters::Embedded;
use shared::config::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // The embedded backend until the AWS adapters land ("Run on AWS").
    let settings = Settings::load()?.with_local_credentials()?;
    let app = Embedded::open(settings)?.app;
    lambda_http::run(approval::router(app)).await
}
