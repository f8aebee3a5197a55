//! Kill -9 at random moments during ingest: after each restart the hot tier converges to
//! exactly the produced messages.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::hot::{self, RowId};
use support::kafka::{TestProducer, create_topic, lines};
use support::{dataset, node, services, unique_topic, wait_for};

/// xorshift64: enough randomness for kill moments; the seed is printed to replay a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

#[test]
fn kill_9_during_ingest_loses_nothing_and_duplicates_nothing() {
    let Some(services) = services() else { return };
    let dns_topic = unique_topic("crash-dns");
    let text_topic = unique_topic("crash-text");
    create_topic(&services.kafka_brokers, &dns_topic, 3);
    create_topic(&services.kafka_brokers, &text_topic, 2);
    let streams = format!(
        "[[streams]]\nname = \"dns\"\ntopics = [\"{dns_topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         fields = [{{ name = \"query\", type = \"text\" }}]\n[streams.policy]\ncommit_interval = \"300ms\"\nretention = \"36500d\"\n\
         [[streams]]\nname = \"text\"\ntopics = [\"{text_topic}\"]\nformat = \"text\"\n\
         [streams.policy]\ncommit_interval = \"300ms\"\nrollover_max_docs = 7000\n"
    );
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill schedule seed {seed}");
    let mut rng = Rng(seed);

    let mut node = node::Node::start(&node::config(&services, &unique_topic("crash"), &streams));
    node.wait_ready(Duration::from_secs(60));

    // Produce steadily from another thread until the kills are done.
    let brokers = services.kafka_brokers.clone();
    let (dns_t, text_t) = (dns_topic.clone(), text_topic.clone());
    let done = Arc::new(AtomicBool::new(false));
    let producing = Arc::clone(&done);
    let producer = thread::spawn(move || {
        let dns = lines(&dataset("zeek/dns.json.gz"));
        let text: Vec<Vec<u8>> = ["HDFS", "Zookeeper", "Spark", "Hadoop"]
            .iter()
            .flat_map(|n| lines(&dataset(&format!("loghub/{n}_2k.log"))))
            .collect();
        let (mut p_dns, mut p_text) = (TestProducer::new(&brokers, &dns_t), TestProducer::new(&brokers, &text_t));
        let (mut d, mut t) = (dns.iter().cycle(), text.iter().cycle());
        while !producing.load(Ordering::Acquire) {
            for _ in 0..400 {
                p_dns.send(d.next().unwrap());
            }
            for _ in 0..100 {
                p_text.send(t.next().unwrap());
            }
            thread::sleep(Duration::from_millis(200));
        }
        let mut ids: Vec<RowId> = p_dns.finish().into_iter().map(|(p, o)| (dns_t.clone(), i64::from(p), o, 0)).collect();
        ids.extend(p_text.finish().into_iter().map(|(p, o)| (text_t.clone(), i64::from(p), o, 0)));
        ids
    });

    let data_dir = node.dir.path().join("data");
    let read = || -> Vec<RowId> { ["dns", "text"].iter().flat_map(|s| hot::rows(&data_dir, s)).map(|r| r.0).collect() };
    for kill in 1..=5 {
        // Kill only while the node is really indexing: after its hot tier grew.
        let before = read().len();
        wait_for("the node indexes", Duration::from_secs(120), || (read().len() > before).then_some(()));
        thread::sleep(rng.millis(100, 2500));
        node.kill();
        eprintln!("kill -9 #{kill} with {} rows committed", read().len());
        thread::sleep(rng.millis(0, 1000));
        node = node::Node::restart(node);
    }
    done.store(true, Ordering::Release);
    let expected: BTreeSet<RowId> = producer.join().unwrap().into_iter().collect();
    let last_produce = Instant::now();
    eprintln!("produced {} messages", expected.len());

    let deadline = Instant::now() + Duration::from_secs(240);
    while read().len() < expected.len() {
        assert!(node.is_running(), "node died:\n{}", node.log());
        if Instant::now() > deadline {
            panic!("{} of {} rows after 240 s; node log:\n{}", read().len(), expected.len(), node.log());
        }
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("converged {:.2} s after the last produce", last_produce.elapsed().as_secs_f64());
    thread::sleep(Duration::from_secs(2)); // anything more would be a duplicate
    let got = read();
    let unique: BTreeSet<RowId> = got.iter().cloned().collect();
    assert_eq!(got.len() - unique.len(), 0, "duplicate rows");
    assert_eq!(unique, expected, "missing or unexpected rows");
    // The kills really interrupted ingest: the node's log shows each restart recovering.
    assert!(node.log().matches("starting tierlog").count() >= 6, "{}", node.log());
}
