//! Readiness (`/healthz`, pings the store) and liveness (`/healthz/live`,
//! touches nothing). Both are routed outside the session layer.

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
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "backend": backend, "error": error.to_string() })),
            )
                .into_response()
        }
    }
}

async fn live() -> &'static str {
    "ok"
}
