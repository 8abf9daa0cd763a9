//! Logging through `tracing`: one subscriber per process, and the request
//! span (method, matched route, status, latency, session fingerprint).
//! Session ids and cookie values are never logged; headers are not recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, text format. `RUST_LOG` overrides the
/// default filter. Safe to call twice (the second call does nothing).
pub fn init(default_filter: &str) {
    init_with(LogFormat::Text, default_filter);
}

/// Installs the global subscriber in the given format: `text` (compact,
/// human-readable) or `json` (one object per line, with the same fields:
/// the event's, and the request span's method, route and session
/// fingerprint). Safe to call twice (the second call does nothing).
pub fn init_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok() && format == LogFormat::Json {
        JSON.store(true, Ordering::Relaxed);
    }
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Are logs JSON? Then the process prints nothing else to stdout, so a
/// collector reading it sees only JSON lines.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Wraps every route in a request span and logs each response once. The
/// span and the log line are at `info`: when the filter is quieter than that
/// (set once, at start-up), the layer is left out and costs nothing.
pub fn with_tracing<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    if tracing::level_filters::LevelFilter::current() < tracing::Level::INFO {
        return router;
    }
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request<axum::body::Body>| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("(unmatched)", |p| p.as_str());
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    route,
                    session = tracing::field::Empty,
                )
            })
            .on_request(())
            .on_response(
                |res: &Response<axum::body::Body>, latency: Duration, _: &Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "answered"
                    );
                },
            )
            .on_failure(()),
    )
}
