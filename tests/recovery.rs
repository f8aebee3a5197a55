//! Recovery never deletes committed data: a node restarted with one generation's
//! `generation.json` corrupt and another's naming a state from a newer version serves
//! every row it had, reads none twice, and names both folders in its log.

mod support;

use std::time::Duration;

use serde_json::json;
use support::kafka::{create_topic, lines, produce_all};
use support::{dataset, http, node, services, unique_topic, wait_for};

fn count(node: &node::Node) -> Option<u64> {
    http::post_json(node.http, "/api/v1/sql", &json!({ "sql": "SELECT count(*) AS n FROM hdfs" }))?.json()["rows"][0]["n"].as_u64()
}

#[test]
fn unreadable_generation_sidecars_lose_no_row() {
    let Some(services) = services() else { return };
    let topic = unique_topic("recovery-hdfs");
    create_topic(&services.kafka_brokers, &topic, 1);
    let streams = format!(
        "[[streams]]\nname = \"hdfs\"\ntopics = [\"{topic}\"]\nformat = \"text\"\n\
         [streams.policy]\ncommit_interval = \"200ms\"\nrollover_max_docs = 400\n"
    );
    let mut node = node::Node::start(&node::config(&services, &unique_topic("recovery"), &streams));
    node.wait_ready(Duration::from_secs(60));
    let hdfs = lines(&dataset("loghub/HDFS_2k.log"));
    // In chunks, so the commits (and rollovers) fall between them.
    for (i, chunk) in hdfs.chunks(500).enumerate() {
        produce_all(&services.kafka_brokers, &topic, chunk.iter().map(Vec::as_slice));
        let want = i * 500 + chunk.len();
        wait_for("chunk indexed", Duration::from_secs(60), || (count(&node)? == want as u64).then_some(()));
    }
    node.terminate(Duration::from_secs(30));

    let stream_dir = node.dir.path().join("data/hot/hdfs");
    let mut dirs: Vec<_> = std::fs::read_dir(&stream_dir).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    assert!(dirs.len() >= 3, "several generations: {dirs:?}");
    std::fs::write(dirs[0].join("generation.json"), "{\"id\": tru").unwrap();
    let sidecar = std::fs::read_to_string(dirs[1].join("generation.json")).unwrap();
    std::fs::write(dirs[1].join("generation.json"), sidecar.replace("\"sealed\"", "\"uploaded\"")).unwrap();

    let mut node = node::Node::restart(node);
    node.wait_ready(Duration::from_secs(60));
    wait_for("every row served after the restart", Duration::from_secs(60), || (count(&node)? == hdfs.len() as u64).then_some(()));
    // A marker batch proves ingest went on from the right offset: nothing read twice.
    let marker = &hdfs[..100];
    produce_all(&services.kafka_brokers, &topic, marker.iter().map(Vec::as_slice));
    let total = (hdfs.len() + marker.len()) as u64;
    wait_for("marker indexed", Duration::from_secs(60), || (count(&node)? == total).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&node), Some(total), "no row twice");
    for dir in &dirs[..2] {
        assert!(dir.exists(), "{} was removed", dir.display());
        assert!(node.log().contains(&dir.display().to_string()), "the log names {}:\n{}", dir.display(), node.log());
    }
    assert!(node.is_running());
}
