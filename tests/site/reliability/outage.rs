//! Outages of every network store at app level: the app talks to its store
//! through a forwarder; cut it and session requests answer 503 with a clear
//! `{"error"}`, `/healthz` answers 503; restore it and the same requests
//! succeed again without a restart, the session intact.

use crate::support::COOKIE;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::forwarder::Forwarder;
use crate::support::{Kind, Visitor, poll, spawn_app_with};

fn env_var(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "TEST_POSTGRES_URL",
        Kind::Mysql => "TEST_MYSQL_URL",
        Kind::Redis => "TEST_REDIS_URL",
        Kind::Memcached => "TEST_MEMCACHED_URL",
        _ => unreachable!("not a network store"),
    }
}

/// The server a URL points at, resolved to one socket address.
fn target(url: &str, default_port: u16) -> SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(default_port))
        .parse()
        .expect("an IP address in the test URL")
}

/// The same URL through the forwarder.
fn through(url: &str, via: SocketAddr) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(via.port())).unwrap();
    url.to_string()
}

/// Repeats `f` until it gives `want` or `limit` passes; returns the last status.
async fn until_status<F, Fut>(limit: Duration, want: StatusCode, mut f: F) -> (StatusCode, Value)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let mut last = None;
    let found = poll(limit, async || {
        let resp = f().await;
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        if status == want {
            return Some((status, body));
        }
        last = Some((status, body));
        None
    })
    .await;
    found.or(last).expect("at least one attempt")
}

async fn get(v: &Visitor, path: &str) -> reqwest::Response {
    v.get(path).await
}

pub async fn an_outage_gives_503_and_the_site_recovers(kind: Kind) {
    let Ok(url) = std::env::var(env_var(kind)) else {
        println!("SKIP {kind:?} outage: {} not set", env_var(kind));
        return;
    };
    let default_port = match kind {
        Kind::Postgres => 5432,
        Kind::Mysql => 3306,
        Kind::Redis => 6379,
        _ => 11211,
    };
    let mut forwarder = Forwarder::start(target(&url, default_port)).await;
    let via = forwarder.addr();
    let Some(app) = spawn_app_with(kind, |s| match kind {
        // The harness created this test's database: keep its name, change
        // only where the server is.
        Kind::Postgres | Kind::Mysql => {
            let db = through(s.session.database.url.expose(), via);
            s.session.database.url = websessions::config::Secret::new(db);
        }
        Kind::Redis => {
            s.session.redis.url = websessions::config::Secret::new(through(&url, via));
        }
        _ => s.session.memcached.url = through(&url, via),
    })
    .await
    else {
        return;
    };
    let me = app.me();
    me.set("kept", json!("through the outage")).await;
    assert_eq!(get(&me, "/healthz").await.status(), StatusCode::OK);

    forwarder.cut().await;
    let store_name = match kind {
        Kind::Postgres | Kind::Mysql => "database",
        Kind::Redis => "redis",
        _ => "memcached",
    };
    let started = Instant::now();
    let limit = Duration::from_secs(15);
    let (status, body) = until_status(limit, StatusCode::SERVICE_UNAVAILABLE, || {
        get(&me, "/api/session")
    })
    .await;
    println!(
        "{kind:?} down: GET /api/session {status} {body} after {:?}",
        started.elapsed()
    );
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "GET while down: {body}"
    );
    let error = body["error"].as_str().expect("an error message").to_owned();
    assert!(
        error.contains("session store is unavailable"),
        "a clear message: {error}"
    );
    assert!(
        error.to_lowercase().contains(store_name) || error.to_lowercase().contains("sql"),
        "the message names the store ({store_name}): {error}"
    );
    let resp = me.put_json("/api/session/other", &json!(1)).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "PUT while down: {body}"
    );
    assert!(body["error"].is_string());
    let page = me.get("/").await;
    assert_eq!(
        page.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the page while down"
    );
    let resp = me.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = resp.json().await.unwrap();
    assert_eq!(health["status"], json!("unavailable"));
    assert_eq!(health["backend"], json!(kind.backend().as_str()));
    assert!(health["error"].is_string(), "{health}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "errors come fast enough: {:?}",
        started.elapsed()
    );
    // The visitor still holds the cookie: a 503 does not drop it.
    assert!(me.session_cookie(&COOKIE).is_some());

    forwarder.restore().await;
    let started = Instant::now();
    let (status, body) = until_status(Duration::from_secs(20), StatusCode::OK, || {
        get(&me, "/api/session")
    })
    .await;
    println!(
        "{kind:?} back: GET /api/session {status} after {:?}",
        started.elapsed()
    );
    assert_eq!(
        status,
        StatusCode::OK,
        "recovered without a restart: {body}"
    );
    assert_eq!(body["new"], json!(false), "the same session");
    assert_eq!(
        body["data"],
        json!({"kept": "through the outage"}),
        "intact"
    );
    me.set("after", json!(2)).await;
    assert_eq!(me.value("after").await, Some(json!(2)));
    assert_eq!(me.get("/healthz").await.status(), StatusCode::OK);
    app.finish().await;
}

/// In production (`debug_errors = false`) `/healthz` names the failing
/// backend but carries no raw error text: no OS error, path, host or port.
/// With `debug_errors = true` (development) the cause is shown.
pub async fn healthz_hides_the_raw_error_in_production() {
    for debug in [false, true] {
        let Some(app) = spawn_app_with(Kind::File, |s| s.server.debug_errors = debug).await else {
            return;
        };
        let dir = app.settings.session.file.dir.clone();
        let moved = dir.with_extension("away");
        std::fs::rename(&dir, &moved).unwrap();
        let resp = app.me().get("/healthz").await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = resp.json().await.unwrap();
        std::fs::rename(&moved, &dir).unwrap();
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["backend"], "file");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains("file"), "names the backend: {error}");
        let raw = ["os error", "No such file", dir.to_str().unwrap(), "/tmp"];
        if debug {
            assert!(
                error.contains("os error"),
                "the cause in development: {error}"
            );
        } else {
            for leak in raw {
                assert!(!error.contains(leak), "`{leak}` in production: {error}");
            }
        }
        app.finish().await;
    }
}
