//! The session engine: the middleware, the per-request store, the policy,
//! the per-user session index, the per-visitor lock and the stores.
//!
//! It imports nothing of the site around it: it takes its own small
//! configuration ([`layer::Engine`], [`policy::Policy`], [`StoreOptions`]),
//! reports its own [`error::SessionError`], and lets the site decide how an
//! error becomes a response. Fork the template, keep this folder, delete
//! the demo. Each backend but file and memory sits behind a cargo feature.

pub mod error;
pub mod index;
pub mod info;
pub mod inspect;
pub mod keys;
pub mod layer;
pub mod metrics;
pub mod policy;
pub mod request_store;
pub mod store;
pub mod visitor_lock;

#[cfg(feature = "cookie")]
pub mod cookie;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod database;
pub mod file;
#[cfg(feature = "memcached")]
pub mod memcached;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use store::SiteStore;

/// Which store keeps the sessions. Chosen once, at start-up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    File,
    Database,
    Cookie,
    Redis,
    Memcached,
    Memory,
}

impl Backend {
    pub const ALL: [Backend; 6] = [
        Backend::File,
        Backend::Database,
        Backend::Cookie,
        Backend::Redis,
        Backend::Memcached,
        Backend::Memory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Database => "database",
            Backend::Cookie => "cookie",
            Backend::Redis => "redis",
            Backend::Memcached => "memcached",
            Backend::Memory => "memory",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| {
                format!("unknown backend `{s}` (expected file, database, cookie, redis, memcached or memory)")
            })
    }
}

/// How the cookie backend protects the record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CookieMode {
    /// Encrypted and authenticated (AES-256-GCM): only the server reads it.
    Private,
    /// Signed (HMAC-SHA256): readable by the visitor, tamper-proof.
    Signed,
}

/// How to open the configured server-side store.
#[derive(Debug, Clone)]
pub enum StoreOptions {
    File {
        dir: PathBuf,
        fsync: bool,
    },
    Memory,
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    Database(database::DatabaseOptions),
    Redis {
        /// May hold a password: never printed.
        url: String,
        prefix: String,
        /// A PEM CA to trust for `rediss://` besides the system's roots.
        ca_file: Option<PathBuf>,
    },
    Memcached {
        url: String,
        prefix: String,
    },
}

/// A backend named in the configuration but left out of this build.
#[derive(Debug, thiserror::Error)]
#[error(
    "session.backend = \"{backend}\" is not compiled into this build: rebuild with `--features {feature}` (or the default features)"
)]
pub struct NotCompiled {
    pub backend: &'static str,
    pub feature: &'static str,
}

/// Opens a server-side store.
pub async fn open_store(options: &StoreOptions) -> anyhow::Result<Arc<dyn SiteStore>> {
    use anyhow::Context as _;
    let store: Arc<dyn SiteStore> = match options {
        StoreOptions::File { dir, fsync } => Arc::new(
            file::FileStore::open(dir, *fsync)
                .with_context(|| format!("opening the session folder {}", dir.display()))?,
        ),
        StoreOptions::Memory => Arc::new(memory::MemoryStore::new()),
        // The errors name the kind, never the URL (it may hold a password).
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        StoreOptions::Database(options) => Arc::new(
            database::DatabaseStore::open(options)
                .await
                .context("opening the session database")?,
        ),
        // Both network stores start even when their server is down: requests
        // get 503 until it is reachable, then the store recovers by itself.
        #[cfg(feature = "redis")]
        StoreOptions::Redis {
            url,
            prefix,
            ca_file,
        } => Arc::new(
            redis::RedisStore::open_with_ca(url, prefix, ca_file.as_deref())
                .await
                .context("opening the Redis session store")?,
        ),
        #[cfg(feature = "memcached")]
        StoreOptions::Memcached { url, prefix } => Arc::new(
            memcached::MemcachedStore::open(url, prefix)
                .await
                .context("opening the memcached session store")?,
        ),
        #[allow(unreachable_patterns)]
        StoreOptions::Redis { .. } => {
            return Err(NotCompiled {
                backend: "redis",
                feature: "redis",
            }
            .into());
        }
        #[allow(unreachable_patterns)]
        StoreOptions::Memcached { .. } => {
            return Err(NotCompiled {
                backend: "memcached",
                feature: "memcached",
            }
            .into());
        }
    };
    Ok(store)
}
