//! The stream's Delta table, on `file://` and on the real S3-protocol server: segments
//! are added once each (the segment id is the idempotency key), each commit carries the
//! partitions' next offsets as `txn` versions that never go down, two writers committing
//! at once lose nothing, and Python `deltalake` and Polars read the table without tierlog.

use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use tierlog_cold::{ColdStore, ColdTable, Committed, NewSegment, sort_by_timestamp, write_parquet};
use tierlog_core::checkpoint::Checkpoint;
use tierlog_core::config::ColdLocation;

mod common;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("message", DataType::Utf8, true),
    ]))
}

/// A segment of `partition`'s offsets `range`, uploaded, ready to commit; its txn says
/// the partition's next offset is `next`.
async fn segment(store: &ColdStore, id: &str, partition: i32, range: std::ops::Range<i64>, next: i64) -> NewSegment {
    let n = range.clone().count();
    let times: Vec<i64> = range.clone().map(|o| 1_700_000_000_000_000 + o * 1000).collect();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            Arc::new(StringArray::from(vec!["t"; n])),
            Arc::new(Int32Array::from(vec![partition; n])),
            Arc::new(Int64Array::from(range.clone().collect::<Vec<_>>())),
            Arc::new(StringArray::from(range.clone().map(|o| format!("line {o}")).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let file = write_parquet(&sort_by_timestamp(&schema(), &[batch]).unwrap(), &["_topic"]).unwrap();
    let path = format!("date=2023-11-14/hour=22/{id}.parquet");
    store.put(&store.key(&format!("tables/logs/{path}")), file.bytes.clone()).await.unwrap();
    let mut next_offsets = Checkpoint::new();
    next_offsets.advance("t", partition, next);
    NewSegment {
        id: id.to_string(),
        path,
        size: file.bytes.len() as i64,
        index_key: Some(format!("index/logs/{id}.index")),
        index_tail: None,
        layout: Default::default(),
        stats: file.stats,
        next_offsets,
        offset_ranges: format!(r#"{{"t":{{"{partition}":[{},{}]}}}}"#, range.start, range.end - 1),
        schema_version: 1,
        covers: Vec::new(),
    }
}

/// The shared suite, run on each store.
async fn suite(store: ColdStore, reader_uri: String, reader_options: Value) {
    let mut table = ColdTable::open(&store, "logs", &schema()).await.unwrap();
    assert_eq!(table.version(), Some(0), "created on first use");
    let a = segment(&store, "20231114T221320000Z-n1-0000000a", 0, 0..1000, 1000).await;
    assert_eq!(table.commit_segment(&a).await.unwrap(), Committed::Added(1));
    assert_eq!(table.commit_segment(&a).await.unwrap(), Committed::AlreadyThere, "a segment is never added twice");
    assert_eq!(table.next_offset("t", 0).await.unwrap(), Some(1000));

    // Two writers (two handles, as two nodes would hold) commit at once.
    let mut other = ColdTable::open(&store, "logs", &schema()).await.unwrap();
    let b = segment(&store, "20231114T221321000Z-n1-0000000b", 0, 1000..1500, 1500).await;
    let c = segment(&store, "20231114T221321000Z-n2-0000000c", 1, 0..200, 200).await;
    let (rb, rc) = tokio::join!(table.commit_segment(&b), other.commit_segment(&c));
    let mut versions = vec![rb.unwrap(), rc.unwrap()];
    versions.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(versions, [Committed::Added(2), Committed::Added(3)], "both commits landed, one version each");
    table.refresh().await.unwrap();
    assert_eq!(table.files().unwrap().len(), 3);
    assert_eq!(table.next_offset("t", 0).await.unwrap(), Some(1500));
    assert_eq!(table.next_offset("t", 1).await.unwrap(), Some(200));
    // A commit whose partition offset is behind the table's (a node that lagged) never
    // moves the txn back.
    let late = segment(&store, "20231114T221319000Z-n3-0000000d", 0, 1500..1600, 1200).await;
    assert_eq!(table.commit_segment(&late).await.unwrap(), Committed::Added(4));
    assert_eq!(table.next_offset("t", 0).await.unwrap(), Some(1500));

    // An independent reader sees the same table.
    let seen = common::delta_read(&reader_uri, &reader_options, &["tierlog/logs/t/0", "tierlog/logs/t/1"]);
    eprintln!("python deltalake + polars read: {seen}");
    assert_eq!(seen["version"], 4);
    assert_eq!(seen["files"], 4);
    assert_eq!(seen["rows"], 1800);
    assert_eq!(seen["distinct_offsets"], 1800);
    assert_eq!(seen["columns"]["_offset"], "Int64");
    assert_eq!(seen["txn"]["tierlog/logs/t/0"], 1500);
    assert_eq!(seen["txn"]["tierlog/logs/t/1"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = ColdStore::open(&common::local(dir.path())).unwrap();
    let uri = dir.path().join("tables/logs").display().to_string();
    suite(store, uri, serde_json::json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_on_the_s3_server() {
    let Some((config, options)) = common::s3("cold-table") else { return };
    let ColdLocation::S3 { bucket, prefix } = &config.url else { unreachable!("an S3 config") };
    let uri = format!("s3://{bucket}/{prefix}/tables/logs");
    suite(ColdStore::open(&config).unwrap(), uri, options).await;
}

/// Rounds each process commits in `two_processes_commit_to_one_table_concurrently`.
const ROUNDS: i64 = 10;

/// Two processes (this test binary run twice as `commit_worker`) commit `ROUNDS`
/// segments each to one table on the S3 server at the same time, creating it as they
/// go: every commit lands once, no segment twice, and each partition's txn version is
/// its last offset + 1.
#[test]
fn two_processes_commit_to_one_table_concurrently() {
    let Some((config, options)) = common::s3("cold-concurrent") else { return };
    let ColdLocation::S3 { bucket, prefix } = &config.url else { unreachable!("an S3 config") };
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "commit_worker", "--ignored", "--nocapture"])
                .env("TIERLOG_TEST_WORKER", worker.to_string())
                .env("TIERLOG_TEST_PREFIX", prefix)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && log.contains("1 passed"), "a worker failed:\n{log}");
    }
    eprintln!("2 processes x {ROUNDS} commits in {:.2} s", started.elapsed().as_secs_f64());
    let seen = common::delta_read(&format!("s3://{bucket}/{prefix}/tables/logs"), &options, &["tierlog/logs/t/0", "tierlog/logs/t/1"]);
    assert_eq!(seen["files"], 2 * ROUNDS, "no lost commit, no segment twice: {seen}");
    let operations: Vec<&str> = seen["operations"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert_eq!(operations.iter().filter(|o| **o == "CREATE TABLE").count(), 1, "created once: {operations:?}");
    assert_eq!(operations.iter().filter(|o| **o == "WRITE").count() as i64, 2 * ROUNDS, "one commit per segment: {operations:?}");
    assert_eq!(seen["version"], 2 * ROUNDS, "nothing else committed: {seen}");
    assert_eq!(seen["rows"], 2 * ROUNDS * 100);
    assert_eq!(seen["distinct_offsets"], 2 * ROUNDS * 100);
    assert_eq!(seen["txn"]["tierlog/logs/t/0"], ROUNDS * 100);
    assert_eq!(seen["txn"]["tierlog/logs/t/1"], ROUNDS * 100);
}

/// One process of `two_processes_commit_to_one_table_concurrently`: commits `ROUNDS`
/// segments of partition `TIERLOG_TEST_WORKER`, each tried a second time now and then
/// (as after a crash), which must add nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by two_processes_commit_to_one_table_concurrently as a child process"]
async fn commit_worker() {
    let worker: i32 = std::env::var("TIERLOG_TEST_WORKER").expect("run by the parent test").parse().unwrap();
    let endpoint = std::env::var("TIERLOG_S3_ENDPOINT").unwrap();
    let (config, _) = common::s3_at(&endpoint, &std::env::var("TIERLOG_TEST_PREFIX").unwrap());
    let store = ColdStore::open(&config).unwrap();
    let mut table = ColdTable::open(&store, "logs", &schema()).await.unwrap();
    for round in 0..ROUNDS {
        let offsets = round * 100..(round + 1) * 100;
        let id = format!("20231114T2213{round:02}000Z-w{worker}-{round:08x}");
        let segment = segment(&store, &id, worker, offsets.clone(), offsets.end).await;
        let done = table.commit_segment(&segment).await.unwrap();
        assert!(matches!(done, Committed::Added(_)), "worker {worker} round {round}: {done:?}");
        if round % 3 == 0 {
            assert_eq!(table.commit_segment(&segment).await.unwrap(), Committed::AlreadyThere, "never added twice");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    orphans(ColdStore::open(&common::local(dir.path())).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_on_the_s3_server() {
    let Some((config, _)) = common::s3("cold-orphans") else { return };
    orphans(ColdStore::open(&config).unwrap()).await;
}

/// The orphan sweep deletes the planted objects no segment references, once they are
/// older than its minimum age, and nothing else: not a live segment's files, not those
/// of a segment removed within the grace period, not the log, not other streams'.
async fn orphans(store: ColdStore) {
    use std::time::{Duration, SystemTime};
    let exists = |key: String| {
        let store = store.clone();
        async move { store.read(&store.key(&key)).await.is_ok() }
    };
    let mut table = ColdTable::open(&store, "logs", &schema()).await.unwrap();
    for (id, range) in [("s1", 0..10), ("s2", 10..20)] {
        let segment = segment(&store, id, 0, range.clone(), range.end).await;
        assert!(matches!(table.try_commit_segment(&segment).await.unwrap(), Committed::Added(_)));
        store.put(&store.key(&format!("index/logs/{id}.index")), b"bundle".to_vec()).await.unwrap();
    }
    let s1: Vec<_> = table.segment_files().unwrap().into_iter().filter(|f| f.id == "s1").collect();
    table.remove_segments(&s1, "_offset < 10".into()).await.unwrap().expect("s1 removed");
    let orphans = ["tables/logs/date=2023-11-14/hour=22/orphan-a.parquet", "index/logs/orphan-a.index", "index/logs/never-committed.index"];
    let others = ["tables/other/date=2023-11-14/hour=22/y.parquet", "index/other/x.index", "_probe/z"];
    for key in orphans.iter().chain(&others) {
        store.put(&store.key(key), b"planted".to_vec()).await.unwrap();
    }
    let version = table.version();
    let grace = Duration::from_secs(3600);

    let young = tierlog_cold::sweep_orphans(&store, &table, Some("logs"), grace, Duration::from_secs(3600), SystemTime::now()).await.unwrap();
    assert!(young.deleted.is_empty(), "nothing younger than the minimum age: {:?}", young.deleted);
    assert_eq!(young.young, orphans.len());

    let swept = tierlog_cold::sweep_orphans(&store, &table, Some("logs"), grace, Duration::ZERO, SystemTime::now()).await.unwrap();
    let mut deleted = swept.deleted.clone();
    deleted.sort();
    let mut planted: Vec<String> = orphans.iter().map(|k| store.key(k).to_string()).collect();
    planted.sort();
    assert_eq!(deleted, planted, "exactly the planted orphans");
    for key in orphans {
        assert!(!exists(key.to_string()).await, "{key} deleted");
    }
    let referenced = ["index/logs/s1.index", "index/logs/s2.index", "tables/logs/date=2023-11-14/hour=22/s1.parquet", "tables/logs/date=2023-11-14/hour=22/s2.parquet"];
    for key in referenced.iter().chain(&others) {
        assert!(exists(key.to_string()).await, "{key} kept");
    }
    table.refresh().await.unwrap();
    assert_eq!(table.version(), version, "the log is untouched");

    // Past the grace period, the removed segment's files are orphans too.
    let later = SystemTime::now() + Duration::from_secs(1);
    let past = tierlog_cold::sweep_orphans(&store, &table, Some("logs"), Duration::ZERO, Duration::ZERO, later).await.unwrap();
    let mut deleted = past.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, vec![store.key(referenced[0]).to_string(), store.key(referenced[2]).to_string()], "s1's bundle and file");
    assert!(exists(referenced[1].to_string()).await && exists(referenced[3].to_string()).await, "the live segment's files stay");
    assert_eq!(table.segment_files().unwrap().len(), 1);
}
