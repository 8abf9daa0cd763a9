//! The store a `tower_sessions::Session` sees during one request.
//!
//! It stands between the session and where the record lives — a server-side
//! store, or (cookie backend) the cookie itself — and does what a plain store
//! cannot:
//! - applies the [`Policy`]: the absolute cap on load, `_created_at` and the
//!   expiry on every save;
//! - refuses a save that would outgrow the session's limit (nothing stored);
//! - keeps what it loaded (keys, stored expiry, whether the session existed
//!   before this request), so pages show the record *as stored*;
//! - remembers what the last write found (created, written, gone), so the
//!   middleware knows which cookie to send.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::keys::CREATED_AT;
use super::metrics::{SessionMetrics, count};
use super::policy::{Policy, created_at_ms_of, from_unix_ms};
use super::store::{SiteStore, WriteOutcome, json_len};

#[cfg(feature = "cookie")]
use super::cookie::CookieCodec;

/// The record as it was stored when this request loaded it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRecord {
    /// Every key, the site's own (`_…`) included, sorted.
    pub keys: Vec<String>,
    pub expires_at: OffsetDateTime,
    /// `_created_at` as stored, in Unix milliseconds.
    pub created_at_ms: Option<i64>,
}

impl LoadedRecord {
    pub fn of(record: &Record) -> Self {
        let mut keys: Vec<String> = record.data.keys().cloned().collect();
        keys.sort_unstable();
        Self {
            keys,
            expires_at: record.expiry_date,
            created_at_ms: created_at_ms_of(record),
        }
    }

    /// When the session was first stored, if the record says.
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        self.created_at_ms.map(from_unix_ms)
    }
}

/// What the last write of this request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastWrite {
    /// A new record was inserted (first save, or after `cycle_id`).
    Created { expires_at: OffsetDateTime },
    /// The existing record was updated (or touched).
    Written { expires_at: OffsetDateTime },
    /// The record was gone (deleted or expired meanwhile); nothing written.
    Gone,
    /// Creation was skipped: the session held no data of its own.
    Skipped,
}

/// Where this request's record lives.
#[derive(Debug)]
pub enum Backing {
    Server(Arc<dyn SiteStore>),
    /// The cookie backend: the record decoded from the request's cookie.
    #[cfg(feature = "cookie")]
    Cookie {
        codec: Arc<CookieCodec>,
        sent: Option<Record>,
    },
}

impl Backing {
    /// The server-side store, if the record lives in one.
    fn server(&self) -> Option<&Arc<dyn SiteStore>> {
        match self {
            Backing::Server(store) => Some(store),
            #[cfg(feature = "cookie")]
            Backing::Cookie { .. } => None,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    loaded: Option<Arc<LoadedRecord>>,
    last_write: Option<LastWrite>,
    /// Why the last save was refused as too large, if it was.
    too_large: Option<String>,
    /// Cookie backend: the cookie value the last write produced.
    cookie_value: Option<String>,
}

#[derive(Debug)]
pub struct RequestStore {
    backing: Backing,
    policy: Arc<Policy>,
    /// Server-side stores: the most a session's data may weigh, as JSON.
    max_session_bytes: usize,
    metrics: Option<Arc<SessionMetrics>>,
    state: Mutex<State>,
}

impl RequestStore {
    pub fn new(backing: Backing, policy: Arc<Policy>, max_session_bytes: usize) -> Self {
        Self {
            backing,
            policy,
            max_session_bytes,
            metrics: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts what this request does to the session into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<SessionMetrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record as loaded at the start of this request, if it existed.
    pub fn loaded(&self) -> Option<Arc<LoadedRecord>> {
        self.state().loaded.clone()
    }

    pub fn last_write(&self) -> Option<LastWrite> {
        self.state().last_write
    }

    /// Why a save was refused as too large, if one was.
    pub fn too_large(&self) -> Option<String> {
        self.state().too_large.clone()
    }

    /// Cookie backend: the value of the cookie the last write produced.
    pub fn cookie_value(&self) -> Option<String> {
        self.state().cookie_value.clone()
    }

    /// Expiry-only extension of an unchanged session.
    pub async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        let outcome = match &self.backing {
            Backing::Server(store) => store.touch(id, expires_at).await?,
            // No server state: a touch re-issues the cookie with the new
            // expiry inside.
            #[cfg(feature = "cookie")]
            Backing::Cookie { codec, sent } => match sent {
                Some(record) => {
                    let mut record = record.clone();
                    record.expiry_date = expires_at;
                    let value = codec.encode(&record)?;
                    self.state().cookie_value = Some(value);
                    WriteOutcome::Written
                }
                None => WriteOutcome::Gone,
            },
        };
        if outcome == WriteOutcome::Written {
            count(&self.metrics, SessionMetrics::touched);
        }
        self.state().last_write = Some(match outcome {
            WriteOutcome::Written => LastWrite::Written { expires_at },
            WriteOutcome::Gone => LastWrite::Gone,
        });
        Ok(outcome)
    }

    /// Refuses a record that would outgrow its limit; on the cookie backend
    /// returns the exact cookie value it will be written as.
    fn check_size(&self, record: &Record) -> session_store::Result<Option<String>> {
        let codec = match &self.backing {
            Backing::Server(_) => None,
            #[cfg(feature = "cookie")]
            Backing::Cookie { codec, .. } => Some(codec.as_ref()),
        };
        fit(codec, self.max_session_bytes, record).map_err(|refusal| {
            self.state().too_large = Some(refusal.clone());
            session_store::Error::Backend(refusal)
        })
    }
}

#[cfg(not(feature = "cookie"))]
pub enum CookieCodec {}

/// Checks a record against its limit: the JSON of its data on server-side
/// stores, the exact cookie (`name=value`, encrypted or signed) on the
/// cookie backend, whose value it returns. `Err` says why it does not fit.
pub fn fit(
    codec: Option<&CookieCodec>,
    max_session_bytes: usize,
    record: &Record,
) -> Result<Option<String>, String> {
    #[cfg(feature = "cookie")]
    if let Some(codec) = codec {
        let value = codec.encode(record).map_err(|e| e.to_string())?;
        cookie_fits(codec.cookie_len(&value))?;
        return Ok(Some(value));
    }
    #[cfg(not(feature = "cookie"))]
    let _ = codec;
    data_fits(max_session_bytes, record).map(|()| None)
}

/// [`fit`] without producing the cookie: its exact size is computed from
/// the encoded record, so nothing is encrypted or signed.
pub fn fits_limit(
    codec: Option<&CookieCodec>,
    max_session_bytes: usize,
    record: &Record,
) -> Result<(), String> {
    #[cfg(feature = "cookie")]
    if let Some(codec) = codec {
        let len = codec
            .predicted_cookie_len(record)
            .map_err(|e| e.to_string())?;
        return cookie_fits(len);
    }
    #[cfg(not(feature = "cookie"))]
    let _ = codec;
    data_fits(max_session_bytes, record)
}

#[cfg(feature = "cookie")]
fn cookie_fits(len: usize) -> Result<(), String> {
    if len <= super::cookie::MAX_COOKIE_BYTES {
        return Ok(());
    }
    Err(format!(
        "The session cookie would be {len} bytes; browsers keep at most {}. Nothing was changed.",
        super::cookie::MAX_COOKIE_BYTES
    ))
}

fn data_fits(max_session_bytes: usize, record: &Record) -> Result<(), String> {
    let bytes = json_len(&record.data).map_err(|e| e.to_string())?;
    if bytes <= max_session_bytes {
        return Ok(());
    }
    Err(format!(
        "The session would be {bytes} bytes as JSON; it may be at most {max_session_bytes} bytes. Nothing was changed."
    ))
}

/// Only the site's bookkeeping: such a session holds nothing worth a record.
fn holds_nothing(record: &Record) -> bool {
    record.data.keys().all(|k| k == CREATED_AT)
}

#[async_trait]
impl SessionStore for RequestStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        if holds_nothing(record) {
            self.state().last_write = Some(LastWrite::Skipped);
            return Ok(());
        }
        // Always a fresh id: after `flush` the record still carries the
        // ended session's id, and a write later in the same request must
        // not bring that id back.
        record.id = Id::default();
        self.policy.prepare_save(record);
        let cookie_value = self.check_size(record)?;
        if let Some(store) = self.backing.server() {
            store.create(record).await?;
        }
        count(&self.metrics, SessionMetrics::created);
        let mut state = self.state();
        state.cookie_value = cookie_value;
        state.last_write = Some(LastWrite::Created {
            expires_at: record.expiry_date,
        });
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let mut record = record.clone();
        self.policy.prepare_save(&mut record);
        let cookie_value = self.check_size(&record)?;
        let outcome = match &self.backing {
            Backing::Server(store) => store.save_existing(&record).await?,
            #[cfg(feature = "cookie")]
            Backing::Cookie { .. } => WriteOutcome::Written,
        };
        if outcome == WriteOutcome::Written {
            count(&self.metrics, SessionMetrics::saved);
        }
        let mut state = self.state();
        state.cookie_value = cookie_value;
        state.last_write = Some(match outcome {
            WriteOutcome::Written => LastWrite::Written {
                expires_at: record.expiry_date,
            },
            WriteOutcome::Gone => LastWrite::Gone,
        });
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = match &self.backing {
            Backing::Server(store) => store.load(id).await?,
            #[cfg(feature = "cookie")]
            Backing::Cookie { sent, .. } => sent.clone().filter(|r| r.id == *id),
        };
        let record = record.and_then(|record| self.policy.admit(record));
        if record.is_some() {
            count(&self.metrics, SessionMetrics::loaded);
        }
        let mut state = self.state();
        if state.loaded.is_none() {
            state.loaded = record.as_ref().map(|r| Arc::new(LoadedRecord::of(r)));
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        if let Some(store) = self.backing.server() {
            store.delete(id).await?;
        }
        count(&self.metrics, SessionMetrics::deleted);
        Ok(())
    }
}
