//! The browser scenarios, written once and run against every backend: real
//! Chromium over the real pages, found by their stable element ids.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{Browser, OneBrowser, browser, browsers};
use super::support::{Kind, TestApp, spawn_app, spawn_app_with_clock};
use websessions::config::Settings;
use websessions::sessions::policy::{Clock, ManualClock, SystemClock};

/// A browser, then the app (so a missing chromedriver skips before anything
/// starts). `None`: skipped, the skip line has been printed.
async fn start(kind: Kind) -> Option<(TestApp, OneBrowser)> {
    start_with(kind, |_| {}).await
}

async fn start_with(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
) -> Option<(TestApp, OneBrowser)> {
    start_with_clock(kind, adjust, Arc::new(SystemClock)).await
}

/// Like `start_with`, the engine reading `clock` (moved instead of slept on).
async fn start_with_clock(
    kind: Kind,
    adjust: impl FnOnce(&mut Settings),
    clock: Arc<dyn Clock>,
) -> Option<(TestApp, OneBrowser)> {
    let b = browser().await?;
    match spawn_app_with_clock(kind, adjust, clock).await {
        Some(app) => Some((app, b)),
        None => {
            b.close().await;
            None
        }
    }
}

fn cookie_name(app: &TestApp) -> String {
    app.settings.session.cookie_name.clone()
}

/// Opens the root page and stores `key = value` through the form.
async fn store(app: &TestApp, b: &Browser, key: &str, value: &str) {
    let here = b.client.current_url().await.expect("current URL");
    if !here.as_str().starts_with(&app.address) || here.path() != "/" {
        b.open(&app.url("/")).await;
    }
    b.store(key, value).await;
    assert_eq!(b.path().await, "/", "the set form redirects to /");
}

fn json(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

pub async fn first_visit_creates_no_session(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    b.open(&app.url("/")).await;
    assert!(b.text("session-new").await.starts_with("yes"));
    assert_eq!(b.text("fingerprint").await, "no session");
    assert!(b.exists("session-empty").await);
    assert!(b.exists("at-rest-none").await);
    assert!(!b.exists("flash").await);
    assert_eq!(
        b.text("backend").await,
        app.settings.session.backend.to_string()
    );
    b.reload().await;
    assert!(b.text("session-new").await.starts_with("yes"));
    assert_eq!(
        b.cookie(&name).await,
        None,
        "looking creates no session cookie"
    );
    app.assert_stored(0).await;

    b.store("greeting", "hello").await;
    assert!(b.text("session-new").await.starts_with("no"));
    assert!(b.cookie(&name).await.is_some(), "a write sets the cookie");
    app.assert_stored(1).await;

    b.close().await;
    app.finish().await;
}

pub async fn a_stored_value_shows_in_the_table_and_the_flash(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    store(&app, &b, "color", "blue").await;
    assert!(
        b.text("flash").await.contains("color"),
        "flash: {}",
        b.text("flash").await
    );
    let rows = b.user_rows().await;
    assert_eq!(rows.get("color"), Some(&json("blue")), "rows: {rows:?}");
    assert!(!b.exists("session-empty").await);
    assert!(!b.text("fingerprint").await.is_empty());
    // The at-rest panel shows the stored record.
    assert!(b.exists("at-rest").await);
    let content = b.text("at-rest-content").await;
    if kind == Kind::Cookie {
        // The private cookie backend: the browser holds only ciphertext.
        assert!(
            content.contains("encrypted") && !content.contains("color"),
            "at rest: {content}"
        );
    } else {
        assert!(content.contains("color"), "at rest: {content}");
    }

    store(&app, &b, "color", "green").await;
    assert_eq!(b.user_rows().await.get("color"), Some(&json("green")));
    app.assert_stored(1).await;

    b.close().await;
    app.finish().await;
}

pub async fn a_reload_keeps_the_data(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    store(&app, &b, "name", "Ada").await;
    let fingerprint = b.text("fingerprint").await;
    let visits: i64 = b.text("visits").await.parse().expect("visits a number");
    b.reload().await;
    assert_eq!(b.user_rows().await.get("name"), Some(&json("Ada")));
    assert_eq!(b.text("fingerprint").await, fingerprint);
    assert!(!b.exists("flash").await, "a flash shows once");
    let after: i64 = b.text("visits").await.parse().expect("visits a number");
    assert_eq!(after, visits + 1, "a reload of / counts a visit");
    b.open(&app.url("/")).await;
    assert_eq!(b.user_rows().await.get("name"), Some(&json("Ada")));

    b.close().await;
    app.finish().await;
}

pub async fn get_shows_the_value_or_the_marked_default(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    store(&app, &b, "color", "blue").await;

    // Absent: the default, marked as such.
    b.fill("get-key-input", "size").await;
    b.fill("get-default", "medium").await;
    b.submit("get-submit").await;
    assert!(b.path().await.starts_with("/session/get?"));
    assert_eq!(b.text("get-key").await, "size");
    assert_eq!(b.text("get-value").await, "medium");
    assert!(b.exists("get-default-used").await);

    // Present: the stored value (as JSON), no default marker.
    b.open(&app.url("/")).await;
    b.fill("get-key-input", "color").await;
    b.fill("get-default", "none").await;
    b.submit("get-submit").await;
    assert_eq!(b.text("get-key").await, "color");
    assert_eq!(b.text("get-value").await, json("blue"));
    assert!(!b.exists("get-default-used").await);

    // Reading wrote nothing.
    b.open(&app.url("/")).await;
    let rows = b.user_rows().await;
    assert_eq!(rows.len(), 1, "rows: {rows:?}");

    b.close().await;
    app.finish().await;
}

pub async fn a_removed_key_leaves_the_table(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    store(&app, &b, "keep", "1").await;
    store(&app, &b, "drop", "2").await;
    b.fill("remove-key", "drop").await;
    b.submit("remove-submit").await;
    assert_eq!(b.path().await, "/");
    assert!(b.text("flash").await.contains("Removed"));
    let rows = b.user_rows().await;
    assert_eq!(rows.get("keep"), Some(&json("1")));
    assert!(!rows.contains_key("drop"), "rows: {rows:?}");

    // Removing an absent key says so and changes nothing.
    b.fill("remove-key", "drop").await;
    b.submit("remove-submit").await;
    assert!(b.text("flash").await.contains("nothing to remove"));
    assert_eq!(b.user_rows().await.len(), 1);

    b.close().await;
    app.finish().await;
}

pub async fn an_explicit_save_keeps_the_id_and_creates_nothing_alone(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    // Without a session, saving creates nothing.
    b.open(&app.url("/")).await;
    b.submit("save-submit").await;
    assert!(b.text("flash").await.contains("no session to save"));
    assert_eq!(b.cookie(&name).await, None);
    app.assert_stored(0).await;

    store(&app, &b, "k", "v").await;
    let fingerprint = b.text("fingerprint").await;
    b.submit("save-submit").await;
    assert_eq!(b.path().await, "/");
    assert!(b.text("flash").await.contains("Saved"));
    assert_eq!(b.user_rows().await.get("k"), Some(&json("v")));
    assert_eq!(
        b.text("fingerprint").await,
        fingerprint,
        "save keeps the id"
    );
    app.assert_stored(1).await;

    b.close().await;
    app.finish().await;
}

pub async fn cycling_changes_the_fingerprint_and_keeps_the_data(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    store(&app, &b, "a", "1").await;
    store(&app, &b, "b", "2").await;
    let before_fp = b.text("fingerprint").await;
    let before_cookie = b.cookie(&name).await.expect("a session cookie");
    let before_rows = b.user_rows().await;

    b.submit("cycle-submit").await;
    assert_eq!(b.path().await, "/");
    let after_fp = b.text("fingerprint").await;
    assert_ne!(after_fp, before_fp, "cycle changes the id");
    let flash = b.text("flash").await;
    assert!(
        flash.contains(&before_fp) && flash.contains(&after_fp),
        "flash: {flash}"
    );
    assert_ne!(b.cookie(&name).await.expect("a cookie"), before_cookie);
    assert_eq!(b.user_rows().await, before_rows, "cycle keeps the data");
    app.assert_stored(1).await;

    b.close().await;
    app.finish().await;
}

pub async fn deleting_the_session_drops_the_cookie_and_the_data(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    store(&app, &b, "a", "1").await;
    assert!(b.cookie(&name).await.is_some());

    b.submit("delete-submit").await;
    assert_eq!(b.path().await, "/?done=deleted");
    assert!(b.text("flash").await.contains("deleted"));
    assert!(b.exists("session-empty").await);
    assert!(!b.exists("session-data").await);
    assert!(b.text("session-new").await.starts_with("yes"));
    assert_eq!(b.cookie(&name).await, None, "chromium dropped the cookie");
    app.assert_stored(0).await;

    // Looking again recreates nothing.
    b.reload().await;
    assert_eq!(b.cookie(&name).await, None);
    app.assert_stored(0).await;

    // Storing again starts a new session, without the old data.
    b.store("b", "2").await;
    let rows = b.user_rows().await;
    assert_eq!(rows.len(), 1, "rows: {rows:?}");
    assert_eq!(rows.get("b"), Some(&json("2")));
    app.assert_stored(1).await;

    b.close().await;
    app.finish().await;
}

pub async fn login_cycles_the_id_and_logout_ends_the_session(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    store(&app, &b, "cart", "3 books").await;
    let before_fp = b.text("fingerprint").await;
    assert!(!b.exists("user").await);

    b.fill("login-name", "Grace").await;
    b.submit("login-submit").await;
    assert_eq!(b.path().await, "/");
    assert_eq!(b.text("user").await, "Grace");
    assert!(b.text("flash").await.contains("Logged in as Grace"));
    assert_ne!(
        b.text("fingerprint").await,
        before_fp,
        "login cycles the id"
    );
    assert_eq!(b.user_rows().await.get("cart"), Some(&json("3 books")));
    assert!(b.exists("form-logout").await);
    assert!(!b.exists("form-login").await);
    // The session, and the user's index of sessions (`/account/sessions`).
    app.assert_stored(2).await;

    b.submit("logout-submit").await;
    assert_eq!(b.path().await, "/?done=logged_out");
    assert!(b.text("flash").await.contains("logged out"));
    assert!(!b.exists("user").await);
    assert!(b.exists("session-empty").await);
    assert!(b.exists("form-login").await);
    assert_eq!(b.cookie(&name).await, None);
    app.assert_stored(0).await;

    b.close().await;
    app.finish().await;
}

pub async fn stale_csrf_token_is_refused(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    store(&app, &b, "color", "blue").await;
    // A token bound to the session id before it changed.
    let stale = b
        .client
        .execute(
            "return document.querySelector('#form-set input[name=csrf_token]').value;",
            vec![],
        )
        .await
        .expect("the token");
    b.submit("cycle-submit").await;
    let rows = b.user_rows().await;

    b.client
        .execute(
            "document.querySelector('#form-set input[name=csrf_token]').value = arguments[0];",
            vec![stale],
        )
        .await
        .expect("plant the stale token");
    b.fill("set-key", "color").await;
    b.fill("set-value", "red").await;
    b.submit("set-submit").await;
    assert_eq!(b.text("error-status").await, "403");
    let message = b.text("error-message").await;
    assert!(message.contains("CSRF"), "message: {message}");
    assert!(b.exists("nav-home").await, "the error page uses the layout");

    // A forged token is refused the same way.
    b.open(&app.url("/")).await;
    b.client
        .execute(
            "document.querySelector('#form-remove input[name=csrf_token]').value = 'forged';",
            vec![],
        )
        .await
        .expect("plant a forged token");
    b.fill("remove-key", "color").await;
    b.submit("remove-submit").await;
    assert_eq!(b.text("error-status").await, "403");

    b.open(&app.url("/")).await;
    assert_eq!(b.user_rows().await, rows, "nothing changed");
    app.assert_stored(1).await;

    b.close().await;
    app.finish().await;
}

pub async fn a_refused_write_shows_its_error_inline(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    // A fresh visitor whose write is refused gets no session.
    b.open(&app.url("/")).await;
    b.store("_user", "mallory").await;
    assert_eq!(
        b.path().await,
        "/session/set",
        "re-rendered, not redirected"
    );
    assert!(b.exists("form-error").await);
    assert!(!b.text("form-error").await.is_empty());
    assert_eq!(
        b.find("set-key").await.prop("value").await.expect("value"),
        Some("_user".into()),
        "the typed key is kept"
    );
    assert_eq!(b.cookie(&name).await, None);
    app.assert_stored(0).await;

    // With a session, a refused write leaves it as it was.
    store(&app, &b, "color", "blue").await;
    let rows = b.user_rows().await;
    b.store("_visits", "1000").await;
    assert!(b.exists("form-error").await);
    b.open(&app.url("/")).await;
    assert_eq!(b.user_rows().await, rows);

    b.close().await;
    app.finish().await;
}

pub async fn markup_in_keys_and_values_is_text(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let key = "a\"b<i>k</i>";
    let value = "<b>bold</b> & <img src=x onerror=alert(1)>";
    store(&app, &b, key, value).await;
    let rows = b.user_rows().await;
    assert_eq!(rows.get(key), Some(&json(value)), "rows: {rows:?}");
    for tag in ["i", "b", "img"] {
        let found = b
            .client
            .find_all(fantoccini::Locator::Css(&format!("#session-data {tag}")))
            .await
            .expect("find_all");
        assert!(found.is_empty(), "a <{tag}> element was injected");
    }
    // The same on the read page, and in the flash.
    assert!(b.text("flash").await.contains(key));
    let page = format!(
        "/session/get?key={}",
        url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
    );
    b.open(&app.url(&page)).await;
    assert_eq!(b.text("get-key").await, key);
    assert_eq!(b.text("get-value").await, json(value));

    b.close().await;
    app.finish().await;
}

pub async fn session_cookie_is_http_only(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let name = cookie_name(&app);
    store(&app, &b, "secret", "s3").await;
    assert!(b.cookie(&name).await.is_some(), "chromium holds the cookie");
    let seen = b.document_cookie().await;
    assert!(
        !seen.contains(&name),
        "document.cookie shows the session cookie: {seen}"
    );

    b.close().await;
    app.finish().await;
}

pub async fn two_visitors_never_meet(kind: Kind) {
    let Some(all) = browsers(2).await else {
        return;
    };
    let app = spawn_app(kind).await.expect("app");
    let name = cookie_name(&app);
    let (alice, bob) = (&all.list[0], &all.list[1]);
    store(&app, alice, "who", "alice").await;
    store(&app, bob, "who", "bob").await;
    store(&app, alice, "only-alice", "x").await;
    app.assert_stored(2).await;

    alice.open(&app.url("/")).await;
    bob.open(&app.url("/")).await;
    let a = alice.user_rows().await;
    let b = bob.user_rows().await;
    assert_eq!(a.get("who"), Some(&json("alice")));
    assert_eq!(b.get("who"), Some(&json("bob")));
    assert!(!b.contains_key("only-alice"), "bob sees: {b:?}");
    assert_ne!(
        alice.text("fingerprint").await,
        bob.text("fingerprint").await
    );
    assert_ne!(alice.cookie(&name).await, bob.cookie(&name).await);

    // One leaving does not touch the other.
    alice.submit("delete-submit").await;
    bob.reload().await;
    assert_eq!(bob.user_rows().await.get("who"), Some(&json("bob")));
    app.assert_stored(1).await;

    all.close().await;
    app.finish().await;
}

/// The `#expires-at` shown by `/session/get`: three loads, the last two
/// more than `touch_interval` (1 s) after the first on the engine's clock.
/// A page shows the expiry as loaded, so a touch by the second load shows
/// on the third.
async fn expiry_across_reads(app: &TestApp, b: &Browser, clock: &ManualClock) -> [String; 3] {
    store(app, b, "color", "blue").await;
    let page = app.url("/session/get?key=color&default=none");
    b.open(&page).await;
    assert_eq!(b.text("get-value").await, json("blue"));
    let first = b.expires_at().await;
    clock.advance(Duration::from_millis(1300));
    b.open(&page).await;
    let second = b.expires_at().await;
    b.open(&page).await;
    let third = b.expires_at().await;
    [first, second, third]
}

pub async fn with_extension_off_a_read_does_not_move_the_expiry(kind: Kind) {
    let clock = ManualClock::new();
    let Some((app, b)) = start_with_clock(
        kind,
        |s| s.session.extend_on_every_request = false,
        clock.clone(),
    )
    .await
    else {
        return;
    };
    let [first, second, third] = expiry_across_reads(&app, &b, &clock).await;
    assert_eq!(first, second, "a read moved the expiry");
    assert_eq!(first, third, "a read moved the expiry");

    b.close().await;
    app.finish().await;
}

/// The control of the test above: with the default, a read does extend.
pub async fn a_read_moves_the_expiry(kind: Kind) {
    let clock = ManualClock::new();
    let Some((app, b)) = start_with_clock(kind, |_| {}, clock.clone()).await else {
        return;
    };
    let [first, _, third] = expiry_across_reads(&app, &b, &clock).await;
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
    };
    assert!(
        parse(&third) > parse(&first),
        "a read did not extend: {first} then {third}"
    );

    b.close().await;
    app.finish().await;
}

pub async fn the_account_page_lists_the_signed_in_sessions(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    b.open(&app.url("/account/sessions")).await;
    assert!(b.exists("account-anonymous").await);

    b.open(&app.url("/")).await;
    b.fill("login-name", "Linus").await;
    b.submit("login-submit").await;
    let fingerprint = b.text("fingerprint").await;

    b.follow("nav-account").await;
    assert_eq!(b.path().await, "/account/sessions");
    assert_eq!(b.text("user").await, "Linus");
    assert!(!b.exists("account-anonymous").await);
    if !kind.server_side() {
        // The cookie backend keeps no list of sessions, and says so.
        assert!(b.exists("account-note").await);
        b.close().await;
        app.finish().await;
        return;
    }
    assert!(b.exists("account-sessions").await);
    let row = format!("account-{fingerprint}");
    assert!(b.exists(&row).await, "no row #{row}");
    let ua = b.css_text(&format!("#{row} td.ua")).await;
    assert!(ua.contains("Chrome"), "user agent: {ua}");

    b.close().await;
    app.finish().await;
}

pub async fn the_not_found_page_uses_the_layout(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    b.open(&app.url("/no/such/page")).await;
    assert_eq!(b.text("error-status").await, "404");
    assert!(!b.text("error-message").await.is_empty());
    assert!(b.exists("nav-home").await, "the layout's navigation");
    assert!(b.exists("nav-account").await);
    let title = b.client.title().await.expect("title");
    assert!(title.ends_with("· websessions"), "title: {title}");
    // The stylesheet applies: the header is laid out, not raw HTML.
    let header = b
        .client
        .execute(
            "return getComputedStyle(document.querySelector('.site-header')).display;",
            vec![],
        )
        .await
        .expect("style");
    assert_ne!(header, serde_json::json!("inline"), "no stylesheet");
    assert_eq!(b.cookie(&cookie_name(&app)).await, None);
    app.assert_stored(0).await;

    b.close().await;
    app.finish().await;
}

/// Where the docs' screenshots go, and whether this run rewrites them.
fn write_screenshot(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/").to_owned() + name;
        std::fs::write(&path, png).expect("write the screenshot");
        println!("wrote {path}");
    }
}

/// Sizes the window to the whole page (at most `max_height`), so one
/// screenshot shows every card, and returns the viewport's height.
async fn fit_window(b: &Browser, width: u32, max_height: u32) -> f64 {
    // Small first: scrollHeight is never less than the viewport.
    b.client
        .set_window_size(width, 400)
        .await
        .expect("window size");
    let page = b
        .client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .expect("page height")
        .as_f64()
        .expect("a number")
        // scrollHeight is rounded; boxes may end a fraction below it.
        + 2.0;
    // The window's frame takes some of its height: grow until it fits.
    let mut height = (page as u32 + 20).min(max_height);
    for _ in 0..5 {
        b.client
            .set_window_size(width, height)
            .await
            .expect("window size");
        let inner = b
            .client
            .execute("return window.innerHeight;", vec![])
            .await
            .expect("viewport height")
            .as_f64()
            .expect("a number");
        if inner >= page || height >= max_height {
            return inner;
        }
        height = (height + (page - inner) as u32 + 1).min(max_height);
    }
    panic!("the window never fitted a page {page}px high");
}

/// The top and bottom of an element, in viewport pixels.
async fn bounds(b: &Browser, id: &str) -> (f64, f64) {
    let r = b
        .client
        .execute(
            "const r = document.getElementById(arguments[0]).getBoundingClientRect(); return [r.top, r.bottom];",
            vec![serde_json::json!(id)],
        )
        .await
        .expect("bounding rect");
    let n = |i: usize| r[i].as_f64().expect("a number");
    (n(0), n(1))
}

/// The docs' picture of the root page on one backend: a few keys stored,
/// and the "at rest" panel showing where they live, whole in the viewport.
/// Written to `docs/{file}` only when `UPDATE_SCREENSHOTS=1`; the
/// assertions run either way.
pub async fn screenshot_root(kind: Kind, file: &str) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    store(&app, &b, "name", "Ada Lovelace").await;
    store(&app, &b, "color", "teal").await;
    store(&app, &b, "cart", "2 books, 1 lamp").await;
    b.open(&app.url("/")).await;
    let viewport = fit_window(&b, 1100, 2000).await;

    assert_eq!(
        b.text("backend").await,
        app.settings.session.backend.to_string()
    );
    let rows = b.rows().await;
    assert_eq!(rows.get("color").map(String::as_str), Some("\"teal\""));
    assert!(b.exists("at-rest").await);
    assert!(!b.exists("at-rest-none").await, "the panel shows a record");
    let (top, bottom) = bounds(&b, "at-rest").await;
    assert!(
        top >= 0.0 && bottom <= viewport,
        "the at-rest panel ({top}..{bottom}) is not inside the viewport (0..{viewport})"
    );
    let kind_text = b.text("at-rest-kind").await;
    let location = b.text("at-rest-location").await;
    let panel = b.text("at-rest").await;
    let cookie = b
        .cookie(&cookie_name(&app))
        .await
        .expect("a session cookie");
    assert!(!panel.contains(&cookie), "the panel shows the cookie value");
    match kind {
        Kind::Cookie | Kind::CookieSigned => {
            assert_eq!(kind_text, "cookie");
            assert!(panel.contains("of 4096 bytes"), "cookie size: {panel}");
            // The cookie is the record: no server-side hash to speak of.
            assert!(!b.exists("at-rest-hashed").await);
        }
        _ => {
            assert!(b.exists("at-rest-hashed").await);
            let content = b.text("at-rest-content").await;
            assert!(content.contains("Ada Lovelace"), "content: {content}");
            assert!(!location.starts_with('/'), "an absolute path: {location}");
            if kind == Kind::File {
                assert_eq!(kind_text, "file");
            } else {
                assert!(kind_text.ends_with(" row"), "kind: {kind_text}");
                assert!(location.starts_with("table sessions"), "{location}");
            }
        }
    }
    write_screenshot(file, &b.client.screenshot().await.expect("screenshot"));

    b.close().await;
    app.finish().await;
}

/// The docs' picture of "Your sessions": signed in here and from a second
/// client, so the list has a row to revoke. `docs/screenshot-account.png`.
pub async fn screenshot_account(kind: Kind) {
    let Some((app, b)) = start(kind).await else {
        return;
    };
    let phone = app.visitor();
    let token = phone.csrf_token().await;
    let resp = phone
        .post_form("/login", &[("csrf_token", &token), ("name", "Ada")])
        .await;
    super::support::assert_see_other(&resp, "/");

    b.open(&app.url("/")).await;
    b.fill("login-name", "Ada").await;
    b.submit("login-submit").await;
    let fingerprint = b.text("fingerprint").await;
    b.follow("nav-account").await;
    let viewport = fit_window(&b, 1100, 900).await;

    assert_eq!(b.text("user").await, "Ada");
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css("#account-sessions tr.account-row"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2, "this browser and the second client");
    assert!(b.exists(&format!("account-{fingerprint}")).await);
    assert!(b.exists("revoke-others-submit").await);
    let (top, bottom) = bounds(&b, "account-sessions").await;
    assert!(
        top >= 0.0 && bottom <= viewport,
        "the list ({top}..{bottom}) is not inside the viewport (0..{viewport})"
    );
    write_screenshot(
        "screenshot-account.png",
        &b.client.screenshot().await.expect("screenshot"),
    );

    b.close().await;
    app.finish().await;
}
