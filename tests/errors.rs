//! Malformed messages mixed into streams become error rows with the right reason; every
//! good message is indexed; the node keeps running.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use support::hot::{self, RowId};
use support::kafka::{TestProducer, create_topic, lines};
use support::{dataset, http, node, services, unique_topic, wait_for};

/// The n-th malformed payload and the reason the test expects for it.
fn malformed(n: usize) -> (Vec<u8>, &'static str) {
    match n % 5 {
        0 => ([b"{\"query\": \"caf\xe9 ".as_slice(), n.to_string().as_bytes(), b"\"}"].concat(), "invalid_utf8"),
        1 => (format!("{{\"query\": \"unterminated {n}").into_bytes(), "invalid_json"),
        2 => (format!("{{\"query\": {n}, \"qtype_name\": \"A\"}}").into_bytes(), "wrong_type"),
        3 => (format!("{{\"ts\": \"not a time {n}\", \"query\": \"x\"}}").into_bytes(), "bad_timestamp"),
        _ => (format!("{{\"query\": \"{}\"}}", "y".repeat(70_000)).into_bytes(), "too_large"),
    }
}

#[test]
fn malformed_messages_become_error_rows_and_nothing_stops() {
    let Some(services) = services() else { return };
    let json_topic = unique_topic("errors-json");
    let otlp_topic = unique_topic("errors-otlp");
    create_topic(&services.kafka_brokers, &json_topic, 3);
    create_topic(&services.kafka_brokers, &otlp_topic, 1);
    let streams = format!(
        "[[streams]]\nname = \"dns\"\ntopics = [\"{json_topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         max_message_bytes = \"64KiB\"\nfields = [{{ name = \"query\", type = \"text\" }}]\n\
         [[streams]]\nname = \"otel\"\ntopics = [\"{otlp_topic}\"]\nformat = \"otlp_json\"\n"
    );
    let mut node = node::Node::start(&node::config(&services, &unique_topic("errors"), &streams));
    node.wait_ready(Duration::from_secs(60));

    // 5,000 good DNS records with a malformed one before every 6th (833 in all).
    let good = lines(&dataset("zeek/dns.json.gz"));
    let mut producer = TestProducer::new(&services.kafka_brokers, &json_topic);
    let mut kinds = Vec::new(); // per message: None = good, Some(reason)
    for (i, line) in good.iter().take(5000).enumerate() {
        if i % 6 == 5 {
            let (payload, reason) = malformed(i / 6);
            producer.send(&payload);
            kinds.push(Some(reason));
        }
        producer.send(line);
        kinds.push(None);
    }
    let json_positions = producer.finish();

    // The rest of the 1,000 malformed messages are OTLP requests, mixed with 100 good.
    let num_bad_otlp = 1000 - kinds.iter().flatten().count();
    let sample: serde_json::Value = serde_json::from_slice(&std::fs::read(dataset("otlp/logs.json")).unwrap()).unwrap();
    let sample = sample.to_string();
    let total = 100 + num_bad_otlp;
    let mut otlp_kinds: Vec<Option<&str>> = (0..total).map(|i| (i >= 100).then_some("invalid_otlp")).collect();
    // Interleave good and bad: position i takes element (i * 7) mod total (7 and total coprime).
    assert_ne!(total % 7, 0);
    otlp_kinds = (0..total).map(|i| otlp_kinds[i * 7 % total]).collect();
    let mut producer = TestProducer::new(&services.kafka_brokers, &otlp_topic);
    for (i, kind) in otlp_kinds.iter().enumerate() {
        match kind {
            None => producer.send(sample.as_bytes()),
            Some(_) => producer.send(format!("{{\"resourceLogs\": {i}}}").as_bytes()),
        }
    }
    let otlp_positions = producer.finish();
    let total_bad = kinds.iter().chain(&otlp_kinds).filter(|k| k.is_some()).count();
    assert_eq!(total_bad, 1000);

    // What the test expects, from what it sent.
    let mut expected: BTreeMap<RowId, Option<&str>> = BTreeMap::new();
    for ((p, o), kind) in json_positions.iter().zip(&kinds) {
        expected.insert((json_topic.clone(), i64::from(*p), *o, 0), *kind);
    }
    for ((p, o), kind) in otlp_positions.iter().zip(&otlp_kinds) {
        expected.insert((otlp_topic.clone(), i64::from(*p), *o, 0), *kind);
    }

    let data_dir = node.dir.path().join("data");
    let read = || -> Vec<_> { ["dns", "otel"].iter().flat_map(|s| hot::rows(&data_dir, s)).collect() };
    wait_for("every message indexed", Duration::from_secs(120), || (read().len() >= expected.len()).then_some(()));
    let rows = read();
    let got: BTreeMap<RowId, Option<&str>> = rows
        .iter()
        .map(|(id, kind, reason)| {
            assert_eq!(*kind == 1, reason.is_some(), "{id:?}: _kind and _error_reason disagree");
            (id.clone(), reason.as_deref())
        })
        .collect();
    assert_eq!(got.len(), rows.len(), "duplicate rows");
    assert_eq!(got, expected);

    // The node is alive and counted every reason.
    assert!(node.is_running(), "{}", node.log());
    let metrics = http::get(node.http, "/metrics").unwrap().body;
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in kinds.iter().chain(&otlp_kinds).flatten() {
        *by_reason.entry(reason).or_default() += 1;
    }
    for (reason, n) in &by_reason {
        let stream = if *reason == "invalid_otlp" { "otel" } else { "dns" };
        let line = format!("tierlog_ingest_errors_total{{stream=\"{stream}\",reason=\"{reason}\"}} {n}\n");
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
    let reasons: BTreeSet<&str> = by_reason.keys().copied().collect();
    assert_eq!(reasons.len(), 6, "every kind of malformed input was sent");
}
