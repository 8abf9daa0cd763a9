//! `/account/sessions`: the signed-in user's sessions.
//!
//! This first version lists the session of this browser only: listing and
//! revoking the user's other sessions needs a per-user index of sessions by
//! storage hash, which the "log out everywhere" work adds. The revoke forms
//! are refused with a clear message until then, and change nothing.

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
use crate::web::templates::{AccountPage, AccountRow, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/sessions", get(list))
        .route("/account/sessions/revoke", post(revoke))
        .route("/account/sessions/revoke-others", post(revoke))
}

async fn list(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let csrf = csrf_for_page(&state, &session, &headers);
    let mut layout = layout(&state, &session, "Your sessions").await?;
    layout.flash = session.take_flash().await?;
    let user = session.user().await?;
    let mut rows = Vec::new();
    if let (Some(user), Some(fp)) = (&user, session.fingerprint()) {
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_owned();
        let logged_in = time::OffsetDateTime::from_unix_timestamp(user.logged_in_at).ok();
        rows.push(AccountRow {
            fingerprint: fp,
            created: session
                .created_at()
                .or(logged_in)
                .map(format::datetime)
                .unwrap_or_default(),
            last_seen: format::datetime(time::OffsetDateTime::now_utc()),
            user_agent,
            current: true,
        });
    }
    let page = AccountPage {
        layout,
        csrf_token: csrf.token,
        user: user.map(|u| u.name),
        rows,
        supported: true,
        note: "This list shows this browser's session; listing and revoking your other sessions is not built yet.".into(),
    };
    Ok(with_cookie(
        ([(header::CACHE_CONTROL, "no-store")], Html(render(&page)?)).into_response(),
        csrf.set_cookie,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
}

async fn revoke(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    PageForm(form): PageForm<RevokeForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &session, &headers, &form.csrf_token)?;
    if session.exists() {
        session
            .flash(
                "error",
                "Revoking other sessions is not built yet: nothing was changed.",
            )
            .await?;
    }
    Ok(Redirect::to("/account/sessions").into_response())
}
