//! Hostile input on every backend: each request gives the documented 4xx or
//! a fresh session, never a 5xx, never another visitor's data; after each,
//! a second visitor with data still reads exactly its own.
//! (The conformance suite covers the basic bad cookies on `GET /api/session`
//! and `PUT`, and a few bad keys and bodies; this goes further.)

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::reliability::common::{
    COOKIE, Owner, assert_status, bare_client, other_key, session_with_cookie, set_cookie_value,
};

use crate::support::{Kind, TestApp, spawn_app, spawn_app_with, spawn_app_with_manual_clock};

/// A cookie value that names no usable session must give a fresh session on
/// every kind of route, and the bad value is never adopted.
async fn fresh_session_everywhere(app: &TestApp, owner: &Owner, cookie: &[u8], what: &str) {
    let client = bare_client();
    let mut header = format!("{COOKIE}=").into_bytes();
    header.extend_from_slice(cookie);
    let header = reqwest::header::HeaderValue::from_bytes(&header).expect("a header value");
    // The API view of the session.
    let resp = client
        .get(app.url("/api/session"))
        .header("cookie", header.clone())
        .send()
        .await
        .unwrap();
    assert_status(resp.status(), &[StatusCode::OK], what);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["new"], json!(true), "{what}: a fresh session");
    assert_eq!(body["data"], json!({}), "{what}: no data");
    // Pages.
    for path in [
        "/",
        "/session/get?key=secret&default=none",
        "/account/sessions",
    ] {
        let resp = client
            .get(app.url(path))
            .header("cookie", header.clone())
            .send()
            .await
            .unwrap();
        assert_status(
            resp.status(),
            &[StatusCode::OK],
            &format!("{what} GET {path}"),
        );
        let html = resp.text().await.unwrap();
        owner.assert_not_in(&html, &format!("{what} GET {path}"));
    }
    let resp = client
        .get(app.url("/api/session/secret"))
        .header("cookie", header.clone())
        .send()
        .await
        .unwrap();
    assert_status(resp.status(), &[StatusCode::NOT_FOUND], what);
    // A write gets a fresh id, never the one sent.
    let resp = client
        .put(app.url("/api/session/k"))
        .header("cookie", header.clone())
        .json(&json!("v"))
        .send()
        .await
        .unwrap();
    assert_status(resp.status(), &[StatusCode::OK], &format!("{what} PUT"));
    let fresh = set_cookie_value(&resp, &COOKIE).expect("a fresh session cookie");
    assert!(!fresh.is_empty());
    assert_ne!(
        fresh.as_bytes(),
        cookie,
        "{what}: the bad value was adopted"
    );
    let (status, body) = session_with_cookie(app, &format!("{COOKIE}={fresh}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!({"k": "v"}), "{what}: the fresh session");
    // Clean up the fresh session at once (memcached cannot be listed).
    let resp = client
        .delete(app.url("/api/session"))
        .header("cookie", format!("{COOKIE}={fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // Cycling and explicit save with the bad cookie create nothing.
    for path in ["/api/session/cycle", "/api/session/save"] {
        let resp = client
            .post(app.url(path))
            .header("cookie", header.clone())
            .send()
            .await
            .unwrap();
        assert_status(
            resp.status(),
            &[StatusCode::OK, StatusCode::NO_CONTENT],
            &format!("{what} POST {path}"),
        );
        let set = set_cookie_value(&resp, &COOKIE);
        assert!(
            set.as_deref().is_none_or(str::is_empty),
            "{what} POST {path} created a session: {set:?}"
        );
    }
    owner.check(what).await;
}

/// Flips one character of `value` in its middle (to another of the same
/// alphabet), the way a tamperer would.
fn flip(value: &str, at: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    let i = at.min(bytes.len() - 1);
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

pub async fn hostile_cookies_get_a_fresh_session_never_a_5xx(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let owner = Owner::new(&app).await;
    let real = owner.visitor.session_cookie(&COOKIE).unwrap();

    let mut bad: Vec<(Vec<u8>, String)> = vec![
        (b"\xff\xfe\x80garbage".to_vec(), "not UTF-8".into()),
        (vec![b'x'; 8 * 1024], "8 KB".into()),
        (b"../../etc/passwd".to_vec(), "path traversal".into()),
        (
            b"../../../../../../etc/passwd%00".to_vec(),
            "traversal with NUL".into(),
        ),
        (
            b"550e8400-e29b-41d4-a716-446655440000".to_vec(),
            "a UUID".into(),
        ),
        (
            b"s%3AabcDEF.signature0123456789".to_vec(),
            "an express-session id".into(),
        ),
        (b"\"quoted\"".to_vec(), "quoted".into()),
        (b"".to_vec(), "empty".into()),
        (
            // A server-side id on a cookie backend, a 22-char id everywhere.
            "AAAAAAAAAAAAAAAAAAAAAA".into(),
            "well-formed, unknown".into(),
        ),
    ];
    if kind.server_side() {
        // Another format's id: the stored hash of the owner's id.
        let id = crate::reliability::common::id_of(&real);
        let hash = websessions::sessions::store::storage_key(&id);
        bad.push((hash.into_bytes(), "the storage key".into()));
        bad.push((
            real.as_bytes()[..real.len() - 1].to_vec(),
            "truncated id".into(),
        ));
        bad.push((format!("{real}x").into_bytes(), "id with a suffix".into()));
    } else {
        // Tampered cookies: flip one byte, truncate, or sign with another key.
        for at in [0, real.len() / 2, real.len() - 2] {
            bad.push((
                flip(&real, at).into_bytes(),
                format!("cookie with byte {at} flipped"),
            ));
        }
        bad.push((
            real.as_bytes()[..real.len() / 2].to_vec(),
            "truncated cookie".into(),
        ));
        bad.push((
            real.as_bytes()[..real.len() - 1].to_vec(),
            "cookie missing its last byte".into(),
        ));
        let other = spawn_app_with(kind, |s| {
            s.session.secret_key = websessions::config::Secret::new(other_key());
        })
        .await
        .expect("a second site");
        let forger = other.me();
        forger.set("secret", json!("forged")).await;
        let forged = forger.session_cookie(&COOKIE).unwrap();
        bad.push((forged.into_bytes(), "made with another key".into()));
        if kind == Kind::CookieSigned {
            // The signed payload is readable: change the data, keep the MAC.
            let (mac, payload) = real.split_at(44);
            let forged = format!("{mac}{}", flip(payload, payload.len() / 2));
            bad.push((forged.into_bytes(), "payload changed under the MAC".into()));
        }
        other.finish().await;
    }
    for (value, what) in &bad {
        fresh_session_everywhere(&app, &owner, value, what).await;
    }

    // The cookie of a deleted session.
    let gone = app.visitor();
    gone.set("mine", json!(1)).await;
    let deleted = gone.session_cookie(&COOKIE).unwrap();
    assert_eq!(
        gone.delete("/api/session").await.status(),
        StatusCode::NO_CONTENT
    );
    if kind.server_side() {
        fresh_session_everywhere(&app, &owner, deleted.as_bytes(), "a deleted session").await;
    } else {
        // Documented difference: a cookie copy outlives delete.
        let (status, body) = session_with_cookie(&app, &format!("{COOKIE}={deleted}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"], json!({"mine": 1}), "a copy outlives delete");
    }
    app.finish().await;
}

/// The cookie of an expired session gives a fresh session, on a site with a
/// short idle timeout.
pub async fn an_expired_cookie_gets_a_fresh_session(kind: Kind) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.idle_timeout = Duration::from_secs(2))
            .await
    else {
        return;
    };
    let owner = app.visitor();
    let v = app.visitor();
    let resp = v.put_json("/api/session/a", &json!(1)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = set_cookie_value(&resp, &COOKIE).expect("a session cookie");
    // The stores still hold it by their own clocks: the engine must refuse it.
    clock.advance(Duration::from_millis(2300));
    owner.set("secret", json!("owner")).await;
    let owner = Owner {
        visitor: owner,
        secret: "owner".into(),
    };
    fresh_session_everywhere(&app, &owner, cookie.as_bytes(), "an expired session").await;
    app.finish().await;
}

/// A hostile write: the status must be `expected`, the body an error, and
/// nothing of the session may change.
async fn refused(resp: reqwest::Response, expected: StatusCode, what: &str) {
    assert_status(resp.status(), &[expected], what);
}

pub async fn hostile_keys_are_refused_and_change_nothing(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let owner = Owner::new(&app).await;
    let me = app.me();
    me.set("ok", json!(1)).await;
    let long = "k".repeat(129);
    let bad_api: Vec<(String, &str)> = vec![
        (long.clone(), "129 characters"),
        ("é".repeat(129), "129 two-byte characters"),
        ("a%01b".into(), "SOH"),
        ("a%7Fb".into(), "DEL"),
        ("a%09b".into(), "tab"),
        ("%0D%0A".into(), "CRLF"),
        ("a%C2%85b".into(), "NEL (C1 control)"),
        ("_visits".into(), "reserved _visits"),
        ("_user".into(), "reserved _user"),
        ("_flash".into(), "reserved _flash"),
        ("_created_at".into(), "reserved _created_at"),
        ("_".into(), "reserved _"),
        ("%5Fvisits".into(), "percent-encoded _visits"),
    ];
    for (key, what) in &bad_api {
        let path = format!("/api/session/{key}");
        let resp = me.put_json(&path, &json!("x")).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_status(status, &[StatusCode::BAD_REQUEST], &format!("PUT {what}"));
        assert!(body["error"].is_string(), "PUT {what}: {body}");
        refused(
            me.delete(&path).await,
            StatusCode::BAD_REQUEST,
            &format!("DELETE {what}"),
        )
        .await;
        owner.check(what).await;
    }
    // 128 characters is the limit, not over it.
    let max = "m".repeat(128);
    me.set(&max, json!("max")).await;
    assert_eq!(me.value(&max).await, Some(json!("max")));
    assert_eq!(
        me.delete(&format!("/api/session/{max}")).await.status(),
        StatusCode::NO_CONTENT
    );
    // An empty key has no route of its own: a 4xx, never a write.
    for resp in [
        me.put_json("/api/session/", &json!("x")).await,
        me.delete("/api/session/").await,
    ] {
        let status = resp.status();
        assert!(status.is_client_error(), "empty key: {status}");
    }
    // Reading a bad key is refused too, or absent.
    for key in [long.as_str(), "a%01b"] {
        let status = me.get(&format!("/api/session/{key}")).await.status();
        assert_status(status, &[StatusCode::BAD_REQUEST], "GET a bad key");
    }

    // The HTML forms: the same keys give the page again with 400.
    let token = me.csrf_token().await;
    let form_keys: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        (long.clone(), "129 characters"),
        ("a\u{1}b".into(), "SOH"),
        ("a\nb".into(), "newline"),
        ("a\u{7f}b".into(), "DEL"),
        ("_visits".into(), "reserved _visits"),
        ("_user".into(), "reserved _user"),
        ("_created_at".into(), "reserved _created_at"),
    ];
    for (key, what) in &form_keys {
        let resp = me
            .post_form(
                "/session/set",
                &[("csrf_token", &token), ("key", key), ("value", "x")],
            )
            .await;
        assert_status(
            resp.status(),
            &[StatusCode::BAD_REQUEST],
            &format!("form set {what}"),
        );
        let html = resp.text().await.unwrap();
        owner.assert_not_in(&html, what);
        let resp = me
            .post_form("/session/remove", &[("csrf_token", &token), ("key", key)])
            .await;
        assert_status(
            resp.status(),
            &[StatusCode::BAD_REQUEST],
            &format!("form remove {what}"),
        );
        owner.check(what).await;
    }
    // `GET /session/get` with a bad key is read-only: never a 5xx.
    for key in [long.as_str(), "a%01b", "", "_visits"] {
        let status = me
            .get(&format!("/session/get?key={key}&default=d"))
            .await
            .status();
        assert_status(
            status,
            &[StatusCode::OK, StatusCode::BAD_REQUEST],
            &format!("GET /session/get?key={key:.10}"),
        );
    }
    assert_eq!(
        me.session().await["data"],
        json!({"ok": 1}),
        "nothing changed"
    );
    if kind.server_side() {
        let record = crate::reliability::common::stored(&app, &me)
            .await
            .expect("stored");
        assert!(
            !record.data.contains_key("_user") || record.data["_user"].is_object(),
            "no reserved key was written from outside"
        );
        assert!(!record.data.contains_key(""), "no empty key");
    }
    app.finish().await;
}

pub async fn hostile_values_and_bodies_are_refused_and_change_nothing(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let owner = Owner::new(&app).await;
    let me = app.me();
    me.set("ok", json!(1)).await;
    let client = &me.client;
    let put = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut req = client.put(me.url("/api/session/x")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    const JSON: Option<&str> = Some("application/json");
    // Invalid JSON, in many shapes.
    let invalid: Vec<(&[u8], &str)> = vec![
        (b"", "empty body"),
        (b"{", "unclosed"),
        (b"nul", "a truncated literal"),
        (b"1 2", "trailing data"),
        (b"NaN", "NaN"),
        (b"'single'", "single quotes"),
        (b"\"\\ud800\"", "a lone surrogate"),
        (b"\"\xff\xfe\"", "not UTF-8"),
        (b"{\"a\":1,}", "a trailing comma"),
        (b"\x00", "NUL"),
    ];
    for (body, what) in invalid {
        let resp = put(body.to_vec(), JSON).await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_status(status, &[StatusCode::BAD_REQUEST], what);
        assert!(body["error"].is_string(), "{what}: {body}");
        owner.check(what).await;
    }
    // 10 000 levels of objects (the conformance suite sends arrays).
    let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let resp = put(deep.into_bytes(), JSON).await.unwrap();
    assert_status(resp.status(), &[StatusCode::BAD_REQUEST], "10 000 levels");
    // Deep but within the parser's limit: accepted or refused, never a 5xx.
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let resp = put(nested.into_bytes(), JSON).await.unwrap();
    assert_status(
        resp.status(),
        &[StatusCode::OK, StatusCode::BAD_REQUEST],
        "100 levels",
    );
    let _ = me.delete("/api/session/x").await;
    // Over the value limit (64 KiB by default) but under the body limit.
    let limit = app.settings.session.max_value_bytes;
    let big = serde_json::to_vec(&json!("v".repeat(limit))).unwrap();
    let resp = put(big, JSON).await.unwrap();
    assert_status(
        resp.status(),
        &[StatusCode::PAYLOAD_TOO_LARGE],
        "over the value limit",
    );
    // Wrong content types.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("jsonish"),
    ] {
        let resp = put(b"1".to_vec(), ct).await.unwrap();
        assert_status(
            resp.status(),
            &[StatusCode::UNSUPPORTED_MEDIA_TYPE],
            &format!("content type {ct:?}"),
        );
    }
    // Form posts with a JSON body, and a form body over the body limit.
    let token = me.csrf_token().await;
    let resp = client
        .post(me.url("/session/set"))
        .header("content-type", "application/json")
        .body(json!({"csrf_token": token, "key": "k", "value": "v"}).to_string())
        .send()
        .await
        .unwrap();
    assert_status(
        resp.status(),
        &[StatusCode::UNSUPPORTED_MEDIA_TYPE, StatusCode::BAD_REQUEST],
        "a form posted as JSON",
    );
    let huge = "h".repeat(app.settings.session.max_session_bytes + 128 * 1024);
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "k"), ("value", &huge)],
        )
        .await;
    assert_status(
        resp.status(),
        &[StatusCode::PAYLOAD_TOO_LARGE],
        "a form over the body limit",
    );
    let resp = me
        .post_form("/login", &[("csrf_token", &token), ("name", huge.as_str())])
        .await;
    assert_status(
        resp.status(),
        &[StatusCode::PAYLOAD_TOO_LARGE],
        "a login over the body limit",
    );
    // A value over the value limit through the form.
    let over = "o".repeat(limit + 1);
    let resp = me
        .post_form(
            "/session/set",
            &[("csrf_token", &token), ("key", "k"), ("value", &over)],
        )
        .await;
    assert_status(
        resp.status(),
        &[StatusCode::PAYLOAD_TOO_LARGE],
        "a form value over the limit",
    );
    // A form that is not urlencoded at all.
    let resp = client
        .post(me.url("/session/set"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(&b"%ff%fe=%zz&&&=="[..])
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_client_error(),
        "a broken form: {}",
        resp.status()
    );
    assert_eq!(
        me.session().await["data"],
        json!({"ok": 1}),
        "nothing changed"
    );
    owner.check("hostile values").await;
    app.finish().await;
}
