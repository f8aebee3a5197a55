//! The broker stops for 30 s in the middle of ingest and comes back: ingest resumes and
//! the counts are exact. Uses a private broker so other tests are not disturbed.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::hot::{self, RowId};
use support::kafka::{TestProducer, create_topic, lines};
use support::{dataset, node, services, unique_topic, wait_for};

struct PrivateBroker {
    dir: tempfile::TempDir,
}

impl PrivateBroker {
    fn services(&self, action: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/services.sh");
        let status = Command::new(script)
            .args([action, "kafka"])
            .env("TIERLOG_SERVICES_DIR", self.dir.path())
            .env("TIERLOG_KAFKA_PORT", "free")
            .status()
            .unwrap();
        assert!(status.success(), "services.sh {action} kafka failed");
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", std::fs::read_to_string(self.dir.path().join("kafka.port")).unwrap().trim())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.services("stop");
    }
}

#[test]
fn broker_down_for_30_s_mid_ingest_then_exact_counts() {
    let Some(services) = services() else { return };
    let broker = PrivateBroker { dir: tempfile::tempdir().unwrap() };
    broker.services("start");
    let brokers = broker.brokers();
    let topic = unique_topic("outage");
    create_topic(&brokers, &topic, 3);
    let streams = format!(
        "[[streams]]\nname = \"dns\"\ntopics = [\"{topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n"
    );
    let services = support::Services { kafka_brokers: brokers.clone(), ..services };
    let mut node = node::Node::start(&node::config(&services, &unique_topic("outage"), &streams));
    node.wait_ready(Duration::from_secs(60));

    let dns = lines(&dataset("zeek/dns.json.gz"));
    let (first, second) = dns.split_at(dns.len() / 2);
    let mut producer = TestProducer::new(&brokers, &topic);
    for line in first {
        producer.send(line);
    }
    let mut expected: BTreeSet<RowId> =
        producer.finish().into_iter().map(|(p, o)| (topic.clone(), i64::from(p), o, 0)).collect();

    // Stop the broker while the node is still indexing the first half.
    let data_dir = node.dir.path().join("data");
    let count = || hot::rows(&data_dir, "dns").len();
    broker.services("stop");
    let at_stop = count();
    eprintln!("broker stopped with {at_stop} of {} rows indexed", expected.len());
    std::thread::sleep(Duration::from_secs(30));
    assert!(node.is_running(), "node exited during the outage:\n{}", node.log());
    broker.services("start");
    assert_eq!(broker.brokers(), brokers, "the broker keeps its port");

    let mut producer = TestProducer::new(&brokers, &topic);
    for line in second {
        producer.send(line);
    }
    expected.extend(producer.finish().into_iter().map(|(p, o)| (topic.clone(), i64::from(p), o, 0)));
    let last_produce = Instant::now();
    wait_for("ingest resumed and complete", Duration::from_secs(180), || (count() >= expected.len()).then_some(()));
    eprintln!("complete {:.2} s after the last produce", last_produce.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(2));
    let got: Vec<RowId> = hot::rows(&data_dir, "dns").into_iter().map(|r| r.0).collect();
    let unique: BTreeSet<RowId> = got.iter().cloned().collect();
    assert_eq!(got.len() - unique.len(), 0, "duplicate rows");
    assert_eq!(unique, expected);
    assert!(node.log().contains("kafka poll error; retrying") || node.log().contains("unavailable; retrying"), "the outage was logged");
}
