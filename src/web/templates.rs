//! The askama page structs, one per page, all extending `base.html`.

use askama::Template;
use axum::http::StatusCode;

use super::site_session::Flash;
use crate::sessions::store::AtRest;

/// What every page's layout shows.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub title: String,
    /// The backend in use, when known.
    pub backend: String,
    /// The logged-in demo user, if any.
    pub user: Option<String>,
    pub flash: Option<Flash>,
}

/// One row of the root page's table.
#[derive(Debug, Clone)]
pub struct DataRow {
    pub key: String,
    /// The value as JSON.
    pub json: String,
    /// The site's own key (`_…`): shown, but not editable.
    pub reserved: bool,
}

#[derive(Template)]
#[template(path = "root.html")]
pub struct RootPage {
    pub layout: Layout,
    pub csrf_token: String,
    pub is_new: bool,
    pub fingerprint: Option<String>,
    /// Stored expiry, human and RFC 3339, and seconds left.
    pub expires_at: Option<(String, String, String)>,
    pub created_at: Option<String>,
    pub visits: Option<i64>,
    pub rows: Vec<DataRow>,
    pub at_rest: Option<AtRest>,
    pub extend_on_every_request: bool,
    pub idle_timeout: String,
    pub absolute_timeout: String,
    /// A refused form: the message and what the visitor typed, kept.
    pub form_error: Option<String>,
    pub form: FormEcho,
}

/// What the visitor typed into the forms, echoed back after a refusal.
#[derive(Debug, Clone, Default)]
pub struct FormEcho {
    /// Which form was refused: "set", "remove" or "login".
    pub which: String,
    pub key: String,
    pub value: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "get.html")]
pub struct GetPage {
    pub layout: Layout,
    pub key: String,
    pub found: bool,
    /// The stored value as JSON, or the default.
    pub shown: String,
    pub default: String,
    pub fingerprint: Option<String>,
    pub expires_at: Option<(String, String, String)>,
}

/// One row of `/account/sessions`.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub fingerprint: String,
    pub created: String,
    pub last_seen: String,
    pub user_agent: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub layout: Layout,
    pub csrf_token: String,
    pub user: Option<String>,
    pub rows: Vec<AccountRow>,
    pub supported: bool,
    pub note: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub reason: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, message: String) -> Self {
        let reason = status.canonical_reason().unwrap_or("Error").to_owned();
        Self {
            layout: Layout {
                title: format!("{} {reason}", status.as_u16()),
                ..Layout::default()
            },
            status: status.as_u16(),
            reason,
            message,
        }
    }
}
