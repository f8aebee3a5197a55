//! Starting and stopping ingest on a node: one hot stream and indexer thread per stream,
//! and the consumer thread that feeds them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::config::Config;
use tierlog_core::metrics::Metrics;
use tierlog_hot::{HotCatalog, HotStream};
use tracing::info;

use crate::backpressure::Budget;
use crate::consumer::{self, IngestContext};
use crate::decode::Decoder;
use crate::error::{IngestError, Result};
use crate::indexer::{Committed, Indexer};
use crate::kafka::client_config;

/// Settings of the ingest pipeline that are not per stream.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Payload bytes that may wait between the consumer and the indexers before the
    /// consumer pauses its partitions.
    pub buffer_bytes: u64,
    /// Each partition's next offset after the rows the cold tier holds (its `txn`
    /// versions): where a partition with no hot checkpoint and no group offset starts
    /// (a fresh node), so rows already in cold are not read again.
    pub cold_checkpoint: Checkpoint,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { buffer_bytes: 256 << 20, cold_checkpoint: Checkpoint::new() }
    }
}

/// Consumer defaults that suit tierlog; an operator's `kafka.properties` win.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    // A crashed member holds up the group's next rebalance until the broker gives up on
    // it (session timeout, and with some brokers the rebalance timeout, which librdkafka
    // takes from max.poll.interval.ms). The consumer loop polls every 100 ms, so short
    // values are safe and a restarted node gets its partitions back within seconds.
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    // Also the bound of a revocation: the indexers get two thirds of it to commit what
    // they hold; raise it if a node buffers more than it can index in that time.
    ("max.poll.interval.ms", "15000"),
    ("statistics.interval.ms", "5000"),
    // A quiet partition's new message is fetched within 100 ms instead of 500.
    ("fetch.wait.max.ms", "100"),
];

/// How long a revocation may wait for the indexers: two thirds of `max.poll.interval.ms`,
/// which bounds librdkafka's rebalance callback, leaving a third for the group commit.
fn flush_timeout(client: &rdkafka::ClientConfig) -> Result<Duration> {
    let value = client.get("max.poll.interval.ms").unwrap_or("300000");
    let ms: u64 = value.parse().map_err(|_| {
        IngestError::Config(format!("kafka.properties.\"max.poll.interval.ms\": '{value}' is not a number of milliseconds"))
    })?;
    Ok(Duration::from_millis(ms * 2 / 3))
}

/// A running ingest pipeline.
pub struct Ingest {
    stop: Arc<AtomicBool>,
    consumer: JoinHandle<std::result::Result<(), String>>,
    indexers: Vec<JoinHandle<()>>,
}

impl Ingest {
    /// Opens every stream's hot tier under `data_dir`, then starts consuming.
    pub fn start(config: &Config, catalog: HotCatalog, metrics: Metrics, options: IngestOptions) -> Result<Ingest> {
        let budget = Budget::new(options.buffer_bytes);
        let mut initial = Checkpoint::new();
        let mut opened = Vec::new();
        for stream_config in &config.streams {
            let stream = HotStream::open(&config.node.data_dir, &config.node.id, stream_config, catalog.clone())?;
            initial.merge(stream.committed());
            opened.push((stream_config, stream));
        }
        let committed = Committed::shared(initial);

        let mut routes = HashMap::new();
        let mut senders = Vec::new();
        let mut indexers = Vec::new();
        for (i, (stream_config, stream)) in opened.into_iter().enumerate() {
            for topic in &stream_config.topics {
                routes.insert(topic.clone(), i);
            }
            let decoder = Decoder::new(stream_config, Arc::clone(stream.schema()));
            let indexer = Indexer::new(
                stream,
                decoder,
                budget.clone(),
                Arc::clone(&committed),
                &metrics,
                stream_config.policy.commit_interval.0,
            );
            let (tx, rx) = mpsc::channel();
            senders.push(tx);
            let handle = std::thread::Builder::new()
                .name(format!("index-{}", stream_config.name))
                .spawn(move || indexer.run(rx))
                .map_err(|e| IngestError::Thread(e.to_string()))?;
            indexers.push(handle);
        }

        let kafka = &config.kafka;
        let mut client = client_config(kafka);
        client.set("group.id", &kafka.group_id).set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
        for (key, value) in CONSUMER_DEFAULTS {
            if !kafka.properties.contains_key(*key) {
                client.set(*key, *value);
            }
        }
        let ctx = IngestContext::new(routes, senders, committed, options.cold_checkpoint, metrics, flush_timeout(&client)?);
        let consumer: BaseConsumer<IngestContext> = client
            .create_with_context(ctx)
            .map_err(|source| IngestError::Client { brokers: kafka.brokers.clone(), source })?;
        let topics: Vec<String> = config.streams.iter().flat_map(|s| s.topics.iter().cloned()).collect();
        info!(group = %kafka.group_id, topics = ?topics, "consuming");

        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let consumer = std::thread::Builder::new()
            .name("consumer".into())
            .spawn(move || {
                let result = consumer::run(&consumer, &topics, &budget, &stop_flag);
                consumer::flush_all(&consumer);
                // Dropping the consumer leaves the group (its revocation commits again,
                // harmlessly), then drops the indexers' channels so they close.
                drop(consumer);
                result
            })
            .map_err(|e| IngestError::Thread(e.to_string()))?;
        Ok(Ingest { stop, consumer, indexers })
    }

    /// Whether the pipeline stopped by itself (an indexer or the consumer failed).
    pub fn is_finished(&self) -> bool {
        self.consumer.is_finished()
    }

    /// Stops consuming, commits everything indexed, and waits for the threads.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        let consumer = self.consumer.join();
        let mut failed = Vec::new();
        for handle in self.indexers {
            if handle.join().is_err() {
                failed.push("an indexer panicked".to_string());
            }
        }
        match consumer {
            Ok(Ok(())) if failed.is_empty() => Ok(()),
            Ok(Ok(())) => Err(IngestError::Stopped(failed.join("; "))),
            Ok(Err(e)) => Err(IngestError::Stopped(e)),
            Err(_) => Err(IngestError::Stopped("the consumer thread panicked".into())),
        }
    }
}
