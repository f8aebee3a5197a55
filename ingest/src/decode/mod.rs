//! Decoders: a Kafka message payload → tantivy documents of the stream's schema.
//!
//! Decoding never fails: a message that cannot be decoded becomes one error row (its
//! raw payload, the reason, the detail) in the same index, so it advances the checkpoint
//! like any other message and nothing stops the partition.

mod json;
mod otlp;
mod text;
mod timestamp;

use std::sync::Arc;

use tantivy::TantivyDocument;
use tierlog_core::config::StreamConfig;
use tierlog_core::schema::{ErrorReason, StreamFormat};
use tierlog_hot::{RowOrigin, StreamSchema};

pub use text::MISMATCH_KEY;
pub use timestamp::TimestampRule;

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: ErrorReason,
    pub detail: String,
}

impl DecodeError {
    pub fn new(reason: ErrorReason, detail: impl Into<String>) -> Self {
        DecodeError { reason, detail: detail.into() }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Rows,
    /// A text line its stream's pattern did not match, kept as a row with its message.
    Unmatched,
    /// One error row, for this reason.
    Error(DecodeError),
}

/// Decodes the messages of one stream.
pub struct Decoder {
    format: StreamFormat,
    schema: Arc<StreamSchema>,
    timestamp: Option<TimestampRule>,
    lines: Option<text::LineParser>,
    max_message_bytes: u64,
}

impl Decoder {
    pub fn new(stream: &StreamConfig, schema: Arc<StreamSchema>) -> Decoder {
        let timestamp = stream
            .timestamp_field
            .as_ref()
            .map(|f| TimestampRule { field: f.clone(), format: stream.timestamp_format.clone().unwrap_or_default() });
        Decoder {
            format: stream.format,
            lines: text::LineParser::new(stream, &schema, timestamp.as_ref()),
            schema,
            timestamp,
            max_message_bytes: stream.max_message_bytes.0,
        }
    }

    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// Appends the documents of one message to `out`: its rows, or one error row.
    /// Says which, for metrics.
    pub fn decode(&self, origin: &RowOrigin<'_>, payload: &[u8], out: &mut Vec<TantivyDocument>) -> Decoded {
        let start = out.len();
        let result = if payload.len() as u64 > self.max_message_bytes {
            Err(DecodeError::new(
                ErrorReason::TooLarge,
                format!("{} bytes, more than max_message_bytes ({})", payload.len(), self.max_message_bytes),
            ))
        } else {
            match self.format {
                StreamFormat::Text => text::decode(&self.schema, self.lines.as_ref(), origin, payload, out).map(|line| match line {
                    text::Line::Matched => Decoded::Rows,
                    text::Line::Unmatched => Decoded::Unmatched,
                }),
                StreamFormat::Json => json::decode(&self.schema, self.timestamp.as_ref(), origin, payload, out).map(|()| Decoded::Rows),
                StreamFormat::OtlpJson => otlp::decode(&self.schema, origin, payload, out).map(|()| Decoded::Rows),
            }
        };
        result.unwrap_or_else(|err| {
            out.truncate(start);
            out.push(self.schema.error_row(origin, err.reason, &err.detail, payload));
            Decoded::Error(err)
        })
    }
}

/// The payload as UTF-8, or an `invalid_utf8` error naming the first bad byte.
fn utf8(payload: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(payload).map_err(|e| {
        DecodeError::new(ErrorReason::InvalidUtf8, format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })
}
