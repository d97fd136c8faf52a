//! `cgr-request`: the command-line client of the HTTP API, and the local server that
//! runs the whole system in one process on the embedded backend.

pub mod audit;
pub mod client;
pub mod openapi;
pub mod pr;
pub mod report_html;
pub mod server;
