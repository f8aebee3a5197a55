//! The SQL surface: DataFusion sessions with one table per stream and one per error
//! table, over both tiers; one session per limited user holding only its tables.
//! Statements reach them only through the gate (`gate.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use futures::{Stream, StreamExt, TryStreamExt};
use tierlog_core::config::{QueryConfig, StreamConfig};
use tierlog_core::metrics::Metrics;
use tierlog_core::units::HumanDuration;
use tierlog_cold::{ColdReader, ColdSnapshot};
use tierlog_hot::{HotCatalog, StreamSchema, TableKind};
use tokio::sync::mpsc;

use crate::budget::ColdBudget;
use crate::access::{Access, Grant};
use crate::cold::COLD_STORE_URL;
use crate::error::{ErrorKind, QueryError};
use crate::gate::{Gated, SqlParser};
use crate::table::StreamTable;

/// How long `/api/v1/streams` waits for each cold table.
const DESCRIBE_COLD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The SQL catalog, which PostgreSQL clients see as the database name.
pub const CATALOG: &str = "tierlog";

/// Answers SQL over every stream's tables, within the `[query]` limits.
#[derive(Clone)]
pub struct QueryEngine {
    /// Per user with a limited grant, a session holding only that user's tables (so
    /// `information_schema` and `pg_catalog` list nothing else); `None`: every table.
    sessions: Arc<HashMap<Option<String>, SessionContext>>,
    parser: Arc<SqlParser>,
    limits: QueryConfig,
    runtime: Arc<QueryRuntime>,
    /// Each stream's row table schema, in config order.
    streams: Vec<(String, SchemaRef)>,
    /// Table name (a stream's rows or errors) → stream name, for grants.
    tables: Arc<HashMap<String, String>>,
    catalog: HotCatalog,
    cold: Option<Arc<ColdReader>>,
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

/// The rows of a running query, as they come.
pub struct Rows {
    schema: SchemaRef,
    running: Running<Result<RecordBatch, DataFusionError>>,
    engine: QueryEngine,
    max_rows: Option<usize>,
    num_rows: usize,
    truncated: bool,
}

impl Rows {
    /// The answer's columns, as planned.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next batch; `None` at the end or once the row limit is reached (dropping
    /// the rest cancels the query).
    pub async fn next(&mut self) -> Option<Result<RecordBatch, QueryError>> {
        if self.truncated {
            return None;
        }
        let batch = match self.running.next().await? {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => return Some(Err(self.engine.error(e))),
            Err(e) => return Some(Err(e)),
        };
        if let Some(max) = self.max_rows
            && self.num_rows + batch.num_rows() > max
        {
            self.truncated = true;
            self.running.finish(Outcome::Ok);
            let keep = max - self.num_rows;
            self.num_rows = max;
            return Some(Ok(batch.slice(0, keep)));
        }
        self.num_rows += batch.num_rows();
        Some(Ok(batch))
    }

    /// Rows handed out so far.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Whether the row limit cut the answer.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// The rows of a query, cut at the row limit when one was given.
#[derive(Debug)]
pub struct QueryResult {
    pub batches: Vec<RecordBatch>,
    /// More rows existed than the limit let through.
    pub truncated: bool,
}

impl QueryEngine {
    pub fn new(
        streams: &[StreamConfig],
        limits: &QueryConfig,
        catalog: &HotCatalog,
        cold: Option<Arc<ColdReader>>,
        metrics: &Metrics,
    ) -> Result<QueryEngine, QueryError> {
        let internal = |e: &dyn std::fmt::Display| QueryError::new(ErrorKind::Internal, e.to_string());
        // Sorts, aggregations and joins spill to the temp folder past the pool; what
        // cannot spill fails with ResourcesExhausted instead of growing. One pool for
        // every session: the limit is the node's.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_limit.0 as usize)))
            .build_arc()
            .map_err(|e| internal(&e))?;
        if let Some(cold) = &cold {
            let url = ObjectStoreUrl::parse(COLD_STORE_URL).map_err(|e| internal(&e))?;
            runtime.register_object_store(url.as_ref(), cold.object_store());
        }
        let (mut streams_out, mut tables) = (Vec::new(), Vec::new());
        for stream in streams {
            let schema = StreamSchema::new(stream);
            for kind in TableKind::ALL {
                let name = kind.table_name(&stream.name);
                let table = Arc::new(StreamTable::new(&stream.name, &schema, kind, catalog.clone(), cold.clone()));
                if kind == TableKind::Rows {
                    streams_out.push((stream.name.clone(), table.schema()));
                }
                tables.push((name, stream.name.clone(), table));
            }
        }
        let mut sessions = HashMap::new();
        let node_budget = ColdBudget { bytes: limits.max_cold_bytes.0, setting: "query.max_cold_bytes".into() };
        sessions.insert(None, session(&runtime, &tables, &Grant::All, node_budget.clone())?);
        for user in &limits.users {
            let budget = match user.max_cold_bytes {
                Some(bytes) => ColdBudget { bytes: bytes.0, setting: format!("max_cold_bytes of user '{}'", user.name) },
                None => node_budget.clone(),
            };
            sessions.insert(Some(user.name.clone()), session(&runtime, &tables, &Access::grant_for(user), budget)?);
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let query_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("query")
            .enable_all()
            .build()
            .map_err(|e| QueryError::new(ErrorKind::Internal, format!("cannot start the query threads: {e}")))?;
        Ok(QueryEngine {
            sessions: Arc::new(sessions),
            parser: Arc::new(SqlParser::new()),
            limits: limits.clone(),
            runtime: Arc::new(QueryRuntime(Some(query_runtime))),
            streams: streams_out,
            tables: Arc::new(tables.into_iter().map(|(name, stream, _)| (name, stream)).collect()),
            catalog: catalog.clone(),
            cold,
            metrics: metrics.clone(),
        })
    }

    /// The hot generations of every stream.
    pub(crate) fn catalog(&self) -> &HotCatalog {
        &self.catalog
    }

    /// Runs one read-only statement for `grant` within the timeout, keeping at most
    /// `max_rows`. Anything but a read is refused by the gate.
    pub async fn sql(
        &self,
        sql: &str,
        grant: &Grant,
        protocol: Protocol,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let mut rows = self.sql_rows(sql, grant, protocol, max_rows).await?;
        let mut batches = Vec::new();
        while let Some(batch) = rows.next().await {
            batches.push(batch?);
        }
        Ok(QueryResult { batches, truncated: rows.truncated() })
    }

    /// Starts one read-only statement; its rows come as they are produced, cut at
    /// `max_rows`, on the query threads and under the timeout.
    pub async fn sql_rows(&self, sql: &str, grant: &Grant, protocol: Protocol, max_rows: Option<usize>) -> Result<Rows, QueryError> {
        let started = Instant::now();
        let frame = match self.read(sql, grant).await {
            Ok(frame) => frame,
            Err(e) => {
                self.record(protocol, Outcome::of(&e), started);
                return Err(e);
            }
        };
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let running = self.start(frame, protocol, started, None);
        Ok(Rows { schema, running, engine: self.clone(), max_rows, num_rows: 0, truncated: false })
    }

    /// What `sql` would read, without running it: per tier, the hot generations and the
    /// cold segments that survive pruning, and the cold bytes and GETs estimated (from
    /// the segments' layout tags; the caches may hold some), beside the caller's budget.
    pub async fn explain(&self, sql: &str, grant: &Grant) -> Result<serde_json::Value, QueryError> {
        let frame = self.read(sql, grant).await?;
        let budget = frame.task_ctx().session_config().get_extension::<ColdBudget>();
        let plan = frame.create_physical_plan().await.map_err(|e| self.error(e))?;
        let cold: Vec<serde_json::Value> = crate::cold::ColdEstimate::of_plan(&plan)
            .into_iter()
            .map(|(table, e)| {
                serde_json::json!({
                    "table": table, "segments": e.files, "estimated_bytes": e.bytes, "estimated_gets": e.gets,
                    "segments_without_layout": e.without_layout,
                })
            })
            .collect();
        let cold_bytes: u64 = cold.iter().filter_map(|c| c["estimated_bytes"].as_u64()).sum();
        Ok(serde_json::json!({
            "hot": { "generations": crate::table::hot_generations(&plan) },
            "cold": { "scans": cold, "estimated_bytes": cold_bytes, "estimate": true },
            "budget": budget.map(|b| serde_json::json!({ "bytes": b.bytes, "setting": b.setting, "over": cold_bytes > b.bytes })),
            "plan": datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string(),
        }))
    }

    /// Runs a checked read's batches on the query threads, under the timeout (or the
    /// session's shorter one), counted in the query metrics.
    pub(crate) fn start(
        &self,
        frame: DataFrame,
        protocol: Protocol,
        started: Instant,
        session_timeout: Option<std::time::Duration>,
    ) -> Running<Result<RecordBatch, DataFusionError>> {
        // Planned here rather than in execute_stream: the cold budget is checked on the
        // physical plan, whose cold scans estimated what they will read.
        let batches = futures::stream::once(async move {
            let task = Arc::new(frame.task_ctx());
            let plan = frame.create_physical_plan().await?;
            if let Some(budget) = task.session_config().get_extension::<ColdBudget>() {
                crate::budget::check(&plan, &budget)?;
            }
            datafusion::physical_plan::execute_stream(plan, task)
        })
        .try_flatten();
        self.spawn(batches, protocol, started, session_timeout, |b| b.is_err())
    }

    /// One statement through the gate, which must find it a read.
    async fn read(&self, sql: &str, grant: &Grant) -> Result<DataFrame, QueryError> {
        let mut statements = self.parse(sql)?;
        let statement = match statements.len() {
            1 => statements.remove(0),
            0 => return Err(QueryError::new(ErrorKind::Syntax, "empty statement")),
            n => return Err(QueryError::new(ErrorKind::Syntax, format!("{n} statements: send one at a time"))),
        };
        let ctx = self.session_of(grant)?;
        match self.gate(&ctx, grant, statement).await? {
            Gated::Read(plan) => ctx.execute_logical_plan(plan).await.map_err(|e| self.error(e)),
            _ => Err(QueryError::new(
                ErrorKind::ReadOnly,
                "tierlog is read-only: only queries are answered over HTTP (SET, SHOW of client settings, \
                 transactions and cursors belong to a PostgreSQL session)",
            )),
        }
    }

    pub(crate) fn parse(&self, sql: &str) -> Result<Vec<datafusion::sql::sqlparser::ast::Statement>, QueryError> {
        self.parser.parse(sql)
    }

    /// The shared session of `grant`'s tables. Nothing run through the gate changes it.
    pub(crate) fn session_of(&self, grant: &Grant) -> Result<SessionContext, QueryError> {
        self.sessions
            .get(&grant.user().map(str::to_string))
            .cloned()
            .ok_or_else(|| QueryError::new(ErrorKind::Denied, format!("user '{}' may not query", grant.user().unwrap_or_default())))
    }

    /// A session of its own for one PostgreSQL connection: its state is a copy, so what
    /// one connection does to it no other sees.
    pub(crate) fn private_session(&self, grant: &Grant) -> Result<SessionContext, QueryError> {
        Ok(SessionContext::new_with_state(self.session_of(grant)?.state()))
    }

    /// The stream behind a table name of ours.
    pub(crate) fn stream_of_table(&self, table: &str) -> Option<&str> {
        self.tables.get(table).map(String::as_str)
    }

    /// Drives `stream` on the query threads, so a heavy plan never stalls the caller's
    /// runtime, and ends it at the query timeout (or the session's shorter
    /// `statement_timeout`). `failed` tells which items are errors, for the metrics.
    fn spawn<S>(
        &self,
        stream: S,
        protocol: Protocol,
        started: Instant,
        session_timeout: Option<std::time::Duration>,
        failed: fn(&S::Item) -> bool,
    ) -> Running<S::Item>
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
        let (timeout, setting) = match session_timeout {
            Some(t) if t < self.limits.timeout.0 => (t, "statement_timeout"),
            _ => (self.limits.timeout.0, "query.timeout"),
        };
        Running {
            rx,
            task,
            deadline: tokio::time::Instant::from_std(started) + timeout,
            timeout: format!("{} ({setting})", HumanDuration(timeout)),
            failed,
            report: Some(Report { metrics: self.metrics.clone(), protocol, started }),
        }
    }

    /// Counts a query that ended before it produced rows.
    pub(crate) fn record(&self, protocol: Protocol, outcome: Outcome, started: Instant) {
        Report { metrics: self.metrics.clone(), protocol, started }.send(outcome);
    }

    /// Whether `name` is a configured stream.
    pub fn has_stream(&self, name: &str) -> bool {
        self.streams.iter().any(|(n, _)| n == name)
    }

    /// Each stream `grant` may see: its columns, and per tier the rows queries read
    /// there now (a generation already in the cold version counts as cold only), their
    /// bytes and time range.
    pub async fn describe_streams(&self, grant: &Grant) -> serde_json::Value {
        let mut streams = Vec::new();
        for (name, schema) in self.streams.iter().filter(|(name, _)| grant.allows(name)) {
            let columns: Vec<serde_json::Value> =
                schema.fields().iter().map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() })).collect();
            let (cold, in_cold) = match &self.cold {
                Some(reader) => {
                    // An unreachable store must not hold the answer for its retries.
                    let pin = |table: String| async move {
                        match tokio::time::timeout(DESCRIBE_COLD_TIMEOUT, reader.pin(&table)).await {
                            Ok(pinned) => pinned.map_err(|e| e.to_string()),
                            Err(_) => Err(format!("the cold table {table} did not answer within {DESCRIBE_COLD_TIMEOUT:?}")),
                        }
                    };
                    let (rows, errors) = (pin(name.clone()).await, pin(TableKind::Errors.table_name(name)).await);
                    let in_cold: HashSet<String> = rows.iter().flat_map(|s| s.files.iter().flat_map(|f| f.generations().map(str::to_string))).collect();
                    (cold_tier(rows, errors), in_cold)
                }
                None => (serde_json::Value::Null, HashSet::new()),
            };
            // Generation metadata is read from disk.
            let (catalog, stream) = (self.catalog.clone(), name.clone());
            let hot = tokio::task::spawn_blocking(move || hot_tier(&catalog, &stream, &in_cold))
                .await
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
            streams.push(serde_json::json!({
                "name": name,
                "error_table": TableKind::Errors.table_name(name),
                "columns": columns,
                "tiers": { "hot": hot, "cold": cold },
            }));
        }
        serde_json::json!({ "streams": streams })
    }

    /// A DataFusion error as the user sees it.
    pub(crate) fn error(&self, e: DataFusionError) -> QueryError {
        QueryError::from_datafusion(e, &self.limits.memory_limit.to_string())
    }
}

/// A session over the tables `grant` covers, with tierlog's functions and the
/// `pg_catalog` that psql and DBeaver read.
fn session(
    runtime: &Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    tables: &[(String, String, Arc<StreamTable>)],
    grant: &Grant,
    budget: ColdBudget,
) -> Result<SessionContext, QueryError> {
    let internal = |e: &dyn std::fmt::Display| QueryError::new(ErrorKind::Internal, format!("cannot build the SQL session: {e}"));
    // Clients see the catalog as the database `tierlog` (psql -d tierlog, DBeaver).
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG, "public")
        .with_extension(Arc::new(budget));
    let mut ctx = SessionContext::new_with_config_rt(config, Arc::clone(runtime));
    for udf in crate::pushdown::udfs() {
        ctx.register_udf(udf);
    }
    // json_get_str(_attributes, 'user'), `_attributes->>'user'`, json_contains, …
    datafusion_functions_json::register_all(&mut ctx).map_err(|e| internal(&e))?;
    for (name, stream, table) in tables {
        if grant.allows(stream) {
            ctx.register_table(name.as_str(), Arc::clone(table) as Arc<dyn TableProvider>).map_err(|e| internal(&e))?;
        }
    }
    setup_pg_catalog(&ctx, CATALOG, Arc::new(datafusion_postgres::auth::AuthManager::default())).map_err(|e| internal(&e))?;
    Ok(ctx)
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
    pub(crate) fn of(e: &QueryError) -> Outcome {
        match e.kind() {
            ErrorKind::Denied | ErrorKind::ReadOnly | ErrorKind::SettingDenied => Outcome::Denied,
            ErrorKind::Timeout => Outcome::Timeout,
            _ => Outcome::Error,
        }
    }

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
    /// A live-tail feed's statement after each commit (`tail.rs`).
    Tail,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Pg => "pg",
            Protocol::Tail => "tail",
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
    /// The limit and the setting that set it, for the timeout error.
    timeout: String,
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
                Some(Err(QueryError::new(ErrorKind::Timeout, format!("query timed out after {}", self.timeout))))
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

/// The hot tier of `stream` as `/api/v1/streams` reports it, leaving out `in_cold`.
fn hot_tier(catalog: &HotCatalog, stream: &str, in_cold: &HashSet<String>) -> serde_json::Value {
    let (mut docs, mut bytes, mut range, mut generations) = (0u64, 0u64, TimeRange::default(), 0usize);
    for generation in catalog.snapshot(stream).iter().filter(|g| !in_cold.contains(g.meta.id.as_str())) {
        let info = generation.info();
        generations += 1;
        docs += info.num_docs;
        bytes += info.num_bytes;
        range.add(info.time_range_us);
    }
    serde_json::json!({
        // Documents in the index, error rows included.
        "docs": docs,
        "bytes": bytes,
        "generations": generations,
        "min_timestamp": range.min(),
        "max_timestamp": range.max(),
    })
}

/// The cold tier of a stream as `/api/v1/streams` reports it: its row and error tables
/// as the newest version has them (or why they cannot be read now).
fn cold_tier(rows: Result<ColdSnapshot, String>, errors: Result<ColdSnapshot, String>) -> serde_json::Value {
    let (rows, errors) = match (rows, errors) {
        (Ok(rows), Ok(errors)) => (rows, errors),
        (Err(e), _) | (_, Err(e)) => return serde_json::json!({ "error": e }),
    };
    let all = || rows.files.iter().chain(&errors.files);
    let mut range = TimeRange::default();
    for file in all() {
        range.add(file.time_range_us);
    }
    serde_json::json!({
        "rows": rows.files.iter().map(|f| f.rows).sum::<u64>(),
        "error_rows": errors.files.iter().map(|f| f.rows).sum::<u64>(),
        // Parquet files; bundles are apart.
        "bytes": all().map(|f| f.bytes).sum::<u64>(),
        "segments": rows.files.len(),
        "version": rows.version,
        "min_timestamp": range.min(),
        "max_timestamp": range.max(),
    })
}

/// The union of time ranges, µs, shown as RFC 3339.
#[derive(Default)]
struct TimeRange(Option<(i64, i64)>);

impl TimeRange {
    fn add(&mut self, range: Option<(i64, i64)>) {
        if let Some((lo, hi)) = range {
            self.0 = Some(self.0.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }

    fn min(&self) -> Option<String> {
        self.0.and_then(|(lo, _)| iso(lo))
    }

    fn max(&self) -> Option<String> {
        self.0.and_then(|(_, hi)| iso(hi))
    }
}

fn iso(us: i64) -> Option<String> {
    arrow::temporal_conversions::timestamp_us_to_datetime(us).map(|t| format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S%.6f")))
}
