//! `otlp_json`: an OpenTelemetry `ExportLogsServiceRequest` in its JSON encoding (as the
//! Collector's Kafka exporter writes it) → one row per log record.

use serde::Deserialize;
use serde_json::{Map, Value};
use tantivy::TantivyDocument;
use tierlog_core::schema::ErrorReason;
use tierlog_hot::{RowOrigin, StreamSchema};

use super::{DecodeError, utf8};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs {
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default)]
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs {
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    log_records: Vec<LogRecord>,
}

#[derive(Deserialize)]
struct Scope {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogRecord {
    #[serde(default)]
    time_unix_nano: Option<Value>,
    #[serde(default)]
    observed_time_unix_nano: Option<Value>,
    #[serde(default)]
    severity_number: Option<i64>,
    #[serde(default)]
    severity_text: String,
    #[serde(default)]
    body: Option<AnyValue>,
    #[serde(default)]
    attributes: Vec<KeyValue>,
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    span_id: String,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: Option<AnyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    /// int64 is a JSON string in the OTLP/JSON encoding; numbers are accepted too.
    int_value: Option<Value>,
    double_value: Option<f64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KvList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize)]
struct ArrayValue {
    #[serde(default)]
    values: Vec<AnyValue>,
}

#[derive(Deserialize)]
struct KvList {
    #[serde(default)]
    values: Vec<KeyValue>,
}

pub(super) fn decode(
    schema: &StreamSchema,
    origin: &RowOrigin<'_>,
    payload: &[u8],
    out: &mut Vec<TantivyDocument>,
) -> Result<(), DecodeError> {
    let text = utf8(payload)?;
    let request: Request = serde_json::from_str(text).map_err(|e| {
        let reason = if e.is_syntax() || e.is_eof() { ErrorReason::InvalidJson } else { ErrorReason::InvalidOtlp };
        DecodeError::new(reason, e.to_string())
    })?;
    let col = |name: &str| schema.columns.iter().find(|c| c.name == name).map(|c| c.field).expect("otlp column");
    let (severity_text, severity_number, body, trace_id, span_id, service_name) =
        (col("severity_text"), col("severity_number"), col("body"), col("trace_id"), col("span_id"), col("service_name"));

    let mut record_index = 0i32;
    for resource_logs in request.resource_logs {
        let resource = attributes_object(resource_logs.resource.map(|r| r.attributes).unwrap_or_default())?;
        let service = resource.get("service.name").and_then(Value::as_str).map(str::to_string);
        for scope_logs in resource_logs.scope_logs {
            let scope = match scope_logs.scope {
                Some(s) => {
                    let mut obj = Map::new();
                    if !s.name.is_empty() {
                        obj.insert("name".into(), Value::String(s.name));
                    }
                    if !s.version.is_empty() {
                        obj.insert("version".into(), Value::String(s.version));
                    }
                    let attrs = attributes_object(s.attributes)?;
                    if !attrs.is_empty() {
                        obj.insert("attributes".into(), Value::Object(attrs));
                    }
                    obj
                }
                None => Map::new(),
            };
            for record in scope_logs.log_records {
                let time_ns = nanos(record.time_unix_nano.as_ref())?
                    .filter(|t| *t != 0)
                    .or(nanos(record.observed_time_unix_nano.as_ref())?.filter(|t| *t != 0));
                let timestamp_us = time_ns.map_or(origin.kafka_time_us, |ns| ns / 1_000);
                let mut doc = schema.row(origin, record_index, timestamp_us);
                record_index += 1;
                if !record.severity_text.is_empty() {
                    doc.add_text(severity_text, &record.severity_text);
                }
                if let Some(n) = record.severity_number {
                    doc.add_i64(severity_number, n);
                }
                match record.body.map(any_value).transpose()? {
                    Some(Value::String(s)) => doc.add_text(body, s),
                    Some(Value::Null) | None => {}
                    Some(structured) => doc.add_text(body, structured.to_string()),
                }
                // Hex ids compare case-insensitively; store the canonical lower case.
                if !record.trace_id.is_empty() {
                    doc.add_text(trace_id, record.trace_id.to_ascii_lowercase());
                }
                if !record.span_id.is_empty() {
                    doc.add_text(span_id, record.span_id.to_ascii_lowercase());
                }
                if let Some(service) = &service {
                    doc.add_text(service_name, service);
                }
                let mut attributes = attributes_object(record.attributes)?;
                if !resource.is_empty() {
                    attributes.insert("resource".into(), Value::Object(resource.clone()));
                }
                if !scope.is_empty() {
                    attributes.insert("scope".into(), Value::Object(scope.clone()));
                }
                if !attributes.is_empty() {
                    doc.add_field_value(schema.attributes, &Value::Object(attributes));
                }
                out.push(doc);
            }
        }
    }
    Ok(())
}

fn invalid(detail: String) -> DecodeError {
    DecodeError::new(ErrorReason::InvalidOtlp, detail)
}

/// A `fixed64` nanosecond time: a JSON string of digits, or a number.
fn nanos(value: Option<&Value>) -> Result<Option<i64>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| invalid(format!("bad nanosecond time '{s}'"))),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid(format!("bad nanosecond time {n}"))),
        Some(other) => Err(invalid(format!("bad nanosecond time {other}"))),
    }
}

fn attributes_object(attributes: Vec<KeyValue>) -> Result<Map<String, Value>, DecodeError> {
    attributes
        .into_iter()
        .map(|kv| Ok((kv.key, kv.value.map(any_value).transpose()?.unwrap_or(Value::Null))))
        .collect()
}

fn any_value(v: AnyValue) -> Result<Value, DecodeError> {
    Ok(if let Some(s) = v.string_value {
        Value::String(s)
    } else if let Some(b) = v.bool_value {
        Value::Bool(b)
    } else if let Some(i) = v.int_value {
        match &i {
            Value::String(s) => Value::from(s.parse::<i64>().map_err(|_| invalid(format!("bad intValue '{s}'")))?),
            Value::Number(n) if n.is_i64() => i,
            other => return Err(invalid(format!("bad intValue {other}"))),
        }
    } else if let Some(d) = v.double_value {
        Value::from(d)
    } else if let Some(a) = v.array_value {
        Value::Array(a.values.into_iter().map(any_value).collect::<Result<_, _>>()?)
    } else if let Some(kv) = v.kvlist_value {
        Value::Object(attributes_object(kv.values)?)
    } else if let Some(bytes) = v.bytes_value {
        Value::String(bytes)
    } else {
        Value::Null
    })
}
