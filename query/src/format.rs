//! Result encodings of `POST /api/v1/sql`: JSON (default), NDJSON, CSV, Arrow IPC stream,
//! written batch by batch as the rows come, so an answer is never held whole.
//!
//! JSON keeps the SELECT's column order, writes NULLs as `null`, and lists the columns
//! with their types first, as ClickHouse's and Trino's HTTP answers do:
//! `{"columns":[{"name":…,"type":…}],"rows":[{…}],"num_rows":…,"elapsed_ms":…}`.

use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::writer::{JsonArray, LineDelimited};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
    Arrow,
}

impl Format {
    /// From `?format=` (json, ndjson, csv, arrow) or else the `Accept` header.
    pub fn negotiate(param: Option<&str>, accept: Option<&str>) -> Result<Format, String> {
        match param {
            Some("json") => return Ok(Format::Json),
            Some("ndjson") => return Ok(Format::Ndjson),
            Some("csv") => return Ok(Format::Csv),
            Some("arrow") => return Ok(Format::Arrow),
            Some(other) => return Err(format!("unknown format '{other}' (json, ndjson, csv, arrow)")),
            None => {}
        }
        let accept = accept.unwrap_or("");
        Ok(if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("application/x-ndjson") {
            Format::Ndjson
        } else {
            Format::Json
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// How an answer ended, for the JSON trailer.
#[derive(Debug)]
pub struct Summary {
    pub num_rows: usize,
    pub elapsed_ms: u64,
    /// The row limit cut the answer: the warning to show.
    pub truncated: Option<String>,
    /// The query failed after rows were sent: (message, kind name, SQLSTATE).
    pub error: Option<(String, &'static str, &'static str)>,
}

/// Writes one answer: [`Encoder::head`], then [`Encoder::batch`] per batch, then
/// [`Encoder::tail`]. Each returns the bytes to send next.
pub struct Encoder {
    format: Format,
    columns: SchemaRef,
    /// Rows written so far (JSON needs commas between batches; CSV one header).
    any_rows: bool,
    arrow: Option<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
}

impl Encoder {
    /// `columns` is the answer's schema as planned; `first` the schema of the first batch,
    /// which Arrow IPC must match exactly.
    pub fn new(format: Format, columns: SchemaRef, first: Option<SchemaRef>) -> Result<Encoder, ArrowError> {
        let arrow = match format {
            Format::Arrow => Some(arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &first.unwrap_or_else(|| Arc::clone(&columns)))?),
            _ => None,
        };
        Ok(Encoder { format, columns, any_rows: false, arrow })
    }

    pub fn head(&mut self) -> Result<Vec<u8>, ArrowError> {
        Ok(match self.format {
            Format::Json => {
                let columns = columns_json(&self.columns);
                format!("{{\"columns\":{columns},\"rows\":[").into_bytes()
            }
            Format::Arrow => self.drain_arrow(),
            Format::Csv => {
                // The header, even for an answer without rows.
                let mut out = Vec::new();
                let empty = RecordBatch::new_empty(Arc::clone(&self.columns));
                arrow::csv::WriterBuilder::new().with_header(true).build(&mut out).write(&plain_strings(&empty)?)?;
                out
            }
            Format::Ndjson => Vec::new(),
        })
    }

    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match self.format {
            Format::Json => {
                // One object per line, then the line breaks become commas: a raw line
                // break never occurs inside JSON text.
                if self.any_rows {
                    out.push(b',');
                }
                let start = out.len();
                let mut w = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut out);
                w.write(batch)?;
                w.finish()?;
                drop(w);
                if out.last() == Some(&b'\n') {
                    out.pop();
                }
                for byte in &mut out[start..] {
                    if *byte == b'\n' {
                        *byte = b',';
                    }
                }
            }
            Format::Ndjson => {
                let mut w = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut out);
                w.write(batch)?;
                w.finish()?;
            }
            Format::Csv => {
                arrow::csv::WriterBuilder::new().with_header(false).build(&mut out).write(&plain_strings(batch)?)?;
            }
            Format::Arrow => {
                self.arrow.as_mut().expect("an arrow writer for the arrow format").write(batch)?;
                out = self.drain_arrow();
            }
        }
        self.any_rows = true;
        Ok(out)
    }

    pub fn tail(&mut self, summary: &Summary) -> Result<Vec<u8>, ArrowError> {
        Ok(match self.format {
            Format::Json => {
                let mut end = json!({ "num_rows": summary.num_rows, "elapsed_ms": summary.elapsed_ms });
                if let Some(warning) = &summary.truncated {
                    end["truncated"] = json!(true);
                    end["warning"] = json!(warning);
                }
                if let Some((message, kind, sqlstate)) = &summary.error {
                    end["error"] = json!(message);
                    end["kind"] = json!(kind);
                    end["sqlstate"] = json!(sqlstate);
                }
                // `],` then the summary's fields, without its opening brace.
                let end = end.to_string();
                format!("],{}", &end[1..]).into_bytes()
            }
            Format::Arrow => {
                self.arrow.as_mut().expect("an arrow writer for the arrow format").finish()?;
                self.drain_arrow()
            }
            Format::Csv | Format::Ndjson => Vec::new(),
        })
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    fn drain_arrow(&mut self) -> Vec<u8> {
        self.arrow.as_mut().map(|w| std::mem::take(w.get_mut())).unwrap_or_default()
    }
}

/// The columns and their SQL-facing types, in SELECT order.
fn columns_json(schema: &Schema) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| json!({ "name": f.name(), "type": type_name(f.data_type()), "nullable": f.is_nullable() }))
            .collect(),
    )
}

/// A type as a client reads it: dictionaries and string views are plain strings.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Dictionary(_, value) => type_name(value),
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8.to_string(),
        other => other.to_string(),
    }
}

/// Rows as JSON objects in column order, NULLs kept (for answers built from rows).
pub fn rows_json(batches: &[RecordBatch]) -> Result<Value, ArrowError> {
    let mut out = Vec::new();
    let mut w = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut out);
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    if out.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out).map_err(|e| ArrowError::JsonError(e.to_string()))
}

/// Each row of `batch` as its own JSON object (column order, NULLs kept), written once.
pub fn row_objects(batch: &RecordBatch) -> Result<Vec<Arc<str>>, ArrowError> {
    let mut out = Vec::new();
    let mut w = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow::json::writer::LineDelimited>(&mut out);
    w.write(batch)?;
    w.finish()?;
    drop(w);
    let text = String::from_utf8(out).map_err(|e| ArrowError::JsonError(e.to_string()))?;
    Ok(text.lines().filter(|l| !l.is_empty()).map(Arc::from).collect())
}

/// CSV takes plain strings: decode dictionaries and string views.
fn plain_strings(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let plain = match field.data_type() {
            DataType::Dictionary(_, value) => Some(value.as_ref().clone()),
            DataType::Utf8View => Some(DataType::Utf8),
            _ => None,
        };
        if let Some(plain) = plain {
            fields.push(Field::new(field.name(), plain.clone(), true));
            columns.push(cast(column, &plain)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn json_keeps_column_order_nulls_and_types() {
        let schema = Arc::new(Schema::new(vec![Field::new("z", DataType::Utf8, true), Field::new("a", DataType::Int64, false)]));
        let batch = |z: Vec<Option<&str>>, a: Vec<i64>| {
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(z)), Arc::new(Int64Array::from(a))]).unwrap()
        };
        let mut e = Encoder::new(Format::Json, Arc::clone(&schema), Some(Arc::clone(&schema))).unwrap();
        let mut body = e.head().unwrap();
        body.extend(e.batch(&batch(vec![None, Some("x\ny")], vec![7, 8])).unwrap());
        body.extend(e.batch(&batch(vec![Some("w")], vec![9])).unwrap());
        body.extend(e.tail(&Summary { num_rows: 3, elapsed_ms: 1, truncated: None, error: None }).unwrap());
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            r#"{"columns":[{"name":"z","type":"Utf8","nullable":true},{"name":"a","type":"Int64","nullable":false}],"rows":[{"z":null,"a":7},{"z":"x\ny","a":8},{"z":"w","a":9}],"num_rows":3,"elapsed_ms":1}"#
        );
        let empty = {
            let mut e = Encoder::new(Format::Json, Arc::clone(&schema), None).unwrap();
            let mut b = e.head().unwrap();
            b.extend(e.tail(&Summary { num_rows: 0, elapsed_ms: 0, truncated: None, error: None }).unwrap());
            String::from_utf8(b).unwrap()
        };
        assert!(empty.contains(r#""rows":[],"num_rows":0"#), "{empty}");
        let csv = {
            let mut e = Encoder::new(Format::Csv, Arc::clone(&schema), None).unwrap();
            String::from_utf8(e.head().unwrap()).unwrap()
        };
        assert_eq!(csv, "z,a\n");
    }
}
