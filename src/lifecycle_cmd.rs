//! `tierlog lifecycle explain`: ask a running node what its lifecycle does next to each
//! hot generation and cold segment, and why.

use std::io::Write;

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
    let query: Vec<(&str, &str)> = args.stream.as_deref().map(|s| ("stream", s)).into_iter().collect();
    let body = args.node.get_json("/api/v1/lifecycle", &query)?;
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
            if e["table"] != stream["stream"] {
                write!(out, " [{}]", s("table"))?;
            }
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
