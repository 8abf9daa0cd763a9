//! The form posts of the root page: set, remove, save, delete, cycle.
//! Each checks the CSRF token first, then answers 303 to `/` with a flash
//! message, or re-renders the page with the refusal inline.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;

use super::pages::render_root;
use crate::error::{AppError, PageError};
use crate::state::AppState;
use crate::web::page::{PageForm, check_csrf};
use crate::web::site_session::SiteSession;
use crate::web::templates::FormEcho;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session/set", post(set))
        .route("/session/remove", post(remove))
        .route("/session/save", post(save))
        .route("/session/delete", post(delete))
        .route("/session/cycle", post(cycle))
}

#[derive(Debug, Deserialize)]
pub struct KeyValueForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
pub struct TokenOnly {
    #[serde(default)]
    pub csrf_token: String,
}

/// A refused write: the page again, with the message and the typed values.
pub async fn refused(
    state: &AppState,
    session: &SiteSession,
    headers: &HeaderMap,
    error: AppError,
    form: FormEcho,
) -> Result<Response, PageError> {
    let status = error.status();
    render_root(
        state,
        session,
        headers,
        None,
        Some(error.to_string()),
        form,
        status,
    )
    .await
}

fn is_refusal(error: &AppError) -> bool {
    matches!(
        error,
        AppError::BadRequest(_) | AppError::PayloadTooLarge(_)
    )
}

async fn set(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<KeyValueForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    match session
        .set_checked(&form.key, Value::String(form.value.clone()), state.limits)
        .await
    {
        Ok(()) => {}
        Err(error) if is_refusal(&error) => {
            let echo = FormEcho {
                which: "set".into(),
                key: form.key,
                value: form.value,
                ..FormEcho::default()
            };
            return refused(&state, &session, &headers, error, echo).await;
        }
        Err(error) => return Err(error.into()),
    }
    session
        .flash("ok", format!("Stored `{}`.", form.key))
        .await?;
    Ok(Redirect::to("/").into_response())
}

async fn remove(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<KeyValueForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    let removed = match session.remove_checked(&form.key).await {
        Ok(removed) => removed,
        Err(error) if is_refusal(&error) => {
            let echo = FormEcho {
                which: "remove".into(),
                key: form.key,
                ..FormEcho::default()
            };
            return refused(&state, &session, &headers, error, echo).await;
        }
        Err(error) => return Err(error.into()),
    };
    if session.exists() {
        let text = match removed {
            Some(_) => format!("Removed `{}`.", form.key),
            None => format!("`{}` was not in the session: nothing to remove.", form.key),
        };
        session.flash("ok", text).await?;
    }
    Ok(Redirect::to("/").into_response())
}

/// `session.save()` on demand. Without a session there is nothing to save,
/// and saving must not create one.
async fn save(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenOnly>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    if !session.exists() {
        return Ok(Redirect::to("/?done=nothing_to_save").into_response());
    }
    session.session.save().await?;
    session
        .flash(
            "ok",
            "Saved: the record was written to the store now, and its expiry moved.",
        )
        .await?;
    Ok(Redirect::to("/").into_response())
}

/// `session.flush()`: the record and the cookie go; no flash, since no
/// session survives to carry it.
async fn delete(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenOnly>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    session.session.flush().await?;
    Ok(Redirect::to("/?done=deleted").into_response())
}

/// `session.cycle_id()`: a new id, the same data, the old id dead.
async fn cycle(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenOnly>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    if !session.exists() {
        return Ok(Redirect::to("/?done=no_session").into_response());
    }
    let before = session.fingerprint().unwrap_or_default();
    session.session.cycle_id().await?;
    // Save now so the new id (and its fingerprint) exists for the message.
    session.session.save().await?;
    let after = session.fingerprint().unwrap_or_default();
    session
        .flash("ok", format!("New session id: fingerprint {before} → {after}. The data stayed; the old id no longer works."))
        .await?;
    Ok(Redirect::to("/").into_response())
}
