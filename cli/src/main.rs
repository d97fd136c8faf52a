//! `cgr-request`: ask for Chainguard images, follow them, approve them, and run the local stack.
//!
//! `args` declares the command line; `commands/` holds one module per command.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the context chain: what was being done, then why it failed.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
