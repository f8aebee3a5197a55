//! The PostgreSQL wire protocol on `node.pg_addr` (datafusion-postgres / pgwire): psql,
//! BI tools and drivers query the same tables as the HTTP API.
//!
//! Read-only by a statement allow-list: queries, `EXPLAIN`, `SHOW`, `SET` (clients send
//! it on connect), transactions and cursors. Everything else — DDL, DML, `COPY`,
//! `CREATE EXTERNAL TABLE` — is refused with SQLSTATE 25006.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::{QueryHook, ServerOptions};

use crate::engine::QueryEngine;

/// Serves the engine's tables over the PostgreSQL protocol until the task is dropped.
pub async fn serve(engine: &QueryEngine, addr: SocketAddr) -> std::io::Result<()> {
    let ctx = Arc::new(engine.session().clone());
    // The pg_catalog tables psql's \d and DBeaver read on connect.
    setup_pg_catalog(&ctx, "datafusion", Arc::new(datafusion_postgres::auth::AuthManager::default()))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let options = ServerOptions::new().with_host(addr.ip().to_string()).with_port(addr.port());
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    datafusion_postgres::serve_with_hooks(ctx, &options, hooks).await
}

/// Refuses every statement outside the allow-list.
struct ReadOnly;

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
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        (!allowed(statement)).then(|| Err(refuse(statement)))
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
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        (!allowed(statement)).then(|| Err(refuse(statement)))
    }
}
