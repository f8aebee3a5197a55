//! Producing test data with rdkafka directly: topics, payloads, and the exact (partition,
//! offset) each message landed at, from the broker's delivery reports.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = runtime.block_on(admin.create_topics([&new_topic], &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

#[derive(Default)]
struct Deliveries(Mutex<Vec<(usize, Result<(i32, i64), String>)>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push((index, outcome));
    }
}

/// A producer that remembers where each message landed.
pub struct TestProducer {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
    sent: usize,
}

impl TestProducer {
    pub fn new(brokers: &str, topic: &str) -> TestProducer {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "300000")
            .create_with_context(Deliveries::default())
            .unwrap();
        TestProducer { producer, topic: topic.to_string(), sent: 0 }
    }

    /// Sends `payload`; the key cycles through 16 values, so a topic's partitions all
    /// get messages.
    pub fn send(&mut self, payload: &[u8]) {
        let key = [b'k', b'a' + (self.sent % 16) as u8];
        let mut record = BaseRecord::with_opaque_to(&self.topic, self.sent).payload(payload).key(key.as_slice());
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        self.sent += 1;
    }

    /// Waits for every delivery; returns (partition, offset) per message, in send order.
    pub fn finish(self) -> Vec<(i32, i64)> {
        self.producer.flush(Duration::from_secs(300)).unwrap();
        let mut deliveries = std::mem::take(&mut *self.producer.context().0.lock().unwrap());
        assert_eq!(deliveries.len(), self.sent, "missing delivery reports");
        deliveries.sort_by_key(|(i, _)| *i);
        deliveries.into_iter().map(|(_, r)| r.unwrap_or_else(|e| panic!("delivery failed: {e}"))).collect()
    }
}

/// Produces every payload; returns the (topic, partition, offset) of each.
pub fn produce_all<'a>(brokers: &str, topic: &str, payloads: impl IntoIterator<Item = &'a [u8]>) -> Vec<(String, i64, i64)> {
    let mut producer = TestProducer::new(brokers, topic);
    for p in payloads {
        producer.send(p);
    }
    producer.finish().into_iter().map(|(p, o)| (topic.to_string(), i64::from(p), o)).collect()
}

/// The non-empty lines of a dataset file (`.gz` decompressed), CR stripped.
pub fn lines(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut bytes).unwrap();
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes).unwrap();
    }
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Reads a consumer group's committed offsets the way an admin would (OffsetFetch),
/// without joining the group.
pub struct GroupOffsets {
    consumer: rdkafka::consumer::BaseConsumer,
    partitions: rdkafka::TopicPartitionList,
}

impl GroupOffsets {
    pub fn new(brokers: &str, group: &str, topic: &str, num_partitions: i32) -> GroupOffsets {
        let consumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
        let mut partitions = rdkafka::TopicPartitionList::new();
        for p in 0..num_partitions {
            partitions.add_partition(topic, p);
        }
        GroupOffsets { consumer, partitions }
    }

    /// Per partition, the committed next offset (`None` before the first commit), or
    /// `None` overall when the broker did not answer.
    pub fn read(&self) -> Option<Vec<Option<i64>>> {
        use rdkafka::consumer::Consumer;
        let committed = self.consumer.committed_offsets(self.partitions.clone(), Duration::from_secs(5)).ok()?;
        Some(
            committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    rdkafka::Offset::Offset(n) => Some(n),
                    _ => None,
                })
                .collect(),
        )
    }
}

/// Text streams fed from dataset files, one new single-partition topic each: their
/// `[[streams]]` config, and each file's lines to produce once the node runs.
pub struct TextStreams {
    pub config: String,
    feeds: Vec<(String, Vec<Vec<u8>>)>,
}

impl TextStreams {
    /// `streams` are (stream name, dataset path under `../shared/datasets`).
    pub fn new(brokers: &str, streams: &[(&str, &str)]) -> TextStreams {
        let (mut config, mut feeds) = (String::new(), Vec::new());
        for (name, path) in streams {
            let topic = super::unique_topic(name);
            create_topic(brokers, &topic, 1);
            config.push_str(&format!("[[streams]]\nname = \"{name}\"\ntopics = [\"{topic}\"]\nformat = \"text\"\n"));
            feeds.push((topic, lines(&super::dataset(path))));
        }
        TextStreams { config, feeds }
    }

    pub fn produce(&self, brokers: &str) {
        for (topic, lines) in &self.feeds {
            produce_all(brokers, topic, lines.iter().map(Vec::as_slice));
        }
    }

    /// The topic of the `i`th stream.
    pub fn topic(&self, i: usize) -> &str {
        &self.feeds[i].0
    }

    /// The lines of the `i`th stream's file.
    pub fn lines(&self, i: usize) -> &[Vec<u8>] {
        &self.feeds[i].1
    }
}
