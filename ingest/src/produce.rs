//! Publishing payloads to a topic, for `tierlog produce`, benchmarks and tests.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tierlog_core::config::KafkaConfig;

use crate::error::{IngestError, Result};
use crate::kafka::client_config;

/// Batch compression. Snappy is left out: the tansu broker corrupts snappy batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    Gzip,
    Lz4,
    #[default]
    Zstd,
}

/// What a publisher did, once every message is acknowledged or failed.
#[derive(Debug, Clone)]
pub struct ProduceReport {
    pub num_messages: u64,
    pub num_bytes: u64,
    pub num_failed: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Publishes payloads to one topic with `acks=all`, counting deliveries.
pub struct Publisher {
    producer: ThreadedProducer<Counting>,
    topic: String,
    started: Instant,
}

#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(msg) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.delivered_bytes.fetch_add(msg.payload_len() as u64, Ordering::Relaxed);
            }
            Err((err, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().expect("poisoned");
                first.get_or_insert_with(|| err.to_string());
            }
        }
    }
}

impl Publisher {
    pub fn new(kafka: &KafkaConfig, topic: &str, compression: Compression) -> Result<Publisher> {
        let mut config = client_config(kafka);
        config
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", compression.as_str())
            .set("message.timeout.ms", "120000");
        let producer = config
            .create_with_context(Counting::default())
            .map_err(|source| IngestError::Client { brokers: kafka.brokers.clone(), source })?;
        Ok(Publisher { producer, topic: topic.to_string(), started: Instant::now() })
    }

    /// Queues one message; waits while the local queue is full.
    pub fn send(&self, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((source, _)) => return Err(IngestError::Publish { topic: self.topic.clone(), source }),
            }
        }
    }

    /// Messages acknowledged so far.
    pub fn num_delivered(&self) -> u64 {
        self.producer.context().delivered.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for every queued message to be acknowledged.
    pub fn finish(self, timeout: Duration) -> Result<ProduceReport> {
        self.producer
            .flush(timeout)
            .map_err(|source| IngestError::Publish { topic: self.topic.clone(), source })?;
        let ctx = self.producer.context();
        Ok(ProduceReport {
            num_messages: ctx.delivered.load(Ordering::Relaxed),
            num_bytes: ctx.delivered_bytes.load(Ordering::Relaxed),
            num_failed: ctx.failed.load(Ordering::Relaxed),
            first_error: ctx.first_error.lock().expect("poisoned").clone(),
            elapsed: self.started.elapsed(),
        })
    }
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            "snappy" => Err("snappy is not supported: the tansu broker corrupts snappy batches".into()),
            other => Err(format!("unknown compression '{other}' (none, gzip, lz4, zstd)")),
        }
    }
}
