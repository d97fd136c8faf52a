//! `serve`: the whole system locally, until Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use app::config::Settings;
use cgr_request::server;

pub async fn run(data_dir: &Path, listen: Option<SocketAddr>) -> Result<ExitCode> {
    app::telemetry::init();
    let mut settings = Settings::load().context("reading the configuration")?;
    settings.data_dir = data_dir.into();
    if let Some(l) = listen {
        settings.listen = l;
    }
    let running = server::start(settings, server::Options::default())
        .await
        .context("starting the local server")?;
    eprintln!(
        "Image Request is listening on http://{}\n  state:       {}\n  outbox:      {}\n  credentials: {}\nStop with Ctrl-C.",
        running.addr,
        running.app.settings.data_dir.join("image-request.db").display(),
        running.app.settings.data_dir.join("outbox").display(),
        app::config::credentials_path(&running.app.settings.data_dir).display(),
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        _ = running.wait() => bail!("the server stopped"),
    }
    Ok(ExitCode::SUCCESS)
}
