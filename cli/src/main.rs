//! `cgr-request`: ask for Chainguard images, follow them, approve them, and run the local stack.
//!
//! `args` declares the command line; `commands/` holds one module per command.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // Like any filter: when the reader of our output goes away (`| head -1`), stop quietly
    // instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default action, before any thread writes output.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = args::Cli::parse();
    let json = cli.output == args::Output::Json;
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let code = if e.is::<commands::TimedOut>() {
                commands::EXIT_TIMED_OUT
            } else {
                1
            };
            if json {
                // `{:#}`: what was being done, then why it failed.
                eprintln!(
                    "{}",
                    serde_json::json!({ "error": format!("{e:#}"), "exit_code": code })
                );
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}
