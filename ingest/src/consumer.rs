//! The node's Kafka consumer: one per node, in the configured group, subscribed to every
//! stream's topics, with no auto-commit.
//!
//! Exactly once rests on four rules:
//! - **assign**: each partition starts at the larger of the hot tier's checkpoint and
//!   the group's committed offset (another node may have moved the partition on since
//!   this node last held it), else at the earliest offset. The start is handed to the
//!   partition's indexer, which records it in the checkpoint and drops any record below
//!   it, and it is the floor of every group commit while the partition stays here;
//! - **commit**: group offsets are committed only from checkpoints that an index commit
//!   made durable, so they never run ahead of the data, and never below the floor, so
//!   they never move backwards;
//! - **revoke**: before a partition is released, every indexer commits what it holds
//!   and the group offsets are committed synchronously, within two thirds of
//!   `max.poll.interval.ms` (librdkafka's limit on a rebalance callback);
//! - **redelivery**: an indexer drops, and counts, records below a partition's next
//!   expected offset (a rebalance error, a flush timeout or an offset reset can
//!   deliver them again).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message};
use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::metrics::Metrics;
use tracing::{error, info, warn};

use crate::backpressure::Budget;
use crate::indexer::{Command, Record, SharedCommitted};

/// Routes topics to indexers and handles rebalances.
pub(crate) struct IngestContext {
    /// topic → index into `indexers`.
    routes: HashMap<String, usize>,
    indexers: Vec<Sender<Command>>,
    committed: SharedCommitted,
    /// The cold tier's checkpoint at start-up: the lowest start of a partition.
    cold: Checkpoint,
    metrics: Metrics,
    /// The rebalance callback replaced the assignment: the consumer loop must re-apply
    /// pausing to the new partitions.
    reassigned: AtomicBool,
    /// Partitions assigned by the last rebalance.
    num_assigned: AtomicUsize,
    /// Records polled but not yet handed to an indexer, per route. Only the consumer
    /// thread touches them (the loop and the rebalance callback, which runs inside poll).
    pending: Mutex<Vec<Vec<Record>>>,
    /// Per assigned partition, the offset it started at: no group commit goes below it.
    floors: Mutex<HashMap<(String, i32), i64>>,
    /// Assigned partitions whose group offset could not be read: this node does not
    /// know what the group holds, so it commits nothing for them rather than guess.
    group_unknown: Mutex<HashSet<(String, i32)>>,
    /// How long a revocation waits for the indexers to commit.
    flush_timeout: Duration,
}

impl ClientContext for IngestContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                let partition = partition.to_string();
                self.metrics
                    .gauge(
                        "tierlog_ingest_consumer_lag",
                        "Messages in the partition not yet consumed by this node.",
                        &[("topic", topic), ("partition", &partition)],
                    )
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.reassigned.store(true, Ordering::Release);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.num_assigned.store(tpl.count(), Ordering::Release);
                self.set_start_offsets(consumer, tpl);
                if let Err(e) = consumer.assign(tpl) {
                    error!(error = %e, "assigning partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.num_assigned.store(0, Ordering::Release);
                self.flush_before_release(consumer, tpl);
                if let Err(e) = consumer.unassign() {
                    error!(error = %e, "releasing partitions failed");
                }
            }
            other => {
                error!(error = ?other, "rebalance error; releasing all partitions");
                let _ = consumer.unassign();
            }
        }
    }
}

impl IngestContext {
    pub(crate) fn new(
        routes: HashMap<String, usize>,
        indexers: Vec<Sender<Command>>,
        committed: SharedCommitted,
        cold: Checkpoint,
        metrics: Metrics,
        flush_timeout: Duration,
    ) -> Self {
        IngestContext {
            routes,
            committed,
            cold,
            metrics,
            pending: Mutex::new((0..indexers.len()).map(|_| Vec::new()).collect()),
            indexers,
            reassigned: AtomicBool::new(false),
            num_assigned: AtomicUsize::new(0),
            floors: Mutex::default(),
            group_unknown: Mutex::default(),
            flush_timeout,
        }
    }

    /// The offsets to tell the group for the partitions in `tpl`: what the hot tier made
    /// durable, never below the partition's start here, and nothing where the group's
    /// offset is unknown.
    fn group_offsets(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let checkpoint = self.hot_checkpoint();
        let floors = self.floors.lock().expect("floors lock poisoned");
        let unknown = self.group_unknown.lock().expect("group_unknown lock poisoned");
        let mut out = TopicPartitionList::new();
        for elem in tpl.elements() {
            let key = (elem.topic().to_string(), elem.partition());
            if unknown.contains(&key) {
                continue;
            }
            let next = checkpoint.next_offset(elem.topic(), elem.partition()).max(floors.get(&key).copied());
            if let Some(next) = next {
                let _ = out.add_partition_offset(elem.topic(), elem.partition(), Offset::Offset(next));
            }
        }
        out
    }

    /// Appends a record to its indexer's batch; sends the batch once it is full.
    fn push(&self, route: usize, record: Record) -> Result<(), String> {
        let mut pending = self.pending.lock().expect("pending lock poisoned");
        pending[route].push(record);
        if pending[route].len() >= BATCH_RECORDS {
            let batch = std::mem::take(&mut pending[route]);
            self.indexers[route].send(Command::Index(batch)).map_err(|_| "an indexer stopped".to_string())?;
        }
        Ok(())
    }

    /// Hands every partial batch to its indexer.
    fn send_pending(&self) -> Result<(), String> {
        let mut pending = self.pending.lock().expect("pending lock poisoned");
        for (route, batch) in pending.iter_mut().enumerate() {
            if !batch.is_empty() {
                let batch = std::mem::take(batch);
                self.indexers[route].send(Command::Index(batch)).map_err(|_| "an indexer stopped".to_string())?;
            }
        }
        Ok(())
    }

    fn hot_checkpoint(&self) -> Checkpoint {
        self.committed.lock().expect("committed lock poisoned").checkpoint.clone()
    }

    fn set_start_offsets(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let hot = self.hot_checkpoint();
        let group = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(30)) {
            Ok(committed) => Some(committed.to_topic_map()),
            Err(e) => {
                warn!(error = %e, "cannot read the group's committed offsets; starting from the hot checkpoint, \
                    and committing no group offset for these partitions until they are assigned again");
                None
            }
        };
        let partitions: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let mut floors = self.floors.lock().expect("floors lock poisoned");
        let mut unknown = self.group_unknown.lock().expect("group_unknown lock poisoned");
        floors.clear();
        unknown.clear();
        for (topic, partition) in partitions {
            if group.is_none() {
                unknown.insert((topic.clone(), partition));
            }
            let group = group.as_ref();
            let hot_next = hot.next_offset(&topic, partition);
            let group_next = match group.and_then(|g| g.get(&(topic.clone(), partition))) {
                Some(Offset::Offset(n)) => Some(*n),
                _ => None,
            };
            let cold_next = self.cold.next_offset(&topic, partition);
            let start = hot_next.max(group_next).max(cold_next);
            let offset = start.map_or(Offset::Beginning, Offset::Offset);
            info!(topic = %topic, partition, hot = ?hot_next, group = ?group_next, cold = ?cold_next, start = ?start, "partition assigned");
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                error!(topic = %topic, partition, error = %e, "cannot set start offset");
            }
            if let Some(start) = start {
                floors.insert((topic.clone(), partition), start);
                // Before any record of the new assignment: the channel keeps the order.
                if let Some(&route) = self.routes.get(&topic) {
                    let _ = self.indexers[route].send(Command::Start { topic: Arc::from(topic.as_str()), partition, offset: start });
                }
            }
        }
    }

    /// Commits every indexer that holds a revoked partition, then the group offsets.
    fn flush_before_release(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let started = Instant::now();
        if let Err(e) = self.send_pending() {
            error!(error = %e, "cannot hand polled records to the indexers before release");
        }
        let mut involved: Vec<usize> = tpl.elements().iter().filter_map(|e| self.routes.get(e.topic()).copied()).collect();
        involved.sort_unstable();
        involved.dedup();
        let replies: Vec<_> = involved
            .iter()
            .filter_map(|i| {
                let (tx, rx) = mpsc::channel();
                self.indexers[*i].send(Command::Flush(tx)).ok().map(|_| rx)
            })
            .collect();
        let deadline = started + self.flush_timeout;
        for reply in replies {
            if reply.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
                // Releasing now keeps this node in the group; the next owner re-reads what
                // was not committed here, and this node drops it if it comes back.
                error!(timeout_ms = self.flush_timeout.as_millis() as u64,
                    "an indexer did not commit in time on revocation (2/3 of max.poll.interval.ms); releasing anyway");
            }
        }
        let offsets = self.group_offsets(tpl);
        if offsets.count() > 0 {
            if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                // The hot checkpoint stays authoritative for this node; the next owner
                // starts from the older group offset (see the module docs).
                warn!(error = %e, "committing group offsets on revocation failed");
            }
        }
        info!(partitions = tpl.count(), took_ms = started.elapsed().as_millis() as u64, "partitions revoked after commit");
    }
}

/// Records handed to an indexer at once.
const BATCH_RECORDS: usize = 512;
/// A partial batch waits at most this long, so a slow trickle stays fresh.
const BATCH_MAX_WAIT: Duration = Duration::from_millis(50);

/// How long the consumer may stay without partitions before it rejoins the group: a
/// little more than the session timeout, so that a crashed member has expired.
const REJOIN_AFTER: Duration = Duration::from_secs(8);
const REJOIN_AFTER_MAX: Duration = Duration::from_secs(300);

/// The consumer loop: polls, routes records to indexers, pauses on backpressure, and
/// commits group offsets after index commits. Returns when `stop` is set.
pub(crate) fn run(
    consumer: &BaseConsumer<IngestContext>,
    topics: &[String],
    budget: &Budget,
    stop: &AtomicBool,
) -> Result<(), String> {
    let ctx = consumer.context();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    if !topic_refs.is_empty() {
        consumer.subscribe(&topic_refs).map_err(|e| format!("subscribing to {topics:?}: {e}"))?;
    }
    // Some brokers (tansu 0.6) keep a crashed member as group leader and then hand the
    // survivors an empty assignment forever. Rejoining after the dead member's session
    // expired makes this node the leader. A node that legitimately has no partitions
    // (more nodes than partitions) rejoins rarely: the wait doubles each time.
    let mut without_partitions_since = Instant::now();
    let mut rejoin_after = REJOIN_AFTER;
    let mut paused = false;
    let mut last_poll_error: Option<(String, Instant)> = None;
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut last_handoff = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if last_handoff.elapsed() >= BATCH_MAX_WAIT {
            ctx.send_pending()?;
            last_handoff = Instant::now();
        }
        if ctx.reassigned.swap(false, Ordering::AcqRel) {
            paused = false; // a new assignment starts unpaused
            without_partitions_since = Instant::now();
        }
        if ctx.num_assigned.load(Ordering::Acquire) > 0 {
            rejoin_after = REJOIN_AFTER;
        } else if !topic_refs.is_empty() && without_partitions_since.elapsed() > rejoin_after {
            warn!(waited_s = rejoin_after.as_secs(), "no partitions assigned; rejoining the consumer group");
            consumer.unsubscribe();
            consumer.subscribe(&topic_refs).map_err(|e| format!("subscribing to {topics:?}: {e}"))?;
            without_partitions_since = Instant::now();
            rejoin_after = (rejoin_after * 2).min(REJOIN_AFTER_MAX);
        }
        if !paused && budget.exhausted() {
            set_paused(consumer, true);
            paused = true;
        } else if paused && budget.recovered() {
            set_paused(consumer, false);
            paused = false;
        }
        commit_group_offsets(consumer);

        match consumer.poll(Duration::from_millis(100)) {
            None => ctx.send_pending()?,
            Some(Ok(msg)) => {
                let Some(&route) = ctx.routes.get(msg.topic()) else { continue };
                let topic = topics.entry(msg.topic().to_string()).or_insert_with(|| Arc::from(msg.topic())).clone();
                let payload = msg.payload().unwrap_or_default().to_vec();
                budget.charge(payload.len() as u64);
                let kafka_time_us = msg.timestamp().to_millis().map_or_else(crate::indexer::now_us, |ms| ms * 1000);
                let record = Record {
                    topic,
                    partition: msg.partition(),
                    offset: msg.offset(),
                    key: msg.key().and_then(|k| std::str::from_utf8(k).ok()).map(str::to_string),
                    kafka_time_us,
                    payload,
                };
                ctx.push(route, record).map_err(|e| format!("topic '{}': {e}", msg.topic()))?;
                last_poll_error = None;
            }
            Some(Err(e)) => {
                ctx.send_pending()?;
                log_poll_error(e, &mut last_poll_error);
            }
        }
    }
    Ok(())
}

/// Broker outages surface as poll errors; librdkafka reconnects by itself. Log each
/// distinct error once, and again every 30 s while it lasts.
fn log_poll_error(e: KafkaError, last: &mut Option<(String, Instant)>) {
    let text = e.to_string();
    let repeat = last.as_ref().is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(30));
    if !repeat {
        warn!(error = %text, "kafka poll error; retrying");
        *last = Some((text, Instant::now()));
    }
}

fn set_paused(consumer: &BaseConsumer<IngestContext>, pause: bool) {
    let Ok(assignment) = consumer.assignment() else { return };
    if assignment.count() == 0 {
        return;
    }
    let result = if pause { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
    match result {
        Ok(()) if pause => info!(partitions = assignment.count(), "indexers behind: partitions paused"),
        Ok(()) => info!(partitions = assignment.count(), "partitions resumed"),
        Err(e) => warn!(error = %e, pause, "pause/resume failed"),
    }
}

/// Tells the group what the indexers made durable, for the assigned partitions.
fn commit_group_offsets(consumer: &BaseConsumer<IngestContext>) {
    {
        let mut shared = consumer.context().committed.lock().expect("committed lock poisoned");
        if !shared.dirty {
            return;
        }
        shared.dirty = false;
    }
    let Ok(assignment) = consumer.assignment() else { return };
    let offsets = consumer.context().group_offsets(&assignment);
    if offsets.count() > 0 {
        // Rows are durable in the index, the group does not know yet: a crash here
        // makes the next owner of the partition index them again.
        tierlog_core::failpoint::hit("before_group_commit");
        if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
            warn!(error = %e, "committing group offsets failed; retrying after the next index commit");
            consumer.context().committed.lock().expect("committed lock poisoned").dirty = true;
        }
    }
}

/// Commits every indexer and then the group offsets of the whole assignment (shutdown).
pub(crate) fn flush_all(consumer: &BaseConsumer<IngestContext>) {
    if let Ok(assignment) = consumer.assignment() {
        consumer.context().flush_before_release(consumer, &assignment);
    }
}
