//! One error type for the whole app, and two ways to answer with it: an HTML
//! page through the site's layout, or `{"error": "…"}` for the JSON API.
//! Errors are logged once, here: 5xx at `error`, 4xx at `debug`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the session store is unavailable: {0}")]
    StoreUnavailable(#[source] tower_sessions::session_store::Error),
    #[error("could not render the page")]
    Render(#[from] askama::Error),
    #[error("unexpected error")]
    Unexpected(#[from] anyhow::Error),
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(error: tower_sessions::session::Error) -> Self {
        match error {
            tower_sessions::session::Error::Store(e) => AppError::StoreUnavailable(e),
            tower_sessions::session::Error::SerdeJson(e) => {
                AppError::Unexpected(anyhow::Error::new(e).context("session value"))
            }
        }
    }
}

impl From<crate::sessions::error::SessionError> for AppError {
    fn from(error: crate::sessions::error::SessionError) -> Self {
        match error {
            crate::sessions::error::SessionError::Unavailable(e) => AppError::StoreUnavailable(e),
            crate::sessions::error::SessionError::TooLarge(why) => AppError::PayloadTooLarge(why),
        }
    }
}

impl From<tower_sessions::session_store::Error> for AppError {
    fn from(error: tower_sessions::session_store::Error) -> Self {
        AppError::StoreUnavailable(error)
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Render(_) | AppError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a visitor may read. 5xx details stay in the log unless
    /// `debug_errors` is on.
    pub fn public_message(&self, debug: bool) -> String {
        match self {
            AppError::StoreUnavailable(_) if !debug => {
                "The session store is unavailable right now. Please try again in a moment.".into()
            }
            AppError::Render(_) | AppError::Unexpected(_) if debug => {
                format!("{self}: {}", chain(self))
            }
            _ => self.to_string(),
        }
    }

    fn log(&self) {
        if self.status().is_server_error() {
            tracing::error!(error.message = %self, error.cause_chain = %chain(self), "request failed");
        } else {
            tracing::debug!(error.message = %self, "request refused");
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

/// Answers with `error` as a page or as JSON.
pub fn respond(error: AppError, api: bool, debug: bool) -> Response {
    error.log();
    let status = error.status();
    let message = error.public_message(debug);
    if api {
        return (status, Json(ErrorBody { error: &message })).into_response();
    }
    let page = crate::web::templates::ErrorPage::new(status, message);
    match askama::Template::render(&page) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{} {}", status.as_u16(), page.message)).into_response(),
    }
}

/// The API's error shape, `{"error": "…"}`.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// An error answered as an HTML page through the site's layout.
#[derive(Debug)]
pub struct PageError {
    pub error: AppError,
    pub debug: bool,
}

impl<E: Into<AppError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError {
            error: error.into(),
            debug: crate::web::debug_errors(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        respond(self.error, false, self.debug)
    }
}

/// An error answered as `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond(self.0, true, crate::web::debug_errors())
    }
}
