//! The reference server: the bench binary re-executed with
//! `WS_BENCH_ROLE=reference`. A bare axum + tower-sessions app — the
//! library's own `SessionManagerLayer` (or, for the cookie backend,
//! tower-sessions-cookie-store's layer) over the *same store types* the site
//! uses, with the same JSON read and write routes and a bare
//! `/healthz/live` (outside every layer), and nothing else: no
//! security headers, no timeout, no request log, no site session layer.
//! It is the library's own limit on this machine.
//!
//! Configuration comes from `REF_…` variables; it prints
//! `listening on ADDR` once bound.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_sessions::session::{Expiry, Id, Record};
use tower_sessions::session_store;
use tower_sessions::{Session, SessionManagerLayer, SessionStore};
use websessions::config::DatabaseSettings;
use websessions::sessions::{database, file, memcached, memory, redis};

async fn get_key(session: Session, Path(key): Path<String>) -> Response {
    match session.get::<Value>(&key).await {
        Ok(Some(value)) => Json(json!({ "key": key, "value": value })).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn put_key(session: Session, Path(key): Path<String>, Json(value): Json<Value>) -> Response {
    match session.insert(&key, value.clone()).await {
        Ok(()) => Json(json!({ "key": key, "value": value })).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// `SessionManagerLayer` needs a `Clone` store; the memcached store owns
/// its connection pool and is not `Clone`, so it is shared through an `Arc`.
#[derive(Debug)]
struct Shared<T>(std::sync::Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[async_trait::async_trait]
impl<T: SessionStore> SessionStore for Shared<T> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.0.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.0.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.delete(id).await
    }
}

fn routes() -> Router {
    Router::new().route("/api/session/{key}", get(get_key).put(put_key))
}

/// `GET /healthz/live` as a bare axum route, added after the session layer
/// so no layer wraps it: the floor the site's outer stack is measured
/// against.
fn with_bare_route(app: Router) -> Router {
    app.route("/healthz/live", get(|| async { "ok" }))
}

/// Same cookie name and idle timeout as the site.
fn with_store<S: SessionStore + Clone>(store: S) -> Router {
    routes().layer(
        SessionManagerLayer::new(store)
            .with_name("session_id")
            .with_secure(false)
            .with_expiry(Expiry::OnInactivity(time::Duration::hours(1))),
    )
}

/// The site's own outer service (timeout, security headers) and body
/// limit, in one `layer` call as the site adds them, and its request span.
fn with_site_stack(app: Router) -> Router {
    let app = app.layer(websessions::routes::outer::OuterLayer::new(
        std::time::Duration::from_secs(30),
        1024 * 1024 + 64 * 1024,
        None,
    ));
    websessions::telemetry::with_tracing(app)
}

pub fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    websessions::telemetry::init("warn");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let app = match var("REF_BACKEND").as_str() {
            "memory" => with_store(memory::MemoryStore::new()),
            "file" => {
                with_store(file::FileStore::open(var("REF_FILE_DIR"), false).expect("file store"))
            }
            "database" => {
                let settings = DatabaseSettings {
                    url: websessions::config::Secret::new(var("REF_DATABASE_URL")),
                    max_connections: 10,
                    auto_migrate: true,
                };
                with_store(
                    database::DatabaseStore::open(&settings.options())
                        .await
                        .expect("database store"),
                )
            }
            "redis" => with_store(
                redis::RedisStore::open(&var("REF_REDIS_URL"), &var("REF_PREFIX"))
                    .await
                    .expect("redis store"),
            ),
            "memcached" => with_store(Shared(std::sync::Arc::new(
                memcached::MemcachedStore::open(&var("REF_MEMCACHED_URL"), &var("REF_PREFIX"))
                    .await
                    .expect("memcached store"),
            ))),
            "cookie" => {
                let key = websessions::config::decode_key(&var("REF_SECRET_KEY")).expect("a key");
                let key = tower_sessions_cookie_store::Key::from(&key);
                routes().layer(
                    tower_sessions_cookie_store::CookieSessionManagerLayer::private(key)
                        .with_config(
                            tower_sessions_cookie_store::CookieSessionConfig::default()
                                .with_name("session_id")
                                .with_secure(false)
                                .with_expiry(Expiry::OnInactivity(time::Duration::hours(1))),
                        ),
                )
            }
            other => panic!("unknown REF_BACKEND {other:?}"),
        };
        // `REF_STACK=1`: the same outer layers as the site's router (request
        // span and log, 30 s timeout, security headers, body limit), to
        // split the site's cost between those layers and its session layer.
        let app = with_bare_route(app);
        let app = if var("REF_STACK") == "1" {
            with_site_stack(app)
        } else {
            app
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!(
            "listening on {}",
            listener.local_addr().expect("an address")
        );
        axum::serve(listener, app).await.expect("serve");
    });
}
