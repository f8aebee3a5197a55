//! The SQL surface: a DataFusion session with one table per stream and one per error
//! table, over the hot tier.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use tierlog_core::config::StreamConfig;
use tierlog_core::schema::ERROR_TABLE_SUFFIX;
use tierlog_hot::{HotCatalog, StreamSchema};

use crate::table::{StreamTable, TableKind};

/// Answers SQL over every stream's tables.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
}

/// A failed query, with a message for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(String);

impl QueryEngine {
    pub fn new(streams: &[StreamConfig], catalog: &HotCatalog) -> Result<QueryEngine, QueryError> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        for udf in crate::pushdown::udfs() {
            ctx.register_udf(udf);
        }
        for stream in streams {
            let schema = StreamSchema::new(stream);
            for (name, kind) in [
                (stream.name.clone(), TableKind::Rows),
                (format!("{}{ERROR_TABLE_SUFFIX}", stream.name), TableKind::Errors),
            ] {
                let table = StreamTable::new(&stream.name, &schema, kind, catalog.clone());
                ctx.register_table(name.as_str(), Arc::new(table)).map_err(|e| QueryError(e.to_string()))?;
            }
        }
        Ok(QueryEngine { ctx })
    }

    /// Runs one read-only statement and collects its result. DDL, DML and statements
    /// such as `SET` or `COPY` are refused.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let frame = self.ctx.sql_with_options(sql, read_only).await.map_err(|e| QueryError(e.to_string()))?;
        frame.collect().await.map_err(|e| QueryError(e.to_string()))
    }
}
