//! The store a `tower_sessions::Session` sees during one request.
//!
//! It wraps the backend store and does three things the plain store cannot:
//! - computes every stored expiry as `min(now + idle, created + absolute)`
//!   from the record's `_created_at`, which it sets on first save;
//! - keeps what it loaded (keys, stored expiry, whether the session existed
//!   before this request), so pages show the record *as stored*;
//! - remembers what the last write found (created, written, gone), so the
//!   middleware knows which cookie to send.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::keys::CREATED_AT;
use super::metrics::{SessionMetrics, count};
use super::store::{SiteStore, WriteOutcome};

/// The expiry rules, shared by every request.
#[derive(Debug, Clone)]
pub struct ExpiryPolicy {
    pub idle: Duration,
    /// `None` = no absolute cap.
    pub absolute: Option<Duration>,
}

impl ExpiryPolicy {
    /// `min(now + idle, created + absolute)`.
    pub fn expiry(&self, created_at: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
        let idle = now + self.idle;
        match self.absolute {
            Some(absolute) => idle.min(created_at + absolute),
            None => idle,
        }
    }

    /// The record with its expiry capped at `created + absolute`, or `None`
    /// once that has passed. A store whose clock is coarse (memcached keeps
    /// whole seconds, rounded up) may hand back a session a moment past its
    /// cap; the cap is read from the record's own data, so it holds exactly
    /// whatever the backend.
    pub fn within_absolute_cap(&self, mut record: Record) -> Option<Record> {
        let (Some(absolute), Some(created_at)) = (self.absolute, created_at_of(&record.data))
        else {
            return Some(record);
        };
        let cap = created_at + absolute;
        if cap <= OffsetDateTime::now_utc() {
            return None;
        }
        record.expiry_date = record.expiry_date.min(cap);
        Some(record)
    }
}

/// The record as it was stored when this request loaded it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRecord {
    /// Every key, the site's own (`_…`) included, sorted.
    pub keys: Vec<String>,
    pub expires_at: OffsetDateTime,
    pub created_at: Option<OffsetDateTime>,
}

impl LoadedRecord {
    /// The snapshot of a record as it was stored.
    pub fn of(record: &Record) -> Self {
        let mut keys: Vec<String> = record.data.keys().cloned().collect();
        keys.sort();
        Self {
            keys,
            expires_at: record.expiry_date,
            created_at: created_at_of(&record.data),
        }
    }
}

/// What the last write of this request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastWrite {
    /// A new record was inserted (first save, or after `cycle_id`).
    Created { expires_at: OffsetDateTime },
    /// The existing record was updated.
    Written { expires_at: OffsetDateTime },
    /// The record was gone (deleted or expired meanwhile); nothing written.
    Gone,
    /// Creation was skipped: the session held no data of its own.
    Skipped,
}

#[derive(Debug, Default)]
struct State {
    loaded: Option<Arc<LoadedRecord>>,
    last_write: Option<LastWrite>,
    deleted: bool,
}

#[derive(Debug)]
pub struct RequestStore {
    store: Arc<dyn SiteStore>,
    policy: Arc<ExpiryPolicy>,
    state: Mutex<State>,
    metrics: Option<Arc<SessionMetrics>>,
}

impl RequestStore {
    pub fn new(store: Arc<dyn SiteStore>, policy: Arc<ExpiryPolicy>) -> Self {
        Self {
            store,
            policy,
            state: Mutex::new(State::default()),
            metrics: None,
        }
    }

    /// Counts what this request does to its session.
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

    pub fn deleted(&self) -> bool {
        self.state().deleted
    }

    pub fn backend(&self) -> &Arc<dyn SiteStore> {
        &self.store
    }

    pub fn policy(&self) -> &ExpiryPolicy {
        &self.policy
    }

    /// Expiry-only extension; see `SiteStore::touch`.
    pub async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        let outcome = self.store.touch(id, expires_at).await?;
        if outcome == WriteOutcome::Written {
            count(&self.metrics, SessionMetrics::touched);
        }
        let mut state = self.state();
        state.last_write = Some(match outcome {
            WriteOutcome::Written => LastWrite::Written { expires_at },
            WriteOutcome::Gone => LastWrite::Gone,
        });
        Ok(outcome)
    }
}

pub fn created_at_of(
    record_data: &std::collections::HashMap<String, Value>,
) -> Option<OffsetDateTime> {
    record_data
        .get(CREATED_AT)
        .and_then(Value::as_i64)
        .map(super::store::from_unix_ms)
}

/// Only keys that are the site's bookkeeping: such a session holds nothing.
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
        let now = OffsetDateTime::now_utc();
        // Cycling keeps `_created_at`: a new id never restarts the absolute timeout.
        let created_at = created_at_of(&record.data).unwrap_or_else(|| {
            record.data.insert(
                CREATED_AT.to_owned(),
                Value::from(super::store::unix_ms(now)),
            );
            now
        });
        record.expiry_date = self.policy.expiry(created_at, now);
        self.store.create(record).await?;
        count(&self.metrics, SessionMetrics::created);
        self.state().last_write = Some(LastWrite::Created {
            expires_at: record.expiry_date,
        });
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let now = OffsetDateTime::now_utc();
        let mut record = record.clone();
        let created_at = created_at_of(&record.data).unwrap_or_else(|| {
            record.data.insert(
                CREATED_AT.to_owned(),
                Value::from(super::store::unix_ms(now)),
            );
            now
        });
        record.expiry_date = self.policy.expiry(created_at, now);
        let outcome = self.store.save_existing(&record).await?;
        if outcome == WriteOutcome::Written {
            count(&self.metrics, SessionMetrics::saved);
        }
        self.state().last_write = Some(match outcome {
            WriteOutcome::Written => LastWrite::Written {
                expires_at: record.expiry_date,
            },
            WriteOutcome::Gone => LastWrite::Gone,
        });
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = self
            .store
            .load(id)
            .await?
            .and_then(|record| self.policy.within_absolute_cap(record));
        let mut state = self.state();
        if state.loaded.is_none() {
            state.loaded = record.as_ref().map(|r| Arc::new(LoadedRecord::of(r)));
            if record.is_some() {
                count(&self.metrics, SessionMetrics::loaded);
            }
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store.delete(id).await?;
        count(&self.metrics, SessionMetrics::deleted);
        self.state().deleted = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_the_earlier_of_idle_and_absolute() {
        let policy = ExpiryPolicy {
            idle: Duration::from_secs(3600),
            absolute: Some(Duration::from_secs(7200)),
        };
        let created = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let early = created + Duration::from_secs(60);
        assert_eq!(
            policy.expiry(created, early),
            early + Duration::from_secs(3600)
        );
        let late = created + Duration::from_secs(7000);
        assert_eq!(
            policy.expiry(created, late),
            created + Duration::from_secs(7200)
        );
        let uncapped = ExpiryPolicy {
            absolute: None,
            ..policy
        };
        assert_eq!(
            uncapped.expiry(created, late),
            late + Duration::from_secs(3600)
        );
    }

    fn record_created(ago: Duration, expires_in: Duration) -> Record {
        let now = OffsetDateTime::now_utc();
        let created = now - ago;
        Record {
            id: Id::default(),
            data: [(
                CREATED_AT.to_owned(),
                Value::from(crate::sessions::store::unix_ms(created)),
            )]
            .into(),
            expiry_date: now + expires_in,
        }
    }

    #[test]
    fn a_record_past_its_absolute_cap_loads_as_absent() {
        let policy = ExpiryPolicy {
            idle: Duration::from_secs(2),
            absolute: Some(Duration::from_secs(3)),
        };
        // The store still holds it (a coarse TTL), but the cap has passed.
        let stale = record_created(Duration::from_millis(3500), Duration::from_secs(1));
        assert_eq!(policy.within_absolute_cap(stale), None);
        // Before the cap, the expiry the store reports is trimmed to the cap.
        let fresh = record_created(Duration::from_secs(1), Duration::from_secs(5));
        let cap = created_at_of(&fresh.data).unwrap() + Duration::from_secs(3);
        assert_eq!(policy.within_absolute_cap(fresh).unwrap().expiry_date, cap);
        // No cap configured: untouched.
        let uncapped = ExpiryPolicy {
            absolute: None,
            ..policy
        };
        let old = record_created(Duration::from_secs(3600), Duration::from_secs(1));
        let expiry = old.expiry_date;
        assert_eq!(
            uncapped.within_absolute_cap(old).unwrap().expiry_date,
            expiry
        );
    }
}
