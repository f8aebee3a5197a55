//! The two stores every cold test runs on: a local folder, and the real S3-protocol
//! server that `deploy/local/test.sh` starts (under `CI=true` a missing server fails).
#![allow(dead_code)] // each test binary uses a different part

use serde_json::{Value, json};
use tierlog_core::config::{ColdConfig, ColdLocation, Secret};

pub fn local(root: &std::path::Path) -> ColdConfig {
    ColdConfig { url: ColdLocation::Local { root: root.to_path_buf() }, ..ColdConfig::default() }
}

/// A config for a fresh prefix on the S3 server, and the storage options Python
/// `deltalake` needs to read it; `None` (skipped) without a server outside CI.
pub fn s3(name: &str) -> Option<(ColdConfig, Value)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = get("TIERLOG_S3_ENDPOINT") else {
        assert!(get("CI").as_deref() != Some("true"), "CI=true but TIERLOG_S3_ENDPOINT is not set: the S3 server is missing");
        eprintln!("SKIPPED: no S3 server (run with deploy/local/test.sh)");
        return None;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    Some(s3_at(&endpoint, &format!("{name}-{}-{nanos}", std::process::id())))
}

/// A config for `prefix` on the S3 server at `endpoint`, and the reader's options.
pub fn s3_at(endpoint: &str, prefix: &str) -> (ColdConfig, Value) {
    let bucket = std::env::var("TIERLOG_S3_BUCKET").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "tierlog".into());
    let endpoint = endpoint.to_string();
    let config = ColdConfig {
        url: ColdLocation::S3 { bucket, prefix: prefix.to_string() },
        endpoint: Some(endpoint.clone()),
        allow_http: true,
        access_key_id: Some(Secret::new("test")),
        secret_access_key: Some(Secret::new("test")),
        ..ColdConfig::default()
    };
    let options = json!({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    });
    (config, options)
}

/// What Python `deltalake` and Polars (`tests/clients/delta_read.py`) see of the table at
/// `uri`; `extra` are txn app ids and `by:COLUMN` arguments.
pub fn delta_read(uri: &str, options: &Value, extra: &[&str]) -> Value {
    let python = std::env::var("TIERLOG_TEST_PYTHON").expect("TIERLOG_TEST_PYTHON (deploy/local/test.sh sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/delta_read.py");
    let out = std::process::Command::new(python).arg(script).arg(uri).arg(options.to_string()).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
