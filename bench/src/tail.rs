//! `tierlog-bench tail`: what live-tail followers cost ingest.
//!
//! The same backlog of zeek/dns is ingested into a fresh in-process hot tier from its
//! own topic, alone, then with followers (by default 50, five on each of ten queries)
//! draining their tails as it goes, for a few rounds. Printed side by side: the median
//! wall time, rows/s and CPU of each; then each follower's row count, checked against
//! the SQL count of its query over the finished table (each matching row once). The followers are the
//! node's own `Tail` in this process, so the figures hold the feeds' queries and fan-out,
//! not SSE encoding or sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use clap::Args as ClapArgs;
use tierlog_core::metrics::Metrics;
use tierlog_hot::HotCatalog;
use tierlog_query::{Grant, Protocol, QueryEngine, Tail, TailEvent};

use crate::cpu::{Measured, Phase};
use crate::hot::{HotNode, Source, publish, zeek_dns_stream};
use crate::ingest::load;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    source: Source,
    /// Replays of zeek/dns.json.gz (53,615 records each).
    #[arg(long, default_value_t = 4)]
    repeat: usize,
    /// Followers, spread evenly over the queries.
    #[arg(long, default_value_t = 50)]
    followers: usize,
    /// Rounds of (alone, followed); the medians are compared, since one run on a
    /// small machine varies by more than the effect measured.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// What the followers follow: tantivy queries over the zeek/dns stream.
const QUERIES: &[&str] = &[
    "rcode_name:NXDOMAIN",
    "qtype_name:AAAA",
    "qtype_name:PTR",
    "qtype_name:TXT",
    "google",
    "ubuntu",
    "apple",
    "amazonaws",
    "arpa",
    "local",
];

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = &args.source;
    let payloads = load(&source.datasets.join("zeek/dns.json.gz"), args.repeat)?;
    let rows = payloads.len() as u64;
    println!("dataset: zeek/dns.json.gz x{} = {rows} messages; {} partitions", args.repeat, source.partitions);
    println!("{} rounds, each ingesting the backlog alone and then with {} followers (median of each)", args.rounds, args.followers);
    let runtime = tokio::runtime::Runtime::new()?;
    let (mut alone, mut followed) = (Vec::new(), Vec::new());
    let mut checked = Vec::new();
    for round in 0..args.rounds {
        alone.push(ingest(source, &format!("tail-alone-{round}"), &payloads, 0, &runtime)?.measured);
        let run = ingest(source, &format!("tail-followed-{round}"), &payloads, args.followers, &runtime)?;
        println!(
            "  round {}: alone {:.2} s, followed {:.2} s",
            round + 1,
            alone[round].wall.as_secs_f64(),
            run.measured.wall.as_secs_f64()
        );
        followed.push(run.measured);
        checked = run.checked;
    }
    let median = |runs: &mut Vec<Measured>| {
        runs.sort_by_key(|m| m.wall);
        let m = &runs[runs.len() / 2];
        Measured { wall: m.wall, cpu: m.cpu }
    };
    let (alone, followed) = (median(&mut alone), median(&mut followed));

    println!("\n{:<40} {:>9} {:>11} {:>10}", "Kafka -> hot tier, same backlog (median)", "wall s", "rows/s", "CPU s");
    let line = |name: &str, m: &Measured| {
        println!("{name:<40} {:>9.2} {:>11.0} {:>10.2}", m.wall.as_secs_f64(), rows as f64 / m.wall.as_secs_f64(), m.cpu.as_secs_f64());
    };
    line("alone", &alone);
    line(&format!("with {} tail followers", args.followers), &followed);
    let slower = followed.wall.as_secs_f64() / alone.wall.as_secs_f64() - 1.0;
    println!("ingest is {:.1} % slower with the followers (target: < 10 %)", slower * 100.0);
    for (query, expected, followers) in &checked {
        println!("  {query:<22} {expected:>7} rows to each of {followers} followers");
    }
    let total: u64 = checked.iter().map(|(_, n, f)| n * *f as u64).sum();
    println!("rows delivered per followed round: {total}, each matching row exactly once per follower (checked against SQL counts)");
    Ok(())
}

struct Run {
    measured: Measured,
    /// Per query: the rows that match it in the finished table, and how many followers
    /// received exactly that many.
    checked: Vec<(&'static str, u64, usize)>,
}

/// Ingests `payloads` from a new topic into a new node, with `followers` following
/// from before the first row: the time until every row is searchable, then each
/// follower's count checked once the counts stop changing.
fn ingest(source: &Source, name: &str, payloads: &[Vec<u8>], followers: usize, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Run> {
    let topic = source.create_topic(name)?;
    publish(&source.kafka(), &topic, payloads)?;
    let config = HotNode::config(&source.brokers, &topic, &zeek_dns_stream("dns", &topic))?;
    let catalog = HotCatalog::new();
    let engine = QueryEngine::new(&config.streams, &config.query, &catalog, None, &Metrics::new())?;
    let tail = Tail::new(engine.clone(), 10_000);
    let mut counts = Vec::new();
    for i in 0..followers {
        let query = QUERIES[i % QUERIES.len()];
        let mut follower = runtime.block_on(tail.follow(&Grant::All, "dns", query))?;
        let count = Arc::new(AtomicU64::new(0));
        let sink = Arc::clone(&count);
        runtime.spawn(async move {
            while let Some(event) = follower.next().await {
                match event {
                    TailEvent::Row(_) => sink.fetch_add(1, Ordering::Relaxed),
                    other => panic!("a follower of {query} ended: {other:?}"),
                };
            }
        });
        counts.push((query, count));
    }
    let phase = Phase::start();
    let node = HotNode::start_with(config, catalog)?;
    let measured = node.wait_for("dns", payloads.len() as u64, phase)?;
    // The last commit's rows reach the followers just after it.
    let total = || counts.iter().map(|(_, n)| n.load(Ordering::Relaxed)).sum::<u64>();
    let mut last = total();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        if total() == last {
            break;
        }
        last = total();
    }
    let mut checked = Vec::new();
    for query in QUERIES.iter().copied().filter(|q| counts.iter().any(|(c, _)| c == q)) {
        let sql = format!("SELECT count(*) AS n FROM dns WHERE match_all('{query}')");
        let result = runtime.block_on(engine.sql(&sql, &Grant::All, Protocol::Http, None))?;
        let expected = crate::query::rows(&result.batches)[0][0].parse::<u64>()?;
        let got: Vec<u64> = counts.iter().filter(|(q, _)| *q == query).map(|(_, c)| c.load(Ordering::Relaxed)).collect();
        if got.iter().any(|g| *g != expected) {
            bail!("followers of {query} received {got:?} rows; the table holds {expected} matching");
        }
        checked.push((query, expected, got.len()));
    }
    node.stop()?;
    Ok(Run { measured, checked })
}
