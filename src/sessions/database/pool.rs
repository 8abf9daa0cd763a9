//! Which database a URL names, and the connection pool for it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[cfg(feature = "mysql")]
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::DatabaseError;

/// How long a request waits for a PostgreSQL or MySQL connection before it
/// fails (and the site answers 503). Short, so an outage is reported quickly
/// instead of piling requests up.
pub const SERVER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an SQLite writer waits for the file lock before "database is
/// locked". Writers queue behind each other; they should wait, not fail.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database kinds the store speaks to: those compiled into this build,
/// one cargo feature each (`sqlite`, `postgres`, `mysql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "mysql")]
    MySql,
}

/// Each kind of this build, or `None` where its feature is off.
#[cfg(feature = "sqlite")]
const SQLITE: Option<DbKind> = Some(DbKind::Sqlite);
#[cfg(not(feature = "sqlite"))]
const SQLITE: Option<DbKind> = None;
#[cfg(feature = "postgres")]
const POSTGRES: Option<DbKind> = Some(DbKind::Postgres);
#[cfg(not(feature = "postgres"))]
const POSTGRES: Option<DbKind> = None;
#[cfg(feature = "mysql")]
const MYSQL: Option<DbKind> = Some(DbKind::MySql);
#[cfg(not(feature = "mysql"))]
const MYSQL: Option<DbKind> = None;

impl DbKind {
    /// Reads the kind from the URL scheme. The error names the scheme only:
    /// a URL may carry a password. A kind this build leaves out is refused
    /// with the feature that brings it in.
    pub fn from_url(url: &str) -> Result<Self, DatabaseError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        let (kind, feature) = match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => (SQLITE, "sqlite"),
            "postgres" | "postgresql" => (POSTGRES, "postgres"),
            "mysql" | "mariadb" => (MYSQL, "mysql"),
            _ => {
                return Err(DatabaseError::UnsupportedUrl {
                    scheme: scheme.to_owned(),
                });
            }
        };
        kind.ok_or_else(|| DatabaseError::NotCompiled {
            scheme: scheme.to_owned(),
            feature,
        })
    }

    /// For people: "SQLite", "PostgreSQL", "MariaDB/MySQL".
    pub fn label(self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            DbKind::Sqlite => "SQLite",
            #[cfg(feature = "postgres")]
            DbKind::Postgres => "PostgreSQL",
            #[cfg(feature = "mysql")]
            DbKind::MySql => "MariaDB/MySQL",
        }
    }

    /// A local file (SQLite) rather than a server.
    pub fn is_file(self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            DbKind::Sqlite => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A pool of the concrete kind, so each kind keeps its own types and SQL.
#[derive(Debug, Clone)]
pub enum DbPool {
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    #[cfg(feature = "mysql")]
    MySql(MySqlPool),
}

impl DbPool {
    pub fn kind(&self) -> DbKind {
        match self {
            #[cfg(feature = "sqlite")]
            DbPool::Sqlite(_) => DbKind::Sqlite,
            #[cfg(feature = "postgres")]
            DbPool::Postgres(_) => DbKind::Postgres,
            #[cfg(feature = "mysql")]
            DbPool::MySql(_) => DbKind::MySql,
        }
    }

    /// Builds the pool without connecting: the first query connects. A
    /// server that is down at start-up therefore does not stop the site.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, DatabaseError> {
        let max = max_connections.max(1);
        let bad_url = |source: sqlx::Error| DatabaseError::BadUrl {
            kind: DbKind::from_url(url)
                .map(DbKind::label)
                .unwrap_or("database"),
            source,
        };
        Ok(match DbKind::from_url(url)? {
            #[cfg(feature = "sqlite")]
            DbKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .create_if_missing(true)
                    // WAL: readers never block the writer, nor it them.
                    .journal_mode(SqliteJournalMode::Wal)
                    // Safe with WAL (no corruption on power loss, at most
                    // the last commits are lost) and much faster than FULL.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                create_parent_folder(&options)?;
                DbPool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max)
                        .connect_lazy_with(options),
                )
            }
            #[cfg(feature = "postgres")]
            DbKind::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(bad_url)?;
                DbPool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(SERVER_ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
            #[cfg(feature = "mysql")]
            DbKind::MySql => {
                let options = MySqlConnectOptions::from_str(url).map_err(bad_url)?;
                DbPool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(SERVER_ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
        })
    }

    /// Closes every connection (waits for those in use to come back).
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// `create_if_missing` creates the file, not its folder.
#[cfg(feature = "sqlite")]
fn create_parent_folder(options: &SqliteConnectOptions) -> Result<(), DatabaseError> {
    let file = options.get_filename();
    if file.as_os_str() == ":memory:" {
        return Ok(());
    }
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| DatabaseError::Folder {
                path: parent.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    #[test]
    fn kind_comes_from_the_scheme() {
        assert_eq!(
            DbKind::from_url("sqlite://data/s.db").ok(),
            Some(DbKind::Sqlite)
        );
        assert_eq!(
            DbKind::from_url("postgres://u@h/db").ok(),
            Some(DbKind::Postgres)
        );
        assert_eq!(
            DbKind::from_url("postgresql://u@h/db").ok(),
            Some(DbKind::Postgres)
        );
        assert_eq!(DbKind::from_url("mysql://u@h/db").ok(), Some(DbKind::MySql));
        assert_eq!(
            DbKind::from_url("mariadb://u@h/db").ok(),
            Some(DbKind::MySql)
        );
    }

    #[test]
    fn an_unknown_scheme_is_refused_without_echoing_the_url() {
        let err = DbKind::from_url("redis://user:hunter2@host/0").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("redis"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_kind_left_out_of_the_build_names_its_feature() {
        let err = DatabaseError::NotCompiled {
            scheme: "sqlite".into(),
            feature: "sqlite",
        };
        assert_eq!(
            err.to_string(),
            "session.database.url: sqlite:// needs the \"sqlite\" feature, which this build was compiled without (rebuild with `--features sqlite` or the default features)"
        );
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_postgres_url_without_the_feature_is_refused() {
        let err = DbKind::from_url("postgres://user:hunter2@host/db").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"postgres\" feature"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
