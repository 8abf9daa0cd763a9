//! "Log out everywhere": for each signed-in user, an index of their
//! sessions — by fingerprint, never by id — with when each was created and
//! last seen and from which browser.
//!
//! The index is a record in the same store as the sessions, under an id
//! derived with the secret key from the user name (so nobody can present it
//! as a session cookie). Revoking a session removes it from the index; a
//! signed-in session that is not in its user's index is logged out at its
//! next request (fail closed). Updates of one user's index are serialised
//! within an instance; across instances two simultaneous logins of the same
//! user can race, and the loser is logged out (again: fail closed).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::sync::Mutex as AsyncMutex;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use crate::sessions::store::{SiteStore, WriteOutcome, from_unix_ms, unix_ms};

const INDEX: &str = "_index";

/// One session of a user, as the account page lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub user_agent: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    v: u32,
    sessions: BTreeMap<String, Entry>,
}

pub struct Accounts {
    store: Arc<dyn SiteStore>,
    key: [u8; 64],
    /// How long an index outlives its last update: the longest a session can live.
    lifetime: Duration,
    /// `last_seen` moves at most this often (the touch interval).
    seen_every: Duration,
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounts { .. }")
    }
}

impl Accounts {
    pub fn new(
        store: Arc<dyn SiteStore>,
        key: [u8; 64],
        lifetime: Duration,
        seen_every: Duration,
    ) -> Self {
        Self {
            store,
            key,
            lifetime,
            seen_every,
            locks: Mutex::default(),
        }
    }

    /// The index's record id: HMAC(secret, "ws-user" ‖ name), so it cannot
    /// be guessed from the name.
    fn index_id(&self, user: &str) -> Id {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("BUG: HMAC takes any key length");
        mac.update(b"ws-user");
        mac.update(user.as_bytes());
        let bytes = mac.finalize().into_bytes();
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        Id(i128::from_le_bytes(id))
    }

    fn lock(&self, user: &str) -> Arc<AsyncMutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(user.to_owned()).or_default().clone()
    }

    async fn load(&self, user: &str) -> session_store::Result<Index> {
        let Some(record) = self.store.load(&self.index_id(user)).await? else {
            return Ok(Index::default());
        };
        Ok(record
            .data
            .get(INDEX)
            .and_then(|v| serde_json::from_value::<Index>(v.clone()).ok())
            .unwrap_or_default())
    }

    async fn write(&self, user: &str, index: &Index) -> session_store::Result<()> {
        let id = self.index_id(user);
        if index.sessions.is_empty() {
            return self.store.delete(&id).await;
        }
        let mut data = HashMap::new();
        data.insert(
            INDEX.to_owned(),
            serde_json::to_value(index).map_err(|e| session_store::Error::Encode(e.to_string()))?,
        );
        let now = OffsetDateTime::now_utc();
        let mut record = Record {
            id,
            data,
            expiry_date: now + self.lifetime,
        };
        if self.store.save_existing(&record).await? == WriteOutcome::Written {
            return Ok(());
        }
        self.store.create(&mut record).await?;
        if record.id != id {
            // Created meanwhile by another instance: write over it instead.
            self.store.delete(&record.id).await?;
            record.id = id;
            self.store.save_existing(&record).await?;
        }
        Ok(())
    }

    /// A new signed-in session.
    pub async fn add(
        &self,
        user: &str,
        fingerprint: &str,
        user_agent: &str,
    ) -> session_store::Result<()> {
        let lock = self.lock(user);
        let _guard = lock.lock().await;
        let mut index = self.load(user).await?;
        let now = unix_ms(OffsetDateTime::now_utc());
        index.v = 1;
        index.sessions.insert(
            fingerprint.to_owned(),
            Entry {
                created_ms: now,
                last_seen_ms: now,
                user_agent: user_agent.chars().take(200).collect(),
            },
        );
        self.write(user, &index).await
    }

    /// Forgets one session (logout, revoke).
    pub async fn remove(&self, user: &str, fingerprint: &str) -> session_store::Result<bool> {
        let lock = self.lock(user);
        let _guard = lock.lock().await;
        let mut index = self.load(user).await?;
        let removed = index.sessions.remove(fingerprint).is_some();
        if removed {
            self.write(user, &index).await?;
        }
        Ok(removed)
    }

    /// Keeps only `fingerprint` (sign out everywhere else); returns how many went.
    pub async fn keep_only(&self, user: &str, fingerprint: &str) -> session_store::Result<usize> {
        let lock = self.lock(user);
        let _guard = lock.lock().await;
        let mut index = self.load(user).await?;
        let before = index.sessions.len();
        index.sessions.retain(|fp, _| fp == fingerprint);
        let gone = before - index.sessions.len();
        if gone > 0 {
            self.write(user, &index).await?;
        }
        Ok(gone)
    }

    /// Is this session still signed in? Moves `last_seen` when it is older
    /// than the touch interval (as the session's own expiry moves).
    pub async fn check(&self, user: &str, fingerprint: &str) -> session_store::Result<bool> {
        let index = self.load(user).await?;
        let Some(entry) = index.sessions.get(fingerprint) else {
            return Ok(false);
        };
        let now = unix_ms(OffsetDateTime::now_utc());
        let stale = now - entry.last_seen_ms
            > i64::try_from(self.seen_every.as_millis()).unwrap_or(i64::MAX);
        if stale {
            let lock = self.lock(user);
            let _guard = lock.lock().await;
            let mut index = self.load(user).await?;
            if let Some(entry) = index.sessions.get_mut(fingerprint) {
                entry.last_seen_ms = now;
                self.write(user, &index).await?;
            }
        }
        Ok(true)
    }

    /// The user's sessions, most recently seen first.
    pub async fn list(&self, user: &str) -> session_store::Result<Vec<(String, Entry)>> {
        let mut all: Vec<(String, Entry)> = self.load(user).await?.sessions.into_iter().collect();
        all.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.last_seen_ms));
        Ok(all)
    }
}

/// For the page: a stored millisecond time.
pub fn at(ms: i64) -> OffsetDateTime {
    from_unix_ms(ms)
}
