//! `text`: the UTF-8 payload is the `message` column. A stream's `pattern` fills declared
//! fields and the event time from its named groups; without one, or on a line it does
//! not match, the time is the Kafka record time.

use regex::Regex;
use serde_json::json;
use tantivy::{DateTime, TantivyDocument};
use tierlog_core::config::{OnMismatch, StreamConfig};
use tierlog_core::schema::{ErrorReason, FieldType};
use tierlog_hot::{RowOrigin, StreamSchema};

use super::timestamp::{TimestampRule, rfc3339_micros};
use super::{DecodeError, utf8};

/// The `_attributes` of a line its pattern did not match.
pub const MISMATCH_KEY: &str = "tierlog.pattern";

/// A stream's pattern, resolved against its schema once.
pub(super) struct LineParser {
    regex: Regex,
    /// (capture group index, column index) for each declared field.
    columns: Vec<(usize, usize)>,
    /// The group holding the event time, and how it is written.
    time: Option<(usize, TimestampRule)>,
    on_mismatch: OnMismatch,
}

/// What became of one line.
pub(super) enum Line {
    Matched,
    /// Kept as a row with only its `message`.
    Unmatched,
}

impl LineParser {
    /// `None` for a stream without a pattern. Config validation has checked that every
    /// group names a field or the timestamp, so a missing group here is a bug.
    pub(super) fn new(stream: &StreamConfig, schema: &StreamSchema, time: Option<&TimestampRule>) -> Option<LineParser> {
        let regex = stream.pattern.as_ref()?.regex().clone();
        let group = |name: &str| regex.capture_names().position(|g| g == Some(name));
        let columns = schema.columns.iter().enumerate().filter_map(|(c, column)| Some((group(&column.source)?, c))).collect();
        let time = time.and_then(|rule| Some((group(&rule.field)?, rule.clone())));
        Some(LineParser { columns, time, on_mismatch: stream.on_mismatch, regex })
    }
}

pub(super) fn decode(
    schema: &StreamSchema,
    parser: Option<&LineParser>,
    origin: &RowOrigin<'_>,
    payload: &[u8],
    out: &mut Vec<TantivyDocument>,
) -> Result<Line, DecodeError> {
    let text = utf8(payload)?;
    let message = schema.columns[0].field;
    let Some(parser) = parser else {
        let mut doc = schema.row(origin, 0, origin.kafka_time_us);
        doc.add_text(message, text);
        out.push(doc);
        return Ok(Line::Matched);
    };
    let Some(caps) = parser.regex.captures(text) else {
        if parser.on_mismatch == OnMismatch::Error {
            return Err(DecodeError::new(ErrorReason::PatternMismatch, "the line does not match the stream's pattern"));
        }
        let mut doc = schema.row(origin, 0, origin.kafka_time_us);
        doc.add_text(message, text);
        doc.add_field_value(schema.attributes, &json!({ MISMATCH_KEY: "no match" }));
        out.push(doc);
        return Ok(Line::Unmatched);
    };
    // A group that took no part in the match (an optional one) leaves its column null.
    let timestamp_us = match &parser.time {
        Some((group, rule)) => match caps.get(*group) {
            Some(m) => rule.parse_str(m.as_str(), origin.kafka_time_us)?,
            None => origin.kafka_time_us,
        },
        None => origin.kafka_time_us,
    };
    let mut doc = schema.row(origin, 0, timestamp_us);
    doc.add_text(message, text);
    for &(group, c) in &parser.columns {
        let Some(m) = caps.get(group) else { continue };
        let column = &schema.columns[c];
        let value = m.as_str();
        let wrong = || {
            DecodeError::new(
                ErrorReason::WrongType,
                format!("group '{}' is declared {} but the line has '{value}'", column.source, column.ty),
            )
        };
        match column.ty {
            FieldType::Text | FieldType::Keyword => doc.add_text(column.field, value),
            FieldType::I64 => doc.add_i64(column.field, value.trim().parse().map_err(|_| wrong())?),
            FieldType::F64 => doc.add_f64(column.field, value.trim().parse().map_err(|_| wrong())?),
            FieldType::Bool => doc.add_bool(column.field, parse_bool(value).ok_or_else(wrong)?),
            FieldType::Timestamp => {
                // The time group may be a column too: the same instant as `_timestamp`.
                let us = match &parser.time {
                    Some((time_group, _)) if *time_group == group => timestamp_us,
                    _ => rfc3339_micros(value).ok_or_else(|| {
                        DecodeError::new(
                            ErrorReason::BadTimestamp,
                            format!("group '{}': '{value}' is not an RFC 3339 timestamp", column.source),
                        )
                    })?,
                };
                doc.add_date(column.field, DateTime::from_timestamp_micros(us));
            }
        }
    }
    out.push(doc);
    Ok(Line::Matched)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}
