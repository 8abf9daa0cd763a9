//! Optional inspection: where and how one session lives at rest, for pages
//! that teach it (the root page's "at rest" panel). A store implements
//! [`Inspect`] and returns itself from `SiteStore::inspector`; a store that
//! does not is still a complete session store.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;
use tower_sessions::session::Id;
use tower_sessions::session_store;

/// Where and how one session lives at rest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AtRest {
    /// One line: "file", "SQLite row", "Redis key", ...
    pub kind: String,
    /// Where: a path inside the store's folder, a table and key, a Redis key.
    pub location: String,
    /// Extra facts as label/value pairs (size, TTL, ...).
    pub facts: Vec<(String, String)>,
    /// The stored bytes as text, when they are worth showing.
    pub content: Option<String>,
}

#[async_trait]
pub trait Inspect: Send + Sync {
    /// Describes the stored form of one session; `None` when absent.
    async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>>;
}

/// A time as the panel shows it: `2026-12-01 15:04:05 UTC`.
pub fn describe_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
