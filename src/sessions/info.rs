//! What handlers may know about the stored session besides its data, put in
//! the request extensions by the session layer (handlers still use the
//! standard `tower_sessions::Session` for the data itself).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::Backend;
use super::index::UserIndex;
use super::inspect::AtRest;
use super::layer::Engine;
use super::policy::Policy;
use super::request_store::{LoadedRecord, fits_limit};

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub backend: Backend,
    /// The record as stored when this request began; `None` = a new session.
    pub loaded: Option<Arc<LoadedRecord>>,
    /// The id this request started with, if it named a live session.
    pub initial_id: Option<Id>,
    /// The session was signed in but revoked from another browser, and has
    /// just been logged out.
    pub revoked: bool,
    engine: Arc<Engine>,
}

impl SessionInfo {
    pub(super) fn new(
        engine: &Arc<Engine>,
        loaded: Option<Arc<LoadedRecord>>,
        initial_id: Option<Id>,
        revoked: bool,
    ) -> Self {
        Self {
            backend: engine.backend,
            loaded,
            initial_id,
            revoked,
            engine: engine.clone(),
        }
    }

    pub fn is_new(&self) -> bool {
        self.loaded.is_none()
    }

    pub fn policy(&self) -> &Policy {
        &self.engine.policy
    }

    /// The per-user session index; `None` on the cookie backend, which
    /// keeps no server state.
    pub fn index(&self) -> Option<&UserIndex> {
        self.engine.index.as_deref()
    }

    /// Where this session lives at rest, when the store can describe it.
    pub async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>> {
        match self.engine.store().and_then(|s| s.inspector()) {
            Some(inspector) => inspector.at_rest(id).await,
            None => Ok(None),
        }
    }

    /// Would a session holding `data` fit its limit (the 4096-byte cookie
    /// on the cookie backend)? Handlers ask before they write, so a refusal
    /// changes nothing; the layer checks the final record again.
    pub fn fits(&self, data: HashMap<String, Value>) -> Result<(), String> {
        let policy = &self.engine.policy;
        let mut record = Record {
            id: self.initial_id.unwrap_or_default(),
            data,
            expiry_date: policy.now(),
        };
        policy.prepare_save(&mut record);
        // The longest expiry text the record can carry.
        record.expiry_date = record
            .expiry_date
            .replace_nanosecond(999_999_999)
            .unwrap_or(record.expiry_date);
        let codec = match &self.engine.storage {
            super::layer::Storage::Server(_) => None,
            #[cfg(feature = "cookie")]
            super::layer::Storage::Cookie(codec) => Some(codec.as_ref()),
        };
        fits_limit(codec, self.engine.max_session_bytes, &record)
    }

    /// Cookie backend: how the cookie protects the record.
    #[cfg(feature = "cookie")]
    pub fn cookie_mode(&self) -> Option<super::cookie::CookieMode> {
        match &self.engine.storage {
            super::layer::Storage::Cookie(codec) => Some(codec.mode()),
            _ => None,
        }
    }
}
