//! The real `psql` client (PostgreSQL 15), run once per statement.

use std::process::Command;

/// Runs `sql` as `user` (with `password` when given); the unaligned, tuples-only output,
/// or psql's error text.
pub fn psql_as(port: u16, user: &str, password: Option<&str>, sql: &str) -> Result<String, String> {
    run_psql(port, user, password, sql, &[])
}

fn run_psql(port: u16, user: &str, password: Option<&str>, sql: &str, extra: &[&str]) -> Result<String, String> {
    let mut command = Command::new("psql");
    command.args(extra);
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", "tierlog", "-X", "-A", "-t", "-F", ","])
        .args(["-v", "ON_ERROR_STOP=1", "-w", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD");
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let out = command.output().expect("psql is installed (PostgreSQL client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Runs `sql` on a node without users.
pub fn psql(port: u16, sql: &str) -> Result<String, String> {
    psql_as(port, "tierlog", None, sql)
}

/// The port of `node.pg_addr` in a config made by `node::config`.
pub fn pg_port(config: &str) -> u16 {
    let table: toml::Table = toml::from_str(config).expect("config is TOML");
    let addr = table["node"]["pg_addr"].as_str().expect("node.pg_addr is set");
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("node.pg_addr has a port")
}

/// Like [`psql_as`], but a refusal comes back as (SQLSTATE, message), from psql's
/// verbose error report (`ERROR:  42501: permission denied …`).
pub fn psql_state(port: u16, user: &str, password: Option<&str>, sql: &str) -> Result<String, (String, String)> {
    run_psql(port, user, password, sql, &["-v", "VERBOSITY=verbose"]).map_err(|stderr| {
        let line = stderr.lines().find(|l| l.starts_with("ERROR:")).unwrap_or(&stderr).to_string();
        let rest = line.trim_start_matches("ERROR:").trim();
        match rest.split_once(": ") {
            Some((code, message)) if code.len() == 5 => (code.to_string(), message.to_string()),
            _ => (String::new(), stderr),
        }
    })
}

/// Runs `steps` through Python psycopg 3 (libpq, extended query protocol), see
/// `tests/clients/psycopg_steps.py`; one JSON answer per step.
pub fn psycopg(port: u16, user: &str, password: Option<&str>, steps: serde_json::Value) -> Vec<serde_json::Value> {
    let python = std::env::var("TIERLOG_TEST_PYTHON")
        .expect("TIERLOG_TEST_PYTHON names the Python with psycopg (deploy/local/test.sh sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/psycopg_steps.py");
    let conninfo = format!(
        "host=127.0.0.1 port={port} dbname=tierlog user={user}{}",
        password.map(|p| format!(" password={p}")).unwrap_or_default()
    );
    let input = serde_json::json!({ "conninfo": conninfo, "steps": steps }).to_string();
    let mut child = Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the test Python runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "psycopg steps failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).expect("one JSON answer per step")
}
