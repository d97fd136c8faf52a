//! Image references from any channel: parse answers (never panics), and what parses
//! displays back to something that parses to the same reference.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = domain::ImageRef::parse(text) {
            assert_eq!(domain::ImageRef::parse(&r.to_string()).as_ref(), Ok(&r));
        }
    }
});
