//! Justifications and reasons: cleaning answers, and what it accepts is already clean
//! (cleaning it again changes nothing) and within the bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(j) = domain::Justification::parse(text) {
            assert!(j.as_str().chars().count() <= domain::MAX_JUSTIFICATION_CHARS);
            assert_eq!(domain::Justification::parse(j.as_str()).as_ref(), Ok(&j));
        }
    }
});
