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
    /// A failure of tierlog itself (reading an index, the object store): not the caller's.
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorKind::Syntax
            | ErrorKind::UndefinedTable
            | ErrorKind::UndefinedColumn
            | ErrorKind::Plan
            | ErrorKind::Unsupported
            | ErrorKind::Data
            | ErrorKind::UnknownSetting
            | ErrorKind::UndefinedCursor
            | ErrorKind::InFailedTransaction => StatusCode::BAD_REQUEST,
            ErrorKind::Denied | ErrorKind::ReadOnly | ErrorKind::SettingDenied => StatusCode::FORBIDDEN,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // The pool is shared: the same query may pass when the node is less busy.
            ErrorKind::ResourcesExhausted => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "42601",           // syntax_error
            ErrorKind::UndefinedTable => "42P01",   // undefined_table
            ErrorKind::UndefinedColumn => "42703",  // undefined_column
            ErrorKind::Plan => "42000",             // syntax_error_or_access_rule_violation
            ErrorKind::Unsupported => "0A000",      // feature_not_supported
            ErrorKind::Data => "22000",             // data_exception
            ErrorKind::Denied => "42501",           // insufficient_privilege
            ErrorKind::ReadOnly => "25006",         // read_only_sql_transaction
            ErrorKind::SettingDenied => "42501",    // insufficient_privilege, as for superuser-only settings
            ErrorKind::UnknownSetting => "42704",   // undefined_object
            ErrorKind::UndefinedCursor => "34000",  // invalid_cursor_name
            ErrorKind::InFailedTransaction => "25P02", // in_failed_sql_transaction
            ErrorKind::Timeout => "57014",          // query_canceled
            ErrorKind::ResourcesExhausted => "53200", // out_of_memory
            ErrorKind::Internal => "XX000",         // internal_error
        }
    }

    /// A short name for JSON answers.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::UndefinedTable => "undefined_table",
            ErrorKind::UndefinedColumn => "undefined_column",
            ErrorKind::Plan => "plan",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Data => "data",
            ErrorKind::Denied => "denied",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::SettingDenied => "setting_denied",
            ErrorKind::UnknownSetting => "unknown_setting",
            ErrorKind::UndefinedCursor => "undefined_cursor",
            ErrorKind::InFailedTransaction => "in_failed_transaction",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ResourcesExhausted => "resources_exhausted",
            ErrorKind::Internal => "internal",
        }
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
