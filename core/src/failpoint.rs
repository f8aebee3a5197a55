//! Named crash points for tests: `TIERLOG_FAILPOINT=<name>` makes the process abort (as
//! kill -9 would, no unwinding, no flush) the first time it reaches that step, so a test
//! can prove that restart recovers from a crash exactly there.

use std::sync::OnceLock;

/// Aborts the process when `TIERLOG_FAILPOINT` names `name`; otherwise does nothing.
pub fn hit(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("TIERLOG_FAILPOINT").ok().filter(|v| !v.is_empty()));
    if armed.as_deref() == Some(name) {
        eprintln!("tierlog: failpoint '{name}' reached: aborting (TIERLOG_FAILPOINT)");
        std::process::abort();
    }
}
