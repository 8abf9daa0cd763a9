//! Building and running the application: open the store, bind the port,
//! serve until cancelled, purge expired sessions in the background.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, decode_key};
use crate::routes::Sessions;
use crate::routes::metrics::Metrics;
use crate::sessions::cookie::CookieSetup;
use crate::sessions::layer::SessionConfig;
use crate::sessions::store::{Capability, SiteStore};
use crate::state::AppState;
use crate::web::accounts::Accounts;
use crate::web::csrf::Csrf;

/// A bound, ready-to-serve site. Binding happens in `build`, so the port is
/// known (and taken) before `run` starts: tests never race for it.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Option<Arc<dyn SiteStore>>,
    settings: Arc<Settings>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = crate::sessions::open_store(&settings).await?;
        Self::build_with_store(settings, store).await
    }

    /// Like `build`, with a store opened by the caller (tests share one
    /// store between two instances this way).
    pub async fn build_with_store(
        settings: Settings,
        store: Option<Arc<dyn SiteStore>>,
    ) -> anyhow::Result<Self> {
        Self::build_with(settings, store, None).await
    }

    /// Like `build_with_store`, with extra routes behind the session layer
    /// (tests add routes the binary never has).
    pub async fn build_with(
        settings: Settings,
        store: Option<Arc<dyn SiteStore>>,
        extra: Option<axum::Router<AppState>>,
    ) -> anyhow::Result<Self> {
        crate::web::set_debug_errors(settings.server.debug_errors);
        let settings = Arc::new(settings);
        let s = &settings.session;
        let metrics = settings
            .server
            .metrics
            .then(|| Arc::new(Metrics::new(s.backend)));
        // Every store operation is timed when metrics are on.
        let store = match (&metrics, store) {
            (Some(m), Some(store)) => Some(m.sessions.wrap(store)),
            (_, store) => store,
        };
        let session_metrics = metrics.as_ref().map(|m| m.sessions.clone());
        let current = decode_key(s.secret_key.expose())
            .map_err(|e| anyhow::anyhow!("session.secret_key {e}"))?;
        let previous = s
            .previous_secret_keys
            .iter()
            .map(|k| decode_key(k.expose()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("session.previous_secret_keys: {e}"))?;
        let state = AppState {
            settings: settings.clone(),
            backend: s.backend,
            store: store.clone(),
            csrf: Arc::new(Csrf::new(current, previous, s.secure)),
            accounts: store.clone().map(|store| {
                // An index must outlive every session it lists.
                let lifetime = s.absolute().unwrap_or(s.idle_timeout).max(s.idle_timeout);
                let seen_every = s
                    .effective_touch_interval()
                    .max(std::time::Duration::from_secs(1));
                Arc::new(Accounts::new(store, current, lifetime, seen_every))
            }),
            metrics,
        };
        let sessions = match &store {
            Some(store) => Sessions::Server(Arc::new(SessionConfig {
                metrics: session_metrics,
                ..SessionConfig::new(&settings, store.clone())
            })),
            None => Sessions::Cookie(Arc::new(CookieSetup {
                metrics: session_metrics,
                ..CookieSetup::new(&settings).map_err(|e| anyhow::anyhow!(e))?
            })),
        };
        let router = crate::routes::router(state, sessions, extra);
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
        let signal = shutdown.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { signal.cancelled().await })
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
