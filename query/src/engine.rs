//! The SQL surface: a DataFusion session with one table per stream and one per error
//! table, over the hot tier.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::{Stream, StreamExt, TryStreamExt};
use tierlog_core::config::{QueryConfig, StreamConfig};
use tierlog_core::metrics::Metrics;
use tierlog_core::units::HumanDuration;
use tokio::sync::mpsc;
use tierlog_core::schema::ERROR_TABLE_SUFFIX;
use tierlog_hot::{HotCatalog, StreamSchema};

use crate::access::Grant;
use crate::table::{StreamTable, TableKind};

/// The SQL catalog, which PostgreSQL clients see as the database name.
pub const CATALOG: &str = "tierlog";

/// Answers SQL over every stream's tables, within the `[query]` limits.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    limits: QueryConfig,
    runtime: Arc<QueryRuntime>,
    /// Each stream's row table schema, in config order.
    streams: Vec<(String, SchemaRef)>,
    /// Table name (a stream's rows or errors) → stream name, for grants.
    tables: Arc<HashMap<String, String>>,
    catalog: HotCatalog,
    metrics: Metrics,
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

/// A refused or failed query, with a message for the user.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Bad SQL, an unknown table, a refused statement, a failed plan, the memory limit.
    #[error("{0}")]
    Failed(String),
    /// The caller's grant does not cover a table the query reads.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Timeout(String),
}

impl QueryError {
    pub fn new(message: impl Into<String>) -> Self {
        QueryError::Failed(message.into())
    }

    pub fn from_display(e: impl std::fmt::Display) -> Self {
        QueryError::Failed(e.to_string())
    }

    fn outcome(&self) -> Outcome {
        match self {
            QueryError::Failed(_) => Outcome::Error,
            QueryError::Denied(_) => Outcome::Denied,
            QueryError::Timeout(_) => Outcome::Timeout,
        }
    }
}

impl QueryEngine {
    pub fn new(
        streams: &[StreamConfig],
        limits: &QueryConfig,
        catalog: &HotCatalog,
        metrics: &Metrics,
    ) -> Result<QueryEngine, QueryError> {
        // Clients see the catalog as the database `tierlog` (psql -d tierlog, DBeaver).
        let config = SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema(CATALOG, "public");
        // Sorts, aggregations and joins spill to the temp folder past the pool; what
        // cannot spill fails with ResourcesExhausted instead of growing.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_limit.0 as usize)))
            .build_arc()
            .map_err(|e| QueryError::Failed(e.to_string()))?;
        let mut ctx = SessionContext::new_with_config_rt(config, runtime);
        for udf in crate::pushdown::udfs() {
            ctx.register_udf(udf);
        }
        // json_get_str(_attributes, 'user'), `_attributes->>'user'`, json_contains, …
        datafusion_functions_json::register_all(&mut ctx).map_err(|e| QueryError::Failed(e.to_string()))?;
        let (mut streams_out, mut tables) = (Vec::new(), HashMap::new());
        for stream in streams {
            let schema = StreamSchema::new(stream);
            for (name, kind) in [
                (stream.name.clone(), TableKind::Rows),
                (format!("{}{ERROR_TABLE_SUFFIX}", stream.name), TableKind::Errors),
            ] {
                let table = StreamTable::new(&stream.name, &schema, kind, catalog.clone());
                if kind == TableKind::Rows {
                    streams_out.push((stream.name.clone(), table.schema()));
                }
                tables.insert(name.clone(), stream.name.clone());
                ctx.register_table(name.as_str(), Arc::new(table)).map_err(|e| QueryError::Failed(e.to_string()))?;
            }
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("query")
            .enable_all()
            .build()
            .map_err(|e| QueryError::Failed(format!("cannot start the query threads: {e}")))?;
        Ok(QueryEngine {
            ctx,
            limits: limits.clone(),
            runtime: Arc::new(QueryRuntime(Some(runtime))),
            streams: streams_out,
            tables: Arc::new(tables),
            catalog: catalog.clone(),
            metrics: metrics.clone(),
        })
    }

    /// Runs one read-only statement for `grant` within the timeout, keeping at most
    /// `max_rows`. DDL, DML and statements such as `SET` or `COPY` are refused.
    pub async fn sql(
        &self,
        sql: &str,
        grant: &Grant,
        protocol: Protocol,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let frame = match self.plan(sql, grant).await {
            Ok(frame) => frame,
            Err(e) => {
                self.record(protocol, e.outcome(), started);
                return Err(e);
            }
        };
        let batches = futures::stream::once(frame.execute_stream()).try_flatten();
        let mut rows = self.spawn(batches, protocol, started, |b| b.is_err());
        let (mut batches, mut num_rows, mut truncated) = (Vec::new(), 0usize, false);
        while let Some(batch) = rows.next().await {
            let batch = batch?.map_err(|e| self.describe(e))?;
            match max_rows {
                Some(max) if num_rows + batch.num_rows() > max => {
                    batches.push(batch.slice(0, max - num_rows));
                    truncated = true;
                    break; // dropping `rows` cancels the rest of the query
                }
                _ => {
                    num_rows += batch.num_rows();
                    batches.push(batch);
                }
            }
        }
        rows.finish(Outcome::Ok);
        Ok(QueryResult { batches, truncated })
    }

    /// Plans a read-only statement and checks that `grant` may read every table in it.
    async fn plan(&self, sql: &str, grant: &Grant) -> Result<DataFrame, QueryError> {
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let frame = self.ctx.sql_with_options(sql, read_only).await.map_err(|e| self.describe(e))?;
        self.authorize(grant, frame.logical_plan())?;
        Ok(frame)
    }

    /// Refuses a plan that reads a stream table `grant` does not cover. Catalog tables
    /// (`information_schema`, `pg_catalog`) hold no log data and stay readable.
    pub(crate) fn authorize(&self, grant: &Grant, plan: &LogicalPlan) -> Result<(), QueryError> {
        if *grant == Grant::All {
            return Ok(());
        }
        let mut denied = None;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && matches!(scan.table_name.schema(), None | Some("public"))
                && let Some(stream) = self.tables.get(scan.table_name.table())
                && !grant.allows(stream)
            {
                denied = Some(scan.table_name.table().to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| self.describe(e))?;
        match denied {
            None => Ok(()),
            Some(table) => Err(QueryError::Denied(format!(
                "permission denied: user '{}' may not read table '{table}' (query.users.streams)",
                grant.user().unwrap_or_default()
            ))),
        }
    }

    /// Drives `stream` on the query threads, so a heavy plan never stalls the caller's
    /// runtime, and ends it at the query timeout. `failed` tells which items are errors,
    /// for the query metrics.
    pub(crate) fn spawn<S>(&self, stream: S, protocol: Protocol, started: Instant, failed: fn(&S::Item) -> bool) -> Running<S::Item>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        // A small channel: the plan runs ahead of the client by two batches at most.
        let (tx, rx) = mpsc::channel(2);
        let runtime = self.runtime.0.as_ref().expect("the query runtime lives as long as the engine");
        let task = runtime.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    break; // the caller went away
                }
            }
        });
        Running {
            rx,
            task,
            deadline: tokio::time::Instant::from_std(started) + self.limits.timeout.0,
            timeout: self.limits.timeout,
            failed,
            report: Some(Report { metrics: self.metrics.clone(), protocol, started }),
        }
    }

    /// Counts a query that ended before it produced rows.
    pub(crate) fn record(&self, protocol: Protocol, outcome: Outcome, started: Instant) {
        Report { metrics: self.metrics.clone(), protocol, started }.send(outcome);
    }

    /// The DataFusion session (the PostgreSQL wire serves it directly).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Whether `name` is a configured stream.
    pub fn has_stream(&self, name: &str) -> bool {
        self.streams.iter().any(|(n, _)| n == name)
    }

    /// Per stream `grant` covers: the table's columns, and rows, bytes and time range per tier.
    pub fn describe_streams(&self, grant: &Grant) -> serde_json::Value {
        let streams: Vec<serde_json::Value> = self
            .streams
            .iter()
            .filter(|(name, _)| grant.allows(name))
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
            return QueryError::Failed(format!(
                "query exceeded memory limit ({} = query.memory_limit): {detail}",
                self.limits.memory_limit
            ));
        }
        QueryError::Failed(e.to_string())
    }
}

/// How a query ended, as counted in `tierlog_queries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Denied,
    Timeout,
    /// The client went away before the end.
    Cancelled,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The surface a query came through, a label of the query metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Pg,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Pg => "pg",
        }
    }
}

/// Counts a refused credential (missing or wrong token, wrong password).
pub(crate) fn count_auth_failure(metrics: &Metrics, protocol: Protocol) {
    metrics
        .counter("tierlog_auth_failures_total", "Refused credentials by protocol", &[("protocol", protocol.label())])
        .inc();
}

/// Counts one query and its latency once it ends.
struct Report {
    metrics: Metrics,
    protocol: Protocol,
    started: Instant,
}

impl Report {
    fn send(self, outcome: Outcome) {
        let protocol = self.protocol.label();
        self.metrics
            .counter("tierlog_queries_total", "Queries by protocol and outcome", &[("protocol", protocol), ("outcome", outcome.label())])
            .inc();
        self.metrics
            .histogram("tierlog_query_duration_seconds", "Query latency, first byte planned to last row sent", &[("protocol", protocol)])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// A query running on the query threads: its items, until the end or the timeout.
/// Dropping it cancels the query.
pub struct Running<T> {
    rx: mpsc::Receiver<T>,
    task: tokio::task::JoinHandle<()>,
    deadline: tokio::time::Instant,
    timeout: HumanDuration,
    failed: fn(&T) -> bool,
    report: Option<Report>,
}

impl<T: Send + 'static> Running<T> {
    /// The next item; after the timeout, one `Err` and then the end.
    pub async fn next(&mut self) -> Option<Result<T, QueryError>> {
        self.report.as_ref()?;
        match tokio::time::timeout_at(self.deadline, self.rx.recv()).await {
            Err(_) => {
                self.task.abort(); // stops at the plan's next yield point
                self.finish(Outcome::Timeout);
                Some(Err(QueryError::Timeout(format!("query timed out after {} (query.timeout)", self.timeout))))
            }
            Ok(None) => {
                self.finish(Outcome::Ok);
                None
            }
            Ok(Some(item)) => {
                if (self.failed)(&item) {
                    self.finish(Outcome::Error);
                }
                Some(Ok(item))
            }
        }
    }

    /// Counts the query now, as ended with `outcome`; later items are not read.
    pub fn finish(&mut self, outcome: Outcome) {
        if let Some(report) = self.report.take() {
            report.send(outcome);
        }
    }

    /// The items as a stream, for APIs that want one.
    pub fn into_stream(self) -> impl Stream<Item = Result<T, QueryError>> + Send + 'static {
        futures::stream::unfold(self, |mut running| async move { running.next().await.map(|item| (item, running)) })
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(report) = self.report.take() {
            report.send(Outcome::Cancelled);
        }
    }
}
