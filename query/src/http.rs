//! The HTTP API: liveness (`/health`), readiness (`/ready`), `/metrics`, and SQL
//! (`POST /api/v1/sql`: JSON, NDJSON, CSV or Arrow IPC), search, stream listing, and
//! the live tail (`GET /api/v1/tail`, Server-Sent Events).
//!
//! With `[[query.users]]` configured, everything but `/health` and `/ready` needs a
//! bearer token; the token's grant limits which streams the request sees.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Value, json};
use tierlog_cold::Explainer;
use tierlog_core::config::QueryConfig;
use tierlog_core::health::{ComponentState, Health};
use tierlog_core::metrics::Metrics;
use tokio::net::TcpListener;

use crate::access::{Access, Grant};
use crate::engine::{Protocol, QueryEngine, count_auth_failure};
use crate::error::QueryError;
use crate::engine::Rows;
use crate::format::{Encoder, Format, Summary};
use crate::tail::{Tail, TailEvent};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Metrics,
    engine: QueryEngine,
    access: Access,
    max_result_rows: usize,
    lifecycle: Explainer,
    tail: Tail,
}

/// The HTTP routes of a node.
pub fn router(health: Health, metrics: Metrics, engine: QueryEngine, access: Access, limits: &QueryConfig, lifecycle: Explainer) -> Router {
    let tail = Tail::new(engine.clone(), limits.tail_buffer_rows);
    let max_result_rows = limits.max_result_rows as usize;
    let state = AppState { health, metrics, engine, access, max_result_rows, lifecycle, tail };
    let guarded = Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/streams", get(streams))
        .route("/api/v1/search", get(search))
        .route("/api/v1/tail", get(follow))
        .route("/api/v1/lifecycle", get(lifecycle_plan))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .merge(guarded)
        .with_state(state)
}

/// Resolves the request's bearer token to a [`Grant`] for the handlers, or answers 401.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.access.bearer(authorization) {
        Ok(grant) => {
            request.extensions_mut().insert(grant);
            next.run(request).await
        }
        Err(denied) => {
            count_auth_failure(&state.metrics, Protocol::Http);
            let mut response = error(StatusCode::UNAUTHORIZED, &denied.to_string()).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"tierlog\""));
            response
        }
    }
}

#[derive(serde::Deserialize)]
struct SqlParams {
    format: Option<String>,
    /// `true`: what the statement would read, instead of its rows.
    #[serde(default)]
    explain: bool,
}

/// `POST /api/v1/sql` with `{"sql": "…"}` or the statement as plain text. JSON (columns,
/// rows, count, time) by default; NDJSON, CSV or Arrow IPC by `?format=` or `Accept`.
/// The answer is streamed as the rows come; an error before the first row gets its own
/// status, a later one ends the JSON answer with an `error` field (other formats end
/// the stream with an error).
async fn sql(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let started = std::time::Instant::now();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = match Format::negotiate(params.format.as_deref(), accept) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e).into_response(),
    };
    let statement = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(o)) => match o.get("sql").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => return error(StatusCode::BAD_REQUEST, "the JSON body needs a string field \"sql\"").into_response(),
        },
        _ => body,
    };
    if params.explain {
        return match state.engine.explain(&statement, &grant).await {
            Ok(plan) => Json(plan).into_response(),
            Err(e) => query_error(&e).into_response(),
        };
    }
    let max_rows = state.max_result_rows;
    let mut rows = match state.engine.sql_rows(&statement, &grant, Protocol::Http, Some(max_rows)).await {
        Ok(r) => r,
        Err(e) => return query_error(&e).into_response(),
    };
    // Wait for the first batch: what fails before any row still gets its status.
    let first = match rows.next().await {
        Some(Err(e)) => return query_error(&e).into_response(),
        Some(Ok(batch)) => Some(batch),
        None => None,
    };
    let mut encoder = match Encoder::new(format, Arc::clone(rows.schema()), first.as_ref().map(|b| b.schema())) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()).into_response(),
    };
    let head = encoder.head().map_err(|e| e.to_string());
    let answer = Answer { rows, encoder, pending: first, queue: VecDeque::new(), started, max_rows, done: false };
    let frames = futures::stream::once(async move { head.map(|b| Frame::data(Bytes::from(b))) })
        .chain(futures::stream::unfold(answer, Answer::next_frame))
        .map(|frame| frame.map_err(|e| std::io::Error::other(e.to_string())));
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(format.content_type()));
    headers.insert(ROW_LIMIT_HEADER, header::HeaderValue::from(max_rows));
    if format != Format::Json {
        headers.insert(header::TRAILER, header::HeaderValue::from_static("x-tierlog-truncated"));
    }
    response
}

/// Set on every SQL answer: the most rows it may hold (`query.max_result_rows`).
const ROW_LIMIT_HEADER: header::HeaderName = header::HeaderName::from_static("x-tierlog-row-limit");
/// A trailer of non-JSON answers (sent when the client accepts trailers, `TE: trailers`):
/// "true" when the row limit cut the answer. JSON answers say it in their last field.
const TRUNCATED_TRAILER: header::HeaderName = header::HeaderName::from_static("x-tierlog-truncated");

/// A SQL answer being written.
struct Answer {
    rows: Rows,
    encoder: Encoder,
    /// The first batch, read before the headers were sent.
    pending: Option<arrow::record_batch::RecordBatch>,
    /// Frames ready to send, before anything more is read.
    queue: VecDeque<Result<Frame<Bytes>, String>>,
    started: std::time::Instant,
    max_rows: usize,
    done: bool,
}

impl Answer {
    async fn next_frame(mut self) -> Option<(Result<Frame<Bytes>, String>, Self)> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Some((frame, self));
            }
            if self.done {
                return None;
            }
            let batch = match self.pending.take() {
                Some(batch) => Some(Ok(batch)),
                None => self.rows.next().await,
            };
            match batch {
                Some(Ok(batch)) => {
                    let bytes = self.encoder.batch(&batch).map_err(|e| e.to_string());
                    self.queue.push_back(bytes.map(|b| Frame::data(Bytes::from(b))));
                }
                Some(Err(e)) if self.encoder.is_json() => {
                    let kind = e.kind();
                    self.finish(Some((e.to_string(), kind.name(), kind.sqlstate())));
                }
                Some(Err(e)) => {
                    // Ends the body early: the client sees an incomplete answer.
                    self.done = true;
                    self.queue.push_back(Err(e.to_string()));
                }
                None => self.finish(None),
            }
        }
    }

    /// Queues the end of the answer: JSON's summary, Arrow's end marker, the trailer.
    fn finish(&mut self, error: Option<(String, &'static str, &'static str)>) {
        self.done = true;
        let truncated = self.rows.truncated();
        let summary = Summary {
            num_rows: self.rows.num_rows(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            truncated: truncated.then(|| format!("result cut at {} rows (query.max_result_rows)", self.max_rows)),
            error,
        };
        match self.encoder.tail(&summary) {
            Ok(bytes) if !bytes.is_empty() => self.queue.push_back(Ok(Frame::data(Bytes::from(bytes)))),
            Ok(_) => {}
            Err(e) => self.queue.push_back(Err(e.to_string())),
        }
        if !self.encoder.is_json() {
            self.queue.push_back(Ok(trailer(truncated)));
        }
    }
}

fn trailer(truncated: bool) -> Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert(TRUNCATED_TRAILER, header::HeaderValue::from_static(if truncated { "true" } else { "false" }));
    Frame::trailers(trailers)
}

/// `GET /api/v1/streams`: schema, rows, bytes and time range per tier of each stream.
async fn streams(State(state): State<AppState>, Extension(grant): Extension<Grant>) -> Json<Value> {
    Json(state.engine.describe_streams(&grant).await)
}

/// `GET /api/v1/search?stream=&q=&start=&end=&limit=`: hits (newest first), total and
/// a time histogram.
async fn search(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Query(req): Query<crate::search::SearchRequest>,
) -> Response {
    let started = std::time::Instant::now();
    match crate::search::search(&state.engine, &grant, &req, state.max_result_rows).await {
        Ok(mut body) => {
            body["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => query_error(&e).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct TailParams {
    stream: String,
    /// tantivy query syntax; empty or `*`: every row.
    #[serde(default)]
    q: String,
}

/// `GET /api/v1/tail?stream=&q=`: Server-Sent Events. `ready` once following, then one
/// `row` event per newly committed matching row (its JSON), a comment every 15 s to keep
/// proxies from closing the connection, and a last `dropped` (the client read too slowly)
/// or `error` event when the server ends it.
async fn follow(State(state): State<AppState>, Extension(grant): Extension<Grant>, Query(params): Query<TailParams>) -> Response {
    let follower = match state.tail.follow(&grant, &params.stream, &params.q).await {
        Ok(f) => f,
        Err(e) => return query_error(&e).into_response(),
    };
    let ready = Event::default().event("ready").data(json!({ "stream": params.stream, "query": params.q }).to_string());
    let events = futures::stream::unfold(follower, |mut follower| async move {
        let event = match follower.next().await? {
            TailEvent::Row(row) => Event::default().event("row").data(row.as_ref()),
            TailEvent::Dropped { buffer_rows } => Event::default().event("dropped").data(
                json!({ "error": format!(
                    "this client read too slowly: its buffer of {buffer_rows} rows (query.tail_buffer_rows) stayed full for {} s, \
                     so it is disconnected; reconnect to follow again from now, or narrow the query",
                    crate::tail::SLOW_GRACE.as_secs()
                ) })
                .to_string(),
            ),
            TailEvent::Failed(why) => Event::default().event("error").data(json!({ "error": why.as_ref() }).to_string()),
        };
        Some((Ok::<_, std::convert::Infallible>(event), follower))
    });
    let events = futures::stream::once(async move { Ok(ready) }).chain(events);
    Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))).into_response()
}

#[derive(serde::Deserialize)]
struct LifecycleParams {
    stream: Option<String>,
}

/// `GET /api/v1/lifecycle[?stream=]`: what the lifecycle does next to each hot
/// generation and cold segment of the streams the caller may see.
async fn lifecycle_plan(State(state): State<AppState>, Extension(grant): Extension<Grant>, Query(params): Query<LifecycleParams>) -> Response {
    if let Some(stream) = &params.stream
        && !(grant.allows(stream) && state.lifecycle.streams.iter().any(|s| &s.name == stream))
    {
        return error(StatusCode::NOT_FOUND, &format!("no stream '{stream}'")).into_response();
    }
    let wanted = |name: &str| grant.allows(name) && params.stream.as_deref().is_none_or(|s| s == name);
    match state.lifecycle.explain(wanted).await {
        Ok(plans) => Json(json!({ "streams": plans })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("cannot read the cold tier: {e}")).into_response(),
    }
}

/// The status and body of a refused or failed query (see `error.rs` for the mapping).
fn query_error(e: &QueryError) -> (StatusCode, Json<Value>) {
    let kind = e.kind();
    (kind.http_status(), Json(json!({ "error": e.to_string(), "kind": kind.name(), "sqlstate": kind.sqlstate() })))
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message })))
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
