//! The memory store's fixture. It holds no bytes at rest: its "at rest" is
//! the entry in its map, which `Inspect` shows.

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::session::Id;
use websessions::sessions::memory::MemoryStore;
use websessions::sessions::store::{Inspect, SiteStore, storage_key};

use super::{Backing, Traits};

struct Memory {
    store: MemoryStore,
}

pub fn open() -> (Arc<dyn SiteStore>, Box<dyn Backing>) {
    let store = MemoryStore::new();
    (Arc::new(store.clone()), Box::new(Memory { store }))
}

#[async_trait]
impl Backing for Memory {
    fn traits(&self) -> Traits {
        Traits {
            counts: true,
            keeps_expired: true,
            expiry_slack: time::Duration::ZERO,
            at_rest_kind: "memory",
            at_rest_facts: &["keys", "survives a restart"],
        }
    }

    /// The map cannot be listed from outside: each id's entry, as shown.
    async fn dump(&self, ids: &[Id]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(at_rest) = self.store.at_rest(id).await.unwrap() {
                let bytes = at_rest.content.unwrap_or_default().into_bytes();
                out.push((at_rest.location, bytes));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn location(&self, id: &Id) -> String {
        format!("in this process's map, under key {}", storage_key(id))
    }

    async fn corrupt(&self, _id: &Id, _bytes: &[u8]) {
        unreachable!("the memory store holds values, not bytes")
    }
}
