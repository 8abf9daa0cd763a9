//! Response headers on every page and every kind of answer (pages, API,
//! redirects, errors), with a session present, on every backend; the cookie
//! `Secure` when configured and `HttpOnly` always.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::reliability::common::COOKIE;
use crate::support::{Kind, set_cookies, spawn_app, spawn_app_with};

fn assert_safe_headers(h: &HeaderMap, what: &str) {
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    // Self only: every source is 'self', 'none' or an inline image.
    for directive in csp.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let mut parts = directive.split_whitespace();
        let name = parts.next().unwrap();
        for source in parts {
            assert!(
                ["'self'", "'none'", "data:"].contains(&source),
                "{what}: CSP {name} allows {source}"
            );
            assert!(
                source != "data:" || name == "img-src",
                "{what}: data: outside img-src"
            );
        }
    }
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    let referrer = h
        .get("referrer-policy")
        .unwrap_or_else(|| panic!("{what}: no Referrer-Policy"))
        .to_str()
        .unwrap();
    assert!(
        [
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer),
        "{what}: Referrer-Policy {referrer}"
    );
}

fn assert_no_store(h: &HeaderMap, what: &str) {
    let cc = h
        .get("cache-control")
        .unwrap_or_else(|| panic!("{what}: no Cache-Control"))
        .to_str()
        .unwrap();
    assert!(cc.contains("no-store"), "{what}: Cache-Control {cc}");
}

pub async fn every_response_carries_the_security_headers(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("shown", json!("session data")).await;
    let token = me.csrf_token().await;
    // Pages and answers that show session data: also no-store.
    for path in [
        "/",
        "/?done=deleted",
        "/session/get?key=shown",
        "/session/get?key=absent&default=d",
        "/account/sessions",
        "/api/session",
        "/api/session/shown",
        "/api/session/expiry",
    ] {
        let resp = me.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_safe_headers(resp.headers(), path);
        assert_no_store(resp.headers(), path);
    }
    // A refused form shows the page (and the session) again: no-store too.
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "_visits"), ("value", "1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_safe_headers(resp.headers(), "refused form");
    assert_no_store(resp.headers(), "refused form");
    // Everything else: the safe defaults.
    let cases: Vec<(Method, &str)> = vec![
        (Method::GET, "/healthz"),
        (Method::GET, "/healthz/live"),
        (Method::GET, "/static/style.css"),
        (Method::GET, "/nope"),
        (Method::GET, "/api/nope"),
        (Method::DELETE, "/"),
        (Method::PATCH, "/api/session"),
        (Method::POST, "/session/set"),
        (Method::POST, "/api/session/save"),
        (Method::DELETE, "/api/session/absent"),
    ];
    for (method, path) in cases {
        let resp = me
            .client
            .request(method.clone(), me.url(path))
            .send()
            .await
            .unwrap();
        let what = format!("{method} {path} ({})", resp.status());
        assert!(!resp.status().is_server_error(), "{what}");
        assert_safe_headers(resp.headers(), &what);
    }
    // Redirects after a form, and a CSRF refusal.
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "k"), ("value", "v")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_safe_headers(resp.headers(), "303 after a form");
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", "forged"), ("key", "k"), ("value", "v")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_safe_headers(resp.headers(), "CSRF refusal");
    app.finish().await;
}

pub async fn with_secure_on_every_cookie_is_secure_and_http_only(kind: Kind) {
    // Secure configured: every session cookie and the CSRF nonce say so.
    let Some(app) = spawn_app_with(kind, |s| s.session.secure = true).await else {
        return;
    };
    let client = crate::reliability::common::bare_client();
    let resp = client
        .put(app.url("/api/session/a"))
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookies = set_cookies(resp.headers(), &COOKIE);
    assert_eq!(cookies.len(), 1);
    let cookie = cookies[0].to_owned();
    for attr in ["Secure", "HttpOnly", "Path=/"] {
        assert!(
            cookie.split(';').any(|a| a.trim() == attr),
            "{attr} missing: {cookie}"
        );
    }
    let value = cookie
        .strip_prefix(format!("{COOKIE}=").as_str())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let header = format!("{COOKIE}={value}");
    // A touch re-sends the cookie with the same attributes; so do deletes.
    let resp = client
        .post(app.url("/api/session/save"))
        .header("cookie", &header)
        .send()
        .await
        .unwrap();
    for c in set_cookies(resp.headers(), &COOKIE) {
        assert!(c.contains("Secure") && c.contains("HttpOnly"), "{c}");
    }
    let page = client.get(app.url("/")).send().await.unwrap();
    // Secure cookies: the nonce is `__Host-csrf`, which no other host can set.
    let nonce = set_cookies(page.headers(), "__Host-csrf");
    assert_eq!(nonce.len(), 1, "{:?}", page.headers());
    for c in nonce {
        assert!(c.contains("Secure") && c.contains("HttpOnly"), "{c}");
    }
    let resp = client
        .delete(app.url("/api/session"))
        .header("cookie", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // The removal cookie carries no value: its attributes do not matter.
    for c in set_cookies(resp.headers(), &COOKIE) {
        assert!(c.starts_with(&format!("{COOKIE}=;")), "removal: {c}");
    }
    app.finish().await;

    // Not configured (the test profile): HttpOnly still, and not Secure.
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    for resp in [
        me.put_json("/api/session/a", &json!(1)).await,
        me.post("/api/session/cycle").await,
        me.get("/").await,
    ] {
        for c in set_cookies(resp.headers(), &COOKIE) {
            assert!(c.contains("HttpOnly"), "{c}");
            assert!(!c.contains("Secure"), "{c}");
        }
        for c in set_cookies(resp.headers(), "csrf") {
            assert!(c.contains("HttpOnly"), "{c}");
        }
    }
    app.finish().await;
}
