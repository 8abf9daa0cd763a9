//! The pages and forms: CSRF, flash messages, `done` codes, every form, the
//! visit counter rule, refused forms re-rendered inline.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    Kind, assert_see_other, csrf_from, set_cookies, spawn_app, spawn_app_with,
    spawn_app_with_manual_clock,
};

use crate::support::COOKIE;

#[tokio::test]
async fn first_visit_gets_only_the_csrf_nonce_cookie() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let me = app.me();
    let resp = me.get("/").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(set_cookies(resp.headers(), &COOKIE).is_empty());
    let nonce = set_cookies(resp.headers(), "csrf");
    assert_eq!(nonce.len(), 1);
    assert!(
        nonce[0].contains("HttpOnly")
            && nonce[0].contains("SameSite=Lax")
            && nonce[0].contains("Max-Age=7200")
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"session-new\">yes"));
    assert!(html.contains("id=\"session-empty\""));
    assert!(html.contains("id=\"at-rest-none\""));
    // A second look reuses the nonce: no new cookie.
    let resp = me.get("/").await;
    assert!(set_cookies(resp.headers(), "csrf").is_empty());
    assert_eq!(app.count().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn security_headers_on_every_page() {
    let Some(app) = spawn_app(Kind::Memory).await else {
        return;
    };
    let me = app.me();
    for path in [
        "/",
        "/session/get?key=a",
        "/account/sessions",
        "/nope",
        "/api/session",
    ] {
        let resp = me.get(path).await;
        let h = resp.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"),
            "{path}"
        );
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
    }
    let css = me.get("/static/style.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    app.finish().await;
}

#[tokio::test]
async fn set_without_or_with_a_wrong_csrf_token_is_refused() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let me = app.me();
    let token = me.csrf_token().await;
    let resp = me
        .post_form("/session/set", &[("key", "a"), ("value", "1")])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"error-status\">403"), "a readable page");
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", "forged"), ("key", "a"), ("value", "1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Another visitor's token does not work either.
    let other = app.visitor();
    let other_token = other.csrf_token().await;
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &other_token), ("key", "a"), ("value", "1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count().await, 0, "nothing changed");
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "a"), ("value", "1")],
        )
        .await;
    assert_see_other(&resp, "/");
    assert_eq!(
        me.value("a").await,
        Some(json!("1")),
        "form values are stored as JSON strings"
    );
    app.finish().await;
}

#[tokio::test]
async fn every_form_and_its_flash() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let me = app.me();
    let token = me.csrf_token().await;
    assert_see_other(
        &me.post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "color"), ("value", "blue")],
        )
        .await,
        "/",
    );
    let html = me.get("/").await.text().await.unwrap();
    assert!(html.contains("id=\"flash\""), "flash after set");
    assert!(
        html.contains("Stored `color`.") || html.contains("Stored &#96;color&#96;."),
        "{html:.0}"
    );
    assert!(html.contains("data-key=\"color\""));
    assert!(
        html.contains("&quot;blue&quot;") || html.contains("&#34;blue&#34;"),
        "value shown as JSON"
    );
    assert!(html.contains("id=\"session-new\">no"));
    assert!(
        html.contains("id=\"at-rest-content\""),
        "the file content is shown"
    );
    let again = me.get("/").await.text().await.unwrap();
    assert!(!again.contains("id=\"flash\""), "a flash shows once");

    // The session-bound token now (the session exists).
    let token = csrf_from(&again);
    let get = me
        .get("/session/get?key=color&default=none")
        .await
        .text()
        .await
        .unwrap();
    assert!(get.contains("id=\"get-value\""));
    assert!(!get.contains("get-default-used"));
    let get = me
        .get("/session/get?key=missing&default=fallback")
        .await
        .text()
        .await
        .unwrap();
    assert!(get.contains("get-default-used") && get.contains("fallback"));

    assert_see_other(
        &me.post_form("/session/save", &[("csrf_token", &token)])
            .await,
        "/",
    );
    assert!(me.get("/").await.text().await.unwrap().contains("Saved"));

    let fp_before = me.session().await["fingerprint"].clone();
    assert_see_other(
        &me.post_form("/session/cycle", &[("csrf_token", &token)])
            .await,
        "/",
    );
    let body = me.session().await;
    assert_ne!(body["fingerprint"], fp_before);
    assert_eq!(body["data"], json!({"color": "blue"}));

    // The old token was bound to the old id.
    let resp = me
        .post_form(
            "/session/remove",
            &[("csrf_token", &token), ("key", "color")],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "tokens are bound to the session id"
    );
    let token = me.csrf_token().await;
    assert_see_other(
        &me.post_form(
            "/session/remove",
            &[("csrf_token", &token), ("key", "color")],
        )
        .await,
        "/",
    );
    assert!(me.get("/").await.text().await.unwrap().contains("Removed"));
    assert_eq!(me.value("color").await, None);

    let resp = me
        .post_form("/session/delete", &[("csrf_token", &token)])
        .await;
    assert_see_other(&resp, "/?done=deleted");
    let removal = set_cookies(resp.headers(), &COOKIE);
    assert!(removal[0].contains("Max-Age=0"));
    let html = me.get("/?done=deleted").await.text().await.unwrap();
    assert!(html.contains("id=\"flash\"") && html.contains("was deleted"));
    assert_eq!(
        app.count().await,
        0,
        "delete and its message created nothing"
    );
    app.finish().await;
}

#[tokio::test]
async fn save_and_cycle_without_a_session_create_nothing() {
    let Some(app) = spawn_app(Kind::Memory).await else {
        return;
    };
    let me = app.me();
    let token = me.csrf_token().await;
    assert_see_other(
        &me.post_form("/session/save", &[("csrf_token", &token)])
            .await,
        "/?done=nothing_to_save",
    );
    assert_see_other(
        &me.post_form("/session/cycle", &[("csrf_token", &token)])
            .await,
        "/?done=no_session",
    );
    assert_see_other(
        &me.post_form("/session/remove", &[("csrf_token", &token), ("key", "x")])
            .await,
        "/",
    );
    assert_eq!(app.count().await, 0);
    assert!(me.session_cookie(&COOKIE).is_none());
    app.finish().await;
}

#[tokio::test]
async fn refused_forms_rerender_inline_and_keep_the_input() {
    let Some(app) = spawn_app_with(Kind::File, |s| s.session.max_value_bytes = 50).await else {
        return;
    };
    let me = app.me();
    let token = me.csrf_token().await;
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "_visits"), ("value", "99")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"form-error\""));
    assert!(
        html.contains("value=\"_visits\"") && html.contains("value=\"99\""),
        "input kept"
    );
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", ""), ("value", "1")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let big = "b".repeat(80);
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "k"), ("value", &big)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        resp.text().await.unwrap().contains(&big),
        "the typed value is not lost"
    );
    let resp = me
        .post_form("/login", &[("csrf_token", &token), ("name", "")])
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = me
        .client
        .post(me.url("/session/set"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.count().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn visits_count_only_with_a_session() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let me = app.me();
    for _ in 0..2 {
        assert!(
            me.get("/")
                .await
                .text()
                .await
                .unwrap()
                .contains("not counted without a session")
        );
    }
    me.set("a", json!(1)).await;
    let visits = |html: String| {
        let start = html.find("id=\"visits\">").unwrap() + "id=\"visits\">".len();
        html[start..start + html[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(visits(me.get("/").await.text().await.unwrap()), "1");
    assert_eq!(visits(me.get("/").await.text().await.unwrap()), "2");
    // Other pages do not count.
    me.get("/session/get?key=a").await;
    me.get("/api/session").await;
    assert_eq!(visits(me.get("/").await.text().await.unwrap()), "3");
    app.finish().await;
}

#[tokio::test]
async fn visits_are_a_write_so_they_extend_even_when_extension_is_off() {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(Kind::Memory, |s| s.session.extend_on_every_request = false)
            .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let expiry = || async {
        me.get("/api/session/expiry")
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["expires_at"]
            .clone()
    };
    let first = expiry().await;
    clock.advance(std::time::Duration::from_millis(1100));
    me.get("/session/get?key=a").await;
    assert_eq!(expiry().await, first, "a read-only page does not extend");
    let resp = me.get("/").await;
    assert_eq!(
        set_cookies(resp.headers(), &COOKIE).len(),
        1,
        "the visit counter saved the session"
    );
    assert_ne!(expiry().await, first);
    app.finish().await;
}

#[tokio::test]
async fn login_cycles_the_id_and_logout_deletes_the_session() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let me = app.me();
    me.set("cart", json!(["apple"])).await;
    let before = me.session_cookie(&COOKIE).unwrap();
    let token = me.csrf_token().await;
    assert_see_other(
        &me.post_form("/login", &[("csrf_token", &token), ("name", "ada")])
            .await,
        "/",
    );
    let after = me.session_cookie(&COOKIE).unwrap();
    assert_ne!(before, after, "login cycles the id");
    let html = me.get("/").await.text().await.unwrap();
    assert!(html.contains("id=\"user\">ada"));
    assert!(html.contains("Logged in as ada"));
    assert_eq!(
        me.session().await["data"],
        json!({"cart": ["apple"]}),
        "data survives login"
    );
    let fixated = app.visitor();
    fixated.set_cookie(&COOKIE, &before);
    assert_eq!(
        fixated.session().await["new"],
        json!(true),
        "the pre-login id is dead"
    );

    let account = me.get("/account/sessions").await.text().await.unwrap();
    assert!(account.contains("account-sessions") && account.contains("ada"));

    let token = csrf_from(&html);
    let resp = me.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_see_other(&resp, "/?done=logged_out");
    assert_eq!(app.count().await, 0, "logout deleted the record");
    let html = me.get("/?done=logged_out").await.text().await.unwrap();
    assert!(html.contains("logged out"));
    assert!(!html.contains("id=\"user\""));
    app.finish().await;
}

#[tokio::test]
async fn error_pages_use_the_layout() {
    let Some(app) = spawn_app(Kind::Memory).await else {
        return;
    };
    let me = app.me();
    let resp = me.get("/no/such/page").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"error-status\">404") && html.contains("class=\"site-header\""));
    let resp = me.get("/api/nothing").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let resp = me.get("/session/set").await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = me.get("/session/get").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    app.finish().await;
}

/// A sibling subdomain can plant a `csrf` nonce cookie for the parent
/// domain. A token bound to such a nonce (taken on the attacker's own
/// anonymous visit) must not open any form of a visitor who has a live
/// session: 403, and nothing changes.
#[tokio::test]
async fn a_planted_nonce_does_not_open_a_signed_in_visitors_forms() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    // The attacker's own anonymous visit: nonce N and the token bound to it.
    let attacker = app.visitor();
    let resp = attacker.get("/").await;
    let nonce = set_cookies(resp.headers(), "csrf")[0]
        .strip_prefix("csrf=")
        .and_then(|rest| rest.split(';').next())
        .expect("a nonce cookie")
        .to_owned();
    let attacker_token = csrf_from(&resp.text().await.unwrap());

    // The victim signs in and keeps some data.
    let victim = app.me();
    let token = victim.csrf_token().await;
    assert_see_other(
        &victim
            .post_form("/login", &[("csrf_token", &token), ("name", "ada")])
            .await,
        "/",
    );
    victim.set("kept", json!("yes")).await;
    let before = victim.session().await;

    // The attacker plants `csrf=N` and submits every form of the victim.
    victim.set_cookie("csrf", &nonce);
    for (path, extra) in [
        ("/session/set", vec![("key", "planted"), ("value", "1")]),
        ("/session/remove", vec![("key", "kept")]),
        ("/session/save", vec![]),
        ("/session/cycle", vec![]),
        ("/session/delete", vec![]),
        ("/account/sessions/revoke-others", vec![]),
        ("/login", vec![("name", "mallory")]),
        ("/logout", vec![]),
    ] {
        let mut form = vec![("csrf_token", attacker_token.as_str())];
        form.extend(extra);
        let resp = victim.post_form(path, &form).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let after = victim.session().await;
    assert_eq!(after["fingerprint"], before["fingerprint"], "not cycled");
    assert_eq!(after["data"], before["data"], "nothing changed");
    let page = victim.get("/").await.text().await.unwrap();
    assert!(page.contains("ada"), "still signed in");

    // With a live session the page renders only the session-bound token,
    // whatever nonce cookie comes along, and that token works.
    let token = csrf_from(&page);
    assert_ne!(token, attacker_token);
    assert_see_other(
        &victim
            .post_form(
                "/session/set",
                &[("csrf_token", &token), ("key", "k"), ("value", "v")],
            )
            .await,
        "/",
    );
    app.finish().await;
}

/// With `secure = true` the nonce cookie is `__Host-csrf` (Secure, Path=/,
/// no Domain), which a sibling subdomain cannot set; a plain `csrf` cookie
/// is then ignored.
#[tokio::test]
async fn the_nonce_cookie_is_host_prefixed_when_secure() {
    let Some(app) = spawn_app_with(Kind::Memory, |s| s.session.secure = true).await else {
        return;
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(app.url("/")).send().await.unwrap();
    assert!(
        set_cookies(resp.headers(), "csrf").is_empty(),
        "no plain `csrf`"
    );
    let cookies = set_cookies(resp.headers(), "__Host-csrf");
    assert_eq!(cookies.len(), 1, "one `__Host-csrf` nonce cookie");
    let cookie = cookies[0].to_owned();
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let nonce = cookie
        .strip_prefix("__Host-csrf=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let token = csrf_from(&resp.text().await.unwrap());
    let form = [("csrf_token", token.as_str()), ("key", "a"), ("value", "1")];
    let resp = client
        .post(app.url("/session/set"))
        .header("cookie", format!("csrf={nonce}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "a plain `csrf` cookie"
    );
    assert_eq!(app.count().await, 0, "nothing changed");
    let resp = client
        .post(app.url("/session/set"))
        .header("cookie", format!("__Host-csrf={nonce}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_see_other(&resp, "/");
    assert_eq!(app.count().await, 1);
    app.finish().await;
}
