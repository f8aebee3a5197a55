//! One table per stream across both tiers, on the S3 server and in a local folder: the
//! SQL answers computed from the dataset files (counts per keyword, phrase `match()`, a
//! per-minute histogram, `_attributes` filters) hold before, during and after the
//! lifecycle moves every generation to the cold table, over HTTP and psql; `_tier` counts always add up to what
//! was produced; messages that could not be decoded move to the cold error table and stay
//! queryable; `/api/v1/streams` counts each row in the tier queries read it from; and a
//! narrow `_timestamp` range reads only the cold files whose statistics overlap it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::answers::{Access, Check, access_checks, assert_answers, hdfs_checks, http_rows, parse_access, to_json, utc};
use support::cold::{delta_read, delta_read_local};
use support::kafka::{create_topic, lines, produce_all};
use support::psql::{pg_port, psql};
use support::{dataset, http, node, services, unique_topic, wait_for};

const POLICY: &str =
    "[streams.policy]\ncommit_interval = \"500ms\"\nrollover_max_age = \"3s\"\nrollover_max_docs = 1000\nhot_for = \"10s\"\nretention = \"36500d\"\n";

/// Rows per tier of `table`, over HTTP.
fn tiers(node: &node::Node, table: &str) -> BTreeMap<String, u64> {
    let rows = http_rows(node, &format!("SELECT _tier, count(*) AS n FROM {table} GROUP BY _tier"), &["_tier", "n"]);
    rows.into_iter().map(|r| (r[0].clone(), r[1].parse().unwrap())).collect()
}

/// Where the node's cold tier lives.
enum Cold {
    S3,
    Local(tempfile::TempDir),
}

#[test]
fn answers_do_not_change_while_data_moves_to_cold_on_the_s3_server() {
    answers_do_not_change_while_data_moves(Cold::S3);
}

#[test]
fn answers_do_not_change_while_data_moves_to_cold_in_a_local_folder() {
    answers_do_not_change_while_data_moves(Cold::Local(tempfile::tempdir().unwrap()));
}

fn answers_do_not_change_while_data_moves(cold: Cold) {
    let Some(services) = services() else { return };
    let (hdfs_topic, access_topic) = (unique_topic("tiers-hdfs"), unique_topic("tiers-access"));
    create_topic(&services.kafka_brokers, &hdfs_topic, 1);
    create_topic(&services.kafka_brokers, &access_topic, 2);
    let streams = format!(
        "[[streams]]\nname = \"hdfs\"\ntopics = [\"{hdfs_topic}\"]\nformat = \"text\"\n{POLICY}\
         [[streams]]\nname = \"access\"\ntopics = [\"{access_topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         fields = [{{ name = \"client\", type = \"keyword\" }}, {{ name = \"method\", type = \"keyword\" }}, \
         {{ name = \"path\", type = \"text\" }}, {{ name = \"status\", type = \"i64\" }}, {{ name = \"bytes\", type = \"i64\" }}]\n{POLICY}"
    );
    let prefix = unique_topic("tiers");
    let mut config = node::config(&services, &prefix, &streams);
    if let Cold::Local(dir) = &cold {
        config = node::with_local_cold(&config, dir.path());
    }
    // No data cache: each query reads from the store, so the test sees which files it reads.
    let config = config.replacen("[cold]\n", "[cold]\ncache_size = 1\nmemory_cache_size = 1\n", 1);
    let pg = pg_port(&config);
    // Each object the node reads is logged: the test sees which files a query touched.
    let mut node = node::Node::start_env(&config, &[("RUST_LOG", "info,tierlog_cold::metered=debug")]);
    node.wait_ready(Duration::from_secs(60));

    let hdfs = lines(&dataset("loghub/HDFS_2k.log"));
    let access: Vec<Access> =
        lines(&dataset("apache/apache_access.log")).iter().map(|l| parse_access(&String::from_utf8_lossy(l))).collect();
    produce_all(&services.kafka_brokers, &hdfs_topic, hdfs.iter().map(Vec::as_slice));
    // Every 50th message is not JSON: an error row, which must move to cold as well.
    let mut payloads: Vec<Vec<u8>> = access.iter().map(to_json).collect();
    let bad: Vec<String> = (0..payloads.len() / 50).map(|i| format!("not json, message {i}")).collect();
    for (i, b) in bad.iter().enumerate() {
        payloads.insert(i * 51 + 25, b.clone().into_bytes());
    }
    // The log is in time order: its first quarter fills the first generations, which
    // roll over (rollover_max_age) before the rest comes, so later files hold only later
    // rows and a narrow range on the first minute has files to prune.
    let first_part = payloads.len() / 4;
    produce_all(&services.kafka_brokers, &access_topic, payloads[..first_part].iter().map(Vec::as_slice));
    wait_for("the first quarter indexed", Duration::from_secs(120), || {
        (["access", "access_errors"].iter().map(|t| tiers(&node, t).values().sum::<u64>()).sum::<u64>() == first_part as u64).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    produce_all(&services.kafka_brokers, &access_topic, payloads[first_part..].iter().map(Vec::as_slice));
    let produced = [("hdfs", hdfs.len() as u64), ("access", access.len() as u64), ("access_errors", bad.len() as u64)];
    let total = |t: &BTreeMap<String, u64>| t.values().sum::<u64>();
    wait_for("every row indexed", Duration::from_secs(120), || {
        produced.iter().all(|(table, n)| total(&tiers(&node, table)) == *n).then_some(())
    });

    let mut checks: Vec<Check> = [hdfs_checks("hdfs", &hdfs), access_checks("access", &access)].into_iter().flatten().collect();
    // A narrow time range: the access log's first minute.
    let first = access.iter().min_by_key(|a| a.epoch_s).unwrap();
    let minute = first.epoch_s - first.epoch_s.rem_euclid(60);
    let in_minute = access.iter().filter(|a| (minute..minute + 60).contains(&a.epoch_s)).count();
    let narrow = format!("FROM access WHERE _timestamp >= '{}' AND _timestamp < '{}'", utc(minute), utc(minute + 60));
    assert_eq!(utc(first.epoch_s), first.ts, "utc() agrees with the log's own time");
    checks.push(Check {
        statement: format!("SELECT count(*) AS n {narrow}"),
        names: vec!["n"],
        expected: vec![vec![in_minute.to_string()]],
    });

    // Until every row is cold: the same answers at every round, whatever the split.
    let started = Instant::now();
    let mut splits = Vec::new();
    loop {
        assert_answers(&node, pg, &checks, &format!("round {} ({:.0} s)", splits.len() + 1, started.elapsed().as_secs_f64()));
        let split: Vec<BTreeMap<String, u64>> = produced.iter().map(|(table, _)| tiers(&node, table)).collect();
        for ((table, n), split) in produced.iter().zip(&split) {
            assert_eq!(total(split), *n, "{table}: the tiers add up to what was produced: {split:?}");
        }
        let all_cold = produced.iter().zip(&split).all(|((_, n), s)| s.get("cold") == Some(n));
        splits.push(split);
        if all_cold {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not all cold after 300 s: {splits:?}\n{}", node.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let before_all_cold = splits.iter().filter(|s| s.iter().any(|t| t.contains_key("hot"))).count();
    assert!(before_all_cold > 0, "some rounds ran while rows were still hot: {splits:?}");
    eprintln!(
        "{} statements answered alike over HTTP and psql in each of {} rounds ({before_all_cold} with hot rows, last all cold) in {:.0} s; splits {splits:?}",
        checks.len(),
        splits.len(),
        started.elapsed().as_secs_f64()
    );
    for (table, n) in produced {
        assert_eq!(psql(pg, &format!("SELECT _tier, count(*) FROM {table} GROUP BY 1")).unwrap(), format!("cold,{n}"), "{table}");
        // `_tier = '…'` leaves the other tier's scan out, and answers the same.
        let count = |tier: &str| psql(pg, &format!("SELECT count(*) FROM {table} WHERE _tier = '{tier}'")).unwrap();
        assert_eq!((count("cold"), count("hot")), (n.to_string(), "0".to_string()), "{table}");
        let explain = |tier: &str| {
            let statement = json!({ "sql": format!("SELECT count(*) FROM {table} WHERE _tier = '{tier}'") });
            http::post_json(node.http, "/api/v1/sql?explain=true", &statement).unwrap().json()
        };
        let scans = |plan: &Value| plan["cold"]["scans"].as_array().map_or(0, Vec::len);
        assert_eq!(scans(&explain("hot")), 0, "{table}: {}", explain("hot"));
        assert!(scans(&explain("cold")) > 0, "{table}: {}", explain("cold"));
    }
    // The error rows read back from cold as they were sent.
    let payloads_back = psql(pg, "SELECT payload FROM access_errors ORDER BY payload").unwrap();
    let mut sent = bad.clone();
    sent.sort();
    assert_eq!(payloads_back, sent.join("\n"), "cold error rows keep their payloads");

    // Each row counts in the tier queries read it from: hot copies still in their grace
    // period are cold already.
    let r = http::get(node.http, "/api/v1/streams").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let info = r.json();
    let access_info = info["streams"].as_array().unwrap().iter().find(|s| s["name"] == "access").unwrap().clone();
    let (hot_tier, cold_tier) = (&access_info["tiers"]["hot"], &access_info["tiers"]["cold"]);
    assert_eq!(cold_tier["rows"].as_u64(), Some(access.len() as u64), "{access_info}");
    assert_eq!(cold_tier["error_rows"].as_u64(), Some(bad.len() as u64), "{access_info}");
    assert_eq!(hot_tier["docs"].as_u64(), Some(0), "{access_info}");
    let oldest = access.iter().map(|a| a.epoch_s).min().unwrap();
    assert_eq!(cold_tier["min_timestamp"].as_str().map(|t| &t[..19]), Some(&utc(oldest)[..19]), "{access_info}");
    assert!(cold_tier["bytes"].as_u64().unwrap() > 0 && cold_tier["segments"].as_u64().unwrap() > 0, "{access_info}");
    // The lifecycle explains the error table's segments too.
    let plan = http::get(node.http, "/api/v1/lifecycle?stream=access").unwrap().json();
    let error_rows: u64 = plan["streams"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tier"] == "cold" && e["table"] == "access_errors")
        .map(|e| e["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(error_rows, bad.len() as u64, "{plan}");

    // The narrow range reads only the files whose `_timestamp` statistics overlap it.
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": format!("EXPLAIN SELECT count(*) {narrow}") })).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let plan: Vec<String> = r.json()["rows"].as_array().unwrap().iter().map(|row| row["plan"].as_str().unwrap().to_string()).collect();
    let line = plan
        .iter()
        .flat_map(|p| p.lines())
        .find(|l| l.contains("ColdScanExec"))
        .unwrap_or_else(|| panic!("no cold scan in {plan:?}"))
        .to_string();
    let counts: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect::<Vec<_>>()[1..].to_vec(); // after the version: files read, of total, pruned by time
    let (read, of, pruned) = (counts[0], counts[1], counts[2]);
    assert!(pruned > 0 && read + pruned == of, "{line}");
    eprintln!("EXPLAIN of the access log's first minute: {line}");

    // Running it reads exactly the files whose rows overlap the minute, as Python reads
    // each live file's `_timestamp` range from the file itself.
    let (seen, data_root) = match &cold {
        Cold::S3 => (delta_read(&services, &prefix, "access", &["files"]), format!("{prefix}/tables/access/")),
        Cold::Local(dir) => (delta_read_local(dir.path(), "access", &["files"]), "tables/access/".to_string()),
    };
    let seen = seen.expect("the access table exists");
    let (lo, hi) = (minute * 1_000_000, (minute + 60) * 1_000_000 - 1);
    let files = seen["file_times"].as_object().unwrap();
    let overlapping: BTreeSet<String> =
        files.iter().filter(|(_, t)| t[0].as_i64().unwrap() <= hi && t[1].as_i64().unwrap() >= lo).map(|(p, _)| p.clone()).collect();
    let data_gets = || {
        let metrics = http::get(node.http, "/metrics").unwrap().body;
        http::metric(&metrics, r#"tierlog_cold_requests_total{op="get",object="data"}"#)
    };
    let (log_before, gets_before) = (node.log().len(), data_gets());
    let rows = http_rows(&node, &format!("SELECT count(*) AS n {narrow}"), &["n"]);
    assert_eq!(rows, vec![vec![in_minute.to_string()]]);
    let gets = data_gets() - gets_before;
    let read: BTreeSet<String> = node.log()[log_before..]
        .lines()
        .filter(|l| l.contains("cold read"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("key=")))
        .filter_map(|key| key.strip_prefix(data_root.as_str()))
        .filter(|path| path.ends_with(".parquet") && !path.starts_with("_delta_log/"))
        .map(str::to_string)
        .collect();
    assert_eq!(read, overlapping, "the files the query read are those whose rows overlap the minute");
    assert!(read.len() < files.len(), "some files were pruned: {} of {} read", read.len(), files.len());
    assert!(gets >= read.len() as u64, "/metrics counts each read: {gets} GETs of data for {} files", read.len());
    eprintln!("the first minute's count read {} of {} cold data files in {gets} GETs (seen through the metered store)", read.len(), files.len());
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
