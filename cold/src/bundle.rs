//! A segment's index bundle (DESIGN.md §5): a tantivy index over the same rows as its
//! Parquet file, in the same order, so doc id == Parquet row number. One segment, no doc
//! store and no fast fields (the Parquet file holds the values), only the fields the hot
//! index searches, with the hot index's own field options so a `match()` parses and
//! answers the same on both tiers.
//!
//! Packed as one object: the index files back to back, then a JSON footer naming each
//! file's byte range, then the footer's length and a magic, so a reader finds everything
//! from the tail.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, RamDirectory, WatchCallback, WatchHandle, WritePtr};
use tantivy::schema::{DateOptions, Field, FieldEntry, FieldType, JsonObjectOptions, NumericOptions, Schema, TextOptions};
use tantivy::{DateTime, Index, IndexReader, ReloadPolicy, TantivyDocument};
use tierlog_hot::StreamSchema;

/// Where segment `id`'s bundle lives: outside the table root, which vacuum sweeps, so
/// retention deletes it itself.
pub fn bundle_key(store: &crate::store::ColdStore, stream: &str, id: &str) -> object_store::path::Path {
    store.key(&format!("index/{stream}/{id}.index"))
}

/// The bundle's last bytes.
const MAGIC: &[u8; 8] = b"TLBNDL01";
/// Footer length (u64 LE) + magic.
const TAIL: usize = 16;
/// The indexing arena's initial budget; one segment grows past it as it must.
const WRITER_MEMORY: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Footer {
    rows: u64,
    /// Inner file name → [start, end) in the bundle.
    files: BTreeMap<String, (u64, u64)>,
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
pub fn build_bundle(stream: &StreamSchema, rows: &RecordBatch) -> Result<Vec<u8>, String> {
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

fn pack(index: &Index, rows: u64) -> Result<Vec<u8>, String> {
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
    let footer = serde_json::to_vec(&Footer { rows, files }).map_err(|e| e.to_string())?;
    out.extend_from_slice(&footer);
    out.extend_from_slice(&(footer.len() as u64).to_le_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// An opened bundle: its index over the bytes, nothing copied.
#[derive(Clone)]
pub struct Bundle {
    index: Index,
    reader: IndexReader,
    rows: u64,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("rows", &self.rows).finish()
    }
}

impl Bundle {
    /// Opens a whole bundle held in memory (or mapped).
    pub fn open(bytes: OwnedBytes) -> Result<Bundle, String> {
        let len = bytes.len();
        if len < TAIL || &bytes.as_slice()[len - 8..] != MAGIC {
            return Err("not a tierlog index bundle (no footer magic)".into());
        }
        let footer_len = u64::from_le_bytes(bytes.as_slice()[len - TAIL..len - 8].try_into().expect("8 bytes")) as usize;
        let footer_start = (len - TAIL).checked_sub(footer_len).ok_or("the bundle's footer length is larger than the bundle")?;
        let footer: Footer = serde_json::from_slice(&bytes.as_slice()[footer_start..len - TAIL])
            .map_err(|e| format!("the bundle's footer is unreadable: {e}"))?;
        let mut files = HashMap::new();
        for (name, (start, end)) in footer.files {
            let range: Range<usize> = start as usize..end as usize;
            if range.start > range.end || range.end > footer_start {
                return Err(format!("the bundle's footer puts {name} outside the bundle"));
            }
            files.insert(PathBuf::from(name), bytes.slice(range));
        }
        let directory = BundleDirectory { files: Arc::new(files) };
        let index = Index::open(directory).map_err(|e| format!("the bundle's index does not open: {e}"))?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e: tantivy::TantivyError| e.to_string())?;
        Ok(Bundle { index, reader, rows: footer.rows })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }
}

/// A read-only tantivy directory over a bundle's inner files.
#[derive(Debug, Clone)]
struct BundleDirectory {
    files: Arc<HashMap<PathBuf, OwnedBytes>>,
}

impl BundleDirectory {
    fn file(&self, path: &Path) -> Result<&OwnedBytes, OpenReadError> {
        self.files.get(path).ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, "an index bundle is read-only")
}

impl Directory for BundleDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(self.file(path)?.clone()))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError { io_error: Arc::new(read_only()), filepath: path.to_path_buf() })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.files.contains_key(path))
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::IoError { io_error: Arc::new(read_only()), filepath: path.to_path_buf() })
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        Ok(self.file(path)?.as_slice().to_vec())
    }

    fn atomic_write(&self, _path: &Path, _data: &[u8]) -> std::io::Result<()> {
        Err(read_only())
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// Nothing writes a bundle, so there is nothing to lock against.
    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}
