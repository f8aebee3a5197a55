//! `GET /api/v1/search`: newest hits, total count and a time histogram of a full-text
//! query on one stream, answered with SQL on the same tables.

use serde_json::{Value, json};

use crate::access::Grant;
use crate::engine::{Protocol, QueryEngine};
use crate::error::{ErrorKind, QueryError};
use crate::format::rows_json;

/// The search request, as given in the URL.
#[derive(Debug, serde::Deserialize)]
pub struct SearchRequest {
    pub stream: String,
    /// tantivy query syntax over every text column and `_attributes`; empty or `*`: all.
    #[serde(default)]
    pub q: String,
    /// RFC 3339, inclusive.
    pub start: Option<String>,
    /// RFC 3339, exclusive.
    pub end: Option<String>,
    pub limit: Option<usize>,
}

/// Histogram bucket widths, in seconds, and how they are written in SQL.
const BUCKETS: &[(i64, &str)] = &[
    (1, "1 second"),
    (5, "5 seconds"),
    (10, "10 seconds"),
    (30, "30 seconds"),
    (60, "1 minute"),
    (300, "5 minutes"),
    (600, "10 minutes"),
    (1800, "30 minutes"),
    (3600, "1 hour"),
    (10_800, "3 hours"),
    (21_600, "6 hours"),
    (43_200, "12 hours"),
    (86_400, "1 day"),
    (604_800, "7 days"),
];

/// At most this many buckets.
const MAX_BUCKETS: i64 = 100;

/// `s` as an SQL string literal.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn search(engine: &QueryEngine, grant: &Grant, req: &SearchRequest, max_rows: usize) -> Result<Value, QueryError> {
    if !engine.has_stream(&req.stream) {
        return Err(QueryError::new(ErrorKind::UndefinedTable, format!("unknown stream '{}'", req.stream)));
    }
    let mut conditions = Vec::new();
    let q = req.q.trim();
    if !q.is_empty() && q != "*" {
        conditions.push(format!("match_all({})", literal(q)));
    }
    if let Some(start) = &req.start {
        conditions.push(format!("_timestamp >= to_timestamp_micros({})", literal(start)));
    }
    if let Some(end) = &req.end {
        conditions.push(format!("_timestamp < to_timestamp_micros({})", literal(end)));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let table = format!("\"{}\"", req.stream);
    let limit = req.limit.unwrap_or(100).min(max_rows);

    let hits = engine
        .sql(&format!("SELECT * FROM {table} {filter} ORDER BY _timestamp DESC LIMIT {limit}"), grant, Protocol::Http, Some(limit))
        .await?;
    let hits = rows_json(&hits.batches).map_err(internal)?;

    let summary = engine
        .sql(
            &format!(
                "SELECT count(*) AS n, CAST(min(_timestamp) AS BIGINT) AS lo, CAST(max(_timestamp) AS BIGINT) AS hi \
                 FROM {table} {filter}"
            ),
            grant,
            Protocol::Http,
            None,
        )
        .await?;
    let summary = first_row(&summary.batches)?;
    let total = summary["n"].as_u64().unwrap_or(0);

    // Bucket width from the requested range, else the range of the hits.
    let (lo_us, hi_us) = (summary["lo"].as_i64(), summary["hi"].as_i64());
    let span_s = match (lo_us, hi_us) {
        (Some(lo), Some(hi)) => (hi - lo) / 1_000_000 + 1,
        _ => 1,
    };
    let (width_s, width_sql) = BUCKETS
        .iter()
        .copied()
        .find(|(w, _)| span_s / w < MAX_BUCKETS)
        .unwrap_or(BUCKETS[BUCKETS.len() - 1]);
    let histogram = if total == 0 {
        json!([])
    } else {
        let result = engine
            .sql(
                &format!(
                    "SELECT date_bin(INTERVAL '{width_sql}', _timestamp, TIMESTAMP '1970-01-01T00:00:00Z') AS start, \
                     count(*) AS count FROM {table} {filter} GROUP BY 1 ORDER BY 1"
                ),
                grant,
                Protocol::Http,
                None,
            )
            .await?;
        rows_json(&result.batches).map_err(internal)?
    };
    Ok(json!({
        "stream": req.stream,
        "query": req.q,
        "total": total,
        "hits": hits,
        "histogram": { "bucket_seconds": width_s, "buckets": histogram },
    }))
}

fn first_row(batches: &[arrow::record_batch::RecordBatch]) -> Result<Value, QueryError> {
    let rows = rows_json(batches).map_err(internal)?;
    Ok(rows.get(0).cloned().unwrap_or(Value::Null))
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::new(ErrorKind::Internal, e.to_string())
}
