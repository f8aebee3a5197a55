//! The DuckDB baselines: Python scripts under `bench/baseline/`, run with the DuckDB that
//! `deploy/local/install.sh duckdb` installs (on first use), a JSON request on stdin and
//! a JSON answer on stdout.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// Runs `bench/baseline/<script>` on `request`; its answer.
pub fn run(script: &str, request: &Value) -> anyhow::Result<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let install = Command::new(root.join("deploy/local/install.sh"))
        .arg("duckdb")
        .stderr(Stdio::inherit())
        .output()
        .context("running deploy/local/install.sh duckdb")?;
    if !install.status.success() {
        bail!("deploy/local/install.sh duckdb failed");
    }
    let python = String::from_utf8(install.stdout)?.trim().to_string();
    let mut child = Command::new(&python)
        .arg(root.join("bench/baseline").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {python}"))?;
    child.stdin.take().expect("piped").write_all(request.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("the DuckDB baseline {script} failed");
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The median of a baseline result's `seconds`, in ms.
pub fn median_ms(result: &Value) -> f64 {
    let mut times: Vec<f64> = result["seconds"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN) * 1e3
}
