//! An opened index bundle: a read-only tantivy `Directory` over the bundle's byte ranges.
//!
//! A bundle is opened from its tail alone (footer and hotcache, `bundle.rs`); every other
//! byte is fetched when a query needs it. tantivy searches synchronously, so a search
//! must never wait on the network: [`Bundle::search`] first warms what the query's terms
//! need (dictionary blocks, postings, positions) through tantivy's async reads, then
//! searches on those bytes. A read the warm-up did not foresee (a range query's
//! dictionary blocks, say) fails the search instead of blocking; the missed ranges are
//! fetched together, adjacent ones merged, and the search runs again.
//!
//! The bytes a query warmed belong to its `Bundle`: the caches may evict them meanwhile,
//! the running query keeps them until it drops the bundle.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, WatchCallback, WatchHandle, WritePtr};
use tantivy::{HasLen, Index, IndexReader, ReloadPolicy, Searcher, Term};

use crate::bundle::{Footer, MAGIC, MAGIC_V1, TRAILER};

/// Searches tried again after fetching what the previous one missed.
const MAX_SEARCH_ROUNDS: usize = 4;
/// Missed ranges closer than this are fetched as one.
const MERGE_GAP: usize = 16 << 10;
/// Warm-up reads in flight per bundle.
const WARM_CONCURRENCY: usize = 8;
/// What to read of a bundle's end when its tail length is unknown (written before the
/// `tierlog.index_tail` tag, or a tag that was wrong).
pub const DEFAULT_TAIL: u64 = 256 << 10;

/// Where a bundle's bytes come from: the object store through the caches, or memory.
#[async_trait]
pub trait RangeSource: Send + Sync + fmt::Debug + 'static {
    /// Bytes `range` of the bundle.
    async fn read(&self, range: Range<u64>) -> io::Result<Bytes>;
    /// Its last `len` bytes (all of it when shorter), and where they start.
    async fn read_tail(&self, len: u64) -> io::Result<(u64, Bytes)>;
}

fn out_of_bundle() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "a read past the bundle's end")
}

/// An opened bundle.
#[derive(Clone)]
pub struct Bundle {
    reader: IndexReader,
    rows: u64,
    files: Arc<Files>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle").field("rows", &self.rows).finish()
    }
}

/// Why a tail does not open.
#[derive(Debug)]
enum TailError {
    /// The footer and hotcache need this many bytes from the end.
    TooShort(u64),
    Bad(String),
}

impl Bundle {
    /// Opens a whole bundle held in memory.
    pub fn open(bytes: OwnedBytes) -> Result<Bundle, String> {
        let (footer, hot_start) = match parse_tail(bytes.as_slice(), 0) {
            Ok(parsed) => parsed,
            Err(TailError::TooShort(_)) => return Err("the bundle is shorter than its footer says".into()),
            Err(TailError::Bad(reason)) => return Err(reason),
        };
        let hot = hot_ranges(&footer, &bytes, hot_start as usize)?;
        Bundle::assemble(footer, hot, Source::Memory(bytes), false)
    }

    /// Opens a bundle from `source` with one read of its tail (`tail_len` bytes, from
    /// the add action's tag; a second read when that was too short).
    pub async fn open_remote(source: Arc<dyn RangeSource>, tail_len: Option<u64>) -> Result<Bundle, String> {
        let mut want = tail_len.unwrap_or(DEFAULT_TAIL).max(TRAILER as u64);
        for _ in 0..2 {
            let (at, tail) = source.read_tail(want).await.map_err(|e| format!("reading its tail: {e}"))?;
            match parse_tail(&tail, at) {
                Ok((footer, hot_start)) => {
                    let tail = OwnedBytes::new(tail.to_vec());
                    let hot = hot_ranges(&footer, &tail, (hot_start - at) as usize)?;
                    return Bundle::assemble(footer, hot, Source::Remote(source), false);
                }
                Err(TailError::TooShort(need)) if need > want => want = need,
                Err(TailError::TooShort(_)) => return Err("the bundle is shorter than its footer says".into()),
                Err(TailError::Bad(reason)) => return Err(reason),
            }
        }
        Err("the bundle's tail grew between two reads".into())
    }

    /// Opens packed files in memory, recording every range tantivy reads to open the
    /// index, its segments and each indexed field's dictionary: the hotcache `bundle.rs`
    /// writes.
    pub(crate) fn open_recording(bytes: OwnedBytes, footer: &Footer) -> Result<Bundle, String> {
        let footer = Footer { rows: footer.rows, files: footer.files.clone(), hot: Vec::new() };
        let bundle = Bundle::assemble(footer, HashMap::new(), Source::Memory(bytes), true)?;
        let searcher = bundle.searcher();
        let schema = searcher.schema();
        for segment in searcher.segment_readers() {
            for (field, entry) in schema.fields() {
                if entry.is_indexed() {
                    segment.inverted_index(field).map_err(|e| format!("opening the dictionary of {}: {e}", entry.name()))?;
                }
            }
        }
        Ok(bundle)
    }

    fn assemble(footer: Footer, hot: Slices, source: Source, record: bool) -> Result<Bundle, String> {
        let files = footer.files.iter().map(|(name, &(start, end))| (PathBuf::from(name), start..end)).collect();
        let files =
            Arc::new(Files { files, hot, source, warmed: Mutex::default(), missed: Mutex::default(), record, recorded: Mutex::default() });
        let index = Index::open(BundleDirectory { files: Arc::clone(&files) }).map_err(|e| format!("the bundle's index does not open: {e}"))?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e: tantivy::TantivyError| e.to_string())?;
        Ok(Bundle { reader, rows: footer.rows, files })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Ranges recorded by [`Bundle::open_recording`], per file, merged and sorted.
    pub(crate) fn recorded_reads(&self) -> Vec<(String, u64, u64)> {
        let recorded = self.files.recorded.lock().expect("bundle lock poisoned").clone();
        let mut by_file: BTreeMap<PathBuf, Vec<Range<usize>>> = BTreeMap::new();
        for (file, range) in recorded {
            by_file.entry(file).or_default().push(range);
        }
        let mut out = Vec::new();
        for (file, ranges) in by_file {
            for range in merge(ranges, 0) {
                out.push((file.to_string_lossy().into_owned(), range.start as u64, range.end as u64));
            }
        }
        out
    }

    /// Warms what `terms` (each with whether positions are needed) read, then runs
    /// `search` on the warmed bytes, fetching what it missed and running it again. The
    /// outer error says why bytes could not be fetched; the inner one is the search's.
    pub async fn search<T, E>(&self, terms: &[(Term, bool)], search: impl Fn(&Searcher) -> Result<T, E>) -> Result<Result<T, E>, String> {
        let searcher = self.searcher();
        // Owned futures: each holds its dictionary reader and term.
        let mut warm = Vec::new();
        for segment in searcher.segment_readers() {
            for (term, positions) in terms {
                let index = segment.inverted_index(term.field()).map_err(|e| format!("opening a dictionary: {e}"))?;
                let (term, positions) = (term.clone(), *positions);
                warm.push(async move { index.warm_postings(&term, positions).await.map(|_| ()) });
            }
        }
        futures::stream::iter(warm)
            .buffer_unordered(WARM_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map_err(|e| format!("warming the index: {e}"))?;
        for _ in 0..MAX_SEARCH_ROUNDS {
            let answer = search(&searcher);
            let missed = std::mem::take(&mut *self.files.missed.lock().expect("bundle lock poisoned"));
            if missed.is_empty() {
                return Ok(answer);
            }
            tracing::debug!(ranges = missed.len(), "the search read bytes the warm-up did not fetch; fetching them and searching again");
            self.files.fetch(missed).await.map_err(|e| format!("fetching index bytes: {e}"))?;
        }
        Err(format!("the search still missed index bytes after {MAX_SEARCH_ROUNDS} rounds of fetching"))
    }
}

/// Reads the footer at the end of `tail` (whose first byte is at `at` in the bundle);
/// the footer and where the hotcache starts.
fn parse_tail(tail: &[u8], at: u64) -> Result<(Footer, u64), TailError> {
    let len = tail.len();
    if len < TRAILER {
        return Err(TailError::TooShort(TRAILER as u64));
    }
    let magic = &tail[len - 8..];
    if magic == MAGIC_V1 {
        return Err(TailError::Bad(
            "the bundle is in format 1 (FST dictionaries, written before tierlog searched bundles with ranged reads); \
             this version cannot search it"
                .into(),
        ));
    }
    if magic != MAGIC {
        return Err(TailError::Bad("not a tierlog index bundle (no footer magic)".into()));
    }
    let footer_len = u64::from_le_bytes(tail[len - TRAILER..len - 8].try_into().expect("8 bytes"));
    let end = at + len as u64;
    let footer_start = (end - TRAILER as u64).checked_sub(footer_len).ok_or(TailError::Bad("the footer is longer than the bundle".into()))?;
    if footer_start < at {
        return Err(TailError::TooShort(end - footer_start));
    }
    let footer: Footer = serde_json::from_slice(&tail[(footer_start - at) as usize..len - TRAILER])
        .map_err(|e| TailError::Bad(format!("the bundle's footer is unreadable: {e}")))?;
    let hot_len: u64 = footer.hot.iter().map(|(_, start, end)| end.saturating_sub(*start)).sum();
    let hot_start = footer_start.checked_sub(hot_len).ok_or(TailError::Bad("the hotcache is longer than the bundle".into()))?;
    if hot_start < at {
        return Err(TailError::TooShort(end - hot_start));
    }
    for (name, &(start, end)) in &footer.files {
        if start > end || end > hot_start {
            return Err(TailError::Bad(format!("the bundle's footer puts {name} outside the bundle")));
        }
    }
    Ok((footer, hot_start))
}

/// The hotcache's copies, per file: `tail` holds them from `offset` on.
fn hot_ranges(footer: &Footer, tail: &OwnedBytes, mut offset: usize) -> Result<HashMap<PathBuf, Vec<(usize, OwnedBytes)>>, String> {
    let mut hot: HashMap<PathBuf, Vec<(usize, OwnedBytes)>> = HashMap::new();
    for (file, start, end) in &footer.hot {
        let len = (end - start) as usize;
        let file_len = footer.files.get(file).map(|(s, e)| e - s).ok_or_else(|| format!("the hotcache names an unknown file {file}"))?;
        if *end > file_len || offset + len > tail.len() {
            return Err(format!("the hotcache's range {start}..{end} of {file} is outside it"));
        }
        hot.entry(PathBuf::from(file)).or_default().push((*start as usize, tail.slice(offset..offset + len)));
        offset += len;
    }
    Ok(hot)
}

/// Sorts `ranges` and merges those closer than `gap`.
fn merge(mut ranges: Vec<Range<usize>>, gap: usize) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end + gap => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[derive(Debug)]
enum Source {
    /// The whole bundle: every read is a slice, nothing to warm.
    Memory(OwnedBytes),
    Remote(Arc<dyn RangeSource>),
}

type Slices = HashMap<PathBuf, Vec<(usize, OwnedBytes)>>;

/// The bundle's inner files and the bytes of them at hand.
#[derive(Debug)]
struct Files {
    /// Inner file → its range in the bundle.
    files: HashMap<PathBuf, Range<u64>>,
    hot: Slices,
    source: Source,
    /// What this bundle fetched since it opened, kept while it lives.
    warmed: Mutex<Slices>,
    /// Synchronous reads of bytes not at hand, since the last search round.
    missed: Mutex<Vec<(PathBuf, Range<usize>)>>,
    /// While building the hotcache: every read.
    /// Whether reads are recorded: only while building the hotcache, so searches never
    /// take this lock.
    record: bool,
    recorded: Mutex<Vec<(PathBuf, Range<usize>)>>,
}

fn find(slices: &[(usize, OwnedBytes)], range: &Range<usize>) -> Option<OwnedBytes> {
    slices
        .iter()
        .find(|(start, bytes)| *start <= range.start && range.end <= start + bytes.len())
        .map(|(start, bytes)| bytes.slice(range.start - start..range.end - start))
}

impl Files {
    fn file_range(&self, path: &Path) -> Result<Range<u64>, OpenReadError> {
        self.files.get(path).cloned().ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))
    }

    /// The bytes `range` of `path` if at hand: in memory, the hotcache, or warmed.
    fn at_hand(&self, path: &Path, in_bundle: &Range<u64>, range: &Range<usize>) -> Option<OwnedBytes> {
        if self.record {
            self.recorded.lock().expect("bundle lock poisoned").push((path.to_path_buf(), range.clone()));
        }
        match &self.source {
            Source::Memory(bytes) => {
                let start = in_bundle.start as usize;
                return Some(bytes.slice(start + range.start..start + range.end));
            }
            Source::Remote(_) => {}
        }
        if let Some(bytes) = self.hot.get(path).and_then(|slices| find(slices, range)) {
            return Some(bytes);
        }
        self.warmed.lock().expect("bundle lock poisoned").get(path).and_then(|slices| find(slices, range))
    }

    async fn fetch_one(&self, path: &Path, in_bundle: &Range<u64>, range: Range<usize>) -> io::Result<OwnedBytes> {
        let Source::Remote(source) = &self.source else { unreachable!("in-memory bytes are always at hand") };
        let start = in_bundle.start + range.start as u64;
        let bytes = source.read(start..start + range.len() as u64).await?;
        if bytes.len() != range.len() {
            return Err(out_of_bundle());
        }
        let bytes = OwnedBytes::new(bytes.to_vec());
        self.warmed.lock().expect("bundle lock poisoned").entry(path.to_path_buf()).or_default().push((range.start, bytes.clone()));
        Ok(bytes)
    }

    /// Fetches missed ranges, merging neighbours, all at once.
    async fn fetch(&self, missed: Vec<(PathBuf, Range<usize>)>) -> io::Result<()> {
        let mut by_file: HashMap<PathBuf, Vec<Range<usize>>> = HashMap::new();
        for (path, range) in missed {
            by_file.entry(path).or_default().push(range);
        }
        let mut reads = Vec::new();
        for (path, ranges) in by_file {
            let in_bundle = self.file_range(&path).map_err(io::Error::other)?;
            for range in merge(ranges, MERGE_GAP) {
                let range = range.start..range.end.min((in_bundle.end - in_bundle.start) as usize);
                reads.push((path.clone(), in_bundle.clone(), range));
            }
        }
        let fetches: Vec<_> = reads.into_iter().map(|(path, in_bundle, range)| async move { self.fetch_one(&path, &in_bundle, range).await }).collect();
        futures::stream::iter(fetches)
            .buffer_unordered(WARM_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
    }
}

/// A read-only tantivy directory over a bundle's inner files.
#[derive(Debug, Clone)]
struct BundleDirectory {
    files: Arc<Files>,
}

/// One inner file.
#[derive(Debug)]
struct BundleFile {
    files: Arc<Files>,
    path: PathBuf,
    /// Its range in the bundle.
    in_bundle: Range<u64>,
}

impl HasLen for BundleFile {
    fn len(&self) -> usize {
        (self.in_bundle.end - self.in_bundle.start) as usize
    }
}

#[async_trait]
impl FileHandle for BundleFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if let Some(bytes) = self.files.at_hand(&self.path, &self.in_bundle, &range) {
            return Ok(bytes);
        }
        self.files.missed.lock().expect("bundle lock poisoned").push((self.path.clone(), range.clone()));
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: bytes {range:?} were not fetched before the search", self.path.display()),
        ))
    }

    async fn read_bytes_async(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if let Some(bytes) = self.files.at_hand(&self.path, &self.in_bundle, &range) {
            return Ok(bytes);
        }
        self.files.fetch_one(&self.path, &self.in_bundle, range).await
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "an index bundle is read-only")
}

impl Directory for BundleDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let in_bundle = self.files.file_range(path)?;
        Ok(Arc::new(BundleFile { files: Arc::clone(&self.files), path: path.to_path_buf(), in_bundle }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError { io_error: Arc::new(read_only()), filepath: path.to_path_buf() })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.files.files.contains_key(path))
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::IoError { io_error: Arc::new(read_only()), filepath: path.to_path_buf() })
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let handle = self.get_file_handle(path)?;
        let bytes = handle
            .read_bytes(0..handle.len())
            .map_err(|e| OpenReadError::IoError { io_error: Arc::new(e), filepath: path.to_path_buf() })?;
        Ok(bytes.as_slice().to_vec())
    }

    fn atomic_write(&self, _path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_directory(&self) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_merge_within_the_gap() {
        assert_eq!(merge(vec![10..20, 0..5, 22..30, 100..110], 2), vec![0..5, 10..30, 100..110]);
        assert_eq!(merge(vec![0..5, 5..6], 0), vec![0..6]);
        assert_eq!(merge(vec![], 10), Vec::<Range<usize>>::new());
    }
}
