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

/// How to open the configured server-side store. A backend whose feature
/// is off has no variant: [`NotCompiled`] stops start-up before this.
#[derive(Debug, Clone)]
pub enum StoreOptions {
    File {
        dir: PathBuf,
        fsync: bool,
    },
    Memory,
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    Database(database::DatabaseOptions),
    #[cfg(feature = "redis")]
    Redis {
        /// May hold a password: never printed.
        url: String,
        prefix: String,
        /// A PEM CA to trust for `rediss://` besides the system's roots.
        ca_file: Option<PathBuf>,
    },
    #[cfg(feature = "memcached")]
    Memcached {
        url: String,
        prefix: String,
    },
}

/// A backend named in the configuration but left out of this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "session.backend = \"{backend}\" is not compiled into this build: rebuild with {features} (or with the default features)"
)]
pub struct NotCompiled {
    pub backend: Backend,
    /// How to bring it in, e.g. `` `--features redis` ``.
    pub features: &'static str,
}

impl NotCompiled {
    /// The error for `backend`, or `None` when this build has it.
    pub fn check(backend: Backend) -> Result<(), NotCompiled> {
        let features = match backend {
            Backend::File | Backend::Memory => return Ok(()),
            Backend::Database
                if cfg!(any(
                    feature = "sqlite",
                    feature = "postgres",
                    feature = "mysql"
                )) =>
            {
                return Ok(());
            }
            Backend::Database => "`--features sqlite`, `--features postgres` or `--features mysql`",
            Backend::Redis if cfg!(feature = "redis") => return Ok(()),
            Backend::Redis => "`--features redis`",
            Backend::Memcached if cfg!(feature = "memcached") => return Ok(()),
            Backend::Memcached => "`--features memcached`",
            Backend::Cookie if cfg!(feature = "cookie") => return Ok(()),
            Backend::Cookie => "`--features cookie`",
        };
        Err(NotCompiled { backend, features })
    }
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
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_left_out_names_the_feature_to_enable() {
        let err = NotCompiled {
            backend: Backend::Redis,
            features: "`--features redis`",
        };
        assert_eq!(
            err.to_string(),
            "session.backend = \"redis\" is not compiled into this build: rebuild with `--features redis` (or with the default features)"
        );
    }

    #[test]
    fn file_and_memory_are_always_built() {
        assert_eq!(NotCompiled::check(Backend::File), Ok(()));
        assert_eq!(NotCompiled::check(Backend::Memory), Ok(()));
    }

    #[test]
    fn the_check_follows_the_features() {
        for (backend, on) in [
            (Backend::Redis, cfg!(feature = "redis")),
            (Backend::Memcached, cfg!(feature = "memcached")),
            (Backend::Cookie, cfg!(feature = "cookie")),
            (
                Backend::Database,
                cfg!(any(
                    feature = "sqlite",
                    feature = "postgres",
                    feature = "mysql"
                )),
            ),
        ] {
            let result = NotCompiled::check(backend);
            assert_eq!(result.is_ok(), on, "{backend}: {result:?}");
            if let Err(err) = result {
                assert!(err.to_string().contains("--features"), "{err}");
            }
        }
    }
}
