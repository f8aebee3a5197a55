//! The `tierlog` command: CLI wiring only; the work lives in the workspace crates.

mod config_cmd;
mod lifecycle_cmd;
mod produce;
mod serve;
mod sql_cmd;
mod tail_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tierlog_core::ConfigError;

/// tierlog: a tiered hot/cold log store.
///
/// Logs published to Kafka become searchable in a local hot tier within about a second,
/// then move to Parquet + Delta Lake on object storage, and stay queryable with SQL and
/// full-text search across both tiers.
#[derive(Debug, Parser)]
#[command(name = "tierlog", version, propagate_version = true)]
#[command(after_help = "Logging: set RUST_LOG (e.g. RUST_LOG=debug, RUST_LOG=tierlog=debug,rdkafka=warn).\n\
Start locally: ./deploy/local/quickstart.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: consume the configured streams, serve /health and /ready.
    ///
    /// Checks the broker and the object store at start and keeps checking; /ready
    /// answers 503 with the reason while either is unreachable. Stops cleanly on
    /// SIGINT or SIGTERM.
    Serve {
        /// The node's TOML config (see deploy/example.toml).
        #[arg(short, long, env = "TIERLOG_CONFIG")]
        config: PathBuf,
    },
    /// Inspect config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Publish a file to a Kafka topic, one message per line.
    ///
    /// Lines are sent byte for byte without their line ending (LF or CRLF); empty lines
    /// are skipped. Files ending in .gz are decompressed. The topic is created when
    /// missing.
    ///
    /// Example: tierlog produce --topic apache-errors ../shared/datasets/loghub/Apache_2k.log
    Produce(produce::ProduceArgs),
    /// Run SQL on a running node: one table per stream (`<stream>_errors` for its
    /// undecodable messages); full text with match(column, 'query') and
    /// match_all('query') in WHERE.
    ///
    /// Example: tierlog sql "SELECT rcode_name, count(*) FROM zeek_dns GROUP BY 1 ORDER BY 2 DESC"
    Sql(sql_cmd::SqlArgs),
    /// Full-text search of one stream on a running node: matching rows, newest first.
    ///
    /// Example: tierlog search zeek_dns 'ubuntu AND rcode_name:NXDOMAIN' --limit 5
    Search(sql_cmd::SearchArgs),
    /// Follow a query on a running node: each newly committed matching row, about a
    /// second after it was produced, until Ctrl-C.
    ///
    /// Example: tierlog tail zeek_dns 'rcode_name:NXDOMAIN'
    Tail(tail_cmd::TailArgs),
    /// What the lifecycle (hot → cold → removal) does next to a running node's data.
    #[command(subcommand)]
    Lifecycle(lifecycle_cmd::LifecycleCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config and print it resolved (defaults, environment overrides,
    /// absolute paths; credentials masked). Exits 2 listing every problem otherwise.
    Check {
        #[arg(short, long, env = "TIERLOG_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => serve::run(&config).await,
            Command::Config(ConfigCommand::Check { config }) => config_cmd::check(&config),
            Command::Produce(args) => produce::run(args).await,
            Command::Sql(args) => tokio::task::spawn_blocking(move || sql_cmd::run(args)).await?,
            Command::Search(args) => tokio::task::spawn_blocking(move || sql_cmd::search(args)).await?,
            Command::Tail(args) => tokio::task::spawn_blocking(move || tail_cmd::run(args)).await?,
            Command::Lifecycle(command) => tokio::task::spawn_blocking(move || lifecycle_cmd::run(command)).await?,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(config_err) = err.downcast_ref::<ConfigError>() {
                eprintln!("invalid config:\n{config_err}");
                return ExitCode::from(2);
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
