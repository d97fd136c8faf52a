//! Failpoints at the workflow's boundaries (`fail::fail_point!`), compiled in only where a
//! build enables `fail`'s `failpoints` feature (the pipeline tests; never a Lambda), and
//! counted here when they fire, so a test can show its fault happened.

use std::collections::BTreeMap;
use std::sync::Mutex;

static FIRED: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());

/// Called by a failpoint as it fires.
pub fn fire(name: &'static str) {
    if let Ok(mut f) = FIRED.lock() {
        *f.entry(name).or_default() += 1;
    }
}

/// How many times `name` has fired in this process.
pub fn fired(name: &str) -> usize {
    FIRED.lock().map_or(0, |f| f.get(name).copied().unwrap_or(0))
}

/// A failpoint named `$name` that, when it fires, is counted and makes the enclosing
/// function return `$ret`.
#[macro_export]
macro_rules! failpoint {
    ($name:literal, $ret:expr) => {
        fail::fail_point!($name, |_| {
            $crate::failpoints::fire($name);
            $ret
        })
    };
}
