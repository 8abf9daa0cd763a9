//! The demo login (a name, no password) and logout. Login shows what every
//! real login must do: cycle the session id first (no session fixation),
//! then store the user. Logout deletes the session on the server.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;

use super::session::{TokenOnly, refused};
use crate::error::{AppError, PageError};
use crate::state::AppState;
use crate::web::page::{PageForm, check_csrf};
use crate::web::site_session::SiteSession;
use crate::web::templates::FormEcho;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
}

fn validate_name(name: &str) -> Result<&str, AppError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 64 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "A name must be 1 to 64 characters, without control characters.".into(),
        ));
    }
    Ok(name)
}

async fn login(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    let name = match validate_name(&form.name) {
        Ok(name) => name.to_owned(),
        Err(error) => {
            let echo = FormEcho {
                which: "login".into(),
                name: form.name,
                ..FormEcho::default()
            };
            return refused(&state, &session, &headers, error, echo).await;
        }
    };
    // A new id before the privilege change: an id planted or seen before
    // login is worthless after it. The session layer then lists the session
    // in the user's index, once it is stored under its new id.
    if session.exists() {
        session.session.cycle_id().await?;
    }
    session.set_user(&name).await?;
    session
        .flash(
            "ok",
            format!("Logged in as {name}. The session got a new id first, as every login must."),
        )
        .await?;
    Ok(Redirect::to("/").into_response())
}

async fn logout(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenOnly>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    // Deleting the session also takes it out of the user's index (the
    // session layer sees it end).
    session.session.flush().await?;
    Ok(Redirect::to("/?done=logged_out").into_response())
}
