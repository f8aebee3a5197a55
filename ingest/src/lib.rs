//! tierlog-ingest: everything that talks to Kafka — client settings, broker probes, the
//! `produce` publisher, the decoders (json, text, otlp_json) that turn payloads into
//! hot-tier documents or error rows, and, as it lands, the consumer with backpressure and
//! checkpoints (DESIGN.md §4).

mod decode;
mod error;
mod kafka;
mod produce;

pub use decode::{DecodeError, Decoder, TimestampRule};
pub use error::{IngestError, Result};
pub use kafka::{BrokerInfo, client_config, ensure_topic, probe_brokers};
pub use produce::{Compression, ProduceReport, Publisher};
