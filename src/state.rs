//! What every handler can reach: settings, the session engine, the CSRF
//! signer.

use std::sync::Arc;

use crate::config::{Backend, Settings};
use crate::sessions::layer::Engine;
use crate::web::csrf::Csrf;
use crate::web::site_session::Limits;

#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub backend: Backend,
    /// The session engine (its store, policy and user index).
    pub engine: Arc<Engine>,
    pub csrf: Arc<Csrf>,
    /// The byte limits a write from outside is checked against.
    pub limits: Limits,
    /// This application's metrics; `None` when `server.metrics = false`.
    pub metrics: Option<Arc<crate::routes::metrics::Metrics>>,
}
