//! The database store's fixture: SQLite in a temp folder, or a database of
//! its own on the PostgreSQL / MariaDB server (`support::servers`), dropped
//! at the end; at rest, the rows of `sessions`. Then what only this store
//! has: migrations and the schema check, and a server down at start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Connection as _;
use tempfile::TempDir;
use tower_sessions::SessionStore as _;
use tower_sessions::session::Id;
use websessions::config::{DatabaseSettings, Secret};
use websessions::sessions::database::{DatabaseStore, SchemaStatus};
use websessions::sessions::store::{SiteStore, storage_key};

use super::{Backing, Traits, in_secs, record};
use crate::support::{Kind, servers};

/// One empty database (no schema yet) of `kind`, and how to reach it.
struct Isolated {
    kind: Kind,
    url: String,
    /// Holds the SQLite file.
    _dir: TempDir,
    /// A server database to drop: (server, admin URL, name).
    database: Option<(servers::Server, String, String)>,
}

impl Isolated {
    /// `None` after the SKIP line.
    async fn new(kind: Kind) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = match kind {
            // A missing sub-folder too: the store creates it.
            Kind::Sqlite => {
                let url = format!("sqlite://{}/sub/s.db", dir.path().display());
                return Some(Self {
                    kind,
                    url,
                    _dir: dir,
                    database: None,
                });
            }
            Kind::Postgres => servers::Server::Postgres,
            Kind::Mysql => servers::Server::Mysql,
            other => unreachable!("{other:?} is no database"),
        };
        let admin = servers::admin_url(server)?;
        let name = servers::fresh_name();
        servers::create_database(server, &admin, &name).await;
        Some(Self {
            kind,
            url: servers::with_database(&admin, &name),
            _dir: dir,
            database: Some((server, admin, name)),
        })
    }

    /// The same database, through a forwarder listening at `via`.
    fn url_via(&self, via: SocketAddr) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some(&via.ip().to_string())).unwrap();
        url.set_port(Some(via.port())).unwrap();
        url.to_string()
    }

    fn upstream(&self) -> SocketAddr {
        let url = url::Url::parse(&self.url).unwrap();
        let port = url.port().unwrap_or(match self.kind {
            Kind::Postgres => 5432,
            _ => 3306,
        });
        std::net::ToSocketAddrs::to_socket_addrs(&(url.host_str().unwrap(), port))
            .unwrap()
            .next()
            .unwrap()
    }

    async fn drop_database(&mut self) {
        if let Some((server, admin, name)) = self.database.take() {
            servers::drop_database(server, &admin, &name).await;
        }
    }
}

impl Drop for Isolated {
    /// A failed test still drops its database (best effort).
    fn drop(&mut self) {
        if let Some((server, admin, name)) = self.database.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(servers::drop_database(server, &admin, &name));
                }
            })
            .join();
        }
    }
}

fn settings(url: &str, auto_migrate: bool) -> DatabaseSettings {
    DatabaseSettings {
        url: Secret::new(url),
        max_connections: 10,
        auto_migrate,
    }
}

/// A store the way the site opens it (migrating on open).
async fn open_store(url: &str) -> DatabaseStore {
    DatabaseStore::open(&settings(url, true).options())
        .await
        .expect("open the store")
}

struct Database {
    db: Isolated,
    store: DatabaseStore,
}

pub async fn open(kind: Kind) -> Option<(Arc<dyn SiteStore>, Box<dyn Backing>)> {
    let db = Isolated::new(kind).await?;
    let store = open_store(&db.url).await;
    Some((Arc::new(store.clone()), Box::new(Database { db, store })))
}

/// The two placeholders of an SQL statement, in this database's syntax.
fn placeholders(kind: Kind) -> (&'static str, &'static str) {
    if kind == Kind::Postgres {
        ("$1", "$2")
    } else {
        ("?", "?")
    }
}

#[async_trait]
impl Backing for Database {
    fn traits(&self) -> Traits {
        Traits {
            counts: true,
            keeps_expired: true,
            expiry_slack: time::Duration::ZERO,
            at_rest_kind: match self.db.kind {
                Kind::Sqlite => "SQLite row",
                Kind::Postgres => "PostgreSQL row",
                _ => "MariaDB/MySQL row",
            },
            at_rest_facts: &["data size", "expires_at"],
        }
    }

    /// Every row, read over a connection of its own.
    async fn dump(&self, _ids: &[Id]) -> Vec<(String, Vec<u8>)> {
        const SQL: &str = "SELECT id_hash, data FROM sessions";
        let url = self.db.url.as_str();
        let rows: Vec<(String, Vec<u8>)> = match self.db.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut c).await.unwrap()
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut c).await.unwrap()
            }
            _ => {
                let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut c).await.unwrap()
            }
        };
        rows.into_iter()
            .map(|(key, data)| (format!("row id_hash = {key}"), data))
            .collect()
    }

    fn location(&self, id: &Id) -> String {
        format!("table sessions, id_hash = {}", storage_key(id))
    }

    async fn corrupt(&self, id: &Id, bytes: &[u8]) {
        let (a, b) = placeholders(self.db.kind);
        let sql = format!("UPDATE sessions SET data = {a} WHERE id_hash = {b}");
        let url = self.db.url.as_str();
        let rows = match self.db.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                let q = sqlx::query(&sql).bind(bytes.to_vec()).bind(storage_key(id));
                q.execute(&mut c).await.unwrap().rows_affected()
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let q = sqlx::query(&sql).bind(bytes.to_vec()).bind(storage_key(id));
                q.execute(&mut c).await.unwrap().rows_affected()
            }
            _ => {
                let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
                let q = sqlx::query(&sql).bind(bytes.to_vec()).bind(storage_key(id));
                q.execute(&mut c).await.unwrap().rows_affected()
            }
        };
        assert_eq!(rows, 1, "one row corrupted");
    }

    fn upstream(&self) -> Option<SocketAddr> {
        (self.db.kind != Kind::Sqlite).then(|| self.db.upstream())
    }

    async fn open_via(&self, via: SocketAddr) -> Arc<dyn SiteStore> {
        Arc::new(open_store(&self.db.url_via(via)).await)
    }

    async fn finish(&mut self) {
        self.store.close().await;
        self.db.drop_database().await;
    }
}

// ------------------------------------------- what only this store has

/// Runs a scenario on an empty database of `kind`, then drops it.
async fn empty(kind: Kind, scenario: impl AsyncFnOnce(&Isolated)) {
    let Some(mut db) = Isolated::new(kind).await else {
        return;
    };
    scenario(&db).await;
    db.drop_database().await;
}

suite!(
    empty,
    stores: [sqlite: Sqlite, postgres: Postgres, mysql: Mysql],
    scenarios: [migrate_is_idempotent_and_required]
);

suite!(
    empty,
    stores: [postgres: Postgres, mysql: Mysql],
    scenarios: [
        a_server_down_at_start_up_is_migrated_when_it_is_back,
        a_server_down_at_start_up_without_auto_migrate_reports_the_missing_schema,
    ]
);

async fn migrate_is_idempotent_and_required(db: &Isolated) {
    // auto_migrate = false on an empty database: refused, with the fix.
    let err = DatabaseStore::open(&settings(&db.url, false).options())
        .await
        .expect_err("no schema yet");
    assert!(
        err.to_string().contains("websessions migrate"),
        "message: {err}"
    );

    let store = DatabaseStore::connect(&settings(&db.url, false).options()).unwrap();
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::Missing);
    let first = store.migrate().await.unwrap();
    assert_eq!(first.applied.len(), 1, "{first:?}");
    assert!(!first.up_to_date());
    let second = store.migrate().await.unwrap();
    assert!(second.up_to_date(), "{second:?}");
    assert_eq!(second.total, 1);
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::UpToDate);

    // Now the strict start-up accepts it, and the store works.
    let strict = DatabaseStore::open(&settings(&db.url, false).options())
        .await
        .expect("schema is there");
    let mut rec = record(&[], in_secs(60));
    strict.create(&mut rec).await.unwrap();
    assert!(strict.load(&rec.id).await.unwrap().is_some());
    strict.delete(&rec.id).await.unwrap();
    strict.close().await;
    store.close().await;
}

/// `open` still returns while the server is down (the site serves 503s),
/// and the migration happens on the first successful use.
async fn a_server_down_at_start_up_is_migrated_when_it_is_back(db: &Isolated) {
    let mut forwarder = crate::forwarder::Forwarder::start(db.upstream()).await;
    let url = db.url_via(forwarder.addr());
    forwarder.cut().await;
    let store = DatabaseStore::open(&settings(&url, true).options())
        .await
        .expect("an unreachable server does not stop start-up");
    store.ping().await.expect_err("still down");

    forwarder.restore().await;
    store.ping().await.expect("back, and migrated");
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::UpToDate);
    let mut rec = record(&[], in_secs(60));
    store.create(&mut rec).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_some());
    store.delete(&rec.id).await.unwrap();
    store.close().await;
}

/// Same, with `auto_migrate = false`: once reachable, a missing schema is
/// reported as such (and not silently created).
async fn a_server_down_at_start_up_without_auto_migrate_reports_the_missing_schema(db: &Isolated) {
    let mut forwarder = crate::forwarder::Forwarder::start(db.upstream()).await;
    let url = db.url_via(forwarder.addr());
    forwarder.cut().await;
    let store = DatabaseStore::open(&settings(&url, false).options())
        .await
        .expect("an unreachable server does not stop start-up");
    forwarder.restore().await;
    let err = store.ping().await.expect_err("schema missing");
    assert!(err.to_string().contains("websessions migrate"), "{err}");
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::Missing);
    store.migrate().await.unwrap();
    store.ping().await.expect("migrated by hand, now fine");
    store.close().await;
}
