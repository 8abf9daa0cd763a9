//! The site's session middleware, shaped like tower-sessions' `service.rs`.
//!
//! Per request it reads the session cookie, builds a `tower_sessions::Session`
//! over a [`RequestStore`], loads the record up front (so a bad cookie is
//! known before the handler runs, and a store outage is a 503), and after the
//! handler:
//! - saves the session only if it was modified (a whole-record, update-only
//!   save: a record deleted meanwhile stays deleted and gets no cookie);
//! - otherwise, when `extend_on_every_request` is on, *touches* it (expiry
//!   only, at most once per `touch_interval`), never rewriting data loaded at
//!   the start over what a concurrent request wrote meanwhile;
//! - sends `Set-Cookie` only when something was stored, and a removal cookie
//!   when the session was deleted or the cookie named no live session.
//!
//! Responses that end in 5xx neither save nor extend the session.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use time::OffsetDateTime;
use tower::{Layer, Service};
use tower_sessions::Session;
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::session::{Expiry, Id};

use super::keys::CREATED_AT;
use super::request_store::{ExpiryPolicy, LastWrite, RequestStore};
use super::store::{SiteStore, WriteOutcome, fingerprint};
use super::view::SessionView;
use crate::config::{self, Backend};
use crate::error::AppError;

/// How the cookie is written.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    pub name: String,
    pub secure: bool,
    pub same_site: SameSite,
}

impl CookieSpec {
    pub fn from_settings(s: &config::SessionSettings) -> Self {
        Self {
            name: s.cookie_name.clone(),
            secure: s.secure,
            same_site: match s.same_site {
                config::SameSite::Strict => SameSite::Strict,
                config::SameSite::Lax => SameSite::Lax,
                config::SameSite::None => SameSite::None,
            },
        }
    }

    /// `name=value; HttpOnly; SameSite=…; Path=/; Max-Age=…[; Secure]`.
    pub fn build(&self, value: String, max_age: time::Duration) -> Cookie<'static> {
        Cookie::build((self.name.clone(), value))
            .http_only(true)
            .same_site(self.same_site)
            .secure(self.secure)
            .path("/")
            .max_age(max_age)
            .build()
    }

    pub fn removal(&self) -> Cookie<'static> {
        self.build(String::new(), time::Duration::ZERO)
    }
}

/// Everything the middleware needs, shared by all requests.
#[derive(Debug)]
pub struct SessionConfig {
    pub backend: Backend,
    pub store: Arc<dyn SiteStore>,
    pub policy: Arc<ExpiryPolicy>,
    pub cookie: CookieSpec,
    pub extend_on_every_request: bool,
    pub touch_interval: Duration,
    pub debug_errors: bool,
    pub metrics: Option<Arc<super::metrics::SessionMetrics>>,
}

impl SessionConfig {
    pub fn new(settings: &config::Settings, store: Arc<dyn SiteStore>) -> Self {
        let s = &settings.session;
        Self {
            backend: s.backend,
            store,
            policy: Arc::new(ExpiryPolicy {
                idle: s.idle_timeout,
                absolute: s.absolute(),
            }),
            cookie: CookieSpec::from_settings(s),
            extend_on_every_request: s.extend_on_every_request,
            touch_interval: s.effective_touch_interval(),
            debug_errors: settings.server.debug_errors,
            metrics: None,
        }
    }
}

/// Reads (and writes) or only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    ReadWrite,
    /// Loads the session but never saves, touches or sends a cookie: for
    /// routes that must not extend it (`GET /api/session/expiry`).
    ReadOnly,
}

#[derive(Debug, Clone)]
pub struct SessionLayer {
    config: Arc<SessionConfig>,
    mode: Mode,
}

impl SessionLayer {
    pub fn new(config: Arc<SessionConfig>) -> Self {
        Self {
            config,
            mode: Mode::ReadWrite,
        }
    }

    /// The same session, loaded but never saved or extended.
    pub fn read_only(config: Arc<SessionConfig>) -> Self {
        Self {
            config,
            mode: Mode::ReadOnly,
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            config: self.config.clone(),
            mode: self.mode,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    config: Arc<SessionConfig>,
    mode: Mode,
}

impl<S> Service<Request<Body>> for SessionService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let config = self.config.clone();
        let mode = self.mode;
        // Use the service that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        Box::pin(async move {
            let api = req.uri().path().starts_with("/api/");
            let cookie = cookie_value(req.headers(), &config.cookie.name);
            let had_cookie = cookie.is_some();
            let id = cookie.and_then(|value| match value.parse::<Id>() {
                Ok(id) => Some(id),
                Err(_) => {
                    tracing::warn!("malformed session cookie: starting a fresh session");
                    None
                }
            });

            let request_store = Arc::new(
                RequestStore::new(config.store.clone(), config.policy.clone())
                    .with_metrics(config.metrics.clone()),
            );
            let session = Session::new(
                id,
                request_store.clone(),
                Some(Expiry::OnInactivity(to_time(config.policy.idle))),
            );

            // Load now: the handler then sees a settled session, and an
            // unreachable store is a clean 503 before any work is done.
            if id.is_some() {
                if let Err(error) = session.get_value(CREATED_AT).await {
                    return Ok(unavailable(&config, api, error));
                }
                if session.id().is_none() {
                    super::metrics::count(
                        &config.metrics,
                        super::metrics::SessionMetrics::expired_on_load,
                    );
                    tracing::warn!(
                        "session cookie for an unknown or expired session: starting a fresh session"
                    );
                }
            }
            // The request span carries the fingerprint, never the id (and
            // only when there is a span: the hash is not free).
            let span = tracing::Span::current();
            if let (false, Some(id)) = (span.is_disabled(), session.id()) {
                span.record("session", fingerprint(&id).as_str());
            }

            req.extensions_mut().insert(session.clone());
            req.extensions_mut().insert(SessionView::server_side(
                config.backend,
                request_store.loaded(),
                session.id(),
                config.store.clone(),
            ));

            let mut res = inner.call(req).await?;
            if res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                super::metrics::count(&config.metrics, super::metrics::SessionMetrics::refused);
            }

            if mode == Mode::ReadOnly || res.status().is_server_error() {
                return Ok(res);
            }

            if session.is_modified() {
                if let Err(error) = session.save().await {
                    return Ok(unavailable(&config, api, error));
                }
            } else if config.extend_on_every_request {
                if let Err(error) = maybe_touch(&config, &session, &request_store).await {
                    return Ok(unavailable(&config, api, error));
                }
            }

            let cookie = match (request_store.last_write(), session.id()) {
                (
                    Some(LastWrite::Created { expires_at } | LastWrite::Written { expires_at }),
                    Some(id),
                ) => Some(
                    config
                        .cookie
                        .build(id.to_string(), max_age_until(expires_at)),
                ),
                // Gone: the session was deleted meanwhile; it stays deleted.
                (Some(LastWrite::Gone), _) => None,
                // Nothing to store (flushed, or emptied): drop the cookie.
                // (`Session::save` assigns an id even then, so test this first.)
                (Some(LastWrite::Skipped), _) if had_cookie => Some(config.cookie.removal()),
                (Some(LastWrite::Skipped), _) => None,
                // Deleted here, or the cookie named no live session.
                (_, None) if had_cookie => Some(config.cookie.removal()),
                _ => None,
            };
            if let Some(cookie) = cookie {
                if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                    res.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            Ok(res)
        })
    }
}

/// Extends an unchanged live session when its stored expiry has fallen more
/// than `touch_interval` behind where it would be set now.
async fn maybe_touch(
    config: &SessionConfig,
    session: &Session,
    request_store: &RequestStore,
) -> Result<(), tower_sessions::session_store::Error> {
    let (Some(id), Some(loaded)) = (session.id(), request_store.loaded()) else {
        return Ok(());
    };
    let now = OffsetDateTime::now_utc();
    let target = config.policy.expiry(loaded.created_at.unwrap_or(now), now);
    if loaded.expires_at < target - to_time(config.touch_interval)
        && request_store.touch(&id, target).await? == WriteOutcome::Gone
    {
        tracing::debug!("touch found the session gone");
    }
    Ok(())
}

/// The value of the named cookie, from the first `Cookie` header carrying it
/// (the session layer, the CSRF nonce and the per-visitor lock all read
/// cookies through this).
pub fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// Max-Age rounded *up* to whole seconds: rounding down would make the
/// browser drop the cookie before the server lets the session go.
fn max_age_until(expires_at: OffsetDateTime) -> time::Duration {
    let left = (expires_at - OffsetDateTime::now_utc())
        .as_seconds_f64()
        .ceil();
    time::Duration::seconds(left.max(0.0) as i64)
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

fn unavailable(config: &SessionConfig, api: bool, error: impl Into<AppError>) -> Response<Body> {
    // `respond` logs it (once, at error level, as every 5xx).
    crate::error::respond(error.into(), api, config.debug_errors)
}
