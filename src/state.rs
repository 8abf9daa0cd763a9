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
}

impl AppState {
    pub fn limits(&self) -> Limits {
        Limits {
            max_value_bytes: self.settings.session.max_value_bytes,
            max_session_bytes: self.settings.session.max_session_bytes,
        }
    }
}
