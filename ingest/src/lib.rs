//! tierlog-ingest: everything that talks to Kafka — client settings, broker probes, the
//! `produce` publisher, the decoders (json, text, otlp_json) that turn payloads into
//! hot-tier documents or error rows, and the consumer pipeline with backpressure and
//! exactly-once checkpoints (DESIGN.md §4).

mod backpressure;
mod consumer;
mod decode;
mod error;
mod indexer;
mod kafka;
mod pipeline;
mod produce;

pub use decode::{DecodeError, Decoded, Decoder, MISMATCH_KEY, TimestampRule};
pub use error::{IngestError, Result};
pub use pipeline::{Ingest, IngestOptions};
pub use kafka::{BrokerInfo, client_config, ensure_topic, probe_brokers};
pub use produce::{Compression, ProduceReport, Publisher};
