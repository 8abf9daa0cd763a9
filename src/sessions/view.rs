//! What pages and the API may know about the stored session, put in the
//! request extensions by the session middleware (handlers still use the
//! standard `tower_sessions::Session` for the data itself).

use std::sync::Arc;

use tower_sessions::session::Id;

use super::cookie::{CookieAtRest, CookieSizer};
use super::request_store::LoadedRecord;
use super::store::{AtRest, SiteStore};
use crate::config::Backend;

#[derive(Debug, Clone)]
pub struct SessionView {
    pub backend: Backend,
    /// The record as stored when this request began; `None` = a new session.
    pub loaded: Option<Arc<LoadedRecord>>,
    /// The id this request started with, if it named a live session.
    pub initial_id: Option<Id>,
    store: Option<Arc<dyn SiteStore>>,
    /// Cookie backend: the cookie the browser sent, described only when a
    /// page shows the panel (API requests never pay for it).
    cookie_at_rest: Option<Arc<CookieAtRest>>,
    /// Cookie backend: sizes the cookie a save would produce.
    pub cookie_sizer: Option<Arc<CookieSizer>>,
}

impl SessionView {
    pub fn server_side(
        backend: Backend,
        loaded: Option<Arc<LoadedRecord>>,
        initial_id: Option<Id>,
        store: Arc<dyn SiteStore>,
    ) -> Self {
        Self {
            backend,
            loaded,
            initial_id,
            store: Some(store),
            cookie_at_rest: None,
            cookie_sizer: None,
        }
    }

    /// A session that lives in the cookie: nothing on the server to show.
    pub fn client_side(
        backend: Backend,
        loaded: Option<Arc<LoadedRecord>>,
        initial_id: Option<Id>,
        at_rest: Option<Arc<CookieAtRest>>,
        sizer: Option<Arc<CookieSizer>>,
    ) -> Self {
        Self {
            backend,
            loaded,
            initial_id,
            store: None,
            cookie_at_rest: at_rest,
            cookie_sizer: sizer,
        }
    }

    pub fn is_new(&self) -> bool {
        self.loaded.is_none()
    }

    /// Where this session lives at rest, for the root page's panel.
    pub async fn at_rest(
        &self,
        id: &Id,
    ) -> Result<Option<AtRest>, tower_sessions::session_store::Error> {
        match &self.store {
            Some(store) => store.at_rest(id).await,
            None => Ok(self.cookie_at_rest.as_deref().map(CookieAtRest::describe)),
        }
    }
}
