//! What the Chainguard API (or anything posing as it) answers: any status and body decode
//! to a value or an error (never a panic), error messages stay bounded, and what decodes
//! feeds the catalog and the entitlement check without a panic.
#![no_main]
use chainguard::auth::exchanged;
use chainguard::client::{decode, entitlement, CallError, MAX_MESSAGE};
use chainguard::types::{Entitlements, Items, Repo, Tag};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

fn bounded<T>(r: Result<T, CallError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(CallError::Status(_, m)) if !m.starts_with("unreadable answer") => {
            assert!(m.chars().count() <= MAX_MESSAGE + 1);
            None
        }
        Err(e) => {
            let _ = e.into_registry();
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [lo, hi, kind, body @ ..] = data else { return };
    let status = StatusCode::from_u16(100 + u16::from_le_bytes([*lo, *hi]) % 500).unwrap();
    match kind % 5 {
        0 => {
            if let Some(repos) = bounded(decode::<Items<Repo>>(status, "/repos", body)) {
                let c = domain::Catalog::from_names(repos.items.iter().map(|r| r.name.as_str()));
                let _ = c.search("py", 10);
            }
        }
        1 => {
            let _ = bounded(decode::<Items<Tag>>(status, "/tags", body));
        }
        2 => {
            if let Some(e) = bounded(decode::<Entitlements>(status, "/entitlements", body)) {
                let _ = entitlement(&e, "python");
            }
        }
        3 => {
            let _ = bounded(decode::<Repo>(status, "/repos", body));
        }
        _ => {
            let now = chrono::Utc::now();
            if let Ok((token, until)) = exchanged(status, body, now) {
                assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
                assert!(until <= now + chainguard::auth::MAX_TOKEN_LIFE);
            }
        }
    }
});
