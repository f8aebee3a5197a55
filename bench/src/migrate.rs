//! `tierlog-bench migrate`: how fast sealed hot generations become cold segments, and
//! how big those are, on a plain-text log (apache/apache_access.log as a `text` stream)
//! and an NDJSON log (zeek/dns.json.gz as a `json` stream with declared fields).
//!
//! Each file goes once, unchanged, through Kafka into an in-process hot tier; once its
//! generations are sealed, each is migrated (Parquet + index bundle, one Delta commit)
//! into a table in a local folder, timed in wall and CPU time. Beside it, in the same
//! run, DuckDB writes the same file's rows as Parquet with zstd. Sizes are percentages of
//! the original file's bytes (uncompressed).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use serde_json::json;
use tierlog_cold::{ColdStore, ColdTable, cold_schema, migrate_generation};
use tierlog_hot::{GenerationState, StreamSchema, TableKind};

use crate::cpu::Phase;
use crate::hot::{HotNode, Source, publish, zeek_dns_stream};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    source: Source,
}

/// One benchmark input: the file, how DuckDB reads it, and its stream's config.
struct Input {
    name: &'static str,
    file: &'static str,
    duckdb_format: &'static str,
    stream: fn(&str, &str) -> String,
}

fn text_stream(name: &str, topic: &str) -> String {
    format!("[[streams]]\nname = \"{name}\"\ntopics = [\"{topic}\"]\nformat = \"text\"\n")
}

const INPUTS: &[Input] = &[
    Input { name: "plain text", file: "apache/apache_access.log", duckdb_format: "text", stream: text_stream },
    Input { name: "NDJSON", file: "zeek/dns.json.gz", duckdb_format: "ndjson", stream: zeek_dns_stream },
];

/// Every generation the size of the whole file, sealed soon after the last row, kept
/// for as long as the benchmark runs.
const POLICY: &str =
    "[streams.policy]\nrollover_max_age = \"2s\"\nrollover_max_docs = 100000000\nrollover_max_bytes = \"4GiB\"\nretention = \"36500d\"\n";

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    println!(
        "{:<11} {:>8} {:>8} {:>7} {:>7} {:>10} {:>9} {:>8} {:>8} {:>12}",
        "input", "rows", "raw MB", "wall s", "cpu s", "MB/s/core", "parquet%", "bundle%", "total%", "duckdb zstd%"
    );
    for input in INPUTS {
        let path = args.source.datasets.join(input.file);
        let raw = read_raw(&path)?;
        let lines: Vec<Vec<u8>> =
            raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect();
        let raw_mb = raw.len() as f64 / 1e6;

        let topic = args.source.create_topic("migrate")?;
        publish(&args.source.kafka(), &topic, &lines)?;
        let cold_dir = std::env::temp_dir().join(format!("tierlog-bench-migrate-{}-{topic}", std::process::id()));
        let streams = format!("[cold]\nurl = \"file://{}\"\n{}{POLICY}", cold_dir.display(), (input.stream)("logs", &topic));
        let node = HotNode::start(&args.source.brokers, &topic, &streams)?;
        node.wait_for("logs", lines.len() as u64, Phase::start())?;
        let generations = wait_sealed(&node)?;

        let store = ColdStore::open(&node.config.cold)?;
        let schema = StreamSchema::new(&node.config.streams[0]);
        let (mut rows, mut parquet, mut bundle) = (0usize, 0usize, 0usize);
        let phase = Phase::start();
        runtime.block_on(async {
            let mut tables = Vec::new();
            for kind in TableKind::ALL {
                tables.push(ColdTable::open(&store, &kind.table_name("logs"), &cold_schema(&schema, kind)).await?);
            }
            for generation in &generations {
                for (kind, table) in TableKind::ALL.into_iter().zip(tables.iter_mut()) {
                    let done = migrate_generation(&store, table, &schema, "logs", generation, kind).await?;
                    if kind == TableKind::Rows {
                        rows += done.rows;
                    }
                    parquet += done.parquet_bytes;
                    bundle += done.bundle_bytes;
                }
            }
            anyhow::Ok(())
        })?;
        let migrated = phase.stop();
        drop(generations);
        node.stop()?;
        if rows != lines.len() {
            bail!("{}: migrated {rows} rows of {}", input.file, lines.len());
        }

        let duckdb_out = cold_dir.join("duckdb.parquet");
        let duckdb = crate::duckdb::run("duckdb_parquet.py", &json!({ "file": path, "format": input.duckdb_format, "out": duckdb_out }))?;
        let _ = std::fs::remove_dir_all(&cold_dir);
        let pct = |bytes: f64| 100.0 * bytes / raw.len() as f64;
        println!(
            "{:<11} {:>8} {:>8.1} {:>7.2} {:>7.2} {:>10.1} {:>9.1} {:>8.1} {:>8.1} {:>12.1}",
            input.name,
            rows,
            raw_mb,
            migrated.wall.as_secs_f64(),
            migrated.cpu.as_secs_f64(),
            raw_mb / migrated.cpu.as_secs_f64().max(1e-3),
            pct(parquet as f64),
            pct(bundle as f64),
            pct((parquet + bundle) as f64),
            pct(duckdb["bytes"].as_f64().unwrap_or_default()),
        );
        if duckdb["rows"].as_u64() != Some(rows as u64) {
            println!("  note: DuckDB read {} rows of {}", duckdb["rows"], input.file);
        }
    }
    println!(
        "\nraw: the original file (dns.json.gz uncompressed). MB/s/core: raw MB per CPU second of this process while migrating.\n\
         tierlog's Parquet holds the system columns too (_timestamp, _topic, _partition, _offset, ...); DuckDB's, only the file's rows."
    );
    Ok(())
}

/// The file's bytes, decompressed when it ends in `.gz`.
fn read_raw(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut raw = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut raw)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut raw)?;
    }
    Ok(raw)
}

/// The stream's generations once every one holding rows is sealed.
pub(crate) fn wait_sealed(node: &HotNode) -> anyhow::Result<Vec<std::sync::Arc<tierlog_hot::GenerationHandle>>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let generations: Vec<_> = node.catalog.snapshot("logs").into_iter().filter(|g| g.num_docs() > 0).collect();
        if generations.iter().all(|g| g.meta.state == GenerationState::Sealed) {
            return Ok(generations);
        }
        if Instant::now() > deadline {
            bail!("generations not sealed within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
