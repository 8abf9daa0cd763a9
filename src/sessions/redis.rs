//! Redis store (fred): one string key per session, `{prefix}{storage key}`,
//! holding the encoded record and carrying the session's expiry as the key's
//! own expiry (`PXAT` / `PEXPIREAT`), so Redis deletes expired sessions
//! itself.
//!
//! - `create` is `SET NX` (insert-only), `save_existing` is `SET XX`
//!   (update-only) and `touch` is `PEXPIREAT`, which is a no-op on a missing
//!   key: a deleted session is never written back.
//! - Loads read the value and `PTTL` together, because a touch moves the
//!   key's expiry without rewriting the value's copy of it.
//! - The connection is fred's: it reconnects by itself, and every command
//!   has a timeout, so an outage turns into errors (503) within seconds, not
//!   hung requests.
//! - Every command names one key, so each works unchanged on a Redis
//!   Cluster (fred routes it to the master of the key's hash slot). The
//!   admin walks (`count`, `clear`) scan each master in turn, since a
//!   `SCAN` sees only the slots of the node it runs on, and delete key by
//!   key (a multi-key `DEL` across slots is refused by a cluster).
//! - `rediss://` and `rediss-cluster://` connect over TLS (rustls), trusting
//!   the system's roots plus `session.redis.ca_file`; a certificate that
//!   does not verify fails the connection, never falls back to plaintext.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fred::interfaces::{ClusterInterface, EventInterface};
use fred::prelude::{
    ClientLike, Config, Error as FredError, Expiration, KeysInterface, LuaInterface, Pool,
    ReconnectPolicy, ServerConfig, SetOptions, Value as FredValue,
};
use fred::types::config::{TlsConfig, TlsConnector};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::store::{
    AtRest, CREATE_ATTEMPTS, Capability, Inspect, Keyed, SiteStore, WriteOutcome, backend_error,
    decode, decode_parts, encode, encode_parts, fingerprint, from_unix_ms, storage_key, unix_ms,
};

/// Compare-and-swap of one key: ARGV = expected present (1/0), expected
/// bytes, write (1) or delete (0), new bytes, expiry (unix ms).
const SWAP_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[5])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Connections in the pool. Redis pipelines many commands over one
/// connection; two keep one slow reply from stalling everything.
const POOL_SIZE: usize = 2;
/// Opening a TCP connection, and the handshake commands fred sends on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Any one command, including the time it waits for a reconnection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long start-up waits for the first connection before serving anyway.
const STARTUP_WAIT: Duration = Duration::from_secs(2);
/// Keys per `SCAN` page.
const SCAN_COUNT: u32 = 500;
/// Length of a storage key: hex of a SHA-256.
const STORAGE_KEY_LEN: usize = 64;

/// The URL schemes this store accepts (fred's names). A scheme starting
/// with `rediss` means TLS.
const SCHEMES: [&str; 6] = [
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
];

#[derive(Debug, Clone)]
pub struct RedisStore {
    pool: Pool,
    prefix: String,
    /// The last error met while (re)connecting, cleared by a successful
    /// connection: a command that fails meanwhile says *why* (a refused
    /// connection, a certificate that does not verify), not just "timeout".
    connect_error: Arc<Mutex<Option<String>>>,
}

impl RedisStore {
    /// Builds the client and starts connecting in the background. A Redis
    /// that is down does not fail this: commands fail (503) until fred's
    /// reconnection loop gets through.
    pub async fn open(url: &str, prefix: &str) -> session_store::Result<Self> {
        Self::open_with_ca(url, prefix, None).await
    }

    /// Like `open`, trusting `ca_file` (PEM) besides the system's roots for
    /// `rediss://` URLs. A `ca_file` with a plaintext URL is refused: the
    /// operator meant TLS.
    pub async fn open_with_ca(
        url: &str,
        prefix: &str,
        ca_file: Option<&Path>,
    ) -> session_store::Result<Self> {
        let (mut config, tls) = parse_url(url)?;
        if tls {
            config.tls = Some(TlsConfig::from(tls_connector(ca_file)?));
        } else if ca_file.is_some() {
            return Err(backend_error(
                "redis",
                "session.redis.ca_file is set but session.redis.url is not a TLS URL (rediss:// or rediss-cluster://): the connection would be plaintext",
            ));
        }
        let where_ = match &config.server {
            ServerConfig::Clustered { .. } => "Redis Cluster",
            ServerConfig::Sentinel { .. } => "Redis (through Sentinel)",
            _ => "Redis",
        };
        // Apply the reconnection policy to the first connection too, so a
        // site started before Redis recovers when Redis comes up.
        config.fail_fast = false;
        let pool = fred::types::Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = CONNECT_TIMEOUT;
                c.internal_command_timeout = CONNECT_TIMEOUT;
                // One retry after a dropped connection; the command timeout
                // still bounds the whole thing.
                c.max_command_attempts = 2;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            // Unlimited attempts, 100 ms doubling up to 2 s between them.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2000, 2))
            .build_pool(POOL_SIZE)
            .map_err(|e| backend_error("redis", e))?;
        let connect_error = Arc::new(Mutex::new(None));
        for client in pool.clients() {
            // The listeners end when the pool is dropped (their channel closes).
            let slot = connect_error.clone();
            drop(client.on_error(move |(error, _)| {
                *lock(&slot) = Some(error.to_string());
                async { Ok(()) }
            }));
            let slot = connect_error.clone();
            drop(client.on_reconnect(move |_| {
                *lock(&slot) = None;
                async { Ok(()) }
            }));
        }
        // The task runs (and reconnects) for as long as the pool lives.
        drop(pool.connect());
        if tokio::time::timeout(STARTUP_WAIT, pool.wait_for_connect())
            .await
            .map_or(true, |r| r.is_err())
        {
            match lock(&connect_error).clone() {
                Some(error) if is_certificate_error(&error) => tracing::error!(
                    %error,
                    "the {where_} TLS certificate does not verify against the system's roots and session.redis.ca_file; session requests get 503 until it does"
                ),
                Some(error) => tracing::warn!(
                    %error,
                    "{where_} is not reachable yet; session requests get 503 until it is"
                ),
                None => tracing::warn!(
                    "{where_} is not reachable yet; session requests get 503 until it is"
                ),
            }
        }
        Ok(Self {
            pool,
            prefix: prefix.to_owned(),
            connect_error,
        })
    }

    /// Maps a fred error to a store error naming the operation, and the
    /// last connection error when there is one (fred's messages carry no
    /// key, so no hash and certainly no id).
    fn err(&self, what: &'static str) -> impl Fn(FredError) -> session_store::Error + '_ {
        move |e| match lock(&self.connect_error).as_deref() {
            Some(cause) if is_certificate_error(cause) => backend_error(
                &format!("redis {what}"),
                format!("{e} (the server's TLS certificate does not verify: {cause})"),
            ),
            Some(cause) => backend_error(
                &format!("redis {what}"),
                format!("{e} (last connection error: {cause})"),
            ),
            None => backend_error(&format!("redis {what}"), e),
        }
    }

    /// The masters to walk for an admin scan: every primary of a cluster,
    /// or `None` for a single server (or one behind Sentinel).
    fn cluster_primaries(&self) -> Option<Vec<fred::types::config::Server>> {
        let client = self.pool.next();
        if !client.is_clustered() {
            return None;
        }
        client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
    }

    fn key(&self, id: &Id) -> String {
        format!("{}{}", self.prefix, storage_key(id))
    }

    /// Is `key` one of this store's records (and not some other key that
    /// happens to share the prefix)?
    fn is_record_key(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix).is_some_and(|rest| {
            rest.len() == STORAGE_KEY_LEN && rest.bytes().all(|b| b.is_ascii_hexdigit())
        })
    }

    /// Reads the value and its remaining time to live (ms) in one round trip.
    async fn get_with_pttl(&self, key: &str) -> session_store::Result<Option<(Vec<u8>, i64)>> {
        // Both commands name the same key, so they reach the same node.
        let pipeline = self.pool.next().pipeline();
        let _: () = pipeline.get(key).await.map_err(self.err("load"))?;
        let _: () = pipeline.pttl(key).await.map_err(self.err("load"))?;
        let (value, pttl): (Option<Vec<u8>>, i64) =
            pipeline.all().await.map_err(self.err("load"))?;
        // PTTL is -2 when the key vanished between the two commands.
        Ok(value.filter(|_| pttl != -2).map(|v| (v, pttl)))
    }

    /// Walks this store's record keys with `SCAN` (never `KEYS`, which
    /// blocks the server), on every master of a cluster; deletes each page
    /// when `delete` is set. Returns how many keys it found (or deleted).
    async fn scan_keys(&self, what: &'static str, delete: bool) -> session_store::Result<u64> {
        let mut n = 0;
        match self.cluster_primaries() {
            Some(primaries) => {
                let client = self.pool.next();
                for server in primaries {
                    n += self
                        .scan_node(&client.with_cluster_node(server), what, delete)
                        .await?;
                }
            }
            None => n += self.scan_node(self.pool.next(), what, delete).await?,
        }
        Ok(n)
    }

    /// The `SCAN` walk of one node.
    async fn scan_node<C: KeysInterface + Sync>(
        &self,
        node: &C,
        what: &'static str,
        delete: bool,
    ) -> session_store::Result<u64> {
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let mut cursor = "0".to_owned();
        let mut n = 0;
        loop {
            let (next, keys): (String, Vec<String>) = node
                .scan_page(cursor, pattern.clone(), Some(SCAN_COUNT), None)
                .await
                .map_err(self.err(what))?;
            let keys: Vec<String> = keys.into_iter().filter(|k| self.is_record_key(k)).collect();
            if delete && !keys.is_empty() {
                n += self.delete_keys(keys, what).await?;
            } else {
                n += keys.len() as u64;
            }
            if next == "0" {
                return Ok(n);
            }
            cursor = next;
        }
    }

    /// Deletes keys one `DEL` each, in one pipeline: the keys of one page
    /// may sit in different hash slots, and a cluster refuses a multi-key
    /// `DEL` across slots.
    async fn delete_keys(
        &self,
        keys: Vec<String>,
        what: &'static str,
    ) -> session_store::Result<u64> {
        let pipeline = self.pool.next().pipeline();
        for key in &keys {
            let _: () = pipeline.del(key).await.map_err(self.err(what))?;
        }
        let deleted: Vec<u64> = pipeline.all().await.map_err(self.err(what))?;
        Ok(deleted.into_iter().sum())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// rustls reports a certificate it cannot verify as
/// `InvalidCertificate(UnknownIssuer)` (or "invalid peer certificate: …").
fn is_certificate_error(message: &str) -> bool {
    message.to_ascii_lowercase().contains("certificate")
}

/// Parses a Redis URL; says whether it asks for TLS. fred's parse errors
/// may quote the URL, which can hold a password: they are not passed on.
fn parse_url(url: &str) -> session_store::Result<(Config, bool)> {
    let bad = || {
        backend_error(
            "redis",
            "session.redis.url is not a valid Redis URL (redis://, rediss://, redis-cluster://, rediss-cluster://, redis-sentinel:// or rediss-sentinel://)",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !SCHEMES.contains(&scheme) {
        return Err(bad());
    }
    // Parse the plaintext twin of the URL and set TLS up here: fred's own
    // default TLS setup fails outright when any system certificate is
    // unreadable, and cannot take an extra CA.
    let tls = scheme.starts_with("rediss");
    let plain = format!("{}://{rest}", scheme.replacen("rediss", "redis", 1));
    let config = Config::from_url(&plain).map_err(|_| bad())?;
    Ok((config, tls))
}

/// A rustls connector (ring) trusting the system's roots plus `ca_file`.
fn tls_connector(ca_file: Option<&Path>) -> session_store::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system root certificate could not be read");
    }
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        let what = |e: &dyn std::fmt::Display| {
            backend_error(
                "redis",
                format!("session.redis.ca_file {}: {e}", path.display()),
            )
        };
        let pem = std::fs::read(path).map_err(|e| what(&e))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| what(&format!("is not a PEM file of certificates ({e})")))?;
        if certs.is_empty() {
            return Err(what(&"holds no PEM certificate"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| what(&format!("holds a certificate rustls cannot use ({e})")))?;
        }
    }
    if roots.is_empty() {
        return Err(backend_error(
            "redis",
            "no CA to trust for rediss://: the system has no root certificates and session.redis.ca_file is empty",
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| backend_error("redis", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(config))
}

/// Escapes the glob characters of `SCAN MATCH`, so a prefix is taken literally.
fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `SET` answers `OK` when it wrote, nil when NX/XX refused.
fn was_set(reply: &FredValue) -> bool {
    !reply.is_null()
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let bytes = encode(record)?;
        let expiry = Expiration::PXAT(unix_ms(record.expiry_date));
        for _ in 0..CREATE_ATTEMPTS {
            let reply: FredValue = self
                .pool
                .set(
                    self.key(&record.id),
                    bytes.as_slice(),
                    Some(expiry.clone()),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(self.err("create"))?;
            if was_set(&reply) {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(backend_error(
            "redis create",
            "no free session id after several attempts",
        ))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_existing(record).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some((bytes, pttl)) = self.get_with_pttl(&self.key(id)).await? else {
            return Ok(None);
        };
        match decode(*id, &bytes) {
            Ok(mut record) => {
                // The key's expiry is the truth: a touch moves it without
                // rewriting the value.
                if pttl >= 0 {
                    record.expiry_date = from_unix_ms(unix_ms(OffsetDateTime::now_utc()) + pttl);
                }
                Ok(Some(record))
            }
            Err(error) => {
                tracing::warn!(
                    session = %fingerprint(id),
                    %error,
                    "corrupted session in Redis: treating the session as absent"
                );
                Ok(None)
            }
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let _: u64 = self
            .pool
            .del(self.key(id))
            .await
            .map_err(self.err("delete"))?;
        Ok(())
    }
}

#[async_trait]
impl SiteStore for RedisStore {
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome> {
        let bytes = encode(record)?;
        let reply: FredValue = self
            .pool
            .set(
                self.key(&record.id),
                bytes.as_slice(),
                Some(Expiration::PXAT(unix_ms(record.expiry_date))),
                Some(SetOptions::XX),
                false,
            )
            .await
            .map_err(self.err("save"))?;
        Ok(if was_set(&reply) {
            WriteOutcome::Written
        } else {
            WriteOutcome::Gone
        })
    }

    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        // 1 when the key exists (and its expiry moved), 0 when it does not.
        let moved: u64 = self
            .pool
            .pexpire_at(self.key(id), unix_ms(expires_at), None)
            .await
            .map_err(self.err("touch"))?;
        Ok(if moved == 1 {
            WriteOutcome::Written
        } else {
            WriteOutcome::Gone
        })
    }

    async fn ping(&self) -> session_store::Result<()> {
        let _: String = self.pool.ping(None).await.map_err(self.err("ping"))?;
        Ok(())
    }

    async fn count(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Supported(self.scan_keys("count", false).await?))
    }

    async fn count_expired(&self) -> session_store::Result<Capability<u64>> {
        // Redis deletes a key when its PXAT passes, so no stored session is
        // ever expired: there is nothing to count.
        Ok(Capability::Supported(0))
    }

    async fn purge_expired(&self) -> session_store::Result<Capability<u64>> {
        // Likewise nothing to purge: Redis expires keys itself.
        Ok(Capability::Supported(0))
    }

    async fn clear(&self) -> session_store::Result<Capability<u64>> {
        Ok(Capability::Supported(self.scan_keys("clear", true).await?))
    }

    async fn delete_keyed(&self, key: &str) -> session_store::Result<()> {
        let _: u64 = self
            .pool
            .del(format!("{}{key}", self.prefix))
            .await
            .map_err(self.err("delete"))?;
        Ok(())
    }

    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>> {
        let Some((bytes, pttl)) = self.get_with_pttl(&format!("{}{key}", self.prefix)).await?
        else {
            return Ok(None);
        };
        let (data, mut expires_at) = decode_parts(&bytes)?;
        if pttl >= 0 {
            expires_at = from_unix_ms(unix_ms(OffsetDateTime::now_utc()) + pttl);
        }
        Ok(Some(Keyed {
            version: bytes,
            data,
            expires_at,
        }))
    }

    /// A script compares and swaps in one step (Redis runs it atomically);
    /// it touches one key, so it runs on a cluster too.
    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool> {
        let (write, bytes, pxat) = match new {
            Some((data, expires_at)) => (
                "1",
                encode_parts(data, expires_at)?,
                unix_ms(expires_at).to_string(),
            ),
            None => ("0", Vec::new(), String::new()),
        };
        let args: Vec<FredValue> = vec![
            FredValue::from(if expected.is_some() { "1" } else { "0" }),
            FredValue::Bytes(expected.unwrap_or_default().to_vec().into()),
            FredValue::from(write),
            FredValue::Bytes(bytes.into()),
            FredValue::from(pxat),
        ];
        let swapped: i64 = self
            .pool
            .eval(SWAP_SCRIPT, vec![format!("{}{key}", self.prefix)], args)
            .await
            .map_err(self.err("swap"))?;
        Ok(swapped == 1)
    }

    fn inspector(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

#[async_trait]
impl Inspect for RedisStore {
    async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>> {
        let key = self.key(id);
        let Some((bytes, pttl)) = self.get_with_pttl(&key).await? else {
            return Ok(None);
        };
        let ttl = match pttl {
            -1 => "none (the key never expires)".to_owned(),
            ms => format!("{:.1} s (PTTL {ms} ms)", ms as f64 / 1000.0),
        };
        let content = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Ok(Some(AtRest {
            kind: "Redis key".into(),
            location: key,
            facts: vec![
                ("TTL".into(), ttl),
                ("value size".into(), format!("{} bytes", bytes.len())),
            ],
            content: Some(content),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_say_whether_they_ask_for_tls() {
        let (config, tls) = parse_url("rediss://:pw@127.0.0.1:6390").unwrap();
        assert!(tls);
        assert!(matches!(config.server, ServerConfig::Centralized { .. }));
        let (config, tls) =
            parse_url("rediss-cluster://127.0.0.1:7101?node=127.0.0.1:7102").unwrap();
        assert!(tls);
        assert!(matches!(config.server, ServerConfig::Clustered { .. }));
        let (config, tls) = parse_url("redis-cluster://127.0.0.1:7001").unwrap();
        assert!(!tls);
        assert!(matches!(config.server, ServerConfig::Clustered { .. }));
        let (config, _) =
            parse_url("redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=main").unwrap();
        assert!(matches!(config.server, ServerConfig::Sentinel { .. }));
        for bad in [
            "http://127.0.0.1",
            "redis+unix:///tmp/r.sock",
            "127.0.0.1:6379",
            "redis://user:hunter2@",
        ] {
            let error = parse_url(bad).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_ca_file_with_a_plaintext_url_is_refused() {
        let error = RedisStore::open_with_ca(
            "redis://127.0.0.1:6379",
            "x:",
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("plaintext"), "{error}");
    }

    #[tokio::test]
    async fn an_unreadable_ca_file_stops_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        for path in [dir.path().join("missing.pem"), not_pem] {
            let error = RedisStore::open_with_ca("rediss://127.0.0.1:1", "x:", Some(&path))
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains("session.redis.ca_file"), "{error}");
        }
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(escape_glob("app:"), "app:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
