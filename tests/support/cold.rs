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

/// What `table`'s Delta log (under the node's `prefix`) says, read straight from the S3
/// server, commit file by commit file: the live data files with their add actions, and
/// the files commits removed. Paths are relative to the table root.
#[derive(Debug, Default)]
pub struct DeltaLog {
    pub live: std::collections::BTreeMap<String, Value>,
    pub removed: std::collections::BTreeMap<String, Value>,
    /// Each commit's operation and its add and remove actions.
    pub commits: Vec<(String, Vec<Value>)>,
}

impl DeltaLog {
    pub fn read(services: &Services, prefix: &str, table: &str) -> DeltaLog {
        let addr: std::net::SocketAddr = services.s3_endpoint.trim_start_matches("http://").parse().expect("the S3 endpoint is host:port");
        let mut commits: Vec<String> =
            s3_objects(services, &format!("{prefix}/tables/{table}/_delta_log/")).into_iter().map(|(k, _)| k).filter(|k| k.ends_with(".json")).collect();
        commits.sort();
        let mut log = DeltaLog::default();
        let mut added: std::collections::BTreeMap<String, Value> = Default::default();
        for key in commits {
            // The test server checks no signature, but wants one said to be there.
            let auth = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
            let answer = super::http::raw(addr, "GET", &format!("/{}/{key}", services.s3_bucket), "", &[auth]);
            let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
            assert!(head.starts_with("HTTP/1.1 200"), "{key}: {answer}");
            let (mut operation, mut actions) = (String::new(), Vec::new());
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let action: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}: {line}"));
                if let Some(op) = action["commitInfo"]["operation"].as_str() {
                    operation = op.to_string();
                }
                if let Some(add) = action.get("add") {
                    let path = decode(add["path"].as_str().unwrap());
                    added.insert(path.clone(), add.clone());
                    log.live.insert(path, add.clone());
                    actions.push(action.clone());
                }
                if let Some(remove) = action.get("remove") {
                    let path = decode(remove["path"].as_str().unwrap());
                    log.live.remove(&path);
                    log.removed.insert(path.clone(), added.get(&path).cloned().unwrap_or(Value::Null));
                    actions.push(action.clone());
                }
            }
            log.commits.push((operation, actions));
        }
        log
    }

    /// The bundle key (`tierlog.index` tag) of each add action of `files`.
    pub fn bundles<'a>(files: impl IntoIterator<Item = &'a Value>) -> std::collections::BTreeSet<String> {
        files.into_iter().filter_map(|add| add["tags"]["tierlog.index"].as_str().map(str::to_string)).collect()
    }
}

/// A Delta path as stored (URI-encoded, RFC 2396) as the object key part it names.
fn decode(path: &str) -> String {
    path.replace("%3D", "=").replace("%3d", "=").replace("%2F", "/")
}
