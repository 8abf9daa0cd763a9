//! Store-level tests of the database backend, through the `SiteStore` trait,
//! against each database kind: SQLite always (a file in a temp folder),
//! PostgreSQL when `TEST_POSTGRES_URL` is set and MariaDB/MySQL when
//! `TEST_MYSQL_URL` is set (each test creates its own database there and
//! drops it at the end, so tests run in parallel).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _};
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};

use websessions::config::{DatabaseSettings, Secret};
use websessions::sessions::database::{DatabaseStore, DbPool, SchemaStatus};
use websessions::sessions::store::{
    Capability, Inspect, SiteStore, WriteOutcome, from_unix_ms, storage_key, unix_ms,
};

// ---------------------------------------------------------------- fixtures

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    MySql,
}

/// One isolated, empty database (no schema yet) and how to reach it.
#[derive(Debug, Clone)]
struct Fx {
    kind: Kind,
    url: String,
}

impl Fx {
    /// A store the way the site opens it (migrates on open).
    async fn store(&self) -> DatabaseStore {
        DatabaseStore::open(&settings(&self.url, true).options())
            .await
            .expect("open the store")
    }
}

fn settings(url: &str, auto_migrate: bool) -> DatabaseSettings {
    DatabaseSettings {
        url: Secret::new(url),
        max_connections: 10,
        auto_migrate,
    }
}

/// The server's admin URL, or `None` after printing the skip line.
fn server_url(kind: Kind) -> Option<String> {
    let (name, var) = match kind {
        Kind::Sqlite => return Some(String::new()),
        Kind::Postgres => ("postgres", "TEST_POSTGRES_URL"),
        Kind::MySql => ("mysql", "TEST_MYSQL_URL"),
    };
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP {name}: {var} not set");
            None
        }
    }
}

fn with_database(url: &str, db: &str) -> String {
    let mut url = url::Url::parse(url).expect("server URL");
    url.set_path(&format!("/{db}"));
    url.to_string()
}

async fn create_database(kind: Kind, admin: &str, db: &str) {
    match kind {
        Kind::Sqlite => {}
        Kind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect");
            conn.execute(format!("CREATE DATABASE {db}").as_str())
                .await
                .expect("create database");
        }
        Kind::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(admin)
                .await
                .expect("connect");
            conn.execute(format!("CREATE DATABASE {db}").as_str())
                .await
                .expect("create database");
        }
    }
}

async fn drop_database(kind: Kind, admin: &str, db: &str) {
    let result = match kind {
        Kind::Sqlite => Ok(()),
        Kind::Postgres => match sqlx::PgConnection::connect(admin).await {
            Ok(mut conn) => conn
                .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
        Kind::MySql => match sqlx::MySqlConnection::connect(admin).await {
            Ok(mut conn) => conn
                .execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        eprintln!("warning: could not drop test database {db}: {e}");
    }
}

/// Runs one scenario on a fresh database of `kind`, then drops that
/// database, whether the scenario passed or panicked.
async fn run<F, Fut>(kind: Kind, scenario: F)
where
    F: FnOnce(Fx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(admin) = server_url(kind) else {
        return;
    };
    let dir = TempDir::new().expect("temp dir");
    let db = format!("ws_{}", uuid::Uuid::new_v4().simple());
    let url = match kind {
        // A missing sub-folder too: the store must create it.
        Kind::Sqlite => format!("sqlite://{}/sub/s.db", dir.path().display()),
        _ => {
            create_database(kind, &admin, &db).await;
            with_database(&admin, &db)
        }
    };
    let outcome = tokio::spawn(scenario(Fx { kind, url })).await;
    drop_database(kind, &admin, &db).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---------------------------------------------------------- raw row access

/// Runs the same expression on whichever pool the store has.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            DbPool::Sqlite($p) => $body,
            DbPool::Postgres($p) => $body,
            DbPool::MySql($p) => $body,
        }
    };
}

/// Every row as stored: (id_hash, data).
async fn raw_rows(store: &DatabaseStore) -> Vec<(String, Vec<u8>)> {
    on_pool!(store.pool(), |p| sqlx::query_as(
        "SELECT id_hash, data FROM sessions"
    )
    .fetch_all(p)
    .await
    .expect("read rows"))
}

async fn raw_count(store: &DatabaseStore, id: &Id) -> i64 {
    let key = storage_key(id);
    on_pool!(store.pool(), |p| {
        let sql = if matches!(store.pool(), DbPool::Postgres(_)) {
            "SELECT COUNT(*) FROM sessions WHERE id_hash = $1"
        } else {
            "SELECT COUNT(*) FROM sessions WHERE id_hash = ?"
        };
        sqlx::query_scalar(sql)
            .bind(key)
            .fetch_one(p)
            .await
            .expect("count row")
    })
}

async fn write_raw_data(store: &DatabaseStore, id: &Id, bytes: &[u8]) {
    let key = storage_key(id);
    let sql = if matches!(store.pool(), DbPool::Postgres(_)) {
        "UPDATE sessions SET data = $1 WHERE id_hash = $2"
    } else {
        "UPDATE sessions SET data = ? WHERE id_hash = ?"
    };
    let rows = on_pool!(store.pool(), |p| sqlx::query(sql)
        .bind(bytes.to_vec())
        .bind(key)
        .execute(p)
        .await
        .expect("corrupt row")
        .rows_affected());
    assert_eq!(rows, 1);
}

// ----------------------------------------------------------------- helpers

/// Expiry `secs` from now, at the millisecond precision the store keeps.
fn in_secs(secs: i64) -> OffsetDateTime {
    from_unix_ms(unix_ms(
        OffsetDateTime::now_utc() + time::Duration::seconds(secs),
    ))
}

fn record(pairs: &[(&str, Value)], expiry: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
        expiry_date: expiry,
    }
}

fn supported(c: Capability<u64>) -> u64 {
    match c {
        Capability::Supported(n) => n,
        Capability::Unsupported(why) => panic!("unsupported: {why}"),
    }
}

// --------------------------------------------------------------- scenarios

async fn crud(fx: Fx) {
    let store = fx.store().await;
    let mut rec = record(&[("a", json!(1))], in_secs(3600));
    let id = rec.id;
    store.create(&mut rec).await.unwrap();
    assert_eq!(rec.id, id, "no conflict: the id is kept");
    assert_eq!(store.load(&id).await.unwrap(), Some(rec.clone()));

    rec.data.insert("b".into(), json!("two"));
    rec.expiry_date = in_secs(7200);
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(store.load(&id).await.unwrap(), Some(rec.clone()));

    // Identical data and expiry: MySQL reports "changed" rows unless
    // CLIENT_FOUND_ROWS is on; this must still count as written.
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
    // The same for a touch that does not move the expiry.
    assert_eq!(
        store.touch(&id, rec.expiry_date).await.unwrap(),
        WriteOutcome::Written
    );

    let later = in_secs(9000);
    assert_eq!(
        store.touch(&id, later).await.unwrap(),
        WriteOutcome::Written
    );
    let loaded = store.load(&id).await.unwrap().expect("still there");
    assert_eq!(loaded.expiry_date, later, "touch moves the expiry");
    assert_eq!(loaded.data, rec.data, "touch keeps the data");

    let at_rest = store.at_rest(&id).await.unwrap().expect("at rest");
    let kind = match fx.kind {
        Kind::Sqlite => "SQLite row",
        Kind::Postgres => "PostgreSQL row",
        Kind::MySql => "MariaDB/MySQL row",
    };
    assert_eq!(at_rest.kind, kind);
    assert_eq!(
        at_rest.location,
        format!("table sessions, id_hash = {}", storage_key(&id))
    );
    assert!(at_rest.facts.iter().any(|(k, _)| k == "data size"));
    assert!(at_rest.facts.iter().any(|(k, _)| k == "expires_at"));

    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(raw_count(&store, &id).await, 0);
    assert!(store.at_rest(&id).await.unwrap().is_none());
    // Deleting what is absent is fine.
    store.delete(&id).await.unwrap();
    store.ping().await.unwrap();
}

async fn create_is_insert_only(fx: Fx) {
    let store = fx.store().await;
    let mut first = record(&[("who", json!("first"))], in_secs(3600));
    store.create(&mut first).await.unwrap();

    let mut second = record(&[("who", json!("second"))], in_secs(3600));
    second.id = first.id;
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id, "a live id is never overwritten");
    assert_eq!(store.load(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.load(&second.id).await.unwrap(), Some(second.clone()));

    // An expired row under the same key is no live session: it may be taken.
    let mut old = record(&[("who", json!("old"))], in_secs(-10));
    store.create(&mut old).await.unwrap();
    let mut new = record(&[("who", json!("new"))], in_secs(3600));
    new.id = old.id;
    store.create(&mut new).await.unwrap();
    assert_eq!(new.id, old.id);
    assert_eq!(store.load(&new.id).await.unwrap(), Some(new.clone()));
    assert_eq!(supported(store.count().await.unwrap()), 3);
}

async fn deleted_stays_deleted(fx: Fx) {
    let store = fx.store().await;
    let mut rec = record(&[("k", json!("v"))], in_secs(3600));
    store.create(&mut rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();

    assert_eq!(store.save_existing(&rec).await.unwrap(), WriteOutcome::Gone);
    assert_eq!(
        store.touch(&rec.id, in_secs(7200)).await.unwrap(),
        WriteOutcome::Gone
    );
    // tower-sessions' own `save` goes through the same update-only path.
    SessionStore::save(&store, &rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
    assert_eq!(raw_count(&store, &rec.id).await, 0);
    assert_eq!(supported(store.count().await.unwrap()), 0);
}

async fn expiry_and_purge(fx: Fx) {
    let store = fx.store().await;
    let mut live = Vec::new();
    for n in 0..3 {
        let mut rec = record(&[("n", json!(n))], in_secs(3600));
        store.create(&mut rec).await.unwrap();
        live.push(rec);
    }
    let mut expired = Vec::new();
    for n in 0..2 {
        let mut rec = record(&[("n", json!(n))], in_secs(-5));
        store.create(&mut rec).await.unwrap();
        expired.push(rec);
    }
    for rec in &expired {
        assert_eq!(store.load(&rec.id).await.unwrap(), None);
        assert_eq!(store.save_existing(rec).await.unwrap(), WriteOutcome::Gone);
        assert_eq!(
            store.touch(&rec.id, in_secs(3600)).await.unwrap(),
            WriteOutcome::Gone,
            "an expired session cannot be revived by a touch"
        );
    }
    assert_eq!(supported(store.count().await.unwrap()), 5);
    assert_eq!(supported(store.count_expired().await.unwrap()), 2);

    assert_eq!(supported(store.purge_expired().await.unwrap()), 2);
    assert_eq!(supported(store.count().await.unwrap()), 3);
    assert_eq!(supported(store.count_expired().await.unwrap()), 0);
    assert_eq!(supported(store.purge_expired().await.unwrap()), 0);
    for rec in &live {
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
    }

    // A session that runs out while stored.
    let mut short = record(&[], from_unix_ms(unix_ms(OffsetDateTime::now_utc()) + 300));
    store.create(&mut short).await.unwrap();
    assert!(store.load(&short.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.load(&short.id).await.unwrap(), None);
    assert_eq!(supported(store.count_expired().await.unwrap()), 1);
}

async fn clear_removes_everything(fx: Fx) {
    let store = fx.store().await;
    for secs in [3600, 3600, -5] {
        let mut rec = record(&[("x", json!(true))], in_secs(secs));
        store.create(&mut rec).await.unwrap();
    }
    assert_eq!(supported(store.clear().await.unwrap()), 3);
    assert_eq!(supported(store.count().await.unwrap()), 0);
    assert!(raw_rows(&store).await.is_empty());
    assert_eq!(supported(store.clear().await.unwrap()), 0);
}

async fn corrupted_row_is_absent(fx: Fx) {
    let store = fx.store().await;
    let mut bad = record(&[("k", json!("v"))], in_secs(3600));
    let mut good = record(&[("k", json!("fine"))], in_secs(3600));
    store.create(&mut bad).await.unwrap();
    store.create(&mut good).await.unwrap();
    write_raw_data(&store, &bad.id, b"\x00\xffnot json{").await;

    assert_eq!(store.load(&bad.id).await.unwrap(), None);
    assert_eq!(store.load(&good.id).await.unwrap(), Some(good.clone()));
    // The page can still show what is there, as text.
    assert!(store.at_rest(&bad.id).await.unwrap().is_some());
}

async fn ids_are_hashed_at_rest(fx: Fx) {
    let store = fx.store().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut rec = record(&[("n", json!(n)), ("user", json!("ada"))], in_secs(3600));
        store.create(&mut rec).await.unwrap();
        ids.push(rec.id);
    }
    let rows = raw_rows(&store).await;
    assert_eq!(rows.len(), ids.len());
    for (id_hash, data) in &rows {
        assert_eq!(id_hash.len(), 64);
        assert!(ids.iter().any(|id| storage_key(id) == *id_hash));
        let data = String::from_utf8_lossy(data);
        for id in &ids {
            let id = id.to_string();
            assert!(!id_hash.contains(&id), "an id in id_hash");
            assert!(!data.contains(&id), "an id in data");
        }
    }
}

async fn migrate_is_idempotent_and_required(fx: Fx) {
    // auto_migrate = false on an empty database: refused, with the fix.
    let err = DatabaseStore::open(&settings(&fx.url, false).options())
        .await
        .expect_err("no schema yet");
    assert!(
        err.to_string().contains("websessions migrate"),
        "message: {err}"
    );

    let store = DatabaseStore::connect(&settings(&fx.url, false).options()).unwrap();
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::Missing);
    let first = store.migrate().await.unwrap();
    assert_eq!(first.applied.len(), 1, "{first:?}");
    assert!(!first.up_to_date());
    let second = store.migrate().await.unwrap();
    assert!(second.up_to_date(), "{second:?}");
    assert_eq!(second.total, 1);
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::UpToDate);

    // Now the strict start-up accepts it, and the store works.
    let strict = DatabaseStore::open(&settings(&fx.url, false).options())
        .await
        .expect("schema is there");
    let mut rec = record(&[], in_secs(60));
    strict.create(&mut rec).await.unwrap();
    assert!(strict.load(&rec.id).await.unwrap().is_some());
}

async fn concurrent_writers(fx: Fx) {
    const TASKS: usize = 50;
    const SAVES: i64 = 20;
    let store = fx.store().await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = record(&[("task", json!(t)), ("n", json!(-1))], in_secs(3600));
            store.create(&mut rec).await.expect("create");
            for n in 0..SAVES {
                rec.data.insert("n".into(), json!(n));
                let outcome = store.save_existing(&rec).await.expect("save");
                assert_eq!(outcome, WriteOutcome::Written);
            }
            rec
        }));
    }
    for task in tasks {
        let rec = task.await.expect("task");
        let loaded = store.load(&rec.id).await.unwrap().expect("present");
        assert_eq!(loaded.data["n"], json!(SAVES - 1));
    }
    assert_eq!(supported(store.count().await.unwrap()), TASKS as u64);
}

// ------------------------------------------------------------------ outage

/// A TCP forwarder that can be cut (every connection dropped, new ones
/// closed at once) and restored, standing in for a database going down.
struct Forwarder {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Forwarder {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let open = open.clone();
            let conns = conns.clone();
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !open.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Self {
            addr,
            open,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The database URL rewritten to go through the forwarder.
async fn through(url: &str) -> (Forwarder, String) {
    let mut parsed = url::Url::parse(url).unwrap();
    let host = parsed.host_str().unwrap().to_owned();
    let port = parsed.port().unwrap_or(if url.starts_with("postgres") {
        5432
    } else {
        3306
    });
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let forwarder = Forwarder::start(upstream).await;
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(forwarder.addr.port())).unwrap();
    (forwarder, parsed.to_string())
}

async fn outage_and_recovery(fx: Fx) {
    let (forwarder, url) = through(&fx.url).await;
    let store = DatabaseStore::open(&settings(&url, true).options())
        .await
        .unwrap();
    let mut rec = record(&[("k", json!("v"))], in_secs(3600));
    store.create(&mut rec).await.unwrap();
    store.ping().await.unwrap();

    forwarder.cut();
    store.ping().await.expect_err("ping while cut");
    let err = store.load(&rec.id).await.expect_err("load while cut");
    assert!(!err.to_string().contains(&rec.id.to_string()));
    store.save_existing(&rec).await.expect_err("save while cut");

    forwarder.restore();
    store.ping().await.expect("ping after restore");
    assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
}

/// Start-up while the server is down: `open` still returns (the site
/// serves 503s), and the migration happens on the first successful use.
async fn down_at_start_up(fx: Fx) {
    let (forwarder, url) = through(&fx.url).await;
    forwarder.cut();
    let store = DatabaseStore::open(&settings(&url, true).options())
        .await
        .expect("an unreachable server does not stop start-up");
    store.ping().await.expect_err("still down");

    forwarder.restore();
    store.ping().await.expect("back, and migrated");
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::UpToDate);
    let mut rec = record(&[], in_secs(60));
    store.create(&mut rec).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_some());
}

/// Same, with `auto_migrate = false`: once reachable, a missing schema is
/// reported as such (and not silently created).
async fn down_at_start_up_strict(fx: Fx) {
    let (forwarder, url) = through(&fx.url).await;
    forwarder.cut();
    let store = DatabaseStore::open(&settings(&url, false).options())
        .await
        .expect("an unreachable server does not stop start-up");
    forwarder.restore();
    let err = store.ping().await.expect_err("schema missing");
    assert!(err.to_string().contains("websessions migrate"), "{err}");
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::Missing);
    store.migrate().await.unwrap();
    store.ping().await.expect("migrated by hand, now fine");
}

// ------------------------------------------------------------- test matrix

macro_rules! scenarios {
    ($module:ident, $kind:expr, [$($scenario:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::run($kind, super::$scenario).await;
                }
            )*
        }
    };
}

scenarios!(
    sqlite,
    super::Kind::Sqlite,
    [
        crud,
        create_is_insert_only,
        deleted_stays_deleted,
        expiry_and_purge,
        clear_removes_everything,
        corrupted_row_is_absent,
        ids_are_hashed_at_rest,
        migrate_is_idempotent_and_required,
        concurrent_writers,
    ]
);

scenarios!(
    postgres,
    super::Kind::Postgres,
    [
        crud,
        create_is_insert_only,
        deleted_stays_deleted,
        expiry_and_purge,
        clear_removes_everything,
        corrupted_row_is_absent,
        ids_are_hashed_at_rest,
        migrate_is_idempotent_and_required,
        concurrent_writers,
        outage_and_recovery,
        down_at_start_up,
        down_at_start_up_strict,
    ]
);

scenarios!(
    mysql,
    super::Kind::MySql,
    [
        crud,
        create_is_insert_only,
        deleted_stays_deleted,
        expiry_and_purge,
        clear_removes_everything,
        corrupted_row_is_absent,
        ids_are_hashed_at_rest,
        migrate_is_idempotent_and_required,
        concurrent_writers,
        outage_and_recovery,
        down_at_start_up,
        down_at_start_up_strict,
    ]
);
