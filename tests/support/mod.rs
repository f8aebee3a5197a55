//! Test support: the real services started by `deploy/local/test.sh`, tierlog nodes run
//! as child processes, and small HTTP and socket helpers that do not use tierlog code.
#![allow(dead_code)] // each test binary uses a different part

pub mod answers;
pub mod cold;
pub mod example;
pub mod hot;
pub mod http;
pub mod kafka;
pub mod node;
pub mod proxy;
pub mod psql;
pub mod sockets;

use std::time::{Duration, Instant};

/// Addresses of the services `deploy/local/services.sh env` exports.
#[derive(Debug, Clone)]
pub struct Services {
    pub kafka_brokers: String,
    pub s3_endpoint: String,
    pub s3_bucket: String,
}

/// The running services, or `None` (test skipped) when they are not configured.
/// Under `CI=true` a missing service fails the test instead.
pub fn services() -> Option<Services> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("TIERLOG_KAFKA_BROKERS"), get("TIERLOG_S3_ENDPOINT")) {
        (Some(kafka_brokers), Some(s3_endpoint)) => Some(Services {
            kafka_brokers,
            s3_endpoint,
            s3_bucket: get("TIERLOG_S3_BUCKET").unwrap_or_else(|| "tierlog".into()),
        }),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but TIERLOG_KAFKA_BROKERS / TIERLOG_S3_ENDPOINT are not set: \
             the broker and S3 server are missing (run the suite with deploy/local/test.sh)"
        ),
        _ => {
            eprintln!("SKIPPED: no services (run with deploy/local/test.sh to start the broker and S3 server)");
            None
        }
    }
}

/// Polls `check` until it returns `Some`, at most `deadline`; reports how long it took.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            eprintln!("{what}: after {:.2} s", start.elapsed().as_secs_f64());
            return v;
        }
        if start.elapsed() > deadline {
            panic!("{what}: not reached within {} s", deadline.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A topic name no other test (or earlier run) uses.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The shared datasets folder (`../shared/datasets` beside the repository).
pub fn dataset(rel: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets").join(rel);
    assert!(path.exists(), "dataset {} is missing", path.display());
    path
}
