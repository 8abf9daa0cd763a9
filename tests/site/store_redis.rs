//! Store-level tests of the Redis store against a real Redis, through the
//! `SiteStore` trait. Set `TEST_REDIS_URL` (e.g. redis://127.0.0.1:6379) to
//! run them; each test uses its own key prefix and ends by clearing it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, Config, Expiration, KeysInterface};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use websessions::sessions::redis::RedisStore;
use websessions::sessions::store::{
    Capability, Inspect, SiteStore, WriteOutcome, from_unix_ms, storage_key, unix_ms,
};

use crate::forwarder::Forwarder;

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP redis: TEST_REDIS_URL not set");
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4())
}

async fn open(url: &str, prefix: &str) -> RedisStore {
    RedisStore::open(url, prefix).await.unwrap()
}

/// A plain client, to look at what the store wrote.
async fn raw(url: &str) -> fred::prelude::Client {
    let client = fred::prelude::Client::new(Config::from_url(url).unwrap(), None, None, None);
    client.init().await.unwrap();
    client
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

fn close_to(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).abs() < time::Duration::milliseconds(500)
}

/// Ends a test: clear the prefix, and prove it is empty.
async fn cleanup(store: &RedisStore) {
    store.clear().await.unwrap();
    assert_eq!(store.count().await.unwrap(), Capability::Supported(0));
}

#[tokio::test]
async fn create_load_save_touch_delete() {
    let Some(url) = redis_url() else { return };
    let store = open(&url, &fresh_prefix()).await;

    let mut rec = record(&[("a", Value::from(1))], 60.0);
    store.create(&mut rec).await.unwrap();
    let loaded = store
        .load(&rec.id)
        .await
        .unwrap()
        .expect("created record loads");
    assert_eq!(loaded.data, rec.data);
    assert!(close_to(loaded.expiry_date, rec.expiry_date));

    rec.data.insert("b".into(), Value::from("two"));
    rec.expiry_date = in_secs(120.0);
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
    let loaded = store.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(loaded.data, rec.data);
    assert!(close_to(loaded.expiry_date, rec.expiry_date));

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
    assert_eq!(at_rest.kind, "Redis key");
    assert!(at_rest.location.ends_with(&storage_key(&rec.id)));

    assert_eq!(store.count().await.unwrap(), Capability::Supported(1));
    assert_eq!(
        store.count_expired().await.unwrap(),
        Capability::Supported(0)
    );
    assert_eq!(
        store.purge_expired().await.unwrap(),
        Capability::Supported(0)
    );

    store.delete(&rec.id).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
    assert!(store.at_rest(&rec.id).await.unwrap().is_none());
    store.ping().await.unwrap();
    cleanup(&store).await;
}

#[tokio::test]
async fn create_is_insert_only() {
    let Some(url) = redis_url() else { return };
    let store = open(&url, &fresh_prefix()).await;

    let mut first = record(&[("who", Value::from("first"))], 60.0);
    store.create(&mut first).await.unwrap();
    let mut second = record(&[("who", Value::from("second"))], 60.0);
    second.id = first.id;
    store.create(&mut second).await.unwrap();

    assert_ne!(second.id, first.id, "a taken id is replaced by a fresh one");
    let a = store.load(&first.id).await.unwrap().unwrap();
    assert_eq!(a.data["who"], "first", "the first record is untouched");
    let b = store.load(&second.id).await.unwrap().unwrap();
    assert_eq!(b.data["who"], "second");
    assert_eq!(store.clear().await.unwrap(), Capability::Supported(2));
    cleanup(&store).await;
}

#[tokio::test]
async fn a_deleted_session_stays_deleted() {
    let Some(url) = redis_url() else { return };
    let store = open(&url, &fresh_prefix()).await;

    let mut rec = record(&[("a", Value::from(1))], 60.0);
    store.create(&mut rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();

    assert_eq!(store.save_existing(&rec).await.unwrap(), WriteOutcome::Gone);
    assert_eq!(
        store.touch(&rec.id, in_secs(60.0)).await.unwrap(),
        WriteOutcome::Gone
    );
    // `SessionStore::save` goes through the same update-only path.
    store.save(&rec).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
    assert_eq!(store.count().await.unwrap(), Capability::Supported(0));
    cleanup(&store).await;
}

#[tokio::test]
async fn idle_expiry_and_touch_extends() {
    let Some(url) = redis_url() else { return };
    let store = open(&url, &fresh_prefix()).await;

    let mut idle = record(&[("k", Value::from("idle"))], 2.0);
    store.create(&mut idle).await.unwrap();
    let mut kept = record(&[("k", Value::from("kept"))], 2.0);
    store.create(&mut kept).await.unwrap();

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let extended = in_secs(4.0);
    assert_eq!(
        store.touch(&kept.id, extended).await.unwrap(),
        WriteOutcome::Written
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert!(store.load(&idle.id).await.unwrap().is_none(), "expired");
    assert_eq!(
        store.touch(&idle.id, in_secs(60.0)).await.unwrap(),
        WriteOutcome::Gone
    );
    let loaded = store
        .load(&kept.id)
        .await
        .unwrap()
        .expect("touch extended it");
    assert!(close_to(loaded.expiry_date, extended));
    cleanup(&store).await;
}

#[tokio::test]
async fn a_corrupted_value_is_absent() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    let store = open(&url, &prefix).await;
    let raw = raw(&url).await;

    let mut rec = record(&[("a", Value::from(1))], 60.0);
    store.create(&mut rec).await.unwrap();
    let key = format!("{prefix}{}", storage_key(&rec.id));
    let _: () = raw
        .set(&key, "not json {", Some(Expiration::KEEPTTL), None, false)
        .await
        .unwrap();

    assert!(store.load(&rec.id).await.unwrap().is_none());
    cleanup(&store).await;
}

#[tokio::test]
async fn ids_are_hashed_at_rest() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    let store = open(&url, &prefix).await;
    let raw = raw(&url).await;

    let mut ids = Vec::new();
    for i in 0..3 {
        let mut rec = record(&[("n", Value::from(i))], 60.0);
        store.create(&mut rec).await.unwrap();
        ids.push(rec.id.to_string());
    }

    let mut cursor = "0".to_owned();
    let mut seen = 0;
    loop {
        let (next, keys): (String, Vec<String>) = raw
            .scan_page(cursor, format!("{prefix}*"), Some(100), None)
            .await
            .unwrap();
        for key in keys {
            let value: String = raw.get(&key).await.unwrap();
            for id in &ids {
                assert!(!key.contains(id.as_str()), "an id in a key");
                assert!(!value.contains(id.as_str()), "an id in a value");
            }
            seen += 1;
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen, 3);
    cleanup(&store).await;
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
    let Some(url) = redis_url() else { return };
    let parsed = url::Url::parse(&url).unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(6379)
    )
    .parse()
    .unwrap();
    let mut forwarder = Forwarder::start(target).await;
    let mut via = parsed.clone();
    via.set_port(Some(forwarder.addr().port())).unwrap();
    via.set_host(Some("127.0.0.1")).unwrap();
    let store = open(via.as_str(), &fresh_prefix()).await;

    let mut rec = record(&[("a", Value::from(1))], 120.0);
    store.create(&mut rec).await.unwrap();
    store.ping().await.unwrap();

    forwarder.cut().await;
    let start = Instant::now();
    assert!(
        store.ping().await.is_err(),
        "ping fails while Redis is cut off"
    );
    assert!(store.load(&rec.id).await.is_err(), "load fails, not None");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "errors came after {:?}",
        start.elapsed()
    );

    forwarder.restore().await;
    recovers(Duration::from_secs(15), || store.ping()).await;
    let loaded = store
        .load(&rec.id)
        .await
        .unwrap()
        .expect("the record survived");
    assert_eq!(loaded.data, rec.data);
    cleanup(&store).await;
}
