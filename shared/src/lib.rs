//! The library every Image Request function links: the domain (parsed values, the status
//! machine, policy, audit chain), the ports the functions depend on, their adapters, and
//! the pieces of HTTP and queue handling the entry points share.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod http;
pub mod notify;
pub mod ports;
pub mod slack;
pub mod telemetry;
pub mod workflow;

pub use app::App;
