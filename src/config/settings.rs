//! The typed configuration tree. Field names are the config keys: keep them
//! in step with `config/default.toml`, which documents each one.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::sessions::{Backend, CookieMode};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub session: SessionSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub debug_errors: bool,
    /// A connection that has not sent its request headers by then is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request that takes longer is answered 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    pub log_format: LogFormat,
    pub metrics: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub backend: Backend,
    pub cookie_name: String,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    pub extend_on_every_request: bool,
    #[serde(with = "humantime_serde")]
    pub touch_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
    pub serialize_requests: bool,
    pub secure: bool,
    pub same_site: SameSite,
    pub max_value_bytes: usize,
    pub max_session_bytes: usize,
    pub secret_key: Secret,
    pub previous_secret_keys: Vec<Secret>,
    pub file: FileSettings,
    pub database: DatabaseSettings,
    pub cookie: CookieSettings,
    pub redis: RedisSettings,
    pub memcached: MemcachedSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub dir: std::path::PathBuf,
    pub fsync: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
    pub auto_migrate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CookieSettings {
    pub mode: CookieMode,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Secret,
    pub prefix: String,
    /// PEM file of a CA to trust for `rediss://` besides the system's
    /// roots; empty = none.
    pub ca_file: String,
}

impl RedisSettings {
    /// `ca_file`, or `None` when it is empty.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        (!self.ca_file.is_empty()).then(|| std::path::Path::new(&self.ca_file))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemcachedSettings {
    pub url: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// A string that must never be printed: `Debug` shows `***`. It serializes
/// to its real value because figment merges layers through serde; the
/// `config` command masks it by key name instead.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Default for Settings {
    /// The built-in defaults, identical to `config/default.toml`, so the
    /// site still starts when that file is missing.
    fn default() -> Self {
        Settings {
            server: ServerSettings {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                debug_errors: false,
                header_read_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(30),
                max_connections: 1024,
                log_format: LogFormat::Text,
                metrics: true,
            },
            session: SessionSettings {
                backend: Backend::File,
                cookie_name: "session_id".into(),
                idle_timeout: Duration::from_secs(3600),
                absolute_timeout: Duration::from_secs(24 * 3600),
                extend_on_every_request: true,
                touch_interval: Duration::from_secs(1),
                purge_interval: Duration::from_secs(600),
                serialize_requests: false,
                secure: false,
                same_site: SameSite::Lax,
                max_value_bytes: 65_536,
                max_session_bytes: 1_048_576,
                secret_key: Secret::default(),
                previous_secret_keys: Vec::new(),
                file: FileSettings {
                    dir: "data/sessions".into(),
                    fsync: false,
                },
                database: DatabaseSettings {
                    url: Secret::new("sqlite://data/sessions.db"),
                    max_connections: 10,
                    auto_migrate: true,
                },
                cookie: CookieSettings {
                    mode: CookieMode::Private,
                },
                redis: RedisSettings {
                    url: Secret::new("redis://127.0.0.1:6379"),
                    prefix: "websessions:".into(),
                    ca_file: String::new(),
                },
                memcached: MemcachedSettings {
                    url: "memcache://127.0.0.1:11211".into(),
                    prefix: "websessions:".into(),
                },
            },
        }
    }
}

impl SessionSettings {
    /// `touch_interval`, clamped to half the idle timeout so that a session
    /// in use can never expire between two touches.
    pub fn effective_touch_interval(&self) -> Duration {
        self.touch_interval.min(self.idle_timeout / 2)
    }

    /// `None` when `absolute_timeout = "0s"` (no hard cap).
    pub fn absolute(&self) -> Option<Duration> {
        (!self.absolute_timeout.is_zero()).then_some(self.absolute_timeout)
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl DatabaseSettings {
    /// What the engine's database store needs to open.
    pub fn options(&self) -> crate::sessions::database::DatabaseOptions {
        crate::sessions::database::DatabaseOptions {
            url: self.url.expose().to_owned(),
            max_connections: self.max_connections,
            auto_migrate: self.auto_migrate,
        }
    }
}
