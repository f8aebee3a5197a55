//! Two nodes in one consumer group on separate data folders: together they hold every
//! message exactly once, across a node joining and a node leaving while producing, and
//! the group's committed offsets (sampled as an admin reads them) never move backwards
//! while partitions leave a node and come back.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::hot::{self, RowId};
use support::kafka::{GroupOffsets, TestProducer, create_topic, lines};
use support::{dataset, node, services, unique_topic, wait_for};

fn rows_on(n: &node::Node) -> usize {
    hot::rows(&n.dir.path().join("data"), "dns").len()
}


#[test]
fn two_nodes_share_partitions_exactly_once_across_rebalances() {
    let Some(services) = services() else { return };
    let topic = unique_topic("rebalance");
    create_topic(&services.kafka_brokers, &topic, 4);
    let group = unique_topic("rebalance-group");
    let streams = format!(
        "[[streams]]\nname = \"dns\"\ntopics = [\"{topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         [streams.policy]\ncommit_interval = \"300ms\"\nretention = \"36500d\"\n" // the rows are years old
    );
    let mut a = node::Node::start(&node::config(&services, &group, &streams));
    a.wait_ready(Duration::from_secs(60));

    // Produce steadily until the membership changes below are done.
    let brokers = services.kafka_brokers.clone();
    let t = topic.clone();
    let done = Arc::new(AtomicBool::new(false));
    let producing = Arc::clone(&done);
    let producer = thread::spawn(move || {
        let dns = lines(&dataset("zeek/dns.json.gz"));
        let mut p = TestProducer::new(&brokers, &t);
        let mut records = dns.iter().cycle();
        while !producing.load(Ordering::Acquire) {
            for _ in 0..300 {
                p.send(records.next().unwrap());
            }
            thread::sleep(Duration::from_millis(200));
        }
        p.finish().into_iter().map(|(p, o)| (t.clone(), i64::from(p), o, 0)).collect::<BTreeSet<RowId>>()
    });

    // Samples the group's committed offsets until the end; any decrease fails the test.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (brokers, group, topic, sampling) = (services.kafka_brokers.clone(), group.clone(), topic.clone(), Arc::clone(&sampling));
        thread::spawn(move || {
            let admin = GroupOffsets::new(&brokers, &group, &topic, 4);
            let (mut last, mut samples, mut decreases) = (vec![None; 4], 0usize, Vec::new());
            while sampling.load(Ordering::Acquire) {
                if let Some(now) = admin.read() {
                    samples += 1;
                    for (p, (before, after)) in last.iter().zip(&now).enumerate() {
                        if let (Some(b), Some(a)) = (before, after)
                            && a < b
                        {
                            decreases.push(format!("partition {p}: {b} -> {a}"));
                        }
                    }
                    for (slot, value) in last.iter_mut().zip(now) {
                        if value.is_some() {
                            *slot = value;
                        }
                    }
                }
                thread::sleep(Duration::from_millis(200));
            }
            (samples, last, decreases)
        })
    };

    // 1. A alone indexes.
    wait_for("A indexes", Duration::from_secs(120), || (rows_on(&a) > 0).then_some(()));
    // 2. B joins: a rebalance while producing; B gets partitions and indexes.
    let mut b = node::Node::start(&node::config(&services, &group, &streams)); // own ports, own folder
    b.wait_ready(Duration::from_secs(60));
    // tansu 0.6 does not always rebalance when a member joins (see the closing notes of
    // the ingest issue); exactly once must hold either way, so this only reports.
    let joined = Instant::now();
    while rows_on(&b) == 0 && joined.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_millis(100));
    }
    match rows_on(&b) {
        0 => eprintln!("WARNING: B got no partitions within 60 s of joining: the broker did not rebalance"),
        _ => eprintln!("B indexes after joining: after {:.2} s", joined.elapsed().as_secs_f64()),
    }
    // 3. A leaves for a while (another rebalance) and comes back. With tansu 0.6 the
    //    remaining member keeps its old assignment when another leaves, so A's
    //    partitions wait for A; nothing may be lost or doubled either way.
    assert!(a.terminate(Duration::from_secs(60)).success(), "{}", a.log());
    thread::sleep(Duration::from_secs(4));
    // 4. A comes back.
    let a = node::Node::restart(a);
    thread::sleep(Duration::from_secs(3));
    done.store(true, Ordering::Release);
    let expected = producer.join().unwrap();
    let last_produce = Instant::now();

    let read = || -> Vec<RowId> {
        [&a, &b].iter().flat_map(|n| hot::rows(&n.dir.path().join("data"), "dns")).map(|r| r.0).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    while read().len() < expected.len() {
        assert!(Instant::now() < deadline, "{} of {} rows; logs:\nA:\n{}\nB:\n{}", read().len(), expected.len(), a.log(), b.log());
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{} messages; both nodes together complete {:.2} s after the last produce",
        expected.len(),
        last_produce.elapsed().as_secs_f64()
    );
    thread::sleep(Duration::from_secs(2));
    let got = read();
    let unique: BTreeSet<RowId> = got.iter().cloned().collect();
    assert_eq!(got.len() - unique.len(), 0, "rows held twice");
    assert_eq!(unique, expected);
    eprintln!("rows on A: {}, on B: {}", rows_on(&a), rows_on(&b));
    // Which assignments A saw: after its restart, a partition whose group offset is above
    // its hot checkpoint came back after B moved it on (the broker decides whether).
    for line in a.log().lines().filter(|l| l.contains("partition assigned")) {
        eprintln!("A: {}", line.split_once("partition assigned").map_or(line, |(_, fields)| fields).trim());
    }
    sampling.store(false, Ordering::Release);
    let (samples, last, decreases) = sampler.join().unwrap();
    eprintln!("group offsets sampled {samples} times; last {last:?}");
    assert!(samples > 20, "the group's offsets could not be read");
    assert!(decreases.is_empty(), "the group's committed offsets moved backwards: {decreases:?}");
}
