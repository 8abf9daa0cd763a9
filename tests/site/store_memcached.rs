//! Store-level tests of the memcached store against a real memcached,
//! through the `SiteStore` trait. Set `TEST_MEMCACHED_URL` (e.g.
//! memcache://127.0.0.1:11211) to run them. memcached cannot list its keys,
//! so each test remembers every id it created, deletes them at the end and
//! proves each one loads as absent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, MetaProtocol};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use websessions::sessions::memcached::{MAX_ITEM_BYTES, MemcachedStore};
use websessions::sessions::store::{
    Capability, Inspect, SiteStore, WriteOutcome, from_unix_ms, storage_key, unix_ms,
};

use crate::forwarder::Forwarder;

fn memcached_url() -> Option<String> {
    match std::env::var("TEST_MEMCACHED_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP memcached: TEST_MEMCACHED_URL not set");
            None
        }
    }
}

fn server_addr(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(11211)
    )
    .parse()
    .unwrap()
}

/// One test's store, with its own prefix, and the ids it must clean up.
struct Fixture {
    store: MemcachedStore,
    prefix: String,
    ids: Vec<Id>,
}

impl Fixture {
    async fn open(url: &str) -> Self {
        let prefix = format!("test:{}:", uuid::Uuid::new_v4());
        let store = MemcachedStore::open(url, &prefix).await.unwrap();
        Self {
            store,
            prefix,
            ids: Vec::new(),
        }
    }

    async fn create(&mut self, record: &mut Record) {
        let asked = record.id;
        self.store.create(record).await.unwrap();
        self.ids.push(asked);
        self.ids.push(record.id);
    }

    fn key(&self, id: &Id) -> String {
        format!("{}{}", self.prefix, storage_key(id))
    }

    /// Ends a test: delete every id it created, and prove each is gone.
    async fn cleanup(self) {
        for id in &self.ids {
            self.store.delete(id).await.unwrap();
        }
        for id in &self.ids {
            assert!(self.store.load(id).await.unwrap().is_none());
        }
    }
}

/// A plain client, to look at (and spoil) what the store wrote.
async fn raw(url: &str) -> async_memcached::Client {
    let addr = server_addr(url);
    async_memcached::Client::new(format!("tcp://{addr}"))
        .await
        .unwrap()
}

fn in_secs(secs: f64) -> OffsetDateTime {
    from_unix_ms(unix_ms(OffsetDateTime::now_utc()) + (secs * 1000.0) as i64)
}

fn record(pairs: &[(&str, Value)], expires_in_secs: f64) -> Record {
    Record {
        id: Id::default(),
        data: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
        expiry_date: in_secs(expires_in_secs),
    }
}

/// memcached keeps TTLs in whole seconds on a coarse clock.
fn close_to(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).abs() < time::Duration::milliseconds(2100)
}

#[tokio::test]
async fn create_load_save_touch_delete() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;
    let store = &fx.store;
    store.ping().await.unwrap();

    let mut rec = record(&[("a", Value::from(1))], 60.0);
    fx.create(&mut rec).await;
    let store = &fx.store;
    let loaded = store
        .load(&rec.id)
        .await
        .unwrap()
        .expect("created record loads");
    assert_eq!(loaded.data, rec.data);
    assert_eq!(
        loaded.expiry_date, rec.expiry_date,
        "exact when not touched"
    );

    rec.data.insert("b".into(), Value::from("two"));
    rec.expiry_date = in_secs(120.0);
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
    let loaded = store.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(loaded.data, rec.data);
    assert_eq!(loaded.expiry_date, rec.expiry_date);

    let later = in_secs(300.0);
    assert_eq!(
        store.touch(&rec.id, later).await.unwrap(),
        WriteOutcome::Written
    );
    let loaded = store.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(loaded.data, rec.data, "a touch keeps the data");
    assert!(
        close_to(loaded.expiry_date, later),
        "a touch moves the expiry"
    );

    let at_rest = store.at_rest(&rec.id).await.unwrap().unwrap();
    assert_eq!(at_rest.kind, "memcached item");
    assert_eq!(at_rest.location, fx.key(&rec.id));

    let unsupported = Capability::Unsupported("memcached cannot list its keys");
    assert_eq!(store.count().await.unwrap(), unsupported);
    assert_eq!(store.count_expired().await.unwrap(), unsupported);
    assert_eq!(store.clear().await.unwrap(), unsupported);
    assert_eq!(
        store.purge_expired().await.unwrap(),
        Capability::Unsupported("memcached expires items itself")
    );

    store.delete(&rec.id).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
    assert!(store.at_rest(&rec.id).await.unwrap().is_none());
    fx.cleanup().await;
}

#[tokio::test]
async fn create_is_insert_only() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;

    let mut first = record(&[("who", Value::from("first"))], 60.0);
    fx.create(&mut first).await;
    let mut second = record(&[("who", Value::from("second"))], 60.0);
    second.id = first.id;
    fx.create(&mut second).await;

    assert_ne!(second.id, first.id, "a taken id is replaced by a fresh one");
    let a = fx.store.load(&first.id).await.unwrap().unwrap();
    assert_eq!(a.data["who"], "first", "the first record is untouched");
    let b = fx.store.load(&second.id).await.unwrap().unwrap();
    assert_eq!(b.data["who"], "second");
    fx.cleanup().await;
}

#[tokio::test]
async fn a_deleted_session_stays_deleted() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;

    let mut rec = record(&[("a", Value::from(1))], 60.0);
    fx.create(&mut rec).await;
    let store = &fx.store;
    store.delete(&rec.id).await.unwrap();

    assert_eq!(store.save_existing(&rec).await.unwrap(), WriteOutcome::Gone);
    assert_eq!(
        store.touch(&rec.id, in_secs(60.0)).await.unwrap(),
        WriteOutcome::Gone
    );
    store.save(&rec).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
    // A write whose expiry has passed deletes rather than stores.
    let mut live = record(&[("a", Value::from(2))], 60.0);
    fx.create(&mut live).await;
    live.expiry_date = in_secs(-1.0);
    assert_eq!(
        fx.store.save_existing(&live).await.unwrap(),
        WriteOutcome::Written
    );
    assert!(fx.store.load(&live.id).await.unwrap().is_none());
    assert_eq!(
        fx.store.save_existing(&live).await.unwrap(),
        WriteOutcome::Gone
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn idle_expiry_and_touch_extends() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;

    let mut idle = record(&[("k", Value::from("idle"))], 2.0);
    fx.create(&mut idle).await;
    let mut kept = record(&[("k", Value::from("kept"))], 2.0);
    fx.create(&mut kept).await;

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let extended = in_secs(4.0);
    assert_eq!(
        fx.store.touch(&kept.id, extended).await.unwrap(),
        WriteOutcome::Written
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;

    assert!(fx.store.load(&idle.id).await.unwrap().is_none(), "expired");
    let loaded = fx
        .store
        .load(&kept.id)
        .await
        .unwrap()
        .expect("touch extended it");
    assert!(close_to(loaded.expiry_date, extended));
    fx.cleanup().await;
}

#[tokio::test]
async fn a_corrupted_value_is_absent() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;
    let mut raw = raw(&url).await;

    let mut rec = record(&[("a", Value::from(1))], 60.0);
    fx.create(&mut rec).await;
    raw.set(fx.key(&rec.id), "not json {", Some(60), None)
        .await
        .unwrap();

    assert!(fx.store.load(&rec.id).await.unwrap().is_none());
    fx.cleanup().await;
}

#[tokio::test]
async fn ids_are_hashed_at_rest() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;
    let mut raw = raw(&url).await;

    let mut ids = Vec::new();
    for i in 0..3 {
        let mut rec = record(&[("n", Value::from(i))], 60.0);
        fx.create(&mut rec).await;
        ids.push(rec.id);
    }
    for id in &ids {
        let key = fx.key(id);
        let item = raw.get(&key).await.unwrap().expect("stored under the hash");
        let value = String::from_utf8(item.data.unwrap()).unwrap();
        for other in &ids {
            let text = other.to_string();
            assert!(!key.contains(&text), "an id in a key");
            assert!(!value.contains(&text), "an id in a value");
        }
    }
    fx.cleanup().await;
}

#[tokio::test]
async fn ttls_over_30_days_are_sent_as_absolute_times() {
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;
    let mut raw = raw(&url).await;

    let forty_days = 40.0 * 24.0 * 3600.0;
    let mut rec = record(&[("long", Value::from(true))], forty_days);
    fx.create(&mut rec).await;
    // Sent as a relative TTL this would be read as a date in 1970, and the
    // item would be gone at once.
    let loaded = fx.store.load(&rec.id).await.unwrap().expect("still there");
    assert_eq!(loaded.expiry_date, rec.expiry_date);
    let item = raw
        .meta_get(fx.key(&rec.id), false, None, Some(&["t"]))
        .await
        .unwrap()
        .unwrap();
    let left = item.ttl_remaining.unwrap();
    assert!((forty_days as i64 - left).abs() < 5, "TTL left: {left} s");

    let sixty_days = in_secs(60.0 * 24.0 * 3600.0);
    assert_eq!(
        fx.store.touch(&rec.id, sixty_days).await.unwrap(),
        WriteOutcome::Written
    );
    let loaded = fx.store.load(&rec.id).await.unwrap().expect("still there");
    assert!(close_to(loaded.expiry_date, sixty_days));
    fx.cleanup().await;
}

#[tokio::test]
async fn the_size_limit_is_memcacheds_item_limit() {
    assert_eq!(MAX_ITEM_BYTES, 1024 * 1024 - 1024);
    let Some(url) = memcached_url() else { return };
    let mut fx = Fixture::open(&url).await;

    // `{"v":"…"}`: the data map serializes to exactly the limit.
    let fill = "x".repeat(MAX_ITEM_BYTES - 8);
    let mut big = record(&[("v", Value::from(fill))], 60.0);
    assert_eq!(serde_json::to_vec(&big.data).unwrap().len(), MAX_ITEM_BYTES);
    fx.create(&mut big).await;
    let loaded = fx.store.load(&big.id).await.unwrap().expect("fits");
    assert_eq!(loaded.data, big.data);

    let mut too_big = record(
        &[("v", Value::from("x".repeat(MAX_ITEM_BYTES + 1024)))],
        60.0,
    );
    let asked = too_big.id;
    assert!(fx.store.create(&mut too_big).await.is_err());
    assert!(fx.store.load(&asked).await.unwrap().is_none());
    fx.store.ping().await.unwrap();
    fx.cleanup().await;
}

/// Polls `f` until it gives `Ok`, for at most `limit`.
async fn recovers<F, Fut, T>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = tower_sessions::session_store::Result<T>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if start.elapsed() > limit => panic!("still failing after {limit:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn outage_gives_errors_fast_and_recovers() {
    let Some(url) = memcached_url() else { return };
    let mut forwarder = Forwarder::start(server_addr(&url)).await;
    let via = format!("memcache://{}", forwarder.addr());
    let mut fx = Fixture::open(&via).await;

    let mut rec = record(&[("a", Value::from(1))], 120.0);
    fx.create(&mut rec).await;
    fx.store.ping().await.unwrap();

    forwarder.cut().await;
    let start = Instant::now();
    assert!(
        fx.store.ping().await.is_err(),
        "ping fails while memcached is cut off"
    );
    assert!(
        fx.store.load(&rec.id).await.is_err(),
        "load fails, not None"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "errors came after {:?}",
        start.elapsed()
    );

    forwarder.restore().await;
    recovers(Duration::from_secs(10), || fx.store.ping()).await;
    let loaded = fx
        .store
        .load(&rec.id)
        .await
        .unwrap()
        .expect("the record survived");
    assert_eq!(loaded.data, rec.data);
    fx.cleanup().await;
}
