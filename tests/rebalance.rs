//! Two nodes in one consumer group on separate data folders: together they hold every
//! message exactly once, across a node joining and a node leaving while producing.

mod support;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use support::hot::{self, RowId};
use support::kafka::{TestProducer, create_topic, lines};
use support::{dataset, node, services, unique_topic};

#[test]
fn two_nodes_share_partitions_exactly_once_across_rebalances() {
    let Some(services) = services() else { return };
    let topic = unique_topic("rebalance");
    create_topic(&services.kafka_brokers, &topic, 4);
    let group = unique_topic("rebalance-group");
    let streams = format!(
        "[[streams]]\nname = \"dns\"\ntopics = [\"{topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         [streams.policy]\ncommit_interval = \"300ms\"\n"
    );
    let config = node::config(&services, &group, &streams);
    let mut a = node::Node::start(&config);
    a.wait_ready(Duration::from_secs(60));

    let brokers = services.kafka_brokers.clone();
    let t = topic.clone();
    let producer = thread::spawn(move || {
        let dns = lines(&dataset("zeek/dns.json.gz"));
        let mut p = TestProducer::new(&brokers, &t);
        let chunks = 30;
        for chunk in dns.chunks(dns.len().div_ceil(chunks)) {
            for line in chunk {
                p.send(line);
            }
            thread::sleep(Duration::from_millis(700));
        }
        p.finish().into_iter().map(|(p, o)| (t.clone(), i64::from(p), o, 0)).collect::<BTreeSet<RowId>>()
    });

    // B joins while producing (a rebalance), later A leaves (another), then A rejoins.
    thread::sleep(Duration::from_secs(5));
    let other_config = node::config(&services, &group, &streams); // own ports, own folder
    let mut b = node::Node::start(&other_config);
    b.wait_ready(Duration::from_secs(60));
    thread::sleep(Duration::from_secs(6));
    assert!(a.terminate(Duration::from_secs(60)).success(), "{}", a.log());
    eprintln!("node A left");
    thread::sleep(Duration::from_secs(4));
    let a = node::Node::restart(a);
    eprintln!("node A rejoined");
    let expected = producer.join().unwrap();
    let last_produce = Instant::now();

    let read = || -> Vec<RowId> {
        [&a, &b].iter().flat_map(|n| hot::rows(&n.dir.path().join("data"), "dns")).map(|r| r.0).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while read().len() < expected.len() {
        assert!(Instant::now() < deadline, "{} of {} rows; logs:\nA:\n{}\nB:\n{}", read().len(), expected.len(), a.log(), b.log());
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("both nodes together complete {:.2} s after the last produce", last_produce.elapsed().as_secs_f64());
    thread::sleep(Duration::from_secs(2));
    let got = read();
    let unique: BTreeSet<RowId> = got.iter().cloned().collect();
    assert_eq!(got.len() - unique.len(), 0, "rows held twice");
    assert_eq!(unique, expected);
    let on = |n: &node::Node| hot::rows(&n.dir.path().join("data"), "dns").len();
    let (on_a, on_b) = (on(&a), on(&b));
    eprintln!("rows on A: {on_a}, on B: {on_b}");
    assert!(on_a > 0 && on_b > 0, "both nodes took part");
}
