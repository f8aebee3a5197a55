//! tierlog-bench: benchmarks that print their figures beside a baseline measured in the
//! same run, on real data from ../shared/datasets. Build with `--release`.

mod cpu;
mod hot;
mod ingest;
mod query;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tierlog-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kafka → hot-searchable throughput, beside a bare rdkafka consumer reading the
    /// same topic, and produce → searchable latency.
    Ingest(ingest::Args),
    /// match() latency and three aggregations over 1M hot rows, beside DuckDB running
    /// the same aggregations over the same rows.
    Query(query::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ingest(args) => ingest::run(args),
        Command::Query(args) => query::run(args),
    }
}
