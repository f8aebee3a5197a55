//! A sealed hot generation migrates into the stream's Delta table: every committed row
//! once, typed columns, the generation's checkpoint as `txn` versions, and a second run
//! adds nothing. Python `deltalake` and Polars check the table against counts the test
//! computes from the input file (loghub HDFS_2k).

use std::collections::BTreeMap;

use serde_json::Value;
use tierlog_cold::{ColdStore, ColdTable, cold_schema, migrate_generation};
use tierlog_core::config::Config;

mod common;
use tierlog_hot::{GenerationState, HotCatalog, HotStream, RowOrigin, TableKind};

const STREAM: &str = "[[streams]]\nname = \"hdfs\"\ntopics = [\"hdfs\"]\nformat = \"json\"\n\
    fields = [{ name = \"level\", type = \"keyword\" }, { name = \"message\", type = \"text\" }]\n\
    [streams.policy]\nrollover_max_docs = 1000\n";

fn lines() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/loghub/HDFS_2k.log");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).lines().map(str::to_string).collect()
}

/// Indexes the lines at `offsets` of partition 0 into a hot stream of node `node`
/// (commits every 500 rows, rolls over every 1000), and returns its sealed generations.
fn index_lines(
    dir: &std::path::Path,
    node: &str,
    stream: &tierlog_core::config::StreamConfig,
    input: &[String],
    offsets: std::ops::Range<usize>,
) -> (tierlog_hot::StreamSchema, Vec<std::sync::Arc<tierlog_hot::GenerationHandle>>) {
    let catalog = HotCatalog::new();
    let mut hot = HotStream::open(dir, node, stream, catalog.clone()).unwrap();
    let schema = hot.schema().clone();
    let field = |name: &str| schema.columns.iter().find(|c| c.name == name).unwrap().field;
    for (n, offset) in offsets.enumerate() {
        let line = &input[offset];
        let offset = offset as i64;
        let origin = RowOrigin { topic: "hdfs", partition: 0, offset, key: None, kafka_time_us: offset, ingest_time_us: 0 };
        let mut doc = schema.row(&origin, 0, 1_700_000_000_000_000 + offset * 1_000_000);
        let mut words = line.split_whitespace();
        doc.add_text(field("level"), words.nth(3).unwrap());
        doc.add_text(field("message"), line);
        hot.add(doc, line.len() as u64).unwrap();
        hot.advance("hdfs", 0, offset + 1);
        if n % 500 == 499 {
            hot.commit().unwrap();
        }
    }
    hot.commit().unwrap();
    drop(hot);
    let generations = catalog.snapshot("hdfs");
    assert!(!generations.is_empty() && generations.iter().all(|g| g.meta.state == GenerationState::Sealed), "sealed generations");
    ((*schema).clone(), generations)
}

fn stream_config() -> Config {
    Config::parse(STREAM, "test.toml", std::path::Path::new("/"), &|_| None).unwrap()
}

/// Three nodes indexed overlapping offsets (a crash between an index commit and a
/// group commit makes a second node read again what the first had indexed): 0..1000,
/// 500..1500, 1000..2000. Migrated in that order, the later segments leave out the 1000
/// rows the earlier ones hold, so cold holds each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_another_segment_holds_are_dropped_once() {
    let config = stream_config();
    let input = lines();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut generations = Vec::new();
    let mut schema = None;
    for (n, range) in [0..1000, 500..1500, 1000..2000].into_iter().enumerate() {
        let (s, g) = index_lines(dirs[n].path(), &format!("n{n}"), &config.streams[0], &input, range);
        schema = Some(s);
        generations.extend(g);
    }
    let schema = schema.unwrap();
    let cold_dir = tempfile::tempdir().unwrap();
    let store = ColdStore::open(&common::local(cold_dir.path())).unwrap();
    let mut table = ColdTable::open(&store, "hdfs", &cold_schema(&schema, TableKind::Rows)).await.unwrap();
    let (mut rows, mut dropped) = (0, 0);
    for generation in &generations {
        let done = migrate_generation(&store, &mut table, &schema, "hdfs", generation, TableKind::Rows).await.unwrap();
        rows += done.rows;
        dropped += done.dropped_duplicates;
    }
    assert_eq!((rows, dropped), (input.len(), 1000), "rows written, duplicates dropped");
    let seen = delta_read(cold_dir.path(), &["tierlog/hdfs/hdfs/0"]);
    assert_eq!(seen["rows"], input.len());
    assert_eq!(seen["distinct_offsets"], input.len());
    assert_eq!(seen["txn"]["tierlog/hdfs/hdfs/0"], input.len());
}

/// What Python `deltalake` and Polars see of the local table `tables/hdfs`.
fn delta_read(cold_dir: &std::path::Path, extra: &[&str]) -> Value {
    common::delta_read(&cold_dir.join("tables/hdfs").display().to_string(), &serde_json::json!({}), extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_generations_migrate_once_each() {
    let config = stream_config();
    let input = lines();
    let hot_dir = tempfile::tempdir().unwrap();
    let (schema, generations) = index_lines(hot_dir.path(), "n1", &config.streams[0], &input, 0..input.len());
    assert!(generations.len() >= 2, "several generations");

    let cold_dir = tempfile::tempdir().unwrap();
    let store = ColdStore::open(&common::local(cold_dir.path())).unwrap();
    let mut table = ColdTable::open(&store, "hdfs", &cold_schema(&schema, TableKind::Rows)).await.unwrap();
    let mut rows = 0;
    let mut segments = Vec::new();
    for generation in &generations {
        let done = migrate_generation(&store, &mut table, &schema, "hdfs", generation, TableKind::Rows).await.unwrap();
        assert!(done.version.is_some(), "{done:?}");
        rows += done.rows;
        eprintln!(
            "migrated {} rows of {} into {} Parquet and {} bundle bytes",
            done.rows, done.segment, done.parquet_bytes, done.bundle_bytes
        );
        segments.push(done.segment);
        let again = migrate_generation(&store, &mut table, &schema, "hdfs", generation, TableKind::Rows).await.unwrap();
        assert_eq!(again.version, None, "a second run adds nothing");
    }
    assert_eq!(rows, input.len());
    bundles_find_the_rows_the_lines_hold(&store, &table, &segments, &input).await;
    assert_eq!(table.next_offset("hdfs", 0).await.unwrap(), Some(input.len() as i64));

    // The levels counted from the raw lines, and what an outside reader sees.
    let mut levels: BTreeMap<String, u64> = BTreeMap::new();
    for line in &input {
        *levels.entry(line.split_whitespace().nth(3).unwrap().to_string()).or_default() += 1;
    }
    let seen = delta_read(cold_dir.path(), &["tierlog/hdfs/hdfs/0", "by:level"]);
    assert_eq!(seen["rows"], input.len());
    assert_eq!(seen["distinct_offsets"], input.len());
    assert_eq!(seen["files"], generations.len());
    assert_eq!(seen["txn"]["tierlog/hdfs/hdfs/0"], input.len());
    assert_eq!(seen["columns"]["level"], "String");
    assert_eq!(seen["columns"]["_timestamp"], "Datetime(time_unit='us', time_zone='UTC')");
    let counts: BTreeMap<String, u64> =
        seen["counts"]["level"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    assert_eq!(counts, levels);
}

/// Each segment's bundle answers a word and a phrase with the Parquet rows (doc id ==
/// row) whose input lines hold them, tokenized here the way tantivy's default tokenizer
/// does (alphanumeric runs, lowercased).
async fn bundles_find_the_rows_the_lines_hold(store: &ColdStore, table: &ColdTable, segments: &[String], input: &[String]) {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use tantivy::query::QueryParser;

    let words = |line: &str| -> Vec<String> {
        line.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    let holds = |line: &str, phrase: &[&str]| words(line).windows(phrase.len()).any(|w| w.iter().zip(phrase).all(|(a, b)| a == b));
    let files = table.files().unwrap();
    for (query, phrase) in [("PacketResponder", vec!["packetresponder"]), ("\"Received block\"", vec!["received", "block"])] {
        let mut found = std::collections::BTreeSet::new();
        for segment in segments {
            let bundle = store.read(&store.key(&format!("index/hdfs/{segment}.index"))).await.unwrap();
            let bundle = tierlog_cold::Bundle::open(tantivy::directory::OwnedBytes::new(bundle)).unwrap();
            let searcher = bundle.searcher();
            let message = searcher.index().schema().get_field("message").unwrap();
            let parsed = QueryParser::for_index(searcher.index(), vec![message]).parse_query(query).unwrap();
            let docs = searcher.search(&parsed, &tantivy::collector::DocSetCollector).unwrap();
            let path = files.iter().find(|f| f.ends_with(&format!("{segment}.parquet"))).unwrap();
            let parquet = bytes::Bytes::from(store.read(&store.key(&format!("tables/hdfs/{path}"))).await.unwrap());
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet).unwrap().build().unwrap();
            let offsets: Vec<i64> =
                reader.flat_map(|b| b.unwrap().column_by_name("_offset").unwrap().as_primitive::<Int64Type>().values().to_vec()).collect();
            assert_eq!(offsets.len() as u64, bundle.rows());
            found.extend(docs.into_iter().map(|d| offsets[d.doc_id as usize]));
        }
        let want: std::collections::BTreeSet<i64> =
            input.iter().enumerate().filter(|(_, l)| holds(l, &phrase)).map(|(o, _)| o as i64).collect();
        assert!(!want.is_empty(), "{query}: the input holds it");
        assert_eq!(found, want, "{query}: bundle hits vs the lines that hold it");
        eprintln!("bundles: {query} found in {} rows, as the input lines say", found.len());
    }
}
