//! The generations every reader can see, shared between a stream's writer and queries.
//!
//! A query takes a [`HotCatalog::snapshot`] once and searches the pinned
//! [`tantivy::Searcher`]s of it: a generation committed, sealed or removed meanwhile does
//! not change its answer. [`HotCatalog::watch_commits`] tells followers (live tail)
//! what each commit made visible, as the stream's checkpoint after it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};
use tierlog_core::checkpoint::Checkpoint;
use tokio::sync::watch;

use crate::error::{HotError, Result};
use crate::generation::{GenerationId, GenerationMeta, GenerationState};

/// One generation as readers see it.
#[derive(Clone)]
pub struct GenerationHandle {
    pub meta: GenerationMeta,
    pub dir: PathBuf,
    index: Index,
    reader: IndexReader,
}

/// What a generation holds, read from its last commit.
#[derive(Debug, Clone)]
pub struct GenerationInfo {
    pub id: GenerationId,
    pub state: GenerationState,
    pub num_docs: u64,
    /// Bytes of its files on disk.
    pub num_bytes: u64,
    /// Smallest and largest `_timestamp`, µs since the epoch; `None` when empty.
    pub time_range_us: Option<(i64, i64)>,
    pub checkpoint: Checkpoint,
}

impl GenerationHandle {
    pub fn open(stream: &str, meta: GenerationMeta, dir: PathBuf, index: Index) -> Result<GenerationHandle> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|source| HotError::Index { stream: stream.to_string(), generation: meta.id.to_string(), source })?;
        Ok(GenerationHandle { meta, dir, index, reader })
    }

    /// A point-in-time view of the committed documents.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Smallest and largest `_timestamp` of the committed rows, µs; `None` when empty.
    pub fn time_range_us(&self) -> Option<(i64, i64)> {
        time_range_us(&self.searcher())
    }

    pub fn info(&self) -> GenerationInfo {
        let searcher = self.searcher();
        let range = time_range_us(&searcher);
        let num_bytes = std::fs::read_dir(&self.dir)
            .map(|it| it.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0);
        let checkpoint = self
            .index
            .load_metas()
            .ok()
            .and_then(|m| m.payload)
            .and_then(|p| Checkpoint::from_json(&p).ok())
            .unwrap_or_default();
        GenerationInfo {
            id: self.meta.id.clone(),
            state: self.meta.state,
            num_docs: searcher.num_docs(),
            num_bytes,
            time_range_us: range,
            checkpoint,
        }
    }
}

fn time_range_us(searcher: &Searcher) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for segment in searcher.segment_readers() {
        let Ok(column) = segment.fast_fields().date("_timestamp") else { continue };
        if segment.num_docs() == 0 {
            continue;
        }
        let (lo, hi) = (column.min_value().into_timestamp_micros(), column.max_value().into_timestamp_micros());
        range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    range
}

/// Every stream's generations on this node. Cheap to clone.
#[derive(Clone, Default)]
pub struct HotCatalog {
    streams: Arc<RwLock<HashMap<String, BTreeMap<GenerationId, Arc<GenerationHandle>>>>>,
    /// Per stream, the checkpoint of its latest visible commit.
    commits: Arc<Mutex<HashMap<String, watch::Sender<Arc<Checkpoint>>>>>,
}

impl HotCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, stream: &str, handle: GenerationHandle) {
        let mut streams = self.streams.write().expect("catalog lock poisoned");
        streams.entry(stream.to_string()).or_default().insert(handle.meta.id.clone(), Arc::new(handle));
    }

    /// Makes the latest commit of a generation visible to new snapshots.
    pub fn reload(&self, stream: &str, id: &GenerationId) {
        if let Some(handle) = self.get(stream, id) {
            // A failed reload keeps the previous commit visible; the next one retries.
            if let Err(e) = handle.reader.reload() {
                tracing::warn!(stream, generation = %id, error = %e, "reader reload failed");
            }
        }
    }

    pub fn set_meta(&self, stream: &str, meta: GenerationMeta) {
        let mut streams = self.streams.write().expect("catalog lock poisoned");
        if let Some(slot) = streams.get_mut(stream).and_then(|g| g.get_mut(&meta.id)) {
            let mut handle = GenerationHandle::clone(slot);
            handle.meta = meta;
            *slot = Arc::new(handle);
        }
    }

    /// Deletes a sealed generation (its rows are in the cold tier): gone from new
    /// snapshots at once, then from disk. Queries that pinned it keep reading their open
    /// files. The folder is first renamed to a `.deleting-` name, so that a crash in the
    /// middle leaves a folder the next start removes, never half a generation.
    pub fn delete_sealed(&self, stream: &str, id: &GenerationId) -> Result<()> {
        let handle = {
            let mut streams = self.streams.write().expect("catalog lock poisoned");
            let Some(generations) = streams.get_mut(stream) else { return Ok(()) };
            match generations.get(id) {
                Some(h) if h.meta.state == GenerationState::Sealed => generations.remove(id).expect("just found"),
                _ => return Ok(()),
            }
        };
        let doomed = deleting_dir(&handle.dir);
        std::fs::rename(&handle.dir, &doomed).map_err(|e| HotError::io(&handle.dir, e))?;
        tierlog_core::failpoint::hit("during_hot_deletion");
        std::fs::remove_dir_all(&doomed).map_err(|e| HotError::io(&doomed, e))
    }

    fn get(&self, stream: &str, id: &GenerationId) -> Option<Arc<GenerationHandle>> {
        let streams = self.streams.read().expect("catalog lock poisoned");
        streams.get(stream)?.get(id).cloned()
    }

    /// Tells followers that the rows below `checkpoint` are visible to new snapshots.
    pub fn publish_commit(&self, stream: &str, checkpoint: &Checkpoint) {
        self.commit_sender(stream).send_replace(Arc::new(checkpoint.clone()));
    }

    /// The checkpoint of the stream's latest visible commit, changing with each commit
    /// (empty until the stream has opened).
    pub fn watch_commits(&self, stream: &str) -> watch::Receiver<Arc<Checkpoint>> {
        self.commit_sender(stream).subscribe()
    }

    fn commit_sender(&self, stream: &str) -> watch::Sender<Arc<Checkpoint>> {
        let mut commits = self.commits.lock().expect("catalog lock poisoned");
        commits.entry(stream.to_string()).or_insert_with(|| watch::Sender::new(Arc::new(Checkpoint::new()))).clone()
    }

    /// The stream's generations now, oldest first.
    pub fn snapshot(&self, stream: &str) -> Vec<Arc<GenerationHandle>> {
        let streams = self.streams.read().expect("catalog lock poisoned");
        streams.get(stream).map(|g| g.values().cloned().collect()).unwrap_or_default()
    }
}

/// Name prefix of a generation folder being deleted.
pub(crate) const DELETING_PREFIX: &str = ".deleting-";

fn deleting_dir(dir: &std::path::Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{DELETING_PREFIX}{name}"))
}
