//! What queries need of the cold tier: per stream, the live segments of one pinned Delta
//! version, and their index bundles through the on-disk cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use object_store::path::Path;
use tantivy::directory::OwnedBytes;
use tierlog_core::config::ColdConfig;
use tierlog_core::metrics::Metrics;

use crate::bundle::Bundle;
use crate::cache::BundleCache;
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
    cache: BundleCache,
}

impl ColdReader {
    pub fn new(store: ColdStore, config: &ColdConfig, metrics: &Metrics) -> Result<ColdReader> {
        let dir = config.cache_dir.clone().unwrap_or_else(|| "cache".into());
        let cache = BundleCache::open(&dir, config.cache_size.0, store.clone(), metrics)?;
        Ok(ColdReader { store, tables: Mutex::default(), cache })
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

    /// The index bundle of `file`, opened from the cache (fetched into it on a miss).
    pub async fn bundle(&self, stream: &str, file: &SegmentFile) -> Result<Bundle> {
        let bad = |reason: String| ColdError::Segment { stream: stream.to_string(), segment: file.id.clone(), reason };
        let key = file.index_key.as_deref().ok_or_else(|| bad("its add action names no index bundle".into()))?;
        let bytes = self.cache.get(key).await?;
        let bundle = Bundle::open(OwnedBytes::new(bytes)).map_err(|e| bad(format!("bundle {key}: {e}")))?;
        if bundle.rows() != file.rows {
            return Err(bad(format!("bundle {key} indexes {} rows, its Parquet file holds {}", bundle.rows(), file.rows)));
        }
        Ok(bundle)
    }

    /// The object key of a segment's Parquet file in [`ColdReader::object_store`].
    pub fn data_key(&self, stream: &str, file: &SegmentFile) -> Path {
        self.store.key(&format!("tables/{stream}/{}", file.path))
    }

    /// The store that [`ColdReader::data_key`] keys are in.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.object_store()
    }

    /// The configured location, for errors and plans.
    pub fn url(&self) -> &str {
        self.store.url()
    }
}
