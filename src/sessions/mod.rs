//! Sessions: the middleware, the per-request store wrapper, and the stores.
//! The backend is chosen once, at start-up, from `session.backend`;
//! handlers never know which one is in use.

pub mod cookie;
pub mod database;
pub mod file;
pub mod keys;
pub mod layer;
pub mod memcached;
pub mod memory;
pub mod metrics;
pub mod redis;
pub mod request_store;
pub mod serialize;
pub mod store;
pub mod view;

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{Backend, Settings};
use store::SiteStore;

/// Opens the configured server-side store. `None` for the cookie backend,
/// which keeps nothing on the server.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Option<Arc<dyn SiteStore>>> {
    let s = &settings.session;
    let store: Arc<dyn SiteStore> = match s.backend {
        Backend::File => Arc::new(
            file::FileStore::open(&s.file.dir, s.file.fsync)
                .with_context(|| format!("opening the session folder {}", s.file.dir.display()))?,
        ),
        Backend::Memory => Arc::new(memory::MemoryStore::new()),
        Backend::Cookie => return Ok(None),
        // The errors name the kind, never the URL (it may hold a password).
        Backend::Database => Arc::new(
            database::DatabaseStore::open(&s.database)
                .await
                .context("opening the session database")?,
        ),
        // Both network stores start even when their server is down: requests
        // get 503 until it is reachable, then the store recovers by itself.
        Backend::Redis => Arc::new(
            redis::RedisStore::open_with_ca(
                s.redis.url.expose(),
                &s.redis.prefix,
                s.redis.ca_file(),
            )
            .await
            .context("opening the Redis session store")?,
        ),
        Backend::Memcached => Arc::new(
            memcached::MemcachedStore::open(&s.memcached.url, &s.memcached.prefix)
                .await
                .context("opening the memcached session store")?,
        ),
    };
    Ok(Some(store))
}
