//! `tierlog produce` publishes a real log file; an independent rdkafka consumer reads the
//! same messages back, byte for byte.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

use support::{dataset, services, unique_topic};

/// The lines of a file as the test reads them: split on LF, CRLF's CR removed, empty
/// lines dropped.
fn expected_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn produce_loghub_file_and_read_back_byte_for_byte() {
    let Some(services) = services() else { return };
    let file = dataset("loghub/Apache_2k.log");
    let mut expected = expected_lines(&std::fs::read(&file).unwrap());
    assert_eq!(expected.len(), 2000);
    let topic = unique_topic("produce-apache");

    let out = Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .args(["produce", "--topic", &topic, "--partitions", "3", "--brokers", &services.kafka_brokers])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "produce failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("produced 2000 messages")), "{stdout}");
    eprintln!("{}", stdout.trim());

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka_brokers)
        .set("group.id", &topic)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < expected.len() && start.elapsed() < Duration::from_secs(120) {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.unwrap();
            got.push(msg.payload().unwrap_or_default().to_vec());
        }
    }
    eprintln!("consumed {} messages in {:.2} s", got.len(), start.elapsed().as_secs_f64());

    // Nothing beyond the 2,000: the partitions' end offsets add up to exactly that.
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), 3);
    let total: i64 = partitions
        .iter()
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10)).unwrap();
            high - low
        })
        .sum();
    assert_eq!(total, 2000);

    // Partitions interleave, so compare as multisets.
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "payloads differ from the file's lines");
}

#[test]
fn produce_rejects_snappy() {
    let out = Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .args(["produce", "--topic", "t", "--compression", "snappy", "/dev/null"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("snappy is not supported: the tansu broker corrupts snappy batches"), "{stderr}");
}
