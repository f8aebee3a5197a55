//! Filters the hot scan answers itself:
//! - `match()` / `match_all()` become tantivy queries (exact);
//! - equality and `IN` on keyword, number, bool and timestamp columns, and ranges on
//!   number and timestamp columns, become term, term-set and range queries, so only the
//!   matching documents are read (inexact: DataFusion checks the rows again);
//! - bounds on `_timestamp` also skip whole segments whose time range cannot match;
//! - `_tier = 'hot'` / `'cold'` leaves the other tier's scan out.

use std::ops::Bound;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Operator, ScalarUDF, TableProviderFilterPushDown, Volatility, create_udf,
};
use tantivy::query::{EmptyQuery, EnableScoring, Query, QueryParser, RangeQuery, TermSetQuery};
use tantivy::schema::{Field, FieldType as TantivyType};
use tantivy::{DateTime, DocId, Searcher, SegmentReader, Term};
use tierlog_hot::{ColumnKind, TableColumn};

use crate::table::TIER_COLUMN;

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

/// A condition on one column that the index can narrow down.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldFilter {
    /// The index field behind the column.
    field: String,
    op: FieldOp,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldOp {
    /// `=` (one value) or `IN (…)`.
    In(Vec<ScalarValue>),
    Range(Bound<ScalarValue>, Bound<ScalarValue>),
}

/// A full-text condition resolved against the table: the index fields it searches.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSearch {
    /// The SQL column of `match(column, …)`; `None` for `match_all`.
    column: Option<String>,
    /// Index fields behind the columns searched (a column's field may differ from its
    /// SQL name, as on error tables).
    fields: Vec<String>,
    query: String,
}

/// Columns `match_all` leaves out: Kafka metadata, not log text.
const NOT_TEXT: &[&str] = &["_topic", "_key", "payload_encoding"];

impl TextSearch {
    fn resolve(text: TextQuery, columns: &[TableColumn]) -> TextSearch {
        match text {
            TextQuery::Column { column, query } => {
                let field = columns.iter().find(|c| c.name == column).map_or_else(|| column.clone(), |c| c.field.clone());
                TextSearch { column: Some(column), fields: vec![field], query }
            }
            TextQuery::All { query } => TextSearch {
                column: None,
                fields: columns.iter().filter(|c| !NOT_TEXT.contains(&c.name.as_str())).map(|c| c.field.clone()).collect(),
                query,
            },
        }
    }
}

/// What a scan can do with its filters.
#[derive(Debug, Clone, Default)]
pub struct Pushdown {
    pub text: Vec<TextSearch>,
    pub fields: Vec<FieldFilter>,
    pub time: TimeBounds,
    /// The one tier `_tier = '…'` asks for; `None`: both.
    pub tier: Option<Tier>,
}

/// A value of the virtual `_tier` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Hot,
    Cold,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        }
    }
}

/// `_tier = 'hot'` or `_tier = 'cold'` (either side).
fn tier_filter(e: &Expr) -> Option<Tier> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else { return None };
    let is_tier = |e: &Expr| matches!(strip_casts(e), Expr::Column(c) if c.name == TIER_COLUMN);
    let value = if is_tier(left) { string_literal(right)? } else if is_tier(right) { string_literal(left)? } else { return None };
    [Tier::Hot, Tier::Cold].into_iter().find(|t| t.name() == value)
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

/// A timestamp literal in µs. Only a bare literal: a cast around it could truncate, and
/// the optimizer folds constant casts before filters reach the scan anyway.
fn timestamp_us(e: &Expr) -> Option<i64> {
    match e {
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
    // The column bare, or cast to a timestamp at least as fine (nothing truncated).
    fn is_ts(e: &Expr) -> bool {
        match e {
            Expr::Column(c) => c.name == "_timestamp",
            Expr::Cast(c) => {
                matches!(c.field.data_type(), DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _)) && is_ts(&c.expr)
            }
            _ => false,
        }
    }
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

/// The column a filter tests, when the index holds its values as the table shows them:
/// the bare column, or a keyword read as a string (the only cast that changes nothing).
fn indexed_column<'a>(e: &Expr, columns: &'a [TableColumn]) -> Option<&'a TableColumn> {
    let find = |name: &str| columns.iter().find(|c| c.name == name);
    match e {
        Expr::Column(c) => find(&c.name).filter(|c| c.kind != ColumnKind::Stored),
        Expr::Cast(cast) => match (cast.expr.as_ref(), cast.field.data_type()) {
            (Expr::Column(c), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {
                find(&c.name).filter(|c| c.kind == ColumnKind::Keyword)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A literal value, never under a cast (see [`timestamp_us`]).
fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(ScalarValue::Dictionary(_, inner), _) => Some(inner.as_ref().clone()),
        Expr::Literal(v, _) if !v.is_null() => Some(v.clone()),
        _ => None,
    }
}

fn field_filter(e: &Expr, columns: &[TableColumn]) -> Option<FieldFilter> {
    let filter = |column: &TableColumn, op| Some(FieldFilter { field: column.field.clone(), op });
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, op, value) = match (indexed_column(left, columns), indexed_column(right, columns)) {
                (Some(c), None) => (c, *op, literal(right)?),
                (None, Some(c)) => (c, op.swap()?, literal(left)?),
                _ => return None,
            };
            let op = match op {
                Operator::Eq => FieldOp::In(vec![value]),
                Operator::Gt => FieldOp::Range(Bound::Excluded(value), Bound::Unbounded),
                Operator::GtEq => FieldOp::Range(Bound::Included(value), Bound::Unbounded),
                Operator::Lt => FieldOp::Range(Bound::Unbounded, Bound::Excluded(value)),
                Operator::LtEq => FieldOp::Range(Bound::Unbounded, Bound::Included(value)),
                _ => return None,
            };
            filter(column, op)
        }
        Expr::InList(list) if !list.negated => {
            let values = list.list.iter().map(literal).collect::<Option<Vec<_>>>()?;
            filter(indexed_column(&list.expr, columns)?, FieldOp::In(values))
        }
        Expr::Between(between) if !between.negated => filter(
            indexed_column(&between.expr, columns)?,
            FieldOp::Range(Bound::Included(literal(&between.low)?), Bound::Included(literal(&between.high)?)),
        ),
        _ => None,
    }
}

/// Whether `e` is a `match()` / `match_all()`, which only an index answers.
pub fn is_text_query(e: &Expr) -> bool {
    text_query(e).is_some()
}

/// How the scan takes each filter, given the table's columns.
pub fn support(e: &Expr, columns: &[TableColumn]) -> TableProviderFilterPushDown {
    if text_query(e).is_some() {
        TableProviderFilterPushDown::Exact
    } else if time_bound(e).is_some() || field_filter(e, columns).is_some() || tier_filter(e).is_some() {
        TableProviderFilterPushDown::Inexact
    } else {
        TableProviderFilterPushDown::Unsupported
    }
}

impl Pushdown {
    pub fn from_filters(filters: &[Expr], columns: &[TableColumn]) -> Pushdown {
        let mut p = Pushdown::default();
        for f in filters {
            if let Some(t) = text_query(f) {
                p.text.push(TextSearch::resolve(t, columns));
                continue;
            }
            if let Some(b) = time_bound(f) {
                p.time.min_us = b.min_us.max(p.time.min_us); // None sorts first
                p.time.max_us = match (b.max_us, p.time.max_us) {
                    (Some(a), Some(c)) => Some(a.min(c)),
                    (a, c) => a.or(c),
                };
            }
            if let Some(field) = field_filter(f, columns) {
                p.fields.push(field);
            }
            // Two different tiers asked for: DataFusion's own check of the
            // (inexact) filters then answers no rows.
            if let Some(tier) = tier_filter(f) {
                p.tier = Some(tier);
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

    /// Fails on a text query that is not valid query syntax, whether or not any data
    /// would be searched.
    pub fn check_syntax(&self) -> Result<()> {
        for TextSearch { query, .. } in &self.text {
            if tantivy::query_grammar::parse_query(query).is_err() {
                return Err(DataFusionError::Plan(format!("match(): cannot parse '{query}'{}", syntax_position(query))));
            }
        }
        Ok(())
    }

    /// The text queries parsed against one generation's index, then the field filters
    /// the index can answer (a filter it cannot take is left to DataFusion).
    pub fn parse(&self, searcher: &Searcher) -> Result<Vec<Box<dyn Query>>> {
        self.parse_with(searcher, true)
    }

    /// [`Pushdown::parse`] without the range queries: those a remote index's warm-up
    /// can fetch for in advance (text and term sets name their terms; a range on a fast
    /// field reads its column block by block). The ranges stay with the Parquet
    /// reader's predicate, which prunes by statistics and page index instead.
    pub fn parse_warmable(&self, searcher: &Searcher) -> Result<Vec<Box<dyn Query>>> {
        self.parse_with(searcher, false)
    }

    fn parse_with(&self, searcher: &Searcher, ranges: bool) -> Result<Vec<Box<dyn Query>>> {
        let mut queries = self.parse_text(searcher)?;
        let schema = searcher.index().schema();
        for filter in &self.fields {
            let Ok(field) = schema.get_field(&filter.field) else { continue };
            let entry = schema.get_field_entry(field);
            if !entry.is_indexed() {
                continue;
            }
            let term = |v: &ScalarValue| term(field, entry.field_type(), v);
            let query: Option<Box<dyn Query>> = match &filter.op {
                FieldOp::In(values) => {
                    values.iter().map(|v| term(v)?.exact()).collect::<Option<Vec<_>>>().map(|t| Box::new(TermSetQuery::new(t)) as _)
                }
                FieldOp::Range(lower, upper) if ranges && !matches!(entry.field_type(), TantivyType::Str(_)) => {
                    let bound = |b: &Bound<ScalarValue>, round: fn(ValueTerm) -> Term| match b {
                        Bound::Unbounded => Some(Bound::Unbounded),
                        Bound::Included(v) => term(v).map(|t| Bound::Included(round(t))),
                        Bound::Excluded(v) => term(v).map(|t| match t {
                            ValueTerm::Exact(t) => Bound::Excluded(t),
                            rounded => Bound::Included(round(rounded)),
                        }),
                    };
                    match (bound(lower, ValueTerm::floor), bound(upper, ValueTerm::ceil)) {
                        (Some(lo), Some(hi)) => Some(Box::new(RangeQuery::new(lo, hi))),
                        _ => None,
                    }
                }
                FieldOp::Range(..) => None,
            };
            queries.extend(query);
        }
        Ok(queries)
    }

    fn parse_text(&self, searcher: &Searcher) -> Result<Vec<Box<dyn Query>>> {
        let index = searcher.index();
        let schema = index.schema();
        self.text
            .iter()
            .map(|t| {
                // A field this generation does not have (declared after it was written)
                // holds nothing that could match.
                let present: Vec<(Field, &tantivy::schema::FieldEntry)> = t
                    .fields
                    .iter()
                    .filter_map(|name| schema.get_field(name).ok())
                    .map(|f| (f, schema.get_field_entry(f)))
                    .collect();
                let searchable: Vec<Field> = present
                    .iter()
                    .filter(|(_, e)| e.is_indexed() && matches!(e.field_type(), TantivyType::Str(_) | TantivyType::JsonObject(_)))
                    .map(|(f, _)| *f)
                    .collect();
                if let Some(column) = &t.column
                    && !present.is_empty()
                    && !present.iter().any(|(_, e)| e.is_indexed())
                {
                    return Err(DataFusionError::Plan(format!("match(): column '{column}' is not searchable")));
                }
                // match(column) also takes number and date fields (`status:[200 TO 299]`).
                let fields = match &t.column {
                    Some(_) => present.iter().filter(|(_, e)| e.is_indexed()).map(|(f, _)| *f).collect(),
                    None => searchable,
                };
                if fields.is_empty() {
                    return Ok(Box::new(EmptyQuery) as Box<dyn Query>);
                }
                let query = &t.query;
                QueryParser::for_index(index, fields)
                    .parse_query(query)
                    .map_err(|e| DataFusionError::Plan(format!("match(): cannot parse '{query}'{}: {e}", syntax_position(query))))
            })
            .collect()
    }
}

/// Where a query's first syntax error is, for the message (tantivy's strict parser
/// does not say; its lenient one does).
fn syntax_position(query: &str) -> String {
    let (_, errors) = tantivy::query_grammar::parse_query_lenient(query);
    match errors.first() {
        Some(e) => format!(" at character {} ({})", e.pos + 1, e.message),
        None => String::new(),
    }
}

/// A literal as an index term. Timestamps finer than the index's microseconds become
/// the microsecond below and above, so a range built from them can only grow.
enum ValueTerm {
    Exact(Term),
    Between(Term, Term),
}

impl ValueTerm {
    fn exact(self) -> Option<Term> {
        match self {
            ValueTerm::Exact(t) => Some(t),
            ValueTerm::Between(..) => None,
        }
    }
    fn floor(self) -> Term {
        match self {
            ValueTerm::Exact(t) | ValueTerm::Between(t, _) => t,
        }
    }
    fn ceil(self) -> Term {
        match self {
            ValueTerm::Exact(t) | ValueTerm::Between(_, t) => t,
        }
    }
}

fn term(field: Field, field_type: &TantivyType, value: &ScalarValue) -> Option<ValueTerm> {
    use ScalarValue as V;
    let int = || -> Option<i64> {
        match value {
            V::Int8(Some(v)) => Some(i64::from(*v)),
            V::Int16(Some(v)) => Some(i64::from(*v)),
            V::Int32(Some(v)) => Some(i64::from(*v)),
            V::Int64(Some(v)) => Some(*v),
            V::UInt8(Some(v)) => Some(i64::from(*v)),
            V::UInt16(Some(v)) => Some(i64::from(*v)),
            V::UInt32(Some(v)) => Some(i64::from(*v)),
            V::UInt64(Some(v)) => i64::try_from(*v).ok(),
            _ => None,
        }
    };
    let exact = |t: Term| Some(ValueTerm::Exact(t));
    match field_type {
        TantivyType::Str(_) => match value {
            V::Utf8(Some(s)) | V::Utf8View(Some(s)) | V::LargeUtf8(Some(s)) => exact(Term::from_field_text(field, s)),
            _ => None,
        },
        TantivyType::I64(_) => exact(Term::from_field_i64(field, int()?)),
        TantivyType::F64(_) => {
            let f = match value {
                V::Float64(Some(f)) => *f,
                V::Float32(Some(f)) => f64::from(*f),
                _ => int()? as f64,
            };
            if f.is_nan() { None } else { exact(Term::from_field_f64(field, f)) }
        }
        TantivyType::Bool(_) => match value {
            V::Boolean(Some(b)) => exact(Term::from_field_bool(field, *b)),
            _ => None,
        },
        TantivyType::Date(_) => {
            let micros = |us: i64| Term::from_field_date(field, DateTime::from_timestamp_micros(us));
            match value {
                V::TimestampNanosecond(Some(ns), _) if ns.rem_euclid(1_000) != 0 => {
                    let floor = ns.div_euclid(1_000);
                    Some(ValueTerm::Between(micros(floor), micros(floor + 1)))
                }
                _ => exact(micros(timestamp_us(&Expr::Literal(value.clone(), None))?)),
            }
        }
        _ => None,
    }
}

/// The documents of `segment` (sorted) that every query matches.
pub fn matching_docs(searcher: &Searcher, segment: &SegmentReader, queries: &[Box<dyn Query>]) -> Result<Vec<DocId>> {
    let mut docs: Option<Vec<DocId>> = None;
    for query in queries {
        let weight = query
            .weight(EnableScoring::disabled_from_searcher(searcher))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut hits = Vec::new();
        weight
            .for_each_no_score(segment, &mut |batch| hits.extend_from_slice(batch))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        hits.sort_unstable();
        docs = Some(match docs {
            None => hits,
            Some(mut docs) => {
                docs.retain(|d| hits.binary_search(d).is_ok());
                docs
            }
        });
        if docs.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
    }
    Ok(docs.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{cast, col, lit};

    use super::*;

    fn columns() -> Vec<TableColumn> {
        let column = |name: &str, kind| TableColumn { name: name.into(), field: name.into(), kind };
        vec![
            column("_timestamp", ColumnKind::Timestamp),
            column("level", ColumnKind::Keyword),
            column("rtt", ColumnKind::Float64),
            column("message", ColumnKind::Stored),
        ]
    }

    #[test]
    fn plain_comparisons_narrow_the_scan() {
        let c = columns();
        let inexact = TableProviderFilterPushDown::Inexact;
        assert_eq!(support(&col("level").eq(lit("INFO")), &c), inexact);
        assert_eq!(support(&col("level").in_list(vec![lit("a"), lit("b")], false), &c), inexact);
        assert_eq!(support(&col("rtt").between(lit(0.1), lit(0.2)), &c), inexact);
        assert_eq!(support(&lit(0.5).lt(col("rtt")), &c), inexact);
        let micros = ScalarValue::TimestampMicrosecond(Some(10), Some("UTC".into()));
        assert_eq!(support(&col("_timestamp").gt_eq(lit(micros)), &c), inexact);
        let p = Pushdown::from_filters(&[col("level").in_list(vec![lit("a"), lit("b")], false)], &c);
        assert_eq!(p.fields, vec![FieldFilter { field: "level".into(), op: FieldOp::In(vec!["a".into(), "b".into()]) }]);
    }

    #[test]
    fn nothing_is_pushed_that_could_drop_a_matching_row() {
        let c = columns();
        let unsupported = TableProviderFilterPushDown::Unsupported;
        // rtt > CAST(1.9 AS BIGINT) is rtt > 1: searching rtt > 1.9 would lose 1.5.
        assert_eq!(support(&col("rtt").gt(cast(lit(1.9), DataType::Int64)), &c), unsupported);
        // A cast to seconds truncates the column: its bounds are not the column's.
        let seconds = cast(col("_timestamp"), DataType::Timestamp(TimeUnit::Second, None));
        assert_eq!(support(&seconds.eq(lit(ScalarValue::TimestampSecond(Some(10), None))), &c), unsupported);
        assert_eq!(support(&col("level").not_eq(lit("x")), &c), unsupported);
        assert_eq!(support(&col("level").in_list(vec![lit("a")], true), &c), unsupported);
        assert_eq!(support(&col("message").eq(lit("x")), &c), unsupported, "text is matched with match()");
    }
}
