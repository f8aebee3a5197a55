//! The PostgreSQL wire protocol on `node.pg_addr` (datafusion-postgres / pgwire): psql,
//! BI tools and drivers query the same tables as the HTTP API.
//!
//! datafusion-postgres parses and plans; this module adds what a shared server needs:
//! - read-only by a statement allow-list: queries, `EXPLAIN`, `SHOW`, `SET` (clients send
//!   it on connect), transactions and cursors. Everything else (DDL, DML, `COPY`,
//!   `CREATE EXTERNAL TABLE`) is refused with SQLSTATE 25006;
//! - passwords from `[[query.users]]`, each user limited to its streams (SQLSTATE 42501);
//! - result rows produced on the query threads, ended at `query.timeout` (SQLSTATE 57014),
//!   and counted in the query metrics.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::{DfSessionService, Parser, QueryHook, ServerOptions};
use futures::{Sink, StreamExt};
use tierlog_core::metrics::Metrics;

use crate::access::{Access, Grant};
use crate::engine::{Outcome, Protocol, QueryEngine, QueryError, count_auth_failure};

/// Serves the engine's tables over the PostgreSQL protocol until the task is dropped.
pub async fn serve(engine: &QueryEngine, access: &Access, metrics: &Metrics, addr: SocketAddr) -> std::io::Result<()> {
    let ctx = Arc::new(engine.session().clone());
    // The pg_catalog tables psql's \d and DBeaver read on connect.
    setup_pg_catalog(&ctx, crate::engine::CATALOG, Arc::new(datafusion_postgres::auth::AuthManager::default()))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let options = ServerOptions::new().with_host(addr.ip().to_string()).with_port(addr.port());
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(Guard { engine: engine.clone(), access: access.clone() }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
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
    let handlers = Handlers {
        service: Arc::new(Service {
            inner: Arc::new(DfSessionService::new_with_hooks(ctx, hooks)),
            engine: engine.clone(),
        }),
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

/// datafusion-postgres' session, with result rows driven by the query engine.
struct Service {
    inner: Arc<DfSessionService>,
    engine: QueryEngine,
}

impl Service {
    /// Moves a result's rows onto the query threads, under the timeout and metrics.
    fn guard(&self, response: Response, started: Instant) -> Response {
        let Response::Query(query) = response else { return response };
        let QueryResponse { command_tag, row_schema, data_rows, .. } = query;
        let running = self.engine.spawn(data_rows, Protocol::Pg, started, |row| row.is_err());
        let rows = running.into_stream().map(|item| item.unwrap_or_else(|e| Err(pg_error(&e))));
        let mut guarded = QueryResponse::new(row_schema, rows);
        guarded.set_command_tag(&command_tag);
        Response::Query(guarded)
    }

    fn failed(&self, e: &PgWireError, started: Instant) {
        let denied = matches!(e, PgWireError::UserError(info) if info.code == INSUFFICIENT_PRIVILEGE);
        self.engine.record(Protocol::Pg, if denied { Outcome::Denied } else { Outcome::Error }, started);
    }
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
        let started = Instant::now();
        match SimpleQueryHandler::do_query(&*self.inner, client, query).await {
            Ok(responses) => Ok(responses.into_iter().map(|r| self.guard(r, started)).collect()),
            Err(e) => {
                self.failed(&e, started);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Service {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.inner.query_parser()
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Self::Statement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = Instant::now();
        match ExtendedQueryHandler::do_query(&*self.inner, client, portal, max_rows).await {
            Ok(response) => Ok(self.guard(response, started)),
            Err(e) => {
                self.failed(&e, started);
                Err(e)
            }
        }
    }
}

/// SQLSTATE of a statement outside the caller's grant.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

fn pg_error(e: &QueryError) -> PgWireError {
    let code = match e {
        QueryError::Denied(_) => INSUFFICIENT_PRIVILEGE,
        QueryError::Timeout(_) => "57014", // query_canceled
        QueryError::Failed(_) => "XX000",
    };
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), e.to_string())))
}

/// Refuses statements outside the allow-list and tables outside the user's grant.
struct Guard {
    engine: QueryEngine,
    access: Access,
}

impl Guard {
    fn grant(&self, client: &(dyn ClientInfo + Send + Sync)) -> Result<Grant, PgWireError> {
        let user = client.metadata().get("user").map(String::as_str).unwrap_or_default();
        self.access.grant_of(user).ok_or_else(|| pg_error(&QueryError::Denied(format!("user '{user}' may not query"))))
    }

    fn check(&self, client: &(dyn ClientInfo + Send + Sync), plan: &LogicalPlan) -> PgWireResult<()> {
        let grant = self.grant(client)?;
        self.engine.authorize(&grant, plan).map_err(|e| pg_error(&e))
    }
}

fn allowed(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::Set(_)
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Deallocate { .. }
            | Statement::Discard { .. }
    )
}

fn refuse(statement: &Statement) -> PgWireError {
    let text = statement.to_string();
    let head: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "25006".into(), // read_only_sql_transaction
        format!("tierlog is read-only: '{head} …' is not allowed (only queries)"),
    )))
}

#[async_trait]
impl QueryHook for Guard {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !allowed(statement) {
            return Some(Err(refuse(statement)));
        }
        if self.access.is_open() || !matches!(statement, Statement::Query(_) | Statement::Explain { .. }) {
            return None;
        }
        // Plan once more to see which tables it reads; planning reads no data.
        let plan = match ctx.state().statement_to_plan(DFStatement::Statement(Box::new(statement.clone()))).await {
            Ok(plan) => plan,
            Err(_) => return None, // the session reports the planning error itself
        };
        let client: &(dyn ClientInfo + Send + Sync) = client;
        self.check(client, &plan).err().map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        (!allowed(statement)).then(|| Err(refuse(statement)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !allowed(statement) {
            return Some(Err(refuse(statement)));
        }
        let client: &(dyn ClientInfo + Send + Sync) = client;
        self.check(client, plan).err().map(Err)
    }
}
