//! `/account/sessions`: the signed-in user's sessions, from their index
//! (kept by the session engine, `sessions::index`), with one-by-one and "everywhere else" revocation.
//! The cookie backend keeps no server state, so it cannot list or revoke
//! sessions; the page says so.

use askama::Template as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::PageError;
use crate::state::AppState;
use crate::web::format;
use crate::web::page::{PageForm, check_csrf, csrf_for_page, layout, with_cookie};
use crate::web::site_session::SiteSession;
use crate::web::templates::{AccountPage, AccountRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/sessions", get(list))
        .route("/account/sessions/revoke", post(revoke))
        .route("/account/sessions/revoke-others", post(revoke_others))
}

async fn list(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let mut layout = layout(&state, &session, "Your sessions").await?;
    let flash = session.take_flash().await?;
    if layout.flash.is_none() {
        layout.flash = flash;
    }
    let csrf = csrf_for_page(&state, &session, &headers);
    let user = layout.user.clone();
    let current = session.fingerprint();
    let mut rows = Vec::new();
    let index = session.info.index();
    if let (Some(user), Some(index)) = (&user, index) {
        for (fingerprint, entry) in index.list(user).await? {
            rows.push(AccountRow {
                current: current.as_deref() == Some(fingerprint.as_str()),
                fingerprint,
                created: format::datetime(entry.created()),
                last_seen: format::datetime(entry.last_seen()),
                user_agent: entry.user_agent,
            });
        }
    }
    let supported = index.is_some();
    let page = AccountPage {
        layout,
        csrf_token: csrf.token,
        user,
        rows,
        supported,
        note: if supported {
            String::new()
        } else {
            "With the cookie backend every session lives only in its browser: the server keeps no list of them and cannot end one. Rotating session.secret_key ends them all.".into()
        },
    };
    Ok(with_cookie(
        ([(header::CACHE_CONTROL, "no-store")], Html(page.render()?)).into_response(),
        csrf.set_cookie,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    fingerprint: String,
}

async fn revoke(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<RevokeForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    if let (Some(user), Some(index)) = (session.user().await?, session.info.index()) {
        let text = if session.fingerprint().as_deref() == Some(form.fingerprint.as_str()) {
            "That is this browser's session: use Log out instead.".to_owned()
        } else if index.revoke(&user.name, &form.fingerprint).await? {
            count_revoked(&state, 1);
            format!(
                "Session {} revoked: it is deleted, and that browser is signed out.",
                form.fingerprint
            )
        } else {
            format!("No session {} to revoke.", form.fingerprint)
        };
        session.flash("ok", text).await?;
    }
    Ok(Redirect::to("/account/sessions").into_response())
}

async fn revoke_others(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<RevokeForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    if let (Some(user), Some(index), Some(fp)) = (
        session.user().await?,
        session.info.index(),
        session.fingerprint(),
    ) {
        let gone = index.revoke_others(&user.name, &fp).await?;
        count_revoked(&state, gone as u64);
        session
            .flash(
                "ok",
                format!("Signed out everywhere else: {gone} other session(s) revoked."),
            )
            .await?;
    }
    Ok(Redirect::to("/account/sessions").into_response())
}

fn count_revoked(state: &AppState, n: u64) {
    if let Some(metrics) = &state.metrics {
        metrics.sessions.revoked(n);
    }
}
