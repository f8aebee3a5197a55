//! Every request the node makes of the cold store, counted in `/metrics` by operation and
//! by the kind of object (Parquet data, index bundle, Delta log), with the bytes read:
//! what object storage bills. Each read is also logged at debug level with its key, so
//! that one query's reads can be told apart (`RUST_LOG=tierlog_cold::metered=debug`).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, Result,
};
use tierlog_core::metrics::{Counter, Metrics};
use tracing::debug;

/// What an object is, from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Object {
    Data,
    Index,
    Log,
    Other,
}

impl Object {
    const ALL: [Object; 4] = [Object::Data, Object::Index, Object::Log, Object::Other];

    fn of(key: &str) -> Object {
        if key.contains("/_delta_log/") || key.ends_with("/_delta_log") {
            Object::Log
        } else if key.ends_with(".parquet") {
            Object::Data
        } else if key.ends_with(".index") {
            Object::Index
        } else {
            Object::Other
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Object::Data => "data",
            Object::Index => "index",
            Object::Log => "log",
            Object::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Get,
    Put,
    List,
    Delete,
    Copy,
}

impl Op {
    const ALL: [Op; 5] = [Op::Get, Op::Put, Op::List, Op::Delete, Op::Copy];

    fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::List => "list",
            Op::Delete => "delete",
            Op::Copy => "copy",
        }
    }
}

#[derive(Debug)]
struct Counters {
    requests: HashMap<(Op, Object), Arc<Counter>>,
    read_bytes: HashMap<Object, Arc<Counter>>,
}

impl Counters {
    fn request(&self, op: Op, key: &str) {
        self.requests[&(op, Object::of(key))].inc();
    }
}

/// An object store that counts what passes through it.
#[derive(Debug, Clone)]
pub(crate) struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl MeteredStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, metrics: &Metrics) -> MeteredStore {
        let mut requests = HashMap::new();
        let mut read_bytes = HashMap::new();
        for object in Object::ALL {
            for op in Op::ALL {
                let c = metrics.counter(
                    "tierlog_cold_requests_total",
                    "Requests to the cold store, by operation and object (data: Parquet, index: bundles, log: Delta log).",
                    &[("op", op.as_str()), ("object", object.as_str())],
                );
                requests.insert((op, object), c);
            }
            let c = metrics.counter(
                "tierlog_cold_read_bytes_total",
                "Bytes read from the cold store, by object.",
                &[("object", object.as_str())],
            );
            read_bytes.insert(object, c);
        }
        MeteredStore { inner, counters: Arc::new(Counters { requests, read_bytes }) }
    }

    fn read(&self, location: &Path, ranges: &[Range<u64>]) {
        let object = Object::of(location.as_ref());
        self.counters.requests[&(Op::Get, object)].inc();
        self.counters.read_bytes[&object].add(ranges.iter().map(|r| r.end - r.start).sum());
        debug!(key = %location, ranges = ?ranges, "cold read");
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.counters.request(Op::Put, location.as_ref());
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        // Counted once per upload, not per part.
        self.counters.request(Op::Put, location.as_ref());
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let got = self.inner.get_opts(location, options).await?;
        self.read(location, std::slice::from_ref(&got.range));
        Ok(got)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let got = self.inner.get_ranges(location, ranges).await?;
        self.read(location, ranges);
        Ok(got)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        use futures::StreamExt;
        let counters = Arc::clone(&self.counters);
        let counted = locations.inspect(move |l| {
            if let Ok(l) = l {
                counters.request(Op::Delete, l.as_ref());
            }
        });
        self.inner.delete_stream(counted.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counters.request(Op::List, prefix.map_or("", |p| p.as_ref()));
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counters.request(Op::List, prefix.map_or("", |p| p.as_ref()));
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.counters.request(Op::List, prefix.map_or("", |p| p.as_ref()));
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.counters.request(Op::Copy, to.as_ref());
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        // A rename is a copy and a delete on S3; the inner store decides how.
        self.counters.request(Op::Copy, to.as_ref());
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_told_apart_by_key() {
        assert_eq!(Object::of("p/tables/web/_delta_log/00000000000000000003.json"), Object::Log);
        assert_eq!(Object::of("p/tables/web/date=2024-01-01/hour=00/01J.parquet"), Object::Data);
        assert_eq!(Object::of("p/index/web/01J.index"), Object::Index);
        assert_eq!(Object::of("p/probe/abc"), Object::Other);
    }
}
