//! Sessions at the edge of their size limit: the check covers the final
//! record of the response (the flash message, the visit counter, the
//! login's `_user`), never only the value being written.

use reqwest::StatusCode;
use serde_json::json;

use crate::reliability::common::COOKIE;
use crate::support::{Kind, TestApp, Visitor, spawn_app, spawn_app_with};

/// Browsers keep a cookie of at most this many bytes (name and value).
const MAX_COOKIE_BYTES: usize = 4096;

/// Every session `Set-Cookie` of a response fits the browser's limit, and
/// the response is not a 5xx.
fn assert_cookies_fit(resp: &reqwest::Response, what: &str) {
    assert!(
        !resp.status().is_server_error(),
        "{what}: {}",
        resp.status()
    );
    for header in resp.headers().get_all(reqwest::header::SET_COOKIE) {
        let header = header.to_str().expect("an ASCII Set-Cookie");
        let pair = header.split(';').next().unwrap_or_default();
        if pair.starts_with(&format!("{COOKIE}=")) {
            assert!(
                pair.len() <= MAX_COOKIE_BYTES,
                "{what}: a session cookie of {} bytes",
                pair.len()
            );
        }
    }
}

/// Puts `pad` = `len` bytes; true when stored.
async fn pad(v: &Visitor, len: usize) -> bool {
    let resp = v
        .put_json("/api/session/pad", &json!("x".repeat(len)))
        .await;
    assert_cookies_fit(&resp, "PUT pad");
    match resp.status() {
        StatusCode::OK => true,
        StatusCode::PAYLOAD_TOO_LARGE => false,
        other => panic!("PUT pad: {other}"),
    }
}

/// Finds the largest `pad` with which `k = "v"` still fits (so `k` and a
/// flash message do not), and leaves the session holding it.
async fn fill_to_the_limit(v: &Visitor, mut lo: usize, mut hi: usize) -> usize {
    let fits = |len| async move {
        if !pad(v, len).await {
            return false;
        }
        let resp = v.put_json("/api/session/k", &json!("v")).await;
        let ok = resp.status() == StatusCode::OK;
        if ok {
            assert_eq!(
                v.delete("/api/session/k").await.status(),
                StatusCode::NO_CONTENT
            );
        }
        ok
    };
    assert!(fits(lo).await, "{lo} bytes fit");
    assert!(!fits(hi).await, "{hi} bytes do not");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid).await { lo = mid } else { hi = mid }
    }
    assert!(pad(v, lo).await);
    lo
}

/// A session with a value, a visit counted and a CSRF token for its forms.
async fn started(app: &TestApp) -> (Visitor, String) {
    let v = app.visitor();
    v.set("a", json!(1)).await;
    let token = v.csrf_token().await;
    (v, token)
}

/// Cookie backend: a form write whose value fits, but whose flash message
/// would push the cookie over 4096 bytes, is refused with 413 and the
/// browser's cookie stays as it was; so is an API write, and a login.
pub async fn a_write_that_would_overflow_the_final_cookie_is_refused_and_changes_nothing(
    kind: Kind,
) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let (v, token) = started(&app).await;
    fill_to_the_limit(&v, 1000, 4096).await;
    let before = v.session_cookie(&COOKIE).expect("a cookie");

    let resp = v
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "k"), ("value", "v")],
        )
        .await;
    assert_cookies_fit(&resp, "form set");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "form set");
    assert!(crate::support::set_cookies(resp.headers(), &COOKIE).is_empty());
    assert_eq!(v.session_cookie(&COOKIE), Some(before.clone()));
    assert_eq!(v.value("k").await, None, "nothing stored");

    let resp = v.put_json("/api/session/k", &json!("vv")).await;
    assert_cookies_fit(&resp, "API write");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "API write");
    assert_eq!(v.session_cookie(&COOKIE), Some(before.clone()));

    let resp = v
        .post_form("/login", &[("csrf_token", &token), ("name", "ada")])
        .await;
    assert_cookies_fit(&resp, "login");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "login");
    assert_eq!(v.session_cookie(&COOKIE), Some(before));
    assert_eq!(v.value("_user").await, None, "not signed in");
    app.finish().await;
}

/// Cookie backend: whatever a visitor near the limit does — visits of the
/// root page (flash taken, visit counted), form writes, login, save, a new
/// id, API writes — no response carries a session cookie over 4096 bytes.
pub async fn no_response_sends_a_session_cookie_over_the_browser_limit(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let probe = started(&app).await.0;
    let limit = fill_to_the_limit(&probe, 1000, 4096).await;
    for len in (limit.saturating_sub(150)..=limit + 3).step_by(7) {
        let (v, token) = started(&app).await;
        pad(&v, len).await;
        let form = |path: &'static str, extra: &'static [(&'static str, &'static str)]| {
            let (v, token) = (v.clone(), token.clone());
            async move {
                let mut fields = vec![("csrf_token", token.as_str())];
                fields.extend_from_slice(extra);
                let resp = v.post_form(path, &fields).await;
                assert_cookies_fit(&resp, path);
            }
        };
        form("/session/set", &[("key", "k"), ("value", "v")]).await;
        for _ in 0..2 {
            assert_cookies_fit(&v.get("/").await, "GET /");
        }
        form("/session/save", &[]).await;
        assert_cookies_fit(&v.get("/").await, "GET /");
        assert_cookies_fit(
            &v.put_json("/api/session/k2", &json!("yy")).await,
            "API write",
        );
        assert_cookies_fit(&v.post("/api/session/save").await, "API save");
        form("/login", &[("name", "ada")]).await;
        assert_cookies_fit(&v.get("/").await, "GET / after login");
        form("/session/cycle", &[]).await;
        assert_cookies_fit(&v.post("/api/session/cycle").await, "API cycle");
        assert_cookies_fit(&v.get("/").await, "GET /");
    }
    app.finish().await;
}

/// memcached: a session at the item limit plus a flash message is refused
/// with 413 (the session's limit), not a 503 from the server refusing the
/// item.
pub async fn memcached_at_the_item_limit_plus_a_flash_is_413_not_503() {
    let Some(app) = spawn_app_with(Kind::Memcached, |s| {
        s.session.max_value_bytes = s.session.max_session_bytes;
    })
    .await
    else {
        return;
    };
    let (v, token) = started(&app).await;
    let limit = websessions::sessions::memcached::MAX_ITEM_BYTES;
    fill_to_the_limit(&v, limit - 4096, limit).await;
    let resp = v
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "k"), ("value", "v")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v.value("k").await, None, "nothing stored");
    assert_eq!(v.value("a").await, Some(json!(1)), "the session is intact");
    app.finish().await;
}

/// Cookie backend: a session filled to the last byte still gets its root
/// page (200, the cookie unchanged) when counting the visit would add a
/// digit that does not fit: the page that lets the visitor delete data must
/// not refuse them.
#[tokio::test]
async fn the_root_page_is_served_when_counting_the_visit_would_overflow() {
    let Some(app) = spawn_app(Kind::Cookie).await else {
        return;
    };
    let (v, _token) = started(&app).await;
    // The largest value that still fits: one byte more would not.
    let (mut lo, mut hi) = (1000, 4096);
    assert!(pad(&v, lo).await && !pad(&v, hi).await);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if pad(&v, mid).await {
            lo = mid
        } else {
            hi = mid
        }
    }
    assert!(pad(&v, lo).await);
    // Visits go 2, 3, … 10, 11: the tenth gains a digit.
    for visit in 2..=11 {
        let resp = v.get("/").await;
        assert_cookies_fit(&resp, "GET /");
        assert_eq!(resp.status(), StatusCode::OK, "visit {visit}");
    }
    assert_eq!(v.value("pad").await, Some(json!("x".repeat(lo))), "kept");
    app.finish().await;
}
