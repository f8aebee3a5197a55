//! tierlog-query: how users read tierlog — the SQL engine (DataFusion, one table per
//! stream and per error table), the table provider over both tiers (`table.rs`, its cold
//! half in `cold.rs`) with `match()` and
//! time-range pushdown, the HTTP API with its live tail (`tail.rs`) and the PostgreSQL
//! wire protocol (DESIGN.md §6).

mod access;
mod budget;
mod cold;
mod engine;
mod error;
mod format;
mod gate;
mod http;
mod pg;
mod pushdown;
mod search;
mod table;
mod tail;
mod topk;

pub use access::{Access, Grant};
pub use engine::{Protocol, QueryEngine, QueryResult, Rows};
pub use error::{ErrorKind, QueryError};
pub use http::{HttpServer, router};
pub use pg::serve as serve_pg;
pub use tail::{Follower, Tail, TailEvent};
