//! Shared by the benchmarks: where the data comes from and goes, publishing payloads to a
//! fresh topic, and running tierlog's ingest in this process until the hot tier holds
//! them all.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use tierlog_core::config::{Config, KafkaConfig};
use tierlog_core::metrics::Metrics;
use tierlog_hot::HotCatalog;
use tierlog_ingest::{Compression, Ingest, IngestOptions, Publisher};

use crate::cpu::{Measured, Phase};

/// The broker, the datasets and the topic shape every benchmark takes.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// Kafka brokers.
    #[arg(long, env = "TIERLOG_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The shared datasets folder.
    #[arg(long, default_value = "../shared/datasets")]
    pub datasets: PathBuf,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
}

impl Source {
    pub fn kafka(&self) -> KafkaConfig {
        KafkaConfig { brokers: self.brokers.clone(), ..KafkaConfig::default() }
    }

    /// Creates `bench-<name>-<pid>` with the configured partitions; its name.
    pub fn create_topic(&self, name: &str) -> anyhow::Result<String> {
        let topic = format!("bench-{name}-{}", std::process::id());
        tokio::runtime::Runtime::new()?.block_on(tierlog_ingest::ensure_topic(&self.kafka(), &topic, self.partitions))?;
        Ok(topic)
    }
}

/// The `[[streams]]` entry of a stream `name` fed zeek/dns.json.gz from `topic`: JSON,
/// `ts` as the timestamp, the fields queries use declared.
pub fn zeek_dns_stream(name: &str, topic: &str) -> String {
    format!(
        r#"
[[streams]]
name = "{name}"
topics = ["{topic}"]
format = "json"
timestamp_field = "ts"
fields = [
  {{ name = "query", type = "text" }},
  {{ name = "qtype_name", type = "keyword" }},
  {{ name = "rcode_name", type = "keyword" }},
  {{ name = "orig_h", type = "keyword", source = "id.orig_h" }},
  {{ name = "resp_h", type = "keyword", source = "id.resp_h" }},
  {{ name = "orig_p", type = "i64", source = "id.orig_p" }},
  {{ name = "rtt", type = "f64" }},
]
"#
    )
}

/// Sends every payload (lz4, round robin over partitions) and waits for the acks.
pub fn publish(kafka: &KafkaConfig, topic: &str, payloads: &[Vec<u8>]) -> anyhow::Result<Duration> {
    let publisher = Publisher::new(kafka, topic, Compression::Lz4)?;
    for p in payloads {
        publisher.send(None, p)?;
    }
    let report = publisher.finish(Duration::from_secs(600))?;
    if report.num_messages != payloads.len() as u64 {
        bail!("only {} of {} messages acknowledged: {:?}", report.num_messages, payloads.len(), report.first_error);
    }
    Ok(report.elapsed)
}

/// A node's ingest running in this process over a temporary data folder.
pub struct HotNode {
    pub config: Config,
    pub catalog: HotCatalog,
    pub ingest: Ingest,
    dir: PathBuf,
}

impl HotNode {
    /// Starts ingest of `streams` (TOML `[[streams]]` entries) from `brokers`.
    pub fn start(brokers: &str, group_id: &str, streams: &str) -> anyhow::Result<HotNode> {
        HotNode::start_with(HotNode::config(brokers, group_id, streams)?, HotCatalog::new())
    }

    /// The config [`HotNode::start`] runs: a temporary data folder, `streams` from `brokers`.
    pub fn config(brokers: &str, group_id: &str, streams: &str) -> anyhow::Result<Config> {
        let dir = std::env::temp_dir().join(format!("tierlog-bench-{}-{group_id}", std::process::id()));
        let text = format!(
            "[node]\nid = \"bench\"\ndata_dir = \"{}\"\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group_id}\"\n{streams}",
            dir.display(),
        );
        Ok(Config::parse(&text, "bench.toml", Path::new("/"), &|_| None)?)
    }

    /// Starts ingest of `config` into `catalog` (which readers may hold already).
    pub fn start_with(config: Config, catalog: HotCatalog) -> anyhow::Result<HotNode> {
        let ingest = Ingest::start(&config, catalog.clone(), Metrics::new(), IngestOptions::default())?;
        let dir = config.node.data_dir.clone();
        Ok(HotNode { config, catalog, ingest, dir })
    }

    /// Documents of `stream` that queries can see now.
    pub fn searchable(&self, stream: &str) -> u64 {
        self.catalog.snapshot(stream).iter().map(|g| g.num_docs()).sum()
    }

    /// Waits until `stream` holds `expected` documents; the wall and CPU time it took.
    pub fn wait_for(&self, stream: &str, expected: u64, phase: Phase) -> anyhow::Result<Measured> {
        let deadline = Instant::now() + Duration::from_secs(1800);
        while self.searchable(stream) < expected {
            if Instant::now() > deadline || self.ingest.is_finished() {
                bail!("tierlog indexed {} of {expected}", self.searchable(stream));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(phase.stop())
    }

    pub fn stop(self) -> anyhow::Result<()> {
        self.ingest.stop()?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}
