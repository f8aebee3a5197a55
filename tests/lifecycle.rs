//! The lifecycle manager moves each sealed generation, once it has been sealed for the
//! stream's `hot_for`, into the stream's Delta table on the S3 server: every produced
//! message once, as Python `deltalake` and Polars (readers tierlog did not write) count
//! it, with each partition's next offset as the table's `txn` version; `hot_grace` after
//! each commit the hot copy is gone and the rows answer from cold. Killed at each
//! failpoint and restarted, the node ends with the same exact table.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::answers::{assert_answers, hdfs_checks};
use support::cold::delta_read;
use support::kafka::{TextStreams, produce_all};
use support::node::{Node, config};
use support::psql::pg_port;
use support::{Services, http, services, unique_topic, wait_for};

const POLICY: &str =
    "[streams.policy]\ncommit_interval = \"500ms\"\nrollover_max_age = \"3s\"\nrollover_max_docs = 2500\nhot_for = \"1s\"\nhot_grace = \"3s\"\n";

/// Waits until the cold table holds `rows` rows, and returns what the reader sees.
fn cold_holds(services: &Services, prefix: &str, stream: &str, rows: usize, txn: &str) -> Value {
    wait_for(&format!("{rows} rows of {stream} in cold"), Duration::from_secs(240), || {
        delta_read(services, prefix, stream, &[txn]).filter(|seen| seen["rows"].as_u64() >= Some(rows as u64))
    })
}

fn sql_count(node: &Node, stream: &str) -> u64 {
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": format!("SELECT count(*) AS n FROM {stream}") })).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["rows"][0]["n"].as_u64().unwrap()
}

#[test]
fn sealed_generations_reach_cold_once_each() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("access", "apache/apache_access.log")]);
    let prefix = unique_topic("lifecycle");
    let mut node = Node::start(&config(&services, &prefix, &format!("{}{POLICY}", feeds.config)));
    node.wait_ready(Duration::from_secs(60));
    // In two waves, so that the first is committed (and rolled over) before the second:
    // at least two generations, two commits.
    let (topic, lines) = (feeds.topic(0), feeds.lines(0));
    let produced = lines.len();
    for wave in lines.chunks(produced.div_ceil(2)) {
        let before = sql_count(&node, "access");
        produce_all(&services.kafka_brokers, topic, wave.iter().map(Vec::as_slice));
        wait_for("a wave committed", Duration::from_secs(120), || (sql_count(&node, "access") == before + wave.len() as u64).then_some(()));
    }

    let seen = cold_holds(&services, &prefix, "access", produced, &format!("tierlog/access/{topic}/0"));
    assert_eq!(seen["rows"], produced, "{seen}");
    assert_eq!(seen["distinct_offsets"], produced, "each (topic, partition, offset) once: {seen}");
    assert_eq!(seen["txn"][format!("tierlog/access/{topic}/0")], produced, "the cold checkpoint: {seen}");
    assert!(seen["files"].as_u64().unwrap() >= 2, "one file per generation: {seen}");
    assert_eq!(seen["columns"]["message"], "String");
    assert_eq!(seen["columns"]["_timestamp"], "Datetime(time_unit='us', time_zone='UTC')");

    let metrics = http::get(node.http, "/metrics").unwrap().body;
    assert_eq!(http::metric(&metrics, "tierlog_lifecycle_migrated_rows_total{stream=\"access\"}"), produced as u64);
    assert_eq!(http::metric(&metrics, "tierlog_lifecycle_migrated_segments_total{stream=\"access\"}"), seen["files"].as_u64().unwrap());
    assert_eq!(http::metric(&metrics, "tierlog_lifecycle_failures_total{stream=\"access\",step=\"migrate\"}"), 0);
    let files = seen["files"].as_u64().unwrap();
    assert_eq!(sql_count(&node, "access"), produced as u64);
    lifecycle_explains_both_tiers(&node, produced as u64, files);

    // `hot_grace` after each commit the hot copy goes; the answers stay, from cold.
    wait_for("the hot copies deleted", Duration::from_secs(120), || {
        let metrics = http::get(node.http, "/metrics").unwrap().body;
        (http::metric(&metrics, "tierlog_lifecycle_deleted_hot_generations_total{stream=\"access\",reason=\"migrated\"}") == files).then_some(())
    });
    let cold_ids: Vec<String> = cold_entries(&node, "access").iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    let left = hot_folders(&node, "access");
    assert!(left.iter().all(|f| !cold_ids.contains(f) && !f.starts_with('.')), "no migrated generation left on disk: {left:?} vs {cold_ids:?}");
    assert_eq!(sql_count(&node, "access"), produced as u64, "every row still answers, from cold");
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}

#[test]
fn a_crash_at_each_migration_step_leaves_every_row_once() {
    let Some(services) = services() else { return };
    for failpoint in ["after_parquet_upload", "after_bundle_upload", "after_commit", "during_hot_deletion"] {
        let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
        let prefix = unique_topic("failpoint");
        let policy = POLICY.replace("rollover_max_docs = 2500", "rollover_max_docs = 500");
        let mut node =
            Node::start_env(&config(&services, &prefix, &format!("{}{policy}", feeds.config)), &[("TIERLOG_FAILPOINT", failpoint)]);
        node.wait_ready(Duration::from_secs(60));
        feeds.produce(&services.kafka_brokers);
        let status = node.wait_exit(Duration::from_secs(120));
        assert!(
            !status.success() && node.log().contains(&format!("failpoint '{failpoint}' reached")),
            "{failpoint}: {status}\n{}",
            node.log()
        );

        let mut node = Node::restart(node);
        node.wait_ready(Duration::from_secs(60));
        let half_deleted: Vec<String> = hot_folders(&node, "hdfs").into_iter().filter(|f| f.starts_with('.')).collect();
        assert!(half_deleted.is_empty(), "{failpoint}: the start finished interrupted deletions: {half_deleted:?}");
        let produced = feeds.lines(0).len();
        let txn = format!("tierlog/hdfs/{}/0", feeds.topic(0));
        let seen = cold_holds(&services, &prefix, "hdfs", produced, &txn);
        // Let the manager finish whatever it is doing, then look again: still exact.
        std::thread::sleep(Duration::from_secs(3));
        let seen_later = delta_read(&services, &prefix, "hdfs", &[&txn]).unwrap();
        for seen in [&seen, &seen_later] {
            assert_eq!(seen["rows"], produced, "{failpoint}: {seen}");
            assert_eq!(seen["distinct_offsets"], produced, "{failpoint}: each row once: {seen}");
            assert_eq!(seen["txn"][&txn], produced, "{failpoint}: {seen}");
        }
        assert_eq!(sql_count(&node, "hdfs"), produced as u64, "{failpoint}: hot still answers");
        eprintln!("{failpoint}: crashed, restarted, {produced} rows in cold once each ({} files)", seen_later["files"]);
        assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
    }
}

/// A fresh node (empty data folder, a consumer group with no offsets) on the same
/// object store starts each partition at the table's `txn` version: it reads none of
/// the rows already in cold, and takes the new ones.
#[test]
fn a_fresh_node_resumes_from_the_cold_checkpoint() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let prefix = unique_topic("fresh");
    let mut first = Node::start(&config(&services, &prefix, &format!("{}{POLICY}", feeds.config)));
    first.wait_ready(Duration::from_secs(60));
    feeds.produce(&services.kafka_brokers);
    let (topic, lines) = (feeds.topic(0), feeds.lines(0));
    let txn = format!("tierlog/hdfs/{topic}/0");
    cold_holds(&services, &prefix, "hdfs", lines.len(), &txn);
    assert!(first.terminate(Duration::from_secs(60)).success(), "{}", first.log());

    let group = unique_topic("fresh-group");
    let fresh = config(&services, &group, &format!("{}{POLICY}", feeds.config))
        .replace(&format!("/{group}\""), &format!("/{prefix}\""));
    assert!(fresh.contains(&format!("/{prefix}\"")), "the fresh node uses the first node's store: {fresh}");
    let mut node = Node::start(&fresh);
    node.wait_ready(Duration::from_secs(60));
    let assigned = format!("cold=Some({})", lines.len());
    wait_for("the partition assigned at the cold checkpoint", Duration::from_secs(60), || node.log().contains(&assigned).then_some(()));
    // With an empty hot tier it answers from cold alone, `match()` from the bundles
    // included, as the file says, over HTTP and psql.
    assert!(hot_folders(&node, "hdfs").is_empty(), "{:?}", hot_folders(&node, "hdfs"));
    assert_answers(&node, pg_port(&fresh), &hdfs_checks("hdfs", lines), "a fresh node, every row cold");
    let more = &lines[..100];
    produce_all(&services.kafka_brokers, topic, more.iter().map(Vec::as_slice));
    // SQL reads both tiers, so the cold rows count there; what the node consumed from
    // Kafka shows whether it re-read them.
    let total = (lines.len() + more.len()) as u64;
    wait_for("the new rows indexed", Duration::from_secs(60), || (sql_count(&node, "hdfs") >= total).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    let consumed = http::metric(&http::get(node.http, "/metrics").unwrap().body, "tierlog_ingest_messages_total{stream=\"hdfs\"}");
    assert_eq!(consumed, more.len() as u64, "the fresh node read only the new messages");
    assert_eq!(sql_count(&node, "hdfs"), total, "each row once across both tiers");
    let seen = cold_holds(&services, &prefix, "hdfs", lines.len() + more.len(), &txn);
    assert_eq!(seen["rows"], lines.len() + more.len(), "{seen}");
    assert_eq!(seen["distinct_offsets"], lines.len() + more.len(), "{seen}");
    assert_eq!(seen["txn"][&txn], lines.len() + more.len(), "{seen}");
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}

/// The folders in the node's hot folder of `stream` (none when it has none).
fn hot_folders(node: &Node, stream: &str) -> Vec<String> {
    let dir = node.dir.path().join("data/hot").join(stream);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// The cold entries of `GET /api/v1/lifecycle`.
fn cold_entries(node: &Node, stream: &str) -> Vec<Value> {
    let plan = http::get(node.http, &format!("/api/v1/lifecycle?stream={stream}")).unwrap().json();
    plan["streams"][0]["entries"].as_array().unwrap().iter().filter(|e| e["tier"] == "cold").cloned().collect()
}

/// `GET /api/v1/lifecycle` and `tierlog lifecycle explain` after everything migrated:
/// every cold segment, rows adding up to what was produced, each with the policy key
/// that decides its next step; the hot generations marked as already in cold.
fn lifecycle_explains_both_tiers(node: &Node, produced: u64, files: u64) {
    let r = http::get(node.http, "/api/v1/lifecycle?stream=access").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let plan = r.json();
    let entries = plan["streams"][0]["entries"].as_array().unwrap().clone();
    let of_tier = |tier: &str| entries.iter().filter(|e| e["tier"] == tier).cloned().collect::<Vec<Value>>();
    let (hot, cold) = (of_tier("hot"), of_tier("cold"));
    assert_eq!(cold.len() as u64, files, "{plan}");
    assert_eq!(cold.iter().map(|e| e["rows"].as_u64().unwrap()).sum::<u64>(), produced, "{plan}");
    // Small segments of one hour merge `compact_after` (1h) after the hour's last one,
    // sooner than retention (30d); a segment with nothing to merge waits for retention.
    let decided_by = |e: &Value| {
        let (next, why) = (e["next"].as_str().unwrap(), e["why"].as_str().unwrap());
        if next.starts_with("merge with ") {
            why == "policy.compact_after = 1h after the hour's last new segment"
        } else {
            next == "remove (retention)" && why == "policy.retention = 30d after its newest row"
        }
    };
    assert!(cold.iter().all(|e| decided_by(e) && e["at"].is_string()), "{plan}");
    // The hot copies of migrated generations wait for `hot_grace` (or are gone already).
    let migrated: Vec<&Value> = hot.iter().filter(|e| e["state"] == "migrated").collect();
    assert!(migrated.iter().all(|e| cold.iter().any(|c| c["id"] == e["id"])), "hot and cold ids are the same segments: {plan}");
    assert!(
        migrated.iter().all(|e| e["next"] == "delete from hot" && e["why"] == "policy.hot_grace = 3s after its cold commit" && e["at"].is_string()),
        "{plan}"
    );
    assert_eq!(http::get(node.http, "/api/v1/lifecycle?stream=nope").unwrap().status, 404);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .args(["lifecycle", "explain", "--stream", "access", "--addr", &node.http.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("stream access (cold table version ") && cold.iter().all(|e| text.contains(e["why"].as_str().unwrap())), "{text}");
    eprintln!("tierlog lifecycle explain:\n{text}");
}

/// The Parquet data files among `keys` (not the Delta log's checkpoints).
fn data_files(keys: &[String]) -> usize {
    keys.iter().filter(|k| k.ends_with(".parquet") && !k.contains("_delta_log")).count()
}

/// Keys under `prefix/` in the S3 server, from an unsigned ListObjectsV2 (moto answers
/// it): what is really there, whatever tierlog believes.
fn s3_keys(services: &Services, prefix: &str) -> Vec<String> {
    let addr = services.s3_endpoint.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let r = http::get(addr, &format!("/{}?list-type=2&prefix={prefix}/", services.s3_bucket)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_string).collect()
}

/// Retention removes the segments whose newest row is past it, in one commit, and
/// `retention_grace` later deletes their Parquet files and bundles; killed in the middle
/// of that deletion, the restarted node finishes it. Rows produced afterwards stay.
#[test]
fn retention_removes_expired_segments_their_files_and_bundles() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let prefix = unique_topic("retention");
    // Text rows carry the Kafka record time (now): they expire `retention` after the produce.
    let policy = format!("{POLICY}retention = \"45s\"\nretention_grace = \"5s\"\n");
    let config = config(&services, &prefix, &format!("{}{policy}[query]\ntimeout = \"5s\"\n", feeds.config));
    let mut node = Node::start_env(&config, &[("TIERLOG_FAILPOINT", "during_retention")]);
    node.wait_ready(Duration::from_secs(60));
    feeds.produce(&services.kafka_brokers);
    let (topic, lines) = (feeds.topic(0), feeds.lines(0));
    let txn = format!("tierlog/hdfs/{topic}/0");
    let seen = cold_holds(&services, &prefix, "hdfs", lines.len(), &txn);
    let files = seen["files"].as_u64().unwrap();
    let bundles = |keys: &[String]| keys.iter().filter(|k| k.ends_with(".index")).count() as u64;
    let keys = s3_keys(&services, &prefix);
    assert_eq!((data_files(&keys) as u64, bundles(&keys)), (files, files), "one file and one bundle per segment: {keys:?}");

    let status = node.wait_exit(Duration::from_secs(180));
    assert!(!status.success() && node.log().contains("failpoint 'during_retention' reached"), "{status}\n{}", node.log());
    let gone = delta_read(&services, &prefix, "hdfs", &[&txn]).unwrap();
    assert_eq!(gone["rows"], 0, "the retention commit landed before the crash: {gone}");
    assert_eq!(gone["txn"][&txn], lines.len(), "the cold checkpoint outlives the rows: {gone}");

    let mut node = Node::restart(node);
    node.wait_ready(Duration::from_secs(60));
    let keys = wait_for("the interrupted sweep finished", Duration::from_secs(120), || {
        let keys = s3_keys(&services, &prefix);
        (data_files(&keys) == 0 && bundles(&keys) == 0).then_some(keys)
    });
    assert!(keys.iter().all(|k| k.contains("/_delta_log/") || k.contains("/_probe/")), "nothing but the log left: {keys:?}");
    // Newer rows are not touched, and the restart re-read none of the expired ones.
    let more = &lines[..100];
    produce_all(&services.kafka_brokers, topic, more.iter().map(Vec::as_slice));
    wait_for("the new rows indexed", Duration::from_secs(60), || (sql_count(&node, "hdfs") == more.len() as u64).then_some(()));
    let metrics = http::get(node.http, "/metrics").unwrap().body;
    assert_eq!(http::metric(&metrics, "tierlog_ingest_messages_total{stream=\"hdfs\"}"), more.len() as u64);
    assert!(http::metric(&metrics, "tierlog_lifecycle_swept_segments_total{stream=\"hdfs\"}") >= 1, "the start swept");
    assert_eq!(sql_count(&node, "hdfs"), more.len() as u64, "only the new rows answer");
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}

/// A query that pinned the cold version before a retention commit finishes with that
/// version's answer: the node holds each query for a while after its pin (pausepoint
/// `after_cold_pin`), the removal lands meanwhile, and the files stay until
/// `retention_grace` (which config validation keeps above `query.timeout`). An outside
/// reader (Python `deltalake` time travel) reads the old version whole as well; then the
/// sweep deletes the files, and new queries see only what retention kept.
#[test]
fn a_query_pinned_before_retention_finishes_with_its_version() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let prefix = unique_topic("pinned");
    let policy = format!("{POLICY}retention = \"30s\"\nretention_grace = \"50s\"\n");
    let config = config(&services, &prefix, &format!("{}{policy}[query]\ntimeout = \"45s\"\n", feeds.config));
    let mut node = Node::start_env(&config, &[("TIERLOG_PAUSEPOINT", "after_cold_pin=35000")]);
    node.wait_ready(Duration::from_secs(60));
    feeds.produce(&services.kafka_brokers);
    let (topic, lines) = (feeds.topic(0), feeds.lines(0));
    let txn = format!("tierlog/hdfs/{topic}/0");
    let pinned = cold_holds(&services, &prefix, "hdfs", lines.len(), &txn);
    let version = pinned["version"].as_u64().unwrap();

    // Pins now (rows expire 30 s after the produce), reads 35 s later: after the removal.
    let http_addr = node.http;
    let query = std::thread::spawn(move || {
        let r = http::post_json(http_addr, "/api/v1/sql", &json!({ "sql": "SELECT count(*) AS n, count(DISTINCT _offset) AS o FROM hdfs" }));
        (r, std::time::Instant::now())
    });
    let removed = wait_for("the retention commit", Duration::from_secs(120), || {
        delta_read(&services, &prefix, "hdfs", &[&txn]).filter(|s| s["rows"] == 0)
    });
    let removed_at = std::time::Instant::now();
    assert!(removed["operations"].as_array().unwrap().iter().any(|o| o == "DELETE"), "{removed}");
    let (answer, answered_at) = query.join().unwrap();
    let answer = answer.expect("the query answers");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answered_at > removed_at, "the query read its files after the removal");
    assert_eq!(answer.json()["rows"], json!([{ "n": lines.len(), "o": lines.len() }]), "the pinned version's answer: {}", answer.body);
    eprintln!("the pinned query answered {:.1} s after the removal", (answered_at - removed_at).as_secs_f64());
    let old = delta_read(&services, &prefix, "hdfs", &[&txn, &format!("version:{version}")]).expect("the old version reads");
    assert_eq!(old["rows"], lines.len(), "every row of the pinned version, read after the removal: {old}");
    assert_eq!(old["distinct_offsets"], lines.len(), "{old}");

    wait_for("the sweep after retention_grace", Duration::from_secs(180), || (data_files(&s3_keys(&services, &prefix)) == 0).then_some(()));
    let swept_after = removed_at.elapsed();
    assert!(swept_after >= Duration::from_secs(45), "not swept before the grace: {swept_after:?}");
    eprintln!("files deleted {:.0} s after the removal (retention_grace 50s)", swept_after.as_secs_f64());
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
