//! Compaction (DESIGN.md §5): small segments of one table and one hour merge into one of
//! about the stream's `compaction_target_size`, its rows in `_timestamp` order and, for
//! rows, its bundle built anew; one commit removes the old files and adds the new, all
//! with `dataChange = false`, and the sweep deletes the old files and bundles after
//! `retention_grace` like any removed segment's. An hour whose segments stay below the
//! target together (a quiet stream) merges once none has joined it for `compact_after`.
//! A segment whose bundle predates format 2 is rebuilt, alone if need be.
//!
//! Crash-safe and idempotent: a merge's id is a hash of its sources and of the node, so a
//! restart plans the same merge and writes the same keys again, and no other node ever
//! writes them; the failpoints `compaction_after_parquet_upload`,
//! `compaction_after_bundle_upload` and `compaction_after_commit` let tests crash between
//! the steps. Conflict-safe: the commit builds on the snapshot whose sources it checked,
//! so when retention (or anything) commits first it looks again, and when a source has
//! gone the merge is given up and its uploads deleted.
//!
//! It runs beside the lifecycle loop, not in it: a merge is long CPU work, and migration
//! and retention must not wait for it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::config::{Config, StreamConfig};
use tierlog_core::failpoint;
use tierlog_core::metrics::{Counter, Metrics};
use tierlog_hot::{StreamSchema, TableKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::bundle::bundle_key;
use crate::error::{ColdError, Result};
use crate::migrate::{SCHEMA_VERSION, cold_schema, write_segment};
use crate::store::ColdStore;
use crate::table::{Backoff, COMMIT_ATTEMPTS, ColdTable, Committed, NewSegment, SegmentFile};

/// Segments of one hour of one table that merge into one.
#[derive(Debug, Clone)]
pub struct Merge {
    /// `date=YYYY-MM-DD/hour=HH`: the folder of its sources and of the merged file.
    pub hour: String,
    /// Oldest rows first.
    pub sources: Vec<SegmentFile>,
    /// When it is (or was) due, ms since the epoch: when the youngest source joined, if
    /// together they reach the target; `compact_after` later if they do not.
    pub due_ms: i64,
    pub reason: MergeReason,
}

/// What makes a merge due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeReason {
    /// Together the sources reach `compaction_target_size`.
    TargetReached,
    /// They do not, and no segment has joined the hour for `compact_after`.
    Quiet,
    /// A lone segment whose bundle is format 1, rebuilt.
    OldBundle,
}

/// The merges `files` (a table's live segments) call for under a target size and a
/// quiet age, due or not (see [`Merge::due_ms`]).
pub fn plan_merges(files: &[SegmentFile], target: u64, after: Duration) -> Vec<Merge> {
    let mut by_hour: BTreeMap<&str, Vec<&SegmentFile>> = BTreeMap::new();
    for file in files.iter().filter(|f| f.bytes < target || outdated(f)) {
        by_hour.entry(file.path.rsplit_once('/').map_or("", |(dir, _)| dir)).or_default().push(file);
    }
    let after_ms = after.as_millis() as i64;
    let mut out = Vec::new();
    for (hour, mut files) in by_hour {
        files.sort_by(|a, b| (a.time_range_us, &a.id).cmp(&(b.time_range_us, &b.id)));
        let mut bins: Vec<(Vec<&SegmentFile>, bool)> = vec![(Vec::new(), false)];
        for file in files {
            let (bin, full) = bins.last_mut().expect("one bin at least");
            bin.push(file);
            if bin.iter().map(|f| f.bytes).sum::<u64>() >= target {
                *full = true;
                bins.push((Vec::new(), false));
            }
        }
        for (bin, full) in bins {
            if bin.len() < 2 && !bin.iter().any(|f| outdated(f)) {
                continue;
            }
            let youngest = bin.iter().map(|f| f.added_ms).max().unwrap_or(0);
            let (due_ms, reason) = if bin.len() < 2 {
                (youngest, MergeReason::OldBundle)
            } else if full {
                (youngest, MergeReason::TargetReached)
            } else {
                (youngest + after_ms, MergeReason::Quiet)
            };
            out.push(Merge { hour: hour.to_string(), sources: bin.into_iter().cloned().collect(), due_ms, reason });
        }
    }
    out
}

/// A row segment whose bundle has no tail tag: format 1, which this build cannot open.
fn outdated(file: &SegmentFile) -> bool {
    file.index_key.is_some() && file.index_tail.is_none()
}

/// The id of a merge of `sources` in `hour` by `node`: the same for the same merge, and
/// different for every other, so that a restart overwrites its own uploads and nothing else.
fn merged_id(node: &str, hour: &str, sources: &[SegmentFile]) -> String {
    let mut ids: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    // FNV-1a: stable across builds, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::iter::once(hour).chain(ids).flat_map(|s| s.bytes().chain([b'\n'])) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{node}-merged-{hash:016x}")
}

/// What one merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compacted {
    /// Committed at `version`.
    Merged { id: String, version: u64, sources: usize, rows: usize, bytes_in: u64, bytes_out: u64 },
    /// The table holds it already (an earlier run committed it).
    AlreadyThere,
    /// Source `gone` left the table first (retention): given up, its uploads deleted.
    Abandoned { gone: String },
}

/// Merges `merge`'s sources of `table` (the `kind` table of stream `stream_name`) into
/// one segment and replaces them with it in one commit, as the module doc says.
#[allow(clippy::too_many_arguments)]
pub async fn compact(
    store: &ColdStore,
    table: &mut ColdTable,
    stream: &StreamSchema,
    stream_name: &str,
    kind: TableKind,
    merge: &Merge,
    node: &str,
    target: u64,
) -> Result<Compacted> {
    let table_name = table.name().to_string();
    let id = merged_id(node, &merge.hour, &merge.sources);
    let failed = |reason: String| ColdError::Segment { stream: table_name.clone(), segment: id.clone(), reason };
    // Committed already: its keys must not be written again.
    if table.has_segment(&id)? {
        return Ok(Compacted::AlreadyThere);
    }
    let mut sources = Vec::with_capacity(merge.sources.len());
    for source in &merge.sources {
        sources.push(store.read(&store.key(&format!("tables/{table_name}/{}", source.path))).await?);
    }
    let bytes_in: u64 = sources.iter().map(|s| s.len() as u64).sum();
    let written = {
        let stream = stream.clone();
        tokio::task::spawn_blocking(move || {
            let schema = cold_schema(&stream, kind);
            let mut runs = Vec::with_capacity(sources.len());
            for source in sources {
                runs.push(read_parquet(source, &schema)?);
            }
            write_segment(&stream, kind, &crate::segment::merge_by_timestamp(&schema, &runs)?)
        })
        .await
        .map_err(|e| failed(format!("the merge failed: {e}")))?
        .map_err(&failed)?
    };
    let path = format!("{}/{id}.parquet", merge.hour);
    let data_key = store.key(&format!("tables/{table_name}/{path}"));
    let index_key = written.bundle.as_ref().map(|_| bundle_key(store, stream_name, &id));
    let mut covers: Vec<String> = merge.sources.iter().flat_map(|s| s.generations().map(str::to_string)).collect();
    covers.sort_unstable();
    covers.dedup();
    let segment = NewSegment {
        id: id.clone(),
        path,
        size: written.file.bytes.len() as i64,
        index_key: index_key.as_ref().map(ToString::to_string),
        index_tail: written.bundle.as_ref().map(|b| b.tail_len),
        layout: written.file.layout.clone(),
        stats: written.file.stats.clone(),
        next_offsets: Checkpoint::new(),
        offset_ranges: written.offsets.to_tag(),
        schema_version: SCHEMA_VERSION,
        covers,
    };
    let (rows, bytes_out) = (written.file.num_rows, written.file.bytes.len() as u64);
    store.put(&data_key, written.file.bytes).await?;
    failpoint::hit("compaction_after_parquet_upload");
    if let (Some(key), Some(bundle)) = (&index_key, written.bundle) {
        store.put(key, bundle.bytes).await?;
        failpoint::hit("compaction_after_bundle_upload");
    }
    if let Some(wait) = failpoint::pause("compaction_before_commit") {
        tokio::time::sleep(wait).await;
    }
    let mut backoff = Backoff::new();
    let version = loop {
        table.refresh().await?;
        let live: HashSet<String> = table.segment_files()?.into_iter().map(|f| f.id).collect();
        if live.contains(&id) {
            return Ok(Compacted::AlreadyThere);
        }
        if let Some(gone) = merge.sources.iter().find(|s| !live.contains(&s.id)) {
            // Its id names these sources: nobody can commit it any more.
            store.delete(&data_key).await?;
            if let Some(key) = &index_key {
                store.delete(key).await?;
            }
            return Ok(Compacted::Abandoned { gone: gone.id.clone() });
        }
        match table.try_replace_segments(&merge.sources, &segment, target).await? {
            Committed::Added(version) => break version,
            Committed::AlreadyThere => return Ok(Compacted::AlreadyThere),
            Committed::LostRace if backoff.attempts < COMMIT_ATTEMPTS => backoff.wait(&table_name, &id).await,
            Committed::LostRace => return Err(failed("other commits kept winning the race; compaction tries again later".into())),
        }
    };
    failpoint::hit("compaction_after_commit");
    Ok(Compacted::Merged { id, version, sources: merge.sources.len(), rows, bytes_in, bytes_out })
}

/// The rows of a Parquet file in `schema`: columns by name, cast where the file's type
/// differs, null where the file has none (written before the stream declared it).
fn read_parquet(bytes: Vec<u8>, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).map_err(|e| e.to_string())?.build().map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(column) => cast(column, field.data_type()).map_err(|e| format!("column {}: {e}", field.name())),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            })
            .collect::<std::result::Result<_, _>>()?;
        batches.push(RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())?);
    }
    arrow::compute::concat_batches(schema, &batches).map_err(|e| e.to_string())
}

/// The node's compaction task: every stream's tables, planned and merged in turn.
pub(crate) struct Compactor {
    store: ColdStore,
    node: String,
    streams: Vec<StreamCompaction>,
}

struct StreamCompaction {
    name: String,
    schema: StreamSchema,
    target: u64,
    after: Duration,
    /// Its tables ([`TableKind::ALL`] order), opened on first use.
    tables: [Option<ColdTable>; 2],
    /// After a failure: when to try again, and the wait after that.
    retry: Option<(SystemTime, Duration)>,
    merges: Arc<Counter>,
    merged_segments: Arc<Counter>,
    bytes_read: Arc<Counter>,
    abandoned: Arc<Counter>,
    failures: Arc<Counter>,
}

impl Compactor {
    pub fn new(config: &Config, store: ColdStore, metrics: &Metrics) -> Compactor {
        let streams = config.streams.iter().map(|s| StreamCompaction::new(s, metrics)).collect();
        Compactor { store, node: config.node.id.clone(), streams }
    }

    /// How often to look: a quarter of the shortest `compact_after`, within 250 ms–60 s.
    fn interval(&self) -> Duration {
        let shortest = self.streams.iter().map(|s| s.after).min().unwrap_or(Duration::from_secs(3600));
        (shortest / 4).clamp(Duration::from_millis(250), Duration::from_secs(60))
    }

    /// Runs until `stop` says so; a merge cut short by it is redone by the next start.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let interval = self.interval();
        loop {
            tokio::select! {
                _ = self.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Runs every due merge of every stream not backing off.
    pub async fn tick(&mut self) {
        for stream in &mut self.streams {
            let now = SystemTime::now();
            if stream.retry.is_some_and(|(at, _)| at > now) {
                continue;
            }
            match stream.compact_due(&self.store, &self.node, now).await {
                Ok(()) => stream.retry = None,
                Err(e) => {
                    stream.failures.inc();
                    let (at, wait) = crate::lifecycle::backoff(stream.retry.as_ref(), now);
                    warn!(stream = %stream.name, error = %e, retry_in_s = wait.as_secs_f64(), "compaction failed; will try again");
                    stream.retry = Some((at, wait));
                    stream.tables = [None, None];
                }
            }
        }
    }
}

impl StreamCompaction {
    fn new(config: &StreamConfig, metrics: &Metrics) -> StreamCompaction {
        let l = [("stream", config.name.as_str())];
        StreamCompaction {
            name: config.name.clone(),
            schema: StreamSchema::new(config),
            target: config.policy.compaction_target_size.0,
            after: config.policy.compact_after.0,
            tables: [None, None],
            retry: None,
            merges: metrics.counter("tierlog_lifecycle_compactions_total", "Merges of cold segments committed.", &l),
            merged_segments: metrics.counter("tierlog_lifecycle_compacted_segments_total", "Cold segments merged into larger ones.", &l),
            bytes_read: metrics.counter("tierlog_lifecycle_compacted_bytes_total", "Parquet bytes of the segments merged.", &l),
            abandoned: metrics.counter(
                "tierlog_lifecycle_compactions_abandoned_total",
                "Merges given up because a source segment left the table first (retention).",
                &l,
            ),
            failures: metrics.counter(
                "tierlog_lifecycle_failures_total",
                "Lifecycle steps that failed (tried again later).",
                &[("stream", config.name.as_str()), ("step", "compact")],
            ),
        }
    }

    async fn compact_due(&mut self, store: &ColdStore, node: &str, now: SystemTime) -> Result<()> {
        let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for kind in TableKind::ALL {
            let name = kind.table_name(&self.name);
            let table = match &mut self.tables[kind as usize] {
                Some(table) => table,
                empty => match ColdTable::open_existing(store, &name).await? {
                    Some(table) => empty.insert(table),
                    // Nothing migrated yet: the lifecycle creates it.
                    None => continue,
                },
            };
            table.refresh().await?;
            for merge in plan_merges(&table.segment_files()?, self.target, self.after).into_iter().filter(|m| m.due_ms <= now_ms) {
                let started = Instant::now();
                match compact(store, table, &self.schema, &self.name, kind, &merge, node, self.target).await? {
                    Compacted::Merged { id, version, sources, rows, bytes_in, bytes_out } => {
                        self.merges.inc();
                        self.merged_segments.add(sources as u64);
                        self.bytes_read.add(bytes_in);
                        let seconds = started.elapsed().as_secs_f64();
                        info!(table = %name, segment = %id, hour = %merge.hour, sources, rows, bytes_in, bytes_out, version,
                            seconds, mb_per_s = bytes_in as f64 / 1e6 / seconds.max(1e-6), reason = ?merge.reason, "merged cold segments");
                    }
                    Compacted::AlreadyThere => {}
                    Compacted::Abandoned { gone } => {
                        self.abandoned.inc();
                        info!(table = %name, hour = %merge.hour, gone = %gone, "a merge's source left the table first; merge given up");
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, hour: u32, bytes: u64, added_ms: i64) -> SegmentFile {
        SegmentFile {
            id: id.to_string(),
            path: format!("date=2026-12-03/hour={hour:02}/{id}.parquet"),
            rows: 1,
            bytes,
            time_range_us: Some((added_ms * 1000, added_ms * 1000)),
            index_key: Some(format!("index/s/{id}.index")),
            index_tail: Some(100),
            layout: None,
            added_ms,
            covers: Vec::new(),
        }
    }

    fn ids(merge: &Merge) -> Vec<&str> {
        merge.sources.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn small_segments_of_an_hour_merge_up_to_the_target() {
        let hour = Duration::from_secs(3600);
        let files = [file("a", 10, 40, 1), file("b", 10, 40, 2), file("c", 10, 40, 3), file("d", 10, 40, 4), file("e", 11, 40, 5)];
        let merges = plan_merges(&files, 100, hour);
        // a+b+c reach 100: due at once; d alone and e alone (another hour) merge nothing.
        assert_eq!(merges.len(), 1, "{merges:?}");
        assert_eq!(ids(&merges[0]), ["a", "b", "c"]);
        assert_eq!(merges[0].due_ms, 3);
        // A big segment stays; the small ones around it still merge, once quiet.
        let files = [file("a", 10, 40, 1), file("big", 10, 500, 2), file("c", 10, 40, 3)];
        let merges = plan_merges(&files, 100, hour);
        assert_eq!(merges.len(), 1);
        assert_eq!(ids(&merges[0]), ["a", "c"]);
        assert_eq!(merges[0].due_ms, 3 + 3_600_000, "compact_after after the youngest");
        assert!(plan_merges(&[file("alone", 10, 1, 1)], 100, hour).is_empty(), "one segment has nothing to merge with");
    }

    #[test]
    fn a_format_1_bundle_is_rebuilt_even_alone() {
        let mut old = file("old", 10, 500, 7);
        old.index_tail = None;
        let merges = plan_merges(&[old], 100, Duration::from_secs(60));
        assert_eq!(merges.len(), 1);
        assert_eq!(merges[0].due_ms, 7);
        let mut errors = file("errors", 10, 1, 7);
        (errors.index_key, errors.index_tail) = (None, None);
        assert!(plan_merges(&[errors], 100, Duration::from_secs(60)).is_empty(), "error segments have no bundle");
    }

    #[test]
    fn a_merge_id_names_its_sources_and_node() {
        let (a, b, c) = (file("a", 10, 1, 1), file("b", 10, 1, 2), file("c", 10, 1, 3));
        let id = merged_id("n1", "h", &[a.clone(), b.clone()]);
        assert_eq!(id, merged_id("n1", "h", &[b.clone(), a.clone()]), "order does not matter");
        assert_ne!(id, merged_id("n1", "h", &[a.clone(), b.clone(), c]));
        assert_ne!(id, merged_id("n2", "h", &[a.clone(), b.clone()]));
        assert_ne!(id, merged_id("n1", "h2", &[a, b]));
    }
}
