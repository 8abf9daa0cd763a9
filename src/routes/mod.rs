//! The router: which routes sit behind the session layer, which do not, and
//! the layers every response passes through.

pub mod account;
pub mod api;
pub mod auth;
pub mod health;
pub mod metrics;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;

use crate::error::{AppError, respond};
use crate::sessions::cookie::CookieSetup;
use crate::sessions::layer::{SessionConfig, SessionLayer};

/// Which session middleware the site runs, chosen at start-up.
#[derive(Debug, Clone)]
pub enum Sessions {
    /// The site's own middleware over a server-side store.
    Server(Arc<SessionConfig>),
    /// tower-sessions-cookie-store's layer with the site's adapter inside.
    Cookie(Arc<CookieSetup>),
}
use crate::state::AppState;

/// Requests that take longer are answered 408 and their session is not saved.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `extra` routes are mounted behind the session layer like the site's own:
/// tests use it to add routes the binary never has (a deliberately slow one).
pub fn router(state: AppState, sessions: Sessions, extra: Option<Router<AppState>>) -> Router {
    // Pages, forms and the API: everything that reads or writes the session.
    let with_session = Router::new()
        .merge(pages::router())
        .merge(session::router())
        .merge(auth::router())
        .merge(account::router())
        .merge(api::router())
        .merge(extra.unwrap_or_default());
    let serialize = state.settings.session.serialize_requests;
    let cookie_name = state.settings.session.cookie_name.clone();
    // Reads the session but never extends it.
    let read_only = api::expiry_router();
    // `Router::layer` returns `Router` whatever the layer, so the choice of
    // middleware is a plain match.
    let (with_session, read_only) = match sessions {
        Sessions::Server(config) => (
            with_session.layer(SessionLayer::new(config.clone())),
            read_only.layer(SessionLayer::read_only(config)),
        ),
        Sessions::Cookie(setup) => {
            let name = setup.cookie_name.clone();
            let fix = axum::middleware::map_response(move |res: Response| {
                let name = name.clone();
                async move { crate::sessions::cookie::round_up_max_age(&name, res) }
            });
            (
                with_session
                    .layer(setup.adapter(false))
                    .layer(setup.manager_layer())
                    .layer(fix.clone()),
                read_only
                    .layer(setup.adapter(true))
                    .layer(setup.manager_layer())
                    .layer(fix),
            )
        }
    };
    // Outside the session layer: held from before the load until after the save.
    let with_session = if serialize {
        let locks = crate::sessions::serialize::VisitorLocks::new(&cookie_name);
        with_session.layer(axum::middleware::from_fn_with_state(
            locks,
            crate::sessions::serialize::serialize,
        ))
    } else {
        with_session
    };

    let body_limit = state.settings.session.max_session_bytes + 64 * 1024;
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
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower::util::MapResponseLayer::new(security_headers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // Outermost but for tracing, so timeouts (408) are counted too.
    let router = match &state.metrics {
        Some(m) => router.layer(axum::middleware::from_fn_with_state(
            m.clone(),
            metrics::count_requests,
        )),
        None => router,
    };
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
    req.uri().path().starts_with("/api/")
}

/// Safe defaults for every response, in one pass; a handler may set its
/// own first.
fn security_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

/// Content-Security-Policy: everything from this site only, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
