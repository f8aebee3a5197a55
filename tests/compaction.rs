//! Compaction on the S3 server: twenty small segments of one hour merge into one or two
//! (two when the produce straddles an hour), their rows in `_timestamp` order as Polars
//! reads the files, every query answer and `match()` as the input file says, the cold
//! checkpoint unchanged, one `OPTIMIZE` commit whose actions all say `dataChange =
//! false`, and `retention_grace` later nothing but the merged files and their bundles
//! left. Killed at each compaction failpoint and restarted, the node ends with every row
//! once, no object the log does not name and none it names missing. A retention commit
//! landing while a merge waits for its commit leaves a consistent table.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::answers::{assert_answers, hdfs_checks};
use support::cold::{DeltaLog, delta_read, s3_objects};
use support::kafka::{TextStreams, produce_all};
use support::node::{Node, config};
use support::psql::pg_port;
use support::{Services, http, services, unique_topic, wait_for};

/// Rows per generation: each batch is produced once the one before is committed, and a
/// generation rolls over at the commit that takes it to `rollover_max_docs`.
const SEGMENT_ROWS: usize = 100;

fn policy(segment_rows: usize, compact_after: &str, extra: &str) -> String {
    format!(
        "[streams.policy]\ncommit_interval = \"500ms\"\nrollover_max_age = \"3s\"\nrollover_max_docs = {segment_rows}\nhot_for = \"1s\"\n\
         hot_grace = \"2s\"\ncompaction_target_size = \"1MiB\"\ncompact_after = \"{compact_after}\"\nretention_grace = \"5s\"\n{extra}\
         [query]\ntimeout = \"5s\"\n"
    )
}

fn sql_count(node: &Node, sql: &str) -> Option<u64> {
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": sql }))?;
    r.json()["rows"][0]["n"].as_u64()
}

fn metric(node: &Node, series: &str) -> u64 {
    http::metric(&http::get(node.http, "/metrics").unwrap().body, series)
}

/// Produces `lines` in batches of `segment_rows`, each once the one before answers.
fn produce_in_segments(services: &Services, node: &Node, topic: &str, lines: &[Vec<u8>], segment_rows: usize) {
    for (i, batch) in lines.chunks(segment_rows).enumerate() {
        produce_all(&services.kafka_brokers, topic, batch.iter().map(Vec::as_slice));
        let want = (i * segment_rows + batch.len()) as u64;
        wait_for("the batch committed", Duration::from_secs(120), || (sql_count(node, "SELECT count(*) AS n FROM hdfs") == Some(want)).then_some(()));
    }
}

/// The objects under the table root (not its log) and the stream's bundle prefix, next
/// to what the log names: none unnamed (no orphan), every live one there (none missing).
/// Returns the data and bundle objects found.
fn assert_objects_match_the_log(services: &Services, prefix: &str, stream: &str, context: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let log = DeltaLog::read(services, prefix, stream);
    let root = format!("{prefix}/tables/{stream}/");
    let data: BTreeSet<String> = s3_objects(services, &root)
        .into_iter()
        .map(|(k, _)| k[root.len()..].to_string())
        .filter(|k| !k.starts_with("_delta_log/"))
        .collect();
    let bundles: BTreeSet<String> = s3_objects(services, &format!("{prefix}/index/{stream}/")).into_iter().map(|(k, _)| k).collect();
    let named: BTreeSet<String> = log.live.keys().chain(log.removed.keys()).cloned().collect();
    let named_bundles = DeltaLog::bundles(log.live.values().chain(log.removed.values()));
    let live: BTreeSet<String> = log.live.keys().cloned().collect();
    let live_bundles = DeltaLog::bundles(log.live.values());
    assert!(data.is_subset(&named), "{context}: data objects the log does not name: {:?}", data.difference(&named).collect::<Vec<_>>());
    assert!(live.is_subset(&data), "{context}: live files missing: {:?}", live.difference(&data).collect::<Vec<_>>());
    assert!(bundles.is_subset(&named_bundles), "{context}: orphan bundles: {:?}", bundles.difference(&named_bundles).collect::<Vec<_>>());
    assert!(live_bundles.is_subset(&bundles), "{context}: live bundles missing: {:?}", live_bundles.difference(&bundles).collect::<Vec<_>>());
    (data, bundles)
}

/// The `OPTIMIZE` commits of the log, each as (files removed, files added), after
/// checking that every one of their actions says `dataChange = false`.
fn optimize_commits(log: &DeltaLog) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (operation, actions) in log.commits.iter().filter(|(op, _)| op == "OPTIMIZE") {
        for action in actions {
            let inner = action.get("add").or_else(|| action.get("remove")).unwrap();
            assert_eq!(inner["dataChange"], false, "{operation}: {action}");
        }
        let count = |kind: &str| actions.iter().filter(|a| a.get(kind).is_some()).count();
        out.push((count("remove"), count("add")));
    }
    out
}

#[test]
fn twenty_small_segments_of_an_hour_merge_into_one() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let prefix = unique_topic("compaction");
    let config = config(&services, &prefix, &format!("{}{}", feeds.config, policy(SEGMENT_ROWS, "10s", "")));
    let pg = pg_port(&config);
    let mut node = Node::start(&config);
    node.wait_ready(Duration::from_secs(60));
    let (topic, lines) = (feeds.topic(0), feeds.lines(0));
    let produced = lines.len();
    let segments = produced.div_ceil(SEGMENT_ROWS) as u64;
    assert!(segments >= 20);
    produce_in_segments(&services, &node, topic, lines, SEGMENT_ROWS);
    assert_answers(&node, pg, &hdfs_checks("hdfs", lines), "before compaction");

    // Every generation migrated as its own segment, then merged: the metrics count both.
    wait_for("every segment migrated and merged", Duration::from_secs(300), || {
        let migrated = metric(&node, r#"tierlog_lifecycle_migrated_segments_total{stream="hdfs"}"#);
        let merged = metric(&node, r#"tierlog_lifecycle_compacted_segments_total{stream="hdfs"}"#);
        let files = delta_read(&services, &prefix, "hdfs", &[])?["files"].as_u64()?;
        (migrated == segments && merged >= segments && files <= 2).then_some(())
    });
    let txn = format!("tierlog/hdfs/{topic}/0");
    let seen = delta_read(&services, &prefix, "hdfs", &[&txn, "files"]).unwrap();
    assert_eq!(seen["rows"], produced, "{seen}");
    assert_eq!(seen["distinct_offsets"], produced, "each row once: {seen}");
    assert_eq!(seen["txn"][&txn], produced, "the cold checkpoint is unchanged: {seen}");
    let files = seen["file_times"].as_object().unwrap();
    assert!((1..=2).contains(&files.len()), "{seen}");
    assert!(files.values().all(|f| f[3] == true), "rows in _timestamp order in every file: {seen}");
    assert_eq!(files.values().map(|f| f[2].as_u64().unwrap()).sum::<u64>(), produced as u64);
    // One file per hour; two hours only when the produce straddled one.
    let hours: BTreeSet<&str> = files.keys().map(|p| p.rsplit_once('/').unwrap().0).collect();
    assert_eq!(hours.len(), files.len(), "{seen}");
    let one_hour = hours.len() == 1;
    if one_hour {
        assert!(files.keys().all(|p| p.contains("-merged-")), "{seen}");
    }

    let log = DeltaLog::read(&services, &prefix, "hdfs");
    let optimized = optimize_commits(&log);
    assert!(!optimized.is_empty(), "{:?}", log.commits.iter().map(|(op, _)| op).collect::<Vec<_>>());
    // The later merges may take an earlier merge's output; each adds exactly one file.
    assert!(optimized.iter().all(|&(removed, added)| removed >= 2 && added == 1), "{optimized:?}");
    eprintln!("{segments} segments of {SEGMENT_ROWS} rows merged by {} OPTIMIZE commits {optimized:?}", optimized.len());
    assert_answers(&node, pg, &hdfs_checks("hdfs", lines), "after compaction");
    let explain = http::get(node.http, "/api/v1/lifecycle?stream=hdfs").unwrap().json();
    let cold: Vec<&Value> = explain["streams"][0]["entries"].as_array().unwrap().iter().filter(|e| e["tier"] == "cold").collect();
    assert_eq!(cold.iter().map(|e| e["rows"].as_u64().unwrap()).sum::<u64>(), produced as u64, "{explain}");

    // The hot copies go hot_grace after the merge that now holds their rows; then every
    // answer comes from the merged files.
    wait_for("the hot copies deleted", Duration::from_secs(120), || {
        (sql_count(&node, "SELECT count(*) AS n FROM hdfs WHERE _tier = 'hot'") == Some(0)).then_some(())
    });
    assert_answers(&node, pg, &hdfs_checks("hdfs", lines), "from the merged files alone");
    assert_eq!(metric(&node, r#"tierlog_lifecycle_failures_total{stream="hdfs",step="compact"}"#), 0);

    // retention_grace after the merge, the sources' files and bundles are deleted:
    // nothing left but what the live segments name.
    let live = log.live.len();
    let (data, bundles) = wait_for("the merged-away files deleted", Duration::from_secs(180), || {
        let (data, bundles) = assert_objects_match_the_log(&services, &prefix, "hdfs", "after the sweep");
        (data.len() == live && bundles.len() == live).then_some((data, bundles))
    });
    assert!(!one_hour || data.iter().chain(&bundles).all(|k| k.contains("-merged-")), "{data:?} {bundles:?}");
    assert_answers(&node, pg, &hdfs_checks("hdfs", lines), "after the sweep");
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}

#[test]
fn a_crash_at_each_compaction_step_leaves_every_row_once() {
    let Some(services) = services() else { return };
    let segment_rows = 400;
    for failpoint in ["compaction_after_parquet_upload", "compaction_after_bundle_upload", "compaction_after_commit"] {
        let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
        let prefix = unique_topic("compaction-crash");
        let config = config(&services, &prefix, &format!("{}{}", feeds.config, policy(segment_rows, "3s", "")));
        let pg = pg_port(&config);
        let mut node = Node::start_env(&config, &[("TIERLOG_FAILPOINT", failpoint)]);
        node.wait_ready(Duration::from_secs(60));
        let (topic, lines) = (feeds.topic(0), feeds.lines(0));
        produce_in_segments(&services, &node, topic, lines, segment_rows);
        let status = node.wait_exit(Duration::from_secs(180));
        assert!(!status.success() && node.log().contains(&format!("failpoint '{failpoint}' reached")), "{failpoint}: {status}\n{}", node.log());

        let mut node = Node::restart(node);
        node.wait_ready(Duration::from_secs(60));
        let txn = format!("tierlog/hdfs/{topic}/0");
        let seen = wait_for("the merge done after the restart", Duration::from_secs(180), || {
            let seen = delta_read(&services, &prefix, "hdfs", &[&txn])?;
            (seen["files"].as_u64()? <= 2 && seen["operations"].as_array()?.iter().any(|o| o == "OPTIMIZE")).then_some(seen)
        });
        assert_eq!(seen["rows"], lines.len(), "{failpoint}: {seen}");
        assert_eq!(seen["distinct_offsets"], lines.len(), "{failpoint}: each row once: {seen}");
        assert_eq!(seen["txn"][&txn], lines.len(), "{failpoint}: {seen}");
        assert_objects_match_the_log(&services, &prefix, "hdfs", failpoint);
        assert_answers(&node, pg, &hdfs_checks("hdfs", lines), failpoint);
        let optimized = optimize_commits(&DeltaLog::read(&services, &prefix, "hdfs"));
        eprintln!("{failpoint}: crashed, restarted, {} rows once each in {} files, OPTIMIZE commits {optimized:?}", lines.len(), seen["files"]);
        assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
    }
}

/// The merge uploads its file and waits (pausepoint) before its commit; meanwhile
/// retention removes its sources. The merge then finds a source gone, gives up and
/// deletes what it uploaded: the table is retention's, with nothing left unnamed.
#[test]
fn retention_racing_a_compaction_leaves_a_consistent_table() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let prefix = unique_topic("compaction-race");
    // Text rows carry the Kafka record time: they expire 30 s after the produce, while
    // the merge, due 2 s after the last migration, waits 45 s before its commit.
    let config = config(&services, &prefix, &format!("{}{}", feeds.config, policy(400, "2s", "retention = \"30s\"\n")));
    let mut node = Node::start_env(&config, &[("TIERLOG_PAUSEPOINT", "compaction_before_commit=45000")]);
    node.wait_ready(Duration::from_secs(60));
    let (topic, lines) = (feeds.topic(0), feeds.lines(0));
    produce_in_segments(&services, &node, topic, lines, 400);
    wait_for("the merge waiting for its commit", Duration::from_secs(120), || {
        node.log().contains("pausepoint 'compaction_before_commit' reached").then_some(())
    });
    let merged_upload = || s3_objects(&services, &format!("{prefix}/tables/hdfs/")).into_iter().any(|(k, _)| k.contains("-merged-"));
    assert!(merged_upload(), "the merged file is uploaded before the pause");
    let txn = format!("tierlog/hdfs/{topic}/0");
    wait_for("the retention commit", Duration::from_secs(120), || delta_read(&services, &prefix, "hdfs", &[&txn]).filter(|s| s["rows"] == 0));
    wait_for("the merge given up", Duration::from_secs(120), || {
        (metric(&node, r#"tierlog_lifecycle_compactions_abandoned_total{stream="hdfs"}"#) == 1).then_some(())
    });
    let seen = delta_read(&services, &prefix, "hdfs", &[&txn]).unwrap();
    assert_eq!(seen["rows"], 0, "{seen}");
    assert_eq!(seen["txn"][&txn], lines.len(), "the cold checkpoint outlives the rows: {seen}");
    let operations = seen["operations"].as_array().unwrap();
    assert!(operations.iter().any(|o| o == "DELETE") && !operations.iter().any(|o| o == "OPTIMIZE"), "{seen}");
    assert!(!merged_upload(), "the given-up merge deleted its file");
    assert_objects_match_the_log(&services, &prefix, "hdfs", "after the race");
    assert_eq!(metric(&node, r#"tierlog_lifecycle_failures_total{stream="hdfs",step="compact"}"#), 0);
    assert_eq!(sql_count(&node, "SELECT count(*) AS n FROM hdfs"), Some(0));
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
