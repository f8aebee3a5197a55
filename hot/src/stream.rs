//! The hot tier of one stream: its generations on disk, the active writer, commits that
//! carry the checkpoint, and rollover.
//!
//! Contract: a row is durable, and its offset part of [`HotStream::committed`], only once
//! [`HotStream::commit`] returned. The checkpoint of a commit is written in the tantivy
//! commit payload of the generation that holds the rows, so after a crash the index and
//! the checkpoint agree: rows not committed are gone, and so is their offset.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tantivy::indexer::UserOperation;
use tantivy::{Index, IndexWriter, TantivyDocument};
use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::config::{Policy, StreamConfig};
use tracing::{info, warn};

use crate::catalog::{DELETING_PREFIX, GenerationHandle, HotCatalog};
use crate::error::{HotError, Result};
use crate::generation::{GenerationId, GenerationMeta, GenerationState, generation_dir, now_ms};
use crate::schema::StreamSchema;
use crate::upgrade;

/// Indexing memory per writer thread (tantivy needs at least 15 MB).
const WRITER_MEMORY_PER_THREAD: usize = 64 << 20;

/// The writer side of a stream's hot tier. One per stream per node; not shared.
pub struct HotStream {
    name: String,
    dir: PathBuf,
    node_id: String,
    schema: Arc<StreamSchema>,
    policy: Policy,
    catalog: HotCatalog,
    active: Option<ActiveGeneration>,
    /// Everything added, committed or not.
    pending: Checkpoint,
    /// Everything durable.
    committed: Checkpoint,
}

struct ActiveGeneration {
    meta: GenerationMeta,
    dir: PathBuf,
    writer: IndexWriter<TantivyDocument>,
    num_docs: u64,
    num_bytes: u64,
    num_uncommitted: u64,
}

/// Whether a generation folder provably holds no committed row: its index was never
/// created, or never committed (every commit of ours carries a checkpoint payload).
fn holds_no_commit(dir: &Path) -> bool {
    if !dir.join("meta.json").exists() {
        return true;
    }
    Index::open_in_dir(dir).and_then(|index| index.load_metas()).is_ok_and(|m| m.payload.is_none() && m.segments.is_empty())
}

fn modified_ms(dir: &Path) -> i64 {
    let modified = std::fs::metadata(dir).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl HotStream {
    /// Opens the stream's folder under `data_dir/hot/`, recovering the checkpoint from
    /// every generation's last commit, and reopening the newest active generation.
    pub fn open(data_dir: &Path, node_id: &str, stream: &StreamConfig, catalog: HotCatalog) -> Result<HotStream> {
        let dir = data_dir.join("hot").join(&stream.name);
        std::fs::create_dir_all(&dir).map_err(|e| HotError::io(&dir, e))?;
        let schema = Arc::new(StreamSchema::new(stream));
        let mut this = HotStream {
            name: stream.name.clone(),
            dir,
            node_id: node_id.to_string(),
            schema,
            policy: stream.policy.clone(),
            catalog,
            active: None,
            pending: Checkpoint::new(),
            committed: Checkpoint::new(),
        };
        this.recover()?;
        this.pending = this.committed.clone();
        this.catalog.publish_commit(&this.name, &this.committed);
        Ok(this)
    }

    fn recover(&mut self) -> Result<()> {
        upgrade::finish_interrupted(&self.dir)?;
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| HotError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| HotError::io(&self.dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(DELETING_PREFIX) {
                // A deletion a crash interrupted: its rows are in the cold tier.
                info!(stream = %self.name, folder = %entry.path().display(), "finishing the deletion of a migrated generation");
                std::fs::remove_dir_all(entry.path()).map_err(|e| HotError::io(&entry.path(), e))?;
                continue;
            }
            if let Some(id) = entry.file_name().to_str().and_then(GenerationId::parse) {
                ids.push(id);
            }
        }
        ids.sort();
        let newest = ids.last().cloned();
        for id in ids {
            let dir = generation_dir(&self.dir, &id);
            let meta = match GenerationMeta::read(&dir) {
                Ok(meta) if meta.state == GenerationState::Unknown => {
                    warn!(stream = %self.name, generation = %id, folder = %dir.display(),
                        "generation.json names a state this version does not know (a newer tierlog wrote it?): \
                         serving the generation's committed rows read-only; the folder is left as it is");
                    meta
                }
                Ok(meta) => meta,
                // Created but never committed: the crash came before any row was durable.
                Err(_) if GenerationMeta::is_missing(&dir) && holds_no_commit(&dir) => {
                    self.remove_uncommitted(&id, &dir)?;
                    continue;
                }
                // Its rows' offsets may be committed to the group already: removing it
                // would lose them for good. Serve what its index committed, change nothing.
                Err(cause) => {
                    warn!(stream = %self.name, generation = %id, folder = %dir.display(), error = %cause,
                        "generation.json is unreadable: serving the generation's committed rows read-only; \
                         this version will not change or remove the folder");
                    GenerationMeta { id: id.clone(), state: GenerationState::Unknown, created_ms: modified_ms(&dir), sealed_ms: None }
                }
            };
            let mut index = Index::open_in_dir(&dir).map_err(|e| self.index_err(&id, e))?;
            if upgrade::needs_rewrite(&index)? {
                if meta.state == GenerationState::Unknown {
                    warn!(stream = %self.name, generation = %id, folder = %dir.display(),
                        "the generation's term dictionaries are in an old format, and its state is not this version's to change: \
                         full-text search will fail on it");
                } else {
                    index = upgrade::rewrite(&self.name, &dir, &index)?;
                }
            }
            let metas = index.load_metas().map_err(|e| self.index_err(&id, e))?;
            let never_committed = metas.payload.is_none() && metas.segments.is_empty();
            if never_committed && meta.state != GenerationState::Unknown && Some(&id) != newest.as_ref() {
                self.remove_uncommitted(&id, &dir)?;
                continue;
            }
            if let Some(payload) = &metas.payload {
                let checkpoint = Checkpoint::from_json(payload).map_err(|e| HotError::Corrupt {
                    path: dir.join("meta.json"),
                    reason: format!("bad checkpoint payload: {e}"),
                })?;
                self.committed.merge(&checkpoint);
            }
            let same_schema = index.schema() == *self.schema.schema();
            if meta.state == GenerationState::Unknown {
                self.catalog.insert(&self.name, GenerationHandle::open(&self.name, meta, dir, index)?);
                continue;
            }
            let reopen = meta.state == GenerationState::Active && Some(&id) == newest.as_ref() && same_schema;
            if reopen {
                let writer = self.writer(&index, &id)?;
                let handle = GenerationHandle::open(&self.name, meta.clone(), dir.clone(), index)?;
                let num_docs = handle.num_docs();
                self.catalog.insert(&self.name, handle);
                info!(stream = %self.name, generation = %id, docs = num_docs, "reopened active generation");
                self.active = Some(ActiveGeneration { meta, dir, writer, num_docs, num_bytes: 0, num_uncommitted: 0 });
            } else {
                let meta = if meta.state == GenerationState::Active {
                    let sealed = GenerationMeta { state: GenerationState::Sealed, sealed_ms: Some(now_ms()), ..meta };
                    sealed.write(&dir)?;
                    sealed
                } else {
                    meta
                };
                self.catalog.insert(&self.name, GenerationHandle::open(&self.name, meta, dir, index)?);
            }
        }
        Ok(())
    }

    fn remove_uncommitted(&self, id: &GenerationId, dir: &Path) -> Result<()> {
        warn!(stream = %self.name, generation = %id, folder = %dir.display(), "removing generation that was never committed");
        std::fs::remove_dir_all(dir).map_err(|e| HotError::io(dir, e))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// The checkpoint of the last commit: every offset before it is durable here.
    pub fn committed(&self) -> &Checkpoint {
        &self.committed
    }

    /// Whether anything was added since the last commit.
    pub fn is_dirty(&self) -> bool {
        self.pending != self.committed
    }

    /// Adds one document; `num_bytes` counts toward rollover.
    pub fn add(&mut self, doc: TantivyDocument, num_bytes: u64) -> Result<()> {
        self.add_all(std::iter::once(doc), num_bytes)
    }

    /// Adds documents in one batch (one hand-over to tantivy's indexing threads);
    /// `num_bytes` counts toward rollover.
    pub fn add_all(&mut self, docs: impl ExactSizeIterator<Item = TantivyDocument>, num_bytes: u64) -> Result<()> {
        let stream = self.name.clone();
        let active = self.active()?;
        let num_docs = docs.len() as u64;
        active.writer.run(docs.map(UserOperation::Add)).map_err(|source| HotError::Index {
            stream,
            generation: active.meta.id.to_string(),
            source,
        })?;
        active.num_docs += num_docs;
        active.num_uncommitted += num_docs;
        active.num_bytes += num_bytes;
        Ok(())
    }

    /// The next offset expected of `topic`/`partition`: everything before it was added
    /// (committed or not) or consumed elsewhere.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.pending.next_offset(topic, partition)
    }

    /// Marks every offset of `topic`/`partition` before `next_offset` as consumed; it
    /// becomes durable with the next commit.
    pub fn advance(&mut self, topic: &str, partition: i32, next_offset: i64) {
        self.pending.advance(topic, partition, next_offset);
    }

    /// Commits what was added with the checkpoint in the payload, then rolls the
    /// generation over if the policy says so. Returns the new committed checkpoint, or
    /// `None` when there was nothing to commit.
    pub fn commit(&mut self) -> Result<Option<Checkpoint>> {
        // Nothing added, or only offsets moved while no generation is open (a partition
        // assigned here at an offset another node reached): those become durable with the
        // next rows, and the group holds them meanwhile; no empty generation for them.
        if !self.is_dirty() || self.active.is_none() {
            self.maybe_roll_over()?;
            return Ok(None);
        }
        let payload = self.pending.to_json();
        let name = self.name.clone();
        let active = self.active()?;
        let id = active.meta.id.to_string();
        let err = |source| HotError::Index { stream: name.clone(), generation: id.clone(), source };
        let mut prepared = active.writer.prepare_commit().map_err(err)?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(err)?;
        active.num_uncommitted = 0;
        let id = active.meta.id.clone();
        self.committed = self.pending.clone();
        self.catalog.reload(&self.name, &id);
        self.catalog.publish_commit(&self.name, &self.committed);
        self.maybe_roll_over()?;
        Ok(Some(self.committed.clone()))
    }

    fn maybe_roll_over(&mut self) -> Result<()> {
        let Some(active) = &self.active else { return Ok(()) };
        let age = Duration::from_millis((now_ms() - active.meta.created_ms).max(0) as u64);
        let reason = if age >= self.policy.rollover_max_age.0 {
            "max_age"
        } else if active.num_docs >= self.policy.rollover_max_docs {
            "max_docs"
        } else if active.num_bytes >= self.policy.rollover_max_bytes.0 {
            "max_bytes"
        } else {
            return Ok(());
        };
        if active.num_uncommitted > 0 {
            return Ok(()); // only seal what is fully committed
        }
        self.seal(reason)
    }

    /// Seals the active generation: committed, read-only from now on.
    fn seal(&mut self, reason: &str) -> Result<()> {
        let Some(active) = self.active.take() else { return Ok(()) };
        let id = active.meta.id.clone();
        active
            .writer
            .wait_merging_threads()
            .map_err(|source| HotError::Index { stream: self.name.clone(), generation: id.to_string(), source })?;
        let meta = GenerationMeta { state: GenerationState::Sealed, sealed_ms: Some(now_ms()), ..active.meta };
        meta.write(&active.dir)?;
        self.catalog.set_meta(&self.name, meta);
        info!(stream = %self.name, generation = %id, docs = active.num_docs, reason, "sealed generation");
        Ok(())
    }

    /// Seals the active generation if it holds anything (used at shutdown).
    pub fn close(mut self) -> Result<()> {
        self.commit()?;
        if let Some(active) = self.active.take() {
            active
                .writer
                .wait_merging_threads()
                .map_err(|source| HotError::Index { stream: self.name.clone(), generation: active.meta.id.to_string(), source })?;
        }
        Ok(())
    }

    fn active(&mut self) -> Result<&mut ActiveGeneration> {
        if self.active.is_none() {
            self.active = Some(self.create_generation()?);
        }
        Ok(self.active.as_mut().expect("just created"))
    }

    fn create_generation(&self) -> Result<ActiveGeneration> {
        let id = GenerationId::new(&self.node_id, SystemTime::now());
        let dir = generation_dir(&self.dir, &id);
        std::fs::create_dir_all(&dir).map_err(|e| HotError::io(&dir, e))?;
        let index = Index::create_in_dir(&dir, self.schema.schema().clone()).map_err(|e| self.index_err(&id, e))?;
        let writer = self.writer(&index, &id)?;
        let meta = GenerationMeta { id: id.clone(), state: GenerationState::Active, created_ms: now_ms(), sealed_ms: None };
        meta.write(&dir)?;
        self.catalog.insert(&self.name, GenerationHandle::open(&self.name, meta.clone(), dir.clone(), index)?);
        info!(stream = %self.name, generation = %id, "created generation");
        Ok(ActiveGeneration { meta, dir, writer, num_docs: 0, num_bytes: 0, num_uncommitted: 0 })
    }

    fn writer(&self, index: &Index, id: &GenerationId) -> Result<IndexWriter<TantivyDocument>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
        index
            .writer_with_num_threads(threads, threads * WRITER_MEMORY_PER_THREAD)
            .map_err(|e| self.index_err(id, e))
    }

    fn index_err(&self, id: &GenerationId, source: tantivy::TantivyError) -> HotError {
        HotError::Index { stream: self.name.clone(), generation: id.to_string(), source }
    }
}
