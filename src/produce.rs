//! `tierlog produce`: publish a file of lines (plain text or NDJSON) to a topic.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tierlog_core::Config;
use tierlog_core::config::KafkaConfig;
use tierlog_ingest::{Compression, Publisher};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// File to publish; `-` reads standard input; `.gz` is decompressed.
    pub file: PathBuf,
    /// Topic to publish to.
    #[arg(short, long)]
    pub topic: String,
    /// Brokers, host:port[,host:port…]. Default: from --config, else 127.0.0.1:9092.
    #[arg(short, long, env = "TIERLOG_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// Take brokers and client properties from this node config.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Partitions to create the topic with when it does not exist.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Batch compression: none, gzip, lz4 or zstd.
    #[arg(long, default_value = "zstd")]
    pub compression: Compression,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let mut kafka = match &args.config {
        Some(path) => Config::load(path)?.kafka,
        None => KafkaConfig::default(),
    };
    if let Some(brokers) = &args.brokers {
        kafka.brokers = brokers.clone();
    }
    if args.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if tierlog_ingest::ensure_topic(&kafka, &args.topic, args.partitions).await? {
        eprintln!("created topic '{}' with {} partition(s)", args.topic, args.partitions);
    }
    tokio::task::spawn_blocking(move || publish_file(&kafka, &args)).await?
}

fn publish_file(kafka: &KafkaConfig, args: &ProduceArgs) -> anyhow::Result<()> {
    let (reader, total_bytes) = open(&args.file)?;
    let progress = match total_bytes {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})").expect("template"),
        ),
        None => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {bytes} read, {msg}").expect("template")),
    };
    let publisher = Publisher::new(kafka, &args.topic, args.compression)?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line = Vec::with_capacity(4096);
    let (mut num_sent, mut num_empty) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", args.file.display()))?;
        if n == 0 {
            break;
        }
        progress.inc(n as u64);
        let payload = strip_line_ending(&line);
        if payload.is_empty() {
            num_empty += 1;
            continue;
        }
        publisher.send(None, payload)?;
        num_sent += 1;
        if num_sent % 1024 == 0 {
            progress.set_message(format!("{num_sent} sent, {} acknowledged", publisher.num_delivered()));
        }
    }
    progress.finish_and_clear();
    let report = publisher.finish(Duration::from_secs(120))?;
    if report.num_failed > 0 || report.num_messages != num_sent {
        bail!(
            "{} of {num_sent} messages to '{}' were not acknowledged; first error: {}",
            num_sent - report.num_messages,
            args.topic,
            report.first_error.as_deref().unwrap_or("timed out")
        );
    }
    let secs = report.elapsed.as_secs_f64().max(1e-6);
    println!(
        "produced {} messages ({:.2} MB) to '{}' in {:.2} s: {:.0} msg/s, {:.1} MB/s{}",
        report.num_messages,
        report.num_bytes as f64 / 1e6,
        args.topic,
        secs,
        report.num_messages as f64 / secs,
        report.num_bytes as f64 / 1e6 / secs,
        if num_empty > 0 { format!(" ({num_empty} empty lines skipped)") } else { String::new() },
    );
    Ok(())
}

/// The reader and, when known, the number of bytes it will yield.
fn open(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        return Ok((Box::new(flate2::read::MultiGzDecoder::new(file)), None));
    }
    let len = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), len))
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
