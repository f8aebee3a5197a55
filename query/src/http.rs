//! The HTTP API. Today: liveness (`/health`), readiness (`/ready`) and `/metrics`.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::{Value, json};
use tierlog_core::health::{ComponentState, Health};
use tierlog_core::metrics::Metrics;
use tokio::net::TcpListener;

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Metrics,
}

/// The HTTP routes of a node.
pub fn router(health: Health, metrics: Metrics) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .with_state(AppState { health, metrics })
}

async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render())
}

/// 200 when every dependency is usable, else 503; the body says which is not and why.
async fn ready(State(AppState { health, .. }): State<AppState>) -> impl IntoResponse {
    let components: serde_json::Map<String, Value> = health
        .snapshot()
        .into_iter()
        .map(|(name, state)| {
            let value = match state {
                ComponentState::Ready => json!({ "status": "ready" }),
                ComponentState::Starting => json!({ "status": "starting" }),
                ComponentState::Unavailable(reason) => json!({ "status": "unavailable", "reason": reason }),
            };
            (name.to_string(), value)
        })
        .collect();
    let ready = health.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready, "components": components })))
}

/// A bound HTTP listener; binding is separate from serving so that a taken address fails
/// at start-up with a clear error.
pub struct HttpServer {
    listener: TcpListener,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<HttpServer> {
        Ok(HttpServer { listener: TcpListener::bind(addr).await? })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await
    }
}
