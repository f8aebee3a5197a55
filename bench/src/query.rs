//! `tierlog-bench query`: `match()` latency and three aggregations over ≥ 1 million hot
//! rows, beside DuckDB running the same aggregations over the same rows in the same run.
//!
//! The rows are four loghub files (HDFS, Hadoop, Spark, Zookeeper) turned into JSON
//! (`level`, `component`, `message` = the whole line) and replayed with synthetic,
//! evenly spaced timestamps. They go through Kafka into an in-process hot tier and are
//! queried through tierlog's SQL engine; DuckDB loads the same NDJSON file into memory.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use tierlog_core::metrics::Metrics;
use tierlog_query::{Grant, Protocol, QueryEngine};

use crate::cpu::Phase;
use crate::hot::{HotNode, Source, publish};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    source: Source,
    /// Replays of the 8,000 source lines; 125 make 1,000,000 rows.
    #[arg(long, default_value_t = 125)]
    repeat: usize,
    /// Timed runs of each query (after one warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// More statements to time on tierlog alone (repeatable), e.g. to see where an
    /// aggregation spends its time.
    #[arg(long = "sql")]
    extra: Vec<String>,
}

/// Source files and how to find level and component in their lines.
const SOURCES: &[(&str, Layout)] = &[
    ("HDFS_2k.log", Layout::Tokens { level: 3, component: 4 }),
    ("Hadoop_2k.log", Layout::Tokens { level: 2, component: 4 }),
    ("Spark_2k.log", Layout::Tokens { level: 2, component: 3 }),
    ("Zookeeper_2k.log", Layout::Zookeeper),
];

#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Whitespace-separated tokens at these positions (the component ends with ':').
    Tokens { level: usize, component: usize },
    /// `date time - LEVEL [thread:Class@line] - message`.
    Zookeeper,
}

impl Layout {
    fn parse(self, line: &str) -> Option<(String, String)> {
        match self {
            Layout::Tokens { level, component } => {
                let tokens: Vec<&str> = line.split_whitespace().collect();
                Some((tokens.get(level)?.to_string(), tokens.get(component)?.trim_end_matches(':').to_string()))
            }
            Layout::Zookeeper => {
                let head = line.split(" - ").nth(1)?;
                let (level, place) = head.split_once(char::is_whitespace)?;
                let class = place.trim().trim_start_matches('[').trim_end_matches(']').rsplit(':').next()?;
                Some((level.to_string(), class.split('@').next()?.to_string()))
            }
        }
    }
}

pub(crate) const STREAM: &str = r#"
[[streams]]
name = "logs"
topics = ["TOPIC"]
format = "json"
timestamp_field = "ts"
fields = [
  { name = "level", type = "keyword" },
  { name = "component", type = "keyword" },
  { name = "message", type = "text" },
]
"#;

/// The same SQL text runs on both engines (DuckDB's table has the same column names).
pub(crate) const AGGREGATIONS: &[(&str, &str)] = &[
    ("count by level", "SELECT level, count(*) AS n FROM logs GROUP BY level ORDER BY n DESC, level"),
    ("top-10 components", "SELECT component, count(*) AS n FROM logs GROUP BY component ORDER BY n DESC, component LIMIT 10"),
    (
        "per-minute histogram",
        "SELECT date_trunc('minute', _timestamp) AS minute, count(*) AS n FROM logs GROUP BY 1 ORDER BY 1",
    ),
];

/// Full-text queries: counts and the newest hits, rare and common terms, a phrase, a
/// boolean query.
const MATCHES: &[&str] = &[
    "SELECT count(*) FROM logs WHERE match(message, 'terminating')",
    "SELECT count(*) FROM logs WHERE match(message, '\"Receiving block\"')",
    "SELECT count(*) FROM logs WHERE match(message, 'exception OR error')",
    "SELECT count(*) FROM logs WHERE match(message, 'FastLeaderElection AND Notification')",
    "SELECT count(*) FROM logs WHERE match(message, 'blk_38865049064139660')",
    "SELECT _timestamp, message FROM logs WHERE match(message, 'shuffle') ORDER BY _timestamp DESC LIMIT 20",
    "SELECT _timestamp, message FROM logs WHERE match(message, 'Registered') ORDER BY _timestamp DESC LIMIT 20",
    "SELECT _timestamp, level FROM logs WHERE match(message, 'timeout OR refused') ORDER BY _timestamp DESC LIMIT 20",
];

/// Spacing of the synthetic timestamps: 1M rows span about 17 hours (1,000 minutes).
const ROW_SPACING_MS: i64 = 60;

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = &args.source;
    let (lines, skipped) = source_lines(&source.datasets)?;
    let payloads = replay(&lines, args.repeat);
    let num_rows = payloads.len() as u64;
    let file = std::env::temp_dir().join(format!("tierlog-bench-query-{}.ndjson", std::process::id()));
    write_ndjson(&file, &payloads)?;
    println!(
        "dataset: loghub HDFS+Hadoop+Spark+Zookeeper ({} lines, {skipped} without level skipped) x{} = {num_rows} rows, \
         {:.1} MB NDJSON; timestamps synthetic, {ROW_SPACING_MS} ms apart",
        lines.len(),
        args.repeat,
        payloads.iter().map(|p| p.len() as f64).sum::<f64>() / 1e6,
    );

    let topic = source.create_topic("query")?;
    let produced = publish(&source.kafka(), &topic, &payloads)?;
    let node = HotNode::start(&source.brokers, &topic, &STREAM.replace("TOPIC", &topic))?;
    let ingested = node.wait_for("logs", num_rows, Phase::start())?;
    let generations = node.catalog.snapshot("logs");
    let segments: usize = generations.iter().map(|g| g.searcher().segment_readers().len()).sum();
    println!(
        "produced in {:.1} s, hot-searchable {:.1} s later: {} generation(s), {segments} tantivy segments",
        produced.as_secs_f64(),
        ingested.wall.as_secs_f64(),
        generations.len()
    );
    drop(generations);

    let runtime = tokio::runtime::Runtime::new()?;
    let engine = QueryEngine::new(&node.config.streams, &node.config.query, &node.catalog, None, &Metrics::new())?;
    let sql = |statement: &str| -> anyhow::Result<(Duration, Vec<RecordBatch>)> {
        let started = Instant::now();
        let result = runtime
            .block_on(engine.sql(statement, &Grant::All, Protocol::Http, None))
            .with_context(|| statement.to_string())?;
        Ok((started.elapsed(), result.batches))
    };
    // One warm-up run (its rows returned), then `runs` timed runs, sorted.
    let timed = |statement: &str| -> anyhow::Result<(Vec<RecordBatch>, Vec<Duration>)> {
        let (_, rows) = sql(statement)?;
        let mut times: Vec<Duration> = (0..args.runs).map(|_| sql(statement).map(|(t, _)| t)).collect::<Result<_, _>>()?;
        times.sort();
        Ok((rows, times))
    };

    println!("\nmatch() over {num_rows} hot rows, {} queries x {} runs:", MATCHES.len(), args.runs);
    let mut samples = Vec::new();
    for statement in MATCHES {
        let (warm, times) = timed(statement)?;
        println!("  {:>8.2} ms median, {:>5} rows  {statement}", ms(median(&times)), matched(&rows(&warm)));
        samples.extend(times);
    }
    samples.sort();
    println!("  all: p50 {:.2} ms, p99 {:.2} ms (target p50 <= 10 ms)", ms(percentile(&samples, 0.5)), ms(percentile(&samples, 0.99)));

    let duckdb = duckdb_baseline(&file, args.runs)?;
    println!(
        "\naggregations, median of {} runs (DuckDB {} threads, in-memory table loaded in {:.1} s, {} rows):",
        args.runs,
        duckdb["threads"],
        duckdb["load_s"].as_f64().unwrap_or_default(),
        duckdb["rows"]
    );
    println!("  {:<22} {:>12} {:>12} {:>8}", "", "tierlog ms", "DuckDB ms", "ratio");
    for (i, (name, statement)) in AGGREGATIONS.iter().enumerate() {
        let (ours, times) = timed(statement)?;
        let theirs = &duckdb["results"][i];
        let their_median = crate::duckdb::median_ms(theirs);
        let ours_ms = ms(median(&times));
        println!("  {name:<22} {ours_ms:>12.1} {their_median:>12.1} {:>7.2}x", ours_ms / their_median);
        check_same(name, &rows(&ours), &theirs["rows"])?;
    }
    println!("  (target: tierlog <= 1.5x DuckDB; answers checked equal)");
    for statement in &args.extra {
        let (_, times) = timed(statement)?;
        println!("  {:>8.2} ms median  {statement}", ms(median(&times)));
    }
    node.stop()?;
    let _ = std::fs::remove_file(&file);
    Ok(())
}

/// Every line of the source files with its level and component.
pub(crate) fn source_lines(datasets: &Path) -> anyhow::Result<(Vec<(String, String, String)>, usize)> {
    let (mut out, mut skipped) = (Vec::new(), 0);
    for (name, layout) in SOURCES {
        let path = datasets.join("loghub").join(name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match layout.parse(line) {
                Some((level, component)) => out.push((level, component, line.to_string())),
                None => skipped += 1,
            }
        }
    }
    Ok((out, skipped))
}

/// The lines `repeat` times as JSON messages, in time order.
pub(crate) fn replay(lines: &[(String, String, String)], repeat: usize) -> Vec<Vec<u8>> {
    let start_ms: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut out = Vec::with_capacity(lines.len() * repeat);
    for i in 0..lines.len() * repeat {
        let (level, component, message) = &lines[i % lines.len()];
        let ts_ms = start_ms + i as i64 * ROW_SPACING_MS;
        let ts = arrow::temporal_conversions::timestamp_ms_to_datetime(ts_ms).expect("in range");
        let record = json!({
            "ts": ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "level": level,
            "component": component,
            "message": message,
        });
        out.push(record.to_string().into_bytes());
    }
    out
}

fn write_ndjson(path: &Path, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for p in payloads {
        file.write_all(p)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(())
}

/// Runs the aggregations in DuckDB.
fn duckdb_baseline(file: &Path, runs: usize) -> anyhow::Result<Value> {
    crate::duckdb::run("duckdb_queries.py", &json!({ "file": file, "runs": runs, "queries": AGGREGATIONS }))
}

/// Rows as strings, for comparing answers across engines.
pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("displayable")).collect();
        for row in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    out
}

/// The rows a query matched: the value of a `count(*)` answer, else the rows returned.
pub(crate) fn matched(rows: &[Vec<String>]) -> usize {
    match rows {
        [row] if row.len() == 1 => row[0].parse().unwrap_or(1),
        rows => rows.len(),
    }
}

/// Same keys and counts; timestamps are written differently by the two engines, so
/// the histogram compares its counts in order.
pub(crate) fn check_same(name: &str, ours: &[Vec<String>], theirs: &Value) -> anyhow::Result<()> {
    let theirs: Vec<Vec<String>> = serde_json::from_value(theirs.clone())?;
    let key = |r: &[String]| if name.contains("histogram") { String::new() } else { r[0].clone() };
    let ours: Vec<(String, &str)> = ours.iter().map(|r| (key(r), r[1].as_str())).collect();
    let theirs: Vec<(String, &str)> = theirs.iter().map(|r| (key(r), r[1].as_str())).collect();
    if ours != theirs {
        bail!("{name}: tierlog and DuckDB disagree\n tierlog: {:?}\n duckdb:  {:?}", &ours[..ours.len().min(5)], &theirs[..theirs.len().min(5)]);
    }
    Ok(())
}

pub(crate) fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
