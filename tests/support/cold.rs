//! The cold tier as an outside reader sees it: Python `deltalake` and Polars
//! (`tests/clients/delta_read.py`) on a node's table in the S3 server.

use serde_json::{Value, json};

use super::Services;

/// What the reader sees of `stream`'s table under the node's cold prefix (the config's
/// group id, see `node::config`); `None` while the table does not exist yet.
/// `extra` are txn app ids, `by:COLUMN` and `files` arguments.
pub fn delta_read(services: &Services, prefix: &str, stream: &str, extra: &[&str]) -> Option<Value> {
    let options = json!({
        "AWS_ENDPOINT_URL": services.s3_endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    });
    delta_read_uri(&format!("s3://{}/{prefix}/tables/{stream}", services.s3_bucket), &options, extra)
}

/// [`delta_read`] of a table in a local cold folder (`file://`).
pub fn delta_read_local(root: &std::path::Path, stream: &str, extra: &[&str]) -> Option<Value> {
    delta_read_uri(&root.join("tables").join(stream).display().to_string(), &json!({}), extra)
}

fn delta_read_uri(uri: &str, options: &Value, extra: &[&str]) -> Option<Value> {
    let python = std::env::var("TIERLOG_TEST_PYTHON").expect("TIERLOG_TEST_PYTHON (deploy/local/test.sh sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/delta_read.py");
    let out = std::process::Command::new(python).arg(script).arg(uri).arg(options.to_string()).args(extra).output().unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("TableNotFound") || stderr.contains("no log files") || stderr.contains("Not a Delta table"),
            "delta_read failed: {stderr}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The objects under `prefix` in the test bucket with their sizes, listed by the S3
/// server itself (the test server takes unsigned requests).
pub fn s3_objects(services: &Services, prefix: &str) -> Vec<(String, u64)> {
    let addr: std::net::SocketAddr = services.s3_endpoint.trim_start_matches("http://").parse().expect("the S3 endpoint is host:port");
    let path = format!("/{}?list-type=2&max-keys=1000&prefix={prefix}", services.s3_bucket);
    let answer = super::http::raw(addr, "GET", &path, "", &[]);
    assert!(!answer.contains("<IsTruncated>true"), "more than 1000 objects under {prefix}");
    let between = |s: &str, open: &str, close: &str| -> Option<String> {
        let start = s.find(open)? + open.len();
        Some(s[start..start + s[start..].find(close)?].to_string())
    };
    answer
        .split("<Contents>")
        .skip(1)
        .map(|c| (between(c, "<Key>", "</Key>").expect("a key"), between(c, "<Size>", "</Size>").expect("a size").parse().unwrap()))
        .collect()
}
