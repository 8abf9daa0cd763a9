//! The per-user session index ("log out everywhere"): for each signed-in
//! user, their sessions — by fingerprint, never by id — with when each was
//! signed in and last seen, and from which browser.
//!
//! The session layer keeps it: a session whose record has a signed-in user
//! (`_user` with a string `name`) must be in that user's index, or it is
//! logged out at once (fail closed), on every request that passes the layer.
//! Signing in adds the session, a new id moves it, logging out removes it,
//! and revoking removes it *and* deletes its record.
//!
//! The index is a record of its own under `hex(SHA-256("ws-user" ‖ name))`:
//! no session id hashes to that key, so no cookie can name it, and no secret
//! goes into it, so rotating keys keeps every index. Every change is a
//! compare-and-swap in the store (retried on conflict), so two instances
//! can never undo each other's revocation. Entries past their session's
//! possible expiry are pruned at each change, and a user keeps at most
//! [`MAX_SESSIONS_PER_USER`]: beyond it the least recently seen is revoked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::session_store;

use super::policy::{Policy, from_unix_ms, unix_ms};
use super::store::SiteStore;

/// The most sessions one user keeps; signing in once more revokes the least
/// recently seen.
pub const MAX_SESSIONS_PER_USER: usize = 50;

/// How many times a conflicting change is retried before giving up.
const ATTEMPTS: usize = 16;

const INDEX: &str = "_index";

/// One session of a user, as the account page lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The session's storage key, to delete its record on revocation (a
    /// hash of the id: it cannot be replayed as a cookie).
    pub key: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// The latest the session can still be alive; pruned after this.
    pub expires_ms: i64,
    pub user_agent: String,
}

impl Entry {
    pub fn created(&self) -> OffsetDateTime {
        from_unix_ms(self.created_ms)
    }

    pub fn last_seen(&self) -> OffsetDateTime {
        from_unix_ms(self.last_seen_ms)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    v: u32,
    sessions: BTreeMap<String, Entry>,
}

/// The user a session's `_user` value names: a signed-in session is one
/// whose `_user` is an object with a string `name`.
pub fn user_name(user: &Value) -> Option<&str> {
    user.get("name")?.as_str()
}

/// Who a signed-in session is, as the index knows it.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub user: &'a str,
    pub fingerprint: &'a str,
    pub key: &'a str,
    pub created_at: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub struct UserIndex {
    store: Arc<dyn SiteStore>,
    policy: Arc<Policy>,
    /// `last_seen` moves at most this often.
    seen_every: Duration,
}

impl UserIndex {
    pub fn new(store: Arc<dyn SiteStore>, policy: Arc<Policy>) -> Self {
        let seen_every = policy.touch_interval.max(Duration::from_secs(1));
        Self {
            store,
            policy,
            seen_every,
        }
    }

    fn key(user: &str) -> String {
        let digest = Sha256::new()
            .chain_update(b"ws-user")
            .chain_update(user.as_bytes())
            .finalize();
        super::store::lower_hex(&digest)
    }

    /// The latest a session seen now can still be alive: it is extended
    /// only by a request that passes the layer, which refreshes `last_seen`
    /// whenever it is older than `seen_every`.
    fn expires_ms(&self, now: OffsetDateTime, created_at: Option<OffsetDateTime>) -> i64 {
        let mut until = now + self.policy.idle + self.seen_every;
        if let (Some(absolute), Some(created)) = (self.policy.absolute, created_at) {
            until = until.min(created + absolute);
        }
        unix_ms(until)
    }

    /// Applies `change` to the user's index atomically, retrying on
    /// conflict. `change` returns whether it changed anything, and may be
    /// called more than once.
    async fn update<R>(
        &self,
        user: &str,
        mut change: impl FnMut(&mut Index) -> (bool, R),
    ) -> session_store::Result<R> {
        let key = Self::key(user);
        for _ in 0..ATTEMPTS {
            let stored = self.store.load_keyed(&key).await?;
            let mut index = stored
                .as_ref()
                .and_then(|k| k.data.get(INDEX))
                .and_then(|v| serde_json::from_value::<Index>(v.clone()).ok())
                .unwrap_or_default();
            let now = unix_ms(self.policy.now());
            let before = index.sessions.len();
            index.sessions.retain(|_, e| e.expires_ms > now);
            let pruned = index.sessions.len() != before;
            let (changed, result) = change(&mut index);
            if !changed && !pruned {
                return Ok(result);
            }
            index.v = 1;
            let new = match index.sessions.values().map(|e| e.expires_ms).max() {
                None => None,
                Some(latest) => {
                    let value = serde_json::to_value(&index)
                        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
                    Some((
                        HashMap::from([(INDEX.to_owned(), value)]),
                        from_unix_ms(latest),
                    ))
                }
            };
            let expected = stored.as_ref().map(|k| k.version.as_slice());
            if self
                .store
                .swap_keyed(&key, expected, new.as_ref().map(|(d, e)| (d, *e)))
                .await?
            {
                return Ok(result);
            }
        }
        Err(session_store::Error::Backend(
            "the user's session index kept changing; try again".into(),
        ))
    }

    async fn load(&self, user: &str) -> session_store::Result<Index> {
        let stored = self.store.load_keyed(&Self::key(user)).await?;
        Ok(stored
            .and_then(|k| k.data.get(INDEX).cloned())
            .and_then(|v| serde_json::from_value::<Index>(v).ok())
            .unwrap_or_default())
    }

    /// Is this session still signed in? Moves its `last_seen` when older
    /// than `seen_every`, only if it is still there.
    pub async fn check(&self, member: &Member<'_>) -> session_store::Result<bool> {
        let index = self.load(member.user).await?;
        let Some(entry) = index.sessions.get(member.fingerprint) else {
            return Ok(false);
        };
        let now = self.policy.now();
        let seen_every = i64::try_from(self.seen_every.as_millis()).unwrap_or(i64::MAX);
        if unix_ms(now) - entry.last_seen_ms < seen_every && entry.expires_ms > unix_ms(now) {
            return Ok(true);
        }
        let expires_ms = self.expires_ms(now, member.created_at);
        self.update(member.user, |index| {
            match index.sessions.get_mut(member.fingerprint) {
                Some(entry) => {
                    entry.last_seen_ms = unix_ms(now);
                    entry.expires_ms = expires_ms;
                    (true, true)
                }
                None => (false, false),
            }
        })
        .await
    }

    /// A session signed in: adds it, revoking the least recently seen
    /// beyond [`MAX_SESSIONS_PER_USER`].
    pub async fn add(&self, member: &Member<'_>, user_agent: &str) -> session_store::Result<()> {
        let now = self.policy.now();
        let entry = Entry {
            key: member.key.to_owned(),
            created_ms: unix_ms(now),
            last_seen_ms: unix_ms(now),
            expires_ms: self.expires_ms(now, member.created_at),
            user_agent: user_agent.chars().take(200).collect(),
        };
        let evicted = self
            .update(member.user, |index| {
                index
                    .sessions
                    .insert(member.fingerprint.to_owned(), entry.clone());
                let mut evicted = Vec::new();
                while index.sessions.len() > MAX_SESSIONS_PER_USER {
                    let oldest = index
                        .sessions
                        .iter()
                        .filter(|(fp, _)| fp.as_str() != member.fingerprint)
                        .min_by_key(|(_, e)| e.last_seen_ms)
                        .map(|(fp, _)| fp.clone());
                    let Some(oldest) = oldest else { break };
                    if let Some(e) = index.sessions.remove(&oldest) {
                        evicted.push(e.key);
                    }
                }
                (true, evicted)
            })
            .await?;
        for key in evicted {
            self.store.delete_keyed(&key).await?;
        }
        Ok(())
    }

    /// The session got a new id: its entry follows. `false` when the old
    /// entry was gone (revoked meanwhile): the new session must not live.
    pub async fn moved(
        &self,
        from_fingerprint: &str,
        to: &Member<'_>,
    ) -> session_store::Result<bool> {
        let now = self.policy.now();
        let expires_ms = self.expires_ms(now, to.created_at);
        self.update(to.user, |index| {
            match index.sessions.remove(from_fingerprint) {
                Some(mut entry) => {
                    entry.key = to.key.to_owned();
                    entry.last_seen_ms = unix_ms(now);
                    entry.expires_ms = expires_ms;
                    index.sessions.insert(to.fingerprint.to_owned(), entry);
                    (true, true)
                }
                None => (false, false),
            }
        })
        .await
    }

    /// Logged out (or the user changed): forgets the entry.
    pub async fn remove(&self, user: &str, fingerprint: &str) -> session_store::Result<()> {
        self.update(user, |index| {
            (index.sessions.remove(fingerprint).is_some(), ())
        })
        .await
    }

    /// Ends another session of the user: removes its entry and deletes its
    /// record. Returns whether there was one.
    pub async fn revoke(&self, user: &str, fingerprint: &str) -> session_store::Result<bool> {
        let removed = self
            .update(user, |index| {
                let gone = index.sessions.remove(fingerprint);
                (gone.is_some(), gone.map(|e| e.key))
            })
            .await?;
        match removed {
            Some(key) => {
                self.store.delete_keyed(&key).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends every session of the user but `keep`; returns how many.
    pub async fn revoke_others(&self, user: &str, keep: &str) -> session_store::Result<usize> {
        let keys = self
            .update(user, |index| {
                let others: Vec<String> = index
                    .sessions
                    .keys()
                    .filter(|fp| fp.as_str() != keep)
                    .cloned()
                    .collect();
                let keys: Vec<String> = others
                    .iter()
                    .filter_map(|fp| index.sessions.remove(fp).map(|e| e.key))
                    .collect();
                (!keys.is_empty(), keys)
            })
            .await?;
        for key in &keys {
            self.store.delete_keyed(key).await?;
        }
        Ok(keys.len())
    }

    /// The user's sessions, most recently seen first.
    pub async fn list(&self, user: &str) -> session_store::Result<Vec<(String, Entry)>> {
        let now = unix_ms(self.policy.now());
        let mut all: Vec<(String, Entry)> = self
            .load(user)
            .await?
            .sessions
            .into_iter()
            .filter(|(_, e)| e.expires_ms > now)
            .collect();
        all.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.last_seen_ms));
        Ok(all)
    }
}
