//! In-memory store: a map from storage key to record, lost on restart.
//! The site's own because the published `MemoryStore` hides its map, so it
//! cannot count, purge or clear.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::RwLock;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::store::{
    AtRest, CREATE_ATTEMPTS, Capability, Inspect, Keyed, SiteStore, WriteOutcome, storage_key,
};

#[derive(Debug, Clone)]
struct Entry {
    data: HashMap<String, Value>,
    expires_at: OffsetDateTime,
    /// Bumped by every keyed swap: the compare-and-swap token.
    version: u64,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    map: Arc<RwLock<HashMap<String, Entry>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn live(entry: &Entry) -> bool {
    entry.expires_at > OffsetDateTime::now_utc()
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut map = self.map.write().await;
        for _ in 0..CREATE_ATTEMPTS {
            let key = storage_key(&record.id);
            if map.get(&key).is_some_and(live) {
                record.id = Id::default();
                continue;
            }
            map.insert(
                key,
                Entry {
                    data: record.data.clone(),
                    expires_at: record.expiry_date,
                    version: 0,
                },
            );
            return Ok(());
        }
        Err(session_store::Error::Backend(
            "memory: no free session id after several attempts".into(),
        ))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_existing(record).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let map = self.map.read().await;
        Ok(map
            .get(&storage_key(id))
            .filter(|e| live(e))
            .map(|e| Record {
                id: *id,
                data: e.data.clone(),
                expiry_date: e.expires_at,
            }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.map.write().await.remove(&storage_key(id));
        Ok(())
    }
}

#[async_trait]
impl SiteStore for MemoryStore {
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome> {
        let mut map = self.map.write().await;
        match map.get_mut(&storage_key(&record.id)) {
            Some(entry) if live(entry) => {
                entry.data = record.data.clone();
                entry.expires_at = record.expiry_date;
                Ok(WriteOutcome::Written)
            }
            _ => Ok(WriteOutcome::Gone),
        }
    }

    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        let mut map = self.map.write().await;
        match map.get_mut(&storage_key(id)) {
            Some(entry) if live(entry) => {
                entry.expires_at = expires_at;
                Ok(WriteOutcome::Written)
            }
            _ => Ok(WriteOutcome::Gone),
        }
    }

    async fn ping(&self) -> session_store::Result<()> {
        Ok(())
    }

    async fn count(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Supported(self.map.read().await.len() as u64))
    }

    async fn count_expired(&self) -> session_store::Result<Capability<u64>> {
        let map = self.map.read().await;
        Ok(Capability::Supported(
            map.values().filter(|e| !live(e)).count() as u64,
        ))
    }

    async fn purge_expired(&self) -> session_store::Result<Capability<u64>> {
        let mut map = self.map.write().await;
        let before = map.len();
        map.retain(|_, e| live(e));
        Ok(Capability::Supported((before - map.len()) as u64))
    }

    async fn clear(&self) -> session_store::Result<Capability<u64>> {
        let mut map = self.map.write().await;
        let n = map.len() as u64;
        map.clear();
        Ok(Capability::Supported(n))
    }

    async fn delete_keyed(&self, key: &str) -> session_store::Result<()> {
        self.map.write().await.remove(key);
        Ok(())
    }

    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>> {
        let map = self.map.read().await;
        Ok(map.get(key).filter(|e| live(e)).map(|e| Keyed {
            version: e.version.to_le_bytes().to_vec(),
            data: e.data.clone(),
            expires_at: e.expires_at,
        }))
    }

    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool> {
        // The write lock makes the compare and the swap one step.
        let mut map = self.map.write().await;
        let current = map.get(key).filter(|e| live(e));
        let version = current.map(|e| e.version);
        if version.map(u64::to_le_bytes).as_ref().map(|v| v.as_slice()) != expected {
            return Ok(false);
        }
        match new {
            Some((data, expires_at)) => {
                map.insert(
                    key.to_owned(),
                    Entry {
                        data: data.clone(),
                        expires_at,
                        version: version.map_or(0, |v| v + 1),
                    },
                );
            }
            None => {
                map.remove(key);
            }
        }
        Ok(true)
    }

    fn inspector(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

#[async_trait]
impl Inspect for MemoryStore {
    async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>> {
        let key = storage_key(id);
        let map = self.map.read().await;
        Ok(map.get(&key).map(|entry| AtRest {
            kind: "memory".into(),
            location: format!("in this process's map, under key {key}"),
            facts: vec![
                ("keys".into(), entry.data.len().to_string()),
                ("survives a restart".into(), "no".into()),
            ],
            content: serde_json::to_string_pretty(&entry.data).ok(),
        }))
    }
}
