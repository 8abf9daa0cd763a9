//! The session middleware, shaped like tower-sessions' `service.rs`. Every
//! backend goes through it, the cookie backend included. Per request:
//!
//! 1. **identify**: read the session cookie (from the raw header bytes);
//! 2. **load** the record through a [`RequestStore`], which applies the
//!    policy (absolute cap); an unreachable store is a 503 before any work;
//! 3. **check the user index**: a signed-in session revoked elsewhere is
//!    logged out here, on pages and JSON alike;
//! 4. **run the handler** with a standard `tower_sessions::Session` and a
//!    [`SessionInfo`] in the request extensions;
//! 5. **settle**: save a modified session (update-only: a record deleted
//!    meanwhile stays deleted), or touch an unchanged one when the policy
//!    says it is due (expiry only, never writing back stale data);
//! 6. **follow in the index**: sign-in, new id, logout;
//! 7. **set the cookie**: only when something was stored, a removal when
//!    the session ended or the cookie named none.
//!
//! Responses that end in 5xx neither save nor extend the session; a save
//! that would outgrow the session's limit turns the response into a 413
//! and stores nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, Uri, header};
use tower::{Layer, Service};
use tower_sessions::Session;
use tower_sessions::session::{Expiry, Id};

use super::Backend;
use super::error::SessionError;
use super::index::{Member, UserIndex, user_name};
use super::info::SessionInfo;
use super::keys::{CREATED_AT, USER};
use super::metrics::{SessionMetrics, count};
use super::policy::Policy;
use super::request_store::{Backing, LastWrite, RequestStore};
use super::store::{SiteStore, fingerprint, storage_key};

#[cfg(feature = "cookie")]
use super::cookie::CookieCodec;

/// How the site answers an engine error (a page or JSON, by route).
pub type ErrorResponder = Arc<dyn Fn(SessionError, &Uri) -> Response<Body> + Send + Sync>;

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum Storage {
    Server(Arc<dyn SiteStore>),
    #[cfg(feature = "cookie")]
    Cookie(Arc<CookieCodec>),
}

/// Everything the middleware needs, shared by all requests.
pub struct Engine {
    pub backend: Backend,
    pub storage: Storage,
    pub policy: Arc<Policy>,
    /// Server-side stores: the most a session may weigh, as JSON.
    pub max_session_bytes: usize,
    /// "Log out everywhere"; server-side stores only.
    pub index: Option<Arc<UserIndex>>,
    /// Counters, when the site keeps metrics.
    pub metrics: Option<Arc<SessionMetrics>>,
    on_error: ErrorResponder,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.backend)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The engine for a store. Server-side stores get the user index.
    pub fn new(
        backend: Backend,
        storage: Storage,
        policy: Policy,
        max_session_bytes: usize,
        on_error: ErrorResponder,
    ) -> Self {
        let policy = Arc::new(policy);
        let index = match &storage {
            Storage::Server(store) => Some(Arc::new(UserIndex::new(store.clone(), policy.clone()))),
            #[cfg(feature = "cookie")]
            Storage::Cookie(_) => None,
        };
        Self {
            backend,
            storage,
            policy,
            max_session_bytes,
            index,
            metrics: None,
            on_error,
        }
    }

    /// Counts session events into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<SessionMetrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The server-side store, if sessions live in one.
    pub fn store(&self) -> Option<&Arc<dyn SiteStore>> {
        match &self.storage {
            Storage::Server(store) => Some(store),
            #[cfg(feature = "cookie")]
            Storage::Cookie(_) => None,
        }
    }

    fn fail(&self, error: SessionError, uri: &Uri) -> Response<Body> {
        if matches!(error, SessionError::TooLarge(_)) {
            count(&self.metrics, SessionMetrics::refused);
        }
        (self.on_error)(error, uri)
    }
}

/// Reads (and writes) or only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    ReadWrite,
    /// Loads the session but never saves, touches or sends a cookie: for
    /// routes that must not extend it (a page polling how long is left).
    ReadOnly,
}

#[derive(Debug, Clone)]
pub struct SessionLayer {
    engine: Arc<Engine>,
    mode: Mode,
}

impl SessionLayer {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            mode: Mode::ReadWrite,
        }
    }

    /// The same session, loaded but never saved or extended.
    pub fn read_only(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            mode: Mode::ReadOnly,
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            engine: self.engine.clone(),
            mode: self.mode,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    engine: Arc<Engine>,
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

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let engine = self.engine.clone();
        let mode = self.mode;
        // Use the service that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(handle(engine, mode, inner, req))
    }
}

/// One request, in the steps the module comment lists.
async fn handle<S>(
    engine: Arc<Engine>,
    mode: Mode,
    mut inner: S,
    mut req: Request<Body>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    let uri = req.uri().clone();
    let user_agent = req.headers().get(header::USER_AGENT).cloned();

    // 1. identify
    let value = cookie_value(req.headers(), &engine.policy.cookie.name);
    let had_cookie = value.is_some();
    let incoming = identify(&engine, value);
    let (id, backing) = match incoming {
        Incoming::Server { id, store } => (id, Backing::Server(store)),
        #[cfg(feature = "cookie")]
        Incoming::Cookie { record, codec } => (
            record.as_ref().map(|r| r.id),
            Backing::Cookie {
                codec,
                sent: record,
            },
        ),
    };
    let store = Arc::new(
        RequestStore::new(backing, engine.policy.clone(), engine.max_session_bytes)
            .with_metrics(engine.metrics.clone()),
    );
    let session = Session::new(
        id,
        store.clone(),
        Some(Expiry::OnInactivity(to_time(engine.policy.idle))),
    );

    // 2. load
    if id.is_some() {
        if let Err(error) = session.get_value(CREATED_AT).await {
            return Ok(engine.fail(error.into(), &uri));
        }
        if session.id().is_none() {
            count(&engine.metrics, SessionMetrics::expired_on_load);
            tracing::warn!(
                "session cookie for an unknown or expired session: starting a fresh session"
            );
        }
    }
    let span = tracing::Span::current();
    if let (false, Some(id)) = (span.is_disabled(), session.id()) {
        span.record("session", fingerprint(&id).as_str());
    }

    // 3. check the user index
    let signed_in = match signed_in_at_start(&engine, &session, &store).await {
        Ok(signed_in) => signed_in,
        Err(error) => return Ok(engine.fail(error, &uri)),
    };
    let revoked = signed_in.as_ref().is_some_and(|s| s.revoked);
    if revoked {
        tracing::info!("session was revoked from another browser: logging it out");
        if let Err(error) = session.flush().await {
            return Ok(engine.fail(error.into(), &uri));
        }
    }

    // 4. run the handler
    req.extensions_mut().insert(session.clone());
    req.extensions_mut().insert(SessionInfo::new(
        &engine,
        store.loaded().filter(|_| !revoked),
        if revoked { None } else { session.id() },
        revoked,
    ));
    let mut res = inner.call(req).await?;
    if let Some(reason) = store.too_large() {
        return Ok(engine.fail(SessionError::TooLarge(reason), &uri));
    }
    // The handler refused a write as too large (its own limit check).
    if res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        count(&engine.metrics, SessionMetrics::refused);
    }
    if mode == Mode::ReadOnly || res.status().is_server_error() {
        return Ok(res);
    }

    // 5. settle
    if let Err(error) = settle(&engine, &session, &store).await {
        return Ok(match store.too_large() {
            Some(reason) => engine.fail(SessionError::TooLarge(reason), &uri),
            None => engine.fail(error, &uri),
        });
    }

    // 6. follow in the index
    let user_agent = user_agent
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    match follow_in_index(&engine, &session, &store, signed_in.as_ref(), user_agent).await {
        Ok(true) => {}
        // Revoked while it was being cycled: the new id must not live.
        Ok(false) => {
            let _ = session.flush().await;
            if let Some(cookie) = engine.policy.cookie.removal_header() {
                res.headers_mut().append(header::SET_COOKIE, cookie);
            }
            return Ok(res);
        }
        Err(error) => return Ok(engine.fail(error, &uri)),
    }

    // 7. set the cookie
    if let Some(cookie) = outgoing_cookie(&engine, &session, &store, had_cookie) {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(res)
}

/// What the request's cookie names.
enum Incoming {
    Server {
        id: Option<Id>,
        store: Arc<dyn SiteStore>,
    },
    #[cfg(feature = "cookie")]
    Cookie {
        record: Option<tower_sessions::session::Record>,
        codec: Arc<CookieCodec>,
    },
}

fn identify(engine: &Engine, value: Option<String>) -> Incoming {
    match &engine.storage {
        Storage::Server(store) => Incoming::Server {
            id: value.and_then(|value| match value.parse::<Id>() {
                Ok(id) => Some(id),
                Err(_) => {
                    tracing::warn!("malformed session cookie: starting a fresh session");
                    None
                }
            }),
            store: store.clone(),
        },
        #[cfg(feature = "cookie")]
        Storage::Cookie(codec) => Incoming::Cookie {
            record: value.and_then(|value| {
                let record = codec.decode(&value);
                if record.is_none() {
                    tracing::warn!(
                        "session cookie is malformed, forged, tampered or from an unknown key: starting a fresh session"
                    );
                }
                record
            }),
            codec: codec.clone(),
        },
    }
}

/// The signed-in session this request started with, checked in the index.
struct SignedIn {
    user: String,
    fingerprint: String,
    revoked: bool,
}

async fn signed_in_at_start(
    engine: &Engine,
    session: &Session,
    store: &RequestStore,
) -> Result<Option<SignedIn>, SessionError> {
    let (Some(index), Some(id)) = (&engine.index, session.id()) else {
        return Ok(None);
    };
    // Most sessions never sign in: the loaded keys say so without a lookup.
    let has_user = store
        .loaded()
        .is_some_and(|l| l.keys.binary_search_by(|k| k.as_str().cmp(USER)).is_ok());
    if !has_user {
        return Ok(None);
    }
    let Some(user) = current_user(session).await? else {
        return Ok(None);
    };
    let (fingerprint, key) = (fingerprint(&id), storage_key(&id));
    let member = member_of(session, &user, &fingerprint, &key).await?;
    let revoked = !index.check(&member).await?;
    Ok(Some(SignedIn {
        user,
        fingerprint,
        revoked,
    }))
}

/// The user this session's data says is signed in.
async fn current_user(session: &Session) -> Result<Option<String>, SessionError> {
    Ok(session
        .get_value(USER)
        .await?
        .as_ref()
        .and_then(user_name)
        .map(str::to_owned))
}

/// Saves a modified session, or touches an unchanged one that is due.
async fn settle(
    engine: &Engine,
    session: &Session,
    store: &RequestStore,
) -> Result<(), SessionError> {
    if session.is_modified() {
        session.save().await?;
        return Ok(());
    }
    let (Some(id), Some(loaded)) = (session.id(), store.loaded()) else {
        return Ok(());
    };
    if let Some(target) = engine
        .policy
        .touch_due(loaded.created_at_ms, loaded.expires_at)
    {
        if store.touch(&id, target).await? == super::store::WriteOutcome::Gone {
            tracing::debug!("touch found the session gone");
        }
    }
    Ok(())
}

/// Keeps the user index in step with what the handler did. `Ok(false)`
/// when the session was cycled after being revoked elsewhere.
async fn follow_in_index(
    engine: &Engine,
    session: &Session,
    store: &RequestStore,
    before: Option<&SignedIn>,
    user_agent: &str,
) -> Result<bool, SessionError> {
    let Some(index) = &engine.index else {
        return Ok(true);
    };
    let before = before.filter(|b| !b.revoked);
    // Nothing changed and nobody was signed in: nothing to follow.
    if before.is_none() && store.last_write().is_none() && !session.is_modified() {
        return Ok(true);
    }
    let stored = matches!(
        store.last_write(),
        Some(LastWrite::Created { .. } | LastWrite::Written { .. })
    );
    let now_id = session
        .id()
        .filter(|_| stored || store.last_write().is_none());
    let now_user = match now_id {
        Some(_) => current_user(session).await?,
        None => None,
    };
    if before.is_none() && now_user.is_none() {
        return Ok(true);
    }
    let now = now_id.map(|id| (fingerprint(&id), storage_key(&id)));
    match (before, &now, now_user.as_deref()) {
        // Unchanged: the check at the start already refreshed it.
        (Some(b), Some((fp, _)), Some(user)) if b.user == user && *fp == b.fingerprint => Ok(true),
        // Same user, new id: the entry follows the session.
        (Some(b), Some((fp, key)), Some(user)) if b.user == user => {
            let member = member_of(session, user, fp, key).await?;
            Ok(index.moved(&b.fingerprint, &member).await?)
        }
        (before, now, now_user) => {
            if let Some(b) = before {
                index.remove(&b.user, &b.fingerprint).await?;
            }
            if let (Some((fp, key)), Some(user)) = (now, now_user) {
                let member = member_of(session, user, fp, key).await?;
                index.add(&member, user_agent).await?;
            }
            Ok(true)
        }
    }
}

async fn member_of<'a>(
    session: &Session,
    user: &'a str,
    fingerprint: &'a str,
    key: &'a str,
) -> Result<Member<'a>, SessionError> {
    let created_at = session
        .get_value(CREATED_AT)
        .await?
        .and_then(|v| v.as_i64())
        .map(super::policy::from_unix_ms);
    Ok(Member {
        user,
        fingerprint,
        key,
        created_at,
    })
}

/// The `Set-Cookie` this response needs, if any.
fn outgoing_cookie(
    engine: &Engine,
    session: &Session,
    store: &RequestStore,
    had_cookie: bool,
) -> Option<HeaderValue> {
    let policy = &engine.policy;
    match (store.last_write(), session.id()) {
        (Some(LastWrite::Created { expires_at } | LastWrite::Written { expires_at }), Some(id)) => {
            let value = match &engine.storage {
                Storage::Server(_) => id.to_string(),
                #[cfg(feature = "cookie")]
                Storage::Cookie(_) => store.cookie_value()?,
            };
            policy.cookie_header(&value, expires_at)
        }
        // Gone: the session was deleted meanwhile; it stays deleted.
        (Some(LastWrite::Gone), _) => None,
        // Nothing to store (flushed, or emptied): drop the cookie.
        // (`Session::save` assigns an id even then, so test this first.)
        (Some(LastWrite::Skipped), _) if had_cookie => policy.cookie.removal_header(),
        (Some(LastWrite::Skipped), _) => None,
        // Deleted here, or the cookie named no live session.
        (_, None) if had_cookie => policy.cookie.removal_header(),
        _ => None,
    }
}

/// The value of the named cookie, from the first `Cookie` header carrying
/// it. Read from the raw bytes: another application's cookie with non-ASCII
/// bytes in the same header must not hide this one.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let name = name.as_bytes();
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|h| h.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
        })
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| {
            let v = v.strip_prefix(b"\"").unwrap_or(v);
            let v = v.strip_suffix(b"\"").unwrap_or(v);
            std::str::from_utf8(v).ok().map(str::to_owned)
        })
}

fn to_time(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_ascii_cookie_of_another_application_does_not_hide_the_session_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_bytes("theme=caf\u{e9}; session_id=abc; other=1".as_bytes()).unwrap(),
        );
        assert_eq!(cookie_value(&headers, "session_id").as_deref(), Some("abc"));
        assert_eq!(cookie_value(&headers, "missing"), None);
    }
}
