//! `tierlog sql` and `tierlog search`: ask a running node over its HTTP API.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// A table (the default on a terminal).
    Table,
    Csv,
    Json,
    Ndjson,
}

/// Where the node is and how to sign in.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's HTTP address.
    #[arg(long, env = "TIERLOG_HTTP_ADDR", default_value = "127.0.0.1:7280")]
    pub addr: String,
    /// Bearer token of a `[[query.users]]` entry, when the node has users.
    #[arg(long, env = "TIERLOG_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl NodeArgs {
    pub(crate) fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    pub(crate) fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    /// `GET path?query` on the node: its JSON answer, or its `error` as the error.
    pub(crate) fn get_json(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
        let request = self.authorize(self.agent().get(&format!("http://{}{path}", self.addr))).query_pairs(query.iter().copied());
        let mut response = request.call().with_context(|| self.unreachable())?;
        let text = response.body_mut().read_to_string().context("reading the answer")?;
        let body: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
        if let Some(error) = body["error"].as_str() {
            bail!("{error}");
        }
        Ok(body)
    }

    pub(crate) fn unreachable(&self) -> String {
        format!("cannot reach tierlog at {} (is `tierlog serve` running?)", self.addr)
    }
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement, e.g. "SELECT level, count(*) FROM app_logs GROUP BY 1".
    pub statement: String,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Output format; default: table on a terminal, CSV otherwise.
    #[arg(short, long, value_enum)]
    pub format: Option<OutputFormat>,
}

pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() { OutputFormat::Table } else { OutputFormat::Csv });
    let wire = match format {
        OutputFormat::Table => "arrow",
        OutputFormat::Csv => "csv",
        OutputFormat::Json => "json",
        OutputFormat::Ndjson => "ndjson",
    };
    let url = format!("http://{}/api/v1/sql?format={wire}", args.node.addr);
    let mut response = args
        .node
        .authorize(args.node.agent().post(&url))
        .header("Content-Type", "application/json")
        .send(serde_json::json!({ "sql": args.statement }).to_string())
        .with_context(|| args.node.unreachable())?;
    let status = response.status();
    let body = response.body_mut().with_config().limit(u64::MAX).read_to_vec().context("reading the answer")?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{message}");
    }
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            let batches = if body.is_empty() {
                Vec::new()
            } else {
                arrow::ipc::reader::StreamReader::try_new(body.as_slice(), None)?.collect::<Result<Vec<_>, _>>()?
            };
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(out, "{}", arrow::util::pretty::pretty_format_batches(&batches)?)?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        _ => out.write_all(&body)?,
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The stream to search.
    pub stream: String,
    /// tantivy query syntax: terms, "phrases", AND/OR/NOT, field:value,
    /// _attributes.key:value; `*` for everything.
    pub query: String,
    /// Hits to show, newest first.
    #[arg(short, long, default_value_t = 20)]
    pub limit: usize,
    /// Only events at or after this RFC 3339 time.
    #[arg(long)]
    pub start: Option<String>,
    /// Only events before this RFC 3339 time.
    #[arg(long)]
    pub end: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let limit = args.limit.to_string();
    let mut query = vec![("stream", args.stream.as_str()), ("q", args.query.as_str()), ("limit", limit.as_str())];
    query.extend(args.start.as_deref().map(|s| ("start", s)));
    query.extend(args.end.as_deref().map(|e| ("end", e)));
    let body = args.node.get_json("/api/v1/search", &query)?;
    let mut out = std::io::stdout().lock();
    for hit in body["hits"].as_array().into_iter().flatten() {
        writeln!(out, "{hit}")?;
    }
    let shown = body["hits"].as_array().map_or(0, Vec::len);
    writeln!(out, "{} matching, {shown} shown (newest first), {} ms", body["total"], body["elapsed_ms"])?;
    Ok(())
}
