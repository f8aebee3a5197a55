//! tierlog-query: how users read tierlog — the SQL engine (DataFusion, one table per
//! stream and per error table), the table provider over the tiers, and the HTTP API;
//! `match()` and the PostgreSQL wire protocol come next (DESIGN.md §6).

mod engine;
mod http;
mod table;

pub use engine::{QueryEngine, QueryError};
pub use http::{HttpServer, router};
