//! Authentication: HMAC-signed API clients and signed approval-link tokens.

pub mod client;
pub mod token;
