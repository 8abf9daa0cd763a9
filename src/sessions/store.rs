//! The contract every server-side store fulfils, and the pieces they share:
//! the storage key (a hash of the session id, never the id itself) and the
//! stored value (data and expiry, never the id).
//!
//! Every store implements `tower_sessions::SessionStore`, so it also works
//! with tower-sessions' own layer, plus [`SiteStore`]: the operations the
//! site's middleware and the CLI need and that `SessionStore` cannot express
//! (update-only saves that report "gone", expiry-only touches, admin counts).

use std::collections::HashMap;
use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use super::inspect::{AtRest, Inspect};
pub use super::policy::{from_unix_ms, unix_ms};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

/// What an update-only write (save or touch) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The record existed and was written.
    Written,
    /// The record was absent (deleted or expired): nothing was written, and
    /// nothing must be, or a logged-out session would come back.
    Gone,
}

/// A count that a store may be unable to give (memcached cannot enumerate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability<T> {
    Supported(T),
    /// The store cannot do this; the string says why, for people.
    Unsupported(&'static str),
}

/// The site's store operations, beyond `SessionStore`.
///
/// Contract (checked by the conformance suite in `tests/site/conformance`):
/// - `SessionStore::create` is insert-only and retries with a fresh id on
///   conflict; `SessionStore::save` delegates to [`SiteStore::save_existing`].
/// - `load` returns `None` for a missing, expired or undecodable record
///   (the last is logged with a fingerprint, never the id).
/// - `save_existing` and `touch` never create a record.
#[async_trait]
pub trait SiteStore: SessionStore {
    /// Update-only save of the whole record (data and `expiry_date`).
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome>;

    /// Moves the stored expiry only; data written meanwhile is kept.
    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome>;

    /// Can the store be reached right now?
    async fn ping(&self) -> session_store::Result<()>;

    /// How many records are stored (expired ones not yet purged included).
    async fn count(&self) -> session_store::Result<Capability<u64>>;

    /// How many stored records are expired.
    async fn count_expired(&self) -> session_store::Result<Capability<u64>>;

    /// Deletes expired records; returns how many.
    async fn purge_expired(&self) -> session_store::Result<Capability<u64>>;

    /// Deletes every record of this store (its directory, table or prefix
    /// only); returns how many.
    async fn clear(&self) -> session_store::Result<Capability<u64>>;

    /// Deletes the record stored under `key` (a [`storage_key`]): revoking a
    /// session elsewhere knows its storage key, never its id.
    async fn delete_keyed(&self, key: &str) -> session_store::Result<()>;

    /// A live record stored under `key`, with a version token for
    /// [`SiteStore::swap_keyed`]. The per-user session index lives in such
    /// records: its key is not the hash of any session id, so no cookie can
    /// name it.
    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>>;

    /// Atomically replaces the record under `key` if it is still at
    /// `expected` (`None` = absent or expired); `new = None` deletes it.
    /// Returns whether it swapped; the caller reloads and retries if not.
    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool>;

    /// The store's optional "at rest" inspection, for pages that show where
    /// a session lives. A new store needs none.
    fn inspector(&self) -> Option<&dyn Inspect> {
        None
    }
}

/// A record loaded by storage key, with the token that proves which version
/// of it a compare-and-swap replaces.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub version: Vec<u8>,
    pub data: HashMap<String, Value>,
    pub expires_at: OffsetDateTime,
}

/// The key a record is stored under: `hex(SHA-256("ws-id" ‖ id))`.
/// A dump of the store therefore never reveals a usable cookie value.
pub fn storage_key(id: &Id) -> String {
    let digest = Sha256::new()
        .chain_update(b"ws-id")
        .chain_update(id_text(id))
        .finalize();
    lower_hex(&digest)
}

/// The short public name of a session: the first 8 hex digits of
/// `SHA-256("ws-fp" ‖ id)`. Pages and logs show this, never the id.
pub fn fingerprint(id: &Id) -> String {
    let digest = Sha256::new()
        .chain_update(b"ws-fp")
        .chain_update(id_text(id))
        .finalize();
    lower_hex(&digest[..4])
}

/// The id as the cookie carries it (`Id`'s `Display`: 22 characters of
/// URL-safe base64), without allocating: every store operation hashes it.
fn id_text(id: &Id) -> [u8; 22] {
    use base64::Engine as _;
    let mut text = [0; 22];
    // 16 bytes are always 22 characters without padding.
    let _ = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(id.0.to_le_bytes(), &mut text);
    text
}

/// Lower-case hex, as `hex::encode` writes it, in one allocation.
pub fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// How many bytes `serde_json::to_vec(value)` would give, without building
/// them: the size limits count JSON bytes, and a size check need not
/// allocate the document it measures.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)?;
    Ok(count.0)
}

/// The stored value: data and expiry, and deliberately not the id.
#[derive(Debug, Deserialize)]
struct StoredValue {
    /// Expiry as unix milliseconds.
    expires_at_ms: i64,
    data: HashMap<String, Value>,
}

/// Serializes a record's data and expiry (the id is left out).
pub fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    encode_parts(&record.data, record.expiry_date)
}

/// Serializes data and expiry without cloning the data map.
pub fn encode_parts(
    data: &HashMap<String, Value>,
    expiry: OffsetDateTime,
) -> session_store::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        expires_at_ms: i64,
        data: &'a HashMap<String, Value>,
    }
    serde_json::to_vec(&Borrowed {
        expires_at_ms: unix_ms(expiry),
        data,
    })
    .map_err(|e| session_store::Error::Encode(e.to_string()))
}

/// Parses what [`encode`] wrote.
pub fn decode(id: Id, bytes: &[u8]) -> session_store::Result<Record> {
    serde_json::from_slice::<StoredValue>(bytes)
        .map(|value| Record {
            id,
            data: value.data,
            expiry_date: from_unix_ms(value.expires_at_ms),
        })
        .map_err(|e| session_store::Error::Decode(e.to_string()))
}

/// Parses what [`encode_parts`] wrote, for a record addressed by key.
pub fn decode_parts(
    bytes: &[u8],
) -> session_store::Result<(HashMap<String, Value>, OffsetDateTime)> {
    serde_json::from_slice::<StoredValue>(bytes)
        .map(|value| (value.data, from_unix_ms(value.expires_at_ms)))
        .map_err(|e| session_store::Error::Decode(e.to_string()))
}

/// A store error whose message names the backend and the operation, never
/// the session id.
pub fn backend_error(what: &str, err: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(format!("{what}: {err}"))
}

/// How many times `create` draws a fresh id after a conflict before giving up.
/// With 128 random bits a single conflict is already a near impossibility.
pub const CREATE_ATTEMPTS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_key_is_a_hash_not_the_id() {
        let id = Id::default();
        let key = storage_key(&id);
        assert_eq!(key.len(), 64);
        assert!(!key.contains(&id.to_string()));
        assert_eq!(key, storage_key(&id), "stable for one id");
        assert_ne!(key, storage_key(&Id::default()));
    }

    #[test]
    fn keys_and_fingerprints_hash_the_cookie_text_of_the_id() {
        // Records already stored must keep their keys.
        for _ in 0..100 {
            let id = Id::default();
            let hash = |prefix: &[u8]| {
                let mut hasher = Sha256::new();
                hasher.update(prefix);
                hasher.update(id.to_string().as_bytes());
                hex::encode(hasher.finalize())
            };
            assert_eq!(storage_key(&id), hash(b"ws-id"));
            assert_eq!(fingerprint(&id), hash(b"ws-fp")[..8]);
        }
    }

    #[test]
    fn encode_leaves_the_id_out_and_round_trips() {
        let id = Id::default();
        let mut data = HashMap::new();
        data.insert("k".to_owned(), Value::from("v"));
        let expiry = from_unix_ms(unix_ms(OffsetDateTime::now_utc()));
        let record = Record {
            id,
            data,
            expiry_date: expiry,
        };
        let bytes = encode(&record).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains(&id.to_string()));
        assert_eq!(decode(id, &bytes).unwrap(), record);
    }
}
