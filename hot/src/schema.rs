//! The tantivy schema of a stream: system columns, the format's own columns, declared
//! fields, and the columns of error rows.
//!
//! Rows and error rows share one index, told apart by `_kind`, so a single tantivy
//! commit makes both durable together with the checkpoint.

use tantivy::DateTime;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions,
    STORED, STRING, Schema, TEXT, TextFieldIndexing, TextOptions,
};
use tierlog_core::config::StreamConfig;
use tierlog_core::schema::{ErrorReason, FieldType, format_columns};

/// `_kind` of an ordinary row.
pub const KIND_ROW: u64 = 0;
/// `_kind` of an error row (a message that could not be decoded).
pub const KIND_ERROR: u64 = 1;

/// A declared or format column and its tantivy field.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: FieldType,
    /// The JSON key it is read from (json streams).
    pub source: String,
    pub field: Field,
}

/// Handles of every field of a stream's index.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    schema: Schema,
    pub kind: Field,
    pub timestamp: Field,
    pub ingest_time: Field,
    pub topic: Field,
    pub partition: Field,
    pub offset: Field,
    pub record: Field,
    pub key: Field,
    pub attributes: Field,
    pub error_reason: Field,
    pub error_detail: Field,
    pub payload: Field,
    pub payload_encoding: Field,
    /// Format columns then declared fields, in config order.
    pub columns: Vec<Column>,
}

/// Where a row came from in Kafka, and when.
#[derive(Debug, Clone, Copy)]
pub struct RowOrigin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka key, when it is UTF-8.
    pub key: Option<&'a str>,
    /// Kafka record time, µs since the epoch.
    pub kafka_time_us: i64,
    /// When this node indexed the row, µs since the epoch.
    pub ingest_time_us: i64,
}

impl StreamSchema {
    pub fn new(stream: &StreamConfig) -> StreamSchema {
        let mut b = Schema::builder();
        let date = DateOptions::default().set_indexed().set_fast().set_precision(DateTimePrecision::Microseconds);
        let kind = b.add_u64_field("_kind", INDEXED | FAST);
        let timestamp = b.add_date_field("_timestamp", date.clone());
        let ingest_time = b.add_date_field("_ingest_time", DateOptions::default().set_fast().set_precision(DateTimePrecision::Microseconds));
        let topic = b.add_text_field("_topic", STRING | FAST);
        let partition = b.add_i64_field("_partition", INDEXED | FAST);
        let offset = b.add_i64_field("_offset", INDEXED | FAST);
        let record = b.add_i64_field("_record", FAST);
        let key = b.add_text_field("_key", STRING | FAST | STORED);
        // Attribute values are mostly identifiers: index them whole, as Quickwit's
        // dynamic fields do, so `_attributes.user:bob` matches exactly.
        let attributes = b.add_json_field(
            "_attributes",
            JsonObjectOptions::default().set_stored().set_indexing_options(
                TextFieldIndexing::default().set_tokenizer("raw").set_index_option(IndexRecordOption::Basic),
            ),
        );
        let error_reason = b.add_text_field("_error_reason", STRING | FAST);
        // Searchable with match(detail, …) / match(payload, …) on the error table.
        let error_detail = b.add_text_field("_error_detail", TEXT | STORED);
        let payload = b.add_text_field("_payload", TEXT | STORED);
        let payload_encoding = b.add_text_field("_payload_encoding", STRING | FAST);

        let mut columns = Vec::new();
        let own = format_columns(stream.format).iter().map(|(n, t)| (n.to_string(), *t, n.to_string()));
        let declared = stream.fields.iter().map(|f| (f.name.clone(), f.ty, f.source_key().to_string()));
        for (name, ty, source) in own.chain(declared) {
            let field = match ty {
                FieldType::Text => b.add_text_field(&name, TextOptions::from(TEXT) | STORED),
                FieldType::Keyword => b.add_text_field(&name, STRING | FAST | STORED),
                FieldType::I64 => b.add_i64_field(&name, INDEXED | FAST),
                FieldType::F64 => b.add_f64_field(&name, INDEXED | FAST),
                FieldType::Bool => b.add_bool_field(&name, INDEXED | FAST),
                FieldType::Timestamp => b.add_date_field(&name, date.clone()),
            };
            columns.push(Column { name, ty, source, field });
        }
        StreamSchema {
            schema: b.build(),
            kind,
            timestamp,
            ingest_time,
            topic,
            partition,
            offset,
            record,
            key,
            attributes,
            error_reason,
            error_detail,
            payload,
            payload_encoding,
            columns,
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// A row document with its system columns set; the decoder adds the rest.
    pub fn row(&self, origin: &RowOrigin<'_>, record: i32, timestamp_us: i64) -> tantivy::TantivyDocument {
        let mut doc = self.base(origin, KIND_ROW, timestamp_us);
        doc.add_i64(self.record, i64::from(record));
        doc
    }

    /// An error row: the raw payload (base64 when not UTF-8), why it failed, and the
    /// Kafka record time as `_timestamp`.
    pub fn error_row(&self, origin: &RowOrigin<'_>, reason: ErrorReason, detail: &str, payload: &[u8]) -> tantivy::TantivyDocument {
        let mut doc = self.base(origin, KIND_ERROR, origin.kafka_time_us);
        doc.add_i64(self.record, 0);
        doc.add_text(self.error_reason, reason.as_str());
        doc.add_text(self.error_detail, detail);
        match std::str::from_utf8(payload) {
            Ok(text) => {
                doc.add_text(self.payload, text);
                doc.add_text(self.payload_encoding, "utf8");
            }
            Err(_) => {
                doc.add_text(self.payload, base64(payload));
                doc.add_text(self.payload_encoding, "base64");
            }
        }
        doc
    }

    fn base(&self, origin: &RowOrigin<'_>, kind: u64, timestamp_us: i64) -> tantivy::TantivyDocument {
        let mut doc = tantivy::TantivyDocument::new();
        doc.add_u64(self.kind, kind);
        doc.add_date(self.timestamp, DateTime::from_timestamp_micros(timestamp_us));
        doc.add_date(self.ingest_time, DateTime::from_timestamp_micros(origin.ingest_time_us));
        doc.add_text(self.topic, origin.topic);
        doc.add_i64(self.partition, i64::from(origin.partition));
        doc.add_i64(self.offset, origin.offset);
        if let Some(key) = origin.key {
            doc.add_text(self.key, key);
        }
        doc
    }
}

/// Standard base64 with padding; small enough not to need a crate.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(super::base64(input.as_bytes()), want);
        }
        assert_eq!(super::base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
