//! The real binary's database commands: `migrate` (twice), `sessions stats`,
//! `sessions purge-expired`, `sessions clear --yes`, and the strict start-up
//! check. SQLite always; PostgreSQL and MariaDB/MySQL on a fresh database
//! when `TEST_POSTGRES_URL` / `TEST_MYSQL_URL` are set.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection as _, Executor as _};
use tempfile::TempDir;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};

use websessions::config::{DatabaseSettings, Secret};
use websessions::sessions::database::DatabaseStore;

fn command(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_websessions"));
    // Only this test's configuration: nothing from the caller's APP_* vars.
    for (key, _) in std::env::vars() {
        if key.starts_with("APP_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("APP_SESSION__BACKEND", "database")
        .env("APP_SESSION__DATABASE__URL", url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn run(url: &str, args: &[&str]) -> (bool, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command(url, args).output().expect("run websessions");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.success(), text)
}

fn ok(url: &str, args: &[&str]) -> String {
    let (success, text) = run(url, args);
    assert!(success, "websessions {args:?} failed:\n{text}");
    text
}

/// Two live sessions and one expired, written through the library.
async fn seed(url: &str) {
    let store = DatabaseStore::connect(
        &DatabaseSettings {
            url: Secret::new(url),
            max_connections: 2,
            auto_migrate: false,
        }
        .options(),
    )
    .expect("store");
    for secs in [3600, 3600, -60] {
        let mut record = Record {
            id: Id::default(),
            data: [("k".to_owned(), json!("v"))].into_iter().collect(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::seconds(secs),
        };
        store.create(&mut record).await.expect("seed");
    }
    store.close().await;
}

async fn the_commands(url: &str) {
    // Strict start-up on an empty database: refused, with the fix named.
    let serve = command(url, &["serve"])
        .env("APP_SESSION__DATABASE__AUTO_MIGRATE", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    // It must exit on its own; one that serves instead is killed.
    let pid = serve.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(serve.wait_with_output()));
    let out = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.expect("serve output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("serve started without a schema");
        }
    };
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("websessions migrate"), "{text}");

    let first = ok(url, &["migrate"]);
    assert!(first.contains("applied migration"), "{first}");
    assert!(first.contains("1 migration(s) applied"), "{first}");
    let second = ok(url, &["migrate"]);
    assert!(second.contains("is up to date"), "{second}");
    assert!(!second.contains("applied migration"), "{second}");

    let stats = ok(url, &["sessions", "stats"]);
    assert!(stats.contains("sessions: 0"), "{stats}");

    seed(url).await;
    let stats = ok(url, &["sessions", "stats"]);
    assert!(stats.contains("backend: database"), "{stats}");
    assert!(stats.contains("sessions: 3"), "{stats}");
    assert!(stats.contains("expired: 1"), "{stats}");

    let purged = ok(url, &["sessions", "purge-expired"]);
    assert!(purged.contains("purged 1 expired sessions"), "{purged}");

    let (success, refused) = run(url, &["sessions", "clear"]);
    assert!(!success, "clear without --yes must refuse:\n{refused}");
    assert!(refused.contains("--yes"), "{refused}");

    let cleared = ok(url, &["sessions", "clear", "--yes"]);
    assert!(cleared.contains("deleted 2 sessions"), "{cleared}");
    let stats = ok(url, &["sessions", "stats"]);
    assert!(stats.contains("sessions: 0"), "{stats}");
}

#[tokio::test]
async fn sqlite_commands() {
    let dir = TempDir::new().expect("temp dir");
    let url = format!("sqlite://{}/s.db", dir.path().display());
    the_commands(&url).await;
}

/// A fresh database on the server named by `var`, dropped afterwards.
async fn on_server(name: &str, var: &str) {
    let Ok(admin) = std::env::var(var) else {
        println!("SKIP {name}: {var} not set");
        return;
    };
    let db = format!("ws_{}", uuid::Uuid::new_v4().simple());
    let mut url = url::Url::parse(&admin).expect("server URL");
    url.set_path(&format!("/{db}"));
    let postgres = name == "postgres";
    let admin_sql = |sql: String| {
        let admin = admin.clone();
        async move {
            if postgres {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                conn.execute(sql.as_str()).await.map(|_| ())
            } else {
                let mut conn = sqlx::MySqlConnection::connect(&admin).await?;
                conn.execute(sql.as_str()).await.map(|_| ())
            }
        }
    };
    admin_sql(format!("CREATE DATABASE {db}"))
        .await
        .expect("create database");
    let outcome = tokio::spawn({
        let url = url.to_string();
        async move { the_commands(&url).await }
    })
    .await;
    let drop = if postgres {
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS {db}")
    };
    if let Err(e) = admin_sql(drop).await {
        eprintln!("warning: could not drop test database {db}: {e}");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn postgres_commands() {
    on_server("postgres", "TEST_POSTGRES_URL").await;
}

#[tokio::test]
async fn mysql_commands() {
    on_server("mysql", "TEST_MYSQL_URL").await;
}
