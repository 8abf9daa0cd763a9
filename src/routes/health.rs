//! Readiness (`/healthz`, pings the store) and liveness (`/healthz/live`,
//! touches nothing). Both are routed outside the session layer. A failed
//! readiness check names the backend; the raw error only with
//! `debug_errors = true`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ready))
        .route("/healthz/live", get(live))
}

async fn ready(State(state): State<AppState>) -> Response {
    let backend = state.backend.as_str();
    let ping = match state.engine.store() {
        Some(store) => store.ping().await,
        None => Ok(()),
    };
    match ping {
        Ok(()) => Json(json!({ "status": "ok", "backend": backend })).into_response(),
        Err(error) => {
            tracing::warn!(%error, backend, "readiness check failed");
            // The raw error names hosts, ports, paths and OS errors: it stays
            // in the log unless `debug_errors` is on (development).
            let message = if state.settings.server.debug_errors {
                format!("the {backend} session store cannot be reached: {error}")
            } else {
                format!("the {backend} session store cannot be reached")
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "backend": backend, "error": message })),
            )
                .into_response()
        }
    }
}

async fn live() -> &'static str {
    "ok"
}
