//! Two nodes of one group index overlapping offsets of a partition: node A is killed
//! (abort, failpoint `before_group_commit`) after its first index commit and before the
//! group learns of it, so node B, taking the partition, indexes those offsets again.
//! Both migrate what they hold into the same cold table; cold keeps each row once, and
//! the dropped-duplicates counters of the two nodes add up to exactly the rows A held.

mod support;

use std::time::Duration;

use support::cold::delta_read;
use support::kafka::TextStreams;
use support::node::{Node, config};
use support::{hot, http, services, unique_topic, wait_for};

const POLICY: &str = "[streams.policy]\ncommit_interval = \"500ms\"\nrollover_max_age = \"3s\"\nhot_for = \"1s\"\nhot_grace = \"2s\"\n";
const DROPPED: &str = r#"tierlog_lifecycle_dropped_duplicate_rows_total{stream="hdfs"}"#;

fn metric(node: &Node, series: &str) -> u64 {
    http::metric(&http::get(node.http, "/metrics").unwrap().body, series)
}

#[test]
fn overlapping_offsets_of_two_nodes_are_kept_once_in_cold() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let (topic, produced) = (feeds.topic(0).to_string(), feeds.lines(0).len());
    let prefix = unique_topic("overlap");
    let config = config(&services, &prefix, &format!("{}{POLICY}", feeds.config));
    let txn = format!("tierlog/hdfs/{topic}/0");

    // A indexes, commits its index, and dies before its first group commit.
    let mut a = Node::start_env(&config, &[("TIERLOG_FAILPOINT", "before_group_commit")]);
    a.wait_ready(Duration::from_secs(60));
    feeds.produce(&services.kafka_brokers);
    let status = a.wait_exit(Duration::from_secs(120));
    assert!(!status.success() && a.log().contains("failpoint 'before_group_commit' reached"), "{status}\n{}", a.log());
    let held_by_a = hot::rows(&a.dir.path().join("data"), "hdfs").len();
    assert!(held_by_a > 0, "A committed rows to its index before it died");

    // B (its own data folder, same group and store) starts where the group is: at the
    // beginning, so it indexes A's rows again, and migrates everything.
    let mut b = Node::start(&config);
    b.wait_ready(Duration::from_secs(60));
    let seen = wait_for("B's rows in cold", Duration::from_secs(240), || {
        delta_read(&services, &prefix, "hdfs", &[&txn]).filter(|s| s["rows"].as_u64() >= Some(produced as u64))
    });
    assert_eq!(seen["rows"], produced, "{seen}");
    let dropped_by_b = metric(&b, DROPPED);
    assert!(b.terminate(Duration::from_secs(60)).success(), "{}", b.log());

    // A comes back and migrates its copy of the same offsets: all of it already held.
    let mut a = Node::restart(a);
    a.wait_ready(Duration::from_secs(60));
    wait_for("A's hot copy migrated and deleted", Duration::from_secs(240), || {
        hot::rows(&a.dir.path().join("data"), "hdfs").is_empty().then_some(())
    });
    let dropped_by_a = metric(&a, DROPPED);
    eprintln!("A held {held_by_a} rows B indexed again; dropped as duplicates: {dropped_by_a} by A, {dropped_by_b} by B");
    assert_eq!(dropped_by_a + dropped_by_b, held_by_a as u64, "the duplicates counted, each once");
    assert!(dropped_by_a > 0, "the counter moved on the node that migrated second");

    let seen = delta_read(&services, &prefix, "hdfs", &[&txn]).unwrap();
    assert_eq!(seen["rows"], produced, "cold holds each row once: {seen}");
    assert_eq!(seen["distinct_offsets"], produced, "{seen}");
    assert_eq!(seen["txn"][&txn], produced, "{seen}");
    assert!(a.terminate(Duration::from_secs(60)).success(), "{}", a.log());
}
