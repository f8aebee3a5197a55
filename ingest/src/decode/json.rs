//! `json`: one object per message. Declared fields become typed columns (a wrong type is
//! an error row, not a guess); every other field, nested objects included, goes to
//! `_attributes`.

use serde_json::{Map, Value};
use tantivy::{DateTime, TantivyDocument};
use tierlog_core::schema::{ErrorReason, FieldType};
use tierlog_hot::{Column, RowOrigin, StreamSchema};

use super::timestamp::{TimestampRule, rfc3339_micros};
use super::{DecodeError, utf8};

pub(super) fn decode(
    schema: &StreamSchema,
    rule: Option<&TimestampRule>,
    origin: &RowOrigin<'_>,
    payload: &[u8],
    out: &mut Vec<TantivyDocument>,
) -> Result<(), DecodeError> {
    let text = utf8(payload)?;
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return Err(DecodeError::new(ErrorReason::InvalidJson, format!("expected a JSON object, got {}", kind(&other))));
        }
        Err(e) => return Err(DecodeError::new(ErrorReason::InvalidJson, e.to_string())),
    };

    let timestamp_us = match rule {
        Some(rule) => match object.get(&rule.field) {
            None | Some(Value::Null) => origin.kafka_time_us,
            Some(value) => rule.parse(value, origin.kafka_time_us)?,
        },
        None => origin.kafka_time_us,
    };
    let mut doc = schema.row(origin, 0, timestamp_us);
    for column in &schema.columns {
        if let Some(value) = object.remove(&column.source) {
            add_typed(&mut doc, column, value)?;
        }
    }
    // The event time lives in `_timestamp`; keeping it in `_attributes` too would store
    // it twice.
    if let Some(rule) = rule {
        object.remove(&rule.field);
    }
    if !object.is_empty() {
        // Straight from serde_json into the document: no intermediate OwnedValue copy.
        doc.add_field_value(schema.attributes, &Value::Object(object));
    }
    out.push(doc);
    Ok(())
}

fn add_typed(doc: &mut TantivyDocument, column: &Column, value: Value) -> Result<(), DecodeError> {
    let wrong = |value: &Value| {
        DecodeError::new(
            ErrorReason::WrongType,
            format!("field '{}' is declared {} but the message has {} {value}", column.source, column.ty, kind(value)),
        )
    };
    match (column.ty, &value) {
        (_, Value::Null) => {}
        (FieldType::Text | FieldType::Keyword, Value::String(s)) => doc.add_text(column.field, s),
        (FieldType::I64, Value::Number(n)) => doc.add_i64(column.field, n.as_i64().ok_or_else(|| wrong(&value))?),
        (FieldType::F64, Value::Number(n)) => doc.add_f64(column.field, n.as_f64().ok_or_else(|| wrong(&value))?),
        (FieldType::Bool, Value::Bool(b)) => doc.add_bool(column.field, *b),
        (FieldType::Timestamp, Value::String(s)) => {
            let us = rfc3339_micros(s).ok_or_else(|| {
                DecodeError::new(ErrorReason::BadTimestamp, format!("field '{}': '{s}' is not an RFC 3339 timestamp", column.source))
            })?;
            doc.add_date(column.field, DateTime::from_timestamp_micros(us));
        }
        _ => return Err(wrong(&value)),
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
