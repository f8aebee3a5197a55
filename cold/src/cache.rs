//! The bounded on-disk cache of index bundles (`cold.cache_dir`, `cold.cache_size`):
//! a bundle is fetched whole from the object store once, kept as one file, and the least
//! recently used ones are evicted past the size bound.
//!
//! A download goes to a temporary file renamed into place, so a crash leaves either
//! nothing or a whole bundle (and the temporary file, removed at the next start).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tierlog_core::metrics::{Counter, Metrics};

use crate::error::{ColdError, Result};
use crate::store::ColdStore;

const TMP_SUFFIX: &str = ".tmp";

/// Cached bundles on local disk, bounded by size, least recently used out first.
#[derive(Debug)]
pub struct BundleCache {
    dir: PathBuf,
    capacity: u64,
    store: ColdStore,
    state: Mutex<CacheState>,
    /// Names temporary files apart when two queries fetch one bundle at once.
    downloads: AtomicU64,
    hits: Arc<Counter>,
    misses: Arc<Counter>,
    evictions: Arc<Counter>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// File name → its size and when it was last used (a logical clock).
    entries: HashMap<String, Entry>,
    used: u64,
    clock: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    bytes: u64,
    last_used: u64,
}

impl BundleCache {
    /// Opens the cache in `dir`, taking in the bundles a previous run left (most recently
    /// modified counted as most recently used) and removing interrupted downloads.
    pub fn open(dir: &Path, capacity: u64, store: ColdStore, metrics: &Metrics) -> Result<BundleCache> {
        let io_err = |source| ColdError::CreateDir { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            if name.ends_with(TMP_SUFFIX) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            found.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), name, meta.len()));
        }
        found.sort();
        let mut state = CacheState::default();
        for (_, name, bytes) in found {
            state.clock += 1;
            state.used += bytes;
            state.entries.insert(name, Entry { bytes, last_used: state.clock });
        }
        let cache = BundleCache {
            dir: dir.to_path_buf(),
            capacity,
            store,
            state: Mutex::new(state),
            downloads: AtomicU64::new(0),
            hits: metrics.counter("tierlog_cold_cache_hits_total", "Index bundles read from the local cache.", &[]),
            misses: metrics.counter("tierlog_cold_cache_misses_total", "Index bundles fetched from the object store.", &[]),
            evictions: metrics.counter("tierlog_cold_cache_evictions_total", "Index bundles evicted from the local cache.", &[]),
        };
        let evicted = cache.lock().evict(cache.capacity);
        cache.remove_files(&evicted);
        Ok(cache)
    }

    /// The bytes of the bundle at `key` (a full key, as the table's index tag holds it):
    /// from the cache, or fetched and kept. A bundle larger than the whole cache is
    /// served without being kept.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let name = file_name(key);
        let path = self.dir.join(&name);
        if self.touch(&name) {
            match tokio::fs::read(&path).await {
                Ok(bytes) => {
                    self.hits.inc();
                    return Ok(bytes);
                }
                // Evicted by another query meanwhile, or damaged: fetch it again.
                Err(e) => {
                    tracing::debug!(key, error = %e, "cached bundle unreadable; fetching it again");
                    self.forget(&name);
                }
            }
        }
        self.misses.inc();
        let bytes = self.store.read(&object_store::path::Path::from(key)).await?;
        let size = bytes.len() as u64;
        if size <= self.capacity {
            let tmp = self.dir.join(format!("{name}.{}{TMP_SUFFIX}", self.downloads.fetch_add(1, Ordering::Relaxed)));
            // The rename, the insert and the evictions' removals happen under the lock:
            // otherwise a query evicting this name could delete the file another one
            // just renamed into place, and the cache would count bytes it does not hold.
            let written = match tokio::fs::write(&tmp, &bytes).await {
                Ok(()) => {
                    let mut state = self.lock();
                    std::fs::rename(&tmp, &path).map(|()| {
                        let evicted = state.insert(name, size, self.capacity);
                        self.remove_files(&evicted);
                    })
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                // A full or read-only disk makes the cache useless, not the query.
                tracing::warn!(dir = %self.dir.display(), key, error = %e, "cannot keep a bundle in the cache");
                let _ = tokio::fs::remove_file(&tmp).await;
            }
        }
        Ok(bytes)
    }

    /// Bytes the cached bundles take.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.lock().used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().expect("bundle cache lock poisoned")
    }

    /// Marks `name` used; whether it is cached.
    fn touch(&self, name: &str) -> bool {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        state.entries.get_mut(name).map(|e| e.last_used = clock).is_some()
    }

    fn forget(&self, name: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.remove(name) {
            state.used -= entry.bytes;
        }
    }

    fn remove_files(&self, names: &[String]) {
        for name in names {
            self.evictions.inc();
            if let Err(e) = std::fs::remove_file(self.dir.join(name))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %self.dir.display(), file = name, error = %e, "cannot remove an evicted bundle");
            }
        }
    }
}

impl CacheState {
    /// Counts `name` in (once, however many queries fetched it); the names evicted to
    /// stay within `capacity`.
    fn insert(&mut self, name: String, bytes: u64, capacity: u64) -> Vec<String> {
        self.clock += 1;
        let entry = Entry { bytes, last_used: self.clock };
        if let Some(old) = self.entries.insert(name.clone(), entry) {
            self.used -= old.bytes;
        }
        self.used += bytes;
        // The new bundle is the most recent, and fits: it is evicted last, never.
        self.evict(capacity)
    }

    /// Drops least recently used entries until `used <= capacity`.
    fn evict(&mut self, capacity: u64) -> Vec<String> {
        let mut evicted = Vec::new();
        while self.used > capacity {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(n, _)| n.clone()) else { break };
            let entry = self.entries.remove(&oldest).expect("just found");
            self.used -= entry.bytes;
            evicted.push(oldest);
        }
        evicted
    }
}

/// One flat file name per key: every byte outside `[A-Za-z0-9_-]` and a leading dot
/// escaped, so no key can name a path outside the cache folder.
fn file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, b) in key.bytes().enumerate() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => out.push(b as char),
            b'.' if i > 0 => out.push('.'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_flat_names() {
        assert_eq!(file_name("tierlog/bundles/web/g-1.bundle"), "tierlog%2Fbundles%2Fweb%2Fg-1.bundle");
        assert_eq!(file_name("../x"), "%2E.%2Fx");
        assert!(!file_name("a/../../b").contains('/'));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut state = CacheState::default();
        assert!(state.insert("a".into(), 40, 100).is_empty());
        assert!(state.insert("b".into(), 40, 100).is_empty());
        state.clock += 1;
        state.entries.get_mut("a").unwrap().last_used = state.clock; // a used again
        assert_eq!(state.insert("c".into(), 40, 100), vec!["b".to_string()]);
        assert_eq!(state.used, 80);
        // The same bundle fetched twice is counted once.
        assert!(state.insert("c".into(), 40, 100).is_empty());
        assert_eq!(state.used, 80);
    }

    /// Many queries at once on a cache smaller than the bundles they read: each gets
    /// the right bytes, the cache stays within its bound, and a restart keeps what fits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_stay_within_the_bound() {
        let (root, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let config = tierlog_core::config::ColdConfig {
            url: tierlog_core::config::ColdLocation::Local { root: root.path().to_path_buf() },
            ..Default::default()
        };
        let store = ColdStore::open(&config).unwrap();
        let body = |i: usize| vec![i as u8; 1000 + i];
        for i in 0..8 {
            store.put(&store.key(&format!("bundles/b{i}.bundle")), body(i)).await.unwrap();
        }
        let cache = Arc::new(BundleCache::open(cache_dir.path(), 3500, store.clone(), &Metrics::new()).unwrap());
        let mut tasks = Vec::new();
        for round in 0..64 {
            let cache = Arc::clone(&cache);
            tasks.push(tokio::spawn(async move {
                let i = (round * 5) % 8;
                let got = cache.get(&format!("bundles/b{i}.bundle")).await.unwrap();
                assert_eq!(got, body(i), "bundle {i}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(cache.used() <= 3500, "cache holds {} bytes", cache.used());
        let on_disk: u64 = std::fs::read_dir(cache_dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(on_disk <= 3500, "{on_disk} bytes on disk");
        assert!(cache.misses.get() >= 8, "misses {}", cache.misses.get());
        // A cyclic pattern over more bundles than fit hits only by chance; a repeat does.
        cache.get("bundles/b0.bundle").await.unwrap();
        let hits = cache.hits.get();
        assert_eq!(cache.get("bundles/b0.bundle").await.unwrap(), body(0));
        assert_eq!(cache.hits.get(), hits + 1, "the second read of a bundle is a hit");
        // Too big for the whole cache: served, not kept.
        store.put(&store.key("bundles/huge.bundle"), vec![7; 5000]).await.unwrap();
        assert_eq!(cache.get("bundles/huge.bundle").await.unwrap().len(), 5000);
        assert!(!cache_dir.path().join(file_name("bundles/huge.bundle")).exists());
        drop(cache);
        std::fs::write(cache_dir.path().join("x.7.tmp"), b"half a download").unwrap();
        let reopened = BundleCache::open(cache_dir.path(), 2200, store, &Metrics::new()).unwrap();
        assert!(reopened.used() <= 2200 && reopened.used() > 0, "reopened holds {}", reopened.used());
        assert!(!cache_dir.path().join("x.7.tmp").exists(), "interrupted downloads are removed");
    }
}
