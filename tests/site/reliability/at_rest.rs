//! Ids hashed at rest, on every server-side backend: read what the store
//! holds directly (files, rows, Redis keys and values, memcached items) and
//! find no cookie value in any of it. Redis and memcached are read with
//! the client crates the stores use (fred, async-memcached).

use async_memcached::AsciiProtocol;
use fred::prelude::{Builder, ClientLike, Config, KeysInterface};
use serde_json::json;
use sqlx::{Connection, Row};

use crate::reliability::common::{COOKIE, id_of};
use crate::support::{Kind, TestApp, files_under, spawn_app};

/// Everything the store holds, as (where, bytes) pairs.
async fn dump(app: &TestApp, ids: &[String]) -> Vec<(String, Vec<u8>)> {
    let s = &app.settings.session;
    match app.kind {
        Kind::File => files_under(&s.file.dir)
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap_or_default();
                (p.display().to_string(), bytes)
            })
            .collect(),
        Kind::Sqlite | Kind::Postgres | Kind::Mysql => sql_rows(s.database.url.expose()).await,
        Kind::Redis => redis_dump(s.redis.url.expose(), &s.redis.prefix).await,
        Kind::RedisCluster | Kind::Rediss | Kind::RedissCluster | Kind::RedisSentinel => {
            unreachable!("the at-rest checks run on the single plaintext Redis")
        }
        Kind::Memcached => memcached_dump(&s.memcached.url, &s.memcached.prefix, ids).await,
        Kind::Memory => Vec::new(),
        Kind::Cookie | Kind::CookieSigned => unreachable!("no server state"),
    }
}

async fn sql_rows(url: &str) -> Vec<(String, Vec<u8>)> {
    const SQL: &str = "SELECT id_hash, data FROM sessions";
    let rows: Vec<(String, Vec<u8>)> = if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows = sqlx::query(SQL).fetch_all(&mut c).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    } else if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let rows = sqlx::query(SQL).fetch_all(&mut c).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    } else {
        let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
        let rows = sqlx::query(SQL).fetch_all(&mut c).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    rows.into_iter()
        .map(|(key, data)| (format!("row {key}"), [key.into_bytes(), data].concat()))
        .collect()
}

/// Every key under `prefix` and its value, read with a plain fred client.
async fn redis_dump(url: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let redis = Builder::from_config(Config::from_url(url).unwrap())
        .build()
        .unwrap();
    redis.init().await.unwrap();
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<String>) = redis
            .scan_page(cursor, format!("{prefix}*"), Some(500), None)
            .await
            .unwrap();
        keys.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let mut out = Vec::new();
    for key in keys {
        let value: Option<Vec<u8>> = redis.get(&key).await.unwrap();
        let value = value.unwrap_or_default();
        out.push((
            format!("redis key {key}"),
            [key.into_bytes(), value].concat(),
        ));
    }
    redis.quit().await.unwrap();
    out
}

async fn memcached_dump(url: &str, prefix: &str, ids: &[String]) -> Vec<(String, Vec<u8>)> {
    let url = url::Url::parse(url).unwrap();
    let dsn = format!(
        "tcp://{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(11211)
    );
    let mut memcached = async_memcached::Client::new(dsn).await.unwrap();
    // Every key of this test's prefix, as memcached lists them.
    let mut keys = Vec::new();
    let mut listing = memcached.dump_keys().await.unwrap();
    while let Some(Ok(entry)) = listing.next().await {
        let key = percent_decode(&String::from_utf8_lossy(&entry.key));
        if key.starts_with(prefix) {
            keys.push(key);
        }
    }
    drop(listing);
    // Where the listing is off, the keys the store would use.
    for id in ids {
        keys.push(format!(
            "{prefix}{}",
            websessions::sessions::store::storage_key(&id_of(id))
        ));
        // And nothing under the raw id.
        let raw = memcached.get(format!("{prefix}{id}")).await.unwrap();
        assert!(raw.is_none(), "an item keyed by the raw id");
    }
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        if let Some(item) = memcached.get(&key).await.unwrap() {
            let value = item.data.unwrap_or_default();
            out.push((
                format!("memcached item {key}"),
                [key.into_bytes(), value].concat(),
            ));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub async fn ids_hashed_at_rest(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    // Sessions in every state: fresh, cycled, logged in, touched.
    let mut live = Vec::new();
    let mut every = Vec::new();
    for i in 0..4 {
        let v = app.visitor();
        v.set("i", json!(i)).await;
        every.push(v.session_cookie(&COOKIE).unwrap());
        match i {
            1 => {
                assert!(v.post("/api/session/cycle").await.status().is_success());
            }
            2 => {
                let token = v.csrf_token().await;
                let resp = v
                    .post_form("/login", &[("csrf_token", &token), ("name", "ada")])
                    .await;
                assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
            }
            3 => {
                let _ = v.get("/").await;
            }
            _ => {}
        }
        let now = v.session_cookie(&COOKIE).unwrap();
        every.push(now.clone());
        live.push(now);
    }
    every.sort();
    every.dedup();
    let held = dump(&app, &live).await;
    if kind != Kind::Memory {
        let records = held
            .iter()
            .filter(|(_, bytes)| String::from_utf8_lossy(bytes).contains("\"i\""))
            .count();
        assert!(records >= 4, "the dump found the records: {held:?}");
    }
    for (place, bytes) in &held {
        let text = String::from_utf8_lossy(bytes);
        for cookie in &every {
            assert!(
                !place.contains(cookie.as_str()),
                "{kind:?}: a cookie value names {place}"
            );
            assert!(
                !text.contains(cookie.as_str()),
                "{kind:?}: a cookie value is stored in {place}"
            );
        }
    }
    // The records are found by hash.
    for cookie in &live {
        let hash = websessions::sessions::store::storage_key(&id_of(cookie));
        if kind != Kind::Memory {
            assert!(
                held.iter().any(|(place, _)| place.contains(&hash)),
                "{kind:?}: no record under the hash of a live id"
            );
        }
    }
    app.finish().await;
}
