//! Reads a node's hot tier straight from its tantivy indexes (not through tierlog), to
//! check what ingest made durable.

use std::collections::BTreeMap;
use std::path::Path;

use tantivy::Index;

/// A row's identity: (topic, partition, offset, record).
pub type RowId = (String, i64, i64, i64);

/// Every committed row of `stream` under `data_dir`, with its `_kind` (0 row, 1 error)
/// and, for error rows, the reason. Retries while the writer replaces files underneath.
pub fn rows(data_dir: &Path, stream: &str) -> Vec<(RowId, u64, Option<String>)> {
    for _ in 0..20 {
        if let Some(rows) = try_rows(data_dir, stream) {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("cannot read the hot tier of {stream} under {}", data_dir.display());
}

fn try_rows(data_dir: &Path, stream: &str) -> Option<Vec<(RowId, u64, Option<String>)>> {
    let dir = data_dir.join("hot").join(stream);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Some(out) };
    for entry in entries.flatten() {
        if !entry.path().join("meta.json").exists() {
            continue;
        }
        let index = Index::open_in_dir(entry.path()).ok()?;
        let searcher = index.reader().ok()?.searcher();
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            let topic = fast.str("_topic").ok()??;
            let reason = fast.str("_error_reason").ok()?;
            let partition = fast.i64("_partition").ok()?;
            let offset = fast.i64("_offset").ok()?;
            let record = fast.i64("_record").ok()?;
            let kind = fast.u64("_kind").ok()?;
            let text = |col: &tantivy::columnar::StrColumn, doc| -> Option<String> {
                let ord = col.term_ords(doc).next()?;
                let mut s = String::new();
                col.ord_to_str(ord, &mut s).ok()?;
                Some(s)
            };
            for doc in segment.doc_ids_alive() {
                let id = (
                    text(&topic, doc)?,
                    partition.first(doc)?,
                    offset.first(doc)?,
                    record.first(doc).unwrap_or(0),
                );
                let reason = reason.as_ref().and_then(|c| text(c, doc));
                out.push((id, kind.first(doc)?, reason));
            }
        }
    }
    Some(out)
}

/// How often each row id occurs.
pub fn multiplicity(rows: &[(RowId, u64, Option<String>)]) -> BTreeMap<&RowId, usize> {
    let mut m = BTreeMap::new();
    for (id, _, _) in rows {
        *m.entry(id).or_default() += 1;
    }
    m
}
