//! Database store (sqlx): SQLite, PostgreSQL or MariaDB/MySQL, chosen by the
//! URL scheme of `session.database.url`.
//!
//! Table `sessions`: `id_hash` (the storage key, a hash of the id), `data`
//! (the encoded record, without the id) and `expires_at`, indexed.
//!
//! - `create` only inserts; a primary-key conflict draws a fresh id. A row
//!   whose session has expired may be replaced: that session is gone anyway.
//! - `save_existing` and `touch` are `UPDATE … WHERE id_hash = ? AND
//!   expires_at > now`; no row matched means the session is gone, and
//!   nothing is written.
//! - "now" is the application's clock, as for the other stores.
//! - Start-up never waits for a server that is down: the pool connects on
//!   first use, and the schema work left undone is retried then.

/// Runs the same expression against whichever concrete pool the store has.
/// The body is compiled once per kind, so it keeps each kind's own types;
/// a kind whose feature is off has no arm.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            DbPool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            DbPool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            DbPool::MySql($p) => $body,
        }
    };
}

mod pool;
mod schema;
mod sql;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

pub use pool::{DbKind, DbPool, SERVER_ACQUIRE_TIMEOUT, SQLITE_BUSY_TIMEOUT};
pub use schema::{MigrationInfo, MigrationReport, SchemaStatus};

use super::store::{
    AtRest, CREATE_ATTEMPTS, Capability, Inspect, Keyed, SiteStore, WriteOutcome, backend_error,
    decode, decode_parts, encode, encode_parts, fingerprint, from_unix_ms, storage_key, unix_ms,
};
use sql::Sql;

/// Errors of opening and migrating. Messages never carry the URL (it may
/// hold a password) nor, of course, any session id.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(
        "session.database.url: unsupported scheme `{scheme}:` (expected sqlite://, postgres://, postgresql://, mysql:// or mariadb://)"
    )]
    UnsupportedUrl { scheme: String },
    #[error(
        "session.database.url: {scheme}:// needs the \"{feature}\" feature, which this build was compiled without (rebuild with `--features {feature}` or the default features)"
    )]
    NotCompiled {
        scheme: String,
        feature: &'static str,
    },
    #[error("session.database.url: not a valid {kind} URL: {source}")]
    BadUrl {
        kind: &'static str,
        source: sqlx::Error,
    },
    #[error("cannot create the folder {path} for the SQLite database: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach the {kind} session database: {source}")]
    Unreachable { kind: DbKind, source: sqlx::Error },
    #[error(
        "the {kind} session database has no sessions schema yet: run `websessions migrate` (or set session.database.auto_migrate = true)"
    )]
    SchemaMissing { kind: DbKind },
    #[error(
        "the {kind} session database schema is behind ({pending} migration(s) pending): run `websessions migrate` (or set session.database.auto_migrate = true)"
    )]
    SchemaBehind { kind: DbKind, pending: usize },
    #[error("migrating the {kind} session database failed: {source}")]
    Migrate { kind: DbKind, source: sqlx::Error },
}

/// How to open the database store.
#[derive(Clone)]
pub struct DatabaseOptions {
    /// `sqlite://…`, `postgres://…` or `mysql://…`; may hold a password.
    pub url: String,
    pub max_connections: u32,
    /// Apply pending migrations when opening.
    pub auto_migrate: bool,
}

impl std::fmt::Debug for DatabaseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseOptions")
            .field("url", &"***")
            .field("max_connections", &self.max_connections)
            .field("auto_migrate", &self.auto_migrate)
            .finish()
    }
}

/// Schema work still owed because the database was down at start-up.
const OWED_NOTHING: u8 = 0;
const OWED_MIGRATE: u8 = 1;
const OWED_CHECK: u8 = 2;

#[derive(Debug, Clone)]
pub struct DatabaseStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: DbPool,
    sql: &'static Sql,
    owed: AtomicU8,
    /// One schema attempt at a time; the others wait for its outcome.
    schema_lock: Mutex<()>,
}

impl DatabaseStore {
    /// Builds the pool and does nothing else: no connection, no schema work.
    /// `websessions migrate` starts here.
    pub fn connect(settings: &DatabaseOptions) -> Result<Self, DatabaseError> {
        let pool = DbPool::connect_lazy(&settings.url, settings.max_connections)?;
        let sql = match pool.kind() {
            #[cfg(feature = "sqlite")]
            DbKind::Sqlite => &sql::SQLITE,
            #[cfg(feature = "postgres")]
            DbKind::Postgres => &sql::POSTGRES,
            #[cfg(feature = "mysql")]
            DbKind::MySql => &sql::MYSQL,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                sql,
                owed: AtomicU8::new(OWED_NOTHING),
                schema_lock: Mutex::new(()),
            }),
        })
    }

    /// Opens the store for serving.
    ///
    /// - Reachable: migrates (`auto_migrate = true`) or checks that the
    ///   schema is up to date and fails with a "run `websessions migrate`"
    ///   message when it is not.
    /// - A PostgreSQL or MySQL server that cannot be reached is logged and
    ///   the store is returned anyway: requests fail (503) until the server
    ///   is back, and the schema work is done on the first successful use.
    /// - An SQLite file that cannot be opened is a local mistake and fails.
    pub async fn open(settings: &DatabaseOptions) -> Result<Self, DatabaseError> {
        let store = Self::connect(settings)?;
        let kind = store.kind();
        if let Err(source) = store.select_one().await {
            if kind.is_file() {
                return Err(DatabaseError::Unreachable { kind, source });
            }
            tracing::warn!(
                database = %kind,
                error = %source,
                "session database unreachable at start-up: serving anyway (503 until it is back)"
            );
            let owed = if settings.auto_migrate {
                OWED_MIGRATE
            } else {
                OWED_CHECK
            };
            store.inner.owed.store(owed, Ordering::Release);
            return Ok(store);
        }
        if settings.auto_migrate {
            log_report(&store.migrate().await?);
        } else {
            store.check_schema().await?;
        }
        Ok(store)
    }

    pub fn kind(&self) -> DbKind {
        self.inner.pool.kind()
    }

    /// The pool, for queries of a project's own (and for tests).
    pub fn pool(&self) -> &DbPool {
        &self.inner.pool
    }

    /// Applies the pending migrations of this database kind. Idempotent.
    pub async fn migrate(&self) -> Result<MigrationReport, DatabaseError> {
        let kind = self.kind();
        schema::run(&self.inner.pool, self.inner.sql)
            .await
            .map_err(|source| DatabaseError::Migrate { kind, source })
    }

    /// Compares the database's schema with this build's migrations.
    pub async fn schema_status(&self) -> Result<SchemaStatus, DatabaseError> {
        let kind = self.kind();
        schema::status(&self.inner.pool, self.inner.sql)
            .await
            .map_err(|source| DatabaseError::Unreachable { kind, source })
    }

    /// Fails unless the schema is up to date.
    async fn check_schema(&self) -> Result<(), DatabaseError> {
        let kind = self.kind();
        match self.schema_status().await? {
            SchemaStatus::UpToDate => Ok(()),
            SchemaStatus::Missing => Err(DatabaseError::SchemaMissing { kind }),
            SchemaStatus::Behind(pending) => Err(DatabaseError::SchemaBehind {
                kind,
                pending: pending.len(),
            }),
        }
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    async fn select_one(&self) -> Result<(), sqlx::Error> {
        on_pool!(&self.inner.pool, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))
    }

    /// Does the schema work owed since start-up, if any, before an operation.
    async fn ready(&self) -> session_store::Result<()> {
        if self.inner.owed.load(Ordering::Acquire) == OWED_NOTHING {
            return Ok(());
        }
        // While one request retries the schema work against a server that
        // is still down, the others must not queue up behind it for ever.
        let Ok(_one_at_a_time) =
            tokio::time::timeout(SERVER_ACQUIRE_TIMEOUT, self.inner.schema_lock.lock()).await
        else {
            return Err(session_store::Error::Backend(format!(
                "{} session database: schema work still in progress",
                self.kind()
            )));
        };
        let result = match self.inner.owed.load(Ordering::Acquire) {
            OWED_MIGRATE => self.migrate().await.map(|report| log_report(&report)),
            OWED_CHECK => self.check_schema().await,
            _ => return Ok(()),
        };
        match result {
            Ok(()) => {
                self.inner.owed.store(OWED_NOTHING, Ordering::Release);
                Ok(())
            }
            Err(e) => Err(backend_error("session database schema", e)),
        }
    }

    /// The stored bytes and expiry (the column) of a live row.
    async fn load_row(&self, key: &str) -> session_store::Result<Option<(Vec<u8>, i64)>> {
        self.ready().await?;
        let sql = self.inner.sql;
        let now = now_ms();
        on_pool!(&self.inner.pool, |p| sqlx::query_as(sql.load)
            .bind(key)
            .bind(now)
            .fetch_optional(p)
            .await)
        .map_err(|e| self.err("load", e))
    }

    fn err(&self, what: &str, e: sqlx::Error) -> session_store::Error {
        backend_error(&format!("{} {what}", self.kind()), e)
    }

    async fn count_where(&self, sql: &str, now_ms: Option<i64>) -> session_store::Result<u64> {
        let n: i64 = on_pool!(&self.inner.pool, |p| {
            let query = sqlx::query_scalar(sql);
            let query = match now_ms {
                Some(now) => query.bind(now),
                None => query,
            };
            query.fetch_one(p).await
        })
        .map_err(|e| self.err("count", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn execute_now(
        &self,
        what: &str,
        sql: &str,
        now_ms: Option<i64>,
    ) -> session_store::Result<u64> {
        on_pool!(&self.inner.pool, |p| {
            let query = sqlx::query(sql);
            let query = match now_ms {
                Some(now) => query.bind(now),
                None => query,
            };
            query.execute(p).await.map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(what, e))
    }
}

fn log_report(report: &MigrationReport) {
    if report.up_to_date() {
        tracing::debug!(database = %report.kind, "session database schema up to date");
    }
    for m in &report.applied {
        tracing::info!(
            database = %report.kind,
            version = m.version,
            migration = %m.description,
            "session database migration applied"
        );
    }
}

fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl SessionStore for DatabaseStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.ready().await?;
        let sql = self.inner.sql;
        let data = encode(record)?;
        let expires = unix_ms(record.expiry_date);
        for _ in 0..CREATE_ATTEMPTS {
            let key = storage_key(&record.id);
            let now = now_ms();
            let inserted = on_pool!(&self.inner.pool, |p| {
                match sqlx::query(sql.delete_expired_key)
                    .bind(&key)
                    .bind(now)
                    .execute(p)
                    .await
                {
                    Ok(_) => sqlx::query(sql.insert)
                        .bind(&key)
                        .bind(&data)
                        .bind(expires)
                        .execute(p)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            });
            match inserted {
                Ok(_) => return Ok(()),
                // A live session holds this key: draw another id.
                Err(e) if is_unique_violation(&e) => record.id = Id::default(),
                Err(e) => return Err(self.err("create", e)),
            }
        }
        Err(session_store::Error::Backend(format!(
            "{} create: no free session id after {CREATE_ATTEMPTS} attempts",
            self.kind()
        )))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_existing(record).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some((bytes, expires_ms)) = self.load_row(&storage_key(id)).await? else {
            return Ok(None);
        };
        match decode(*id, &bytes) {
            // The column is the truth: a touch moves it, not the stored bytes.
            Ok(record) => Ok(Some(Record {
                expiry_date: from_unix_ms(expires_ms),
                ..record
            })),
            Err(error) => {
                tracing::warn!(
                    session = %fingerprint(id),
                    database = %self.kind(),
                    %error,
                    "corrupted session row: treating the session as absent"
                );
                Ok(None)
            }
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.ready().await?;
        let sql = self.inner.sql;
        let key = storage_key(id);
        on_pool!(&self.inner.pool, |p| sqlx::query(sql.delete)
            .bind(&key)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(|e| self.err("delete", e))
    }
}

#[async_trait]
impl SiteStore for DatabaseStore {
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome> {
        self.ready().await?;
        let sql = self.inner.sql;
        let key = storage_key(&record.id);
        let data = encode(record)?;
        let expires = unix_ms(record.expiry_date);
        let now = now_ms();
        let rows = on_pool!(&self.inner.pool, |p| sqlx::query(sql.update)
            .bind(&data)
            .bind(expires)
            .bind(&key)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err("save", e))?;
        Ok(written_or_gone(rows))
    }

    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        self.ready().await?;
        let sql = self.inner.sql;
        let key = storage_key(id);
        let expires = unix_ms(expires_at);
        let now = now_ms();
        let rows = on_pool!(&self.inner.pool, |p| sqlx::query(sql.touch)
            .bind(expires)
            .bind(&key)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err("touch", e))?;
        Ok(written_or_gone(rows))
    }

    async fn ping(&self) -> session_store::Result<()> {
        self.select_one().await.map_err(|e| self.err("ping", e))?;
        self.ready().await
    }

    async fn count(&self) -> session_store::Result<Capability<u64>> {
        self.ready().await?;
        let n = self.count_where(self.inner.sql.count, None).await?;
        Ok(Capability::Supported(n))
    }

    async fn count_expired(&self) -> session_store::Result<Capability<u64>> {
        self.ready().await?;
        let n = self
            .count_where(self.inner.sql.count_expired, Some(now_ms()))
            .await?;
        Ok(Capability::Supported(n))
    }

    async fn purge_expired(&self) -> session_store::Result<Capability<u64>> {
        self.ready().await?;
        let n = self
            .execute_now("purge", self.inner.sql.purge, Some(now_ms()))
            .await?;
        Ok(Capability::Supported(n))
    }

    async fn clear(&self) -> session_store::Result<Capability<u64>> {
        self.ready().await?;
        let n = self
            .execute_now("clear", self.inner.sql.clear, None)
            .await?;
        Ok(Capability::Supported(n))
    }

    async fn delete_keyed(&self, key: &str) -> session_store::Result<()> {
        self.ready().await?;
        let sql = self.inner.sql;
        on_pool!(&self.inner.pool, |p| sqlx::query(sql.delete)
            .bind(key)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(|e| self.err("delete", e))
    }

    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>> {
        let Some((bytes, expires_ms)) = self.load_row(key).await? else {
            return Ok(None);
        };
        let (data, _) = decode_parts(&bytes)?;
        Ok(Some(Keyed {
            version: bytes,
            data,
            expires_at: from_unix_ms(expires_ms),
        }))
    }

    /// One statement compares and swaps (`… WHERE data = old`), so the
    /// database makes it atomic; an insert-only create covers "absent".
    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool> {
        self.ready().await?;
        let sql = self.inner.sql;
        let now = now_ms();
        let new = match new {
            Some((data, expires_at)) => {
                Some((encode_parts(data, expires_at)?, unix_ms(expires_at)))
            }
            None => None,
        };
        let swapped = match (expected, new) {
            (Some(old), Some((data, expires))) => {
                on_pool!(&self.inner.pool, |p| sqlx::query(sql.swap_update)
                    .bind(&data)
                    .bind(expires)
                    .bind(key)
                    .bind(old)
                    .bind(now)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected() == 1))
            }
            (Some(old), None) => on_pool!(&self.inner.pool, |p| sqlx::query(sql.swap_delete)
                .bind(key)
                .bind(old)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected() == 1)),
            (None, Some((data, expires))) => {
                let inserted = on_pool!(&self.inner.pool, |p| {
                    match sqlx::query(sql.delete_expired_key)
                        .bind(key)
                        .bind(now)
                        .execute(p)
                        .await
                    {
                        Ok(_) => sqlx::query(sql.insert)
                            .bind(key)
                            .bind(&data)
                            .bind(expires)
                            .execute(p)
                            .await
                            .map(|_| true),
                        Err(e) => Err(e),
                    }
                });
                match inserted {
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    other => other,
                }
            }
            (None, None) => return Ok(self.load_keyed(key).await?.is_none()),
        };
        swapped.map_err(|e| self.err("swap", e))
    }

    fn inspector(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

#[async_trait]
impl Inspect for DatabaseStore {
    async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>> {
        self.ready().await?;
        let sql = self.inner.sql;
        let key = storage_key(id);
        let row: Option<(Vec<u8>, i64)> =
            on_pool!(&self.inner.pool, |p| sqlx::query_as(sql.at_rest)
                .bind(&key)
                .fetch_optional(p)
                .await)
            .map_err(|e| self.err("read", e))?;
        Ok(row.map(|(bytes, expires_ms)| {
            let content = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            AtRest {
                kind: format!("{} row", self.kind()),
                location: format!("table sessions, id_hash = {key}"),
                facts: vec![
                    (
                        "expires_at".into(),
                        super::inspect::describe_time(from_unix_ms(expires_ms)),
                    ),
                    ("data size".into(), format!("{} bytes", bytes.len())),
                    ("columns".into(), sql.columns.into()),
                ],
                content: Some(content),
            }
        }))
    }
}

fn written_or_gone(rows: u64) -> WriteOutcome {
    if rows == 0 {
        WriteOutcome::Gone
    } else {
        WriteOutcome::Written
    }
}
