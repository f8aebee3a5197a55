//! `tierlog-bench cold`: searching and aggregating the cold tier, beside what a user
//! would otherwise run, all in the same run on the same rows.
//!
//! The rows are `tierlog-bench query`'s (four loghub files as JSON, replayed with
//! synthetic timestamps). They go through Kafka into an in-process hot tier, whose sealed
//! generations are migrated into a Delta table in a local folder (`file://`) and, when
//! the S3 server is configured, into one there. Then, for a set of `match()` queries:
//! p50/p99 on cold uncached (a fresh node's caches each run) and cached, on each store;
//! the same queries on the hot tier; the ceiling, a plain tantivy index of the same
//! messages searched directly; DuckDB `ILIKE` over the same Parquet files. Three
//! aggregations over the cold Parquet beside DuckDB reading the same files (answers
//! checked equal). Bytes and GETs fetched per uncached query. Last, compaction of the
//! local table's segments into one, in MB of Parquet per CPU second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow::record_batch::RecordBatch;
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use tierlog_cold::{ColdReader, ColdStore, ColdTable, Compacted, cold_schema, compact, migrate_generation, plan_merges};
use tierlog_core::config::{ColdConfig, ColdLocation, Config, Secret};
use tierlog_core::metrics::Metrics;
use tierlog_core::units::ByteSize;
use tierlog_hot::{StreamSchema, TableKind};
use tierlog_query::{Grant, Protocol, QueryEngine};

use crate::cpu::Phase;
use crate::hot::{HotNode, Source, publish};
use crate::query::{AGGREGATIONS, STREAM, check_same, matched, median, ms, percentile, replay, rows, source_lines};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    source: Source,
    /// Replays of the 8,000 source lines; 125 make 1,000,000 rows, as in `query`.
    #[arg(long, default_value_t = 125)]
    repeat: usize,
    /// Rows per generation, hence per cold segment.
    #[arg(long, default_value_t = 50_000)]
    segment_rows: usize,
    /// Timed runs of each query (cached: after one warm-up run; uncached: each on a
    /// fresh reader with empty caches).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// The S3 server (`deploy/local/services.sh env` sets it); without it, `file://` only.
    #[arg(long, env = "TIERLOG_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "TIERLOG_S3_BUCKET", default_value = "tierlog")]
    s3_bucket: String,
}

/// `match()` queries, each with the `ILIKE` a user would write instead, and the term
/// (tantivy query syntax) the plain-index ceiling searches.
const MATCHES: &[(&str, &str, &str)] = &[
    (
        "SELECT count(*) FROM logs WHERE match(message, 'blk_38865049064139660')",
        "SELECT count(*) FROM logs WHERE message ILIKE '%blk_38865049064139660%'",
        "blk_38865049064139660",
    ),
    (
        "SELECT count(*) FROM logs WHERE match(message, '\"Receiving block\"')",
        "SELECT count(*) FROM logs WHERE message ILIKE '%receiving block%'",
        "\"Receiving block\"",
    ),
    (
        "SELECT count(*) FROM logs WHERE match(message, 'FastLeaderElection AND Notification')",
        "SELECT count(*) FROM logs WHERE message ILIKE '%FastLeaderElection%' AND message ILIKE '%Notification%'",
        "FastLeaderElection AND Notification",
    ),
    (
        "SELECT _timestamp, message FROM logs WHERE match(message, 'shuffle') ORDER BY _timestamp DESC LIMIT 20",
        "SELECT _timestamp, message FROM logs WHERE message ILIKE '%shuffle%' ORDER BY _timestamp DESC LIMIT 20",
        "shuffle",
    ),
];

/// Every generation the same size, sealed soon after its last row; nothing expires.
fn policy(segment_rows: usize) -> String {
    format!("[streams.policy]\nrollover_max_age = \"3s\"\nrollover_max_docs = {segment_rows}\nretention = \"36500d\"\n")
}

/// One cold table and how to read it: its store's config and the store.
struct Cold {
    name: &'static str,
    config: ColdConfig,
    store: ColdStore,
    metrics: Metrics,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let (lines, _) = source_lines(&args.source.datasets)?;
    let payloads = replay(&lines, args.repeat);
    let raw_mb = payloads.iter().map(|p| p.len() as f64).sum::<f64>() / 1e6;
    let topic = args.source.create_topic("cold")?;
    let node = HotNode::start(&args.source.brokers, &topic, &format!("{}{}", STREAM.replace("TOPIC", &topic), policy(args.segment_rows)))?;
    // One generation per chunk: a generation rolls over at the commit that takes it to
    // rollover_max_docs, so each chunk waits for the one before to be committed.
    for (i, chunk) in payloads.chunks(args.segment_rows).enumerate() {
        publish(&args.source.kafka(), &topic, chunk)?;
        node.wait_for("logs", (i * args.segment_rows + chunk.len()) as u64, Phase::start())?;
    }
    let generations = crate::migrate::wait_sealed(&node)?;
    let schema = StreamSchema::new(&node.config.streams[0]);
    let work = std::env::temp_dir().join(format!("tierlog-bench-cold-{}", std::process::id()));

    let mut colds = vec![cold_store("file://", local_config(&work.join("cold")))?];
    if let Some(endpoint) = &args.s3_endpoint {
        colds.push(cold_store("S3 server", s3_config(endpoint, &args.s3_bucket, &topic))?);
    }
    for cold in &colds {
        runtime.block_on(async {
            let mut table = ColdTable::open(&cold.store, "logs", &cold_schema(&schema, TableKind::Rows)).await?;
            for generation in &generations {
                migrate_generation(&cold.store, &mut table, &schema, "logs", generation, TableKind::Rows).await?;
            }
            anyhow::Ok(())
        })?;
    }
    let files = runtime.block_on(async { ColdTable::open_existing(&colds[0].store, "logs").await })?.context("the local table")?.segment_files()?;
    let parquet_mb = files.iter().map(|f| f.bytes as f64).sum::<f64>() / 1e6;
    println!(
        "dataset: {} rows ({raw_mb:.1} MB NDJSON) in {} cold segments of {} rows, {parquet_mb:.1} MB of Parquet; {} runs per query",
        payloads.len(),
        files.len(),
        args.segment_rows,
        args.runs
    );

    let hot = QueryEngine::new(&node.config.streams, &node.config.query, &node.catalog, None, &Metrics::new())?;
    let mut table = Table::new(&format!("match() over the cold tier, {} queries", MATCHES.len()));
    let expected: Vec<Vec<Vec<String>>> =
        MATCHES.iter().map(|(q, _, _)| Ok(rows(&runtime.block_on(hot.sql(q, &Grant::All, Protocol::Http, None))?.batches))).collect::<anyhow::Result<_>>()?;
    table.row("hot tier (same node)", time_each(&runtime, args.runs, &hot, &expected)?, None);

    for cold in &colds {
        let (samples, fetched) = uncached(&runtime, args.runs, &node.config, cold, &work, &expected)?;
        table.row(&format!("cold {} uncached", cold.name), samples, Some(fetched));
        let engine = cold_engine(&node.config, cold, &work.join(format!("cache-{}", cold.name.replace([':', '/', ' '], ""))))?;
        table.row(&format!("cold {} cached", cold.name), time_each(&runtime, args.runs, &engine, &expected)?, None);
    }
    table.row("plain tantivy index (ceiling)", plain_tantivy(&payloads, args.runs, &expected)?, None);
    let paths: Vec<PathBuf> = files.iter().map(|f| work.join("cold/tables/logs").join(&f.path)).collect();
    let ilike: Vec<(String, &str)> = MATCHES.iter().enumerate().map(|(i, (_, q, _))| (format!("ilike {i}"), *q)).collect();
    let duckdb = crate::duckdb::run("duckdb_queries.py", &json!({ "files": paths, "runs": args.runs, "queries": ilike }))?;
    let mut duck_samples = Vec::new();
    for (i, result) in duckdb["results"].as_array().into_iter().flatten().enumerate() {
        let found: Vec<Vec<String>> = serde_json::from_value(result["rows"].clone())?;
        if matched(&found) != matched(&expected[i]) {
            table.notes.push(format!("ILIKE {i} finds {} rows where match() finds {} (substrings, not tokens)", matched(&found), matched(&expected[i])));
        }
        duck_samples.extend(result["seconds"].as_array().into_iter().flatten().filter_map(Value::as_f64).map(Duration::from_secs_f64));
    }
    table.row(&format!("DuckDB ILIKE on the Parquet files ({} threads)", duckdb["threads"]), duck_samples, None);
    table.print();
    if let Some(s3) = colds.get(1) {
        println!("  moto's own latency: {:.1} ms per 4 KiB ranged GET (p50 of 50)", ms(get_latency(&runtime, s3, &files[0])?));
    }
    println!("  targets on file://: uncached p50 <= 300 ms, cached p50 <= 30 ms");

    aggregations(&runtime, &args, &node.config, &colds[0], &work, &paths)?;
    compaction(&runtime, &colds[0], &schema, &node.config, &work, &expected, args.runs)?;
    drop(generations);
    node.stop()?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The p50/p99 table of the `match()` queries.
#[derive(Default)]
struct Table {
    lines: Vec<String>,
    notes: Vec<String>,
}

impl Table {
    fn new(title: &str) -> Table {
        println!("\n{title}:");
        println!("  {:<48} {:>9} {:>9} {:>14} {:>9}", "", "p50 ms", "p99 ms", "KB/query", "GETs/q");
        Table::default()
    }

    fn row(&mut self, name: &str, mut samples: Vec<Duration>, fetched: Option<(f64, f64)>) {
        samples.sort();
        let (kb, gets) = fetched.map_or((String::from("-"), String::from("-")), |(b, g)| (format!("{:.0}", b / 1e3), format!("{g:.1}")));
        let line =
            format!("  {name:<48} {:>9.2} {:>9.2} {kb:>14} {gets:>9}", ms(percentile(&samples, 0.5)), ms(percentile(&samples, 0.99)));
        println!("{line}");
        self.lines.push(line);
    }

    fn print(&self) {
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

fn cold_store(name: &'static str, config: ColdConfig) -> anyhow::Result<Cold> {
    let metrics = Metrics::new();
    let store = ColdStore::open(&config)?.with_metrics(&metrics);
    Ok(Cold { name, config, store, metrics })
}

fn local_config(root: &Path) -> ColdConfig {
    ColdConfig { url: ColdLocation::Local { root: root.to_path_buf() }, ..ColdConfig::default() }
}

fn s3_config(endpoint: &str, bucket: &str, topic: &str) -> ColdConfig {
    ColdConfig {
        url: ColdLocation::S3 { bucket: bucket.to_string(), prefix: format!("bench/{topic}") },
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        allow_http: true,
        access_key_id: Some(Secret::new("test")),
        secret_access_key: Some(Secret::new("test")),
        ..ColdConfig::default()
    }
}

/// A query engine reading `cold` through a reader whose disk cache is `cache_dir`.
fn cold_engine(config: &Config, cold: &Cold, cache_dir: &Path) -> anyhow::Result<QueryEngine> {
    let cache = ColdConfig { cache_dir: Some(cache_dir.to_path_buf()), cache_size: ByteSize(1 << 30), ..cold.config.clone() };
    let reader = Arc::new(ColdReader::new(cold.store.clone(), &cache, &cold.metrics)?);
    Ok(QueryEngine::new(&config.streams, &config.query, &tierlog_hot::HotCatalog::new(), Some(reader), &cold.metrics)?)
}

/// Runs each query once untimed (its answer checked), then `runs` timed rounds.
fn time_each(runtime: &tokio::runtime::Runtime, runs: usize, engine: &QueryEngine, expected: &[Vec<Vec<String>>]) -> anyhow::Result<Vec<Duration>> {
    for ((query, _, _), want) in MATCHES.iter().zip(expected) {
        check_rows(query, &runtime.block_on(engine.sql(query, &Grant::All, Protocol::Http, None))?.batches, want)?;
    }
    let mut samples = Vec::new();
    for _ in 0..runs {
        for (query, _, _) in MATCHES {
            let started = Instant::now();
            runtime.block_on(engine.sql(query, &Grant::All, Protocol::Http, None))?;
            samples.push(started.elapsed());
        }
    }
    Ok(samples)
}

fn check_rows(query: &str, batches: &[RecordBatch], want: &[Vec<String>]) -> anyhow::Result<()> {
    let got = rows(batches);
    if got != want {
        bail!("{query}: the cold tier answers {} rows, the hot tier {}", got.len(), want.len());
    }
    Ok(())
}

/// Each query on a fresh reader (empty caches, nothing pinned): its time, and the bytes
/// and GETs per query the store counted.
fn uncached(
    runtime: &tokio::runtime::Runtime,
    runs: usize,
    config: &Config,
    cold: &Cold,
    work: &Path,
    expected: &[Vec<Vec<String>>],
) -> anyhow::Result<(Vec<Duration>, (f64, f64))> {
    let (bytes_before, gets_before) = reads(&cold.metrics);
    let mut samples = Vec::new();
    for run in 0..runs {
        for (i, (query, _, _)) in MATCHES.iter().enumerate() {
            let dir = work.join(format!("uncached-{run}-{i}"));
            let engine = cold_engine(config, cold, &dir)?;
            let started = Instant::now();
            let answer = runtime.block_on(engine.sql(query, &Grant::All, Protocol::Http, None))?;
            samples.push(started.elapsed());
            check_rows(query, &answer.batches, &expected[i])?;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let (bytes, gets) = reads(&cold.metrics);
    let n = samples.len() as f64;
    Ok((samples, ((bytes - bytes_before) as f64 / n, (gets - gets_before) as f64 / n)))
}

/// Bytes read and GETs (Parquet and bundles; not the Delta log) the store counted.
fn reads(metrics: &Metrics) -> (u64, u64) {
    let text = metrics.render();
    let sum = |prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix) && (l.contains("object=\"data\"") || l.contains("object=\"index\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (sum("tierlog_cold_read_bytes_total{"), sum("tierlog_cold_requests_total{op=\"get\""))
}

/// The ceiling: the same messages in one plain tantivy index in memory, each query's
/// terms searched directly (a count, or the 20 best hits), no SQL, no tiers.
fn plain_tantivy(payloads: &[Vec<u8>], runs: usize, expected: &[Vec<Vec<String>>]) -> anyhow::Result<Vec<Duration>> {
    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::QueryParser;
    use tantivy::schema::{Schema, TEXT};
    let mut builder = Schema::builder();
    let message = builder.add_text_field("message", TEXT);
    let index = tantivy::Index::create_in_ram(builder.build());
    let mut writer: tantivy::IndexWriter = index.writer(256 << 20)?;
    for payload in payloads {
        let record: Value = serde_json::from_slice(payload)?;
        writer.add_document(tantivy::doc!(message => record["message"].as_str().unwrap_or_default()))?;
    }
    writer.commit()?;
    let searcher = index.reader()?.searcher();
    let parser = QueryParser::for_index(&index, vec![message]);
    let queries: Vec<_> = MATCHES.iter().map(|(_, _, q)| parser.parse_query(q)).collect::<Result<_, _>>()?;
    for ((query, want), (sql, _, _)) in queries.iter().zip(expected).zip(MATCHES) {
        if !sql.contains("LIMIT") && searcher.search(query, &Count)? != matched(want) {
            bail!("the plain index counts {} for {sql}, tierlog {}", searcher.search(query, &Count)?, matched(want));
        }
    }
    let mut samples = Vec::new();
    for _ in 0..runs {
        for (query, (sql, _, _)) in queries.iter().zip(MATCHES) {
            let started = Instant::now();
            if sql.contains("LIMIT") {
                searcher.search(query, &TopDocs::with_limit(20).order_by_score())?;
            } else {
                searcher.search(query, &Count)?;
            }
            samples.push(started.elapsed());
        }
    }
    Ok(samples)
}

/// The store's own latency: p50 of 50 small ranged GETs of one Parquet file.
fn get_latency(runtime: &tokio::runtime::Runtime, cold: &Cold, file: &tierlog_cold::SegmentFile) -> anyhow::Result<Duration> {
    let key = cold.store.key(&format!("tables/logs/{}", file.path));
    let mut samples = Vec::new();
    for i in 0..50u64 {
        let start = (i * 4096) % file.bytes.saturating_sub(4096).max(1);
        let started = Instant::now();
        runtime.block_on(cold.store.read_range(&key, start..start + 4096))?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(median(&samples))
}

/// The three aggregations of `tierlog-bench query` over the local cold table (cached:
/// the files are local, as DuckDB's are), beside DuckDB reading the same files.
fn aggregations(runtime: &tokio::runtime::Runtime, args: &Args, config: &Config, cold: &Cold, work: &Path, paths: &[PathBuf]) -> anyhow::Result<()> {
    let engine = cold_engine(config, cold, &work.join("cache-aggregations"))?;
    let duckdb = crate::duckdb::run("duckdb_queries.py", &json!({ "files": paths, "runs": args.runs, "queries": AGGREGATIONS }))?;
    println!("\naggregations over the cold Parquet (file://), median of {} runs, DuckDB {} threads on the same files:", args.runs, duckdb["threads"]);
    println!("  {:<22} {:>12} {:>12} {:>8}", "", "tierlog ms", "DuckDB ms", "ratio");
    for (i, (name, statement)) in AGGREGATIONS.iter().enumerate() {
        let ours = runtime.block_on(engine.sql(statement, &Grant::All, Protocol::Http, None))?.batches;
        let mut times: Vec<Duration> = (0..args.runs)
            .map(|_| {
                let started = Instant::now();
                runtime.block_on(engine.sql(statement, &Grant::All, Protocol::Http, None)).map(|_| started.elapsed())
            })
            .collect::<Result<_, _>>()?;
        times.sort();
        let theirs = &duckdb["results"][i];
        let their_median = crate::duckdb::median_ms(theirs);
        let ours_ms = ms(median(&times));
        println!("  {name:<22} {ours_ms:>12.1} {their_median:>12.1} {:>7.2}x", ours_ms / their_median);
        check_same(name, &rows(&ours), &theirs["rows"])?;
    }
    println!("  (target: tierlog <= 1.2x DuckDB; answers checked equal)");
    Ok(())
}

/// Every segment of the local table merged into one, timed in wall and CPU time; then
/// the `match()` queries again on the merged segment.
fn compaction(
    runtime: &tokio::runtime::Runtime,
    cold: &Cold,
    schema: &StreamSchema,
    config: &Config,
    work: &Path,
    expected: &[Vec<Vec<String>>],
    runs: usize,
) -> anyhow::Result<()> {
    let phase = Phase::start();
    let (sources, bytes_in, bytes_out) = runtime.block_on(async {
        let mut table = ColdTable::open_existing(&cold.store, "logs").await?.context("the local table")?;
        let files = table.segment_files()?;
        let target = files.iter().map(|f| f.bytes).sum::<u64>() + 1;
        let (mut sources, mut bytes_in, mut bytes_out) = (0, 0, 0);
        for merge in plan_merges(&files, target, Duration::ZERO) {
            match compact(&cold.store, &mut table, schema, "logs", TableKind::Rows, &merge, "bench", target).await? {
                Compacted::Merged { sources: n, bytes_in: i, bytes_out: o, .. } => (sources, bytes_in, bytes_out) = (sources + n, bytes_in + i, bytes_out + o),
                other => bail!("the merge did not happen: {other:?}"),
            }
        }
        anyhow::Ok((sources, bytes_in, bytes_out))
    })?;
    let took = phase.stop();
    let mb = bytes_in as f64 / 1e6;
    println!(
        "\ncompaction (file://): {sources} segments, {mb:.1} MB of Parquet -> {:.1} MB, in {:.2} s wall, {:.2} s CPU: {:.1} MB/s per core \
         (rows merged by _timestamp, Parquet and bundle written anew)",
        bytes_out as f64 / 1e6,
        took.wall.as_secs_f64(),
        took.cpu.as_secs_f64(),
        mb / took.cpu.as_secs_f64().max(1e-3),
    );
    let mut table = Table::new("match() after compaction, one segment");
    let (samples, fetched) = uncached(runtime, runs, config, cold, work, expected)?;
    table.row("cold file:// merged, uncached", samples, Some(fetched));
    let engine = cold_engine(config, cold, &work.join("cache-merged"))?;
    table.row("cold file:// merged, cached", time_each(runtime, runs, &engine, expected)?, None);
    Ok(())
}
