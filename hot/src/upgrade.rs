//! Rewriting a generation whose term dictionaries this build cannot read.
//!
//! tierlog builds tantivy with its `quickwit` feature since cold bundles are searched with
//! ranged reads (SSTable term dictionaries, async warm-up). The feature changes the term
//! dictionary format of every index, so a generation written before it (FST dictionaries)
//! no longer searches. Its documents are still readable without a dictionary: every field
//! of the hot schema is stored or fast. So the generation is rewritten from its own
//! documents, with its checkpoint payload, and nothing is read from Kafka again.
//!
//! Crash safety: the new index is built in `.upgrading-<id>`, then the old folder is
//! renamed to `.replaced-<id>` and the new one into its place; [`finish_interrupted`]
//! completes or undoes whichever step a crash interrupted.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tantivy::schema::{Field, FieldType};
use tantivy::{DocId, Index, SegmentReader, TantivyDocument};
use tracing::{info, warn};

use crate::error::{HotError, Result};

const UPGRADING_PREFIX: &str = ".upgrading-";
const REPLACED_PREFIX: &str = ".replaced-";
/// One indexing thread keeps the documents in their old order.
const WRITER_MEMORY: usize = 64 << 20;

/// Whether the generation's term dictionaries are in a format this build cannot open.
/// Checked on the `_kind` field, which every document indexes: all of a segment's
/// dictionaries are written in one format.
pub(crate) fn needs_rewrite(index: &Index) -> Result<bool> {
    let schema = index.schema();
    let Ok(kind) = schema.get_field("_kind") else { return Ok(false) };
    let segments = index.searchable_segments().map_err(|e| HotError::Read(e.to_string()))?;
    for segment in segments {
        let reader = SegmentReader::open(&segment).map_err(|e| HotError::Read(e.to_string()))?;
        if let Err(e) = reader.inverted_index(kind) {
            if e.to_string().contains("Unsupported dictionary type") {
                return Ok(true);
            }
            return Err(HotError::Read(format!("segment {}: {e}", segment.id().uuid_string())));
        }
    }
    Ok(false)
}

/// Completes the rewrites a crash interrupted in `stream_dir`: a new index not yet in
/// place is dropped (its generation is rewritten again), an old one already replaced is
/// removed, and an old one moved aside before its replacement arrived is moved back.
pub(crate) fn finish_interrupted(stream_dir: &Path) -> Result<()> {
    let io = |path: &Path, e| HotError::io(path, e);
    for entry in std::fs::read_dir(stream_dir).map_err(|e| io(stream_dir, e))? {
        let entry = entry.map_err(|e| io(stream_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(UPGRADING_PREFIX) {
            std::fs::remove_dir_all(entry.path()).map_err(|e| io(&entry.path(), e))?;
        } else if let Some(id) = name.strip_prefix(REPLACED_PREFIX) {
            let dir = stream_dir.join(id);
            if dir.exists() {
                std::fs::remove_dir_all(entry.path()).map_err(|e| io(&entry.path(), e))?;
            } else {
                warn!(folder = %dir.display(), "a crash interrupted a generation's rewrite: putting the old index back to rewrite it again");
                std::fs::rename(entry.path(), &dir).map_err(|e| io(&dir, e))?;
            }
        }
    }
    Ok(())
}

/// Rewrites the generation in `dir` (its index `old`) with this build's dictionaries:
/// the same documents in the same order, the same schema, the same checkpoint payload.
/// Returns the new index, in `dir`.
pub(crate) fn rewrite(stream: &str, dir: &Path, old: &Index) -> Result<Index> {
    let started = Instant::now();
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    warn!(stream, folder = %dir.display(),
        "this generation's term dictionaries are in the FST format of tierlog before 0.1 (tantivy without `quickwit`): \
         rewriting it from its own stored and fast fields; nothing is read from Kafka again");
    let err = |e: tantivy::TantivyError| HotError::Index { stream: stream.to_string(), generation: name.clone(), source: e };
    let schema = old.schema();
    let metas = old.load_metas().map_err(err)?;
    let fields = Rebuild::plan(&schema).map_err(|reason| HotError::Corrupt { path: dir.to_path_buf(), reason })?;

    let new_dir = sibling(dir, UPGRADING_PREFIX);
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir).map_err(|e| HotError::io(&new_dir, e))?;
    }
    std::fs::create_dir_all(&new_dir).map_err(|e| HotError::io(&new_dir, e))?;
    let new = Index::create_in_dir(&new_dir, schema.clone()).map_err(err)?;
    let mut writer = new.writer_with_num_threads::<TantivyDocument>(1, WRITER_MEMORY).map_err(err)?;
    let mut docs = 0u64;
    for segment in old.searchable_segments().map_err(err)? {
        let reader = SegmentReader::open(&segment).map_err(err)?;
        let store = reader.get_store_reader(0).map_err(|e| err(e.into()))?;
        for doc in reader.doc_ids_alive() {
            let mut out: TantivyDocument = store.get(doc).map_err(err)?;
            fields.add_fast_values(&reader, doc, &mut out).map_err(err)?;
            writer.add_document(out).map_err(err)?;
            docs += 1;
        }
    }
    let mut prepared = writer.prepare_commit().map_err(err)?;
    if let Some(payload) = &metas.payload {
        prepared.set_payload(payload);
    }
    prepared.commit().map_err(err)?;
    writer.wait_merging_threads().map_err(err)?;
    let written: u64 = new.searchable_segment_metas().map_err(err)?.iter().map(|s| u64::from(s.num_docs())).sum();
    if written != docs {
        return Err(HotError::Corrupt { path: new_dir, reason: format!("the rewrite holds {written} documents, the generation {docs}") });
    }
    for file in std::fs::read_dir(dir).map_err(|e| HotError::io(dir, e))? {
        // The sidecar files (generation.json) go along; tantivy's own are rewritten.
        let file = file.map_err(|e| HotError::io(dir, e))?;
        let file_name = file.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".json") && !file_name.starts_with('.') && file_name != "meta.json" {
            std::fs::copy(file.path(), new_dir.join(&file_name)).map_err(|e| HotError::io(&file.path(), e))?;
        }
    }
    drop(new);
    let replaced = sibling(dir, REPLACED_PREFIX);
    std::fs::rename(dir, &replaced).map_err(|e| HotError::io(dir, e))?;
    std::fs::rename(&new_dir, dir).map_err(|e| HotError::io(dir, e))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(|e| HotError::io(parent, e))?;
    }
    std::fs::remove_dir_all(&replaced).map_err(|e| HotError::io(&replaced, e))?;
    info!(stream, folder = %dir.display(), docs, took_ms = started.elapsed().as_millis() as u64, "rewrote the generation with SSTable dictionaries");
    Index::open_in_dir(dir).map_err(err)
}

fn sibling(dir: &Path, prefix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{prefix}{name}"))
}

/// The fields whose values come from fast columns (the doc store holds the rest).
struct Rebuild {
    fast: Vec<(Field, String, FieldType)>,
}

impl Rebuild {
    /// Fails for a field that is neither stored nor fast: its values exist only in the
    /// index this build cannot read.
    fn plan(schema: &tantivy::schema::Schema) -> std::result::Result<Rebuild, String> {
        let mut fast = Vec::new();
        for (field, entry) in schema.fields() {
            if entry.is_stored() {
                continue;
            }
            if !entry.is_fast() {
                return Err(format!("field {} is neither stored nor fast: the generation cannot be rewritten", entry.name()));
            }
            fast.push((field, entry.name().to_string(), entry.field_type().clone()));
        }
        Ok(Rebuild { fast })
    }

    fn add_fast_values(&self, reader: &SegmentReader, doc: DocId, out: &mut TantivyDocument) -> tantivy::Result<()> {
        let columns = reader.fast_fields();
        for (field, name, ty) in &self.fast {
            match ty {
                FieldType::U64(_) => columns.u64(name)?.values_for_doc(doc).for_each(|v| out.add_u64(*field, v)),
                FieldType::I64(_) => columns.i64(name)?.values_for_doc(doc).for_each(|v| out.add_i64(*field, v)),
                FieldType::F64(_) => columns.f64(name)?.values_for_doc(doc).for_each(|v| out.add_f64(*field, v)),
                FieldType::Bool(_) => columns.bool(name)?.values_for_doc(doc).for_each(|v| out.add_bool(*field, v)),
                FieldType::Date(_) => columns.date(name)?.values_for_doc(doc).for_each(|v| out.add_date(*field, v)),
                FieldType::Str(_) => {
                    if let Some(column) = columns.str(name)? {
                        let mut text = String::new();
                        for ord in column.term_ords(doc) {
                            text.clear();
                            column.ord_to_str(ord, &mut text)?;
                            out.add_text(*field, &text);
                        }
                    }
                }
                other => {
                    return Err(tantivy::TantivyError::SchemaError(format!("field {name}: cannot rewrite a fast {other:?} field")));
                }
            }
        }
        Ok(())
    }
}
