//! The SQL surface: a DataFusion session with one table per stream and one per error
//! table, over the hot tier.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use tierlog_core::config::{QueryConfig, StreamConfig};
use tierlog_core::schema::ERROR_TABLE_SUFFIX;
use tierlog_hot::{HotCatalog, StreamSchema};

use crate::table::{StreamTable, TableKind};

/// Answers SQL over every stream's tables, within the `[query]` limits.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    limits: QueryConfig,
    runtime: Arc<QueryRuntime>,
    /// Each stream's row table schema, in config order.
    streams: Vec<(String, SchemaRef)>,
    catalog: HotCatalog,
}

/// Queries run on their own threads: a CPU-bound plan never stalls the HTTP server,
/// ingest probes, or the timer that cancels it.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // May be dropped inside another runtime, where a blocking shutdown would panic.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The rows of a query, cut at the row limit when one was given.
#[derive(Debug)]
pub struct QueryResult {
    pub batches: Vec<RecordBatch>,
    /// More rows existed than the limit let through.
    pub truncated: bool,
}

/// A failed query, with a message for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(String);

impl QueryError {
    pub fn new(message: impl Into<String>) -> Self {
        QueryError(message.into())
    }

    pub fn from_display(e: impl std::fmt::Display) -> Self {
        QueryError(e.to_string())
    }
}

impl QueryEngine {
    pub fn new(streams: &[StreamConfig], limits: &QueryConfig, catalog: &HotCatalog) -> Result<QueryEngine, QueryError> {
        let config = SessionConfig::new().with_information_schema(true);
        // Sorts, aggregations and joins spill to the temp folder past the pool; what
        // cannot spill fails with ResourcesExhausted instead of growing.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_limit.0 as usize)))
            .build_arc()
            .map_err(|e| QueryError(e.to_string()))?;
        let mut ctx = SessionContext::new_with_config_rt(config, runtime);
        for udf in crate::pushdown::udfs() {
            ctx.register_udf(udf);
        }
        // json_get_str(_attributes, 'user'), `_attributes->>'user'`, json_contains, …
        datafusion_functions_json::register_all(&mut ctx).map_err(|e| QueryError(e.to_string()))?;
        let mut tables = Vec::new();
        for stream in streams {
            let schema = StreamSchema::new(stream);
            for (name, kind) in [
                (stream.name.clone(), TableKind::Rows),
                (format!("{}{ERROR_TABLE_SUFFIX}", stream.name), TableKind::Errors),
            ] {
                let table = StreamTable::new(&stream.name, &schema, kind, catalog.clone());
                if kind == TableKind::Rows {
                    tables.push((stream.name.clone(), table.schema()));
                }
                ctx.register_table(name.as_str(), Arc::new(table)).map_err(|e| QueryError(e.to_string()))?;
            }
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("query")
            .enable_all()
            .build()
            .map_err(|e| QueryError(format!("cannot start the query threads: {e}")))?;
        Ok(QueryEngine {
            ctx,
            limits: limits.clone(),
            runtime: Arc::new(QueryRuntime(Some(runtime))),
            streams: tables,
            catalog: catalog.clone(),
        })
    }

    /// Runs one read-only statement within the timeout, keeping at most `max_rows`.
    /// DDL, DML and statements such as `SET` or `COPY` are refused.
    pub async fn sql(&self, sql: &str, max_rows: Option<usize>) -> Result<QueryResult, QueryError> {
        let (ctx, sql) = (self.ctx.clone(), sql.to_string());
        let run = async move {
            let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
            let frame = ctx.sql_with_options(&sql, read_only).await?;
            let mut stream = frame.execute_stream().await?;
            let (mut batches, mut num_rows, mut truncated) = (Vec::new(), 0usize, false);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                match max_rows {
                    Some(max) if num_rows + batch.num_rows() > max => {
                        batches.push(batch.slice(0, max - num_rows));
                        truncated = true;
                        break; // dropping the stream cancels the rest of the query
                    }
                    _ => {
                        num_rows += batch.num_rows();
                        batches.push(batch);
                    }
                }
            }
            Ok::<_, DataFusionError>(QueryResult { batches, truncated })
        };
        let runtime = self.runtime.0.as_ref().expect("the query runtime lives as long as the engine");
        let mut task = runtime.spawn(run);
        let timeout: Duration = self.limits.timeout.0;
        match tokio::time::timeout(timeout, &mut task).await {
            Err(_) => {
                task.abort(); // stops at the plan's next yield point
                Err(QueryError(format!("query timed out after {} (query.timeout)", self.limits.timeout)))
            }
            Ok(Err(join)) => Err(QueryError(format!("query failed: {join}"))),
            Ok(Ok(Err(e))) => Err(self.describe(e)),
            Ok(Ok(Ok(result))) => Ok(result),
        }
    }

    /// The DataFusion session (the PostgreSQL wire serves it directly).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Whether `name` is a configured stream.
    pub fn has_stream(&self, name: &str) -> bool {
        self.streams.iter().any(|(n, _)| n == name)
    }

    /// Per stream: the table's columns, and rows, bytes and time range per tier.
    pub fn describe_streams(&self) -> serde_json::Value {
        let streams: Vec<serde_json::Value> = self
            .streams
            .iter()
            .map(|(name, schema)| {
                let columns: Vec<serde_json::Value> = schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
                    .collect();
                let (mut rows, mut bytes, mut range, mut generations) = (0u64, 0u64, None::<(i64, i64)>, 0usize);
                for generation in self.catalog.snapshot(name) {
                    let info = generation.info();
                    generations += 1;
                    rows += info.num_docs;
                    bytes += info.num_bytes;
                    if let Some((lo, hi)) = info.time_range_us {
                        range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                    }
                }
                let iso = |us: i64| {
                    arrow::temporal_conversions::timestamp_us_to_datetime(us).map(|t| format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S%.6f")))
                };
                serde_json::json!({
                    "name": name,
                    "error_table": format!("{name}{ERROR_TABLE_SUFFIX}"),
                    "columns": columns,
                    "tiers": {
                        "hot": {
                            // Documents in the index, error rows included.
                            "docs": rows,
                            "bytes": bytes,
                            "generations": generations,
                            "min_timestamp": range.and_then(|r| iso(r.0)),
                            "max_timestamp": range.and_then(|r| iso(r.1)),
                        }
                    }
                })
            })
            .collect();
        serde_json::json!({ "streams": streams })
    }

    fn describe(&self, e: DataFusionError) -> QueryError {
        if let DataFusionError::ResourcesExhausted(detail) = e.find_root() {
            return QueryError(format!(
                "query exceeded memory limit ({} = query.memory_limit): {detail}",
                self.limits.memory_limit
            ));
        }
        QueryError(e.to_string())
    }
}
