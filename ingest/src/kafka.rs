//! Kafka client settings from the `[kafka]` config, and the admin calls tierlog needs.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tierlog_core::config::KafkaConfig;

use crate::error::{IngestError, Result};

/// Client settings shared by every tierlog Kafka client: the brokers, then the
/// operator's pass-through properties.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// What a broker probe learned.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub num_brokers: usize,
    pub num_topics: usize,
}

/// Asks the cluster for its metadata; blocking, at most `timeout`.
pub fn probe_brokers(kafka: &KafkaConfig, timeout: Duration) -> Result<BrokerInfo> {
    let client_err = |source| IngestError::Client { brokers: kafka.brokers.clone(), source };
    let consumer: BaseConsumer = client_config(kafka).create().map_err(client_err)?;
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|source| IngestError::Unreachable { brokers: kafka.brokers.clone(), source })?;
    Ok(BrokerInfo { num_brokers: metadata.brokers().len(), num_topics: metadata.topics().len() })
}

/// Creates `topic` with `num_partitions` unless it exists (the broker may not
/// auto-create topics). Returns whether it was created.
pub async fn ensure_topic(kafka: &KafkaConfig, topic: &str, num_partitions: i32) -> Result<bool> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .map_err(|source| IngestError::Client { brokers: kafka.brokers.clone(), source })?;
    let new_topic = NewTopic::new(topic, num_partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new_topic], &options).await.map_err(|e| {
        IngestError::CreateTopic { topic: topic.to_string(), reason: e.to_string() }
    })?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(IngestError::CreateTopic { topic: topic.to_string(), reason: code.to_string() }),
        None => Err(IngestError::CreateTopic { topic: topic.to_string(), reason: "no answer".into() }),
    }
}
