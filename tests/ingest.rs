//! Kafka → hot tier against the real broker: counts exact, nothing twice.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::hot::{self, RowId};
use support::kafka::{create_topic, lines, produce_all};
use support::{dataset, node, services, unique_topic, wait_for};

/// Three streams (NDJSON with declared fields, NDJSON with `_attributes` only, plain
/// text) fed by fresh 3-partition topics.
struct Topics {
    dns: String,
    weird: String,
    text: String,
}

impl Topics {
    fn new(brokers: &str, prefix: &str) -> Topics {
        let t = Topics {
            dns: unique_topic(&format!("{prefix}-dns")),
            weird: unique_topic(&format!("{prefix}-weird")),
            text: unique_topic(&format!("{prefix}-text")),
        };
        for topic in [&t.dns, &t.weird, &t.text] {
            create_topic(brokers, topic, 3);
        }
        t
    }

    fn streams(&self) -> String {
        format!(
            r#"
[[streams]]
name = "dns"
topics = ["{dns}"]
format = "json"
timestamp_field = "ts"
fields = [
  {{ name = "query", type = "text" }},
  {{ name = "qtype_name", type = "keyword" }},
  {{ name = "rcode_name", type = "keyword" }},
  {{ name = "orig_p", type = "i64", source = "id.orig_p" }},
]
# The dataset's rows are years old: a clean restart seals their generation, and
# retention (counted from _timestamp) would delete it.
[streams.policy]
retention = "36500d"

[[streams]]
name = "weird"
topics = ["{weird}"]
format = "json"
timestamp_field = "ts"
[streams.policy]
retention = "36500d"

[[streams]]
name = "loghub"
topics = ["{text}"]
format = "text"
"#,
            dns = self.dns,
            weird = self.weird,
            text = self.text
        )
    }
}

const LOGHUB: &[&str] = &[
    "Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux", "Mac", "OpenStack", "Proxifier", "Spark",
];

/// Every committed row id of the three streams.
fn hot_ids(data_dir: &std::path::Path) -> Vec<RowId> {
    ["dns", "weird", "loghub"].iter().flat_map(|s| hot::rows(data_dir, s)).map(|(id, _, _)| id).collect()
}

fn as_row_ids(produced: &[(String, i64, i64)]) -> BTreeSet<RowId> {
    produced.iter().map(|(t, p, o)| (t.clone(), *p, *o, 0)).collect()
}

/// Asserts the hot tier holds exactly `expected`, each once.
fn assert_exactly_once(got: &[RowId], expected: &BTreeSet<RowId>) {
    let unique: BTreeSet<RowId> = got.iter().cloned().collect();
    let duplicates = got.len() - unique.len();
    let missing = expected.difference(&unique).count();
    let unexpected = unique.difference(expected).count();
    assert_eq!((duplicates, missing, unexpected), (0, 0, 0), "duplicates, missing, unexpected rows");
}

#[test]
fn hundred_thousand_messages_reach_the_hot_tier_exactly_once() {
    let Some(services) = services() else { return };
    let topics = Topics::new(&services.kafka_brokers, "bulk");
    let mut node = node::Node::start(&node::config(&services, &unique_topic("bulk"), &topics.streams()));
    node.wait_ready(Duration::from_secs(60));

    let dns = lines(&dataset("zeek/dns.json.gz"));
    let weird = lines(&dataset("zeek/weird.json.gz"));
    let text: Vec<Vec<u8>> =
        LOGHUB.iter().flat_map(|name| lines(&dataset(&format!("loghub/{name}_2k.log")))).collect();
    let started = Instant::now();
    let mut produced = produce_all(&services.kafka_brokers, &topics.dns, dns.iter().map(Vec::as_slice));
    produced.extend(produce_all(&services.kafka_brokers, &topics.weird, weird.iter().map(Vec::as_slice)));
    produced.extend(produce_all(&services.kafka_brokers, &topics.text, text.iter().map(Vec::as_slice)));
    let last_produce = Instant::now();
    let expected = as_row_ids(&produced);
    assert_eq!(expected.len(), dns.len() + weird.len() + text.len());
    assert!(expected.len() >= 100_000, "{} messages", expected.len());
    eprintln!("produced {} messages in {:.2} s", expected.len(), (last_produce - started).as_secs_f64());

    let data_dir = node.dir.path().join("data");
    wait_for("every message in the hot tier", Duration::from_secs(180), || {
        (hot_ids(&data_dir).len() >= expected.len()).then_some(())
    });
    eprintln!("all searchable {:.2} s after the last produce", last_produce.elapsed().as_secs_f64());
    assert_exactly_once(&hot_ids(&data_dir), &expected);

    // And still exactly once after a clean restart: nothing is re-read.
    assert!(node.terminate(Duration::from_secs(60)).success());
    let mut node = node::Node::restart(node);
    node.wait_ready(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_exactly_once(&hot_ids(&data_dir), &expected);
}
