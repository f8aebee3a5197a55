//! Filters the hot scan answers itself: `match()` / `match_all()` become tantivy queries
//! (exact), and bounds on `_timestamp` skip segments whose time range cannot match
//! (inexact: DataFusion still filters the rows).

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Operator, ScalarUDF, TableProviderFilterPushDown, Volatility, create_udf,
};
use tantivy::query::{EnableScoring, Query, QueryParser};
use tantivy::schema::FieldType as TantivyType;
use tantivy::{DocId, Searcher, SegmentReader};

pub const MATCH: &str = "match";
pub const MATCH_ALL: &str = "match_all";

/// `match(column, 'query')` and `match_all('query')`. They are answered by the search
/// index through filter pushdown; evaluated anywhere else they say so.
pub fn udfs() -> Vec<ScalarUDF> {
    let refuse = |name: &'static str| {
        Arc::new(move |_: &[ColumnarValue]| -> Result<ColumnarValue> {
            Err(DataFusionError::Plan(format!(
                "{name}() is answered by the search index: use it as a condition of its own in WHERE, \
                 joined to the others with AND (not OR, not in SELECT)"
            )))
        })
    };
    vec![
        create_udf(MATCH, vec![DataType::Utf8, DataType::Utf8], DataType::Boolean, Volatility::Immutable, refuse(MATCH)),
        create_udf(MATCH_ALL, vec![DataType::Utf8], DataType::Boolean, Volatility::Immutable, refuse(MATCH_ALL)),
    ]
}

/// A full-text condition: on one column, or on every text column and `_attributes`.
#[derive(Debug, Clone, PartialEq)]
pub enum TextQuery {
    Column { column: String, query: String },
    All { query: String },
}

/// Inclusive `_timestamp` bounds in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeBounds {
    pub min_us: Option<i64>,
    pub max_us: Option<i64>,
}

/// What a scan can do with its filters.
#[derive(Debug, Clone, Default)]
pub struct Pushdown {
    pub text: Vec<TextQuery>,
    pub time: TimeBounds,
}

fn strip_casts(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => strip_casts(&c.expr),
        Expr::TryCast(c) => strip_casts(&c.expr),
        other => other,
    }
}

fn string_literal(e: &Expr) -> Option<String> {
    match strip_casts(e) {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    }
}

fn text_query(e: &Expr) -> Option<TextQuery> {
    let Expr::ScalarFunction(f) = e else { return None };
    match (f.func.name(), f.args.as_slice()) {
        (MATCH, [column, query]) => match strip_casts(column) {
            Expr::Column(c) => Some(TextQuery::Column { column: c.name.clone(), query: string_literal(query)? }),
            _ => None,
        },
        (MATCH_ALL, [query]) => Some(TextQuery::All { query: string_literal(query)? }),
        _ => None,
    }
}

fn timestamp_us(e: &Expr) -> Option<i64> {
    match strip_casts(e) {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
            ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000)),
            _ => None,
        },
        _ => None,
    }
}

/// `_timestamp <op> literal` (either side) as a bound.
fn time_bound(e: &Expr) -> Option<TimeBounds> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { return None };
    let is_ts = |e: &Expr| matches!(strip_casts(e), Expr::Column(c) if c.name == "_timestamp");
    let (op, value) = if is_ts(left) {
        (*op, timestamp_us(right)?)
    } else if is_ts(right) {
        (op.swap()?, timestamp_us(left)?)
    } else {
        return None;
    };
    Some(match op {
        Operator::Gt | Operator::GtEq => TimeBounds { min_us: Some(value), max_us: None },
        Operator::Lt | Operator::LtEq => TimeBounds { min_us: None, max_us: Some(value) },
        Operator::Eq => TimeBounds { min_us: Some(value), max_us: Some(value) },
        _ => return None,
    })
}

pub fn support(e: &Expr) -> TableProviderFilterPushDown {
    if text_query(e).is_some() {
        TableProviderFilterPushDown::Exact
    } else if time_bound(e).is_some() {
        TableProviderFilterPushDown::Inexact
    } else {
        TableProviderFilterPushDown::Unsupported
    }
}

impl Pushdown {
    pub fn from_filters(filters: &[Expr]) -> Pushdown {
        let mut p = Pushdown::default();
        for f in filters {
            if let Some(t) = text_query(f) {
                p.text.push(t);
            } else if let Some(b) = time_bound(f) {
                p.time.min_us = b.min_us.max(p.time.min_us); // None sorts first
                p.time.max_us = match (b.max_us, p.time.max_us) {
                    (Some(a), Some(c)) => Some(a.min(c)),
                    (a, c) => a.or(c),
                };
            }
        }
        p
    }

    /// Whether a segment's `_timestamp` range can hold matching rows.
    pub fn may_match_time(&self, segment: &SegmentReader) -> bool {
        if self.time == TimeBounds::default() {
            return true;
        }
        if segment.num_docs() == 0 {
            return false;
        }
        let Ok(column) = segment.fast_fields().date("_timestamp") else { return true };
        let (lo, hi) = (column.min_value().into_timestamp_micros(), column.max_value().into_timestamp_micros());
        self.time.min_us.is_none_or(|min| hi >= min) && self.time.max_us.is_none_or(|max| lo <= max)
    }

    /// The text queries parsed against one generation's index.
    pub fn parse(&self, searcher: &Searcher) -> Result<Vec<Box<dyn Query>>> {
        let index = searcher.index();
        let schema = index.schema();
        self.text
            .iter()
            .map(|t| {
                let (fields, query) = match t {
                    TextQuery::Column { column, query } => {
                        let field = schema.get_field(column).map_err(|_| {
                            DataFusionError::Plan(format!("match(): column '{column}' is not searchable"))
                        })?;
                        (vec![field], query)
                    }
                    TextQuery::All { query } => {
                        let fields = schema
                            .fields()
                            .filter(|(_, entry)| {
                                entry.is_indexed()
                                    && matches!(entry.field_type(), TantivyType::Str(_) | TantivyType::JsonObject(_))
                                    && !entry.name().starts_with("_error")
                                    && !matches!(entry.name(), "_topic" | "_key" | "_payload_encoding")
                            })
                            .map(|(f, _)| f)
                            .collect();
                        (fields, query)
                    }
                };
                let parser = QueryParser::for_index(index, fields);
                parser
                    .parse_query(query)
                    .map_err(|e| DataFusionError::Plan(format!("match(): cannot parse '{query}': {e}")))
            })
            .collect()
    }
}

/// Keeps the documents of `docs` (sorted) that every query matches in `segment`.
pub fn filter_docs(searcher: &Searcher, segment: &SegmentReader, queries: &[Box<dyn Query>], mut docs: Vec<DocId>) -> Result<Vec<DocId>> {
    for query in queries {
        let weight = query
            .weight(EnableScoring::disabled_from_searcher(searcher))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut hits = Vec::new();
        weight
            .for_each_no_score(segment, &mut |batch| hits.extend_from_slice(batch))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        hits.sort_unstable();
        docs.retain(|d| hits.binary_search(d).is_ok());
    }
    Ok(docs)
}
