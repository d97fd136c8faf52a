//! `requested-images.yaml` from a pull request: checking answers (never panics), every
//! problem points at a line of the file, an entry with a problem is never submitted, and
//! an annotation stays on one line.
#![no_main]
use app::requested_images::check_offline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (checked, problems) = check_offline(text);
    let lines = text.lines().count().max(1);
    for p in &problems {
        assert!(p.line >= 1 && p.line <= lines + 1, "line {} of {lines}", p.line);
        assert!(!p.annotation("f").contains(['\n', '\r']));
    }
    for c in &checked {
        assert!(!problems.iter().any(|p| p.line == c.line));
        assert_eq!(domain::ImageRef::parse(&c.image.to_string()).as_ref(), Ok(&c.image));
    }
});
