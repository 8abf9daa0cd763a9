//! Building and running the application: open the store, bind the port,
//! serve until cancelled, purge expired sessions in the background.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, Settings, decode_key};
use crate::routes::metrics::Metrics;
use crate::sessions::layer::{Engine, ErrorResponder, Storage};
use crate::sessions::policy::{CookieAttributes, Policy, SystemClock};
use crate::sessions::store::{Capability, SiteStore};
use crate::sessions::{NotCompiled, StoreOptions};
use crate::state::AppState;
use crate::web::csrf::Csrf;
use crate::web::site_session::Limits;

/// A bound, ready-to-serve site. Binding happens in `build`, so the port is
/// known (and taken) before `run` starts: tests never race for it.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Option<Arc<dyn SiteStore>>,
    settings: Arc<Settings>,
}

/// What a test may change about how the application is built.
#[derive(Default)]
pub struct Overrides {
    /// A store opened by the caller (two instances can share one).
    pub store: Option<Arc<dyn SiteStore>>,
    /// Extra routes behind the session layer (routes the binary never has).
    pub extra: Option<axum::Router<AppState>>,
    /// The engine's clock (tests move it instead of sleeping).
    pub clock: Option<Arc<dyn crate::sessions::policy::Clock>>,
}

/// How to open the configured server-side store; `None` for the cookie
/// backend, which keeps nothing on the server. A backend left out of this
/// build is refused here, with the feature that brings it in.
pub fn store_options(settings: &Settings) -> Result<Option<StoreOptions>, NotCompiled> {
    let s = &settings.session;
    NotCompiled::check(s.backend)?;
    Ok(Some(match s.backend {
        Backend::File => StoreOptions::File {
            dir: s.file.dir.clone(),
            fsync: s.file.fsync,
        },
        Backend::Memory => StoreOptions::Memory,
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        Backend::Database => StoreOptions::Database(s.database.options()),
        #[cfg(feature = "redis")]
        Backend::Redis => StoreOptions::Redis {
            url: s.redis.url.expose().to_owned(),
            prefix: s.redis.prefix.clone(),
            ca_file: s.redis.ca_file().map(std::path::Path::to_path_buf),
        },
        #[cfg(feature = "memcached")]
        Backend::Memcached => StoreOptions::Memcached {
            url: s.memcached.url.clone(),
            prefix: s.memcached.prefix.clone(),
        },
        Backend::Cookie => return Ok(None),
        // Refused by the check above.
        #[allow(unreachable_patterns)]
        other => unreachable!("{other} is compiled in"),
    }))
}

/// Opens the configured store; `None` for the cookie backend.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Option<Arc<dyn SiteStore>>> {
    match store_options(settings)? {
        Some(options) => Ok(Some(crate::sessions::open_store(&options).await?)),
        None => Ok(None),
    }
}

/// The engine's rules, from the settings.
pub fn policy(settings: &Settings, clock: Arc<dyn crate::sessions::policy::Clock>) -> Policy {
    let s = &settings.session;
    Policy {
        idle: s.idle_timeout,
        absolute: s.absolute(),
        extend_on_every_request: s.extend_on_every_request,
        touch_interval: s.effective_touch_interval(),
        cookie: CookieAttributes {
            name: s.cookie_name.clone(),
            secure: s.secure,
            same_site: match s.same_site {
                crate::config::SameSite::Strict => tower_sessions::cookie::SameSite::Strict,
                crate::config::SameSite::Lax => tower_sessions::cookie::SameSite::Lax,
                crate::config::SameSite::None => tower_sessions::cookie::SameSite::None,
            },
        },
        clock,
    }
}

/// The byte limits of one value and of a whole session, as this backend
/// can hold them.
fn limits(settings: &Settings) -> Limits {
    let s = &settings.session;
    let max_session_bytes = match s.backend {
        // One memcached item holds at most 1 MiB, key and header included.
        #[cfg(feature = "memcached")]
        Backend::Memcached => s
            .max_session_bytes
            .min(crate::sessions::memcached::MAX_ITEM_BYTES),
        _ => s.max_session_bytes,
    };
    Limits {
        max_value_bytes: s.max_value_bytes.min(max_session_bytes),
        max_session_bytes,
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Overrides::default()).await
    }

    /// Like `build`, with what a test overrides. Without a store in
    /// `overrides`, the configured one is opened.
    pub async fn build_with(settings: Settings, overrides: Overrides) -> anyhow::Result<Self> {
        crate::web::set_debug_errors(settings.server.debug_errors);
        let settings = Arc::new(settings);
        let s = &settings.session;
        let current = decode_key(s.secret_key.expose())
            .map_err(|e| anyhow::anyhow!("session.secret_key {e}"))?;
        let previous = s
            .previous_secret_keys
            .iter()
            .map(|k| decode_key(k.expose()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("session.previous_secret_keys: {e}"))?;
        let store = match overrides.store {
            Some(store) => Some(store),
            None => open_store(&settings).await?,
        };
        let metrics = settings
            .server
            .metrics
            .then(|| Arc::new(Metrics::new(s.backend)));
        // Every store operation is timed when metrics are on.
        let store = match (&metrics, store) {
            (Some(m), Some(store)) => Some(m.sessions.wrap(store)),
            (_, store) => store,
        };
        let storage = match &store {
            Some(store) => Storage::Server(store.clone()),
            #[cfg(feature = "cookie")]
            None => Storage::Cookie(Arc::new(crate::sessions::cookie::CookieCodec::new(
                &s.cookie_name,
                s.cookie.mode,
                &current,
                &previous,
            ))),
            #[cfg(not(feature = "cookie"))]
            None => {
                NotCompiled::check(Backend::Cookie)?;
                unreachable!("the cookie backend is not compiled in")
            }
        };
        let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let limits = limits(&settings);
        let debug = settings.server.debug_errors;
        let on_error: ErrorResponder = Arc::new(move |error, uri| {
            crate::error::respond(error.into(), crate::routes::is_api_path(uri.path()), debug)
        });
        let engine = Arc::new(
            Engine::new(
                s.backend,
                storage,
                policy(&settings, clock),
                limits.max_session_bytes,
                on_error,
            )
            .with_metrics(metrics.as_ref().map(|m| m.sessions.clone())),
        );
        let state = AppState {
            settings: settings.clone(),
            backend: s.backend,
            engine,
            csrf: Arc::new(Csrf::new(current, previous, s.secure)),
            limits,
            metrics,
        };
        let router = crate::routes::router(state, overrides.extra);
        let listener = TcpListener::bind(settings.server.bind)
            .await
            .with_context(|| format!("binding {}", settings.server.bind))?;
        Ok(Self {
            listener,
            router,
            store,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("BUG: a bound listener has an address")
    }

    /// The whole router with every layer, to call without a socket
    /// (`tower::ServiceExt::oneshot` in tests).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    pub fn store(&self) -> Option<Arc<dyn SiteStore>> {
        self.store.clone()
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests
    /// finish and stops the purge task.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let purge = self.store.clone().map(|store| {
            spawn_purge(
                store,
                self.settings.session.purge_interval,
                shutdown.clone(),
            )
        });
        let served = crate::server::serve(
            self.listener,
            self.router,
            &self.settings.server,
            shutdown.clone(),
        )
        .await
        .context("serving");
        shutdown.cancel();
        if let Some(purge) = purge {
            let _ = purge.await;
        }
        served
    }
}

/// Deletes expired sessions every `period` until cancelled.
fn spawn_purge(
    store: Arc<dyn SiteStore>,
    period: std::time::Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: skip it
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => match store.purge_expired().await {
                    Ok(Capability::Supported(n)) if n > 0 => tracing::info!(purged = n, "expired sessions deleted"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "purging expired sessions failed; will retry"),
                },
            }
        }
    })
}
