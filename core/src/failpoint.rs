//! Named crash points for tests: `TIERLOG_FAILPOINT=<name>` makes the process abort (as
//! kill -9 would, no unwinding, no flush) the first time it reaches that step, so a test
//! can prove that restart recovers from a crash exactly there. `TIERLOG_PAUSEPOINT=
//! <name>=<ms>` makes a step wait instead, so that a test can make something happen in
//! between (a retention commit while a query holds its pinned version).

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

/// How long the step `name` should wait, when `TIERLOG_PAUSEPOINT` is `<name>=<ms>`.
/// The caller sleeps (asynchronously where it runs on a runtime).
pub fn pause(name: &str) -> Option<std::time::Duration> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var("TIERLOG_PAUSEPOINT").ok()?;
        let (point, ms) = value.split_once('=')?;
        Some((point.to_string(), ms.parse().ok()?))
    });
    match armed {
        Some((point, ms)) if point == name => {
            eprintln!("tierlog: pausepoint '{name}' reached: waiting {ms} ms (TIERLOG_PAUSEPOINT)");
            Some(std::time::Duration::from_millis(*ms))
        }
        _ => None,
    }
}
