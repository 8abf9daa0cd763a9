//! The test harness: the real app on a real port with a store of its own,
//! a cookie-keeping HTTP client, and a `finish()` that clears the store and
//! proves it empty. A `TestApp` dropped without `finish()` fails the test,
//! so no test can forget to clean up.
#![allow(dead_code)]

pub mod servers;

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use websessions::config::{self, Backend, LoadOptions, Settings};
use websessions::sessions::policy::{Clock, ManualClock};
use websessions::sessions::store::{Capability, SiteStore};
use websessions::startup::{Application, Overrides};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Memory,
    /// The database backend on an SQLite file.
    Sqlite,
    /// The database backend on the server at `TEST_POSTGRES_URL`.
    Postgres,
    /// The database backend on the server at `TEST_MYSQL_URL`.
    Mysql,
    /// Redis at `TEST_REDIS_URL`, under a key prefix of its own.
    Redis,
    /// A Redis Cluster at `TEST_REDIS_CLUSTER_URL` (`redis-cluster://…`).
    RedisCluster,
    /// Redis over TLS at `TEST_REDISS_URL`, trusting `TEST_REDISS_CA_FILE`.
    Rediss,
    /// A Redis Cluster over TLS at `TEST_REDISS_CLUSTER_URL`, trusting
    /// `TEST_REDISS_CA_FILE`.
    RedissCluster,
    /// Redis behind Sentinel at `TEST_REDIS_SENTINEL_URL`.
    RedisSentinel,
    /// memcached at `TEST_MEMCACHED_URL`, under a key prefix of its own.
    Memcached,
    /// The cookie backend, encrypted (`private`).
    Cookie,
    /// The cookie backend, `signed`.
    CookieSigned,
}

impl Kind {
    pub fn backend(self) -> Backend {
        match self {
            Kind::File => Backend::File,
            Kind::Memory => Backend::Memory,
            Kind::Sqlite | Kind::Postgres | Kind::Mysql => Backend::Database,
            Kind::Redis
            | Kind::RedisCluster
            | Kind::Rediss
            | Kind::RedissCluster
            | Kind::RedisSentinel => Backend::Redis,
            Kind::Memcached => Backend::Memcached,
            Kind::Cookie | Kind::CookieSigned => Backend::Cookie,
        }
    }

    /// The variable holding this Redis kind's URL, and whether it is TLS.
    pub fn redis_env(self) -> Option<(&'static str, bool)> {
        match self {
            Kind::Redis => Some(("TEST_REDIS_URL", false)),
            Kind::RedisCluster => Some(("TEST_REDIS_CLUSTER_URL", false)),
            Kind::Rediss => Some(("TEST_REDISS_URL", true)),
            Kind::RedissCluster => Some(("TEST_REDISS_CLUSTER_URL", true)),
            Kind::RedisSentinel => Some(("TEST_REDIS_SENTINEL_URL", false)),
            _ => None,
        }
    }

    /// Does this backend keep sessions on the server? (The cookie backend
    /// does not, and the tests assert that difference.)
    pub fn server_side(self) -> bool {
        !matches!(self, Kind::Cookie | Kind::CookieSigned)
    }
}

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        websessions::telemetry::init("debug");
    }
});

/// The session cookie's name, as the test profile sets it: tests never
/// spell it, so a fork that renames the cookie keeps a working suite.
/// `format!("{COOKIE}=…")` writes it; `&*COOKIE` is the `&str`.
pub struct CookieName;

pub const COOKIE: CookieName = CookieName;

static COOKIE_NAME: LazyLock<String> = LazyLock::new(|| test_settings().session.cookie_name);

impl std::ops::Deref for CookieName {
    type Target = str;

    fn deref(&self) -> &str {
        &COOKIE_NAME
    }
}

impl std::fmt::Display for CookieName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&COOKIE_NAME)
    }
}

/// The `test` profile from the repository's `config/`, no env vars read.
pub fn test_settings() -> Settings {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    config::load(&LoadOptions::profile_in("test", dir))
        .expect("the test profile loads")
        .settings
}

/// Where a test's store lives, removed when the test ends.
struct Isolation {
    dir: TempDir,
    /// A database created for this test: (server, admin URL, name).
    database: Option<(servers::Server, String, String)>,
}

impl Isolation {
    async fn drop_database(&mut self) {
        if let Some((server, admin, name)) = self.database.take() {
            servers::drop_database(server, &admin, &name).await;
        }
    }
}

pub struct TestApp {
    /// Every session id any visitor of this app was given.
    seen: Arc<Mutex<Vec<String>>>,
    pub address: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    pub jar: Arc<RecordingJar>,
    /// The server-side store; `None` for the cookie backend.
    pub store: Option<Arc<dyn SiteStore>>,
    pub kind: Kind,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    isolation: Isolation,
    finished: bool,
}

/// Spawns the app with the test profile and an isolated store. `None` means
/// the backend's server is not configured here: a visible skip line has
/// been printed and the test should return.
pub async fn spawn_app(kind: Kind) -> Option<TestApp> {
    spawn_app_with(kind, |_| {}).await
}

pub async fn spawn_app_with(kind: Kind, adjust: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    spawn_app_with_routes(kind, adjust, None).await
}

/// Like `spawn_app_with`, with extra routes mounted behind the session
/// layer: routes only tests have (a deliberately slow read, say).
pub async fn spawn_app_with_routes(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
    extra: Option<axum::Router<websessions::state::AppState>>,
) -> Option<TestApp> {
    spawn(kind, adjust, extra, None).await
}

/// `spawn_app_with_routes` and `spawn_app_with_clock` at once.
pub async fn spawn_app_with_routes_and_clock(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
    extra: axum::Router<websessions::state::AppState>,
    clock: Arc<dyn Clock>,
) -> Option<TestApp> {
    spawn(kind, adjust, Some(extra), Some(clock)).await
}

/// Like `spawn_app_with`, with the engine reading `clock`: tests move a
/// `ManualClock` instead of sleeping. Stores that keep their own clock (a
/// Redis TTL, SQL `now`, file times) still read the real one; the clock
/// starts at the real time and only moves forward, so they see expiries
/// that are later, never earlier, than the engine's.
pub async fn spawn_app_with_clock(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
    clock: Arc<dyn Clock>,
) -> Option<TestApp> {
    spawn(kind, adjust, None, Some(clock)).await
}

/// `spawn_app_with_clock` with a fresh `ManualClock`, returned for the test
/// to move.
pub async fn spawn_app_with_manual_clock(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
) -> Option<(TestApp, Arc<ManualClock>)> {
    let clock = ManualClock::new();
    let app = spawn(kind, adjust, None, Some(clock.clone())).await?;
    Some((app, clock))
}

async fn spawn(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
    extra: Option<axum::Router<websessions::state::AppState>>,
    clock: Option<Arc<dyn Clock>>,
) -> Option<TestApp> {
    LazyLock::force(&TRACING);
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut settings = test_settings();
    settings.session.backend = kind.backend();
    settings.session.file.dir = dir.path().join("sessions");
    let mut isolation = Isolation {
        dir,
        database: None,
    };
    match kind {
        Kind::Sqlite => {
            let path = isolation.dir.path().join("sessions.db");
            settings.session.database.url =
                config::Secret::new(format!("sqlite://{}", path.display()));
        }
        Kind::Postgres | Kind::Mysql => {
            let server = if kind == Kind::Postgres {
                servers::Server::Postgres
            } else {
                servers::Server::Mysql
            };
            let admin = servers::admin_url(server)?;
            let name = servers::fresh_name();
            servers::create_database(server, &admin, &name).await;
            settings.session.database.url =
                config::Secret::new(servers::with_database(&admin, &name));
            settings.session.database.max_connections = 5;
            isolation.database = Some((server, admin, name));
        }
        Kind::Redis
        | Kind::RedisCluster
        | Kind::Rediss
        | Kind::RedissCluster
        | Kind::RedisSentinel => {
            let (var, tls) = kind.redis_env().expect("a Redis kind");
            let name = format!("{kind:?}").to_lowercase();
            settings.session.redis.url = config::Secret::new(servers::env_url(&name, var)?);
            if tls {
                settings.session.redis.ca_file = servers::env_url(&name, "TEST_REDISS_CA_FILE")?;
            }
            settings.session.redis.prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        }
        Kind::Memcached => {
            settings.session.memcached.url = servers::env_url("memcached", "TEST_MEMCACHED_URL")?;
            settings.session.memcached.prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        }
        Kind::CookieSigned => settings.session.cookie.mode = config::CookieMode::Signed,
        _ => {}
    }
    adjust(&mut settings);
    let store = websessions::startup::open_store(&settings)
        .await
        .expect("the store opens");
    let app = Application::build_with(
        settings.clone(),
        Overrides {
            store,
            extra,
            clock,
        },
    )
    .await
    .expect("the app builds");
    let store = app.store();
    assert_eq!(store.is_some(), kind.server_side());
    Some(start(app, settings, store, kind, isolation))
}

/// Another instance over the same configuration (and so the same directory,
/// database or key): for restarts and several instances.
pub async fn spawn_sibling(first: &TestApp, adjust: impl FnOnce(&mut Settings)) -> Application {
    let mut settings = first.settings.clone();
    adjust(&mut settings);
    Application::build(settings)
        .await
        .expect("a second instance builds")
}

/// Another instance over the *same store object* (so the memory store can
/// share too), with its own settings and, optionally, the same clock.
/// Returns its address and what stops it.
pub async fn spawn_sharing_store(
    first: &TestApp,
    adjust: impl FnOnce(&mut Settings),
    clock: Option<Arc<dyn Clock>>,
) -> Sibling {
    let mut settings = first.settings.clone();
    adjust(&mut settings);
    let app = Application::build_with(
        settings,
        Overrides {
            store: first.store.clone(),
            extra: None,
            clock,
        },
    )
    .await
    .expect("a second instance builds");
    let address = format!("http://127.0.0.1:{}", app.local_addr().port());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(stop.clone()));
    Sibling {
        address,
        stop,
        handle,
    }
}

/// A second instance started by `spawn_sharing_store`.
pub struct Sibling {
    pub address: String,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Sibling {
    /// The same visitor (same cookie jar, so carry the cookie over with
    /// `set_cookie`) talking to this instance.
    pub fn as_visitor(&self, visitor: &Visitor) -> Visitor {
        Visitor {
            address: self.address.clone(),
            client: visitor.client.clone(),
            jar: visitor.jar.clone(),
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.handle
            .await
            .expect("sibling task")
            .expect("the sibling ran cleanly");
    }
}

fn start(
    app: Application,
    settings: Settings,
    store: Option<Arc<dyn SiteStore>>,
    kind: Kind,
    isolation: Isolation,
) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.local_addr().port());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (client, jar) = new_client_recording(seen.clone(), &settings.session.cookie_name);
    TestApp {
        seen,
        address,
        settings,
        client,
        jar,
        store,
        kind,
        shutdown,
        server: Some(server),
        isolation,
        finished: false,
    }
}

/// A cookie jar that also remembers every session id the server ever set,
/// so a store that cannot enumerate (memcached) can still be proven empty.
pub struct RecordingJar {
    jar: Jar,
    seen: Arc<Mutex<Vec<String>>>,
    /// `<cookie name>=`, from the settings: a renamed cookie is still seen.
    prefix: String,
}

impl RecordingJar {
    pub fn add_cookie_str(&self, cookie: &str, url: &reqwest::Url) {
        self.jar.add_cookie_str(cookie, url);
    }
}

impl CookieStore for RecordingJar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, url: &reqwest::Url) {
        let headers: Vec<HeaderValue> = headers.cloned().collect();
        for header in &headers {
            let value = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix(self.prefix.as_str()));
            if let Some(id) = value
                .and_then(|v| v.split(';').next())
                .filter(|v| !v.is_empty())
            {
                self.seen.lock().unwrap().push(id.to_owned());
            }
        }
        self.jar.set_cookies(&mut headers.iter(), url);
    }

    fn cookies(&self, url: &reqwest::Url) -> Option<HeaderValue> {
        self.jar.cookies(url)
    }
}

/// A fresh visitor: its own cookie jar, redirects not followed.
pub fn new_client() -> (reqwest::Client, Arc<RecordingJar>) {
    new_client_recording(Arc::default(), &test_settings().session.cookie_name)
}

fn new_client_recording(
    seen: Arc<Mutex<Vec<String>>>,
    cookie_name: &str,
) -> (reqwest::Client, Arc<RecordingJar>) {
    let jar = Arc::new(RecordingJar {
        jar: Jar::default(),
        seen,
        prefix: format!("{cookie_name}="),
    });
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    (client, jar)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Another visitor of the same app.
    pub fn visitor(&self) -> Visitor {
        let (client, jar) =
            new_client_recording(self.seen.clone(), &self.settings.session.cookie_name);
        Visitor {
            address: self.address.clone(),
            client,
            jar,
        }
    }

    /// The default visitor (this app's own client).
    pub fn me(&self) -> Visitor {
        Visitor {
            address: self.address.clone(),
            client: self.client.clone(),
            jar: self.jar.clone(),
        }
    }

    /// How many sessions the server holds. The cookie backend holds none:
    /// that is its documented difference, and this returns 0 for it.
    pub async fn count(&self) -> u64 {
        let Some(store) = &self.store else { return 0 };
        match store.count().await.expect("count") {
            Capability::Supported(n) => n,
            Capability::Unsupported(why) => panic!("count unsupported: {why}"),
        }
    }

    /// Asserts the server holds `n` sessions; for the cookie backend, that
    /// nothing is held server-side at all.
    pub async fn assert_stored(&self, n: u64) {
        if self.kind == Kind::Memcached {
            // memcached cannot count: count the live ones among every id
            // this app's visitors were given.
            let mut ids: Vec<String> = self.seen.lock().unwrap().clone();
            ids.sort();
            ids.dedup();
            let mut live = 0;
            for value in ids {
                let id: tower_sessions::session::Id = value.parse().expect("a session id");
                if self.store().load(&id).await.expect("load").is_some() {
                    live += 1;
                }
            }
            assert_eq!(live, n, "live sessions in memcached");
        } else if self.kind.server_side() {
            assert_eq!(self.count().await, n, "sessions in the store");
        } else {
            assert!(
                self.store.is_none(),
                "the cookie backend keeps no server state"
            );
        }
    }

    pub fn store(&self) -> &Arc<dyn SiteStore> {
        self.store.as_ref().expect("a server-side store")
    }

    /// Ends the test: clears the store, asserts it is empty (and, for files, that no file is left), stops
    /// the server.
    pub async fn finish(mut self) {
        // Through the store itself, never the demo's routes: a fork that
        // deletes the JSON API keeps a working harness.
        match (&self.store, self.kind) {
            // memcached cannot list its keys: delete every id the visitors
            // were given, then prove each one absent.
            (Some(store), Kind::Memcached) => {
                let ids: Vec<String> = self.seen.lock().unwrap().clone();
                for value in ids {
                    let id: tower_sessions::session::Id = value.parse().expect("a session id");
                    store.delete(&id).await.expect("delete");
                    assert!(
                        store.load(&id).await.expect("load").is_none(),
                        "a session is left in memcached"
                    );
                }
            }
            (Some(store), _) => {
                store.clear().await.expect("clear the store");
                assert_eq!(self.count().await, 0, "store not empty after clear");
            }
            (None, _) => {}
        }
        if self.kind == Kind::File {
            let left = files_under(&self.settings.session.file.dir);
            assert!(left.is_empty(), "session files left behind: {left:?}");
        }
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
        self.store = None;
        self.isolation.drop_database().await;
        self.finished = true;
    }

    /// Stops the server without cleaning up (to restart over the same store).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn temp_dir(&self) -> &std::path::Path {
        self.isolation.dir.path()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // A failed test still drops its database (best effort).
        if let Some((server, admin, name)) = self.isolation.database.take() {
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
        if !self.finished && !std::thread::panicking() {
            panic!("TestApp dropped without finish(): the test did not clean its sessions up");
        }
    }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// One browser-like visitor: a client with its own cookie jar.
#[derive(Clone)]
pub struct Visitor {
    pub address: String,
    pub client: reqwest::Client,
    pub jar: Arc<RecordingJar>,
}

impl Visitor {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn put_json(&self, path: &str, value: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .json(value)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST form")
    }

    /// `GET /api/session` as JSON.
    pub async fn session(&self) -> Value {
        let resp = self.get("/api/session").await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.expect("JSON")
    }

    pub async fn set(&self, key: &str, value: Value) {
        let resp = self.put_json(&format!("/api/session/{key}"), &value).await;
        assert_eq!(resp.status(), StatusCode::OK, "PUT {key}");
    }

    pub async fn value(&self, key: &str) -> Option<Value> {
        let resp = self.get(&format!("/api/session/{key}")).await;
        match resp.status() {
            StatusCode::OK => Some(resp.json::<Value>().await.expect("JSON")["value"].clone()),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET {key}: unexpected {other}"),
        }
    }

    /// The session cookie value this visitor holds, if any.
    pub fn session_cookie(&self, name: &str) -> Option<String> {
        let url = self.address.parse().expect("URL");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// Replaces the session cookie (to replay an old one, or forge one).
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url = self.address.parse().expect("URL");
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &url);
    }

    /// The CSRF token of the root page's forms (fetching the page first).
    pub async fn csrf_token(&self) -> String {
        let html = self.get("/").await.text().await.expect("page");
        csrf_from(&html)
    }
}

pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    let end = start + html[start..].find('"').expect("end of token");
    html[start..end].to_owned()
}

/// The `Set-Cookie` headers of a response that set cookie `name`.
pub fn set_cookies<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter(|h| h.starts_with(&format!("{name}=")))
        .collect()
}

/// The Max-Age of a `Set-Cookie` line, in seconds.
pub fn max_age(set_cookie: &str) -> Option<i64> {
    set_cookie
        .split(';')
        .map(str::trim)
        .find_map(|attr| attr.strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
}

pub fn assert_see_other(resp: &reqwest::Response, location: &str) {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "expected 303");
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(location),
        "redirect target"
    );
}

/// A clock the test sets behind the real one. What the app writes while it
/// lags has already expired by the stores' own clocks (file times, SQL
/// `expires_at` against the real time): expired records without waiting.
#[derive(Debug, Default)]
pub struct LaggingClock {
    behind_ms: std::sync::atomic::AtomicU64,
}

impl LaggingClock {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// `Duration::ZERO` puts it back on the real time.
    pub fn set_behind(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).expect("a sane lag");
        self.behind_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for LaggingClock {
    fn now(&self) -> time::OffsetDateTime {
        let behind = self.behind_ms.load(std::sync::atomic::Ordering::SeqCst);
        time::OffsetDateTime::now_utc() - Duration::from_millis(behind)
    }
}

/// Retries `attempt` until it gives `Some`, or `limit` has passed (`None`).
/// The one place the tests wait on real time to watch something that runs
/// on its own: a process starting or exiting, a browser loading a page, a
/// store coming back, another process queueing on a lock.
pub async fn poll<T>(limit: Duration, mut attempt: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(found) = attempt().await {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        // Real time: what is watched does not read the engine's clock.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Like [`poll`] for a condition: panics with `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let held = poll(limit, async || check().await.then_some(())).await;
    assert!(held.is_some(), "{what}: not within {limit:?}");
}

/// Sends SIGTERM to a served binary and asserts that it exits cleanly.
pub async fn stop_gracefully(mut child: std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful exit: {status}");
}

/// Runs scenarios on backends, each scenario and backend named once:
///
/// ```ignore
/// backends! {
///     #[tokio::test]
///     [file, memory, sqlite] => {
///         scenarios::{idle_expiry_ends_a_quiet_session, absolute_expiry_ends_an_active_session},
///         #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///         concurrency::{serialized_increments_are_exact},
///     }
/// }
/// ```
///
/// makes one module per backend and one test per scenario in it
/// (`file::idle_expiry_ends_a_quiet_session`, …), each calling
/// `<module>::<scenario>(Kind::…)`, the module named as it is where the
/// macro is invoked (each backend's module imports `super::*`). The attribute before the list
/// marks every test; one before a group replaces it for that group's tests.
/// Backend names: file, memory, sqlite, postgres, mysql, redis,
/// redis_cluster, rediss, rediss_cluster, redis_sentinel, memcached,
/// cookie_private, cookie_signed.
#[macro_export]
macro_rules! backends {
    (#[$test:meta] [$($backend:ident),+ $(,)?] => $groups:tt) => {
        $( $crate::backends!(@backend $backend, [$test], $groups); )+
    };
    (@backend $backend:ident, [$test:meta], {
        $( $(#[$own:meta])? $module:ident :: { $($scenario:ident),+ $(,)? } ),+ $(,)?
    }) => {
        mod $backend {
            use super::*;
            $( $crate::backends!(@group $backend, [$test], [$($own)?], $module, [$($scenario),+]); )+
        }
    };
    (@group $backend:ident, [$test:meta], [], $module:ident, [$($scenario:ident),+]) => {
        $(
            #[$test]
            async fn $scenario() {
                $module::$scenario($crate::backends!(@kind $backend)).await
            }
        )+
    };
    (@group $backend:ident, [$test:meta], [$own:meta], $module:ident, [$($scenario:ident),+]) => {
        $crate::backends!(@group $backend, [$own], [], $module, [$($scenario),+]);
    };
    (@kind file) => { $crate::support::Kind::File };
    (@kind memory) => { $crate::support::Kind::Memory };
    (@kind sqlite) => { $crate::support::Kind::Sqlite };
    (@kind postgres) => { $crate::support::Kind::Postgres };
    (@kind mysql) => { $crate::support::Kind::Mysql };
    (@kind redis) => { $crate::support::Kind::Redis };
    (@kind redis_cluster) => { $crate::support::Kind::RedisCluster };
    (@kind rediss) => { $crate::support::Kind::Rediss };
    (@kind rediss_cluster) => { $crate::support::Kind::RedissCluster };
    (@kind redis_sentinel) => { $crate::support::Kind::RedisSentinel };
    (@kind memcached) => { $crate::support::Kind::Memcached };
    (@kind cookie_private) => { $crate::support::Kind::Cookie };
    (@kind cookie_signed) => { $crate::support::Kind::CookieSigned };
}
