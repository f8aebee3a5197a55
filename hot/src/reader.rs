//! Reading a generation's committed documents as Arrow record batches: fast fields
//! column by column, stored fields (text, `_attributes`) from the doc store.
//!
//! Columns are looked up by name in each segment, so a generation written with an older
//! stream config reads as nulls for the fields it does not have.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, PrimitiveArray, StringBuilder, StringViewBuilder};
use arrow::compute::take;
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{
    ArrowNativeType, ArrowPrimitiveType, DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType, UInt32Type,
};
use arrow::record_batch::RecordBatch;
use tantivy::columnar::Cardinality;
use tantivy::schema::document::OwnedValue;
use tantivy::schema::Value;
use tantivy::{DocId, SegmentReader, TantivyDocument};
use tierlog_core::schema::{ERROR_TABLE_SUFFIX, FieldType};

use crate::error::{HotError, Result};
use crate::schema::{KIND_ERROR, KIND_ROW, StreamSchema};

/// A stream's two tables, on both tiers: its rows, and the messages it could not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    Rows,
    Errors,
}

impl TableKind {
    pub const ALL: [TableKind; 2] = [TableKind::Rows, TableKind::Errors];

    /// Its name in SQL and in the cold store: the stream's, or the stream's + `_errors`.
    pub fn table_name(self, stream: &str) -> String {
        match self {
            TableKind::Rows => stream.to_string(),
            TableKind::Errors => format!("{stream}{ERROR_TABLE_SUFFIX}"),
        }
    }

    /// Its stored columns, in table order.
    pub fn columns(self, schema: &StreamSchema) -> Vec<TableColumn> {
        match self {
            TableKind::Rows => schema.row_columns(),
            TableKind::Errors => StreamSchema::error_columns(),
        }
    }

    /// The `_kind` of its documents in a generation.
    pub fn doc_kind(self) -> u64 {
        match self {
            TableKind::Rows => KIND_ROW,
            TableKind::Errors => KIND_ERROR,
        }
    }
}

/// How a column is stored in the hot index, and its Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Timestamp,
    /// A keyword (raw string) fast field, read as `Utf8View` from its term dictionary.
    Keyword,
    Int32,
    Int64,
    Float64,
    Bool,
    /// From the doc store: tokenized text, `_key`, `_attributes` (JSON text), error details.
    Stored,
}

impl ColumnKind {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnKind::Keyword => DataType::Utf8View,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Stored => DataType::Utf8,
        }
    }
}

/// A table column: its name in SQL, the index field that holds it, how it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumn {
    pub name: String,
    pub field: String,
    pub kind: ColumnKind,
}

impl TableColumn {
    /// A column stored under its own name.
    fn same(name: &str, kind: ColumnKind) -> TableColumn {
        TableColumn { name: name.into(), field: name.into(), kind }
    }
}

impl StreamSchema {
    /// The columns of the stream's table: system columns, then format and declared
    /// columns (`_tier` is the query layer's).
    pub fn row_columns(&self) -> Vec<TableColumn> {
        let mut out: Vec<TableColumn> = vec![
            TableColumn::same("_timestamp", ColumnKind::Timestamp),
            TableColumn::same("_ingest_time", ColumnKind::Timestamp),
            TableColumn::same("_topic", ColumnKind::Keyword),
            TableColumn::same("_partition", ColumnKind::Int32),
            TableColumn::same("_offset", ColumnKind::Int64),
            TableColumn::same("_record", ColumnKind::Int32),
            TableColumn::same("_key", ColumnKind::Stored),
            TableColumn::same("_attributes", ColumnKind::Stored),
        ];
        for c in &self.columns {
            let kind = match c.ty {
                FieldType::Text => ColumnKind::Stored,
                FieldType::Keyword => ColumnKind::Keyword,
                FieldType::I64 => ColumnKind::Int64,
                FieldType::F64 => ColumnKind::Float64,
                FieldType::Bool => ColumnKind::Bool,
                FieldType::Timestamp => ColumnKind::Timestamp,
            };
            out.push(TableColumn::same(&c.name, kind));
        }
        out
    }

    /// The columns of the stream's error table. Its own columns live in `_error_*` and
    /// `_payload*` index fields, apart from the declared fields of the row table.
    pub fn error_columns() -> Vec<TableColumn> {
        let error = |name: &str, field: &str, kind| TableColumn { name: name.into(), field: field.into(), kind };
        vec![
            TableColumn::same("_timestamp", ColumnKind::Timestamp),
            TableColumn::same("_topic", ColumnKind::Keyword),
            TableColumn::same("_partition", ColumnKind::Int32),
            TableColumn::same("_offset", ColumnKind::Int64),
            error("reason", "_error_reason", ColumnKind::Keyword),
            error("detail", "_error_detail", ColumnKind::Stored),
            error("payload", "_payload", ColumnKind::Stored),
            error("payload_encoding", "_payload_encoding", ColumnKind::Keyword),
        ]
    }
}

/// The Arrow schema of `columns` (every column nullable).
pub fn arrow_schema(columns: &[TableColumn]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), true)).collect::<Vec<_>>()))
}

/// Reads `docs` of one segment as a record batch of `columns`.
pub fn read_segment(segment: &SegmentReader, docs: &[DocId], columns: &[TableColumn]) -> Result<RecordBatch> {
    let schema = arrow_schema(columns);
    let fast = segment.fast_fields();
    let err = |e: tantivy::TantivyError| HotError::Read(e.to_string());
    let needs_store = columns.iter().any(|c| c.kind == ColumnKind::Stored);
    let stored: Vec<TantivyDocument> = if needs_store {
        let store = segment.get_store_reader(64).map_err(|e| HotError::Read(e.to_string()))?;
        docs.iter().map(|d| store.get(*d)).collect::<tantivy::Result<_>>().map_err(err)?
    } else {
        Vec::new()
    };
    let index_schema = segment.schema();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for TableColumn { field, kind, .. } in columns {
        let field_name = field.as_str();
        let array: ArrayRef = match kind {
            ColumnKind::Timestamp => {
                let values = fast_values(fast.date(field_name).ok().as_ref(), docs, |t| t.into_timestamp_micros());
                Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(values).with_timezone("UTC"))
            }
            ColumnKind::Keyword => match fast.str(field_name).ok().flatten() {
                // Few distinct values (levels, codes, hosts): the segment's terms once, then
                // a gather of their views by term ordinal, with no per-row string work.
                Some(col) if col.num_terms() <= docs.len().max(1024) => {
                    let mut terms = StringViewBuilder::with_capacity(col.num_terms());
                    let mut stream = col.dictionary().stream().map_err(|e| HotError::Read(e.to_string()))?;
                    while stream.advance() {
                        terms.append_value(String::from_utf8_lossy(stream.key()));
                    }
                    let ords = PrimitiveArray::<UInt32Type>::from(fast_values(Some(col.ords()), docs, |o| o as u32));
                    take(&terms.finish(), &ords, None).map_err(|e| HotError::Read(e.to_string()))?
                }
                col => {
                    let mut b = StringViewBuilder::with_capacity(docs.len());
                    let mut text = String::new();
                    for d in docs {
                        let ord = col.as_ref().and_then(|c| c.term_ords(*d).next());
                        match (ord, &col) {
                            (Some(ord), Some(c)) => {
                                text.clear();
                                c.ord_to_str(ord, &mut text).map_err(|e| HotError::Read(e.to_string()))?;
                                b.append_value(&text);
                            }
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
            },
            ColumnKind::Int32 => {
                Arc::new(PrimitiveArray::<Int32Type>::from(fast_values(fast.i64(field_name).ok().as_ref(), docs, |v| v as i32)))
            }
            ColumnKind::Int64 => Arc::new(PrimitiveArray::<Int64Type>::from(fast_values(fast.i64(field_name).ok().as_ref(), docs, |v| v))),
            ColumnKind::Float64 => {
                Arc::new(PrimitiveArray::<Float64Type>::from(fast_values(fast.f64(field_name).ok().as_ref(), docs, |v| v)))
            }
            ColumnKind::Bool => {
                let values = match fast_values(fast.bool(field_name).ok().as_ref(), docs, |v| v) {
                    FastValues::Dense(v) => BooleanArray::from(v),
                    FastValues::Sparse(v) => BooleanArray::from(v),
                };
                Arc::new(values)
            }
            ColumnKind::Stored => {
                let field = index_schema.get_field(field_name).ok();
                let mut b = StringBuilder::new();
                for doc in &stored {
                    let value = field.and_then(|f| doc.get_first(f));
                    match value {
                        Some(v) if v.as_str().is_some() => b.append_value(v.as_str().unwrap_or_default()),
                        Some(v) => {
                            let owned = OwnedValue::from(v);
                            b.append_value(serde_json::to_string(&owned).map_err(|e| HotError::Read(e.to_string()))?);
                        }
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    RecordBatch::try_new(schema, arrays).map_err(|e| HotError::Read(e.to_string()))
}

/// A fast column's values for a list of docs: `Dense` when every doc has one.
enum FastValues<T> {
    Dense(Vec<T>),
    Sparse(Vec<Option<T>>),
}

impl<T: ArrowNativeType, A: ArrowPrimitiveType<Native = T>> From<FastValues<T>> for PrimitiveArray<A> {
    fn from(values: FastValues<T>) -> Self {
        match values {
            FastValues::Dense(v) => PrimitiveArray::new(ScalarBuffer::from(v), None),
            FastValues::Sparse(v) => v.into_iter().collect(),
        }
    }
}

/// The first value of a fast column for each doc, mapped to the Arrow value type, read in
/// bulk: a range read when the docs are consecutive, a gather otherwise. Docs without a
/// value (or a segment without the column) are `None`.
fn fast_values<T, U>(column: Option<&tantivy::columnar::Column<T>>, docs: &[DocId], map: impl Fn(T) -> U) -> FastValues<U>
where
    T: PartialOrd + Copy + Default + std::fmt::Debug + Send + Sync + 'static,
{
    let Some(column) = column else { return FastValues::Sparse(docs.iter().map(|_| None).collect()) };
    if column.get_cardinality() == Cardinality::Full {
        let mut out = vec![T::default(); docs.len()];
        // Docs may come in any order (a sort on the time column); a range needs n, n+1, ….
        let consecutive = !docs.is_empty() && docs.windows(2).all(|w| w[0].checked_add(1) == Some(w[1]));
        if consecutive {
            column.values.get_range(u64::from(docs[0]), &mut out);
        } else {
            column.values.get_vals(docs, &mut out);
        }
        FastValues::Dense(out.into_iter().map(map).collect())
    } else {
        let mut out = vec![None; docs.len()];
        column.first_vals(docs, &mut out);
        FastValues::Sparse(out.into_iter().map(|v| v.map(&map)).collect())
    }
}

/// The live documents of a segment whose `_kind` is `kind`: all of them, or those of
/// `candidates` (sorted) when given.
pub fn docs_of_kind(segment: &SegmentReader, kind: u64, candidates: Option<Vec<DocId>>) -> Vec<DocId> {
    let column = segment.fast_fields().u64("_kind").ok();
    // Most segments hold one kind only; then the column's range answers for every doc.
    let uniform = column.as_ref().filter(|c| c.min_value() == c.max_value()).map(|c| c.min_value() == kind);
    let alive = |d: &DocId| !segment.is_deleted(*d);
    let of_kind = |d: &DocId| column.as_ref().and_then(|c| c.first(*d)) == Some(kind);
    match (uniform, candidates) {
        (Some(false), _) => Vec::new(),
        (Some(true), None) if segment.alive_bitset().is_none() => (0..segment.max_doc()).collect(),
        (Some(true), None) => segment.doc_ids_alive().collect(),
        (Some(true), Some(mut docs)) => {
            docs.retain(alive);
            docs
        }
        (None, None) => segment.doc_ids_alive().filter(of_kind).collect(),
        (None, Some(mut docs)) => {
            docs.retain(|d| alive(d) && of_kind(d));
            docs
        }
    }
}
