//! One module per command; this one dispatches and holds what they share: the API client
//! the flags or the local credentials give, and how an API error is explained.

mod admin;
mod audit;
mod catalog;
mod files;
mod report;
mod request;
mod serve;
mod show;

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use app::config::read_credentials;
use cgr_request::client::{ApiClient, CallError};

use crate::args::{Cli, Command};

/// The exit codes (README, "The CLI"): 0 done, 1 an error, 2 a usage error (clap's own).
/// Under `--wait`, a request that ended rejected, denied, expired or failed:
pub const EXIT_ENDED_BADLY: u8 = 3;
/// Under `--wait --timeout`, a request that had not ended in time:
pub const EXIT_TIMED_OUT: u8 = 4;

/// How long `--wait` follows a request: to its end, or until `--timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Option<std::time::Duration>,
}

impl crate::args::WaitArgs {
    /// `--wait`, with its `--timeout`, when it was asked for.
    pub fn wanted(self) -> Option<Wait> {
        self.wait.then_some(Wait { timeout: self.timeout })
    }
}

/// `--wait --timeout` ran out: the request is still open.
#[derive(Debug, thiserror::Error)]
#[error("{id} is still {status} after {after}; check again with `cgr-request status {id}`")]
pub struct TimedOut {
    pub id: String,
    pub status: domain::Status,
    pub after: humantime::FormattedDuration,
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let out = cli.output;
    match &cli.command {
        Command::Serve { listen } => return serve::run(&cli.data_dir, *listen).await,
        Command::Audit { verify, args } => return audit::run(&cli.data_dir, verify.as_ref(), args, out).await,
        // On the queues themselves, not through the API.
        Command::Admin(crate::args::Admin::Redrive { queue }) => {
            return admin::redrive(&cli.data_dir, (*queue).into(), out).await
        }
        Command::ValidateFile { file, offline } => {
            // A fork's pull request has no secrets: without a client, check offline.
            let api = if *offline { None } else { client_for(&cli, false).ok() };
            return files::validate(api.as_ref(), file).await;
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "cgr-request", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Openapi => {
            print!("{}", cgr_request::openapi::json());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Report { .. } => {}
        _ if out == crate::args::Output::Csv => {
            return Err(anyhow!("-o csv is for `report` only; use -o json or -o table"));
        }
        _ => {}
    }
    let admin = matches!(cli.command, Command::Admin(_) | Command::Report { .. });
    let api = client_for(&cli, admin)?;
    match cli.command {
        Command::Serve { .. }
        | Command::Audit { .. }
        | Command::Openapi
        | Command::Completions { .. }
        | Command::ValidateFile { .. } => {
            unreachable!("handled above")
        }
        Command::SubmitFile {
            file,
            commit,
            repository,
            pull_request,
            merged_by,
            wait,
        } => {
            let merge = files::merge(repository, pull_request, merged_by, &commit)?;
            files::submit(&api, &file, &commit, merge, wait.wanted(), out).await
        }
        Command::Add {
            image,
            justification,
            env,
            idempotency_key,
            wait,
        } => {
            let new = request::New {
                kind: domain::Kind::Add,
                image,
                justification,
                env,
                idempotency_key,
            };
            request::add(&api, new, wait.wanted(), out).await
        }
        Command::Remove {
            image,
            justification,
            idempotency_key,
            wait,
        } => {
            let new = request::New {
                kind: domain::Kind::Remove,
                image,
                justification,
                env: None,
                idempotency_key,
            };
            request::add(&api, new, wait.wanted(), out).await
        }
        Command::Status { id, wait } => request::status(&api, &id, wait.wanted(), out).await,
        Command::Admin(cmd) => admin::run(&api, cmd, out).await,
        Command::Catalog(cmd) => catalog::run(&api, cmd, out).await,
        Command::Rate { id, rating, comment } => {
            request::rate(&api, &id, rating == crate::args::Rating::Up, comment.as_deref(), out).await
        }
        Command::Report {
            weeks,
            since,
            until,
            html,
        } => report::run(&api, weeks, since, until, html, out).await,
    }
}

/// Credentials from flags or environment, else the local server's credentials file.
fn client_for(cli: &Cli, admin: bool) -> Result<ApiClient> {
    if let (Some(id), Some(secret)) = (&cli.client, &cli.secret) {
        return Ok(ApiClient::new(&cli.url, id, secret));
    }
    let creds = read_credentials(&cli.data_dir).context(
        "no API client: give --client and --secret (or CGR_REQUEST_CLIENT / CGR_REQUEST_SECRET), or start the local server once with `cgr-request serve` to create local credentials",
    )?;
    let chosen = match &cli.client {
        Some(id) => creds.clients.iter().find(|c| &c.id == id),
        None => creds.clients.iter().find(|c| c.admin == admin),
    };
    let c = chosen.ok_or_else(|| {
        anyhow!(
            "no {} client in {}",
            if admin { "admin" } else { "non-admin" },
            cli.data_dir.display()
        )
    })?;
    Ok(ApiClient::new(&cli.url, &c.id, &c.secret))
}

/// An API error with what to do about it, where there is something to do.
fn explain(e: CallError) -> anyhow::Error {
    match &e {
        CallError::Api { status: 401, .. } => {
            anyhow!("{e}\n  The server did not accept this client's signature: check --client/--secret and the clock.")
        }
        CallError::Api { status: 403, .. } => anyhow!("{e}\n  Admin commands need an admin client."),
        _ => anyhow!(e),
    }
}
