//! Asks for an image through the HTTP API and prints where it stands, with the CLI's
//! client (`cgr_request::client`). README, "Calling the API".
//!
//!     IMAGE_REQUEST_URL=http://127.0.0.1:8080 CLIENT_ID=dev CLIENT_SECRET=… \
//!       cargo run -p cgr-request --example submit -- python:3.12 "Data pipeline"

use cgr_request::client::{ApiClient, Ask};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("set {k}"));
    let api = ApiClient::new(&var("IMAGE_REQUEST_URL")?, &var("CLIENT_ID")?, &var("CLIENT_SECRET")?);
    let mut args = std::env::args().skip(1);
    let (image, why) = (args.next().ok_or("an image")?, args.next().ok_or("a justification")?);
    let ask = Ask {
        image: &image,
        justification: &why,
        environment: None,
    };
    // One key per thing asked for: sending it again answers the same request.
    let key = format!("example-{image}-{}", std::process::id());
    let submitted = api.submit(&ask, &key).await?;
    let view = api.request(submitted.id).await?;
    println!("{} {} {}", view.request.id, view.request.image, view.request.status());
    Ok(())
}
