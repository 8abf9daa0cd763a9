//! The schema: one sqlx migration folder per kind, embedded at compile time,
//! and the check that tells whether a database is up to date.

use sqlx::migrate::Migrator;

use super::pool::{DbKind, DbPool};
use super::sql::Sql;

#[cfg(feature = "sqlite")]
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
#[cfg(feature = "mysql")]
static MYSQL: Migrator = sqlx::migrate!("migrations/mysql");

pub(super) fn migrator(kind: DbKind) -> &'static Migrator {
    match kind {
        #[cfg(feature = "sqlite")]
        DbKind::Sqlite => &SQLITE,
        #[cfg(feature = "postgres")]
        DbKind::Postgres => &POSTGRES,
        #[cfg(feature = "mysql")]
        DbKind::MySql => &MYSQL,
    }
}

/// One migration, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
}

/// What `DatabaseStore::migrate` did.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    pub kind: DbKind,
    /// Applied by this run, oldest first. Empty: it was up to date.
    pub applied: Vec<MigrationInfo>,
    /// How many migrations the database now has in total.
    pub total: usize,
}

impl MigrationReport {
    pub fn up_to_date(&self) -> bool {
        self.applied.is_empty()
    }
}

/// How the database's schema compares with this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    UpToDate,
    /// No migration was ever applied.
    Missing,
    /// Some were, but these are not.
    Behind(Vec<MigrationInfo>),
}

/// The migrations of this build that the database has not applied.
pub(super) async fn pending(pool: &DbPool, sql: &Sql) -> Result<Vec<MigrationInfo>, sqlx::Error> {
    let applied = applied_versions(pool, sql).await?;
    Ok(migrator(pool.kind())
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect())
}

pub(super) async fn status(pool: &DbPool, sql: &Sql) -> Result<SchemaStatus, sqlx::Error> {
    let applied = applied_versions(pool, sql).await?;
    if applied.is_empty() {
        return Ok(SchemaStatus::Missing);
    }
    let pending = pending(pool, sql).await?;
    Ok(if pending.is_empty() {
        SchemaStatus::UpToDate
    } else {
        SchemaStatus::Behind(pending)
    })
}

/// Versions applied successfully; empty when sqlx's table does not exist yet
/// (reading it must not create it: that is `migrate`'s job).
async fn applied_versions(pool: &DbPool, sql: &Sql) -> Result<Vec<i64>, sqlx::Error> {
    let exists: i64 = on_pool!(pool, |p| sqlx::query_scalar(sql.migrations_table_exists)
        .fetch_one(p)
        .await)?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    on_pool!(pool, |p| sqlx::query_scalar(sql.applied_migrations)
        .fetch_all(p)
        .await)
}

/// Applies what is pending. sqlx takes a database lock (PostgreSQL, MySQL)
/// so two instances starting together do not both migrate.
pub(super) async fn run(pool: &DbPool, sql: &Sql) -> Result<MigrationReport, sqlx::Error> {
    let kind = pool.kind();
    let before = pending(pool, sql).await?;
    let migrator = migrator(kind);
    on_pool!(pool, |p| migrator.run(p).await)?;
    // Report what was pending before and is applied now (whichever instance
    // applied it: sqlx's lock makes the others wait, then find nothing to do).
    let still = pending(pool, sql).await?;
    let applied = before.into_iter().filter(|m| !still.contains(m)).collect();
    let total = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count();
    Ok(MigrationReport {
        kind,
        applied,
        total,
    })
}
