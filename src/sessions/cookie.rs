//! The cookie backend: the whole session travels in the cookie, signed or
//! encrypted with `session.secret_key`; nothing is stored on the server.
//!
//! It keeps `tower-sessions-cookie-store`'s layer and adds three things of
//! the site's own:
//! - [`RotatingCookie`], a cookie controller that reads with the current key
//!   and then each of `previous_secret_keys`, and always writes with the
//!   current one: keys rotate without logging anyone out;
//! - [`CookieAdapter`], a middleware inside that layer which enforces the same
//!   expiry rules as the server-side stores (idle + absolute, extension with
//!   `touch_interval`), and puts a [`SessionView`] in the request;
//! - [`CookieSizer`], which computes the exact cookie a save would produce,
//!   so a write that would not fit in 4096 bytes is refused (413) *before*
//!   the session changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use serde_json::Value;
use time::OffsetDateTime;
use tower::{Layer, Service};
use tower_cookies::{Cookie, Cookies, Key};
use tower_sessions::Session;
use tower_sessions::session::{Expiry, Record};
use tower_sessions_cookie_store::{
    CookieController, CookieSessionConfig, CookieSessionManagerLayer,
};

use super::keys::CREATED_AT;
use super::metrics::{SessionMetrics, count};
use super::request_store::{ExpiryPolicy, LoadedRecord};
use super::store::{AtRest, unix_ms};
use super::view::SessionView;
use crate::config::{Backend, CookieMode, Settings, decode_key};

/// Browsers keep cookies up to this size (name, value and attributes).
pub const MAX_COOKIE_BYTES: usize = 4096;

/// Reads with every configured key, writes with the current one.
#[derive(Clone)]
pub struct RotatingCookie {
    mode: CookieMode,
    /// `keys[0]` is the current key.
    keys: Arc<Vec<Key>>,
}

impl std::fmt::Debug for RotatingCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RotatingCookie {{ mode: {:?}, keys: {} (masked) }}",
            self.mode,
            self.keys.len()
        )
    }
}

impl RotatingCookie {
    /// Parses `session.secret_key` and `session.previous_secret_keys`,
    /// naming the config key on error.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let s = &settings.session;
        let mut keys =
            vec![key_from(s.secret_key.expose()).map_err(|e| format!("session.secret_key {e}"))?];
        for (i, old) in s.previous_secret_keys.iter().enumerate() {
            keys.push(
                key_from(old.expose())
                    .map_err(|e| format!("session.previous_secret_keys entry {i} {e}"))?,
            );
        }
        Ok(Self {
            mode: s.cookie.mode,
            keys: Arc::new(keys),
        })
    }

    fn current(&self) -> &Key {
        &self.keys[0]
    }

    fn get_with(&self, key: &Key, cookies: &Cookies, name: &str) -> Option<Cookie<'static>> {
        match self.mode {
            CookieMode::Private => cookies.private(key).get(name),
            CookieMode::Signed => cookies.signed(key).get(name),
        }
    }
}

fn key_from(base64: &str) -> Result<Key, String> {
    let bytes = decode_key(base64)?;
    Key::try_from(bytes.as_slice()).map_err(|e| format!("is not usable as a cookie key: {e}"))
}

impl CookieController for RotatingCookie {
    fn get(&self, cookies: &Cookies, name: &str) -> Option<Cookie<'static>> {
        self.keys.iter().enumerate().find_map(|(i, key)| {
            let found = self.get_with(key, cookies, name)?;
            if i > 0 {
                tracing::debug!(
                    "session cookie verified with a previous key; the next write re-issues it"
                );
            }
            Some(found)
        })
    }

    fn add(&self, cookies: &Cookies, cookie: Cookie<'static>) {
        match self.mode {
            CookieMode::Private => cookies.private(self.current()).add(cookie),
            CookieMode::Signed => cookies.signed(self.current()).add(cookie),
        }
    }

    fn remove(&self, cookies: &Cookies, cookie: Cookie<'static>) {
        match self.mode {
            CookieMode::Private => cookies.private(self.current()).remove(cookie),
            CookieMode::Signed => cookies.signed(self.current()).remove(cookie),
        }
    }
}

/// Computes the exact `name=value` a record would be written as.
#[derive(Debug, Clone)]
pub struct CookieSizer {
    name: String,
    controller: RotatingCookie,
    idle: Duration,
}

impl CookieSizer {
    /// Bytes of `name=value` for this record, signed or encrypted with the
    /// current key. Attributes (`Path`, `Max-Age`, …) are not counted: the
    /// 4096-byte limit of browsers applies to name and value.
    pub fn cookie_len(
        &self,
        record: &Record,
    ) -> Result<usize, tower_sessions::session_store::Error> {
        let value = tower_sessions_cookie_store::encode_record(record)?;
        let mut jar = tower_cookies::cookie::CookieJar::new();
        let cookie = Cookie::new(self.name.clone(), value);
        match self.controller.mode {
            CookieMode::Private => jar.private_mut(self.controller.current()).add(cookie),
            CookieMode::Signed => jar.signed_mut(self.controller.current()).add(cookie),
        }
        let written = jar.get(&self.name).map(|c| c.value().len()).unwrap_or(0);
        Ok(self.name.len() + 1 + written)
    }

    /// The size of the cookie a save of `data` will produce, rounded up:
    /// with `_created_at` added if missing (as `settle` does) and an expiry
    /// whose serialized form is the longest possible.
    pub fn upper_bound_len(
        &self,
        id: tower_sessions::session::Id,
        mut data: std::collections::HashMap<String, Value>,
    ) -> Result<usize, tower_sessions::session_store::Error> {
        data.entry(CREATED_AT.to_owned())
            .or_insert_with(|| Value::from(unix_ms(OffsetDateTime::now_utc())));
        let now = OffsetDateTime::now_utc();
        let expiry_date = (now + self.idle)
            .replace_nanosecond(999_999_999)
            .unwrap_or(now);
        self.cookie_len(&Record {
            id,
            data,
            expiry_date,
        })
    }
}

/// Everything the cookie backend needs, built once at start-up.
#[derive(Debug, Clone)]
pub struct CookieSetup {
    pub controller: RotatingCookie,
    pub sizer: Arc<CookieSizer>,
    pub policy: Arc<ExpiryPolicy>,
    pub config: CookieSessionConfig,
    pub extend_on_every_request: bool,
    pub touch_interval: Duration,
    pub mode: CookieMode,
    pub cookie_name: String,
    pub metrics: Option<Arc<super::metrics::SessionMetrics>>,
}

impl CookieSetup {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let s = &settings.session;
        let controller = RotatingCookie::from_settings(settings)?;
        let same_site = match s.same_site {
            crate::config::SameSite::Strict => tower_cookies::cookie::SameSite::Strict,
            crate::config::SameSite::Lax => tower_cookies::cookie::SameSite::Lax,
            crate::config::SameSite::None => tower_cookies::cookie::SameSite::None,
        };
        let config = CookieSessionConfig::default()
            .with_name(s.cookie_name.clone())
            .with_http_only(true)
            .with_same_site(same_site)
            .with_secure(s.secure)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(
                time::Duration::try_from(s.idle_timeout).unwrap_or(time::Duration::HOUR),
            ))
            // The site checks the exact size itself before anything changes;
            // the crate's own check (on the value before encryption) must
            // never be the one that fires, since it answers a bare 500.
            .with_max_cookie_bytes(64 * 1024);
        Ok(Self {
            sizer: Arc::new(CookieSizer {
                name: s.cookie_name.clone(),
                controller: controller.clone(),
                idle: s.idle_timeout,
            }),
            controller,
            policy: Arc::new(ExpiryPolicy {
                idle: s.idle_timeout,
                absolute: s.absolute(),
            }),
            config,
            extend_on_every_request: s.extend_on_every_request,
            touch_interval: s.effective_touch_interval(),
            mode: s.cookie.mode,
            cookie_name: s.cookie_name.clone(),
            metrics: None,
        })
    }

    /// The crate's layer, with the site's controller.
    pub fn manager_layer(&self) -> CookieSessionManagerLayer<RotatingCookie> {
        CookieSessionManagerLayer::signed(self.controller.current().clone())
            .with_config(self.config.clone())
            .with_controller(self.controller.clone())
    }

    /// The site's adapter, to be layered *inside* `manager_layer`.
    pub fn adapter(self: &Arc<Self>, read_only: bool) -> CookieAdapterLayer {
        CookieAdapterLayer {
            setup: self.clone(),
            read_only,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CookieAdapterLayer {
    setup: Arc<CookieSetup>,
    read_only: bool,
}

impl<S> Layer<S> for CookieAdapterLayer {
    type Service = CookieAdapter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CookieAdapter {
            inner,
            setup: self.setup.clone(),
            read_only: self.read_only,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CookieAdapter<S> {
    inner: S,
    setup: Arc<CookieSetup>,
    read_only: bool,
}

impl<S> Service<Request<Body>> for CookieAdapter<S>
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
        let setup = self.setup.clone();
        let read_only = self.read_only;
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        Box::pin(async move {
            let session = req.extensions().get::<Session>().cloned();
            let cookies = req.extensions().get::<Cookies>().cloned();
            let (Some(session), Some(cookies)) = (session, cookies) else {
                tracing::error!("BUG: the cookie adapter must sit inside the cookie session layer");
                return inner.call(req).await;
            };

            // Decode what the browser sent, to show the record as it was.
            let raw_present = cookies.get(&setup.cookie_name).is_some();
            let sent = setup.controller.get(&cookies, &setup.cookie_name);
            let record = sent
                .as_ref()
                .and_then(|c| tower_sessions_cookie_store::decode_record(c.value()).ok())
                .filter(|r| r.expiry_date > OffsetDateTime::now_utc());
            count(
                &setup.metrics,
                match (raw_present, &record) {
                    (_, Some(_)) => SessionMetrics::loaded,
                    (true, None) => SessionMetrics::expired_on_load,
                    (false, None) => |_| {},
                },
            );
            if raw_present && record.is_none() {
                tracing::warn!(
                    "session cookie is forged, tampered, expired or from an unknown key: starting a fresh session"
                );
            }
            let loaded = record.as_ref().map(|r| Arc::new(LoadedRecord::of(r)));
            let initial_id = record.as_ref().map(|r| r.id);
            // The panel shows the raw value the browser holds (encrypted or
            // signed), not the decoded one.
            let raw = cookies
                .get(&setup.cookie_name)
                .map(|c| c.value().to_owned());
            let at_rest = raw.zip(record).map(|(raw, record)| {
                Arc::new(CookieAtRest {
                    setup: setup.clone(),
                    raw,
                    record,
                })
            });
            req.extensions_mut().insert(SessionView::client_side(
                Backend::Cookie,
                loaded.clone(),
                initial_id,
                at_rest,
                Some(setup.sizer.clone()),
            ));

            let res = inner.call(req).await?;
            if res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                count(&setup.metrics, SessionMetrics::refused);
            }
            if read_only || res.status().is_server_error() {
                return Ok(res);
            }
            if let Err(error) = settle(&setup, &session, loaded.as_deref()).await {
                tracing::error!(%error, "cookie session could not be prepared for saving");
            }
            Ok(res)
        })
    }
}

/// Before the crate's layer saves: stamp `_created_at`, cap the expiry at
/// `min(now + idle, created + absolute)`, extend an unchanged session when
/// due, and make sure the cookie still fits.
async fn settle(
    setup: &CookieSetup,
    session: &Session,
    loaded: Option<&LoadedRecord>,
) -> Result<(), tower_sessions::session::Error> {
    let now = OffsetDateTime::now_utc();
    if session.is_empty().await {
        if loaded.is_some() {
            count(&setup.metrics, SessionMetrics::deleted);
        }
        return Ok(()); // flushed or never written: the crate removes the cookie
    }
    let created_at = match session.get_value(CREATED_AT).await? {
        Some(v) => v.as_i64().map(super::store::from_unix_ms).unwrap_or(now),
        None => {
            if !session.is_modified() {
                return Ok(());
            }
            session
                .insert_value(CREATED_AT, Value::from(unix_ms(now)))
                .await?;
            now
        }
    };
    let target = setup.policy.expiry(created_at, now);
    let due = match loaded {
        Some(l) => {
            l.expires_at
                < target
                    - time::Duration::try_from(setup.touch_interval).unwrap_or(time::Duration::ZERO)
        }
        None => true,
    };
    // A cookie is re-issued whole: a "touch" is a save of unchanged data.
    let event = match (loaded, session.is_modified()) {
        (None, _) => SessionMetrics::created,
        (Some(_), true) => SessionMetrics::saved,
        (Some(_), false) => SessionMetrics::touched,
    };
    if session.is_modified() || (setup.extend_on_every_request && due) {
        // Whole seconds up; `round_up_max_age` then keeps the browser from
        // dropping the cookie before this moment.
        let secs = (target - now).as_seconds_f64().ceil().max(0.0) as i64;
        session.set_expiry(Some(Expiry::AtDateTime(
            now + time::Duration::seconds(secs),
        )));
    }
    // Save here, not in the crate's layer: the crate skips its save when the
    // handler already saved explicitly (`cycle_id` + `save`, then a flash),
    // which would lose whatever the handler wrote after that save.
    if session.is_modified() {
        session.save().await?;
        count(&setup.metrics, event);
    }
    Ok(())
}

/// The crate computes `Max-Age` by truncating to whole seconds, so the
/// browser would drop the cookie up to a second before the session ends.
/// Adds that second back to the session cookie's `Max-Age` (the expiry inside
/// the cookie, which the server enforces, is unchanged).
pub fn round_up_max_age(name: &str, mut res: Response<Body>) -> Response<Body> {
    use axum::http::{HeaderValue, header};
    // Most responses (reads within the touch interval) set no cookie.
    if !res.headers().contains_key(header::SET_COOKIE) {
        return res;
    }
    let prefix = format!("{name}=");
    let fixed: Vec<HeaderValue> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| {
            let Some(text) = value.to_str().ok().filter(|t| t.starts_with(&prefix)) else {
                return value.clone();
            };
            let Ok(mut cookie) = Cookie::parse(text.to_owned()) else {
                return value.clone();
            };
            if let Some(age) = cookie.max_age().filter(|a| a.is_positive()) {
                cookie.set_max_age(age + time::Duration::SECOND);
            }
            HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| value.clone())
        })
        .collect();
    res.headers_mut().remove(header::SET_COOKIE);
    for value in fixed {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
    res
}

/// The cookie the browser sent and what it decoded to, kept for the root
/// page's "at rest" panel.
#[derive(Debug)]
pub struct CookieAtRest {
    setup: Arc<CookieSetup>,
    raw: String,
    record: Record,
}

impl CookieAtRest {
    pub fn describe(&self) -> AtRest {
        describe(&self.setup, &self.raw, &self.record)
    }
}

fn describe(setup: &CookieSetup, raw: &str, record: &Record) -> AtRest {
    let size = setup.cookie_name.len() + 1 + raw.len();
    let mut facts = vec![
        (
            "cookie size".to_owned(),
            format!("{size} of {MAX_COOKIE_BYTES} bytes"),
        ),
        (
            "mode".to_owned(),
            match setup.mode {
                CookieMode::Private => {
                    "private: encrypted and authenticated (AES-256-GCM)".to_owned()
                }
                CookieMode::Signed => {
                    "signed: readable by you, tamper-proof (HMAC-SHA256)".to_owned()
                }
            },
        ),
    ];
    let room = MAX_COOKIE_BYTES.saturating_sub(size);
    // Encryption and base64 cost about 4/3 of the JSON added.
    facts.push((
        "room left".to_owned(),
        format!("about {} more bytes of JSON", room * 3 / 4),
    ));
    let content = match setup.mode {
        CookieMode::Signed => serde_json::to_string_pretty(&record.data).ok(),
        CookieMode::Private => Some(format!(
            "{}… (encrypted: only the server can read it)",
            &raw[..raw.len().min(80)]
        )),
    };
    AtRest {
        kind: "cookie".into(),
        location: format!(
            "in your browser, cookie `{}`; nothing on the server",
            setup.cookie_name
        ),
        facts,
        content,
    }
}
