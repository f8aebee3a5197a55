//! `tierlog-bench ingest`: Kafka → hot-searchable throughput next to a bare rdkafka
//! consumer reading the same topic, and produce → searchable latency.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tierlog_ingest::{Compression, Publisher};

use crate::cpu::{Measured, Phase};
use crate::hot::{HotNode, Source, publish, zeek_dns_stream};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    source: Source,
    /// Replays of zeek/dns.json.gz (53,615 records, 26.6 MB each); replay N shifts every
    /// `ts` by N years so no two records are the same.
    #[arg(long, default_value_t = 4)]
    repeat: usize,
    /// Single messages timed from produce to searchable.
    #[arg(long, default_value_t = 20)]
    markers: usize,
    /// Messages of the burst sent to the live node at full speed, timed from the last
    /// acknowledged produce to all searchable (the ingest issue's 100,000-in-2-s check).
    #[arg(long, default_value_t = 100_000)]
    burst: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = &args.source;
    let payloads = load(&source.datasets.join("zeek/dns.json.gz"), args.repeat)?;
    let num_messages = payloads.len() as u64;
    let num_bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let (kafka, topic) = (source.kafka(), source.create_topic("ingest")?);
    println!(
        "dataset: zeek/dns.json.gz x{} (timestamps shifted per replay) = {num_messages} messages, {:.1} MB of raw JSON",
        args.repeat,
        num_bytes as f64 / 1e6
    );
    println!("topic {topic}: {} partitions, lz4", source.partitions);

    let produced = publish(&kafka, &topic, &payloads)?;
    println!("produced in {:.1} s\n", produced.as_secs_f64());

    let bare = bare_consumer(&source.brokers, &topic, source.partitions, num_messages)?;

    let phase = Phase::start();
    let node = HotNode::start(&source.brokers, &topic, &zeek_dns_stream("dns", &topic))?;
    let tierlog = node.wait_for("dns", num_messages, phase)?;
    let searchable = || node.searchable("dns");

    // Produce → searchable, one message at a time on the idle node.
    let publisher = Publisher::new(&kafka, &topic, Compression::Lz4)?;
    let mut latencies = Vec::new();
    for i in 0..args.markers {
        let before = searchable();
        let sent = Instant::now();
        publisher.send(None, &payloads[i])?;
        while searchable() <= before {
            if sent.elapsed() > Duration::from_secs(60) {
                bail!("marker {i} not searchable after 60 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(sent.elapsed());
        // Visibility comes right after a commit: wait a spread of delays so the next
        // marker lands anywhere in the commit cycle, not always at the same point.
        std::thread::sleep(Duration::from_millis((i as u64 * 379) % 1000));
    }
    drop(publisher);

    // A burst on the live, caught-up node: how long after the last produce until all of
    // it is searchable.
    let burst: Vec<Vec<u8>> = payloads.iter().take(args.burst).cloned().collect();
    let before = searchable();
    let started = Instant::now();
    let produced = publish(&kafka, &topic, &burst)?;
    let acked = Instant::now();
    let deadline = acked + Duration::from_secs(600);
    while searchable() < before + burst.len() as u64 {
        if Instant::now() > deadline {
            bail!("burst: {} of {} searchable after 600 s", searchable() - before, burst.len());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let after_last = acked.elapsed();
    node.stop()?;

    println!("{:<34} {:>10} {:>8} {:>10} {:>14}", "Kafka -> …", "msgs/s", "MB/s", "CPU cores", "MB/s per core");
    let line = |name: &str, m: &Measured| {
        let secs = m.wall.as_secs_f64();
        let cpu = m.cpu.as_secs_f64().max(1e-9);
        println!(
            "{name:<34} {:>10.0} {:>8.1} {:>10.2} {:>14.1}",
            num_messages as f64 / secs,
            num_bytes as f64 / 1e6 / secs,
            cpu / secs,
            num_bytes as f64 / 1e6 / cpu
        );
    };
    line("bare rdkafka consumer (baseline)", &bare);
    line("tierlog hot tier, searchable", &tierlog);
    println!(
        "tierlog / bare consumer: {:.2} of the message rate (wall time)",
        bare.wall.as_secs_f64() / tierlog.wall.as_secs_f64()
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "produce -> searchable over {} messages: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms (commit_interval 1s)",
        latencies.len(),
        pct(0.5),
        pct(0.9),
        pct(1.0)
    );
    println!(
        "burst of {} messages to the live node: produced in {:.2} s, all searchable {:.2} s after the last produce \
         ({:.2} s in all; target 2 s)",
        burst.len(),
        produced.as_secs_f64(),
        after_last.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads every message of the topic with a plain rdkafka consumer, touching each payload.
fn bare_consumer(brokers: &str, topic: &str, partitions: i32, expected: u64) -> anyhow::Result<Measured> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-bare"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let phase = Phase::start();
    let (mut count, mut checksum) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while count < expected {
        if Instant::now() > deadline {
            bail!("bare consumer read {count} of {expected}");
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg.context("bare consumer")?;
            let payload = msg.payload().unwrap_or_default();
            checksum = checksum.wrapping_add(payload.iter().map(|b| u64::from(*b)).sum::<u64>());
            count += 1;
        }
    }
    std::hint::black_box(checksum);
    Ok(phase.stop())
}

/// The dataset's lines, replayed `repeat` times with `ts` moved on by a year each time.
pub fn load(path: &Path, repeat: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut text = String::new();
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len() * repeat);
    for r in 0..repeat {
        let year = format!("\"ts\":\"{}-", 2018 + r);
        out.extend(lines.iter().map(|l| l.replacen("\"ts\":\"2018-", &year, 1).into_bytes()));
    }
    Ok(out)
}
