//! Ids hashed at rest, on every server-side backend: read what the store
//! holds directly (files, rows, Redis keys and values, memcached items) and
//! find no cookie value in any of it.

use serde_json::json;
use sqlx::{Connection, Row};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::{COOKIE, id_of};
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

/// A minimal RESP client: enough for KEYS and GET.
pub struct Resp {
    stream: BufReader<TcpStream>,
}

impl Resp {
    pub async fn connect(url: &str) -> Self {
        let url = url::Url::parse(url).unwrap();
        let addr = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(6379)
        );
        Resp {
            stream: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    pub async fn command(&mut self, args: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&out).await.unwrap();
        let line = self.line().await;
        match line.as_bytes()[0] {
            b'*' => {
                let n: i64 = line[1..].parse().unwrap();
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    let head = self.line().await;
                    items.push(self.bulk(&head).await);
                }
                items
            }
            b'$' => vec![self.bulk(&line).await],
            _ => vec![Some(line.into_bytes())],
        }
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        line.trim_end().to_owned()
    }

    async fn bulk(&mut self, head: &str) -> Option<Vec<u8>> {
        assert!(head.starts_with('$'), "a bulk string: {head}");
        let n: i64 = head[1..].parse().unwrap();
        if n < 0 {
            return None;
        }
        let mut buf = vec![0; n as usize + 2];
        self.stream.read_exact(&mut buf).await.unwrap();
        buf.truncate(n as usize);
        Some(buf)
    }
}

async fn redis_dump(url: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut redis = Resp::connect(url).await;
    let keys = redis
        .command(&[b"KEYS", format!("{prefix}*").as_bytes()])
        .await;
    let mut out = Vec::new();
    for key in keys.into_iter().flatten() {
        let value = redis.command(&[b"GET", &key]).await;
        let value = value.into_iter().next().flatten().unwrap_or_default();
        let name = String::from_utf8_lossy(&key).into_owned();
        out.push((format!("redis key {name}"), [key, value].concat()));
    }
    out
}

/// Raw memcached text protocol.
pub async fn memcached_raw(url: &str, command: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(11211)
    );
    let mut stream = BufReader::new(TcpStream::connect(addr).await.unwrap());
    stream
        .get_mut()
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
        let done =
            line == "END\r\n" || line.starts_with("ERROR") || line.starts_with("CLIENT_ERROR");
        out.push_str(&line);
        if done {
            break;
        }
    }
    out
}

async fn memcached_dump(url: &str, prefix: &str, ids: &[String]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    // Every key of this test's prefix, as memcached lists them.
    let listed = memcached_raw(url, "lru_crawler metadump all").await;
    let mut keys: Vec<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("key="))
        .map(|l| l.split(' ').next().unwrap_or("").to_owned())
        .map(|k| percent_decode(&k))
        .filter(|k| k.starts_with(prefix))
        .collect();
    // Where the listing is off, the keys the store would use.
    for id in ids {
        keys.push(format!(
            "{prefix}{}",
            websessions::sessions::store::storage_key(&id_of(id))
        ));
        // And nothing under the raw id.
        let raw = memcached_raw(url, &format!("get {prefix}{id}")).await;
        assert_eq!(raw, "END\r\n", "an item keyed by the raw id");
    }
    keys.sort();
    keys.dedup();
    for key in keys {
        let item = memcached_raw(url, &format!("get {key}")).await;
        out.push((format!("memcached item {key}"), item.into_bytes()));
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
