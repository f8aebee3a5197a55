//! Helpers of the query crate's tests: a hot tier written by hand on a temp dir, and
//! statements run through the engine as the HTTP API runs them.
#![allow(dead_code)] // each test binary uses a different part

use tierlog_core::config::{Config, StreamConfig};
use tierlog_hot::{HotCatalog, HotStream, RowOrigin};
use tierlog_query::{ErrorKind, Grant, Protocol, QueryEngine};

pub fn parse(config: &str) -> Config {
    Config::parse(config, "test.toml", std::path::Path::new("/"), &|_| None).unwrap()
}

/// Where a test row came from: topic partition 0, the given offset, time 1 s + offset µs.
pub fn origin(topic: &str, offset: i64) -> RowOrigin<'_> {
    RowOrigin { topic, partition: 0, offset, key: None, kafka_time_us: offset, ingest_time_us: 0 }
}

/// Opens `stream`'s hot tier under `dir`, lets `write` add documents, commits.
pub fn write(dir: &std::path::Path, catalog: &HotCatalog, stream: &StreamConfig, write: impl FnOnce(&mut HotStream)) {
    let mut hot = HotStream::open(dir, "n1", stream, catalog.clone()).unwrap();
    write(&mut hot);
    hot.commit().unwrap();
    hot.close().unwrap();
}

pub fn engine(config: &Config, catalog: &HotCatalog) -> QueryEngine {
    QueryEngine::new(&config.streams, &config.query, catalog, None, &tierlog_core::metrics::Metrics::new()).unwrap()
}

/// The first column of every row as text, or the error's kind and message.
pub fn run(engine: &QueryEngine, grant: &Grant, sql: &str) -> Result<Vec<String>, (ErrorKind, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = runtime.block_on(engine.sql(sql, grant, Protocol::Http, None)).map_err(|e| (e.kind(), e.to_string()))?;
    let mut rows = Vec::new();
    for batch in &result.batches {
        let text = arrow::util::display::ArrayFormatter::try_new(batch.column(0).as_ref(), &Default::default()).unwrap();
        rows.extend((0..batch.num_rows()).map(|i| text.value(i).to_string()));
    }
    Ok(rows)
}
