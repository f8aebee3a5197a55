//! Migration of one sealed hot generation into its stream's cold table: its committed
//! rows as one Parquet file (DESIGN.md §5 keys), uploaded, then added by one Delta commit
//! with the generation's checkpoint as `txn` versions. The generation id is the segment
//! id, so running it again after a crash anywhere adds nothing twice.
//!
//! Not yet here: the index bundle, dropping rows an earlier segment already holds, the
//! failpoints, and deleting the hot copy (the lifecycle manager's part).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::json;
use tierlog_hot::{ColumnKind, GenerationHandle, KIND_ROW, StreamSchema, TableColumn, docs_of_kind, read_segment};

use crate::error::{ColdError, Result};
use crate::segment::write_parquet;
use crate::store::ColdStore;
use crate::table::{ColdTable, Committed, NewSegment};

/// Version of the cold file layout written here, in the `tierlog.schema` tag.
pub const SCHEMA_VERSION: u32 = 1;

/// Documents read from the hot index at a time.
const READ_CHUNK: usize = 32 * 1024;

/// The columns of a stream's cold table: its row table's stored columns, with plain
/// strings where the hot reader gives views (readers outside tierlog expect `string`).
pub fn cold_schema(schema: &StreamSchema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .row_columns()
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
    pub parquet_bytes: usize,
    /// The table version that added it, or `None` when the table already held it.
    pub version: Option<u64>,
}

/// Migrates `generation` of `stream` (sealed: nothing writes to it) into `table`.
pub async fn migrate_generation(
    store: &ColdStore,
    table: &mut ColdTable,
    stream: &StreamSchema,
    stream_name: &str,
    generation: &GenerationHandle,
) -> Result<Migrated> {
    let id = generation.meta.id.to_string();
    let failed = |reason: String| ColdError::Segment { stream: stream_name.to_string(), segment: id.clone(), reason };
    table.refresh().await?;
    if table.has_segment(&id)? {
        return Ok(Migrated { segment: id, rows: 0, parquet_bytes: 0, version: None });
    }
    let columns = stream.row_columns();
    let schema = cold_schema(stream);
    let batches = read_rows(generation, &columns, &schema).map_err(&failed)?;
    let keywords: Vec<&str> = columns.iter().filter(|c| c.kind == ColumnKind::Keyword).map(|c| c.name.as_str()).collect();
    let file = write_parquet(&schema, &batches, &keywords).map_err(&failed)?;
    let info = generation.info();
    let path = format!("{}/{id}.parquet", date_hour(info.time_range_us.map_or(generation.meta.created_ms * 1000, |(lo, _)| lo)));
    let size = file.bytes.len();
    store.put(&store.key(&format!("tables/{stream_name}/{path}")), file.bytes).await?;
    let segment = NewSegment {
        id: id.clone(),
        path,
        size: size as i64,
        stats: file.stats,
        next_offsets: info.checkpoint,
        offset_ranges: offset_ranges(&batches).to_string(),
        schema_version: SCHEMA_VERSION,
    };
    let version = match table.commit_segment(&segment).await? {
        Committed::Added(v) => Some(v),
        Committed::AlreadyThere => None,
    };
    Ok(Migrated { segment: id, rows: file.num_rows, parquet_bytes: size, version })
}

/// Every committed row of the generation, in the cold schema.
fn read_rows(generation: &GenerationHandle, columns: &[TableColumn], schema: &SchemaRef) -> std::result::Result<Vec<RecordBatch>, String> {
    let searcher = generation.searcher();
    let mut out = Vec::new();
    for segment in searcher.segment_readers() {
        let docs = docs_of_kind(segment, KIND_ROW, None);
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
fn date_hour(us: i64) -> String {
    arrow::temporal_conversions::timestamp_us_to_datetime(us)
        .map_or_else(|| "date=1970-01-01/hour=00".to_string(), |t| t.format("date=%Y-%m-%d/hour=%H").to_string())
}

/// `{"topic": {"partition": [first, last]}}` of the rows' offsets.
fn offset_ranges(batches: &[RecordBatch]) -> serde_json::Value {
    let mut ranges: BTreeMap<String, BTreeMap<i32, (i64, i64)>> = BTreeMap::new();
    for batch in batches {
        let (Some(topics), Some(partitions), Some(offsets)) =
            (batch.column_by_name("_topic"), batch.column_by_name("_partition"), batch.column_by_name("_offset"))
        else {
            continue;
        };
        let (topics, partitions, offsets) = (topics.as_string::<i32>(), partitions.as_primitive::<Int32Type>(), offsets.as_primitive::<Int64Type>());
        for row in 0..batch.num_rows() {
            let slot = ranges.entry(topics.value(row).to_string()).or_default().entry(partitions.value(row)).or_insert((i64::MAX, i64::MIN));
            let offset = offsets.value(row);
            *slot = (slot.0.min(offset), slot.1.max(offset));
        }
    }
    let partitions = |ps: BTreeMap<i32, (i64, i64)>| -> serde_json::Value {
        ps.into_iter().map(|(p, (lo, hi))| (p.to_string(), json!([lo, hi]))).collect::<serde_json::Map<_, _>>().into()
    };
    ranges.into_iter().map(|(topic, ps)| (topic, partitions(ps))).collect::<serde_json::Map<_, _>>().into()
}
