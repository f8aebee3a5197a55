//! tierlog-ingest: everything that talks to Kafka — client settings, broker probes, the
//! `produce` publisher, and, as they land, the consumer, decoders (json, text,
//! otlp_json), error rows, backpressure and checkpoints (DESIGN.md §4).

mod error;
mod kafka;
mod produce;

pub use error::{IngestError, Result};
pub use kafka::{BrokerInfo, client_config, ensure_topic, probe_brokers};
pub use produce::{Compression, ProduceReport, Publisher};
