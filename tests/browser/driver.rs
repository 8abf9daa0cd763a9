//! The browser side of the harness: one chromedriver per test binary, a
//! fresh headless Chromium (own profile directory) per test, and at most
//! two browsers at a time.
//!
//! chromedriver runs under a small `sh` watchdog in its own process group:
//! the watchdog reads its stdin, a pipe whose write end only this process
//! holds. When the test binary exits (however it exits), the pipe closes,
//! `read` returns and the watchdog kills the whole group: chromedriver and
//! any Chromium a failed test left behind.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::support::eventually;

/// How many browsers may run at once in this test binary.
const MAX_BROWSERS: u32 = 2;
/// How long a page may take to settle after a navigation or a click.
const SETTLE: Duration = Duration::from_secs(20);

pub const SKIP_LINE: &str = "SKIP browser: chromedriver not found";

static BROWSERS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_BROWSERS as usize));
static DRIVER: OnceCell<Option<Driver>> = OnceCell::const_new();

/// The running chromedriver (through its watchdog).
struct Driver {
    url: String,
    /// Kept so the watchdog's stdin pipe stays open until the process exits.
    _watchdog: Child,
}

/// `CHROMEDRIVER`, then /usr/bin/chromedriver, then `PATH`.
fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    let debian = PathBuf::from("/usr/bin/chromedriver");
    if is_executable(&debian) {
        return Some(debian);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Chromium binary: `CHROMIUM`, else Debian's.
fn chromium_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_driver() -> Option<Driver> {
    let binary = find_chromedriver()?;
    let port = free_port();
    let watchdog = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#""$0" --port="$1" --log-level=WARNING >/dev/null 2>&1 & read _eof; kill -TERM 0"#)
        .arg(&binary)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    eventually(
        Duration::from_secs(20),
        &format!(
            "chromedriver ({}) listening on port {port}",
            binary.display()
        ),
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    Some(Driver {
        url,
        _watchdog: watchdog,
    })
}

/// One headless Chromium, driven through WebDriver. Close it with
/// [`Browser::close`] before `app.finish()`.
pub struct Browser {
    pub client: Client,
    _profile: TempDir,
}

/// Browsers started together, holding their share of the semaphore.
pub struct Browsers {
    pub list: Vec<Browser>,
    _permit: SemaphorePermit<'static>,
}

impl Browsers {
    pub async fn close(self) {
        for browser in self.list {
            browser.close().await;
        }
    }
}

/// `n` fresh browsers (separate profiles: separate visitors), or `None`
/// after printing the skip line when there is no chromedriver.
pub async fn browsers(n: u32) -> Option<Browsers> {
    assert!((1..=MAX_BROWSERS).contains(&n));
    let driver = DRIVER.get_or_init(start_driver).await;
    let Some(driver) = driver else {
        println!("{SKIP_LINE}");
        return None;
    };
    // All at once, so two tests never each hold half of what they need.
    let permit = BROWSERS.acquire_many(n).await.expect("semaphore open");
    let mut list = Vec::new();
    for _ in 0..n {
        list.push(Browser::launch(&driver.url).await);
    }
    Some(Browsers {
        list,
        _permit: permit,
    })
}

/// One browser holding its permit; derefs to [`Browser`].
pub struct OneBrowser {
    browser: Browser,
    _permit: SemaphorePermit<'static>,
}

impl std::ops::Deref for OneBrowser {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl OneBrowser {
    pub async fn close(self) {
        self.browser.close().await;
    }
}

/// One browser; see [`browsers`].
pub async fn browser() -> Option<OneBrowser> {
    let mut all = browsers(1).await?;
    let browser = all.list.pop().expect("one browser");
    Some(OneBrowser {
        browser,
        _permit: all._permit,
    })
}

impl Browser {
    async fn launch(driver_url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("a profile dir");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(driver_url)
            .await
            .expect("a WebDriver session with chromium");
        Browser {
            client,
            _profile: profile,
        }
    }

    pub async fn close(self) {
        self.client.close().await.expect("close the browser");
    }

    /// Navigates and waits for the page.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.settled().await;
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.mark_page().await;
        self.client.refresh().await.expect("reload");
        self.wait_new_page().await;
    }

    /// Clicks a submit button and waits until the next page has loaded
    /// (after the redirect, if any).
    pub async fn submit(&self, button_id: &str) {
        self.mark_page().await;
        self.find(button_id).await.click().await.expect("click");
        self.wait_new_page().await;
    }

    /// Clicks a link and waits for the page it leads to.
    pub async fn follow(&self, link_id: &str) {
        self.submit(link_id).await;
    }

    async fn mark_page(&self) {
        self.client
            .execute("window.__wsOldPage = true;", vec![])
            .await
            .expect("mark the page");
    }

    async fn wait_new_page(&self) {
        self.until_true(
            "return window.__wsOldPage === undefined && document.readyState === 'complete';",
            "the next page loaded",
        )
        .await;
    }

    /// Polls `script` until the page answers `true`.
    async fn until_true(&self, script: &str, what: &str) {
        eventually(SETTLE, what, async || {
            let ready = self.client.execute(script, vec![]).await;
            matches!(ready, Ok(Value::Bool(true)))
        })
        .await;
    }

    async fn settled(&self) {
        self.until_true(
            "return document.readyState === 'complete';",
            "the page loaded",
        )
        .await;
    }

    pub async fn find(&self, id: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Id(id)).await {
            Ok(element) => element,
            Err(e) => panic!(
                "#{id} on {}: {e}\n{}",
                self.path().await,
                self.client.source().await.unwrap_or_default()
            ),
        }
    }

    pub async fn exists(&self, id: &str) -> bool {
        !self
            .client
            .find_all(Locator::Id(id))
            .await
            .expect("find_all")
            .is_empty()
    }

    pub async fn text(&self, id: &str) -> String {
        self.find(id).await.text().await.expect("text")
    }

    pub async fn css_text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// Replaces the content of an input.
    pub async fn fill(&self, id: &str, value: &str) {
        let input = self.find(id).await;
        input.clear().await.expect("clear");
        input.send_keys(value).await.expect("type");
    }

    /// Path and query of the current page.
    pub async fn path(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            },
            Err(e) => format!("<no url: {e}>"),
        }
    }

    /// The root page's table: key → value as shown (JSON), every row.
    pub async fn rows(&self) -> BTreeMap<String, String> {
        let mut rows = BTreeMap::new();
        let found = self
            .client
            .find_all(Locator::Css("#session-data tr.data-row"))
            .await
            .expect("rows");
        for row in found {
            let key = row
                .attr("data-key")
                .await
                .expect("data-key")
                .expect("a data-key");
            let shown = row
                .find(Locator::Css("td.key"))
                .await
                .expect("td.key")
                .text()
                .await
                .expect("key text");
            assert!(shown.starts_with(&key), "td.key {shown:?} vs {key:?}");
            let value = row
                .find(Locator::Css("td.value"))
                .await
                .expect("td.value")
                .text()
                .await
                .expect("value text");
            rows.insert(key, value);
        }
        rows
    }

    /// The visitor's own rows (keys not starting with `_`).
    pub async fn user_rows(&self) -> BTreeMap<String, String> {
        let mut rows = self.rows().await;
        rows.retain(|k, _| !k.starts_with('_'));
        rows
    }

    /// Chromium's cookie `name` for the current page's site.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .expect("cookies")
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// What page scripts can see: `document.cookie`.
    pub async fn document_cookie(&self) -> String {
        match self
            .client
            .execute("return document.cookie;", vec![])
            .await
            .expect("document.cookie")
        {
            Value::String(s) => s,
            other => panic!("document.cookie: {other}"),
        }
    }

    /// The `datetime` of `#expires-at time`.
    pub async fn expires_at(&self) -> String {
        self.client
            .find(Locator::Css("#expires-at time"))
            .await
            .expect("#expires-at time")
            .attr("datetime")
            .await
            .expect("datetime")
            .expect("a datetime attribute")
    }

    /// Stores a key through the root page's form (the page must be open).
    pub async fn store(&self, key: &str, value: &str) {
        self.fill("set-key", key).await;
        self.fill("set-value", value).await;
        self.submit("set-submit").await;
    }
}
