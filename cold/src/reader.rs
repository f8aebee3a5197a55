//! What queries need of the cold tier: per stream, the live segments of one pinned Delta
//! version, and their index bundles, opened from their tails and read in byte ranges
//! through the caches (`cache.rs`).
//!
//! Every read from the store on the query path has a deadline and takes a permit of the
//! node's limit, so a slow store slows queries down without piling up requests; a
//! cancelled query drops its futures, and with them its requests in flight.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use tierlog_core::config::ColdConfig;
use tierlog_core::metrics::Metrics;
use tokio::sync::Semaphore;

use crate::bundle_reader::{Bundle, RangeSource};
use crate::cache::{ColdCache, Kind};
use crate::cached_store::CachedStore;
use crate::error::{ColdError, Result};
use crate::store::ColdStore;
use crate::table::{ColdTable, SegmentFile};

/// The live segments of one version of a stream's table, as a query pins them.
#[derive(Debug, Clone, Default)]
pub struct ColdSnapshot {
    /// `None`: the table does not exist yet.
    pub version: Option<u64>,
    pub files: Vec<SegmentFile>,
}

/// Reads stream tables and bundles for queries; one per node, shared by every query.
#[derive(Debug)]
pub struct ColdReader {
    store: ColdStore,
    /// Per stream, its table handle, refreshed at each pin (`None` until it exists).
    tables: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<ColdTable>>>>>,
    cache: Arc<ColdCache>,
    /// Reads from the store in flight on this node, all queries together.
    permits: Arc<Semaphore>,
}

/// Requests to the store in flight per node on the query path.
const NODE_READS_IN_FLIGHT: usize = 64;
/// A read from the store that takes longer fails the query that made it.
const READ_DEADLINE: Duration = Duration::from_secs(20);

impl ColdReader {
    pub fn new(store: ColdStore, config: &ColdConfig, metrics: &Metrics) -> Result<ColdReader> {
        let cache = Arc::new(ColdCache::open(config, metrics)?);
        Ok(ColdReader { store, tables: Mutex::default(), cache, permits: Arc::new(Semaphore::new(NODE_READS_IN_FLIGHT)) })
    }

    /// The stream's newest table version and its live segments, read now.
    pub async fn pin(&self, stream: &str) -> Result<ColdSnapshot> {
        let handle = {
            let mut tables = self.tables.lock().expect("cold reader lock poisoned");
            Arc::clone(tables.entry(stream.to_string()).or_default())
        };
        let mut table = handle.lock().await;
        match table.as_mut() {
            Some(table) => table.refresh().await?,
            None => *table = ColdTable::open_existing(&self.store, stream).await?,
        }
        match table.as_ref() {
            Some(table) => Ok(ColdSnapshot { version: table.version(), files: table.segment_files()? }),
            None => Ok(ColdSnapshot::default()),
        }
    }

    /// The index bundle of `file`, opened with one read of its tail; what a search then
    /// reads of it comes in ranges, through the caches.
    pub async fn bundle(&self, stream: &str, file: &SegmentFile) -> Result<Bundle> {
        let bad = |reason: String| ColdError::Segment { stream: stream.to_string(), segment: file.id.clone(), reason };
        let key = file.index_key.as_deref().ok_or_else(|| bad("its add action names no index bundle".into()))?;
        let source = Arc::new(RemoteBundle {
            store: self.store.clone(),
            key: Path::from(key),
            cache: Arc::clone(&self.cache),
            permits: Arc::clone(&self.permits),
        });
        let bundle = Bundle::open_remote(source, file.index_tail).await.map_err(|e| bad(format!("bundle {key}: {e}")))?;
        if bundle.rows() != file.rows {
            return Err(bad(format!("bundle {key} indexes {} rows, its Parquet file holds {}", bundle.rows(), file.rows)));
        }
        Ok(bundle)
    }

    /// The object key of a segment's Parquet file in [`ColdReader::object_store`].
    pub fn data_key(&self, stream: &str, file: &SegmentFile) -> Path {
        self.store.key(&format!("tables/{stream}/{}", file.path))
    }

    /// The store that [`ColdReader::data_key`] keys are in; its ranged reads go
    /// through the caches.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(CachedStore::new(self.store.object_store(), Arc::clone(&self.cache)))
    }

    /// The configured location, for errors and plans.
    pub fn url(&self) -> &str {
        self.store.url()
    }
}

/// A bundle in the store, read through the caches.
#[derive(Debug)]
struct RemoteBundle {
    store: ColdStore,
    key: Path,
    cache: Arc<ColdCache>,
    permits: Arc<Semaphore>,
}

impl RemoteBundle {
    /// Runs one store read under the node's limit and the deadline.
    async fn limited<T>(&self, read: impl Future<Output = Result<T>>) -> Result<T> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        tokio::time::timeout(READ_DEADLINE, read)
            .await
            .unwrap_or_else(|_| Err(ColdError::Timeout { url: format!("{} ({})", self.store.url(), self.key), seconds: READ_DEADLINE.as_secs() }))
    }
}

#[async_trait]
impl RangeSource for RemoteBundle {
    async fn read(&self, range: Range<u64>) -> io::Result<Bytes> {
        let cache_key = format!("{}@{}-{}", self.key, range.start, range.end);
        self.cache
            .get_or_fetch(Kind::Data, &cache_key, self.limited(self.store.read_range(&self.key, range)))
            .await
            .map_err(io::Error::other)
    }

    /// Cached with where the tail starts in front: `[start: u64 LE][bytes]`.
    async fn read_tail(&self, len: u64) -> io::Result<(u64, Bytes)> {
        let cache_key = format!("{}@tail-{len}", self.key);
        let fetch = async {
            let (start, bytes) = self.limited(self.store.read_tail(&self.key, len)).await?;
            let mut framed = Vec::with_capacity(8 + bytes.len());
            framed.extend_from_slice(&start.to_le_bytes());
            framed.extend_from_slice(&bytes);
            Ok::<_, ColdError>(Bytes::from(framed))
        };
        let framed = self.cache.get_or_fetch(Kind::Metadata, &cache_key, fetch).await.map_err(io::Error::other)?;
        if framed.len() < 8 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{cache_key}: a cached tail without its offset")));
        }
        let start = u64::from_le_bytes(framed[..8].try_into().expect("8 bytes"));
        Ok((start, framed.slice(8..)))
    }
}
