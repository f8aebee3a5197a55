//! The data model every tier shares: field types, stream formats and the reserved
//! system columns of DESIGN.md §3.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::strftime::Strftime;

/// The type of a declared stream field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Tokenized for full-text search; Utf8.
    Text,
    /// Exact match, aggregations; Utf8 (dictionary).
    Keyword,
    I64,
    F64,
    Bool,
    /// Timestamp(µs, UTC).
    Timestamp,
}

/// How a Kafka message payload becomes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFormat {
    /// One JSON object per message; declared fields typed, the rest in `_attributes`.
    Json,
    /// The UTF-8 payload is the `message` column.
    Text,
    /// An OpenTelemetry `ExportLogsServiceRequest` in JSON; one row per log record.
    OtlpJson,
}

/// How the configured timestamp field is written in the payload: a name, or a strftime
/// pattern (anything with a `%`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TimestampFormat {
    #[default]
    Rfc3339,
    EpochS,
    EpochMs,
    EpochUs,
    EpochNs,
    Strftime(Strftime),
}

impl TimestampFormat {
    const NAMED: [(&'static str, TimestampFormat); 5] = [
        ("rfc3339", TimestampFormat::Rfc3339),
        ("epoch_s", TimestampFormat::EpochS),
        ("epoch_ms", TimestampFormat::EpochMs),
        ("epoch_us", TimestampFormat::EpochUs),
        ("epoch_ns", TimestampFormat::EpochNs),
    ];
}

impl FromStr for TimestampFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((_, named)) = Self::NAMED.iter().find(|(name, _)| *name == s) {
            return Ok(named.clone());
        }
        if s.contains('%') {
            return Strftime::new(s).map(TimestampFormat::Strftime);
        }
        let names: Vec<&str> = Self::NAMED.iter().map(|(n, _)| *n).collect();
        Err(format!("'{s}' is not a timestamp format: use {} or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\"", names.join(", ")))
    }
}

impl fmt::Display for TimestampFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimestampFormat::Strftime(pattern) => pattern.fmt(f),
            named => f.write_str(Self::NAMED.iter().find(|(_, n)| n == named).map_or("?", |(name, _)| name)),
        }
    }
}

impl<'de> Deserialize<'de> for TimestampFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TimestampFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Names starting with this prefix are reserved for system columns.
pub const RESERVED_PREFIX: char = '_';

/// A column every stream table has, whatever its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemColumn {
    pub name: &'static str,
    pub doc: &'static str,
}

pub const SYSTEM_COLUMNS: &[SystemColumn] = &[
    SystemColumn { name: "_timestamp", doc: "event time: configured field, else Kafka record time" },
    SystemColumn { name: "_ingest_time", doc: "when the node indexed the row" },
    SystemColumn { name: "_topic", doc: "Kafka topic" },
    SystemColumn { name: "_partition", doc: "Kafka partition" },
    SystemColumn { name: "_offset", doc: "Kafka offset" },
    SystemColumn { name: "_record", doc: "index of the row within the message (OTLP batches), else 0" },
    SystemColumn { name: "_key", doc: "Kafka key when it is UTF-8" },
    SystemColumn { name: "_attributes", doc: "every field not declared, as a JSON object" },
    SystemColumn { name: "_tier", doc: "'hot' or 'cold'; virtual" },
];

/// Columns a format defines by itself; a stream of that format may not redeclare them
/// with another type.
pub fn format_columns(format: StreamFormat) -> &'static [(&'static str, FieldType)] {
    match format {
        StreamFormat::Json => &[],
        StreamFormat::Text => &[("message", FieldType::Text)],
        StreamFormat::OtlpJson => &[
            ("severity_text", FieldType::Keyword),
            ("severity_number", FieldType::I64),
            ("body", FieldType::Text),
            ("trace_id", FieldType::Keyword),
            ("span_id", FieldType::Keyword),
            ("service_name", FieldType::Keyword),
        ],
    }
}

/// Suffix of the table that holds a stream's undecodable messages.
pub const ERROR_TABLE_SUFFIX: &str = "_errors";

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Text => "text",
            FieldType::Keyword => "keyword",
            FieldType::I64 => "i64",
            FieldType::F64 => "f64",
            FieldType::Bool => "bool",
            FieldType::Timestamp => "timestamp",
        })
    }
}

impl fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamFormat::Json => "json",
            StreamFormat::Text => "text",
            StreamFormat::OtlpJson => "otlp_json",
        })
    }
}

/// Why a message became a row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReason {
    InvalidUtf8,
    InvalidJson,
    WrongType,
    BadTimestamp,
    TooLarge,
    InvalidOtlp,
    /// A text line that does not match its stream's `pattern` (with `on_mismatch = "error"`).
    PatternMismatch,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 7] = [
        ErrorReason::InvalidUtf8,
        ErrorReason::InvalidJson,
        ErrorReason::WrongType,
        ErrorReason::BadTimestamp,
        ErrorReason::TooLarge,
        ErrorReason::InvalidOtlp,
        ErrorReason::PatternMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::InvalidUtf8 => "invalid_utf8",
            ErrorReason::InvalidJson => "invalid_json",
            ErrorReason::WrongType => "wrong_type",
            ErrorReason::BadTimestamp => "bad_timestamp",
            ErrorReason::TooLarge => "too_large",
            ErrorReason::InvalidOtlp => "invalid_otlp",
            ErrorReason::PatternMismatch => "pattern_mismatch",
        }
    }
}
