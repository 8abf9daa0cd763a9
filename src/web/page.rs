//! What page handlers share: the layout, the CSRF token to render (and the
//! nonce cookie it may need), the CSRF check of a posted form, and form
//! extraction with readable 400/415 pages.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::csrf::{Binding, valid_nonce};
use super::site_session::{Flash, SiteSession};
use super::templates::Layout;
use crate::error::{AppError, PageError};
use crate::state::AppState;

pub use crate::sessions::layer::cookie_value;

/// A token to put in this page's forms, and the nonce cookie to send when
/// the visitor has neither a session nor a nonce yet.
pub struct CsrfForPage {
    pub token: String,
    pub set_cookie: Option<HeaderValue>,
}

/// A visitor with a session gets only the session-bound token, whatever
/// nonce cookie comes along.
pub fn csrf_for_page(state: &AppState, session: &SiteSession, headers: &HeaderMap) -> CsrfForPage {
    if let Some(id) = session.session.id() {
        return CsrfForPage {
            token: state.csrf.token(&Binding::Session(id)),
            set_cookie: None,
        };
    }
    if let Some(nonce) = nonce_of(state, headers) {
        return CsrfForPage {
            token: state.csrf.token(&Binding::Nonce(nonce)),
            set_cookie: None,
        };
    }
    let (nonce, cookie) = state.csrf.new_nonce();
    CsrfForPage {
        token: state.csrf.token(&Binding::Nonce(nonce)),
        set_cookie: HeaderValue::from_str(&cookie.to_string()).ok(),
    }
}

/// The nonce cookie of this request, if it carries a well-formed one.
fn nonce_of(state: &AppState, headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, state.csrf.nonce_cookie_name()).filter(|n| valid_nonce(n))
}

/// Refuses a posted form whose token does not match: 403, and nothing
/// changes. A request that carries a live session (its cookie named a
/// session that existed before this request) must bring that session's
/// token; the nonce binding counts only for a visitor without one, so a
/// nonce cookie planted by a sibling subdomain cannot open a signed-in
/// visitor's forms.
pub fn check_csrf(
    state: &AppState,
    session: &SiteSession,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), PageError> {
    let binding = match session.session.id() {
        Some(id) if session.exists() => Some(Binding::Session(id)),
        _ => nonce_of(state, headers).map(Binding::Nonce),
    };
    if state.csrf.verify(token, binding.as_slice()) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "This form has expired or did not come from this site (CSRF check failed). Nothing was changed: reload the page and try again.".into(),
        )
        .into())
    }
}

pub async fn layout(
    state: &AppState,
    session: &SiteSession,
    title: &str,
) -> Result<Layout, AppError> {
    Ok(Layout {
        title: title.to_owned(),
        backend: state.backend.to_string(),
        user: session.user().await?.map(|u| u.name),
        // The session layer logged a revoked session out before this page.
        flash: session.info.revoked.then(|| Flash {
            level: "error".into(),
            text: "You were signed out: this session was revoked from another browser.".into(),
        }),
    })
}

/// Adds the nonce cookie, if any, to a rendered page.
pub fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `axum::Form`, but a bad body is a readable 400 page (415 for a wrong
/// content type) instead of a plain-text rejection.
pub struct PageForm<T>(pub T);

impl<S, T> FromRequest<S> for PageForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::FormRejection;
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(PageForm(value)),
            Err(FormRejection::InvalidFormContentType(_)) => {
                Err(PageError::from(AppError::UnsupportedMediaType(
                    "Forms must be sent as application/x-www-form-urlencoded.".into(),
                ))
                .into_response())
            }
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(
                    PageError::from(AppError::PayloadTooLarge("The form is too large.".into()))
                        .into_response(),
                )
            }
            Err(rejection) => Err(PageError::from(AppError::BadRequest(format!(
                "The form could not be read: {}",
                rejection.body_text()
            )))
            .into_response()),
        }
    }
}
