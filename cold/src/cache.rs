//! The cold tier's caches of immutable bytes, each bounded by size, each with hit, miss
//! and eviction counters and a gauge of the bytes it holds:
//! - `metadata` (memory, `cold.metadata_cache_size`): bundle tails, the footer and
//!   hotcache every search of a segment opens with. A pool of its own, so a large scan
//!   cannot evict it;
//! - `memory` (`cold.memory_cache_size`): index ranges searches fetched;
//! - `disk` (`cold.cache_dir`, `cold.cache_size`): both kinds, kept across restarts.
//!
//! Objects in the cold store are never rewritten under the same key, so a cached range
//! never goes stale. The memory tiers are moka caches (TinyLFU admission, LRU eviction:
//! a range read once by a scan does not push out one read by every query); the disk tier
//! is a folder of files with its own LRU, behind the same [`ByteCache`] trait.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use moka::notification::RemovalCause;
use tierlog_core::config::ColdConfig;
use tierlog_core::metrics::{Counter, Gauge, Metrics};

use crate::error::{ColdError, Result};

const TMP_SUFFIX: &str = ".tmp";

/// A cache of immutable byte ranges, bounded by bytes.
#[async_trait]
pub trait ByteCache: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Option<Bytes>;
    /// Keeps `bytes` if it can; a cache may decline (too big, not admitted, disk full).
    async fn put(&self, key: &str, bytes: Bytes);
    /// Bytes held now.
    fn used(&self) -> u64;
}

/// What a range is, which decides the memory tier it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bundle's tail: footer and hotcache.
    Metadata,
    /// Anything a search or scan fetched.
    Data,
}

/// Counters of one tier.
#[derive(Debug)]
struct TierMetrics {
    hits: Arc<Counter>,
    misses: Arc<Counter>,
    evictions: Arc<Counter>,
    bytes: Arc<Gauge>,
}

impl TierMetrics {
    fn new(metrics: &Metrics, tier: &str) -> TierMetrics {
        let l = [("tier", tier)];
        TierMetrics {
            hits: metrics.counter("tierlog_cold_cache_hits_total", "Cold byte ranges found in a cache tier.", &l),
            misses: metrics.counter("tierlog_cold_cache_misses_total", "Cold byte ranges a cache tier did not hold.", &l),
            evictions: metrics.counter("tierlog_cold_cache_evictions_total", "Cold byte ranges evicted from a cache tier for room.", &l),
            bytes: metrics.gauge("tierlog_cold_cache_bytes", "Bytes a cold cache tier holds.", &l),
        }
    }
}

/// The three tiers, looked up memory first, then disk, then fetched.
#[derive(Debug)]
pub struct ColdCache {
    metadata: MemoryCache,
    memory: MemoryCache,
    disk: DiskCache,
    metrics: [TierMetrics; 3],
}

impl ColdCache {
    pub fn open(config: &ColdConfig, metrics: &Metrics) -> Result<ColdCache> {
        let dir = config.cache_dir.clone().unwrap_or_else(|| "cache".into());
        let tiers = [TierMetrics::new(metrics, "metadata"), TierMetrics::new(metrics, "memory"), TierMetrics::new(metrics, "disk")];
        Ok(ColdCache {
            metadata: MemoryCache::new(config.metadata_cache_size.0, Arc::clone(&tiers[0].evictions)),
            memory: MemoryCache::new(config.memory_cache_size.0, Arc::clone(&tiers[1].evictions)),
            disk: DiskCache::open(&dir, config.cache_size.0, Arc::clone(&tiers[2].evictions))?,
            metrics: tiers,
        })
    }

    fn memory_tier(&self, kind: Kind) -> (&MemoryCache, &TierMetrics) {
        match kind {
            Kind::Metadata => (&self.metadata, &self.metrics[0]),
            Kind::Data => (&self.memory, &self.metrics[1]),
        }
    }

    /// The bytes cached under `key` in any tier (a disk hit is kept in memory too).
    pub async fn get(&self, kind: Kind, key: &str) -> Option<Bytes> {
        let (memory, memory_metrics) = self.memory_tier(kind);
        if let Some(bytes) = memory.get(key).await {
            memory_metrics.hits.inc();
            return Some(bytes);
        }
        memory_metrics.misses.inc();
        let disk_metrics = &self.metrics[2];
        let Some(bytes) = self.disk.get(key).await else {
            disk_metrics.misses.inc();
            return None;
        };
        disk_metrics.hits.inc();
        memory.put(key, bytes.clone()).await;
        self.update_gauges();
        Some(bytes)
    }

    /// Keeps `bytes` under `key` in the memory tier of `kind` and on disk.
    pub async fn put(&self, kind: Kind, key: &str, bytes: Bytes) {
        self.memory_tier(kind).0.put(key, bytes.clone()).await;
        self.disk.put(key, bytes).await;
        self.update_gauges();
    }

    /// The bytes cached under `key`, or those `fetch` returns, then kept.
    pub async fn get_or_fetch<F, E>(&self, kind: Kind, key: &str, fetch: F) -> Result<Bytes, E>
    where
        F: Future<Output = Result<Bytes, E>>,
    {
        if let Some(bytes) = self.get(kind, key).await {
            return Ok(bytes);
        }
        let bytes = fetch.await?;
        self.put(kind, key, bytes.clone()).await;
        Ok(bytes)
    }

    fn update_gauges(&self) {
        for (tier, metrics) in [&self.metadata as &dyn ByteCache, &self.memory, &self.disk].into_iter().zip(&self.metrics) {
            metrics.bytes.set(tier.used() as f64);
        }
    }

    /// Bytes each tier holds: metadata, memory, disk.
    #[cfg(test)]
    fn used(&self) -> [u64; 3] {
        [self.metadata.used(), self.memory.used(), self.disk.used()]
    }
}

/// A memory tier: a moka cache weighed in bytes.
pub struct MemoryCache {
    cache: moka::sync::Cache<String, Bytes>,
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache").field("bytes", &self.cache.weighted_size()).finish()
    }
}

impl MemoryCache {
    pub fn new(capacity: u64, evictions: Arc<Counter>) -> MemoryCache {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|key: &String, value: &Bytes| u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX))
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        MemoryCache { cache }
    }
}

#[async_trait]
impl ByteCache for MemoryCache {
    async fn get(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key)
    }

    async fn put(&self, key: &str, bytes: Bytes) {
        self.cache.insert(key.to_string(), bytes);
    }

    /// Evictions moka has queued are applied first, so this is what it really holds.
    fn used(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

/// The disk tier: one file per range in `cold.cache_dir`, least recently used out
/// first. A write goes to a temporary file renamed into place, so a crash leaves either
/// nothing or a whole range (and the temporary file, removed at the next start).
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    capacity: u64,
    state: Mutex<DiskState>,
    /// Names temporary files apart when two queries write one range at once.
    writes: AtomicU64,
    evictions: Arc<Counter>,
}

#[derive(Debug, Default)]
struct DiskState {
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

impl DiskCache {
    /// Opens the cache in `dir`, taking in the files a previous run left (most recently
    /// modified counted as most recently used) and removing interrupted writes.
    pub fn open(dir: &Path, capacity: u64, evictions: Arc<Counter>) -> Result<DiskCache> {
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
        let mut state = DiskState::default();
        for (_, name, bytes) in found {
            state.clock += 1;
            state.used += bytes;
            state.entries.insert(name, Entry { bytes, last_used: state.clock });
        }
        let cache = DiskCache { dir: dir.to_path_buf(), capacity, state: Mutex::new(state), writes: AtomicU64::new(0), evictions };
        let evicted = cache.lock().evict(cache.capacity);
        cache.remove_files(&evicted);
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().expect("disk cache lock poisoned")
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
                tracing::warn!(dir = %self.dir.display(), file = name, error = %e, "cannot remove an evicted cache file");
            }
        }
    }
}

#[async_trait]
impl ByteCache for DiskCache {
    async fn get(&self, key: &str) -> Option<Bytes> {
        let name = file_name(key);
        if !self.touch(&name) {
            return None;
        }
        match tokio::fs::read(self.dir.join(&name)).await {
            Ok(bytes) => Some(Bytes::from(bytes)),
            // Evicted by another query meanwhile, or damaged: fetched again.
            Err(e) => {
                tracing::debug!(key, error = %e, "cached range unreadable; fetching it again");
                self.forget(&name);
                None
            }
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) {
        let size = bytes.len() as u64;
        if size > self.capacity {
            return;
        }
        let name = file_name(key);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.{}{TMP_SUFFIX}", self.writes.fetch_add(1, Ordering::Relaxed)));
        // The rename, the insert and the evictions' removals happen under the lock:
        // otherwise a query evicting this name could delete the file another one just
        // renamed into place, and the cache would count bytes it does not hold.
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
            tracing::warn!(dir = %self.dir.display(), key, error = %e, "cannot keep a range in the disk cache");
            let _ = tokio::fs::remove_file(&tmp).await;
        }
    }

    fn used(&self) -> u64 {
        self.lock().used
    }
}

impl DiskState {
    /// Counts `name` in (once, however many queries wrote it); the names evicted to stay
    /// within `capacity`.
    fn insert(&mut self, name: String, bytes: u64, capacity: u64) -> Vec<String> {
        self.clock += 1;
        let entry = Entry { bytes, last_used: self.clock };
        if let Some(old) = self.entries.insert(name.clone(), entry) {
            self.used -= old.bytes;
        }
        self.used += bytes;
        // The new range is the most recent, and fits: it is evicted last, never.
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
        assert_eq!(file_name("tierlog/index/web/g-1.index@0-10"), "tierlog%2Findex%2Fweb%2Fg-1.index%400-10");
        assert_eq!(file_name("../x"), "%2E.%2Fx");
        assert!(!file_name("a/../../b").contains('/'));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut state = DiskState::default();
        assert!(state.insert("a".into(), 40, 100).is_empty());
        assert!(state.insert("b".into(), 40, 100).is_empty());
        state.clock += 1;
        state.entries.get_mut("a").unwrap().last_used = state.clock; // a used again
        assert_eq!(state.insert("c".into(), 40, 100), vec!["b".to_string()]);
        assert_eq!(state.used, 80);
        // The same range written twice is counted once.
        assert!(state.insert("c".into(), 40, 100).is_empty());
        assert_eq!(state.used, 80);
    }

    fn config(dir: &Path, disk: u64, memory: u64, metadata: u64) -> ColdConfig {
        ColdConfig {
            cache_dir: Some(dir.to_path_buf()),
            cache_size: tierlog_core::units::ByteSize(disk),
            memory_cache_size: tierlog_core::units::ByteSize(memory),
            metadata_cache_size: tierlog_core::units::ByteSize(metadata),
            ..Default::default()
        }
    }

    fn body(i: usize) -> Bytes {
        Bytes::from(vec![i as u8; 1000 + i])
    }

    /// Many tasks at once on tiers smaller than what they read: each gets the right
    /// bytes, every fetch is counted, and no tier holds more than its bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_stay_within_every_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ColdCache::open(&config(dir.path(), 5000, 3000, 2500), &Metrics::new()).unwrap());
        let fetched = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for round in 0..200 {
            let (cache, fetched) = (Arc::clone(&cache), Arc::clone(&fetched));
            tasks.push(tokio::spawn(async move {
                let i = (round * 7) % 16;
                let kind = if i % 4 == 0 { Kind::Metadata } else { Kind::Data };
                let got = cache
                    .get_or_fetch(kind, &format!("k{i}"), async {
                        fetched.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, ColdError>(body(i))
                    })
                    .await
                    .unwrap();
                assert_eq!(got, body(i), "range {i}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let [metadata, memory, disk] = cache.used();
        assert!(metadata <= 2500 && memory <= 3000 && disk <= 5000, "metadata {metadata}, memory {memory}, disk {disk}");
        assert!(metadata > 0 && memory > 0 && disk > 0, "every tier holds something");
        let on_disk: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(on_disk <= 5000, "{on_disk} bytes on disk");
        assert!(fetched.load(Ordering::Relaxed) >= 16, "each range was fetched at least once");
        // A repeat is a hit, not a fetch.
        let _ = cache.get_or_fetch(Kind::Data, "k1", async { Ok::<_, ColdError>(body(1)) }).await.unwrap();
        let before = fetched.load(Ordering::Relaxed);
        let again = cache
            .get_or_fetch(Kind::Data, "k1", async {
                fetched.fetch_add(1, Ordering::Relaxed);
                Ok::<_, ColdError>(body(1))
            })
            .await
            .unwrap();
        assert_eq!((again, fetched.load(Ordering::Relaxed)), (body(1), before));
    }

    /// Data ranges read once each, many times the memory tier's size, leave the
    /// metadata tier as it was: its own pool.
    #[tokio::test]
    async fn a_scan_does_not_evict_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ColdCache::open(&config(dir.path(), 1 << 20, 20_000, 20_000), &Metrics::new()).unwrap();
        for i in 0..10 {
            cache.get_or_fetch(Kind::Metadata, &format!("tail{i}"), async move { Ok::<_, ColdError>(body(i)) }).await.unwrap();
        }
        for i in 0..500 {
            cache.get_or_fetch(Kind::Data, &format!("page{i}"), async move { Ok::<_, ColdError>(body(i % 50)) }).await.unwrap();
        }
        let hits = cache.metrics[0].hits.get();
        for i in 0..10 {
            cache.get_or_fetch(Kind::Metadata, &format!("tail{i}"), async { Err::<Bytes, _>(format!("tail {i} was evicted")) }).await.unwrap();
        }
        assert_eq!(cache.metrics[0].hits.get(), hits + 10, "every tail is a metadata hit");
        assert!(cache.used()[1] <= 20_000, "the memory tier stayed in bounds: {}", cache.used()[1]);
    }

    /// Too big for the disk tier: served, not kept; a restart keeps what fits and drops
    /// interrupted writes.
    #[tokio::test]
    async fn the_disk_tier_survives_a_restart_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let evictions = Arc::new(Counter::default());
        let disk = DiskCache::open(dir.path(), 3500, Arc::clone(&evictions)).unwrap();
        for i in 0..8 {
            disk.put(&format!("r{i}"), body(i)).await;
        }
        assert!(disk.used() <= 3500);
        assert!(evictions.get() >= 5, "evictions {}", evictions.get());
        disk.put("huge", Bytes::from(vec![7; 5000])).await;
        assert!(disk.get("huge").await.is_none());
        assert_eq!(disk.get("r7").await, Some(body(7)));
        drop(disk);
        std::fs::write(dir.path().join("x.7.tmp"), b"half a write").unwrap();
        let reopened = DiskCache::open(dir.path(), 2200, evictions).unwrap();
        assert!(reopened.used() <= 2200 && reopened.used() > 0, "reopened holds {}", reopened.used());
        assert!(!dir.path().join("x.7.tmp").exists(), "interrupted writes are removed");
    }
}
