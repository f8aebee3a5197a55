//! A segment's index bundle (DESIGN.md §5): a tantivy index over the same rows as its
//! Parquet file, in the same order, so doc id == Parquet row number. One segment, no doc
//! store and no fast fields (the Parquet file holds the values), only the fields the hot
//! index searches, with the hot index's own field options so a `match()` parses and
//! answers the same on both tiers.
//!
//! Packed as one object, read with byte ranges (`bundle_reader.rs`):
//!
//! ```text
//! [inner files, back to back][hotcache][footer JSON][footer length: u64 LE][magic]
//! ```
//!
//! The hotcache holds copies of every byte range tantivy reads to open the index and
//! each field's term dictionary (file footers, dictionary indexes, `meta.json`), so one
//! GET of the tail opens a bundle; a query then fetches only its terms' dictionary
//! blocks and postings. The tail's length is in the add action's `tierlog.index_tail`
//! tag, so that GET asks for exactly the tail.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use tantivy::directory::{Directory, OwnedBytes, RamDirectory};
use tantivy::schema::{DateOptions, Field, FieldEntry, FieldType, JsonObjectOptions, NumericOptions, Schema, TextOptions};
use tantivy::{DateTime, Index, TantivyDocument};
use tierlog_hot::StreamSchema;

use crate::bundle_reader::Bundle;

/// Where segment `id`'s bundle lives: outside the table root, which vacuum sweeps, so
/// retention deletes it itself.
pub fn bundle_key(store: &crate::store::ColdStore, stream: &str, id: &str) -> object_store::path::Path {
    store.key(&format!("index/{stream}/{id}.index"))
}

/// The bundle's last bytes: format 2, SSTable dictionaries and a hotcache.
pub(crate) const MAGIC: &[u8; 8] = b"TLBNDL02";
/// Format 1: FST dictionaries, no hotcache (before tantivy's `quickwit` feature).
pub(crate) const MAGIC_V1: &[u8; 8] = b"TLBNDL01";
/// Footer length (u64 LE) + magic.
pub(crate) const TRAILER: usize = 16;
/// The indexing arena's initial budget; one segment grows past it as it must.
const WRITER_MEMORY: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Footer {
    pub rows: u64,
    /// Inner file name → [start, end) in the bundle.
    pub files: BTreeMap<String, (u64, u64)>,
    /// The hotcache: ranges of inner files (relative to each file), copied back to back
    /// in this order just before the footer.
    #[serde(default)]
    pub hot: Vec<(String, u64, u64)>,
}

/// A packed bundle.
#[derive(Debug)]
pub struct PackedBundle {
    pub bytes: Vec<u8>,
    /// Bytes from the hotcache's start to the end: what opening it reads.
    pub tail_len: u64,
}

/// The bundle's schema: the hot index's searchable row fields, indexed the same way,
/// neither stored nor fast.
fn bundle_schema(stream: &StreamSchema) -> Schema {
    let hot = stream.schema();
    let mut b = Schema::builder();
    for column in stream.row_columns() {
        let Ok(field) = hot.get_field(&column.field) else {
            continue;
        };
        let entry = hot.get_field_entry(field);
        if entry.is_indexed() {
            b.add_field(FieldEntry::new(column.field.clone(), index_only(entry.field_type())));
        }
    }
    b.build()
}

fn index_only(ty: &FieldType) -> FieldType {
    let numeric = |o: &NumericOptions| {
        let out = NumericOptions::default().set_indexed();
        if o.fieldnorms() { out.set_fieldnorm() } else { out }
    };
    match ty {
        FieldType::Str(o) => FieldType::Str(match o.get_indexing_options() {
            Some(indexing) => TextOptions::default().set_indexing_options(indexing.clone()),
            None => TextOptions::default(),
        }),
        FieldType::U64(o) => FieldType::U64(numeric(o)),
        FieldType::I64(o) => FieldType::I64(numeric(o)),
        FieldType::F64(o) => FieldType::F64(numeric(o)),
        FieldType::Bool(o) => FieldType::Bool(numeric(o)),
        FieldType::Date(o) => FieldType::Date(DateOptions::default().set_indexed().set_precision(o.get_precision())),
        FieldType::JsonObject(o) => {
            let mut out = JsonObjectOptions::default();
            if let Some(indexing) = o.get_text_indexing_options() {
                out = out.set_indexing_options(indexing.clone());
            }
            FieldType::JsonObject(if o.is_expand_dots_enabled() { out.set_expand_dots_enabled() } else { out })
        }
        other => other.clone(),
    }
}

/// Builds the bundle of `rows` (in their Parquet order) of a stream.
pub fn build_bundle(stream: &StreamSchema, rows: &RecordBatch) -> Result<PackedBundle, String> {
    let schema = bundle_schema(stream);
    let err = |e: tantivy::TantivyError| e.to_string();
    // One segment written in one pass: documents keep the order they were added in.
    let mut writer = Index::builder()
        .schema(schema.clone())
        .single_segment_index_writer::<TantivyDocument>(RamDirectory::create(), WRITER_MEMORY)
        .map_err(err)?;
    let columns: Vec<(Field, &FieldType, &dyn Array)> = schema
        .fields()
        .filter_map(|(field, entry)| Some((field, entry.field_type(), rows.column_by_name(entry.name())?.as_ref())))
        .collect();
    for row in 0..rows.num_rows() {
        let mut doc = TantivyDocument::new();
        for (field, ty, array) in &columns {
            add_value(&mut doc, *field, ty, *array, row);
        }
        writer.add_document(doc).map_err(err)?;
    }
    let index = writer.finalize().map_err(err)?;
    let segments = index.searchable_segment_metas().map_err(err)?;
    let docs: u32 = segments.iter().map(|s| s.num_docs()).sum();
    if segments.len() > 1 || docs as usize != rows.num_rows() {
        return Err(format!("the bundle has {} segments and {docs} documents for {} rows", segments.len(), rows.num_rows()));
    }
    pack(&index, rows.num_rows() as u64)
}

/// Adds the value of `array[row]` (nulls add nothing) as the hot indexer would.
fn add_value(doc: &mut TantivyDocument, field: Field, ty: &FieldType, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        return;
    }
    match (array.data_type(), ty) {
        (DataType::Utf8, FieldType::JsonObject(_)) => {
            if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(array.as_string::<i32>().value(row)) {
                doc.add_field_value(field, &serde_json::Value::Object(object));
            }
        }
        (DataType::Utf8, _) => doc.add_text(field, array.as_string::<i32>().value(row)),
        (DataType::Int64, _) => doc.add_i64(field, array.as_primitive::<Int64Type>().value(row)),
        (DataType::Int32, _) => doc.add_i64(field, i64::from(array.as_primitive::<Int32Type>().value(row))),
        (DataType::Float64, _) => doc.add_f64(field, array.as_primitive::<Float64Type>().value(row)),
        (DataType::Boolean, _) => doc.add_bool(field, array.as_boolean().value(row)),
        (DataType::Timestamp(TimeUnit::Microsecond, _), _) => {
            doc.add_date(field, DateTime::from_timestamp_micros(array.as_primitive::<TimestampMicrosecondType>().value(row)))
        }
        _ => {}
    }
}

fn pack(index: &Index, rows: u64) -> Result<PackedBundle, String> {
    let directory = index.directory();
    let mut names: Vec<PathBuf> = directory.list_managed_files().into_iter().collect();
    names.push(PathBuf::from("meta.json"));
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    let mut files = BTreeMap::new();
    for name in names {
        if !directory.exists(&name).map_err(|e| e.to_string())? {
            continue;
        }
        let bytes = directory.atomic_read(&name).map_err(|e| format!("{}: {e}", name.display()))?;
        tracing::debug!(file = %name.display(), bytes = bytes.len(), "bundle file");
        let start = out.len() as u64;
        out.extend_from_slice(&bytes);
        files.insert(name.to_string_lossy().into_owned(), (start, out.len() as u64));
    }
    let mut footer = Footer { rows, files, hot: Vec::new() };
    // Open the packed files the way a query does, and keep what that read.
    let opened = Bundle::open_recording(OwnedBytes::new(out.clone()), &footer)?;
    let tail_start = out.len();
    for (file, start, end) in opened.recorded_reads() {
        let (file_start, _) = footer.files[&file];
        out.extend_from_within((file_start + start) as usize..(file_start + end) as usize);
        footer.hot.push((file, start, end));
    }
    let json = serde_json::to_vec(&footer).map_err(|e| e.to_string())?;
    out.extend_from_slice(&json);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(MAGIC);
    let tail_len = (out.len() - tail_start) as u64;
    Ok(PackedBundle { bytes: out, tail_len })
}
