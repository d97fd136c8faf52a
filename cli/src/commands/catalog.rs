//! `catalog search`: catalog names matching a word, best first.

use std::process::ExitCode;

use anyhow::Result;
use cgr_request::client::{query, ApiClient};
use reqwest::Method;

use super::explain;
use crate::args::{CatalogCmd, Output};

pub async fn run(api: &ApiClient, cmd: CatalogCmd, out: Output) -> Result<ExitCode> {
    let CatalogCmd::Search { word } = cmd;
    let (_, v) = api
        .call(Method::GET, &format!("/catalog?{}", query(&[("q", &word)])), None, &[])
        .await
        .map_err(explain)?;
    match out {
        Output::Json => println!("{v:#}"),
        Output::Table | Output::Csv => {
            let matches: Vec<String> = serde_json::from_value(v["matches"].clone()).unwrap_or_default();
            if matches.is_empty() {
                println!("no catalog image matches `{word}`");
            }
            for m in matches {
                println!("{m}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
