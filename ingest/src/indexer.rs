//! One indexer thread per stream: decodes payloads, adds them to the stream's hot
//! generation, and commits every `commit_interval` with the checkpoint.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::metrics::{Counter, Gauge, Histogram, Metrics};
use tierlog_core::schema::ErrorReason;
use tierlog_hot::{HotStream, RowOrigin};
use tracing::{debug, error};

use crate::backpressure::Budget;
use crate::decode::{Decoded, Decoder};

/// A Kafka record, owned, on its way to an indexer.
#[derive(Debug)]
pub struct Record {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub kafka_time_us: i64,
    pub payload: Vec<u8>,
}

pub enum Command {
    /// Records in offset order per partition; batched to keep thread wake-ups and
    /// channel operations off the per-message path.
    Index(Vec<Record>),
    /// Commit now and answer with the committed checkpoint (on partition revocation
    /// and shutdown).
    Flush(Sender<Checkpoint>),
    /// The partition was assigned here starting at `offset`: everything before it is
    /// consumed (here or by another node), and records below it are redeliveries.
    Start { topic: Arc<str>, partition: i32, offset: i64 },
}

/// Where indexers publish what they committed, for the consumer to commit to the group.
#[derive(Debug, Default)]
pub struct Committed {
    pub checkpoint: Checkpoint,
    /// Set by an indexer after a commit; cleared by the consumer when it told the group.
    pub dirty: bool,
}

pub type SharedCommitted = Arc<Mutex<Committed>>;

impl Committed {
    /// The state shared by the consumer and the indexers, starting from the hot tier's
    /// recovered checkpoint.
    pub fn shared(initial: Checkpoint) -> SharedCommitted {
        Arc::new(Mutex::new(Committed { checkpoint: initial, dirty: false }))
    }
}

struct StreamMetrics {
    messages: Arc<Counter>,
    bytes: Arc<Counter>,
    rows: Arc<Counter>,
    errors: Vec<(ErrorReason, Arc<Counter>)>,
    commit_seconds: Arc<Histogram>,
    freshness: Arc<Gauge>,
    redelivered: Arc<Counter>,
    unmatched: Arc<Counter>,
}

impl StreamMetrics {
    fn new(metrics: &Metrics, stream: &str) -> StreamMetrics {
        let l = [("stream", stream)];
        StreamMetrics {
            messages: metrics.counter("tierlog_ingest_messages_total", "Kafka messages consumed.", &l),
            bytes: metrics.counter("tierlog_ingest_bytes_total", "Payload bytes consumed.", &l),
            rows: metrics.counter("tierlog_ingest_rows_total", "Rows indexed, error rows included.", &l),
            errors: ErrorReason::ALL
                .iter()
                .map(|r| {
                    let c = metrics.counter(
                        "tierlog_ingest_errors_total",
                        "Messages that became error rows, by reason.",
                        &[("stream", stream), ("reason", r.as_str())],
                    );
                    (*r, c)
                })
                .collect(),
            redelivered: metrics.counter(
                "tierlog_ingest_redelivered_total",
                "Records dropped because their offset was already indexed or consumed (redeliveries).",
                &l,
            ),
            unmatched: metrics.counter(
                "tierlog_ingest_unmatched_lines_total",
                "Text lines the stream's pattern did not match, kept as rows with only their message.",
                &l,
            ),
            commit_seconds: metrics.histogram("tierlog_hot_commit_seconds", "Hot index commit latency.", &l),
            freshness: metrics.gauge(
                "tierlog_ingest_freshness_seconds",
                "Now minus the newest event time committed to the hot tier.",
                &l,
            ),
        }
    }
}

pub struct Indexer {
    stream: HotStream,
    decoder: Decoder,
    budget: Budget,
    committed: SharedCommitted,
    metrics: StreamMetrics,
    commit_interval: Duration,
    newest_event_us: Option<i64>,
    newest_committed_event_us: Option<i64>,
}

impl Indexer {
    pub fn new(
        stream: HotStream,
        decoder: Decoder,
        budget: Budget,
        committed: SharedCommitted,
        metrics: &Metrics,
        commit_interval: Duration,
    ) -> Indexer {
        let metrics = StreamMetrics::new(metrics, stream.name());
        Indexer { stream, decoder, budget, committed, metrics, commit_interval, newest_event_us: None, newest_committed_event_us: None }
    }

    /// Runs until every sender is gone, then commits and closes the stream.
    pub fn run(mut self, commands: Receiver<Command>) {
        let mut next_commit = Instant::now() + self.commit_interval;
        let mut docs = Vec::new();
        loop {
            let wait = next_commit.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(Command::Index(records)) => self.index(records, &mut docs),
                Ok(Command::Start { topic, partition, offset }) => self.stream.advance(&topic, partition, offset),
                Ok(Command::Flush(reply)) => {
                    self.commit();
                    let _ = reply.send(self.stream.committed().clone());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_commit {
                self.commit();
                next_commit = Instant::now() + self.commit_interval;
            }
        }
        let name = self.stream.name().to_string();
        if let Err(e) = self.stream.close() {
            error!(stream = %name, error = %e, "closing the hot stream failed; uncommitted rows will be re-read from Kafka");
        }
    }

    fn index(&mut self, mut records: Vec<Record>, docs: &mut Vec<tantivy::TantivyDocument>) {
        let ingest_time_us = now_us();
        let ts_field = self.decoder.schema().timestamp;
        let mut num_bytes = 0;
        docs.clear();
        // Redeliveries: an offset below the partition's next expected one is indexed
        // already (or consumed by the node that held the partition), so it goes.
        let before = records.len();
        let mut redelivered_bytes = 0;
        records.retain(|r| {
            let fresh = self.stream.next_offset(&r.topic, r.partition).is_none_or(|next| r.offset >= next);
            if fresh {
                self.stream.advance(&r.topic, r.partition, r.offset + 1);
            } else {
                redelivered_bytes += r.payload.len() as u64;
            }
            fresh
        });
        if records.len() < before {
            let dropped = before - records.len();
            debug!(stream = %self.stream.name(), dropped, "dropped redelivered records");
            self.metrics.redelivered.add(dropped as u64);
            self.budget.refund(redelivered_bytes);
        }
        for record in &records {
            let origin = RowOrigin {
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
                key: record.key.as_deref(),
                kafka_time_us: record.kafka_time_us,
                ingest_time_us,
            };
            let first = docs.len();
            match self.decoder.decode(&origin, &record.payload, docs) {
                Decoded::Rows => {}
                Decoded::Unmatched => self.metrics.unmatched.inc(),
                Decoded::Error(err) => {
                    debug!(stream = %self.stream.name(), topic = %record.topic, partition = record.partition,
                        offset = record.offset, reason = err.reason.as_str(), detail = %err.detail, "error row");
                    if let Some((_, c)) = self.metrics.errors.iter().find(|(r, _)| *r == err.reason) {
                        c.inc();
                    }
                }
            }
            for doc in &docs[first..] {
                if let Some(ts) = doc.get_first(ts_field).and_then(|v| tantivy::schema::Value::as_datetime(&v)) {
                    let us = ts.into_timestamp_micros();
                    self.newest_event_us = Some(self.newest_event_us.map_or(us, |n| n.max(us)));
                }
            }
            num_bytes += record.payload.len() as u64;
        }
        let num_docs = docs.len() as u64;
        if let Err(e) = self.stream.add_all(docs.drain(..), num_bytes) {
            // The writer is broken. Nothing of this batch is acknowledged without a
            // commit, so a restart re-reads it: stop rather than skip rows.
            panic!("indexing stream '{}' failed: {e}", self.stream.name());
        }
        self.metrics.rows.add(num_docs);
        self.metrics.messages.add(records.len() as u64);
        self.metrics.bytes.add(num_bytes);
        self.budget.refund(num_bytes);
    }

    fn commit(&mut self) {
        let started = Instant::now();
        match self.stream.commit() {
            Ok(Some(checkpoint)) => {
                self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                self.newest_committed_event_us = self.newest_event_us;
                let mut shared = self.committed.lock().expect("committed lock poisoned");
                shared.checkpoint.merge(&checkpoint);
                shared.dirty = true;
            }
            Ok(None) => {}
            Err(e) => panic!("committing stream '{}' failed: {e}", self.stream.name()),
        }
        if let Some(newest) = self.newest_committed_event_us {
            self.metrics.freshness.set((now_us() - newest) as f64 / 1e6);
        }
    }
}

pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64
}
