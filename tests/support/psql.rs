//! The real `psql` client (PostgreSQL 15), run once per statement.

use std::process::Command;

/// Runs `sql` as `user` (with `password` when given); the unaligned, tuples-only output,
/// or psql's error text.
pub fn psql_as(port: u16, user: &str, password: Option<&str>, sql: &str) -> Result<String, String> {
    let mut command = Command::new("psql");
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
