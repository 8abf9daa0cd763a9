//! memcached store (async-memcached): one item per session,
//! `{prefix}{storage key}`, holding the encoded record, with the session's
//! expiry as the item's TTL, so memcached drops expired sessions itself.
//!
//! - Written with the meta protocol: `ms … ME` (add: insert-only) for
//!   `create`, `ms … MR` (replace: update-only) for `save_existing`,
//!   `mg … v c` then `ms … C<cas>` for `touch` (the new expiry written
//!   into the value only if nobody wrote meanwhile), and `mg … v t` for
//!   `load`. The value holds the exact expiry and decides; the TTL, rounded
//!   up and padded by a second, only lets memcached drop the item itself.
//! - memcached cannot list its keys, and this store keeps no index of its
//!   own (an index would be a second copy to keep consistent): counting,
//!   purging and clearing are reported as unsupported.
//! - A small pool of its own: a few connections, each behind a mutex,
//!   connected on first use and dropped on any connection error, so the
//!   next use reconnects. A memcached that is down costs a failed connect
//!   per operation (refused at once, or cut off by the timeouts).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_memcached::{Client, Error as McError, MetaProtocol, MetaValue, Status};
use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::store::{
    AtRest, CREATE_ATTEMPTS, Capability, Inspect, Keyed, SiteStore, WriteOutcome, backend_error,
    decode, decode_parts, encode, encode_parts, fingerprint, storage_key, unix_ms,
};

/// The most session data (the serialized data map) memcached can hold:
/// 1 MiB (memcached's default item size limit) minus 1 KiB for the item
/// header, the key and the record's envelope around the data. Start-up
/// caps `max_session_bytes` at it.
pub const MAX_ITEM_BYTES: usize = 1024 * 1024 - 1024;
/// The encoded value may use part of that 1 KiB (expiry, JSON braces); the
/// key (at most 250 bytes) and item header still fit in what is left.
const MAX_VALUE_BYTES: usize = 1024 * 1024 - 512;
/// Connections in the pool.
const POOL_SIZE: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// memcached reads a TTL above 30 days as an absolute unix time.
const MAX_RELATIVE_TTL: i64 = 30 * 24 * 3600;
/// memcached's key length limit.
const MAX_KEY_LEN: usize = 250;
const STORAGE_KEY_LEN: usize = 64;
const UNSUPPORTED_LIST: &str = "memcached cannot list its keys";
const UNSUPPORTED_PURGE: &str = "memcached expires items itself";

pub struct MemcachedStore {
    /// `tcp://host:port`, as async-memcached wants it.
    dsn: String,
    prefix: String,
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
}

/// A `Client` has no `Debug`; the pool is shown by its size only.
impl std::fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedStore")
            .field("dsn", &self.dsn)
            .field("prefix", &self.prefix)
            .field("connections", &self.slots.len())
            .finish()
    }
}

impl MemcachedStore {
    /// Checks the URL and prefix; connects lazily, so a memcached that is
    /// down does not stop start-up (requests get 503 until it is back).
    pub async fn open(url: &str, prefix: &str) -> session_store::Result<Self> {
        let dsn = dsn_from_url(url)?;
        if prefix.len() + STORAGE_KEY_LEN > MAX_KEY_LEN
            || !prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(backend_error(
                "memcached",
                "session.memcached.prefix must be printable ASCII without spaces, at most 186 bytes",
            ));
        }
        let store = Self {
            dsn,
            prefix: prefix.to_owned(),
            slots: (0..POOL_SIZE).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        };
        if let Err(error) = store.ping().await {
            tracing::warn!(%error, "memcached is not reachable yet; session requests get 503 until it is");
        }
        Ok(store)
    }

    fn key(&self, id: &Id) -> String {
        format!("{}{}", self.prefix, storage_key(id))
    }

    /// Takes a free connection (or waits for one), connecting it if needed.
    async fn checkout(&self) -> session_store::Result<Conn<'_>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let mut guard = None;
        for i in 0..n {
            if let Ok(g) = self.slots[(start + i) % n].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => self.slots[start % n].lock().await,
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            let client = tokio::time::timeout(CONNECT_TIMEOUT, Client::new(&self.dsn))
                .await
                .map_err(|_| backend_error("memcached connect", "timed out"))?
                .map_err(|e| backend_error("memcached connect", e))?;
            *guard = Some(client);
        }
        Ok(Conn { guard })
    }
}

/// One checked-out connection.
struct Conn<'a> {
    guard: MutexGuard<'a, Option<Client>>,
}

/// The answers memcached gives to a conditional command that did nothing:
/// not errors, but "exists" or "absent".
fn is_refusal(status: &Status) -> bool {
    matches!(
        status,
        Status::NotStored | Status::NotFound | Status::Exists
    )
}

impl Conn<'_> {
    fn client(&mut self) -> &mut Client {
        self.guard
            .as_mut()
            .expect("BUG: checkout always leaves a connected client")
    }

    /// Turns an operation's outcome into `Ok(Ok(value))`, `Ok(Err(status))`
    /// for a refusal (NS, NF, EX), or a store error. Any other failure may
    /// have left the connection mid-reply, so it is dropped and the next
    /// checkout reconnects.
    fn settle<T>(
        &mut self,
        what: &str,
        outcome: Result<Result<T, McError>, tokio::time::error::Elapsed>,
    ) -> session_store::Result<Result<T, Status>> {
        let error = match outcome {
            Ok(Ok(value)) => return Ok(Ok(value)),
            Ok(Err(McError::Protocol(status))) if is_refusal(&status) => return Ok(Err(status)),
            Ok(Err(e)) => backend_error(&format!("memcached {what}"), e),
            Err(_) => backend_error(&format!("memcached {what}"), "timed out"),
        };
        *self.guard = None;
        Err(error)
    }
}

/// `memcache://host:port` (the config form) → `tcp://host:port`.
fn dsn_from_url(url: &str) -> session_store::Result<String> {
    let bad = || {
        backend_error(
            "memcached",
            "session.memcached.url must look like memcache://host:port",
        )
    };
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "memcache" | "memcached" | "tcp") {
        return Err(bad());
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(bad)?;
    let port = parsed.port().unwrap_or(11211);
    Ok(format!("tcp://{host}:{port}"))
}

/// The TTL token for an expiry, or `None` when it has already passed.
/// Seconds are rounded up, plus one for memcached's clock, which ticks once
/// a second and so may run up to a second behind when the item is stored:
/// an item never vanishes before its session expires (the expiry saved in
/// the value is what ends the session on time). Above 30 days
/// memcached wants an absolute unix time.
fn ttl_for(expires_at: OffsetDateTime) -> Option<i64> {
    let expires_ms = unix_ms(expires_at);
    let left_ms = expires_ms - unix_ms(OffsetDateTime::now_utc());
    if left_ms <= 0 {
        return None;
    }
    let secs = (left_ms + 999) / 1000 + 1;
    Some(if secs > MAX_RELATIVE_TTL {
        (expires_ms + 999) / 1000 + 1
    } else {
        secs
    })
}

fn check_size(bytes: &[u8]) -> session_store::Result<()> {
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(backend_error(
            "memcached",
            format!(
                "the session is {} bytes, over memcached's item limit",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

impl MemcachedStore {
    /// Does `key` hold a readable session whose own expiry has not passed?
    async fn holds_live(&self, key: &str, id: &Id) -> session_store::Result<bool> {
        let Some((bytes, _ttl)) = self.get("save", key).await? else {
            return Ok(false);
        };
        Ok(decode(*id, &bytes).is_ok_and(|r| r.expiry_date > OffsetDateTime::now_utc()))
    }

    /// Deletes an item; `true` when it was there. Used for writes whose
    /// expiry has already passed: storing them would only store a corpse.
    async fn remove(&self, what: &str, key: &str) -> session_store::Result<bool> {
        let mut conn = self.checkout().await?;
        let outcome = tokio::time::timeout(
            OP_TIMEOUT,
            conn.client().meta_delete(key, false, None, None),
        )
        .await;
        Ok(conn.settle(what, outcome)?.is_ok())
    }

    /// Value and seconds left (`mg <key> v t`), `None` when absent.
    async fn get(&self, what: &str, key: &str) -> session_store::Result<Option<(Vec<u8>, i64)>> {
        let mut conn = self.checkout().await?;
        let outcome = tokio::time::timeout(
            OP_TIMEOUT,
            conn.client().meta_get(key, false, None, Some(&["v", "t"])),
        )
        .await;
        Ok(match conn.settle(what, outcome)? {
            Ok(Some(item)) => Some((
                item.data.unwrap_or_default(),
                item.ttl_remaining.unwrap_or(-1),
            )),
            Ok(None) | Err(_) => None,
        })
    }
}

#[async_trait]
impl SessionStore for MemcachedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let bytes = encode(record)?;
        check_size(&bytes)?;
        // Born expired: nothing to store, and loading it finds nothing.
        let Some(ttl) = ttl_for(record.expiry_date) else {
            return Ok(());
        };
        let ttl = format!("T{ttl}");
        for _ in 0..CREATE_ATTEMPTS {
            let key = self.key(&record.id);
            let mut conn = self.checkout().await?;
            let outcome = tokio::time::timeout(
                OP_TIMEOUT,
                conn.client()
                    .meta_set(&key, bytes.as_slice(), false, None, Some(&[&ttl, "ME"])),
            )
            .await;
            match conn.settle("create", outcome)? {
                Ok(_) => return Ok(()),
                // NS: the key is taken (add mode); draw another id.
                Err(_) => record.id = Id::default(),
            }
        }
        Err(backend_error(
            "memcached create",
            "no free session id after several attempts",
        ))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_existing(record).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some((bytes, _ttl)) = self.get("load", &self.key(id)).await? else {
            return Ok(None);
        };
        let record = match decode(*id, &bytes) {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(
                    session = %fingerprint(id),
                    %error,
                    "corrupted session in memcached: treating the session as absent"
                );
                return Ok(None);
            }
        };
        // Saves and touches both write the exact expiry into the value; the
        // item's TTL (whole seconds, padded) only lets memcached drop it
        // a little later. So the value decides.
        if record.expiry_date <= OffsetDateTime::now_utc() {
            return Ok(None);
        }
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.remove("delete", &self.key(id)).await.map(|_| ())
    }
}

#[async_trait]
impl SiteStore for MemcachedStore {
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome> {
        let key = self.key(&record.id);
        let bytes = encode(record)?;
        check_size(&bytes)?;
        let Some(ttl) = ttl_for(record.expiry_date) else {
            return Ok(if self.remove("save", &key).await? {
                WriteOutcome::Written
            } else {
                WriteOutcome::Gone
            });
        };
        // The item outlives its value's expiry by the TTL's padding: a
        // session that has expired meanwhile must not be revived by a save.
        if !self.holds_live(&key, &record.id).await? {
            return Ok(WriteOutcome::Gone);
        }
        let ttl = format!("T{ttl}");
        let mut conn = self.checkout().await?;
        let outcome = tokio::time::timeout(
            OP_TIMEOUT,
            conn.client()
                .meta_set(&key, bytes.as_slice(), false, None, Some(&[&ttl, "MR"])),
        )
        .await;
        // NS: nothing to replace, the session is gone.
        Ok(match conn.settle("save", outcome)? {
            Ok(_) => WriteOutcome::Written,
            Err(_) => WriteOutcome::Gone,
        })
    }

    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        let key = self.key(id);
        let Some(ttl) = ttl_for(expires_at) else {
            return Ok(if self.remove("touch", &key).await? {
                WriteOutcome::Written
            } else {
                WriteOutcome::Gone
            });
        };
        // A TTL alone cannot carry an exact expiry (memcached counts whole
        // seconds on a clock that ticks once a second), and a load that
        // reads a coarse one finds the session due again at once. So a
        // touch rewrites the value with the new expiry, guarded by the CAS
        // token of the value it read: it never overwrites what a concurrent
        // request wrote meanwhile.
        let mut conn = self.checkout().await?;
        let read = tokio::time::timeout(
            OP_TIMEOUT,
            conn.client().meta_get(&key, false, None, Some(&["v", "c"])),
        )
        .await;
        let (bytes, cas) = match conn.settle("touch", read)? {
            Ok(Some(MetaValue {
                data: Some(bytes),
                cas: Some(cas),
                ..
            })) => (bytes, cas),
            _ => return Ok(WriteOutcome::Gone),
        };
        let Ok(mut record) = decode(*id, &bytes) else {
            return Ok(WriteOutcome::Gone);
        };
        // Expired but still inside the TTL's padding: gone, not revived.
        if record.expiry_date <= OffsetDateTime::now_utc() {
            return Ok(WriteOutcome::Gone);
        }
        record.expiry_date = expires_at;
        let bytes = encode(&record)?;
        let (ttl, cas) = (format!("T{ttl}"), format!("C{cas}"));
        let write = tokio::time::timeout(
            OP_TIMEOUT,
            conn.client()
                .meta_set(&key, bytes.as_slice(), false, None, Some(&[&ttl, &cas])),
        )
        .await;
        Ok(match conn.settle("touch", write)? {
            Ok(_) => WriteOutcome::Written,
            // EX: a concurrent write replaced the value, with its own fresh
            // expiry; there is nothing left to extend.
            Err(Status::Exists) => WriteOutcome::Written,
            // NF: deleted meanwhile; it stays deleted.
            Err(_) => WriteOutcome::Gone,
        })
    }

    async fn ping(&self) -> session_store::Result<()> {
        let mut conn = self.checkout().await?;
        let outcome = tokio::time::timeout(OP_TIMEOUT, conn.client().version()).await;
        conn.settle("ping", outcome)?
            .map(|_| ())
            .map_err(|status| backend_error("memcached ping", status))
    }

    async fn count(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Unsupported(UNSUPPORTED_LIST))
    }

    async fn count_expired(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Unsupported(UNSUPPORTED_LIST))
    }

    async fn purge_expired(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Unsupported(UNSUPPORTED_PURGE))
    }

    async fn clear(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Unsupported(UNSUPPORTED_LIST))
    }

    async fn delete_keyed(&self, key: &str) -> session_store::Result<()> {
        self.remove("delete", &format!("{}{key}", self.prefix))
            .await
            .map(|_| ())
    }

    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>> {
        let key = format!("{}{key}", self.prefix);
        let mut conn = self.checkout().await?;
        let read = tokio::time::timeout(
            OP_TIMEOUT,
            conn.client().meta_get(&key, false, None, Some(&["v", "c"])),
        )
        .await;
        let (bytes, cas) = match conn.settle("load", read)? {
            Ok(Some(MetaValue {
                data: Some(bytes),
                cas: Some(cas),
                ..
            })) => (bytes, cas),
            _ => return Ok(None),
        };
        let (data, expires_at) = decode_parts(&bytes)?;
        if expires_at <= OffsetDateTime::now_utc() {
            return Ok(None);
        }
        Ok(Some(Keyed {
            version: cas.to_le_bytes().to_vec(),
            data,
            expires_at,
        }))
    }

    /// memcached's own compare-and-swap: the CAS token of the value read
    /// (`C<token>`), or add-only (`ME`) when it expected none.
    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool> {
        let full = format!("{}{key}", self.prefix);
        let cas = match expected {
            Some(v) => Some(format!(
                "C{}",
                u64::from_le_bytes(
                    v.try_into()
                        .map_err(|_| backend_error("memcached swap", "bad version"))?
                )
            )),
            None => None,
        };
        let new = match new {
            Some((data, expires_at)) => match ttl_for(expires_at) {
                Some(ttl) => Some((encode_parts(data, expires_at)?, format!("T{ttl}"))),
                None => None,
            },
            None => None,
        };
        let mut conn = self.checkout().await?;
        let outcome = match (&cas, &new) {
            (_, Some((bytes, ttl))) => {
                check_size(bytes)?;
                let mode = cas.as_deref().unwrap_or("ME");
                let write = tokio::time::timeout(
                    OP_TIMEOUT,
                    conn.client().meta_set(
                        &full,
                        bytes.as_slice(),
                        false,
                        None,
                        Some(&[ttl, mode]),
                    ),
                )
                .await;
                conn.settle("swap", write)?.map(|_| ())
            }
            (Some(cas), None) => {
                let delete = tokio::time::timeout(
                    OP_TIMEOUT,
                    conn.client().meta_delete(&full, false, None, Some(&[cas])),
                )
                .await;
                conn.settle("swap", delete)?.map(|_| ())
            }
            (None, None) => {
                drop(conn);
                return Ok(self.load_keyed(key).await?.is_none());
            }
        };
        Ok(outcome.is_ok())
    }

    fn inspector(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

#[async_trait]
impl Inspect for MemcachedStore {
    async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>> {
        let key = self.key(id);
        let Some((bytes, ttl_left)) = self.get("read", &key).await? else {
            return Ok(None);
        };
        let left = match ttl_left {
            -1 => "none (the item never expires)".to_owned(),
            s => format!("{s} s"),
        };
        let content = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Ok(Some(AtRest {
            kind: "memcached item".into(),
            location: key,
            facts: vec![
                ("size".into(), format!("{} bytes", bytes.len())),
                ("seconds left".into(), left),
            ],
            content: Some(content),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_urls_become_tcp_dsns() {
        assert_eq!(
            dsn_from_url("memcache://127.0.0.1:11211").unwrap(),
            "tcp://127.0.0.1:11211"
        );
        assert_eq!(
            dsn_from_url("memcache://cache.internal").unwrap(),
            "tcp://cache.internal:11211"
        );
        assert!(dsn_from_url("redis://127.0.0.1:6379").is_err());
        assert!(dsn_from_url("not a url").is_err());
    }

    #[test]
    fn ttls_round_up_with_a_second_of_padding_and_go_absolute_past_30_days() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(ttl_for(now - time::Duration::seconds(1)), None);
        assert_eq!(ttl_for(now + time::Duration::milliseconds(1500)), Some(3));
        let far = now + time::Duration::days(40);
        let absolute = ttl_for(far).unwrap();
        assert!(absolute > MAX_RELATIVE_TTL);
        assert!((absolute - far.unix_timestamp()).abs() <= 2);
    }
}
