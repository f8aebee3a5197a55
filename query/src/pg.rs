//! The PostgreSQL wire protocol on `node.pg_addr` (pgwire): psql, BI tools and drivers
//! query the same tables as the HTTP API.
//!
//! Every statement, simple or extended protocol, goes through the engine's gate
//! (`gate.rs`), the same as HTTP; this module only speaks the protocol around it:
//! - each connection holds a session of its own (a copy of its user's, which holds only
//!   the user's tables), its client settings and its cursors; nothing one connection
//!   does changes another;
//! - passwords from `[[query.users]]` (cleartext startup), each user limited to its streams;
//! - result rows are produced on the query threads, ended at `query.timeout` (or the
//!   session's shorter `statement_timeout`), and counted in the query metrics;
//! - refusals carry the SQLSTATE of their kind (`error.rs`): 42501 outside the grant,
//!   25006 for anything but a read, 42601 for bad SQL.
//!
//! datafusion-postgres is used for what it is good at: the `pg_catalog` tables, the
//! PostgreSQL SQL rewrites, and Arrow ↔ pg value encoding.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::{QueryParser, StoredStatement};
use datafusion_postgres::pgwire::api::store::{MemPortalStore, PortalStore};
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::ServerOptions;
use futures::{Sink, SinkExt, StreamExt};
use tierlog_core::metrics::Metrics;
use tokio::sync::Mutex;

use crate::access::{Access, Grant};
use crate::engine::{Outcome, Protocol, QueryEngine, Running, count_auth_failure};
use crate::error::{ErrorKind, QueryError};
use crate::gate::{ClientSetting, Gated};

/// Serves the engine's tables over the PostgreSQL protocol until the task is dropped.
pub async fn serve(engine: &QueryEngine, access: &Access, metrics: &Metrics, addr: SocketAddr) -> std::io::Result<()> {
    let options = ServerOptions::new().with_host(addr.ip().to_string()).with_port(addr.port());
    let connections = Arc::new(ConnectionManager::new());
    let startup = if access.is_open() {
        Startup::Open(Open { connections: connections.clone() })
    } else {
        // With any user configured, a connection needs a user with a password.
        let passwords = Passwords { access: access.clone(), metrics: metrics.clone() };
        Startup::Password(
            CleartextPasswordAuthStartupHandler::new(passwords, DefaultServerParameterProvider::default())
                .with_connection_manager(connections.clone()),
        )
    };
    let wire = Arc::new(Wire { engine: engine.clone(), access: access.clone() });
    let service = Arc::new(Service { parser: Arc::new(PgParser { wire: Arc::clone(&wire) }), wire });
    let handlers = Handlers {
        service: service.clone(),
        startup: Arc::new(startup),
        cancel: Arc::new(DefaultCancelHandler::new(connections)),
    };
    datafusion_postgres::serve_with_handlers(Arc::new(handlers), &options).await
}

struct Handlers {
    service: Arc<Service>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// No users configured: anyone who reaches the port may connect.
struct Open {
    connections: Arc<ConnectionManager>,
}

impl NoopStartupHandler for Open {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

enum Startup {
    Open(Open),
    Password(CleartextPasswordAuthStartupHandler<Passwords, DefaultServerParameterProvider>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Open(open) => open.on_startup(client, message).await,
            Startup::Password(password) => password.on_startup(client, message).await,
        }
    }
}

/// The configured users' passwords.
#[derive(Debug)]
struct Passwords {
    access: Access,
    metrics: Metrics,
}

#[async_trait]
impl AuthSource for Passwords {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.access.password_of(user) {
            Some(password) => Ok(Password::new(None, password.expose().as_bytes().to_vec())),
            None => {
                count_auth_failure(&self.metrics, Protocol::Pg);
                Err(PgWireError::InvalidPassword(user.to_string()))
            }
        }
    }
}


/// What one connection holds: its own session over its user's tables, and its cursors.
/// Kept in the connection's extensions, so it ends with the connection.
struct Connection {
    ctx: SessionContext,
    grant: Grant,
    cursors: Mutex<HashMap<String, Cursor>>,
}

/// An open cursor: the rows of a query not fetched yet.
struct Cursor {
    schema: SchemaRef,
    rows: Running<Result<RecordBatch, DataFusionError>>,
    /// The part of a batch a FETCH did not take.
    pending: Option<RecordBatch>,
    /// `WITH HOLD`: survives the end of the transaction.
    hold: bool,
}

impl Cursor {
    /// Up to `count` rows (all the rest with `None`).
    async fn take(&mut self, count: Option<usize>, engine: &QueryEngine) -> Result<Vec<RecordBatch>, QueryError> {
        let (mut out, mut taken) = (Vec::new(), 0usize);
        while count.is_none_or(|c| taken < c) {
            let batch = match self.pending.take() {
                Some(batch) => batch,
                None => match self.rows.next().await {
                    None => break,
                    Some(item) => item?.map_err(|e| engine.error(e))?,
                },
            };
            let want = count.map_or(batch.num_rows(), |c| c - taken);
            if batch.num_rows() > want {
                self.pending = Some(batch.slice(want, batch.num_rows() - want));
                out.push(batch.slice(0, want));
                taken += want;
            } else {
                taken += batch.num_rows();
                out.push(batch);
            }
        }
        Ok(out)
    }
}

/// The statement of the extended protocol: what the gate made of it at Parse, so
/// Describe, Bind and Execute never see an unchecked statement.
#[derive(Debug, Clone)]
pub struct Prepared {
    gated: Gated,
    /// For `FETCH`: the cursor's columns, known at Parse.
    fetch_schema: Option<SchemaRef>,
}

/// The protocol side of the gate, shared by the simple and extended handlers and the
/// extended protocol's parser.
struct Wire {
    engine: QueryEngine,
    access: Access,
}

struct Service {
    wire: Arc<Wire>,
    parser: Arc<PgParser>,
}

fn pg_error(e: &QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

fn error_info(e: &QueryError) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), e.kind().sqlstate().into(), e.to_string())
}

impl Wire {
    /// The connection's own state, made on its first statement.
    fn connection<C: ClientInfo + ?Sized>(&self, client: &C) -> Result<Arc<Connection>, QueryError> {
        if let Some(connection) = client.session_extensions().get::<Connection>() {
            return Ok(connection);
        }
        let user = client.metadata().get("user").map(String::as_str).unwrap_or_default();
        let grant = self
            .access
            .grant_of(user)
            .ok_or_else(|| QueryError::new(ErrorKind::Denied, format!("user '{user}' may not query")))?;
        let ctx = self.engine.private_session(&grant)?;
        client.session_extensions().insert(Connection { ctx, grant, cursors: Mutex::default() });
        Ok(client.session_extensions().get::<Connection>().expect("just inserted"))
    }

    /// Parses and gates one statement of either protocol.
    async fn prepare<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        statement: datafusion::sql::sqlparser::ast::Statement,
    ) -> Result<Prepared, QueryError> {
        let connection = self.connection(client)?;
        let gated = self.engine.gate(&connection.ctx, &connection.grant, statement).await?;
        let fetch_schema = match &gated {
            Gated::Fetch { cursor, .. } => Some(
                connection.cursors.lock().await.get(cursor).map(|c| Arc::clone(&c.schema)).ok_or_else(|| no_cursor(cursor))?,
            ),
            _ => None,
        };
        Ok(Prepared { gated, fetch_schema })
    }

    /// Runs a gated statement: rows with the client's `format`, or a command tag.
    async fn run<C>(&self, client: &mut C, prepared: Prepared, format: &Format, started: Instant) -> Result<Response, QueryError>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = self.connection(client)?;
        // After an error, PostgreSQL runs nothing but the end of the transaction.
        if client.transaction_status() == TransactionStatus::Error && !matches!(prepared.gated, Gated::Commit | Gated::Rollback) {
            return Err(QueryError::new(
                ErrorKind::InFailedTransaction,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let session_timeout = session_timeout(client);
        Ok(match prepared.gated {
            Gated::Read(plan) => {
                let fields = Arc::new(pg_fields(plan.schema().as_arrow(), format, &options)?);
                let batches = self.execute(&connection.ctx, plan, started, session_timeout).await?;
                let engine = self.engine.clone();
                let encoded = Arc::clone(&fields);
                let rows = batches
                    .into_stream()
                    .map(move |item| -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> {
                        match item.and_then(|b| b.map_err(|e| engine.error(e))) {
                            Ok(batch) => encode_recordbatch(Arc::clone(&encoded), batch),
                            Err(e) => Box::new(std::iter::once(Err(pg_error(&e)))),
                        }
                    })
                    .flat_map(futures::stream::iter);
                Response::Query(QueryResponse::new(fields, rows))
            }
            Gated::Set { setting, value } => {
                client.metadata_mut().insert(setting.key().to_string(), value.clone());
                if let Some(name) = setting.reported_name() {
                    let status = PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name.to_string(), value));
                    client.send(status).await.map_err(|e| QueryError::new(ErrorKind::Internal, PgWireError::from(e).to_string()))?;
                }
                Response::Execution(Tag::new("SET"))
            }
            Gated::Show(setting) => {
                let value = client.metadata().get(setting.key()).cloned().unwrap_or_else(|| setting.default_value().to_string());
                let value = if setting == ClientSetting::StatementTimeout && value != "0" { format!("{value}ms") } else { value };
                Response::Query(one_value(setting.key(), &value)?)
            }
            Gated::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Gated::Commit | Gated::Rollback => {
                // Cursors without HOLD end with their transaction.
                let mut cursors = connection.cursors.lock().await;
                let ended: Vec<String> = cursors.iter().filter(|(_, c)| !c.hold).map(|(name, _)| name.clone()).collect();
                for name in ended {
                    cursors.remove(&name);
                    cursor_portal(client, &name, None);
                }
                let failed = client.transaction_status() == TransactionStatus::Error;
                Response::TransactionEnd(Tag::new(if matches!(prepared.gated, Gated::Commit) && !failed { "COMMIT" } else { "ROLLBACK" }))
            }
            Gated::Declare { cursor, plan, hold } => {
                let mut cursors = connection.cursors.lock().await;
                if cursors.contains_key(&cursor) {
                    return Err(QueryError::new(ErrorKind::UndefinedCursor, format!("cursor \"{cursor}\" already exists")));
                }
                let schema = Arc::new(plan.schema().as_arrow().clone());
                let rows = self.execute(&connection.ctx, plan, started, session_timeout).await?;
                cursor_portal(client, &cursor, Some(&schema));
                cursors.insert(cursor, Cursor { schema, rows, pending: None, hold });
                Response::Execution(Tag::new("DECLARE CURSOR"))
            }
            Gated::Fetch { cursor, count } => {
                let mut cursors = connection.cursors.lock().await;
                let open = cursors.get_mut(&cursor).ok_or_else(|| no_cursor(&cursor))?;
                let fields = Arc::new(pg_fields(&open.schema, format, &options)?);
                let batches = open.take(count, &self.engine).await?;
                let rows: Vec<PgWireResult<DataRow>> =
                    batches.into_iter().flat_map(|b| encode_recordbatch(Arc::clone(&fields), b)).collect();
                let mut response = QueryResponse::new(fields, futures::stream::iter(rows));
                response.set_command_tag("FETCH");
                Response::Query(response)
            }
            Gated::Close(cursor) => {
                let mut cursors = connection.cursors.lock().await;
                match cursor {
                    None => {
                        for name in cursors.keys() {
                            cursor_portal(client, name, None);
                        }
                        cursors.clear();
                    }
                    Some(name) => {
                        cursors.remove(&name).ok_or_else(|| no_cursor(&name))?;
                        cursor_portal(client, &name, None);
                    }
                }
                Response::Execution(Tag::new("CLOSE CURSOR"))
            }
            Gated::Discard(tag) => {
                let mut cursors = connection.cursors.lock().await;
                for name in cursors.keys() {
                    cursor_portal(client, name, None);
                }
                cursors.clear();
                Response::Execution(Tag::new(tag))
            }
        })
    }

    /// Starts a checked read on the query threads.
    async fn execute(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        started: Instant,
        session_timeout: Option<Duration>,
    ) -> Result<Running<Result<RecordBatch, DataFusionError>>, QueryError> {
        let frame = ctx.execute_logical_plan(plan).await.map_err(|e| self.engine.error(e))?;
        Ok(self.engine.start(frame, Protocol::Pg, started, session_timeout))
    }

    /// Counts a statement that failed before producing rows, and turns it into a pg error.
    fn failed(&self, e: QueryError, started: Instant) -> PgWireError {
        self.engine.record(Protocol::Pg, Outcome::of(&e), started);
        pg_error(&e)
    }
}

/// A cursor is also a portal of the protocol (libpq's `PQdescribePortal`, which psycopg
/// uses for a named cursor's columns): adds it with `schema`, or removes it.
fn cursor_portal<C>(client: &C, name: &str, schema: Option<&SchemaRef>)
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore,
{
    let Some(store) = client.portal_store().as_any().downcast_ref::<MemPortalStore<Prepared>>() else { return };
    match schema {
        Some(schema) => {
            let prepared = Prepared { gated: Gated::Fetch { cursor: name.to_string(), count: None }, fetch_schema: Some(Arc::clone(schema)) };
            let statement = Arc::new(StoredStatement::new(name.to_string(), prepared, vec![]));
            store.put_portal(Arc::new(Portal::new_cursor(name.to_string(), statement)));
        }
        None => store.rm_portal(name),
    }
}

fn no_cursor(name: &str) -> QueryError {
    QueryError::new(ErrorKind::UndefinedCursor, format!("cursor \"{name}\" does not exist"))
}

/// The session's `statement_timeout`, when set.
fn session_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<Duration> {
    let ms: u64 = client.metadata().get(ClientSetting::StatementTimeout.key())?.parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

fn pg_fields(schema: &arrow::datatypes::Schema, format: &Format, options: &Arc<FormatOptions>) -> Result<Vec<FieldInfo>, QueryError> {
    arrow_schema_to_pg_fields(schema, format, Some(Arc::clone(options))).map_err(|e| QueryError::new(ErrorKind::Unsupported, e.to_string()))
}

/// A one-row, one-column text answer (`SHOW`).
fn one_value(name: &str, value: &str) -> Result<QueryResponse, QueryError> {
    let fields = Arc::new(vec![FieldInfo::new(name.to_string(), None, None, Type::VARCHAR, FieldFormat::Text)]);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    encoder.encode_field(&Some(value)).map_err(|e| QueryError::new(ErrorKind::Internal, e.to_string()))?;
    let row = encoder.take_row();
    let mut response = QueryResponse::new(fields, futures::stream::iter([Ok(row)]));
    response.set_command_tag("SHOW");
    Ok(response)
}

#[async_trait]
impl SimpleQueryHandler for Service {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let wire = &self.wire;
        let started = Instant::now();
        let statements = wire.engine.parse(query).map_err(|e| wire.failed(e, started))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let started = Instant::now();
            let result = match wire.prepare(client, statement).await {
                Ok(prepared) => wire.run(client, prepared, &Format::UnifiedText, started).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(response) => responses.push(response),
                Err(e) => {
                    // Like PostgreSQL: the statements after a failed one do not run.
                    wire.engine.record(Protocol::Pg, Outcome::of(&e), started);
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Parses and gates at the extended protocol's Parse, with the connection's session.
struct PgParser {
    wire: Arc<Wire>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let started = Instant::now();
        let wire = &self.wire;
        let mut statements = wire.engine.parse(sql).map_err(|e| wire.failed(e, started))?;
        let statement = match statements.len() {
            0 => return Ok(None),
            1 => statements.remove(0),
            _ => {
                let e = QueryError::new(ErrorKind::Syntax, "cannot insert multiple commands into a prepared statement");
                return Err(wire.failed(e, started));
            }
        };
        wire.prepare(client, statement).await.map(Some).map_err(|e| wire.failed(e, started))
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        let Some(plan) = prepared.plan() else { return Ok(vec![]) };
        parameter_types(plan)?
            .into_iter()
            .map(|t| t.map_or(Ok(Type::UNKNOWN), |t| into_pg_type(&t)))
            .collect()
    }

    fn get_result_schema(&self, prepared: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        let schema = match (&prepared.gated, &prepared.fetch_schema) {
            (Gated::Read(plan), _) => Arc::new(plan.schema().as_arrow().clone()),
            (Gated::Fetch { .. }, Some(schema)) => Arc::clone(schema),
            (Gated::Show(setting), _) => {
                return Ok(vec![FieldInfo::new(setting.key().to_string(), None, None, Type::VARCHAR, format.format_for(0))]);
            }
            _ => return Ok(vec![]),
        };
        arrow_schema_to_pg_fields(&schema, format, None)
    }
}

impl Prepared {
    /// The plan whose `$n` parameters a Bind fills.
    fn plan(&self) -> Option<&LogicalPlan> {
        match &self.gated {
            Gated::Read(plan) | Gated::Declare { plan, .. } => Some(plan),
            _ => None,
        }
    }

    /// Puts the bound values in place of `$1 … $n`. Values are literals: the checked
    /// plan keeps its shape.
    fn bind(&mut self, values: &datafusion::common::ParamValues) -> Result<(), DataFusionError> {
        if let Gated::Read(plan) | Gated::Declare { plan, .. } = &mut self.gated {
            *plan = plan.clone().replace_params_with_values(values)?;
        }
        Ok(())
    }
}

/// The types of `$1 … $n`, in order (`None` where DataFusion cannot tell).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<arrow::datatypes::DataType>>> {
    let types = plan.get_parameter_types().map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut numbered: Vec<(usize, Option<arrow::datatypes::DataType>)> =
        types.into_iter().filter_map(|(name, t)| Some((name.strip_prefix('$')?.parse().ok()?, t))).collect();
    numbered.sort_by_key(|(n, _)| *n);
    Ok(numbered.into_iter().map(|(_, t)| t).collect())
}

#[async_trait]
impl ExtendedQueryHandler for Service {
    type Statement = Prepared;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire keeps the portal's rows and hands them out `max_rows` at a time.
        let started = Instant::now();
        let mut prepared = portal.statement.statement.clone();
        if portal.parameter_len() > 0 {
            let Some(plan) = prepared.plan() else {
                return Err(self.wire.failed(QueryError::new(ErrorKind::Syntax, "this statement takes no parameters"), started));
            };
            let types = parameter_types(plan)?;
            let types: Vec<Option<&arrow::datatypes::DataType>> = types.iter().map(Option::as_ref).collect();
            let values = deserialize_parameters(portal, &types)?;
            prepared.bind(&values).map_err(|e| self.wire.failed(self.wire.engine.error(e), started))?;
        }
        self.wire.run(client, prepared, &portal.result_column_format, started).await.map_err(|e| self.wire.failed(e, started))
    }
}
