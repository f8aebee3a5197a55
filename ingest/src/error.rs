use rdkafka::error::KafkaError;

/// Errors of the Kafka side; each names the brokers or topic involved.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kafka brokers {brokers} unreachable: {source}")]
    Unreachable {
        brokers: String,
        #[source]
        source: KafkaError,
    },
    #[error("kafka client for {brokers}: {source}")]
    Client {
        brokers: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot create topic '{topic}': {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error(transparent)]
    Hot(#[from] tierlog_hot::HotError),
    #[error("config: {0}")]
    Config(String),
    #[error("cannot start a thread: {0}")]
    Thread(String),
    #[error("ingest stopped: {0}")]
    Stopped(String),
    #[error("publishing to topic '{topic}': {source}")]
    Publish {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
