//! What every handler can reach: settings, the store, the CSRF signer.

use std::sync::Arc;

use crate::config::{Backend, Settings};
use crate::sessions::store::SiteStore;
use crate::web::csrf::Csrf;
use crate::web::site_session::Limits;

#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub backend: Backend,
    /// The server-side store; `None` for the cookie backend.
    pub store: Option<Arc<dyn SiteStore>>,
    pub csrf: Arc<Csrf>,
    /// Each user's index of sessions; `None` for the cookie backend.
    pub accounts: Option<Arc<crate::web::accounts::Accounts>>,
    /// This application's metrics; `None` when `server.metrics = false`.
    pub metrics: Option<Arc<crate::routes::metrics::Metrics>>,
}

impl AppState {
    pub fn limits(&self) -> Limits {
        let s = &self.settings.session;
        let max_session_bytes = match self.backend {
            // One memcached item holds at most 1 MiB, key and header included.
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
}
