//! The object store behind the cold tier, opened from the `[cold]` config.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use futures::{StreamExt, TryStreamExt};
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use tierlog_core::config::{ColdConfig, ColdLocation};
use tierlog_core::metrics::Metrics;

use crate::error::{ColdError, Result};
use crate::metered::MeteredStore;

/// Objects larger than this are uploaded in parts of [`PART_SIZE`].
pub const MULTIPART_ABOVE: usize = 16 << 20;
const PART_SIZE: usize = 8 << 20;
/// Parts of one object uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// An object store rooted at the configured location. Keys given to it are relative to
/// the configured prefix.
#[derive(Debug, Clone)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    location: ColdLocation,
}

impl ColdStore {
    /// Opens the store; does no I/O for S3 (see [`ColdStore::probe`]) but creates the
    /// root folder for `file://`.
    pub fn open(config: &ColdConfig) -> Result<ColdStore> {
        let url = config.url.to_string();
        let open_err = |source| ColdError::Open { url: url.clone(), source };
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match &config.url {
            ColdLocation::Local { root } => {
                std::fs::create_dir_all(root).map_err(|source| ColdError::CreateDir {
                    path: root.display().to_string(),
                    source,
                })?;
                (Arc::new(LocalFileSystem::new_with_prefix(root).map_err(open_err)?), Path::default())
            }
            ColdLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(config.region.as_deref().unwrap_or("us-east-1"))
                    .with_allow_http(config.allow_http)
                    .with_retry(RetryConfig {
                        max_retries: 10,
                        retry_timeout: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(60))
                            .with_allow_http(config.allow_http),
                    );
                if let Some(endpoint) = &config.endpoint {
                    // S3-compatible servers serve buckets by path, not by host name.
                    builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
                }
                if let Some(key) = &config.access_key_id {
                    builder = builder.with_access_key_id(key.expose());
                }
                if let Some(secret) = &config.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose());
                }
                if let Some(token) = &config.session_token {
                    builder = builder.with_token(token.expose());
                }
                (Arc::new(builder.build().map_err(open_err)?), Path::from(prefix.as_str()))
            }
        };
        Ok(ColdStore { store, prefix, url, location: config.url.clone() })
    }

    /// The same store, its requests counted in `metrics` (see `metered.rs`).
    pub fn with_metrics(self, metrics: &Metrics) -> ColdStore {
        ColdStore { store: Arc::new(MeteredStore::new(self.store, metrics)), ..self }
    }

    /// The URL of `key` (a folder under the prefix) for deltalake, and for S3 the
    /// bucket-level store it must write through (ours: our retries, endpoint and keys).
    pub(crate) fn location_of(&self, key: &str) -> Result<(url::Url, Option<Arc<dyn ObjectStore>>)> {
        let bad = |e: &dyn std::fmt::Display| ColdError::Location { url: self.url.clone(), reason: e.to_string() };
        match &self.location {
            ColdLocation::Local { root } => {
                let folder = std::path::absolute(root.join(key)).map_err(|e| bad(&e))?;
                std::fs::create_dir_all(&folder).map_err(|source| ColdError::CreateDir { path: folder.display().to_string(), source })?;
                let url = url::Url::from_directory_path(&folder).map_err(|()| bad(&"not an absolute path"))?;
                Ok((url, None))
            }
            ColdLocation::S3 { bucket, .. } => {
                let url = url::Url::parse(&format!("s3://{bucket}/{}/", self.key(key))).map_err(|e| bad(&e))?;
                Ok((url, Some(Arc::clone(&self.store))))
            }
        }
    }

    /// Reads the whole object at `key`.
    pub async fn read(&self, key: &Path) -> Result<Vec<u8>> {
        let got = self.object_op("get", key, self.store.get(key).await)?;
        self.object_op("read", key, got.bytes().await).map(|b| b.to_vec())
    }

    /// Bytes `range` of the object at `key`.
    pub async fn read_range(&self, key: &Path, range: std::ops::Range<u64>) -> Result<bytes::Bytes> {
        self.object_op("get range of", key, self.store.get_range(key, range).await)
    }

    /// The last `len` bytes of the object at `key` (all of it when shorter), and where
    /// they start.
    pub async fn read_tail(&self, key: &Path, len: u64) -> Result<(u64, bytes::Bytes)> {
        let options = GetOptions { range: Some(GetRange::Suffix(len)), ..Default::default() };
        let got = self.object_op("get tail of", key, self.store.get_opts(key, options).await)?;
        let start = got.range.start;
        Ok((start, self.object_op("read tail of", key, got.bytes().await)?))
    }

    /// Writes `bytes` at `key` (under the prefix). Above [`MULTIPART_ABOVE`] the object
    /// goes up in parts: no single huge request, and the client retries a failed part
    /// alone. A multipart upload that fails is aborted, so no parts stay behind.
    pub async fn put(&self, key: &Path, bytes: Vec<u8>) -> Result<()> {
        if bytes.len() <= MULTIPART_ABOVE {
            return self.object_op("put", key, self.store.put(key, PutPayload::from(bytes)).await).map(|_| ());
        }
        let mut upload = self.object_op("start multipart upload of", key, self.store.put_multipart(key).await)?;
        let bytes = bytes::Bytes::from(bytes);
        let parts: Vec<_> = (0..bytes.len())
            .step_by(PART_SIZE)
            .map(|start| upload.put_part(PutPayload::from(bytes.slice(start..bytes.len().min(start + PART_SIZE)))))
            .collect();
        let uploaded = futures::stream::iter(parts).buffer_unordered(PARTS_IN_FLIGHT).try_collect::<Vec<()>>().await;
        let done = match uploaded {
            Ok(_) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if done.is_err() {
            // Leave no parts behind; the caller retries the whole object.
            let _ = upload.abort().await;
        }
        self.object_op("multipart upload", key, done)
    }

    /// Every object under `prefix`: for the orphan sweep, never on the query path.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
        let listed = self.store.list(Some(prefix)).try_collect().await;
        self.object_op("list", prefix, listed)
    }

    /// Deletes the object at `key`; one already gone is not an error, so a sweep a
    /// crash cut short can simply run again.
    pub async fn delete(&self, key: &Path) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => self.object_op("delete", key, Err(e)),
        }
    }

    /// The store itself, for readers that take keys from [`ColdStore::key`] (DataFusion's
    /// Parquet scan).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The configured location, e.g. `s3://logs/tierlog`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full key of `key` under the configured prefix.
    pub fn key(&self, key: &str) -> Path {
        self.prefix.parts().chain(Path::from(key).parts()).collect()
    }

    /// Proves the store is usable by writing, reading back and deleting a small object
    /// under `_probe/`, within `timeout`.
    pub async fn probe(&self, node_id: &str, timeout: Duration) -> Result<()> {
        let check = async {
            let key = self.key(&format!("_probe/{node_id}"));
            let body = format!("tierlog probe from {node_id}");
            self.object_op("put", &key, self.store.put(&key, PutPayload::from(body.clone().into_bytes())).await)?;
            let got = self.object_op("get", &key, self.store.get(&key).await)?;
            let bytes = self.object_op("read", &key, got.bytes().await)?;
            if bytes.as_ref() != body.as_bytes() {
                return Err(ColdError::Corrupt { url: self.url.clone(), key: key.to_string() });
            }
            self.object_op("delete", &key, self.store.delete(&key).await)?;
            Ok(())
        };
        tokio::time::timeout(timeout, check)
            .await
            .unwrap_or_else(|_| Err(ColdError::Timeout { url: self.url.clone(), seconds: timeout.as_secs() }))
    }

    fn object_op<T>(&self, op: &'static str, key: &Path, r: object_store::Result<T>) -> Result<T> {
        r.map_err(|source| ColdError::Object { url: self.url.clone(), op, key: key.to_string(), source })
    }
}
