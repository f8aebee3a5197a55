//! `tierlog tail`: follow a query on a running node (`GET /api/v1/tail`, Server-Sent
//! Events), one line per newly committed matching row.

use std::io::{BufRead, BufReader, Write};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::sql_cmd::NodeArgs;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// The stream to follow.
    pub stream: String,
    /// tantivy query syntax (terms, "phrases", AND/OR/NOT, field:value); `*` or nothing
    /// for every row.
    #[arg(default_value = "*")]
    pub query: String,
    /// Print each row as its JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: TailArgs) -> anyhow::Result<()> {
    let url = format!("http://{}/api/v1/tail", args.node.addr);
    let request = args.node.authorize(args.node.agent().get(&url)).query("stream", &args.stream).query("q", &args.query);
    let mut response = request.call().with_context(|| args.node.unreachable())?;
    if !response.status().is_success() {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_string));
        bail!("{}", message.unwrap_or(text));
    }
    let reader = BufReader::new(response.into_body().into_reader());
    let mut out = std::io::stdout().lock();
    let (mut event, mut data) = (String::new(), String::new());
    for line in reader.lines() {
        let line = line.context("reading the tail")?;
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(more) = line.strip_prefix("data:") {
            data.push_str(more.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let payload: Value = serde_json::from_str(&data).with_context(|| format!("not JSON: {data}"))?;
            match event.as_str() {
                "row" if args.json => writeln!(out, "{payload}")?,
                "row" => writeln!(out, "{}", line_of(&payload))?,
                "ready" => eprintln!("following {} for {} (Ctrl-C to stop)", args.stream, args.query),
                _ => bail!("{}", payload["error"].as_str().unwrap_or(&data)),
            }
            out.flush()?;
            data.clear();
        }
    }
    bail!("the node closed the tail")
}

/// `_timestamp`, then the text fields as they are and the other fields as `key=value`.
fn line_of(row: &Value) -> String {
    let mut line = row["_timestamp"].as_str().unwrap_or("-").to_string();
    for (key, value) in row.as_object().into_iter().flatten() {
        match value {
            _ if key.starts_with('_') => {}
            Value::Null => {}
            Value::String(s) if matches!(key.as_str(), "message" | "body") => line.push_str(&format!(" {s}")),
            Value::String(s) => line.push_str(&format!(" {key}={s}")),
            other => line.push_str(&format!(" {key}={other}")),
        }
    }
    line
}
