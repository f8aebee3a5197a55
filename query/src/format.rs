//! Result encodings of `POST /api/v1/sql`: JSON (default), NDJSON, CSV, Arrow IPC stream.

use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

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

/// Encodes rows (not the JSON envelope, which the handler adds for `Json`).
pub fn encode(format: Format, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(&plain_strings(b)?)?;
            }
        }
        Format::Arrow => {
            if let Some(first) = batches.first() {
                let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &first.schema())?;
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
        }
    }
    Ok(out)
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
