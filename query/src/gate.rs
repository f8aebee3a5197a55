//! The one gate. Every statement, whether HTTP or the PostgreSQL wire brought it (simple
//! or extended protocol, inside `EXPLAIN`, `DECLARE … CURSOR` or a prepared statement), is
//! classified here before anything runs:
//! - its tables are checked against the caller's grant before it is planned;
//! - its logical plan is walked, subqueries included, and must be made of read-only
//!   nodes only (an exhaustive match: a plan node DataFusion adds later is refused
//!   until someone decides it is a read);
//! - session statements (`SET`, `SHOW`, transactions, cursors) are accepted only from an
//!   allow-list that changes the caller's own connection and nothing shared.
//!
//! What the gate cannot classify, it refuses.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::common::TableReference;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, DeclareType, Expr, FetchDirection, Set, Statement, Value,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use tierlog_core::units::HumanDuration;

use crate::access::Grant;
use crate::engine::{CATALOG, QueryEngine};
use crate::error::{ErrorKind, QueryError};

/// A statement the gate let through, and what it may do.
#[derive(Debug, Clone)]
pub(crate) enum Gated {
    /// A read: a query, `EXPLAIN [ANALYZE]` of one, `DESCRIBE`, `SHOW TABLES`. Its plan
    /// passed the grant and the read-only check.
    Read(LogicalPlan),
    /// `SET` of a client setting: kept in the caller's connection only.
    Set { setting: ClientSetting, value: String },
    /// `SHOW` of a client setting.
    Show(ClientSetting),
    Begin,
    Commit,
    Rollback,
    /// `DECLARE name CURSOR [WITH HOLD] FOR <read>`.
    Declare { cursor: String, plan: LogicalPlan, hold: bool },
    /// `FETCH [count | ALL] FROM name`; `None` is all the rest.
    Fetch { cursor: String, count: Option<usize> },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close(Option<String>),
    /// `DISCARD ALL` / `DEALLOCATE`: ends the connection's cursors; nothing else is kept.
    Discard(&'static str),
}

/// The client settings a session may change: each changes how its own connection
/// formats answers, or nothing at all, never what another session sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientSetting {
    ApplicationName,
    ClientEncoding,
    DateStyle,
    IntervalStyle,
    ExtraFloatDigits,
    SearchPath,
    ByteaOutput,
    StatementTimeout,
    TimeZone,
    ClientMinMessages,
    StandardConformingStrings,
}

/// Each client setting: its key in the connection's metadata (pgwire's answer formatting
/// reads `datestyle`, `intervalstyle`, `bytea_output` and `extra_float_digits` there),
/// the name PostgreSQL reports in a ParameterStatus message (for those it reports), and
/// its value before any `SET`.
const CLIENT_SETTINGS: &[(ClientSetting, &str, Option<&str>, &str)] = &[
    (ClientSetting::ApplicationName, "application_name", Some("application_name"), ""),
    (ClientSetting::ClientEncoding, "client_encoding", Some("client_encoding"), "UTF8"),
    (ClientSetting::DateStyle, "datestyle", Some("DateStyle"), "ISO, MDY"),
    (ClientSetting::IntervalStyle, "intervalstyle", Some("IntervalStyle"), "postgres"),
    (ClientSetting::ExtraFloatDigits, "extra_float_digits", None, "1"),
    (ClientSetting::SearchPath, "search_path", None, "public"),
    (ClientSetting::ByteaOutput, "bytea_output", None, "hex"),
    (ClientSetting::StatementTimeout, "statement_timeout", None, "0"),
    (ClientSetting::TimeZone, "timezone", Some("TimeZone"), "UTC"),
    (ClientSetting::ClientMinMessages, "client_min_messages", None, "notice"),
    (ClientSetting::StandardConformingStrings, "standard_conforming_strings", Some("standard_conforming_strings"), "on"),
];

impl ClientSetting {
    fn parse(name: &str) -> Option<ClientSetting> {
        // `SET NAMES` and `SET TIME ZONE` are other spellings of two of them.
        let name = match name {
            "names" => "client_encoding",
            "time zone" => "timezone",
            other => other,
        };
        CLIENT_SETTINGS.iter().find(|(_, key, ..)| *key == name).map(|(setting, ..)| *setting)
    }

    fn spec(self) -> &'static (ClientSetting, &'static str, Option<&'static str>, &'static str) {
        CLIENT_SETTINGS.iter().find(|(s, ..)| *s == self).expect("every setting is in CLIENT_SETTINGS")
    }

    /// The key in the connection's metadata.
    pub(crate) fn key(self) -> &'static str {
        self.spec().1
    }

    /// The name PostgreSQL reports in a ParameterStatus message, if it reports it.
    pub(crate) fn reported_name(self) -> Option<&'static str> {
        self.spec().2
    }

    /// The value before any `SET`.
    pub(crate) fn default_value(self) -> &'static str {
        self.spec().3
    }

    /// Refuses values that would make the connection lie: tierlog speaks UTF-8, answers
    /// in UTC and always treats backslashes in strings literally.
    fn check(self, value: &str) -> Result<String, QueryError> {
        let unsupported = |what: &str| {
            QueryError::new(ErrorKind::Unsupported, format!("{what}: SET {} = '{value}' is not supported", self.key()))
        };
        let lower = value.to_ascii_lowercase();
        match self {
            ClientSetting::ClientEncoding if !matches!(lower.as_str(), "utf8" | "utf-8" | "unicode") => {
                Err(unsupported("tierlog speaks UTF-8 only"))
            }
            ClientSetting::TimeZone if !matches!(lower.as_str(), "utc" | "etc/utc" | "gmt" | "z" | "+00:00" | "0" | "zulu") => {
                Err(unsupported("tierlog answers in UTC"))
            }
            ClientSetting::StandardConformingStrings if lower != "on" => Err(unsupported("strings are always standard")),
            ClientSetting::StatementTimeout => parse_timeout_ms(&lower)
                .map(|ms| ms.to_string())
                .ok_or_else(|| QueryError::new(ErrorKind::Plan, format!("invalid value for statement_timeout: '{value}'"))),
            _ => Ok(value.to_string()),
        }
    }
}

/// PostgreSQL's `statement_timeout` value in ms: a bare number is ms, else a duration
/// in the config's units (`min` as PostgreSQL spells minutes).
pub(crate) fn parse_timeout_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<u64>() {
        return Some(ms);
    }
    let value = value.strip_suffix("min").map_or_else(|| value.to_string(), |n| format!("{n}m"));
    value.parse::<HumanDuration>().ok().map(|d| d.0.as_millis() as u64)
}

/// The SQL parser of both protocols: PostgreSQL's dialect, with the rewrites that let
/// DataFusion plan what psql, pgjdbc and DBeaver send.
pub(crate) struct SqlParser(PostgresCompatibilityParser);

impl SqlParser {
    pub(crate) fn new() -> SqlParser {
        SqlParser(PostgresCompatibilityParser::new())
    }

    pub(crate) fn parse(&self, sql: &str) -> Result<Vec<Statement>, QueryError> {
        self.0.parse(sql).map_err(|e| QueryError::new(ErrorKind::Syntax, format!("SQL error: {e}")))
    }
}

fn read_only(head: &str, why: &str) -> QueryError {
    QueryError::new(ErrorKind::ReadOnly, format!("tierlog is read-only: '{head} …' is not allowed ({why})"))
}

/// The first words of a statement, to name it in a refusal.
fn head_of(statement: &Statement) -> String {
    statement.to_string().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

impl QueryEngine {
    /// Classifies `statement` for `grant` on `ctx` (a session holding only the grant's
    /// tables); see the module doc. A `Read` or `Declare` comes back planned and checked.
    pub(crate) async fn gate(&self, ctx: &SessionContext, grant: &Grant, statement: Statement) -> Result<Gated, QueryError> {
        let head = head_of(&statement);
        match statement {
            Statement::Query(_) | Statement::ShowTables { .. } | Statement::ShowColumns { .. } | Statement::ExplainTable { .. } => {
                self.plan_read(ctx, grant, statement).await.map(Gated::Read)
            }
            Statement::Explain { statement: ref inner, .. } => {
                // EXPLAIN runs nothing but a read; EXPLAIN ANALYZE runs it, so it must be one.
                if !matches!(**inner, Statement::Query(_)) {
                    return Err(read_only(&head, "EXPLAIN only of a query"));
                }
                self.plan_read(ctx, grant, statement).await.map(Gated::Read)
            }
            Statement::ShowVariable { ref variable } => {
                let name = variable.iter().map(|v| v.value.to_ascii_lowercase()).collect::<Vec<_>>().join(" ");
                if let Some(setting) = ClientSetting::parse(&name) {
                    return Ok(Gated::Show(setting));
                }
                if name.starts_with("datafusion.") || name == "all" {
                    // DataFusion answers these from information_schema.df_settings: a read.
                    return self.plan_read(ctx, grant, statement).await.map(Gated::Read);
                }
                Err(QueryError::new(ErrorKind::UnknownSetting, format!("unrecognized configuration parameter \"{name}\"")))
            }
            Statement::Set(set) => gate_set(set, &head),
            Statement::StartTransaction { .. } => Ok(Gated::Begin),
            Statement::Commit { .. } => Ok(Gated::Commit),
            Statement::Rollback { savepoint: None, .. } => Ok(Gated::Rollback),
            Statement::Declare { mut stmts } => {
                let declare = match stmts.len() {
                    1 => stmts.remove(0),
                    _ => return Err(QueryError::new(ErrorKind::Unsupported, "DECLARE one cursor at a time")),
                };
                let (Some(DeclareType::Cursor), Some(name), Some(query)) =
                    (declare.declare_type, declare.names.first(), declare.for_query)
                else {
                    return Err(QueryError::new(ErrorKind::Unsupported, "only DECLARE name CURSOR FOR <query> is supported"));
                };
                if declare.binary == Some(true) || declare.scroll == Some(true) {
                    return Err(QueryError::new(ErrorKind::Unsupported, "cursors are forward-only text cursors (no BINARY, no SCROLL)"));
                }
                let plan = self.plan_read(ctx, grant, Statement::Query(query)).await?;
                Ok(Gated::Declare { cursor: name.value.clone(), plan, hold: declare.hold == Some(true) })
            }
            Statement::Fetch { name, direction, into: None, .. } => {
                let count = match direction {
                    FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
                    FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => match limit.value {
                        Value::Number(n, _) => Some(n.parse().map_err(|_| QueryError::new(ErrorKind::Syntax, format!("FETCH count '{n}'")))?),
                        other => return Err(QueryError::new(ErrorKind::Syntax, format!("FETCH count '{other}'"))),
                    },
                    FetchDirection::All | FetchDirection::ForwardAll => None,
                    _ => return Err(QueryError::new(ErrorKind::Unsupported, "cursors only move forward (FETCH [FORWARD] n | ALL | NEXT)")),
                };
                Ok(Gated::Fetch { cursor: name.value, count })
            }
            Statement::Close { cursor } => Ok(Gated::Close(match cursor {
                CloseCursor::All => None,
                CloseCursor::Specific { name } => Some(name.value),
            })),
            Statement::Discard { .. } => Ok(Gated::Discard("DISCARD ALL")),
            Statement::Deallocate { .. } => Ok(Gated::Discard("DEALLOCATE")),
            _ => Err(read_only(&head, "only queries")),
        }
    }

    /// Checks the tables `statement` names against `grant`, plans it, and proves the plan
    /// a read of tables the grant covers.
    async fn plan_read(&self, ctx: &SessionContext, grant: &Grant, statement: Statement) -> Result<LogicalPlan, QueryError> {
        let state = ctx.state();
        let statement = DFStatement::Statement(Box::new(statement));
        // Before planning, so that a table outside the grant is refused as such, not as
        // unknown (the caller's session does not hold it).
        let references = state.resolve_table_references(&statement).map_err(|e| self.error(e))?;
        for reference in &references {
            if let Some(stream) = self.stream_of(reference)
                && !grant.allows(stream)
            {
                return Err(denied(grant, reference.table()));
            }
        }
        let plan = state.statement_to_plan(statement).await.map_err(|e| self.error(e))?;
        check_read_only(&plan)?;
        self.authorize(grant, &plan)?;
        Ok(plan)
    }

    /// The stream whose table `reference` names, if it names one of ours.
    fn stream_of(&self, reference: &TableReference) -> Option<&str> {
        let ours = reference.catalog().is_none_or(|c| c == CATALOG) && reference.schema().is_none_or(|s| s == "public");
        ours.then(|| self.stream_of_table(reference.table())).flatten()
    }

    /// Refuses a plan that reads a stream table `grant` does not cover. The caller's
    /// session holds only its tables, so this is the second of two locks.
    pub(crate) fn authorize(&self, grant: &Grant, plan: &LogicalPlan) -> Result<(), QueryError> {
        if *grant == Grant::All {
            return Ok(());
        }
        let mut refused = None;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Some(stream) = self.stream_of(&scan.table_name)
                && !grant.allows(stream)
            {
                refused = Some(scan.table_name.table().to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| self.error(e))?;
        match refused {
            None => Ok(()),
            Some(table) => Err(denied(grant, &table)),
        }
    }
}

fn denied(grant: &Grant, table: &str) -> QueryError {
    QueryError::new(
        ErrorKind::Denied,
        format!("permission denied: user '{}' may not read table '{table}' (query.users.streams)", grant.user().unwrap_or_default()),
    )
}

/// Walks the plan, subqueries and EXPLAIN's inner plan included: every node must read.
fn check_read_only(plan: &LogicalPlan) -> Result<(), QueryError> {
    let mut refused = None;
    let walked = plan.apply_with_subqueries(|node| {
        let reads = match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::RecursiveQuery(_) => true,
            // Writes, DDL, COPY TO a file, SET/PREPARE/EXECUTE, and plans of extensions
            // this gate knows nothing about.
            LogicalPlan::Statement(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Extension(_) => false,
        };
        if reads {
            Ok(TreeNodeRecursion::Continue)
        } else {
            refused = Some(node.display().to_string());
            Ok(TreeNodeRecursion::Stop)
        }
    });
    if walked.is_err() {
        return Err(QueryError::new(ErrorKind::ReadOnly, "tierlog is read-only: the plan could not be checked, so it is refused"));
    }
    match refused {
        None => Ok(()),
        Some(node) => Err(read_only(node.split_whitespace().take(3).collect::<Vec<_>>().join(" ").as_str(), "only queries")),
    }
}

fn gate_set(set: Set, head: &str) -> Result<Gated, QueryError> {
    let (name, value) = match set {
        Set::SingleAssignment { hivevar: false, variable, values, .. } if values.len() == 1 => {
            (variable.to_string().to_ascii_lowercase(), setting_value(&values[0]))
        }
        Set::SetTimeZone { value, .. } => ("timezone".to_string(), setting_value(&value)),
        Set::SetNames { charset_name, .. } => ("client_encoding".to_string(), charset_name.value),
        _ => return Err(read_only(head, "only SET of a client setting")),
    };
    if name.starts_with("datafusion.") {
        return Err(QueryError::new(
            ErrorKind::SettingDenied,
            format!("permission denied to set parameter \"{name}\": DataFusion options are node-wide, set in the [query] config"),
        ));
    }
    let Some(setting) = ClientSetting::parse(&name) else {
        return Err(QueryError::new(ErrorKind::UnknownSetting, format!("unrecognized configuration parameter \"{name}\"")));
    };
    let value = setting.check(&value)?;
    Ok(Gated::Set { setting, value })
}

/// A SET value as text: quotes removed, `DEFAULT` kept as the word.
fn setting_value(e: &Expr) -> String {
    match e {
        Expr::Value(v) => v.clone().into_string().unwrap_or_else(|| v.to_string()),
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
    .trim_matches('\'')
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_postgres() {
        assert_eq!(parse_timeout_ms("5000"), Some(5000));
        assert_eq!(parse_timeout_ms("5s"), Some(5000));
        assert_eq!(parse_timeout_ms("2min"), Some(120_000));
        assert_eq!(parse_timeout_ms("0"), Some(0));
        assert_eq!(parse_timeout_ms("5 parsecs"), None);
        assert_eq!(parse_timeout_ms("-1"), None);
    }

    fn gate_sql(sql: &str) -> Result<Gated, QueryError> {
        let mut statements = SqlParser::new().parse(sql).unwrap();
        match statements.remove(0) {
            Statement::Set(set) => gate_set(set, "SET"),
            other => panic!("not a SET: {other}"),
        }
    }

    #[test]
    fn every_client_setting_is_described_once() {
        for (setting, key, ..) in CLIENT_SETTINGS {
            assert_eq!(ClientSetting::parse(key), Some(*setting), "{key}");
            assert_eq!(setting.key(), *key);
        }
    }

    #[test]
    fn only_client_settings_may_be_set() {
        assert!(matches!(gate_sql("SET extra_float_digits = 3"), Ok(Gated::Set { setting: ClientSetting::ExtraFloatDigits, .. })));
        assert!(matches!(gate_sql("SET application_name = 'DBeaver'"), Ok(Gated::Set { setting: ClientSetting::ApplicationName, ref value }) if value == "DBeaver"));
        assert!(matches!(gate_sql("SET TIME ZONE 'UTC'"), Ok(Gated::Set { setting: ClientSetting::TimeZone, .. })));
        let kind = |sql: &str| gate_sql(sql).unwrap_err().kind();
        assert_eq!(kind("SET datafusion.runtime.memory_limit = '1K'"), ErrorKind::SettingDenied);
        assert_eq!(kind("SET datafusion.execution.batch_size = 1"), ErrorKind::SettingDenied);
        assert_eq!(kind("SET work_mem = '1GB'"), ErrorKind::UnknownSetting);
        assert_eq!(kind("SET TIME ZONE 'Europe/Paris'"), ErrorKind::Unsupported);
        assert_eq!(kind("SET client_encoding = 'LATIN1'"), ErrorKind::Unsupported);
        assert_eq!(kind("SET ROLE admin"), ErrorKind::ReadOnly);
    }
}
