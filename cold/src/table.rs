//! One Delta Lake table per stream, at `<prefix>/tables/<stream>/` (DESIGN.md §5). Its
//! transaction log is the cold tier's manifest: a segment exists once the commit that
//! adds its Parquet file exists, and not before.
//!
//! Each segment (a former hot generation; its id is the idempotency key) is added by
//! one commit, whose `txn` actions (`tierlog/<stream>/<topic>/<partition>`) carry each
//! partition's next offset: the cold checkpoint a fresh node resumes from. A txn version
//! never goes down.

use std::collections::HashMap;
use std::sync::{Arc, Once};
use std::time::Duration;

use arrow::datatypes::Schema as ArrowSchema;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake::logstore::{LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories};
use deltalake::operations::create::CreateBuilder;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use tierlog_core::checkpoint::Checkpoint;
use url::Url;

use crate::error::{ColdError, Result};
use crate::offsets::OffsetRuns;
use crate::segment::FileLayout;
use crate::store::ColdStore;

/// Tags of a segment's add action.
pub const SEGMENT_TAG: &str = "tierlog.segment";
pub const OFFSETS_TAG: &str = "tierlog.offsets";
pub const SCHEMA_TAG: &str = "tierlog.schema";
pub const INDEX_TAG: &str = "tierlog.index";
/// Bytes at the end of the index bundle that open it (footer and hotcache).
pub const INDEX_TAIL_TAG: &str = "tierlog.index_tail";
/// Where a Parquet file's bytes are ([`FileLayout`] as JSON), for cost estimates.
pub const LAYOUT_TAG: &str = "tierlog.layout";
/// The generations a merged segment holds the rows of, comma-separated (compaction).
pub const COVERS_TAG: &str = "tierlog.covers";

/// Registers, once per process, the log store deltalake uses for `s3://` tables: its
/// default one (every commit a put-if-absent), over the store tierlog hands it. deltalake
/// keeps this registry global; this is the one place that touches it.
pub fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let scheme = Url::parse("s3://").expect("a valid scheme URL");
        logstore_factories().insert(scheme, Arc::new(DefaultLogStores));
    });
}

struct DefaultLogStores;

impl LogStoreFactory for DefaultLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// A segment ready to be added: its Parquet file is uploaded at `path` (relative to the
/// table root).
#[derive(Debug, Clone)]
pub struct NewSegment {
    /// The generation id it came from; the idempotency key.
    pub id: String,
    pub path: String,
    pub size: i64,
    /// Key of its index bundle (outside the table root, which vacuum sweeps); error
    /// tables have none.
    pub index_key: Option<String>,
    /// Its bundle's tail length: one GET of that many bytes opens it.
    pub index_tail: Option<u64>,
    /// Where the Parquet file's bytes are (`tierlog.layout`).
    pub layout: FileLayout,
    /// Delta's `stats` JSON (numRecords, minValues, maxValues, nullCount).
    pub stats: String,
    /// Per partition, the next offset after the segment's rows.
    pub next_offsets: Checkpoint,
    /// The offsets of its rows, as the `tierlog.offsets` tag (see `offsets.rs`).
    pub offset_ranges: String,
    pub schema_version: u32,
    /// The generations whose rows it holds when it merges other segments
    /// (`tierlog.covers`); empty for a migrated generation, which holds its own.
    pub covers: Vec<String>,
}

/// A live segment of the table, as its add action describes it.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    pub id: String,
    /// Its Parquet file, relative to the table root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Bounds of its rows' `_timestamp`, µs, from the statistics: they are truncated to
    /// the millisecond, so the upper bound is the last µs of the max's millisecond.
    pub time_range_us: Option<(i64, i64)>,
    /// Key of its index bundle, from the `tierlog.index` tag.
    pub index_key: Option<String>,
    /// Its bundle's tail length, from the `tierlog.index_tail` tag.
    pub index_tail: Option<u64>,
    /// Where its bytes are, from the `tierlog.layout` tag (`None`: written before it).
    pub layout: Option<FileLayout>,
    /// When its commit added it (the add action's `modificationTime`), ms since the epoch.
    pub added_ms: i64,
    /// The generations a merged segment holds, from the `tierlog.covers` tag (empty when
    /// it is one generation's own).
    pub covers: Vec<String>,
}

impl SegmentFile {
    /// Its newest row's `_timestamp` (at most this), µs.
    pub fn newest_us(&self) -> Option<i64> {
        self.time_range_us.map(|(_, hi)| hi)
    }

    /// The hot generations whose rows it holds: its own id, or those it was merged from.
    /// A query reads these from this segment and not from the hot tier.
    pub fn generations(&self) -> impl Iterator<Item = &str> {
        let own = self.covers.is_empty().then_some(self.id.as_str());
        own.into_iter().chain(self.covers.iter().map(String::as_str))
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The segment was added at this table version.
    Added(u64),
    /// The table already held the segment: nothing was written.
    AlreadyThere,
    /// Another commit won the race; this handle now holds the newer snapshot.
    LostRace,
}

/// A stream's cold table.
pub struct ColdTable {
    stream: String,
    table: DeltaTable,
}

impl std::fmt::Debug for ColdTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdTable").field("stream", &self.stream).field("version", &self.table.version()).finish()
    }
}

impl ColdTable {
    /// Opens the stream's table, creating it with `schema` on first use. Two nodes
    /// creating it at once is fine: one commit of version 0 wins, the other loads it.
    pub async fn open(store: &ColdStore, stream: &str, schema: &ArrowSchema) -> Result<ColdTable> {
        let (mut table, url) = Self::handle(store, stream)?;
        let err = |source| ColdError::Table { stream: stream.to_string(), table: url.to_string(), source };
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => {
                let columns = StructType::try_from_arrow(schema).map_err(|e| err(DeltaTableError::Generic(e.to_string())))?;
                let created = CreateBuilder::new()
                    .with_log_store(table.log_store())
                    .with_table_name(stream)
                    .with_comment(format!("tierlog stream '{stream}'"))
                    .with_columns(columns.fields().cloned())
                    .with_save_mode(SaveMode::Ignore)
                    // A creation that loses the race must not be retried as version 1:
                    // it would commit the table's metadata a second time.
                    .with_commit_properties(CommitProperties::default().with_max_retries(0))
                    .await;
                match created {
                    Ok(created) => table = created,
                    // Another node created it first.
                    Err(_) => table.load().await.map_err(err)?,
                }
            }
            Err(e) => return Err(err(e)),
        }
        Ok(ColdTable { stream: stream.to_string(), table })
    }

    /// Opens the stream's table if it exists, for readers, which never create it.
    pub async fn open_existing(store: &ColdStore, stream: &str) -> Result<Option<ColdTable>> {
        let (mut table, url) = Self::handle(store, stream)?;
        match table.load().await {
            Ok(()) => Ok(Some(ColdTable { stream: stream.to_string(), table })),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(source) => Err(ColdError::Table { stream: stream.to_string(), table: url.to_string(), source }),
        }
    }

    /// An unloaded handle on the stream's table, on our object store.
    fn handle(store: &ColdStore, stream: &str) -> Result<(DeltaTable, Url)> {
        register_log_stores();
        let (url, backend) = store.location_of(&format!("tables/{stream}"))?;
        let err = |source| ColdError::Table { stream: stream.to_string(), table: url.to_string(), source };
        let mut builder = DeltaTableBuilder::from_url(url.clone()).map_err(err)?;
        if let Some(backend) = backend {
            builder = builder.with_storage_backend(backend, url.clone());
        }
        Ok((builder.build().map_err(err)?, url))
    }

    /// The version of the snapshot this handle holds.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// Reads the newest version of the log.
    pub async fn refresh(&mut self) -> Result<()> {
        self.table.update_state().await.map_err(|e| self.error(e))
    }

    /// The txn app id of a partition.
    fn app_id(&self, topic: &str, partition: i32) -> String {
        format!("tierlog/{}/{topic}/{partition}", self.stream)
    }

    /// The cold checkpoint of `topic`/`partition`: the next offset after every row the
    /// table holds, as its `txn` action says.
    pub async fn next_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        snapshot.transaction_version(&*self.table.log_store(), self.app_id(topic, partition)).await.map_err(|e| self.error(e))
    }

    /// Every partition's cold checkpoint (its txn version), for the partitions the live
    /// segments hold rows of.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        let mut out = Checkpoint::new();
        for (topic, partition) in self.held_offsets()?.partitions() {
            if let Some(next) = self.next_offset(topic, partition).await? {
                out.advance(topic, partition, next);
            }
        }
        Ok(out)
    }

    /// The live segments as their add actions describe them.
    pub fn segment_files(&self) -> Result<Vec<SegmentFile>> {
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for file in snapshot.log_data().iter() {
            let path = file.path().to_string();
            let stats: serde_json::Value = file.stats().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
            let micros = |bound: &str| {
                stats[bound]["_timestamp"]
                    .as_str()
                    .and_then(|t| arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(t).ok())
                    .map(|ns| ns.div_euclid(1000))
            };
            let time_range_us = micros("minValues").zip(micros("maxValues")).map(|(lo, hi)| (lo, hi + 999));
            #[allow(deprecated)] // see held_offsets
            let tags = file.add_action().tags;
            let tag = |name: &str| tags.as_ref().and_then(|t| t.get(name).cloned().flatten());
            let (index_key, index_tail) = (tag(INDEX_TAG), tag(INDEX_TAIL_TAG).and_then(|t| t.parse().ok()));
            let layout = tag(LAYOUT_TAG).and_then(|t| serde_json::from_str(&t).ok());
            let covers = tag(COVERS_TAG).map(|t| t.split(',').map(str::to_string).collect()).unwrap_or_default();
            out.push(SegmentFile {
                id: segment_id(&path).to_string(),
                path,
                rows: stats["numRecords"].as_u64().unwrap_or(0),
                bytes: file.size().max(0) as u64,
                time_range_us,
                index_key,
                index_tail,
                layout,
                added_ms: file.modification_time(),
                covers,
            });
        }
        Ok(out)
    }

    /// Paths of the live Parquet files, relative to the table root.
    pub fn files(&self) -> Result<Vec<String>> {
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        Ok(snapshot.log_data().iter().map(|f| f.path().to_string()).collect())
    }

    /// The offsets the live segments hold, from their `tierlog.offsets` tags.
    pub fn held_offsets(&self) -> Result<OffsetRuns> {
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        let mut held = OffsetRuns::default();
        for file in snapshot.log_data().iter() {
            // The file view has no accessor for tags but this one (deprecated in favour
            // of reading the Arrow arrays, whose layout is deltalake's internal business).
            #[allow(deprecated)]
            let add = file.add_action();
            let tag = add.tags.as_ref().and_then(|t| t.get(OFFSETS_TAG)).and_then(Option::as_deref);
            let Some(tag) = tag else {
                return Err(self.error(DeltaTableError::Generic(format!("{} has no {OFFSETS_TAG} tag", add.path))));
            };
            held.add_tag(tag).map_err(|e| self.error(DeltaTableError::Generic(format!("{}: {e}", add.path))))?;
        }
        Ok(held)
    }

    /// Whether the live snapshot holds the rows of segment (or generation) `id`: a file
    /// named after it, or a merged one that covers it.
    pub fn has_segment(&self, id: &str) -> Result<bool> {
        Ok(self.segment_files()?.iter().any(|f| f.id == id || f.covers.iter().any(|g| g == id)))
    }

    /// Adds `segment` in one commit with its partitions' txn versions, unless the table
    /// already holds it, trying again (after re-reading the table) while other commits
    /// win the race. A caller whose segment depends on what the table holds (migration
    /// drops rows other segments hold) uses [`ColdTable::try_commit_segment`] instead.
    pub async fn commit_segment(&mut self, segment: &NewSegment) -> Result<Committed> {
        let mut backoff = Backoff::new();
        loop {
            match self.try_commit_segment(segment).await? {
                Committed::LostRace if backoff.attempts < COMMIT_ATTEMPTS => backoff.wait(&self.stream, &segment.id).await,
                done => return Ok(done),
            }
        }
    }

    /// One try at adding `segment` on the snapshot this handle holds (refresh first):
    /// `LostRace` when another commit got there first, so that the caller re-reads the
    /// table and decides again. deltalake's own retries are off, because they would
    /// commit without that second look.
    pub async fn try_commit_segment(&mut self, segment: &NewSegment) -> Result<Committed> {
        if self.has_segment(&segment.id)? {
            return Ok(Committed::AlreadyThere);
        }
        let now = now_ms();
        let mut transactions = Vec::new();
        for (topic, partition, next) in segment.next_offsets.iter() {
            let held = self.next_offset(topic, partition).await?.unwrap_or(0);
            transactions.push(Transaction::new_with_last_update(self.app_id(topic, partition), next.max(held), Some(now)));
        }
        let properties = CommitProperties::default().with_application_transactions(transactions);
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        Ok(match self.commit(vec![Action::Add(add_action(segment, true, now))], operation, properties).await? {
            Some(version) => Committed::Added(version),
            None => Committed::LostRace,
        })
    }

    /// One try at replacing `old` (live in the snapshot this handle holds) by `merged`,
    /// which holds exactly their rows (compaction): one commit that removes them and adds
    /// it, all with `dataChange = false`, as an `OPTIMIZE` in the table's history, so
    /// that readers following the table's changes see nothing new. No txn versions: the
    /// offsets held do not change. `LostRace` as for [`ColdTable::try_commit_segment`].
    pub async fn try_replace_segments(&mut self, old: &[SegmentFile], merged: &NewSegment, target_size: u64) -> Result<Committed> {
        if self.has_segment(&merged.id)? {
            return Ok(Committed::AlreadyThere);
        }
        let now = now_ms();
        let mut actions: Vec<Action> = old.iter().map(|s| remove_action(s, false, now)).collect();
        actions.push(Action::Add(add_action(merged, false, now)));
        let operation = DeltaOperation::Optimize { predicate: None, target_size: target_size as i64 };
        Ok(match self.commit(actions, operation, CommitProperties::default()).await? {
            Some(version) => Committed::Added(version),
            None => Committed::LostRace,
        })
    }

    /// Removes `segments` (live in the snapshot this handle holds) in one commit
    /// (retention), as a `DELETE` of `predicate` in the table's history. `None` when another commit won the race: this
    /// handle then holds the newer snapshot, and the caller decides again. Their files
    /// stay until [`ColdTable::vacuum`], so that queries that pinned an older version
    /// can still read them.
    pub async fn remove_segments(&mut self, segments: &[SegmentFile], predicate: String) -> Result<Option<u64>> {
        let now = now_ms();
        let removes: Vec<Action> = segments.iter().map(|s| remove_action(s, true, now)).collect();
        self.commit(removes, DeltaOperation::Delete { predicate: Some(predicate) }, CommitProperties::default()).await
    }

    /// Data files (relative paths) that commits removed before `before_ms`.
    pub async fn removed_before(&self, before_ms: i64) -> Result<Vec<String>> {
        Ok(self.tombstones().await?.into_iter().filter(|(_, removed_ms)| *removed_ms < before_ms).map(|(path, _)| path).collect())
    }

    /// Every file a commit removed that the log still names, with when (ms since the
    /// epoch; 0 when the remove action does not say).
    pub async fn tombstones(&self) -> Result<Vec<(String, i64)>> {
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        let log_store = self.table.log_store();
        let tombstones: Vec<_> = snapshot.all_tombstones(&*log_store).try_collect().await.map_err(|e| self.error(e))?;
        Ok(tombstones.iter().map(|t| (t.path().into_owned(), t.deletion_timestamp().unwrap_or(0))).collect())
    }

    /// The table's name: the stream's, or its error table's.
    pub fn name(&self) -> &str {
        &self.stream
    }

    /// Deletes the data files that commits removed more than `grace` ago (Delta's
    /// `VACUUM`, lite mode: only files the log names as removed), and returns their
    /// paths. Deleting a file already gone is not an error, so this may run again.
    pub async fn vacuum(&mut self, grace: Duration) -> Result<Vec<String>> {
        let grace = chrono::Duration::from_std(grace).map_err(|e| self.error(DeltaTableError::Generic(e.to_string())))?;
        let (table, metrics) = self
            .table
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Lite)
            .with_retention_period(grace)
            // Our grace is shorter than the table's 7-day default; it is chosen to
            // outlast the longest query (query.timeout).
            .with_enforce_retention_duration(false)
            .await
            .map_err(|e| self.error(e))?;
        self.table = table;
        Ok(metrics.files_deleted)
    }

    /// One commit of `actions` on the snapshot this handle holds, without deltalake's
    /// blind retries. `None` when another commit got there first (refreshed).
    async fn commit(&mut self, actions: Vec<Action>, operation: DeltaOperation, properties: CommitProperties) -> Result<Option<u64>> {
        let snapshot = self.table.snapshot().map_err(|e| self.error(e))?;
        let finalized =
            CommitBuilder::from(properties.with_max_retries(0)).with_actions(actions).build(Some(snapshot), self.table.log_store(), operation).await;
        let version = match finalized {
            Ok(finalized) => finalized.version(),
            Err(
                DeltaTableError::VersionAlreadyExists(_)
                | DeltaTableError::Transaction {
                    source:
                        TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_) | TransactionError::VersionAlreadyExists(_),
                },
            ) => {
                self.refresh().await?;
                return Ok(None);
            }
            Err(e) => return Err(self.error(e)),
        };
        self.refresh().await?;
        Ok(Some(version))
    }

    fn error(&self, source: DeltaTableError) -> ColdError {
        ColdError::Table { stream: self.stream.clone(), table: self.table.table_url().to_string(), source }
    }
}

/// The add action of `segment`, with its tags.
fn add_action(segment: &NewSegment, data_change: bool, now: i64) -> Add {
    let mut tags = HashMap::from([
        (SEGMENT_TAG.to_string(), Some(segment.id.clone())),
        (OFFSETS_TAG.to_string(), Some(segment.offset_ranges.clone())),
        (SCHEMA_TAG.to_string(), Some(segment.schema_version.to_string())),
    ]);
    if let Some(key) = &segment.index_key {
        tags.insert(INDEX_TAG.to_string(), Some(key.clone()));
    }
    if let Ok(layout) = serde_json::to_string(&segment.layout) {
        tags.insert(LAYOUT_TAG.to_string(), Some(layout));
    }
    if let Some(tail) = segment.index_tail {
        tags.insert(INDEX_TAIL_TAG.to_string(), Some(tail.to_string()));
    }
    if !segment.covers.is_empty() {
        tags.insert(COVERS_TAG.to_string(), Some(segment.covers.join(",")));
    }
    Add {
        path: segment.path.clone(),
        partition_values: HashMap::new(),
        size: segment.size,
        modification_time: now,
        data_change,
        stats: Some(segment.stats.clone()),
        tags: Some(tags),
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

/// The remove action of a live segment.
fn remove_action(segment: &SegmentFile, data_change: bool, now: i64) -> Action {
    Action::Remove(Remove {
        path: segment.path.clone(),
        data_change,
        deletion_timestamp: Some(now),
        extended_file_metadata: Some(true),
        size: Some(segment.bytes as i64),
        tags: Some(HashMap::from([(SEGMENT_TAG.to_string(), Some(segment.id.clone()))])),
        ..Default::default()
    })
}

/// The segment id of a data file: its name without `.parquet`.
pub fn segment_id(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path).trim_end_matches(".parquet")
}

/// Tries of one segment commit before `LostRace` goes back to the caller.
pub(crate) const COMMIT_ATTEMPTS: u32 = 10;

/// Waits between tries of a commit that lost a race: doubling, with jitter so that
/// racing nodes do not retry in step.
pub(crate) struct Backoff {
    pause: Duration,
    pub attempts: u32,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { pause: Duration::from_millis(50), attempts: 0 }
    }

    pub async fn wait(&mut self, stream: &str, segment: &str) {
        self.attempts += 1;
        tracing::info!(stream, segment, attempt = self.attempts, "another commit won the race; re-reading the table");
        tokio::time::sleep(self.pause.mul_f64(1.0 + rand::random::<f64>())).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
