//! `tierlog lifecycle explain`: ask a running node what its lifecycle does next to each
//! hot generation and cold segment, and why.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::sql_cmd::NodeArgs;

#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// For each hot generation and cold segment: state, age, rows, bytes, and what
    /// happens next, when, and which policy key decides it.
    ///
    /// Example: tierlog lifecycle explain --stream zeek_dns
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Only this stream.
    #[arg(short, long)]
    pub stream: Option<String>,
    /// Print the node's JSON answer as it is.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(command: LifecycleCommand) -> anyhow::Result<()> {
    let LifecycleCommand::Explain(args) = command;
    let mut request = args.node.authorize(args.node.agent().get(&format!("http://{}/api/v1/lifecycle", args.node.addr)));
    if let Some(stream) = &args.stream {
        request = request.query("stream", stream);
    }
    let mut response = request.call().with_context(|| args.node.unreachable())?;
    let text = response.body_mut().read_to_string().context("reading the answer")?;
    let body: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    if let Some(error) = body["error"].as_str() {
        bail!("{error}");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    for stream in body["streams"].as_array().into_iter().flatten() {
        writeln!(out, "stream {} (cold table version {})", stream["stream"].as_str().unwrap_or("?"), stream["cold_version"])?;
        for e in stream["entries"].as_array().into_iter().flatten() {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            write!(
                out,
                "  {:<4} {:<40} {:<8} {:>9} rows {:>12} B  age {:>7} s  next: {}",
                s("tier"),
                s("id"),
                s("state"),
                e["rows"],
                e["bytes"],
                e["age_s"],
                s("next")
            )?;
            if let Some(at) = e["at"].as_str() {
                write!(out, " at {at}")?;
            }
            write!(out, " ({})", s("why"))?;
            if let Some(error) = e["error"].as_str() {
                write!(out, "; last try failed: {error}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
