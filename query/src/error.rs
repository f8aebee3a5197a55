//! What can go wrong with a query, and the one place each kind becomes an HTTP status
//! and a PostgreSQL SQLSTATE, so both protocols tell a client the same thing.

use axum::http::StatusCode;
use datafusion::error::DataFusionError;

/// Why a statement was refused or failed, as far as a client needs to tell causes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The SQL does not parse.
    Syntax,
    /// A table the caller may not know of, or that does not exist.
    UndefinedTable,
    /// A column that does not exist.
    UndefinedColumn,
    /// It parses but cannot be planned: wrong types, a misplaced `match()`, a bad argument.
    Plan,
    /// Valid SQL that tierlog does not support.
    Unsupported,
    /// A value failed at run time (a bad cast, a division by zero).
    Data,
    /// The caller's grant does not cover a table the statement reads.
    Denied,
    /// A write, DDL, a file access or a statement the gate cannot classify.
    ReadOnly,
    /// A setting a session may not change (node-wide, or shared with other sessions).
    SettingDenied,
    /// A setting that does not exist.
    UnknownSetting,
    /// `FETCH` or `CLOSE` of a cursor the session does not hold.
    UndefinedCursor,
    /// A statement after a failed one in the same transaction (PostgreSQL wire).
    InFailedTransaction,
    /// `query.timeout` ended the query.
    Timeout,
    /// The memory pool (`query.memory_limit`, shared by all queries) is exhausted.
    ResourcesExhausted,
    /// The query would read more cold bytes than its budget (`query.max_cold_bytes`).
    OverBudget,
    /// A failure of tierlog itself (reading an index, the object store): not the caller's.
    Internal,
}

impl ErrorKind {
    /// The one table: (HTTP status, SQLSTATE, name in JSON answers) of each kind.
    fn spec(self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ErrorKind::Syntax => (S::BAD_REQUEST, "42601", "syntax"), // syntax_error
            ErrorKind::UndefinedTable => (S::BAD_REQUEST, "42P01", "undefined_table"),
            ErrorKind::UndefinedColumn => (S::BAD_REQUEST, "42703", "undefined_column"),
            // syntax_error_or_access_rule_violation
            ErrorKind::Plan => (S::BAD_REQUEST, "42000", "plan"),
            ErrorKind::Unsupported => (S::BAD_REQUEST, "0A000", "unsupported"), // feature_not_supported
            ErrorKind::Data => (S::BAD_REQUEST, "22000", "data"),               // data_exception
            ErrorKind::Denied => (S::FORBIDDEN, "42501", "denied"),              // insufficient_privilege
            ErrorKind::ReadOnly => (S::FORBIDDEN, "25006", "read_only"),         // read_only_sql_transaction
            // insufficient_privilege, as for PostgreSQL's superuser-only settings
            ErrorKind::SettingDenied => (S::FORBIDDEN, "42501", "setting_denied"),
            ErrorKind::UnknownSetting => (S::BAD_REQUEST, "42704", "unknown_setting"), // undefined_object
            ErrorKind::UndefinedCursor => (S::BAD_REQUEST, "34000", "undefined_cursor"), // invalid_cursor_name
            ErrorKind::InFailedTransaction => (S::BAD_REQUEST, "25P02", "in_failed_transaction"),
            ErrorKind::Timeout => (S::GATEWAY_TIMEOUT, "57014", "timeout"), // query_canceled
            // out_of_memory; 503 as the pool is shared: the query may pass on a quieter node.
            ErrorKind::ResourcesExhausted => (S::SERVICE_UNAVAILABLE, "53200", "resources_exhausted"),
            // program_limit_exceeded: the same query passes with a narrower range.
            ErrorKind::OverBudget => (S::UNPROCESSABLE_ENTITY, "54000", "over_budget"),
            ErrorKind::Internal => (S::INTERNAL_SERVER_ERROR, "XX000", "internal"),
        }
    }

    pub fn http_status(self) -> StatusCode {
        self.spec().0
    }

    pub fn sqlstate(self) -> &'static str {
        self.spec().1
    }

    /// A short name for JSON answers.
    pub fn name(self) -> &'static str {
        self.spec().2
    }
}

/// A refused or failed statement, with a message for the user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    kind: ErrorKind,
    message: String,
}

impl QueryError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        QueryError { kind, message: message.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A DataFusion error, classified by its innermost cause. `memory_limit` is named in
    /// the text of a memory error, so the user knows which setting bounds it.
    pub(crate) fn from_datafusion(e: DataFusionError, memory_limit: &str) -> Self {
        let kind = kind_of(&e);
        let message = match (kind, e.find_root()) {
            (ErrorKind::ResourcesExhausted, DataFusionError::ResourcesExhausted(detail)) => {
                format!("query exceeded memory limit ({memory_limit} = query.memory_limit): {detail}")
            }
            _ => e.to_string(),
        };
        QueryError { kind, message }
    }
}

fn kind_of(e: &DataFusionError) -> ErrorKind {
    match e.find_root() {
        DataFusionError::SQL(..) => ErrorKind::Syntax,
        DataFusionError::SchemaError(err, _) => match **err {
            datafusion::common::SchemaError::FieldNotFound { .. } => ErrorKind::UndefinedColumn,
            _ => ErrorKind::Plan,
        },
        DataFusionError::Plan(message) if message.contains("table") && message.contains("not found") => {
            ErrorKind::UndefinedTable
        }
        DataFusionError::Plan(_) | DataFusionError::Configuration(_) => ErrorKind::Plan,
        DataFusionError::NotImplemented(_) => ErrorKind::Unsupported,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourcesExhausted,
        DataFusionError::Execution(_) => ErrorKind::Data,
        DataFusionError::ArrowError(err, _) => match **err {
            arrow::error::ArrowError::IoError(..) | arrow::error::ArrowError::ExternalError(_) => ErrorKind::Internal,
            _ => ErrorKind::Data,
        },
        DataFusionError::External(e) if e.downcast_ref::<crate::budget::OverBudget>().is_some() => ErrorKind::OverBudget,
        // Our readers report index and store failures as External.
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_errors_are_not_internal() {
        let syntax = DataFusionError::SQL(Box::new(datafusion::sql::sqlparser::parser::ParserError::ParserError("x".into())), None);
        assert_eq!(kind_of(&syntax), ErrorKind::Syntax);
        assert_eq!(kind_of(&DataFusionError::Plan("table 'tierlog.public.nope' not found".into())), ErrorKind::UndefinedTable);
        assert_eq!(kind_of(&DataFusionError::Execution("Cannot cast".into())), ErrorKind::Data);
        let wrapped = DataFusionError::Context("scan".into(), Box::new(DataFusionError::ResourcesExhausted("pool".into())));
        assert_eq!(kind_of(&wrapped), ErrorKind::ResourcesExhausted);
        let shared = DataFusionError::Shared(std::sync::Arc::new(DataFusionError::ResourcesExhausted("pool".into())));
        assert_eq!(kind_of(&shared), ErrorKind::ResourcesExhausted);
        let read = DataFusionError::External(Box::new(std::io::Error::other("segment unreadable")));
        assert_eq!(kind_of(&read), ErrorKind::Internal);
        assert_eq!(ErrorKind::Internal.sqlstate(), "XX000");
        assert_eq!(ErrorKind::Syntax.http_status(), StatusCode::BAD_REQUEST);
    }
}
