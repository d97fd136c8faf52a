//! The intake Lambda: API Gateway HTTP API events into the intake router.

use shared::adapters::Embedded;
use shared::config::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // The embedded backend until the AWS adapters land ("Run on AWS"); the handlers are
    // the same either way.
    let settings = Settings::load()?.with_local_credentials()?;
    let app = Embedded::open(settings)?.app;
    lambda_http::run(intake::router(app)).await
}
