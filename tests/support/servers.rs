//! Throwaway databases on the machine's real servers, one per test, so tests
//! run in parallel. URLs come from `TEST_POSTGRES_URL` / `TEST_MYSQL_URL`
//! at run time; unset means "skip, visibly".

use sqlx::{Connection, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mysql,
}

impl Server {
    pub fn var(self) -> &'static str {
        match self {
            Server::Postgres => "TEST_POSTGRES_URL",
            Server::Mysql => "TEST_MYSQL_URL",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Server::Postgres => "postgres",
            Server::Mysql => "mysql",
        }
    }
}

/// The admin URL, or `None` after printing the skip line.
pub fn admin_url(server: Server) -> Option<String> {
    match std::env::var(server.var()) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP {}: {} not set", server.name(), server.var());
            None
        }
    }
}

/// A server URL from the environment, or `None` after the skip line.
pub fn env_url(name: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP {name}: {var} not set");
            None
        }
    }
}

/// The admin URL with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a database URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

pub async fn create_database(server: Server, admin: &str, db: &str) {
    let sql = format!("CREATE DATABASE {db}");
    match server {
        Server::Postgres => {
            let mut c = sqlx::PgConnection::connect(admin)
                .await
                .expect("connect to PostgreSQL");
            c.execute(sql.as_str()).await.expect("create database");
            c.close().await.ok();
        }
        Server::Mysql => {
            let mut c = sqlx::MySqlConnection::connect(admin)
                .await
                .expect("connect to MariaDB");
            c.execute(sql.as_str()).await.expect("create database");
            c.close().await.ok();
        }
    }
}

pub async fn drop_database(server: Server, admin: &str, db: &str) {
    match server {
        Server::Postgres => {
            if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
                let _ = c
                    .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                    .await;
                c.close().await.ok();
            }
        }
        Server::Mysql => {
            if let Ok(mut c) = sqlx::MySqlConnection::connect(admin).await {
                let _ = c
                    .execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
                    .await;
                c.close().await.ok();
            }
        }
    }
}

/// A fresh database name: `ws_<uuid>`.
pub fn fresh_name() -> String {
    format!("ws_{}", uuid::Uuid::new_v4().simple())
}
