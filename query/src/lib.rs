//! tierlog-query: how users read tierlog — the SQL engine (DataFusion, one table per
//! stream and per error table), the table provider over the tiers with `match()` and
//! time-range pushdown, and the HTTP API; the PostgreSQL wire protocol comes next
//! (DESIGN.md §6).

mod engine;
mod format;
mod http;
mod pushdown;
mod search;
mod table;

pub use engine::{QueryEngine, QueryError, QueryResult};
pub use http::{HttpServer, router};
