//! The S3 server becomes unreachable for at least 60 s while generations are due for
//! migration (the node reaches it through a TCP proxy the test closes): the hot copies
//! stay whole, `/ready` and the log say what is wrong, nothing is migrated or deleted;
//! once the proxy opens again, migration retries and completes, and the cold table holds
//! every produced row once, as Python `deltalake` counts it.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cold::delta_read;
use support::kafka::TextStreams;
use support::node::{Node, config};
use support::proxy::TcpProxy;
use support::{hot, http, services, unique_topic, wait_for};

const POLICY: &str = "[streams.policy]\ncommit_interval = \"500ms\"\nrollover_max_age = \"2s\"\nhot_for = \"1s\"\nhot_grace = \"1s\"\n";

fn metric(node: &Node, series: &str) -> u64 {
    http::metric(&http::get(node.http, "/metrics").unwrap().body, series)
}

#[test]
fn migration_waits_out_an_s3_outage_and_loses_nothing() {
    let Some(services) = services() else { return };
    let s3 = services.s3_endpoint.trim_start_matches("http://").parse().expect("the S3 endpoint is http://host:port");
    let mut proxy = TcpProxy::start(s3);
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log")]);
    let prefix = unique_topic("s3-outage");
    let base = config(&services, &prefix, &format!("{}{POLICY}", feeds.config));
    let mut node = Node::start(&base.replace(&services.s3_endpoint, &format!("http://{}", proxy.addr)));
    node.wait_ready(Duration::from_secs(60));
    let (topic, produced) = (feeds.topic(0).to_string(), feeds.lines(0).len());
    let data_dir = node.dir.path().join("data");

    // The outage starts before the rows come: every generation falls due while it lasts.
    proxy.close();
    let outage = Instant::now();
    feeds.produce(&services.kafka_brokers);
    wait_for("every row in the hot tier", Duration::from_secs(120), || (hot::rows(&data_dir, "hdfs").len() == produced).then_some(()));

    // At least 60 s, and until the node has said both where it looks and what fails.
    let ready_says = wait_for("/ready reports the cold tier unavailable", Duration::from_secs(120), || {
        let r = http::get(node.http, "/ready")?;
        (r.status == 503 && r.body.contains("cold")).then_some(r.body)
    });
    wait_for("the log reports the failed migration", Duration::from_secs(240), || {
        node.log().contains("migration failed; will try again").then_some(())
    });
    let failures = metric(&node, r#"tierlog_lifecycle_failures_total{stream="hdfs",step="migrate"}"#);
    assert!(failures > 0, "failed migrations are counted");
    while outage.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
    }
    // Nothing moved, nothing was deleted: the hot copies hold every row, once.
    let rows = hot::rows(&data_dir, "hdfs");
    assert_eq!(rows.len(), produced, "the hot copies are kept while the commit cannot happen");
    assert!(hot::multiplicity(&rows).values().all(|n| *n == 1));
    assert_eq!(metric(&node, r#"tierlog_lifecycle_migrated_rows_total{stream="hdfs"}"#), 0);
    assert_eq!(metric(&node, r#"tierlog_lifecycle_deleted_hot_generations_total{stream="hdfs",reason="migrated"}"#), 0);
    // The streams API still answers: the hot tier, and why the cold one cannot be read.
    let streams = http::get(node.http, "/api/v1/streams").unwrap();
    assert_eq!(streams.status, 200, "{}", streams.body);
    let tiers = &streams.json()["streams"][0]["tiers"];
    assert_eq!(tiers["hot"]["docs"], produced, "{tiers}");
    assert!(tiers["cold"]["error"].is_string(), "{tiers}");
    eprintln!("outage of {:.0} s: /ready said {ready_says}; {failures} failed migration(s) counted", outage.elapsed().as_secs_f64());

    proxy.open();
    let recovered = Instant::now();
    wait_for("every row migrated after the outage", Duration::from_secs(420), || {
        (metric(&node, r#"tierlog_lifecycle_migrated_rows_total{stream="hdfs"}"#) == produced as u64).then_some(())
    });
    eprintln!("migration completed {:.0} s after the S3 server came back", recovered.elapsed().as_secs_f64());
    wait_for("the hot copies deleted after their grace", Duration::from_secs(120), || {
        hot::rows(&data_dir, "hdfs").is_empty().then_some(())
    });
    node.wait_ready(Duration::from_secs(60));

    let seen = delta_read(&services, &prefix, "hdfs", &[&format!("tierlog/hdfs/{topic}/0")]).expect("the table exists");
    assert_eq!(seen["rows"], produced, "{seen}");
    assert_eq!(seen["distinct_offsets"], produced, "each (topic, partition, offset) once: {seen}");
    assert_eq!(seen["txn"][format!("tierlog/hdfs/{topic}/0")], produced, "the cold checkpoint: {seen}");
    let r = http::post_json(
        node.http,
        "/api/v1/sql",
        &json!({ "sql": "SELECT _tier, count(*) AS n, count(DISTINCT _offset) AS offsets FROM hdfs GROUP BY _tier" }),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rows"], json!([{ "_tier": "cold", "n": produced, "offsets": produced }]), "{}", r.body);
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
