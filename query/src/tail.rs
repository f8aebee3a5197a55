//! Live tail: each row a hot commit makes visible that matches a query, pushed once to
//! every follower.
//!
//! One feed runs per (user, stream, query), however many follow it. After each commit
//! it reads the offsets that commit added (the stream's checkpoint before and after, per
//! partition), with a statement through the same gate and grant as any other, and hands
//! each row to every follower's buffer of `query.tail_buffer_rows`. A follower whose
//! buffer stays full for [`SLOW_GRACE`] is dropped with a last event saying so: a slow
//! reader holds neither the node's memory nor the other followers for longer.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use tierlog_core::checkpoint::Checkpoint;
use tokio::sync::{mpsc, watch};

use crate::access::Grant;
use crate::engine::{Protocol, QueryEngine};
use crate::error::{ErrorKind, QueryError};
use crate::format::row_objects;
use crate::search::literal;

/// How long a follower's full buffer may hold up its feed before the follower is dropped.
pub const SLOW_GRACE: Duration = Duration::from_secs(2);
/// How often a feed without commits checks whether anyone still follows it.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// What a follower receives next.
#[derive(Debug)]
pub enum TailEvent {
    Row(Arc<str>),
    /// The follower's buffer of `buffer_rows` stayed full; it is disconnected.
    Dropped {
        buffer_rows: usize,
    },
    /// The feed's query failed, or the stream went away; the tail has ended.
    Failed(Arc<str>),
}

/// Why a follower's rows stopped.
#[derive(Debug, Clone)]
enum End {
    Slow,
    Failed(Arc<str>),
}

/// A feed's end of one follower.
#[derive(Clone)]
struct Slot {
    rows: mpsc::Sender<Arc<str>>,
    end: Arc<Mutex<Option<End>>>,
}

impl Slot {
    /// Ends this follower's rows (the first reason stays).
    fn end(&self, end: End) {
        self.end.lock().expect("tail lock poisoned").get_or_insert(end);
    }

    fn is_over(&self) -> bool {
        self.rows.is_closed() || self.end.lock().expect("tail lock poisoned").is_some()
    }

    /// Hands `row` over, waiting at most [`SLOW_GRACE`] for room in the buffer; a
    /// follower still full then is marked slow and gets nothing more.
    async fn deliver(&self, row: &Arc<str>) {
        if self.is_over() {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(row)) = self.rows.try_send(Arc::clone(row))
            && tokio::time::timeout(SLOW_GRACE, self.rows.send(row)).await.is_err()
        {
            self.end(End::Slow);
        }
    }
}

/// (user, stream, query): followers with the same key share a feed.
type FeedKey = (Option<String>, String, String);

/// The live tails of a node.
#[derive(Clone)]
pub struct Tail {
    engine: QueryEngine,
    buffer: usize,
    feeds: Arc<Mutex<HashMap<FeedKey, Vec<Slot>>>>,
}

/// One client following one query.
pub struct Follower {
    rows: mpsc::Receiver<Arc<str>>,
    end: Arc<Mutex<Option<End>>>,
    buffer: usize,
    done: bool,
}

impl Follower {
    /// The next event; `None` once the tail has ended.
    pub async fn next(&mut self) -> Option<TailEvent> {
        if self.done {
            return None;
        }
        if let Some(row) = self.rows.recv().await {
            return Some(TailEvent::Row(row));
        }
        // The feed let go of this follower: the buffered rows came first, now why.
        self.done = true;
        match self.end.lock().expect("tail lock poisoned").clone()? {
            End::Slow => Some(TailEvent::Dropped { buffer_rows: self.buffer }),
            End::Failed(why) => Some(TailEvent::Failed(why)),
        }
    }
}

impl Tail {
    pub fn new(engine: QueryEngine, buffer_rows: u64) -> Tail {
        Tail { engine, buffer: buffer_rows.clamp(1, 1 << 20) as usize, feeds: Arc::default() }
    }

    /// Follows the rows of `stream` matching `query` (tantivy syntax; empty or `*`: every
    /// row) committed from now on. The statement is checked first, so an unknown
    /// stream, a stream outside the grant or a bad query is refused here, not mid-stream.
    pub async fn follow(&self, grant: &Grant, stream: &str, query: &str) -> Result<Follower, QueryError> {
        if !self.engine.has_stream(stream) {
            return Err(QueryError::new(ErrorKind::UndefinedTable, format!("unknown stream '{stream}'")));
        }
        let feed = Feed { engine: self.engine.clone(), grant: grant.clone(), stream: stream.to_string(), query: query.trim().to_string() };
        // `_offset < 0`: no rows, but planned and scanned, so the query's syntax is checked.
        self.engine.sql(&feed.statement("_offset < 0"), grant, Protocol::Http, None).await?;
        let key = (grant.user().map(str::to_string), feed.stream.clone(), feed.query.clone());
        let (rows, receiver) = mpsc::channel(self.buffer);
        let end = Arc::new(Mutex::new(None));
        let follower = Follower { rows: receiver, end: Arc::clone(&end), buffer: self.buffer, done: false };
        let mut feeds = self.feeds.lock().expect("tail lock poisoned");
        let slot = Slot { rows, end };
        if let Some(slots) = feeds.get_mut(&key) {
            slots.push(slot);
            return Ok(follower);
        }
        feeds.insert(key.clone(), vec![slot]);
        // Subscribed before the feed reads its first checkpoint: no commit is missed.
        let commits = self.engine.catalog().watch_commits(stream);
        let this = self.clone();
        tokio::spawn(async move { feed.run(commits, &this, &key).await });
        Ok(follower)
    }

    /// The feed's followers now, those that disconnected left out. `None` (and the feed
    /// removed) when none is left.
    fn followers(&self, key: &FeedKey) -> Option<Vec<Slot>> {
        let mut feeds = self.feeds.lock().expect("tail lock poisoned");
        let slots = feeds.get_mut(key)?;
        slots.retain(|s| !s.is_over());
        if slots.is_empty() {
            feeds.remove(key);
            return None;
        }
        Some(slots.clone())
    }

    /// Ends a feed: each follower gets its buffered rows, then `why`.
    fn close(&self, key: &FeedKey, why: &str) {
        let slots = self.feeds.lock().expect("tail lock poisoned").remove(key).unwrap_or_default();
        for slot in slots {
            slot.end(End::Failed(Arc::from(why)));
        }
    }
}

struct Feed {
    engine: QueryEngine,
    grant: Grant,
    stream: String,
    query: String,
}

impl Feed {
    /// The hot rows of the stream matching the query, within `range` (SQL).
    fn statement(&self, range: &str) -> String {
        let text =
            if self.query.is_empty() || self.query == "*" { String::new() } else { format!("AND match_all({}) ", literal(&self.query)) };
        // No ORDER BY: a commit's rows come in the order it indexed them, and sorting
        // every commit's rows would cost the node more than it gives a reader.
        format!("SELECT * FROM \"{}\" WHERE _tier = 'hot' {text}AND {range}", self.stream)
    }

    async fn run(self, mut commits: watch::Receiver<Arc<Checkpoint>>, tail: &Tail, key: &FeedKey) {
        let mut seen = Checkpoint::clone(&commits.borrow_and_update());
        // A partition first seen later (assigned to this node meanwhile) has no offset
        // to start from: its rows ingested from now on are new.
        let started_us = now_us();
        loop {
            let changed = tokio::select! {
                changed = commits.changed() => changed.is_ok(),
                () = tokio::time::sleep(IDLE_CHECK) => true,
            };
            if !changed {
                return tail.close(key, "the stream's writer is gone");
            }
            if tail.followers(key).is_none() {
                return;
            }
            let now = Checkpoint::clone(&commits.borrow_and_update());
            let new = NewOffsets::between(&seen, &now, started_us);
            if let Some(range) = new.sql() {
                let rows = match self.rows(&range, &new).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(stream = %self.stream, query = %self.query, error = %e, "live tail stopped");
                        return tail.close(key, &e.to_string());
                    }
                };
                let Some(followers) = tail.followers(key) else { return };
                for row in rows {
                    for follower in &followers {
                        follower.deliver(&row).await;
                    }
                }
                // Let go of the followers dropped as slow, so they see their end now.
                drop(followers);
                tail.followers(key);
            }
            seen.merge(&now);
        }
    }

    /// The new rows, each serialized once for every follower.
    async fn rows(&self, range: &str, new: &NewOffsets) -> Result<Vec<Arc<str>>, QueryError> {
        let result = self.engine.sql(&self.statement(range), &self.grant, Protocol::Tail, None).await?;
        let internal = |e: ArrowError| QueryError::new(ErrorKind::Internal, e.to_string());
        let mut rows = Vec::new();
        for batch in &result.batches {
            let inside = new.mask(batch).map_err(internal)?;
            rows.extend(row_objects(&filter_record_batch(batch, &inside).map_err(internal)?).map_err(internal)?);
        }
        Ok(rows)
    }
}

/// The offsets one commit added: per (topic, partition), `from..next`; `from` is `None`
/// for a partition the feed had not seen (then rows ingested since the feed started).
struct NewOffsets {
    ranges: Vec<(String, i32, Option<i64>, i64)>,
    started_us: i64,
}

impl NewOffsets {
    fn between(seen: &Checkpoint, now: &Checkpoint, started_us: i64) -> NewOffsets {
        let ranges = now
            .iter()
            .filter_map(|(topic, partition, next)| {
                let from = seen.next_offset(topic, partition);
                from.is_none_or(|f| f < next).then(|| (topic.to_string(), partition, from, next))
            })
            .collect();
        NewOffsets { ranges, started_us }
    }

    /// One condition covering every range (the index answers it), a superset when
    /// partitions differ; [`NewOffsets::mask`] then keeps the rows inside a range.
    /// `None` when nothing is new.
    fn sql(&self) -> Option<String> {
        let lowest = self.ranges.iter().map(|(_, _, from, _)| *from).min()?;
        let highest = self.ranges.iter().map(|(_, _, _, next)| *next).max()?;
        let list = |values: BTreeSet<String>| values.into_iter().collect::<Vec<_>>().join(", ");
        let topics = self.ranges.iter().map(|(t, ..)| literal(t)).collect();
        let partitions = self.ranges.iter().map(|(_, p, ..)| p.to_string()).collect();
        let lower = match lowest {
            Some(from) => format!("_offset >= {from}"),
            None => format!("_ingest_time >= to_timestamp_micros({})", self.started_us),
        };
        Some(format!("_topic IN ({}) AND _partition IN ({}) AND {lower} AND _offset < {highest}", list(topics), list(partitions)))
    }

    /// Which rows of `batch` lie inside a range (the statement's condition is wider).
    fn mask(&self, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
        let column = |name: &str, to: &DataType| -> Result<ArrayRef, ArrowError> {
            let index = batch.schema().index_of(name)?;
            cast(batch.column(index), to)
        };
        let (topics, partitions, offsets) =
            (column("_topic", &DataType::Utf8)?, column("_partition", &DataType::Int64)?, column("_offset", &DataType::Int64)?);
        let topics = topics.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let partitions = partitions.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
        let offsets = offsets.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
        Ok((0..batch.num_rows())
            .map(|i| {
                let (topic, partition, offset) = (topics.value(i), partitions.value(i), offsets.value(i));
                Some(self.ranges.iter().any(|(t, p, from, next)| {
                    t == topic && i64::from(*p) == partition && offset < *next && from.is_none_or(|f| offset >= f)
                }))
            })
            .collect())
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
