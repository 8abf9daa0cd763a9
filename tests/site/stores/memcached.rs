//! The memcached store's fixture: a key prefix of its own on the memcached
//! at `TEST_MEMCACHED_URL`; at rest, the items under that prefix (as
//! memcached's key dump lists them, and under each id the test used), read
//! with a plain async-memcached client. Then what only this store has: no
//! listing, TTLs past 30 days, and memcached's item size limit.

use std::net::SocketAddr;
use std::sync::Arc;

use async_memcached::{AsciiProtocol, MetaProtocol};
use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Mutex;
use tower_sessions::session::Id;
use websessions::sessions::memcached::{MAX_ITEM_BYTES, MemcachedStore};
use websessions::sessions::store::{Capability, SiteStore, WriteOutcome, storage_key};

use super::{Backing, Fx, Traits, in_ms, in_secs, record, run};
use crate::support::servers;

struct Memcached {
    url: String,
    prefix: String,
    raw: Mutex<async_memcached::Client>,
}

fn server_addr(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap();
    let port = url.port().unwrap_or(11211);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap()
        .next()
        .unwrap()
}

/// A plain client, to look at (and spoil) what the store wrote.
pub async fn raw_client(url: &str) -> async_memcached::Client {
    async_memcached::Client::new(format!("tcp://{}", server_addr(url)))
        .await
        .expect("a plain client connects")
}

pub async fn open() -> Option<(Arc<dyn SiteStore>, Box<dyn Backing>)> {
    let url = servers::env_url("memcached", "TEST_MEMCACHED_URL")?;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let store = MemcachedStore::open(&url, &prefix)
        .await
        .expect("open the store");
    let raw = Mutex::new(raw_client(&url).await);
    Some((Arc::new(store), Box::new(Memcached { url, prefix, raw })))
}

impl Memcached {
    fn key(&self, id: &Id) -> String {
        format!("{}{}", self.prefix, storage_key(id))
    }
}

/// memcached's key dump percent-encodes keys.
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Every key under `prefix` that memcached's key dump lists.
pub async fn listed_keys(raw: &mut async_memcached::Client, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut dump = raw.dump_keys().await.expect("lru_crawler metadump");
    while let Some(entry) = dump.next().await {
        let Ok(entry) = entry else { break };
        let key = percent_decode(&String::from_utf8_lossy(&entry.key));
        if key.starts_with(prefix) {
            keys.push(key);
        }
    }
    keys
}

#[async_trait]
impl Backing for Memcached {
    fn traits(&self) -> Traits {
        Traits {
            counts: false,
            keeps_expired: false,
            // The value holds the exact expiry; the TTL only lets memcached
            // drop the item.
            expiry_slack: time::Duration::ZERO,
            at_rest_kind: "memcached item",
            at_rest_facts: &["size", "seconds left"],
        }
    }

    async fn dump(&self, ids: &[Id]) -> Vec<(String, Vec<u8>)> {
        let mut raw = self.raw.lock().await;
        // The listing may lag; the keys the store would use are read too.
        let mut keys = listed_keys(&mut raw, &self.prefix).await;
        keys.extend(ids.iter().map(|id| self.key(id)));
        // And whatever would sit under a raw id.
        keys.extend(ids.iter().map(|id| format!("{}{id}", self.prefix)));
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            if let Some(item) = raw.get(&key).await.unwrap() {
                out.push((
                    format!("memcached item {key}"),
                    item.data.unwrap_or_default(),
                ));
            }
        }
        out
    }

    fn location(&self, id: &Id) -> String {
        self.key(id)
    }

    async fn corrupt(&self, id: &Id, bytes: &[u8]) {
        let mut raw = self.raw.lock().await;
        raw.set(self.key(id), bytes, Some(60), None).await.unwrap();
    }

    fn upstream(&self) -> Option<SocketAddr> {
        Some(server_addr(&self.url))
    }

    async fn open_via(&self, via: SocketAddr) -> Arc<dyn SiteStore> {
        let url = format!("memcache://{via}");
        Arc::new(MemcachedStore::open(&url, &self.prefix).await.unwrap())
    }
}

// ------------------------------------------- what only this store has

suite!(
    run,
    stores: [memcached: Memcached],
    scenarios: [
        counting_purging_and_clearing_are_reported_unsupported,
        ttls_over_30_days_are_sent_as_absolute_times,
        the_size_limit_is_memcacheds_item_limit,
        a_session_expired_inside_the_items_padding_is_not_revived,
    ]
);

async fn counting_purging_and_clearing_are_reported_unsupported(t: &mut Fx) {
    let mut rec = record(&[("a", json!(1))], in_secs(60));
    t.create(&mut rec).await;
    let unsupported = Capability::Unsupported("memcached cannot list its keys");
    assert_eq!(t.store.count().await.unwrap(), unsupported);
    assert_eq!(t.store.count_expired().await.unwrap(), unsupported);
    assert_eq!(t.store.clear().await.unwrap(), unsupported);
    assert_eq!(
        t.store.purge_expired().await.unwrap(),
        Capability::Unsupported("memcached expires items itself")
    );
    assert!(t.store.load(&rec.id).await.unwrap().is_some(), "kept");
}

async fn ttls_over_30_days_are_sent_as_absolute_times(t: &mut Fx) {
    let url = servers::env_url("memcached", "TEST_MEMCACHED_URL").unwrap();
    let mut raw = raw_client(&url).await;
    let forty_days = 40 * 24 * 3600;
    let mut rec = record(&[("long", json!(true))], in_secs(forty_days));
    t.create(&mut rec).await;
    // Sent as a relative TTL this would be read as a date in 1970, and the
    // item would be gone at once.
    t.assert_holds(&rec).await;
    let inspector = t.store.inspector().expect("at rest");
    let key = inspector.at_rest(&rec.id).await.unwrap().unwrap().location;
    assert!(key.ends_with(&storage_key(&rec.id)), "{key}");
    let item = raw
        .meta_get(&key, false, None, Some(&["t"]))
        .await
        .unwrap()
        .expect("the item");
    let left = item.ttl_remaining.unwrap();
    assert!((forty_days - left).abs() < 5, "TTL left: {left} s");

    rec.expiry_date = in_secs(60 * 24 * 3600);
    assert_eq!(
        t.store.touch(&rec.id, rec.expiry_date).await.unwrap(),
        WriteOutcome::Written
    );
    t.assert_holds(&rec).await;
}

/// The item outlives the expiry in its value by the TTL's padding (whole
/// seconds, plus one): in that window a touch or a save finds the session
/// gone, never brings it back.
async fn a_session_expired_inside_the_items_padding_is_not_revived(t: &mut Fx) {
    let url = servers::env_url("memcached", "TEST_MEMCACHED_URL").unwrap();
    let mut raw = raw_client(&url).await;
    let mut rec = record(&[("k", json!("v"))], in_ms(300));
    t.create(&mut rec).await;
    let key = t
        .store
        .inspector()
        .expect("at rest")
        .at_rest(&rec.id)
        .await
        .unwrap();
    let key = key.expect("stored").location;
    // Real time: the value's own expiry must pass while the item (a TTL of
    // two seconds) is still held.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let item = raw.meta_get(&key, false, None, Some(&["v"])).await.unwrap();
    assert!(item.is_some(), "the item is still in memcached");
    assert_eq!(
        t.store.touch(&rec.id, in_secs(60)).await.unwrap(),
        WriteOutcome::Gone,
        "a touch does not revive it"
    );
    rec.expiry_date = in_secs(60);
    assert_eq!(
        t.store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Gone,
        "nor does a save"
    );
    assert!(t.store.load(&rec.id).await.unwrap().is_none());
}

async fn the_size_limit_is_memcacheds_item_limit(t: &mut Fx) {
    assert_eq!(MAX_ITEM_BYTES, 1024 * 1024 - 1024);
    // `{"v":"…"}`: the data map serializes to exactly the limit.
    let fill = "x".repeat(MAX_ITEM_BYTES - 8);
    let mut big = record(&[("v", json!(fill))], in_secs(60));
    assert_eq!(serde_json::to_vec(&big.data).unwrap().len(), MAX_ITEM_BYTES);
    t.create(&mut big).await;
    t.assert_holds(&big).await;

    let mut too_big = record(
        &[("v", json!("x".repeat(MAX_ITEM_BYTES + 1024)))],
        in_secs(60),
    );
    let asked = too_big.id;
    t.remember(asked);
    assert!(t.store.create(&mut too_big).await.is_err());
    assert!(t.store.load(&asked).await.unwrap().is_none());
    t.store.ping().await.unwrap();
}
