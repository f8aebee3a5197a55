//! tierlog-query: how users read tierlog — the HTTP API (axum) and, as they land, the
//! DataFusion catalog, the cross-tier table provider, `match()` and the PostgreSQL wire
//! protocol (DESIGN.md §6).

mod http;

pub use http::{HttpServer, router};
