//! tierlog-ui: the search page `tierlog serve` answers at `/`. Its HTML, script and
//! styles (and uPlot, from npm, for the histogram) are embedded in the binary: no second
//! server, nothing fetched from the network at run time. The page talks to the node's
//! own API (`/api/v1/streams`, `/search`, `/sql`, `/tail`, `/lifecycle`) with the bearer
//! token the user gives it, so it sees exactly what that token may.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const UPLOT_JS: &str = include_str!(concat!(env!("TIERLOG_UI_VENDOR"), "/uPlot.iife.min.js"));
const UPLOT_CSS: &str = include_str!(concat!(env!("TIERLOG_UI_VENDOR"), "/uPlot.min.css"));

/// Same-origin everything: the page runs only its own script and talks only to its node.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page and its assets; none of them needs a token (the data behind them does).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route("/ui/app.js", get(|| asset("text/javascript; charset=utf-8", APP_JS)))
        .route("/ui/app.css", get(|| asset("text/css; charset=utf-8", APP_CSS)))
        .route("/ui/uPlot.min.js", get(|| asset("text/javascript; charset=utf-8", UPLOT_JS)))
        .route("/ui/uPlot.min.css", get(|| asset("text/css; charset=utf-8", UPLOT_CSS)))
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change with the binary: revalidate rather than serve a stale page.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}
