//! The lifecycle manager (DESIGN.md §5): one background task per node that moves each
//! stream's sealed generations into its cold tables (rows, and error rows) once they
//! have been sealed for the stream's `hot_for`, deletes each hot copy `hot_grace` after
//! its cold commit, and enforces `retention` on both tiers (`retention.rs`).
//!
//! Every step is idempotent (the generation id is the segment id), so a failure is
//! logged, counted by step, and tried again later with backoff; nothing is ever stuck
//! in an error state. A hot copy is deleted only once the table this manager reads
//! holds its segment, and queries read a generation from one tier only (the one whose
//! snapshot holds it), so moving never hides or doubles a row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::datatypes::SchemaRef;
use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::config::{Config, StreamConfig};
use tierlog_core::metrics::{Counter, Gauge, Metrics};
use tierlog_hot::{GenerationHandle, GenerationId, GenerationState, HotCatalog, StreamSchema, TableKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::compaction::Compactor;
use crate::error::{ColdError, Result};
use crate::explain::{Explainer, Failures};
use crate::migrate::{cold_schema, migrate_generation};
use crate::orphans::sweep_orphans;
use crate::retention::{expire_segments, is_expired, sweep};
use crate::store::ColdStore;
use crate::table::ColdTable;

/// The longest wait between two tries of a failing step.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The node's lifecycle manager.
pub struct Lifecycle {
    store: ColdStore,
    failures: Failures,
    catalog: HotCatalog,
    streams: Vec<StreamLifecycle>,
    /// Runs beside the loop (`compaction.rs`); taken by [`Lifecycle::run`].
    compactor: Option<Compactor>,
}

struct StreamLifecycle {
    name: String,
    hot_for: Duration,
    hot_grace: Duration,
    retention: Duration,
    retention_grace: Duration,
    schema: StreamSchema,
    /// Its cold tables, indexed by `TableKind as usize` ([`TableKind::ALL`] order).
    tables: [TableSlot; 2],
    /// Generations this process has seen in the table: not checked again.
    migrated: HashSet<GenerationId>,
    /// Generations whose last try failed: when to try again, and the wait after that.
    retry: HashMap<GenerationId, (SystemTime, Duration)>,
    /// The same for the stream-wide steps (retention, sweep).
    retry_step: HashMap<Step, (SystemTime, Duration)>,
    /// When to look for removed files to delete next; the epoch at start, so that a
    /// start finishes a sweep a crash cut short.
    next_sweep: SystemTime,
    /// When to look for orphans next (the epoch at start: once per start, then hourly).
    next_orphan_sweep: SystemTime,
    counters: StreamCounters,
}

/// How often the orphan sweep lists the table roots and bundle prefixes.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// An unreferenced object younger than this may be an upload whose commit is coming.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(24 * 3600);

/// One of a stream's cold tables, opened on first use.
struct TableSlot {
    /// `<stream>` or `<stream>_errors`.
    name: String,
    schema: SchemaRef,
    table: Option<ColdTable>,
    /// Removed data files whose objects this process has deleted: not swept again.
    swept: HashSet<String>,
}

struct StreamCounters {
    segments: Arc<Counter>,
    rows: Arc<Counter>,
    error_rows: Arc<Counter>,
    parquet_bytes: Arc<Counter>,
    bundle_bytes: Arc<Counter>,
    dropped: Arc<Counter>,
    deleted_migrated: Arc<Counter>,
    deleted_expired: Arc<Counter>,
    expired_segments: Arc<Counter>,
    expired_rows: Arc<Counter>,
    swept_files: Arc<Counter>,
    orphans: Arc<Counter>,
    failures: HashMap<Step, Arc<Counter>>,
    version: Arc<Gauge>,
}

/// Why a hot generation is deleted.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    /// `hot_grace` after its cold commit.
    Migrated,
    /// Its newest row is past retention.
    Expired,
}

/// A lifecycle step, as failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Migrate,
    DeleteHot,
    Retention,
    Sweep,
    Orphans,
}

impl Step {
    const ALL: [Step; 5] = [Step::Migrate, Step::DeleteHot, Step::Retention, Step::Sweep, Step::Orphans];

    fn as_str(self) -> &'static str {
        match self {
            Step::Migrate => "migrate",
            Step::DeleteHot => "delete_hot",
            Step::Retention => "retention",
            Step::Sweep => "sweep",
            Step::Orphans => "orphans",
        }
    }
}

impl StreamCounters {
    fn new(metrics: &Metrics, stream: &str) -> StreamCounters {
        let l = [("stream", stream)];
        let deleted = |reason| {
            metrics.counter(
                "tierlog_lifecycle_deleted_hot_generations_total",
                "Hot generations deleted: hot_grace after their cold commit (migrated), or past retention (expired).",
                &[("stream", stream), ("reason", reason)],
            )
        };
        StreamCounters {
            segments: metrics.counter("tierlog_lifecycle_migrated_segments_total", "Hot generations added to the cold table.", &l),
            rows: metrics.counter("tierlog_lifecycle_migrated_rows_total", "Rows added to the cold table.", &l),
            error_rows: metrics.counter("tierlog_lifecycle_migrated_error_rows_total", "Error rows added to the cold error table.", &l),
            parquet_bytes: metrics.counter("tierlog_lifecycle_migrated_parquet_bytes_total", "Parquet bytes uploaded by migration.", &l),
            bundle_bytes: metrics.counter("tierlog_lifecycle_migrated_bundle_bytes_total", "Index bundle bytes uploaded by migration.", &l),
            dropped: metrics.counter(
                "tierlog_lifecycle_dropped_duplicate_rows_total",
                "Rows (and error rows) left out of a migrated segment because live segments already held their offsets.",
                &l,
            ),
            deleted_migrated: deleted("migrated"),
            deleted_expired: deleted("expired"),
            expired_segments: metrics.counter(
                "tierlog_lifecycle_expired_segments_total",
                "Cold segments (of the row and the error table) removed by retention.",
                &l,
            ),
            expired_rows: metrics.counter(
                "tierlog_lifecycle_expired_rows_total",
                "Cold rows (and error rows) removed by retention.",
                &l,
            ),
            swept_files: metrics.counter(
                "tierlog_lifecycle_swept_segments_total",
                "Removed cold segments whose Parquet file and bundle were deleted after retention_grace.",
                &l,
            ),
            orphans: metrics.counter(
                "tierlog_lifecycle_orphans_deleted_total",
                "Objects under a table root or bundle prefix that no segment referenced, deleted.",
                &l,
            ),
            failures: Step::ALL
                .into_iter()
                .map(|step| {
                    let c = metrics.counter(
                        "tierlog_lifecycle_failures_total",
                        "Lifecycle steps that failed (tried again later).",
                        &[("stream", stream), ("step", step.as_str())],
                    );
                    (step, c)
                })
                .collect(),
            version: metrics.gauge("tierlog_cold_table_version", "Version of the stream's cold Delta table.", &l),
        }
    }
}

impl Lifecycle {
    pub fn new(config: &Config, store: ColdStore, catalog: HotCatalog, metrics: &Metrics) -> Lifecycle {
        let streams = config.streams.iter().map(|s| StreamLifecycle::new(s, metrics)).collect();
        let compactor = Some(Compactor::new(config, store.clone(), metrics));
        Lifecycle { store, failures: Failures::default(), catalog, streams, compactor }
    }

    /// What `lifecycle explain` reads: the same catalog and store, and this manager's
    /// failures as they happen.
    pub fn explainer(&self, config: &Config) -> Explainer {
        Explainer { store: self.store.clone(), catalog: self.catalog.clone(), streams: config.streams.clone(), failures: self.failures.clone() }
    }

    /// The cold tier's checkpoint over every stream: each partition's txn version, where
    /// a fresh node starts consuming. Opens (or creates) each stream's table.
    pub async fn checkpoint(&mut self) -> Result<Checkpoint> {
        let mut out = Checkpoint::new();
        for stream in &mut self.streams {
            out.merge(&stream.table(&self.store, TableKind::Rows).await?.checkpoint().await?);
        }
        Ok(out)
    }

    /// How often to look: often enough for the shortest `hot_for`, at most every 30 s.
    pub fn interval(&self) -> Duration {
        let shortest = self.streams.iter().map(|s| s.hot_for).min().unwrap_or(Duration::from_secs(60));
        (shortest / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
    }

    /// Runs until `stop` says so, with the compactor beside it.
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        let compactor = self.compactor.take().map(|c| c.run(stop.clone()));
        let mut stop = stop;
        let interval = self.interval();
        let lifecycle = async move {
            loop {
                self.tick().await;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        match compactor {
            Some(compactor) => {
                tokio::join!(lifecycle, compactor);
            }
            None => lifecycle.await,
        }
    }

    /// One pass over every stream: deletes hot generations past retention, migrates
    /// what is due (and not backing off), deletes the hot copies whose grace has
    /// passed, removes cold segments past retention and sweeps their files.
    pub async fn tick(&mut self) {
        let now = SystemTime::now();
        for stream in &mut self.streams {
            // First, so that nothing past retention is migrated.
            stream.expire_hot(&self.catalog, now);
            let generations = self.catalog.snapshot(&stream.name);
            let due: Vec<&Arc<GenerationHandle>> = generations.iter().filter(|g| stream.is_due(g, now)).collect();
            for generation in due {
                stream.migrate(&self.store, &self.failures, generation, now).await;
            }
            stream.delete_hot_copies(&self.store, &self.catalog, &generations, now).await;
            stream.expire_cold(&self.store, now).await;
        }
    }
}

impl StreamLifecycle {
    fn new(config: &StreamConfig, metrics: &Metrics) -> StreamLifecycle {
        let schema = StreamSchema::new(config);
        StreamLifecycle {
            name: config.name.clone(),
            hot_for: config.policy.hot_for.0,
            hot_grace: config.policy.hot_grace.0,
            retention: config.policy.retention.0,
            retention_grace: config.policy.retention_grace.0,
            tables: TableKind::ALL.map(|kind| TableSlot {
                name: kind.table_name(&config.name),
                schema: cold_schema(&schema, kind),
                table: None,
                swept: HashSet::new(),
            }),
            migrated: HashSet::new(),
            retry: HashMap::new(),
            retry_step: HashMap::new(),
            next_sweep: UNIX_EPOCH,
            next_orphan_sweep: UNIX_EPOCH,
            counters: StreamCounters::new(metrics, &config.name),
            schema,
        }
    }

    fn is_due(&self, generation: &GenerationHandle, now: SystemTime) -> bool {
        let meta = &generation.meta;
        let Some(sealed_ms) = meta.sealed_ms.filter(|_| meta.state == GenerationState::Sealed) else {
            return false;
        };
        let sealed = UNIX_EPOCH + Duration::from_millis(sealed_ms.max(0) as u64);
        sealed + self.hot_for <= now && !self.migrated.contains(&meta.id) && self.retry.get(&meta.id).is_none_or(|(at, _)| *at <= now)
    }

    async fn migrate(&mut self, store: &ColdStore, failures: &Failures, generation: &GenerationHandle, now: SystemTime) {
        let id = generation.meta.id.clone();
        let outcome = self.try_migrate(store, generation).await;
        failures.set(&self.name, id.as_str(), outcome.as_ref().err().map(ToString::to_string));
        match outcome {
            Ok(()) => {
                self.retry.remove(&id);
                self.migrated.insert(id);
            }
            Err(e) => {
                self.counters.failures[&Step::Migrate].inc();
                let (at, wait) = backoff(self.retry.get(&id), now);
                warn!(stream = %self.name, segment = %id, error = %e, retry_in_s = wait.as_secs_f64(), "migration failed; will try again");
                self.retry.insert(id, (at, wait));
                self.reopen_tables();
            }
        }
    }

    /// Deletes each migrated generation's hot copy once `hot_grace` has passed since the
    /// commit that added its segment. A failure is counted and tried again next tick.
    async fn delete_hot_copies(&mut self, store: &ColdStore, catalog: &HotCatalog, generations: &[Arc<GenerationHandle>], now: SystemTime) {
        if !generations.iter().any(|g| self.migrated.contains(&g.meta.id)) {
            return;
        }
        // Error rows are committed before the rows, so the row table decides.
        let added: HashMap<String, i64> = match self.table(store, TableKind::Rows).await.and_then(|t| t.segment_files()) {
            // A merged segment holds its generations since its own commit, at the latest.
            Ok(files) => files.iter().flat_map(|f| f.generations().map(|g| (g.to_string(), f.added_ms))).collect(),
            Err(e) => {
                self.counters.failures[&Step::DeleteHot].inc();
                warn!(stream = %self.name, error = %e, "cannot list the cold segments; hot copies stay until the next try");
                self.reopen_tables();
                return;
            }
        };
        let migrated: Vec<&Arc<GenerationHandle>> = generations.iter().filter(|g| self.migrated.contains(&g.meta.id)).collect();
        for generation in migrated {
            let id = &generation.meta.id;
            // Not in the table this manager holds (removed meanwhile?): keep the hot copy.
            let Some(&added_ms) = added.get(id.as_str()) else { continue };
            if UNIX_EPOCH + Duration::from_millis(added_ms.max(0) as u64) + self.hot_grace > now {
                continue;
            }
            self.delete_hot(catalog, generation, Deletion::Migrated);
        }
    }

    /// Deletes the sealed generations whose newest row is past retention, migrated or
    /// not: the same rule cold segments follow, so a generation retention removed from
    /// cold is never migrated again.
    fn expire_hot(&mut self, catalog: &HotCatalog, now: SystemTime) {
        for generation in catalog.snapshot(&self.name) {
            if generation.meta.state == GenerationState::Sealed
                && is_expired(generation.time_range_us().map(|(_, hi)| hi), self.retention, now)
            {
                self.delete_hot(catalog, &generation, Deletion::Expired);
            }
        }
    }

    /// Deletes a sealed generation from the hot tier; logged and counted by why.
    fn delete_hot(&mut self, catalog: &HotCatalog, generation: &GenerationHandle, why: Deletion) {
        let id = &generation.meta.id;
        let what = match why {
            Deletion::Migrated => "the hot copy of a migrated generation",
            Deletion::Expired => "a hot generation past retention",
        };
        match catalog.delete_sealed(&self.name, id) {
            Ok(()) => {
                self.migrated.remove(id);
                match why {
                    Deletion::Migrated => self.counters.deleted_migrated.inc(),
                    Deletion::Expired => self.counters.deleted_expired.inc(),
                }
                info!(stream = %self.name, segment = %id, rows = generation.num_docs(), "deleted {what}");
            }
            Err(e) => {
                self.counters.failures[&Step::DeleteHot].inc();
                // It has left the catalog already: its rows answer from cold (or were
                // expired), and the next start removes the folder.
                warn!(stream = %self.name, segment = %id, error = %e, "deleting {what} failed; the next start tries again");
            }
        }
    }

    /// Removes the cold segments past retention in one commit per table, and
    /// `retention_grace` after a removal deletes the files. Each step backs off on failure.
    async fn expire_cold(&mut self, store: &ColdStore, now: SystemTime) {
        if self.is_waiting(Step::Retention, now) {
            return;
        }
        for kind in TableKind::ALL {
            let TableSlot { name, schema, table, .. } = &mut self.tables[kind as usize];
            let expired = match open_table(table, store, name, schema).await {
                Ok(table) => expire_segments(table, name, self.retention, now).await,
                Err(e) => Err(e),
            };
            match expired {
                Ok(None) => {}
                Ok(Some(done)) => {
                    self.counters.expired_segments.add(done.segments.len() as u64);
                    self.counters.expired_rows.add(done.rows);
                    if kind == TableKind::Rows {
                        self.counters.version.set(done.version as f64);
                    }
                    info!(table = %name, segments = ?done.segments, rows = done.rows, version = done.version,
                        retention = ?self.retention, "removed cold segments past retention");
                    self.next_sweep = self.next_sweep.min(now + self.retention_grace);
                }
                Err(e) => return self.step_failed(Step::Retention, &e, now),
            }
        }
        self.retry_step.remove(&Step::Retention);
        if self.next_sweep > now || self.is_waiting(Step::Sweep, now) {
            return;
        }
        for kind in TableKind::ALL {
            // Only row segments have bundles.
            let bundles_of = (kind == TableKind::Rows).then_some(self.name.as_str());
            let TableSlot { name, schema, table, swept } = &mut self.tables[kind as usize];
            let outcome = match open_table(table, store, name, schema).await {
                Ok(table) => sweep(store, table, bundles_of, self.retention_grace, now, swept).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(files) if files.is_empty() => {}
                Ok(files) => {
                    self.counters.swept_files.add(files.len() as u64);
                    info!(table = %name, files = ?files, "deleted the files (and bundles) of segments retention removed");
                    swept.extend(files);
                }
                Err(e) => return self.step_failed(Step::Sweep, &e, now),
            }
        }
        self.retry_step.remove(&Step::Sweep);
        // Removals by other nodes are found within a minute; ours set it sooner.
        self.next_sweep = now + self.retention_grace.min(Duration::from_secs(60));
        self.sweep_orphans(store, now).await;
    }

    /// Deletes what no segment references (`orphans.rs`), hourly.
    async fn sweep_orphans(&mut self, store: &ColdStore, now: SystemTime) {
        if self.next_orphan_sweep > now || self.is_waiting(Step::Orphans, now) {
            return;
        }
        let min_age = ORPHAN_MIN_AGE.max(self.retention_grace);
        for kind in TableKind::ALL {
            let bundles_of = (kind == TableKind::Rows).then_some(self.name.as_str());
            let TableSlot { name, schema, table, .. } = &mut self.tables[kind as usize];
            let outcome = match open_table(table, store, name, schema).await {
                Ok(table) => sweep_orphans(store, table, bundles_of, self.retention_grace, min_age, now).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(orphans) => {
                    if !orphans.deleted.is_empty() {
                        self.counters.orphans.add(orphans.deleted.len() as u64);
                        info!(table = %name, objects = ?orphans.deleted, "deleted objects no segment references");
                    }
                }
                Err(e) => return self.step_failed(Step::Orphans, &e, now),
            }
        }
        self.retry_step.remove(&Step::Orphans);
        self.next_orphan_sweep = now + ORPHAN_SWEEP_EVERY;
    }

    fn is_waiting(&self, step: Step, now: SystemTime) -> bool {
        self.retry_step.get(&step).is_some_and(|(at, _)| *at > now)
    }

    fn step_failed(&mut self, step: Step, e: &ColdError, now: SystemTime) {
        self.counters.failures[&step].inc();
        let (at, wait) = backoff(self.retry_step.get(&step), now);
        warn!(stream = %self.name, step = step.as_str(), error = %e, retry_in_s = wait.as_secs_f64(), "lifecycle step failed; will try again");
        self.retry_step.insert(step, (at, wait));
        self.reopen_tables();
    }

    /// After a failure, the next try opens the tables afresh.
    fn reopen_tables(&mut self) {
        for slot in &mut self.tables {
            slot.table = None;
        }
    }

    /// One of the stream's tables, opened on first use.
    async fn table(&mut self, store: &ColdStore, kind: TableKind) -> Result<&mut ColdTable> {
        let TableSlot { name, schema, table, .. } = &mut self.tables[kind as usize];
        open_table(table, store, name, schema).await
    }

    /// Migrates the generation's error rows, then its rows (see [`migrate_generation`]).
    async fn try_migrate(&mut self, store: &ColdStore, generation: &GenerationHandle) -> Result<()> {
        for kind in [TableKind::Errors, TableKind::Rows] {
            let TableSlot { name, schema, table, .. } = &mut self.tables[kind as usize];
            let table = open_table(table, store, name, schema).await?;
            let done = migrate_generation(store, table, &self.schema, &self.name, generation, kind).await?;
            let Some(version) = done.version else { continue };
            let c = &self.counters;
            c.dropped.add(done.dropped_duplicates as u64);
            c.parquet_bytes.add(done.parquet_bytes as u64);
            if kind == TableKind::Errors {
                c.error_rows.add(done.rows as u64);
            } else {
                c.segments.inc();
                c.rows.add(done.rows as u64);
                c.bundle_bytes.add(done.bundle_bytes as u64);
                c.version.set(version as f64);
            }
            info!(
                table = %name, segment = %done.segment, rows = done.rows, parquet_bytes = done.parquet_bytes,
                bundle_bytes = done.bundle_bytes, dropped_duplicates = done.dropped_duplicates, version, "migrated to cold"
            );
        }
        Ok(())
    }
}

/// When to try a failed step again, and the wait after that: doubling up to [`MAX_BACKOFF`].
pub(crate) fn backoff(last: Option<&(SystemTime, Duration)>, now: SystemTime) -> (SystemTime, Duration) {
    let wait = last.map_or(Duration::from_secs(1), |(_, wait)| (*wait * 2).min(MAX_BACKOFF));
    (now + wait, wait)
}

async fn open_table<'a>(slot: &'a mut Option<ColdTable>, store: &ColdStore, name: &str, schema: &SchemaRef) -> Result<&'a mut ColdTable> {
    Ok(match slot {
        Some(table) => table,
        empty => empty.insert(ColdTable::open(store, name, schema).await?),
    })
}
