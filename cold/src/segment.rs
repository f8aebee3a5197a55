//! A segment's Parquet file (DESIGN.md §5): its rows sorted by `_timestamp`, zstd,
//! dictionary-encoded keywords, row groups of about 128k rows, column statistics and the
//! page index, bloom filters on keyword columns, `sorting_columns` set; and the Delta
//! statistics of its add action, computed from the same rows.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The column every segment is sorted by.
pub const TIMESTAMP: &str = "_timestamp";

/// Rows per row group: big enough for good compression, small enough to skip by.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A Parquet file ready to upload, and what its add action says of it.
#[derive(Debug)]
pub struct ParquetFile {
    pub bytes: Vec<u8>,
    pub num_rows: usize,
    /// Delta's `stats` JSON: numRecords, minValues, maxValues, nullCount.
    pub stats: String,
    /// Where its bytes are, for estimates before a query reads it (`tierlog.layout`).
    pub layout: FileLayout,
}

/// What a query would read of a Parquet file, known from the writer: the bytes and pages
/// of each column (all row groups together), and the tail after the column data (page
/// indexes, bloom filters, footer), which every reader of the file reads first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLayout {
    pub tail: u64,
    /// Column → (compressed bytes, data pages).
    pub columns: std::collections::BTreeMap<String, (u64, u64)>,
}

impl FileLayout {
    fn of(metadata: &ParquetMetaData, file_len: u64) -> FileLayout {
        let mut columns = std::collections::BTreeMap::new();
        let mut data_end = 0;
        for (g, group) in metadata.row_groups().iter().enumerate() {
            for (c, column) in group.columns().iter().enumerate() {
                let (start, len) = column.byte_range();
                data_end = data_end.max(start + len);
                let pages = metadata.offset_index().and_then(|o| o.get(g)?.get(c)).map_or(1, |o| o.page_locations().len().max(1)) as u64;
                let entry = columns.entry(column.column_path().string()).or_insert((0, 0));
                entry.0 += len;
                entry.1 += pages;
            }
        }
        FileLayout { tail: file_len.saturating_sub(data_end), columns }
    }
}

/// `batches` (of `schema`) as one batch sorted by `_timestamp`: the order of a
/// segment's Parquet rows and of its bundle's documents.
pub fn sort_by_timestamp(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, String> {
    let all = concat_batches(schema, batches).map_err(|e| e.to_string())?;
    let position = schema.index_of(TIMESTAMP).map_err(|_| format!("the rows have no {TIMESTAMP} column"))?;
    let order = sort_to_indices(all.column(position), None, None).map_err(|e| e.to_string())?;
    take_record_batch(&all, &order).map_err(|e| e.to_string())
}

/// `sources` (each of `schema`) merged into one batch in `_timestamp` order: a k-way
/// merge of runs that are each sorted already, as segments are. A source is checked, not
/// trusted (Parquet's sorting metadata is a promise nobody enforces), and sorted first
/// when it is out of order. Rows with equal times keep the order of their sources.
pub fn merge_by_timestamp(schema: &SchemaRef, sources: &[RecordBatch]) -> Result<RecordBatch, String> {
    use std::cmp::Reverse;
    let position = schema.index_of(TIMESTAMP).map_err(|_| format!("the rows have no {TIMESTAMP} column"))?;
    let mut runs = Vec::with_capacity(sources.len());
    for source in sources {
        let times = source.column(position).as_primitive_opt::<TimestampMicrosecondType>().ok_or("_timestamp is not a µs timestamp")?;
        let sorted = times.null_count() == 0 && times.values().windows(2).all(|w| w[0] <= w[1]);
        runs.push(if sorted { source.clone() } else { sort_by_timestamp(schema, std::slice::from_ref(source))? });
    }
    let times: Vec<&[i64]> = runs.iter().map(|r| &r.column(position).as_primitive::<TimestampMicrosecondType>().values()[..]).collect();
    let mut heads: std::collections::BinaryHeap<Reverse<(i64, usize, usize)>> =
        times.iter().enumerate().filter(|(_, t)| !t.is_empty()).map(|(run, t)| Reverse((t[0], run, 0))).collect();
    let mut order = Vec::with_capacity(times.iter().map(|t| t.len()).sum());
    while let Some(Reverse((_, run, row))) = heads.pop() {
        order.push((run, row));
        if let Some(&next) = times[run].get(row + 1) {
            heads.push(Reverse((next, run, row + 1)));
        }
    }
    if runs.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let runs: Vec<&RecordBatch> = runs.iter().collect();
    arrow::compute::interleave_record_batch(&runs, &order).map_err(|e| e.to_string())
}

/// Writes `sorted` (from [`sort_by_timestamp`]) as one Parquet file; `keywords` are the
/// columns that get bloom filters.
pub fn write_parquet(sorted: &RecordBatch, keywords: &[&str]) -> Result<ParquetFile, String> {
    let schema = sorted.schema();
    let position = schema.index_of(TIMESTAMP).map_err(|_| format!("the rows have no {TIMESTAMP} column"))?;

    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| e.to_string())?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(vec![SortingColumn { column_idx: position as i32, descending: false, nulls_first: false }]));
    for keyword in keywords {
        let path = ColumnPath::from(*keyword);
        properties = properties.set_column_bloom_filter_enabled(path.clone(), true).set_column_bloom_filter_max_ndv(path, 10_000);
    }
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(&schema), Some(properties.build())).map_err(|e| e.to_string())?;
    writer.write(sorted).map_err(|e| e.to_string())?;
    let metadata = writer.close().map_err(|e| e.to_string())?;
    let layout = FileLayout::of(&metadata, bytes.len() as u64);
    Ok(ParquetFile { bytes, num_rows: sorted.num_rows(), stats: delta_stats(sorted).to_string(), layout })
}

/// Delta statistics of `batch`: counts for every column, min/max for numbers and times.
fn delta_stats(batch: &RecordBatch) -> Value {
    let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        nulls.insert(field.name().clone(), json!(column.null_count()));
        let range: Option<(Value, Value)> = match field.data_type() {
            DataType::Int32 => range(column.as_primitive::<Int32Type>()).map(|(a, b)| (json!(a), json!(b))),
            DataType::Int64 => range(column.as_primitive::<Int64Type>()).map(|(a, b)| (json!(a), json!(b))),
            DataType::Float64 => {
                let values = column.as_primitive::<Float64Type>();
                match (arrow::compute::min(values), arrow::compute::max(values)) {
                    (Some(a), Some(b)) if a.is_finite() && b.is_finite() => Some((json!(a), json!(b))),
                    _ => None,
                }
            }
            // Milliseconds, rounded down: the kernel allows for the lost microseconds when
            // it compares with a max (BUILD.md §4b).
            DataType::Timestamp(TimeUnit::Microsecond, _) => range(column.as_primitive::<TimestampMicrosecondType>())
                .map(|(a, b)| (json!(iso_ms(a)), json!(iso_ms(b)))),
            _ => None,
        };
        if let Some((lo, hi)) = range {
            min.insert(field.name().clone(), lo);
            max.insert(field.name().clone(), hi);
        }
    }
    json!({ "numRecords": batch.num_rows(), "minValues": min, "maxValues": max, "nullCount": nulls })
}

fn range<T: arrow::datatypes::ArrowPrimitiveType>(values: &arrow::array::PrimitiveArray<T>) -> Option<(T::Native, T::Native)>
where
    T::Native: arrow::datatypes::ArrowNativeTypeOp,
{
    Some((arrow::compute::min(values)?, arrow::compute::max(values)?))
}

/// `2018-03-24T17:30:00.123Z`, the time rounded down to the millisecond.
fn iso_ms(us: i64) -> String {
    let ms = us.div_euclid(1000) * 1000;
    arrow::temporal_conversions::timestamp_us_to_datetime(ms)
        .map_or_else(String::new, |t| format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S%.3f")))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    #[test]
    fn rows_are_sorted_compressed_and_described() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(TIMESTAMP, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("_offset", DataType::Int64, false),
            Field::new("level", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![3_000_999, 1_000_500, 2_000_000]).with_timezone("UTC")),
                Arc::new(Int64Array::from(vec![0, 1, 2])),
                Arc::new(StringArray::from(vec![Some("WARN"), None, Some("INFO")])),
            ],
        )
        .unwrap();
        let file = write_parquet(&sort_by_timestamp(&schema, &[batch]).unwrap(), &["level"]).unwrap();
        assert_eq!(file.num_rows, 3);
        let stats: Value = serde_json::from_str(&file.stats).unwrap();
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"][TIMESTAMP], "1970-01-01T00:00:01.000Z");
        assert_eq!(stats["maxValues"][TIMESTAMP], "1970-01-01T00:00:03.000Z");
        assert_eq!(stats["nullCount"]["level"], 1);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.bytes.clone())).unwrap();
        let metadata = reader.metadata().clone();
        let column = metadata.row_group(0).column(0);
        let data_end = metadata.row_group(0).columns().iter().map(|c| c.byte_range().0 + c.byte_range().1).max().unwrap();
        assert_eq!(file.layout.tail, file.bytes.len() as u64 - data_end, "the tail starts where column data ends");
        assert_eq!(file.layout.columns["_offset"].0 as i64, metadata.row_group(0).column(1).compressed_size());
        assert_eq!(file.layout.columns.len(), 3);
        assert!(matches!(column.compression(), Compression::ZSTD(_)));
        assert!(metadata.row_group(0).column(2).bloom_filter_offset().is_some(), "keywords have bloom filters");
        assert!(metadata.row_group(0).sorting_columns().is_some());
        let rows: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        let offsets: Vec<i64> = rows[0].column(1).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(offsets, [1, 2, 0], "sorted by time");
    }

    #[test]
    fn a_merge_keeps_time_order_and_sorts_an_unsorted_source() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(TIMESTAMP, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("_offset", DataType::Int64, false),
        ]));
        let batch = |times: Vec<i64>, offsets: Vec<i64>| {
            let columns: Vec<arrow::array::ArrayRef> =
                vec![Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")), Arc::new(Int64Array::from(offsets))];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let sources = [
            batch(vec![1, 4, 4, 9], vec![10, 11, 12, 13]),
            batch(vec![], vec![]),
            batch(vec![4, 2, 7], vec![20, 21, 22]), // out of order
            batch(vec![0, 10], vec![30, 31]),
        ];
        let merged = merge_by_timestamp(&schema, &sources).unwrap();
        let times = merged.column(0).as_primitive::<TimestampMicrosecondType>().values().to_vec();
        let offsets = merged.column(1).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(times, [0, 1, 2, 4, 4, 4, 7, 9, 10]);
        // Equal times: the first source's rows first, in their own order.
        assert_eq!(offsets, [30, 10, 21, 11, 12, 20, 22, 13, 31]);
        assert_eq!(merge_by_timestamp(&schema, &[]).unwrap().num_rows(), 0);
    }
}
