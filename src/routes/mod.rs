//! The router: which routes sit behind the session layer, which do not, and
//! the layers every response passes through.

pub mod account;
pub mod api;
pub mod auth;
pub mod health;
pub mod metrics;
pub mod outer;
pub mod pages;
pub mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use self::outer::OuterLayer;
use crate::error::{AppError, respond};
use crate::sessions::layer::SessionLayer;
use crate::sessions::visitor_lock::{VisitorLocks, one_at_a_time};
use crate::state::AppState;

/// The JSON API's prefix: errors under it are answered as JSON.
pub const API_PREFIX: &str = "/api/";

pub fn is_api_path(path: &str) -> bool {
    path.starts_with(API_PREFIX)
}

/// `extra` routes are mounted behind the session layer like the site's own:
/// tests use it to add routes the binary never has (a deliberately slow one).
pub fn router(state: AppState, extra: Option<Router<AppState>>) -> Router {
    // Pages, forms and the API: everything that reads or writes the session.
    let with_session = Router::new()
        .merge(pages::router())
        .merge(session::router())
        .merge(auth::router())
        .merge(account::router())
        .merge(api::router())
        .merge(extra.unwrap_or_default())
        .layer(SessionLayer::new(state.engine.clone()));
    // Reads the session but never extends it.
    let read_only = api::expiry_router().layer(SessionLayer::read_only(state.engine.clone()));
    // Outside the session layer: held from before the load until after the save.
    let with_session = if state.settings.session.serialize_requests {
        let locks = VisitorLocks::new(&state.settings.session.cookie_name);
        with_session.layer(axum::middleware::from_fn_with_state(locks, one_at_a_time))
    } else {
        with_session
    };

    let body_limit = state.settings.session.max_session_bytes + 64 * 1024;
    let request_timeout = state.settings.server.request_timeout;
    let router = Router::new()
        .merge(with_session)
        .merge(read_only)
        .merge(health::router());
    // Outside the session layer: a scrape neither reads nor extends a session.
    let router = match &state.metrics {
        Some(_) => router.merge(metrics::router()),
        None => router,
    };
    let router = router
        .route("/static/style.css", get(stylesheet))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One `layer` call: axum boxes every route again at each call, and
        // each box is cloned and allocated per request. A request that takes
        // longer than `server.request_timeout` is answered 408 and its
        // session is not saved; every response, the 408 included, gets the
        // security headers and is counted. Requests with a body are held to
        // `body_limit`.
        .layer(OuterLayer::new(
            request_timeout,
            body_limit,
            state.metrics.clone(),
        ));
    crate::telemetry::with_tracing(router).with_state(state)
}

/// The one stylesheet, built into the binary so the site runs from anywhere.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    respond(AppError::NotFound, is_api(&req), false)
}

async fn method_not_allowed(req: Request) -> Response {
    respond(AppError::MethodNotAllowed, is_api(&req), false)
}

fn is_api(req: &Request) -> bool {
    is_api_path(req.uri().path())
}
