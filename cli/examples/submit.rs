//! Asks for an image through the HTTP API and prints where it stands, with the CLI's
//! client (`cgr_request::client`). README, "Calling the API".
//!
//!     IMAGE_REQUEST_URL=http://127.0.0.1:8080 CLIENT_ID=dev CLIENT_SECRET=… \
//!       cargo run -p cgr-request --example submit -- python:3.12 "Data pipeline"

use cgr_request::client::{ApiClient, Ask};

type Error = Box<dyn std::error::Error>;

/// Asks for `image` and answers `<id> <image> <status>`.
async fn ask_for(image: &str, why: &str) -> Result<String, Error> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("set {k}"));
    let api = ApiClient::new(&var("IMAGE_REQUEST_URL")?, &var("CLIENT_ID")?, &var("CLIENT_SECRET")?);
    let ask = Ask {
        image,
        justification: why,
        environment: None,
    };
    // One key per thing asked for: sending it again answers the same request.
    let key = format!("example-{image}-{}", std::process::id());
    let submitted = api.submit(&ask, &key).await?;
    let view = api.request(submitted.id).await?;
    Ok(format!(
        "{} {} {}",
        view.request.id,
        view.request.image,
        view.request.status()
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (image, why) = (args.next().ok_or("an image")?, args.next().ok_or("a justification")?);
    println!("{}", ask_for(&image, &why).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The README test (tests/tests/trust.rs) runs this against a server it starts, with
    /// the server's address and a client in the environment: `cargo test` builds examples
    /// as test binaries, so this is how the example's own code gets run there. Without a
    /// server (a plain `cargo test`) there is nothing to ask.
    #[tokio::test]
    async fn asks_for_an_image() {
        if std::env::var("IMAGE_REQUEST_URL").is_err() {
            return;
        }
        println!(
            "{}",
            super::ask_for("go:1.23", "Builds for the payments team").await.unwrap()
        );
    }
}
