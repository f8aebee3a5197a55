//! tierlog-bench: benchmarks that print their figures beside a baseline measured in the
//! same run, on real data from ../shared/datasets. Build with `--release`.

mod cold;
mod cpu;
mod duckdb;
mod hot;
mod ingest;
mod migrate;
mod query;
mod tail;

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
    /// Sealed generations → Parquet + index bundle + Delta commit: MB/s of raw input per
    /// core and sizes as % of raw, on a plain-text and an NDJSON log, beside the Parquet
    /// DuckDB writes (zstd) for the same rows.
    Migrate(migrate::Args),
    /// match() p50/p99 on the cold tier, uncached and cached, on file:// and the S3
    /// server, beside the hot tier, a plain tantivy index (the ceiling) and DuckDB ILIKE
    /// over the same Parquet; three aggregations beside DuckDB on the same files; bytes
    /// fetched per query; compaction MB/s per core.
    Cold(cold::Args),
    /// Kafka → hot tier throughput alone and with 50 live-tail followers on ten
    /// queries, each follower's rows checked against SQL counts.
    Tail(tail::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ingest(args) => ingest::run(args),
        Command::Query(args) => query::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Cold(args) => cold::run(args),
        Command::Tail(args) => tail::run(args),
    }
}
