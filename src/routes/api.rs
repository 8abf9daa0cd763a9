//! The JSON API under `/api/session`: the same operations as the pages, for
//! scripts, tests and benchmarks. Errors are `{"error": "…"}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, AppError};
use crate::state::AppState;
use crate::web::format;
use crate::web::site_session::{SiteSession, validate_key, validate_readable_key};

/// Every route here except `/api/session/expiry`, which is mounted
/// separately behind a read-only session layer (see `routes::router`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session", get(show).delete(delete_session))
        .route("/api/session/save", post(save))
        .route("/api/session/cycle", post(cycle))
        .route(
            "/api/session/{key}",
            get(get_key).put(put_key).delete(delete_key),
        )
}

pub fn expiry_router() -> Router<AppState> {
    Router::new().route("/api/session/expiry", get(expiry))
}

/// Put first in every state-changing handler: a request the browser marks
/// `Sec-Fetch-Site: cross-site` is refused with 403 — a second line of
/// defence besides the SameSite cookie. (An extractor, not a middleware, so
/// reads pay nothing for it.)
pub struct NotCrossSite;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NotCrossSite {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let cross_site = parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        if cross_site {
            return Err(ApiError(AppError::Forbidden(
                "cross-site requests may not change the session".into(),
            )));
        }
        Ok(NotCrossSite)
    }
}

/// `axum::Json` with the API's error shape: 400 bad JSON, 413 too large,
/// 415 not JSON.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(ApiError(match rejection {
                JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
                    "send the value as JSON with Content-Type: application/json".into(),
                ),
                JsonRejection::JsonSyntaxError(e) => {
                    AppError::BadRequest(format!("the body is not valid JSON: {}", e.body_text()))
                }
                JsonRejection::JsonDataError(e) => AppError::BadRequest(format!(
                    "the body is not a usable JSON value: {}",
                    e.body_text()
                )),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    AppError::PayloadTooLarge(
                        "the request body is larger than the site accepts".into(),
                    )
                }
                other => AppError::BadRequest(other.body_text()),
            })),
        }
    }
}

/// The `{key}` of the path, with the API's error shape when it is not
/// valid (for example not UTF-8 once decoded): 400 `{"error": …}`.
pub struct AppPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AppPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(key)) => Ok(AppPath(key)),
            Err(rejection) => Err(ApiError(AppError::BadRequest(format!(
                "the key in the path is not usable: {}",
                rejection.body_text()
            )))),
        }
    }
}

async fn show(State(state): State<AppState>, session: SiteSession) -> Result<Response, ApiError> {
    let exists = session.exists();
    let body = json!({
        "backend": state.backend.as_str(),
        "new": !exists,
        "fingerprint": if exists { session.fingerprint() } else { None },
        "expires_at": session.stored_expiry().map(format::rfc3339),
        "data": session.user_data().await?,
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

async fn get_key(session: SiteSession, AppPath(key): AppPath) -> Result<Response, ApiError> {
    validate_readable_key(&key)?;
    match session.get_typed::<Value>(&key).await? {
        Some(value) => Ok((
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({ "key": key, "value": value })),
        )
            .into_response()),
        None => Err(ApiError(AppError::NotFound)),
    }
}

async fn put_key(
    _: NotCrossSite,
    State(state): State<AppState>,
    session: SiteSession,
    AppPath(key): AppPath,
    AppJson(value): AppJson<Value>,
) -> Result<Response, ApiError> {
    session
        .set_checked(&key, value.clone(), state.limits)
        .await?;
    Ok(Json(json!({ "key": key, "value": value })).into_response())
}

async fn delete_key(
    _: NotCrossSite,
    session: SiteSession,
    AppPath(key): AppPath,
) -> Result<StatusCode, ApiError> {
    validate_key(&key)?;
    session.remove_checked(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Saves now; with no session, creates nothing (and sends no cookie).
async fn save(_: NotCrossSite, session: SiteSession) -> Result<StatusCode, ApiError> {
    if session.exists() {
        session.session.save().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_session(_: NotCrossSite, session: SiteSession) -> Result<StatusCode, ApiError> {
    session.session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new id with the same data; answers the new fingerprint (null and no
/// cookie when there is no session).
async fn cycle(_: NotCrossSite, session: SiteSession) -> Result<Response, ApiError> {
    if !session.exists() {
        return Ok(Json(json!({ "fingerprint": null })).into_response());
    }
    session.session.cycle_id().await?;
    session.session.save().await?;
    Ok(Json(json!({ "fingerprint": session.fingerprint() })).into_response())
}

/// How long is left, read without extending the session: the per-route
/// "avoid touch" example for pages that poll.
async fn expiry(session: SiteSession) -> Result<Response, ApiError> {
    let at = session.stored_expiry();
    let body = json!({
        "expires_at": at.map(format::rfc3339),
        "seconds_left": at.map(format::seconds_left),
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
