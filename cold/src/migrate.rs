//! Migration of one sealed hot generation into its stream's cold tables: its committed
//! rows as one Parquet file and one index bundle (DESIGN.md §5 keys), uploaded, then
//! added by one Delta commit with the generation's checkpoint as `txn` versions; its
//! error rows likewise into the `<stream>_errors` table (a Parquet file, no bundle). The
//! generation id is the segment id, so running it again after a crash anywhere adds
//! nothing twice; the failpoints `after_parquet_upload`, `after_bundle_upload` and
//! `after_commit` let tests crash between the steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use tierlog_core::failpoint;
use tierlog_hot::{ColumnKind, GenerationHandle, StreamSchema, TableColumn, TableKind, docs_of_kind, read_segment};

use crate::bundle::{PackedBundle, build_bundle, bundle_key};
use crate::error::{ColdError, Result};
use crate::offsets::OffsetRuns;
use crate::segment::{FileLayout, ParquetFile, sort_by_timestamp, write_parquet};
use crate::store::ColdStore;
use crate::table::{Backoff, COMMIT_ATTEMPTS, ColdTable, Committed, NewSegment};

/// Version of the cold file layout written here, in the `tierlog.schema` tag.
pub const SCHEMA_VERSION: u32 = 1;

/// Documents read from the hot index at a time.
const READ_CHUNK: usize = 32 * 1024;

/// The columns of one of a stream's cold tables: the stored columns of that table, with
/// plain strings where the hot reader gives views (readers outside tierlog expect `string`).
pub fn cold_schema(schema: &StreamSchema, kind: TableKind) -> SchemaRef {
    Arc::new(Schema::new(
        kind.columns(schema)
            .iter()
            .map(|c| Field::new(&c.name, cold_type(c.kind), true))
            .collect::<Vec<_>>(),
    ))
}

fn cold_type(kind: ColumnKind) -> DataType {
    match kind.data_type() {
        DataType::Utf8View | DataType::Dictionary(..) => DataType::Utf8,
        other => other,
    }
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub segment: String,
    pub rows: usize,
    /// Rows left out because live segments already held their offsets.
    pub dropped_duplicates: usize,
    pub parquet_bytes: usize,
    pub bundle_bytes: usize,
    /// The table version that added it, or `None` when the table already held it.
    pub version: Option<u64>,
}

/// Migrates the `kind` rows of `generation` of `stream` (sealed: nothing writes to it)
/// into `table`, that kind's table. Error rows go in first: a generation's hot copy goes
/// once its row segment is committed, and then its error rows must be in cold already.
/// A generation without error rows adds nothing to the error table.
///
/// Rows whose offsets live segments already hold are dropped (two nodes can index the
/// same offsets after a crash between an index commit and a group commit). That is
/// decided on the snapshot the commit builds on, so a commit that loses the race
/// re-reads the table and decides again.
pub async fn migrate_generation(
    store: &ColdStore,
    table: &mut ColdTable,
    stream: &StreamSchema,
    stream_name: &str,
    generation: &GenerationHandle,
    kind: TableKind,
) -> Result<Migrated> {
    let id = generation.meta.id.to_string();
    let table_name = kind.table_name(stream_name);
    let failed = |reason: String| ColdError::Segment { stream: table_name.clone(), segment: id.clone(), reason };
    let info = generation.info();
    let path = format!("{}/{id}.parquet", date_hour(info.time_range_us.map_or(generation.meta.created_ms * 1000, |(lo, _)| lo)));
    // Only row tables answer `match()`, from bundles.
    let index_key = (kind == TableKind::Rows).then(|| bundle_key(store, stream_name, id.as_str()));
    let nothing = Migrated { segment: id.clone(), rows: 0, dropped_duplicates: 0, parquet_bytes: 0, bundle_bytes: 0, version: None };
    // Reading and sorting are CPU work: off the runtime's threads, and once, whatever
    // the commit races cost.
    let sorted = {
        let (stream, generation) = (stream.clone(), generation.clone());
        tokio::task::spawn_blocking(move || {
            let schema = cold_schema(&stream, kind);
            sort_by_timestamp(&schema, &read_rows(&generation, kind, &kind.columns(&stream), &schema)?)
        })
        .await
        .map_err(|e| failed(format!("the segment reader failed: {e}")))?
        .map_err(&failed)?
    };
    if kind == TableKind::Errors && sorted.num_rows() == 0 {
        return Ok(nothing);
    }
    // What was uploaded, and for which rows: a lost race that leaves the kept rows as
    // they were only needs the commit tried again.
    let mut uploaded: Option<(BooleanArray, Uploaded, Instant)> = None;
    let mut backoff = Backoff::new();
    loop {
        table.refresh().await?;
        if table.has_segment(&id)? {
            return Ok(nothing);
        }
        let keep = table.held_offsets()?.unheld(&sorted);
        // Files that waited long for their commit go up again: the orphan sweep may
        // take an unreferenced object for a crash's leftover once it is a day old.
        if uploaded.as_ref().is_none_or(|(kept, _, at)| *kept != keep || at.elapsed() > REUPLOAD_AFTER) {
            let written = {
                let (stream, sorted, keep) = (stream.clone(), sorted.clone(), keep.clone());
                tokio::task::spawn_blocking(move || {
                    let rows = filter_record_batch(&sorted, &keep).map_err(|e| e.to_string())?;
                    write_segment(&stream, kind, &rows)
                })
                    .await
                    .map_err(|e| failed(format!("the segment writer failed: {e}")))?
                    .map_err(&failed)?
            };
            let done = Uploaded {
                rows: written.file.num_rows,
                dropped: sorted.num_rows() - written.file.num_rows,
                parquet_bytes: written.file.bytes.len(),
                bundle_bytes: written.bundle.as_ref().map_or(0, |b| b.bytes.len()),
                index_tail: written.bundle.as_ref().map(|b| b.tail_len),
                layout: written.file.layout.clone(),
                stats: written.file.stats,
                offsets: written.offsets.to_tag(),
            };
            store.put(&store.key(&format!("tables/{table_name}/{path}")), written.file.bytes).await?;
            failpoint::hit("after_parquet_upload");
            if let (Some(key), Some(bundle)) = (&index_key, written.bundle) {
                store.put(key, bundle.bytes).await?;
                failpoint::hit("after_bundle_upload");
            }
            uploaded = Some((keep, done, Instant::now()));
        }
        let (_, done, _) = uploaded.as_ref().expect("uploaded above");
        let segment = NewSegment {
            id: id.clone(),
            path: path.clone(),
            size: done.parquet_bytes as i64,
            index_key: index_key.as_ref().map(ToString::to_string),
            index_tail: done.index_tail,
            layout: done.layout.clone(),
            stats: done.stats.clone(),
            next_offsets: info.checkpoint.clone(),
            offset_ranges: done.offsets.clone(),
            schema_version: SCHEMA_VERSION,
            covers: Vec::new(),
        };
        let version = match table.try_commit_segment(&segment).await? {
            Committed::Added(v) => Some(v),
            Committed::AlreadyThere => None,
            Committed::LostRace if backoff.attempts < COMMIT_ATTEMPTS => {
                backoff.wait(&table_name, &id).await;
                continue;
            }
            Committed::LostRace => return Err(failed("other commits kept winning the race; the lifecycle manager tries again later".into())),
        };
        failpoint::hit("after_commit");
        let Uploaded { rows, dropped, parquet_bytes, bundle_bytes, .. } = *done;
        return Ok(Migrated { segment: id, rows, dropped_duplicates: dropped, parquet_bytes, bundle_bytes, version });
    }
}

/// A segment's files, written from its rows.
pub(crate) struct Written {
    pub file: ParquetFile,
    /// Row tables only.
    pub bundle: Option<PackedBundle>,
    pub offsets: OffsetRuns,
}

/// Uploads older than this are made again before a commit (see `orphans.rs`).
const REUPLOAD_AFTER: Duration = Duration::from_secs(3600);

/// What the add action needs of the uploaded files.
struct Uploaded {
    rows: usize,
    dropped: usize,
    parquet_bytes: usize,
    bundle_bytes: usize,
    index_tail: Option<u64>,
    layout: FileLayout,
    stats: String,
    offsets: String,
}

/// The Parquet file (and, for rows, the index bundle) of a segment of `rows`, sorted by
/// `_timestamp`.
pub(crate) fn write_segment(stream: &StreamSchema, kind: TableKind, rows: &RecordBatch) -> std::result::Result<Written, String> {
    let keywords: Vec<String> = kind.columns(stream).into_iter().filter(|c| c.kind == ColumnKind::Keyword).map(|c| c.name).collect();
    let keywords: Vec<&str> = keywords.iter().map(String::as_str).collect();
    let bundle = match kind {
        TableKind::Rows => Some(build_bundle(stream, rows)?),
        TableKind::Errors => None,
    };
    Ok(Written { file: write_parquet(rows, &keywords)?, bundle, offsets: OffsetRuns::of_rows(rows) })
}

/// Every committed `kind` row of the generation, in the cold schema.
fn read_rows(
    generation: &GenerationHandle,
    kind: TableKind,
    columns: &[TableColumn],
    schema: &SchemaRef,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let searcher = generation.searcher();
    let mut out = Vec::new();
    for segment in searcher.segment_readers() {
        let docs = docs_of_kind(segment, kind.doc_kind(), None);
        for chunk in docs.chunks(READ_CHUNK) {
            let batch = read_segment(segment, chunk, columns).map_err(|e| e.to_string())?;
            let arrays: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(array, field)| cast(array, field.data_type()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| e.to_string())?;
            out.push(RecordBatch::try_new(Arc::clone(schema), arrays).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

/// `date=YYYY-MM-DD/hour=HH` of a time in µs (the generation's oldest row, or its
/// creation when it has none).
pub(crate) fn date_hour(us: i64) -> String {
    arrow::temporal_conversions::timestamp_us_to_datetime(us)
        .map_or_else(|| "date=1970-01-01/hour=00".to_string(), |t| t.format("date=%Y-%m-%d/hour=%H").to_string())
}
