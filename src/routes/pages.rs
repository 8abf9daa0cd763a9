//! `GET /` (the root page) and `GET /session/get` (read with a default).

use askama::Template as _;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{AppError, PageError};
use crate::sessions::inspect::AtRest;
use crate::sessions::keys::VISITS;
use crate::state::AppState;
use crate::web::format;
use crate::web::page::{csrf_for_page, layout, with_cookie};
use crate::web::site_session::{Flash, SiteSession, validate_readable_key};
use crate::web::templates::{DataRow, FormEcho, GetPage, RootPage};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/session/get", get(get_value))
}

#[derive(Debug, Deserialize)]
pub struct RootQuery {
    done: Option<String>,
}

/// After delete and logout there is no session to hold a flash message, so
/// the redirect carries a `done` code instead.
fn done_message(code: &str) -> Option<Flash> {
    let text = match code {
        "deleted" => {
            "The session was deleted: its record is gone from the store and the cookie was removed."
        }
        "logged_out" => "You are logged out: your session was deleted on the server.",
        "nothing_to_save" => {
            "There is no session to save yet: saving created nothing (store a value first)."
        }
        "no_session" => "There is no session yet, so there is no id to change.",
        _ => return None,
    };
    Some(Flash {
        level: "ok".into(),
        text: text.into(),
    })
}

async fn root(
    State(state): State<AppState>,
    session: SiteSession,
    headers: HeaderMap,
    Query(query): Query<RootQuery>,
) -> Result<Response, PageError> {
    let mut flash = session.take_flash().await?;
    if flash.is_none() {
        flash = query.done.as_deref().and_then(done_message);
    }
    session.count_visit().await?;
    render_root(
        &state,
        &session,
        &headers,
        flash,
        None,
        FormEcho::default(),
        StatusCode::OK,
    )
    .await
}

/// Renders the root page; form handlers call it too, to show a refusal inline
/// (with `status` 400 or 413) and keep what the visitor typed.
pub async fn render_root(
    state: &AppState,
    session: &SiteSession,
    headers: &HeaderMap,
    flash: Option<Flash>,
    form_error: Option<String>,
    form: FormEcho,
    status: StatusCode,
) -> Result<Response, PageError> {
    let csrf = csrf_for_page(state, session, headers);
    let mut layout = layout(state, session, "Your session").await?;
    // A revocation notice from `layout` wins over an older message.
    if layout.flash.is_none() {
        layout.flash = flash;
    }

    let mut entries = session.entries().await?;
    if let Some(visits) = session.session.get_value(VISITS).await? {
        entries.insert(VISITS.to_owned(), visits);
    }
    let visits = entries.get(VISITS).and_then(Value::as_i64);
    let rows = entries
        .iter()
        .map(|(key, value)| DataRow {
            key: key.clone(),
            json: value.to_string(),
            reserved: SiteSession::is_site_key(key),
        })
        .collect();
    let at_rest = match session.session.id() {
        Some(id) if session.exists() => match session.info.at_rest(&id).await? {
            Some(at_rest) => Some(at_rest),
            None => cookie_at_rest(state, session, headers).await?,
        },
        _ => None,
    };
    let s = &state.settings.session;
    let page = RootPage {
        layout,
        csrf_token: csrf.token,
        is_new: !session.exists(),
        fingerprint: session.exists().then(|| session.fingerprint()).flatten(),
        expires_at: session.stored_expiry().map(expiry_parts),
        created_at: session.created_at().map(format::datetime),
        visits,
        rows,
        at_rest,
        extend_on_every_request: s.extend_on_every_request,
        idle_timeout: format::duration(s.idle_timeout.as_secs() as i64),
        absolute_timeout: if s.absolute_timeout.is_zero() {
            "none".into()
        } else {
            format::duration(s.absolute_timeout.as_secs() as i64)
        },
        form_error,
        form,
    };
    let html = page.render()?;
    Ok(with_cookie(
        (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        csrf.set_cookie,
    ))
}

/// The cookie backend's panel: the cookie's size and protection, never any
/// part of its value (the data itself is shown only when signed, where the
/// visitor can read it anyway).
#[cfg(feature = "cookie")]
async fn cookie_at_rest(
    state: &AppState,
    session: &SiteSession,
    headers: &HeaderMap,
) -> Result<Option<AtRest>, AppError> {
    use crate::sessions::CookieMode;
    use crate::sessions::cookie::MAX_COOKIE_BYTES;
    use crate::web::page::cookie_value;
    let Some(mode) = session.info.cookie_mode() else {
        return Ok(None);
    };
    let name = &state.settings.session.cookie_name;
    let Some(value) = cookie_value(headers, name) else {
        return Ok(None);
    };
    let size = name.len() + 1 + value.len();
    let room = MAX_COOKIE_BYTES.saturating_sub(size);
    let (mode_text, content) = match mode {
        CookieMode::Private => (
            "private: encrypted and authenticated (AES-256-GCM)",
            Some("(encrypted: only the server can read it)".to_owned()),
        ),
        CookieMode::Signed => (
            "signed: readable by you, tamper-proof (HMAC-SHA256)",
            serde_json::to_string_pretty(&session.entries().await?).ok(),
        ),
    };
    Ok(Some(AtRest {
        kind: "cookie".into(),
        location: format!("in your browser, cookie {name}; nothing on the server"),
        facts: vec![
            (
                "cookie size".into(),
                format!("{size} of {MAX_COOKIE_BYTES} bytes"),
            ),
            ("mode".into(), mode_text.into()),
            // Encryption and base64 cost about 4/3 of the JSON added.
            (
                "room left".into(),
                format!("about {} more bytes of JSON", room * 3 / 4),
            ),
        ],
        content,
    }))
}

#[cfg(not(feature = "cookie"))]
async fn cookie_at_rest(
    _: &AppState,
    _: &SiteSession,
    _: &HeaderMap,
) -> Result<Option<AtRest>, AppError> {
    Ok(None)
}

/// (human, RFC 3339, time left) of a stored expiry.
pub fn expiry_parts(at: time::OffsetDateTime) -> (String, String, String) {
    (
        format::datetime(at),
        format::rfc3339(at),
        format::duration(format::seconds_left(at)),
    )
}

#[derive(Debug, Deserialize)]
pub struct GetQuery {
    key: Option<String>,
    default: Option<String>,
}

/// `session.get(key)` with a default: read-only, never writes the session.
async fn get_value(
    State(state): State<AppState>,
    session: SiteSession,
    Query(query): Query<GetQuery>,
) -> Result<Response, PageError> {
    let key = query.key.unwrap_or_default();
    validate_readable_key(&key)?;
    let default = query.default.unwrap_or_default();
    let value = session.get_typed::<Value>(&key).await?;
    let page = GetPage {
        layout: layout(&state, &session, &format!("Reading {key}")).await?,
        found: value.is_some(),
        shown: value
            .map(|v| v.to_string())
            .unwrap_or_else(|| default.clone()),
        key,
        default,
        fingerprint: session.exists().then(|| session.fingerprint()).flatten(),
        expires_at: session.stored_expiry().map(expiry_parts),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(page.render()?)).into_response())
}
