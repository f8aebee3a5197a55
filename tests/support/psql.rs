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

/// One answer of [`pgjdbc`]: the first column of every row, or (SQLSTATE, message).
pub type JdbcAnswer = Result<Vec<String>, (String, String)>;

/// Runs `steps` ("query" | "prepared" | "fetch", SQL) through pgjdbc, Debian's JDBC
/// driver, with Java's single-file launcher; see `tests/clients/PgjdbcSteps.java`.
pub fn pgjdbc(port: u16, user: &str, password: Option<&str>, steps: &[(&str, &str)]) -> Vec<JdbcAnswer> {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/PgjdbcSteps.java");
    let mut child = Command::new("java")
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(source)
        .arg(format!("jdbc:postgresql://127.0.0.1:{port}/tierlog"))
        .arg(user)
        .arg(password.unwrap_or("-"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("java runs (Java 17 and Debian's libpostgresql-jdbc-java, deploy/local/install.sh clients)");
    use std::io::Write;
    let input: String = steps.iter().map(|(kind, sql)| format!("{kind}\t{}\n", sql.replace('\n', " "))).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pgjdbc steps failed: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<JdbcAnswer> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("ok"), rows, None) => Ok(rows.filter(|r| !r.is_empty()).map(|r| r.split(',').map(str::to_string).collect()).unwrap_or_default()),
                (Some("error"), Some(state), message) => Err((state.to_string(), message.unwrap_or_default().to_string())),
                _ => panic!("unexpected pgjdbc output: {line}"),
            }
        })
        .collect();
    assert_eq!(answers.len(), steps.len(), "one answer per step");
    answers
}
