//! `GET /metrics`: the application's registry in the Prometheus text
//! format (OpenMetrics 1.0, which Prometheus scrapes natively), plus the
//! HTTP request counter. Mounted outside the session layer, and only when
//! `server.metrics = true`.
//!
//! The registry belongs to this application: two apps in one process
//! count separately.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::config::Backend;
use crate::sessions::metrics::SessionMetrics;
use crate::state::AppState;

/// The OpenMetrics text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of one application.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The engine's counters and store histograms.
    pub sessions: Arc<SessionMetrics>,
    http: Family<HttpLabels, Counter>,
}

impl Metrics {
    pub fn new(backend: Backend) -> Self {
        let mut registry = Registry::with_prefix("websessions");
        let sessions = Arc::new(SessionMetrics::new(&mut registry, backend.as_str()));
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http.clone(),
        );
        Self {
            registry,
            sessions,
            http,
        }
    }

    /// The whole registry, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> Response {
    let body = state
        .metrics
        .as_ref()
        .map(|m| m.encode())
        .unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

impl Metrics {
    /// The counter of answered requests by method, route *template* (the
    /// matched path, such as `/api/session/{key}`, never the raw path, which
    /// could carry a key or grow without bound) and status. The outer layer
    /// counts each response in it.
    pub fn request_counter(
        &self,
        method: &'static str,
        route: Option<MatchedPath>,
        status: u16,
    ) -> Counter {
        self.http
            .get_or_create(&HttpLabels {
                method,
                route: Route(route),
                status,
            })
            .clone()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

/// The matched route template; `unmatched` for a 404 of the fallback.
#[derive(Debug, Clone)]
struct Route(Option<MatchedPath>);

impl Route {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The standard methods by name; anything else is `other`, so a client
/// cannot grow the label set.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
