//! The object store queries read cold Parquet files through: ranged reads go through the
//! cold caches (`cache.rs`), everything else to the store. Parquet files are never
//! rewritten under the same key, so a cached range never goes stale.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::cache::{ColdCache, Kind};

#[derive(Debug, Clone)]
pub(crate) struct CachedStore {
    inner: Arc<dyn ObjectStore>,
    cache: Arc<ColdCache>,
}

impl CachedStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, cache: Arc<ColdCache>) -> CachedStore {
        CachedStore { inner, cache }
    }

    async fn range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.cache.get_or_fetch(Kind::Data, &range_key(location, &range), self.inner.get_range(location, range.clone())).await
    }
}

fn range_key(location: &Path, range: &Range<u64>) -> String {
    format!("{location}@{}-{}", range.start, range.end)
}

impl fmt::Display for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    /// A plain ranged read (no conditions, no version) is answered from the cache. The
    /// answer's `meta` then has no time or tag, and its size is where the range ends:
    /// ranged readers (Parquet's) use only the bytes.
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none();
        let Some(GetRange::Bounded(range)) = options.range.clone().filter(|_| plain) else {
            return self.inner.get_opts(location, options).await;
        };
        let bytes = self.range(location, range.clone()).await?;
        let meta = ObjectMeta { location: location.clone(), last_modified: Default::default(), size: range.end, e_tag: None, version: None };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    /// Cached ranges from the cache; the others in one call to the store, which
    /// coalesces neighbours into fewer requests, then kept.
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let keys: Vec<String> = ranges.iter().map(|r| range_key(location, r)).collect();
        let mut found = Vec::with_capacity(ranges.len());
        for key in &keys {
            found.push(self.cache.get(Kind::Data, key).await);
        }
        let missing: Vec<Range<u64>> = ranges.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(r, _)| r.clone()).collect();
        let mut fetched = if missing.is_empty() { Vec::new() } else { self.inner.get_ranges(location, &missing).await? }.into_iter();
        let mut out = Vec::with_capacity(ranges.len());
        for (key, hit) in keys.iter().zip(found) {
            match hit {
                Some(bytes) => out.push(bytes),
                None => {
                    let bytes = fetched.next().expect("one answer per missing range");
                    self.cache.put(Kind::Data, key, bytes.clone()).await;
                    out.push(bytes);
                }
            }
        }
        Ok(out)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
