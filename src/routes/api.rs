//! The JSON API under `/api/session`: the same operations as the pages, for
//! scripts, tests and benchmarks. Errors are `{"error": "…"}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
/// as coming from anywhere but this origin is refused with 403 before it
/// touches the session — a second line of defence besides the SameSite
/// cookie. (An extractor, not a middleware, so reads pay nothing for it.)
pub struct NotCrossSite;

impl axum::extract::FromRequestParts<AppState> for NotCrossSite {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or_else(|| parts.headers.get(header::HOST).map(HeaderValue::as_bytes));
        if from_elsewhere(&parts.headers, authority, state.settings.session.secure) {
            return Err(ApiError(AppError::Forbidden(
                "requests from another site (or another origin) may not change the session".into(),
            )));
        }
        Ok(NotCrossSite)
    }
}

/// True when the browser says the request comes from elsewhere:
/// `Sec-Fetch-Site` present and not `same-origin` or `none` (a same-*site*
/// sibling subdomain is elsewhere too), or `Origin` present and not this
/// site's own origin (`https://` + the request's host when cookies are
/// `Secure`, else `http://`). A script that sends neither header is served.
fn from_elsewhere(headers: &HeaderMap, authority: Option<&[u8]>, https: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        if !site.eq_ignore_ascii_case(b"same-origin") && !site.eq_ignore_ascii_case(b"none") {
            return true;
        }
    }
    match headers.get(header::ORIGIN) {
        Some(origin) => !is_own_origin(origin.as_bytes(), authority, https),
        None => false,
    }
}

fn is_own_origin(origin: &[u8], authority: Option<&[u8]>, https: bool) -> bool {
    let Some(authority) = authority else {
        return false;
    };
    let (scheme, default_port): (&[u8], &[u8]) = if https {
        (b"https://", b":443")
    } else {
        (b"http://", b":80")
    };
    let Some(origin_host) = origin.strip_prefix(scheme) else {
        return false;
    };
    let trim = |a: &'_ [u8]| -> Vec<u8> {
        let a = a.strip_suffix(default_port).unwrap_or(a);
        a.to_ascii_lowercase()
    };
    !origin_host.is_empty() && trim(origin_host) == trim(authority)
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
    Ok(([(header::CACHE_CONTROL, NO_STORE.clone())], Json(body)).into_response())
}

async fn get_key(session: SiteSession, AppPath(key): AppPath) -> Result<Response, ApiError> {
    validate_readable_key(&key)?;
    match session.session.get_value(&key).await? {
        Some(value) => Ok((
            [(header::CACHE_CONTROL, NO_STORE.clone())],
            Json(KeyValue {
                key: &key,
                value: &value,
            }),
        )
            .into_response()),
        None => Err(ApiError(AppError::NotFound)),
    }
}

/// `{"key": …, "value": …}`, serialized from the parts without building a
/// JSON document first.
#[derive(serde::Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: &'a Value,
}

/// Answers about a session are not for caches.
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

async fn put_key(
    _: NotCrossSite,
    State(state): State<AppState>,
    session: SiteSession,
    AppPath(key): AppPath,
    AppJson(value): AppJson<Value>,
) -> Result<Response, ApiError> {
    if nesting_depth(&value) > MAX_JSON_DEPTH {
        return Err(ApiError(AppError::BadRequest(format!(
            "the value is nested deeper than {MAX_JSON_DEPTH} levels"
        ))));
    }
    session
        .set_checked(&key, value.clone(), state.limits)
        .await?;
    Ok(Json(KeyValue {
        key: &key,
        value: &value,
    })
    .into_response())
}

/// The deepest nesting a stored value may have. Stored records wrap values
/// in levels of their own and parsers stop at 128, so a value that stores
/// must stay well below that to load back.
pub const MAX_JSON_DEPTH: usize = 64;

/// How many arrays and objects nest in `value`: `1` is 0 deep, `[1]` is 1.
/// Iterative, so a hostile value cannot exhaust the stack.
pub fn nesting_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let below = depth + 1;
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|child| (child, below))),
            Value::Object(map) => stack.extend(map.values().map(|child| (child, below))),
            _ => continue,
        }
        deepest = deepest.max(below);
    }
    deepest
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
    Ok(([(header::CACHE_CONTROL, NO_STORE.clone())], Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_same_origin_or_header_less_requests_may_write() {
        let host = Some(&b"site.example:8080"[..]);
        let served: &[&[(&str, &str)]] = &[
            &[],
            &[("sec-fetch-site", "same-origin")],
            &[("sec-fetch-site", "none")],
            &[("origin", "http://site.example:8080")],
            &[("origin", "http://SITE.example:8080")],
        ];
        for pairs in served {
            assert!(!from_elsewhere(&headers(pairs), host, false), "{pairs:?}");
        }
        let refused: &[&[(&str, &str)]] = &[
            &[("sec-fetch-site", "same-site")],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "")],
            &[("origin", "null")],
            &[("origin", "http://evil.example")],
            &[("origin", "http://site.example:8081")],
            &[("origin", "http://site.example:8080.evil.example")],
            &[("origin", "https://site.example:8080")],
            &[("origin", "http://")],
            &[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://evil.example"),
            ],
        ];
        for pairs in refused {
            assert!(from_elsewhere(&headers(pairs), host, false), "{pairs:?}");
        }
        // No host to compare with: an Origin cannot be this site's.
        assert!(from_elsewhere(
            &headers(&[("origin", "http://site.example")]),
            None,
            false
        ));
    }

    #[test]
    fn nesting_depth_counts_arrays_and_objects() {
        assert_eq!(nesting_depth(&json!(1)), 0);
        assert_eq!(nesting_depth(&json!([])), 1);
        assert_eq!(nesting_depth(&json!({"a": [1, {"b": []}], "c": 2})), 4);
        let mut deep = json!(null);
        for _ in 0..65 {
            deep = json!([deep]);
        }
        assert_eq!(nesting_depth(&deep), 65);
    }

    #[test]
    fn the_own_origin_follows_the_secure_setting_and_default_ports() {
        let h = headers(&[("origin", "https://site.example")]);
        assert!(!from_elsewhere(&h, Some(b"site.example"), true));
        assert!(!from_elsewhere(&h, Some(b"site.example:443"), true));
        assert!(from_elsewhere(&h, Some(b"site.example"), false));
        let h = headers(&[("origin", "http://site.example:80")]);
        assert!(!from_elsewhere(&h, Some(b"site.example"), false));
    }
}
