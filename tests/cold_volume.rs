//! 100,000 messages of a real log (the Apache access log, replayed ten times as JSON)
//! over two partitions end up in the cold table with `hot_for` of a few seconds: Python
//! `deltalake` and Polars read the live snapshot and count every row, each (topic,
//! partition, offset) once, the declared columns typed, counts per method as the input
//! says and each partition's `txn` at its next offset; the hot generations are gone
//! after the grace period and SQL answers from cold.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::answers::{http_rows, parse_access, to_json};
use support::cold::delta_read;
use support::kafka::{create_topic, lines, produce_all};
use support::node::{Node, config};
use support::{dataset, hot, services, unique_topic, wait_for};

const MESSAGES: usize = 100_000;

#[test]
fn a_hundred_thousand_messages_reach_cold_exactly_once() {
    let Some(services) = services() else { return };
    let topic = unique_topic("volume");
    create_topic(&services.kafka_brokers, &topic, 2);
    let streams = format!(
        "[[streams]]\nname = \"access\"\ntopics = [\"{topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         fields = [{{ name = \"client\", type = \"keyword\" }}, {{ name = \"method\", type = \"keyword\" }}, \
         {{ name = \"path\", type = \"text\" }}, {{ name = \"status\", type = \"i64\" }}, {{ name = \"bytes\", type = \"i64\" }}]\n\
         [streams.policy]\ncommit_interval = \"500ms\"\nrollover_max_age = \"3s\"\nrollover_max_docs = 20000\n\
         hot_for = \"2s\"\nhot_grace = \"2s\"\nretention = \"36500d\"\n"
    );
    let prefix = unique_topic("volume");
    let mut node = Node::start(&config(&services, &prefix, &streams));
    node.wait_ready(Duration::from_secs(60));

    let access: Vec<_> = lines(&dataset("apache/apache_access.log")).iter().map(|l| parse_access(&String::from_utf8_lossy(l))).collect();
    let payloads: Vec<Vec<u8>> = access.iter().map(to_json).cycle().take(MESSAGES).collect();
    let mut methods: BTreeMap<String, u64> = BTreeMap::new();
    for a in access.iter().cycle().take(MESSAGES) {
        *methods.entry(a.method.clone()).or_default() += 1;
    }
    let started = Instant::now();
    let delivered = produce_all(&services.kafka_brokers, &topic, payloads.iter().map(Vec::as_slice));
    let mut next: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, partition, offset) in &delivered {
        let n = next.entry(*partition).or_default();
        *n = (*n).max(offset + 1);
    }
    assert_eq!(next.len(), 2, "both partitions got messages: {next:?}");
    eprintln!("produced {MESSAGES} messages in {:.1} s: next offsets {next:?}", started.elapsed().as_secs_f64());

    let txns: Vec<String> = next.keys().map(|p| format!("tierlog/access/{topic}/{p}")).collect();
    let mut args: Vec<&str> = txns.iter().map(String::as_str).collect();
    args.push("by:method");
    let seen = wait_for("every message in the cold table", Duration::from_secs(600), || {
        delta_read(&services, &prefix, "access", &args).filter(|seen| seen["rows"].as_u64() >= Some(MESSAGES as u64))
    });
    eprintln!("all {MESSAGES} rows cold {:.1} s after the first produce, in {} files", started.elapsed().as_secs_f64(), seen["files"]);
    assert_eq!(seen["rows"], MESSAGES, "{seen}");
    assert_eq!(seen["distinct_offsets"], MESSAGES, "each (topic, partition, offset) once");
    for (partition, txn) in next.keys().zip(&txns) {
        assert_eq!(seen["txn"][txn], next[partition], "the cold checkpoint of partition {partition}");
    }
    let columns = &seen["columns"];
    assert_eq!(columns["status"], "Int64");
    assert_eq!(columns["bytes"], "Int64");
    assert_eq!(columns["method"], "String");
    assert_eq!(columns["_partition"], "Int32");
    assert_eq!(columns["_timestamp"], "Datetime(time_unit='us', time_zone='UTC')");
    let counted: BTreeMap<String, u64> =
        seen["counts"]["method"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    assert_eq!(counted, methods, "rows per method, as the input has them");

    let data_dir = node.dir.path().join("data");
    wait_for("the hot generations gone after hot_grace", Duration::from_secs(180), || {
        hot::rows(&data_dir, "access").is_empty().then_some(())
    });
    let tiers = http_rows(&node, "SELECT _tier, count(*) AS n FROM access GROUP BY 1", &["_tier", "n"]);
    assert_eq!(tiers, vec![vec!["cold".to_string(), MESSAGES.to_string()]]);
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
