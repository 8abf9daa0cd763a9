//! The scenarios every backend must pass. Each spawns its own app and store
//! and ends with `finish()`, which proves the store empty.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use time::format_description::well_known::Rfc3339;
use websessions::sessions::policy::Clock;

use crate::support::{
    Kind, LaggingClock, max_age, set_cookies, spawn_app, spawn_app_with, spawn_app_with_clock,
    spawn_app_with_manual_clock,
};

use crate::support::COOKIE;

pub async fn new_visitor_gets_no_session(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    for path in [
        "/",
        "/api/session",
        "/session/get?key=a&default=d",
        "/api/session/a",
        "/api/session/expiry",
    ] {
        let resp = me.get(path).await;
        assert!(
            resp.status() == StatusCode::OK || resp.status() == StatusCode::NOT_FOUND,
            "{path}"
        );
        assert!(
            set_cookies(resp.headers(), &COOKIE).is_empty(),
            "{path} set a session cookie"
        );
    }
    let body = me.session().await;
    assert_eq!(body["new"], json!(true));
    assert_eq!(body["fingerprint"], Value::Null);
    assert_eq!(body["expires_at"], Value::Null);
    assert_eq!(body["data"], json!({}));
    app.assert_stored(0).await;
    app.finish().await;
}

pub async fn values_are_created_read_and_updated(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    let resp = me.put_json("/api/session/color", &json!("blue")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        set_cookies(resp.headers(), &COOKIE).len(),
        1,
        "first write sets the cookie"
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"key": "color", "value": "blue"})
    );
    assert_eq!(me.value("color").await, Some(json!("blue")));
    me.set("color", json!({"r": 1, "g": [2, 3]})).await;
    me.set("n", json!(42)).await;
    assert_eq!(me.value("color").await, Some(json!({"r": 1, "g": [2, 3]})));
    let body = me.session().await;
    assert_eq!(body["new"], json!(false));
    assert_eq!(body["backend"], json!(kind.backend().as_str()));
    assert_eq!(
        body["data"],
        json!({"color": {"r": 1, "g": [2, 3]}, "n": 42}),
        "only the visitor's keys"
    );
    let fp = body["fingerprint"].as_str().expect("fingerprint");
    assert_eq!(fp.len(), 8);
    assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(body["expires_at"].as_str().is_some());
    app.assert_stored(1).await;
    app.finish().await;
}

pub async fn the_session_cookie_carries_its_attributes(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    let resp = me.put_json("/api/session/a", &json!(1)).await;
    let cookies = set_cookies(resp.headers(), &COOKIE);
    let cookie = cookies.first().expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "test profile is not secure: {cookie}"
    );
    let idle = app.settings.session.idle_timeout.as_secs() as i64;
    let age = max_age(cookie).expect("Max-Age");
    assert!(
        (idle - 2..=idle).contains(&age),
        "Max-Age {age} vs idle {idle}"
    );
    let value = me.session_cookie(&COOKIE).expect("cookie in jar");
    if kind.server_side() {
        assert_eq!(value.len(), 22, "128 random bits, base64url");
    } else {
        assert!(!value.contains("\"a\""), "the record is not in plain JSON");
    }
    app.finish().await;
}

pub async fn a_removed_key_is_gone_and_the_others_stay(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    me.set("b", json!(2)).await;
    assert_eq!(
        me.delete("/api/session/a").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me.value("a").await, None);
    assert_eq!(me.value("b").await, Some(json!(2)));
    assert_eq!(
        me.delete("/api/session/a").await.status(),
        StatusCode::NO_CONTENT,
        "absent is fine"
    );
    assert_eq!(me.session().await["data"], json!({"b": 2}));
    app.finish().await;
}

pub async fn an_explicit_save_creates_nothing_alone_and_resends_the_cookie(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    let resp = me.post("/api/session/save").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(
        set_cookies(resp.headers(), &COOKIE).is_empty(),
        "no session: no cookie"
    );
    app.assert_stored(0).await;
    me.set("a", json!(1)).await;
    let resp = me.post("/api/session/save").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        set_cookies(resp.headers(), &COOKIE).len(),
        1,
        "a save re-sends the cookie"
    );
    assert_eq!(me.value("a").await, Some(json!(1)));
    app.finish().await;
}

pub async fn deleting_the_session_removes_its_record_and_cookie(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let old = me.session_cookie(&COOKIE).expect("cookie");
    let resp = me.delete("/api/session").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let removal = set_cookies(resp.headers(), &COOKIE);
    assert_eq!(removal.len(), 1, "the cookie is removed");
    assert_eq!(max_age(removal[0]), Some(0));
    assert_eq!(me.session_cookie(&COOKIE), None);
    app.assert_stored(0).await;
    me.set_cookie(&COOKIE, &old);
    let body = me.session().await;
    if kind.server_side() {
        assert_eq!(body["new"], json!(true), "the old cookie names nothing");
        assert_eq!(body["data"], json!({}));
    } else {
        // Documented difference: nothing on the server can forget a cookie,
        // so a copy stays valid until its embedded expiry.
        assert_eq!(
            body["data"],
            json!({"a": 1}),
            "a cookie copy outlives delete"
        );
    }
    app.finish().await;
}

pub async fn cycling_keeps_the_data_and_kills_the_old_id(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!("kept")).await;
    let before = me.session().await["fingerprint"].clone();
    let old = me.session_cookie(&COOKIE).expect("cookie");
    let resp = me.post("/api/session/cycle").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let new_fp = resp.json::<Value>().await.unwrap()["fingerprint"].clone();
    assert!(new_fp.is_string());
    assert_ne!(new_fp, before);
    let body = me.session().await;
    assert_eq!(body["fingerprint"], new_fp);
    assert_eq!(body["data"], json!({"a": "kept"}));
    assert_ne!(me.session_cookie(&COOKIE).unwrap(), old);
    app.assert_stored(1).await;

    let attacker = app.visitor();
    attacker.set_cookie(&COOKIE, &old);
    let replayed = attacker.session().await;
    if kind.server_side() {
        assert_eq!(replayed["new"], json!(true), "the old id is dead");
    } else {
        // Documented difference: the old cookie still carries the old record.
        assert_eq!(
            replayed["fingerprint"], before,
            "a cookie copy outlives cycle"
        );
    }

    let nobody = app.visitor();
    let resp = nobody.post("/api/session/cycle").await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"fingerprint": null})
    );
    assert_eq!(nobody.session_cookie(&COOKIE), None);
    app.finish().await;
}

/// The engine's clock moves, not the real one: the stores still hold the
/// record, and the engine's own check must end the session.
pub async fn idle_expiry_ends_a_quiet_session(kind: Kind) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.idle_timeout = Duration::from_secs(2))
            .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    clock.advance(Duration::from_millis(1900));
    assert_eq!(
        me.session().await["new"],
        json!(false),
        "still within idle_timeout"
    );
    clock.advance(Duration::from_millis(2100));
    let body = me.session().await;
    assert_eq!(
        body["new"],
        json!(true),
        "idle for longer than idle_timeout"
    );
    assert_eq!(body["data"], json!({}));
    app.finish().await;
}

pub async fn absolute_expiry_ends_an_active_session(kind: Kind) {
    let Some((app, clock)) = spawn_app_with_manual_clock(kind, |s| {
        s.session.idle_timeout = Duration::from_secs(2);
        s.session.absolute_timeout = Duration::from_secs(3);
        s.session.touch_interval = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let me = app.me();
    // The engine's clock stands still between moves: this is `_created_at`.
    let created = clock.now();
    me.set("a", json!(1)).await;
    let mut alive_until_cap = true;
    for _ in 0..4 {
        clock.advance(Duration::from_millis(600));
        alive_until_cap &= me.session().await["new"] == json!(false);
    }
    assert!(
        alive_until_cap,
        "activity keeps the session alive before the cap"
    );
    // 2.4 s in: the cap (3 s) has not passed, but the stored expiry is
    // capped (now + idle would be 4.4 s in).
    let expires = expires_at(&me).await;
    let expires = time::OffsetDateTime::parse(&expires, &Rfc3339).unwrap();
    assert!(
        expires <= created + Duration::from_secs(3),
        "expiry capped at created + absolute: {expires} vs created {created}"
    );
    clock.advance(Duration::from_millis(1200));
    assert_eq!(
        me.session().await["new"],
        json!(true),
        "absolute timeout ends an active session"
    );
    app.finish().await;
}

async fn expires_at(me: &crate::support::Visitor) -> String {
    me.get("/api/session/expiry")
        .await
        .json::<Value>()
        .await
        .unwrap()["expires_at"]
        .as_str()
        .expect("expires_at")
        .to_owned()
}

pub async fn a_read_extends_the_session(kind: Kind) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.touch_interval = Duration::ZERO).await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let first = expires_at(&me).await;
    clock.advance(Duration::from_secs(5));
    let resp = me.get("/api/session/a").await;
    assert_eq!(
        set_cookies(resp.headers(), &COOKIE).len(),
        1,
        "a touch re-sends the cookie"
    );
    let second = expires_at(&me).await;
    assert!(
        second > first,
        "a read extended the session: {first} -> {second}"
    );
    app.finish().await;
}

pub async fn with_extension_off_only_writes_extend(kind: Kind) {
    let Some((app, clock)) = spawn_app_with_manual_clock(kind, |s| {
        s.session.extend_on_every_request = false;
        s.session.touch_interval = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let first = expires_at(&me).await;
    clock.advance(Duration::from_secs(5));
    let resp = me.get("/api/session/a").await;
    assert!(
        set_cookies(resp.headers(), &COOKIE).is_empty(),
        "no touch, no cookie"
    );
    assert_eq!(expires_at(&me).await, first, "a read did not extend");
    me.set("b", json!(2)).await;
    assert!(expires_at(&me).await > first, "a write extends");
    app.finish().await;
}

pub async fn a_read_within_the_touch_interval_does_not_extend(kind: Kind) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.touch_interval = Duration::from_secs(30))
            .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let first = expires_at(&me).await;
    clock.advance(Duration::from_secs(10));
    let resp = me.get("/api/session/a").await;
    assert!(
        set_cookies(resp.headers(), &COOKIE).is_empty(),
        "within touch_interval: no touch"
    );
    assert_eq!(expires_at(&me).await, first);
    app.finish().await;
}

/// With the default 1 s interval, a visitor reading steadily is extended
/// about once a second, not on every read: a store whose expiry is coarse
/// (memcached's whole seconds) must not turn every read into a touch.
pub async fn steady_reads_touch_about_once_per_interval(kind: Kind) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.touch_interval = Duration::from_secs(1))
            .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let mut reads = 0;
    let mut touches = 0;
    // A read every 25 ms for 3 s of the engine's clock.
    for _ in 0..120 {
        clock.advance(Duration::from_millis(25));
        let resp = me.get("/api/session/a").await;
        assert_eq!(resp.status(), StatusCode::OK);
        reads += 1;
        touches += usize::from(!set_cookies(resp.headers(), &COOKIE).is_empty());
    }
    // 3 s at one touch per second, plus one for a boundary.
    assert!(
        touches <= 4,
        "{touches} of {reads} reads extended the session in 3 s"
    );
    app.finish().await;
}

pub async fn polling_the_expiry_never_extends(kind: Kind) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.touch_interval = Duration::ZERO).await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let first = expires_at(&me).await;
    clock.advance(Duration::from_secs(5));
    let resp = me.get("/api/session/expiry").await;
    assert!(set_cookies(resp.headers(), &COOKIE).is_empty());
    let body = resp.json::<Value>().await.unwrap();
    assert_eq!(
        body["expires_at"].as_str(),
        Some(first.as_str()),
        "polling did not extend"
    );
    assert!(body["seconds_left"].as_i64().unwrap() > 0);
    app.finish().await;
}

/// Purging deletes the expired sessions and keeps the live one. Redis and
/// memcached drop expired keys by their own TTL, so nothing is left there
/// to purge.
pub async fn purge_deletes_only_expired_sessions(kind: Kind) {
    use websessions::sessions::store::Capability;
    let ttl_store = matches!(
        kind,
        Kind::Redis
            | Kind::RedisCluster
            | Kind::Rediss
            | Kind::RedissCluster
            | Kind::RedisSentinel
            | Kind::Memcached
    );
    let clock = LaggingClock::new();
    let Some(app) = spawn_app_with_clock(
        kind,
        |s| s.session.idle_timeout = Duration::from_secs(2),
        clock.clone(),
    )
    .await
    else {
        return;
    };
    if !ttl_store {
        // Written an hour ago, by every clock's count.
        clock.set_behind(Duration::from_secs(3600));
    }
    let mut old_cookies = Vec::new();
    for i in 0..3 {
        let v = app.visitor();
        v.set("i", json!(i)).await;
        old_cookies.push(v.session_cookie(&COOKIE).unwrap());
    }
    if ttl_store {
        // Real time: only the store's own TTL, on its own clock, drops a key.
        tokio::time::sleep(Duration::from_millis(2300)).await;
    }
    clock.set_behind(Duration::ZERO);
    let live = app.visitor();
    live.set("live", json!(true)).await;
    match kind {
        Kind::Cookie | Kind::CookieSigned => {
            // Nothing to purge on the server: an expired cookie replayed is
            // refused by the expiry it carries.
            let replay = app.visitor();
            replay.set_cookie(&COOKIE, &old_cookies[0]);
            assert_eq!(replay.session().await["new"], json!(true));
        }
        Kind::Redis
        | Kind::RedisCluster
        | Kind::Rediss
        | Kind::RedissCluster
        | Kind::RedisSentinel => {
            // Redis deletes expired keys itself (TTL): nothing left to purge.
            assert_eq!(
                app.store().count_expired().await.unwrap(),
                Capability::Supported(0)
            );
            assert_eq!(
                app.store().purge_expired().await.unwrap(),
                Capability::Supported(0)
            );
            app.assert_stored(1).await;
        }
        Kind::Memcached => {
            // memcached expires items itself and cannot list them.
            assert!(matches!(
                app.store().purge_expired().await.unwrap(),
                Capability::Unsupported(_)
            ));
            assert!(matches!(
                app.store().count_expired().await.unwrap(),
                Capability::Unsupported(_)
            ));
            for cookie in &old_cookies {
                let id = cookie.parse().unwrap();
                assert!(
                    app.store().load(&id).await.unwrap().is_none(),
                    "expired item gone"
                );
            }
        }
        _ => {
            assert_eq!(
                app.store().count_expired().await.unwrap(),
                Capability::Supported(3)
            );
            assert_eq!(
                app.store().purge_expired().await.unwrap(),
                Capability::Supported(3)
            );
            app.assert_stored(1).await;
        }
    }
    assert_eq!(live.value("live").await, Some(json!(true)));
    app.finish().await;
}

pub async fn clear_deletes_every_session_where_the_store_can(kind: Kind) {
    use websessions::sessions::store::Capability;
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let visitors: Vec<_> = (0..3).map(|_| app.visitor()).collect();
    for v in &visitors {
        v.set("a", json!(1)).await;
    }
    let cleared = match &app.store {
        Some(store) => store.clear().await.unwrap(),
        None => Capability::Unsupported("no server state"),
    };
    match kind {
        Kind::Memcached | Kind::Cookie | Kind::CookieSigned => {
            // Documented: memcached cannot list its keys, and cookie sessions
            // live in the browsers. Both say so; the sessions go on.
            assert!(matches!(cleared, Capability::Unsupported(_)));
            for v in &visitors {
                assert_eq!(v.value("a").await, Some(json!(1)));
            }
        }
        _ => {
            assert_eq!(cleared, Capability::Supported(3));
            app.assert_stored(0).await;
            for v in &visitors {
                assert_eq!(v.session().await["new"], json!(true));
            }
        }
    }
    app.finish().await;
}

pub async fn bad_cookies_give_a_fresh_session(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let owner = app.visitor();
    owner.set("secret", json!("owner's")).await;
    let bad = [
        "garbage".to_owned(),
        "x".repeat(8 * 1024),
        "../../etc/passwd".to_owned(),
        "AAAAAAAAAAAAAAAAAAAAAA".to_owned(), // well-formed, unknown
        "0123456789abcdef0123456789abcdef".to_owned(), // another format's id
        "%00%ff%fe".to_owned(),
    ];
    for value in &bad {
        let v = app.visitor();
        let resp = v
            .client
            .get(v.url("/api/session"))
            .header("cookie", format!("{COOKIE}={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "cookie {value:.40}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["new"], json!(true));
        assert_eq!(body["data"], json!({}), "never another visitor's data");
        let resp = v
            .client
            .put(v.url("/api/session/k"))
            .header("cookie", format!("{COOKIE}={value}"))
            .json(&json!("v"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let fresh = set_cookies(resp.headers(), &COOKIE);
        assert_eq!(fresh.len(), 1);
        assert!(
            !fresh[0].starts_with(&format!("{COOKIE}={value};")),
            "the bad id was not adopted"
        );
    }
    let resp = app
        .visitor()
        .client
        .get(app.url("/api/session"))
        .header(
            "cookie",
            [format!("{COOKIE}=").as_bytes(), b"\xff\xfe"].concat(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "a non-UTF-8 cookie");
    assert_eq!(owner.value("secret").await, Some(json!("owner's")));
    app.finish().await;
}

pub async fn a_deleted_session_stays_deleted(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let old = me.session_cookie(&COOKIE).unwrap();
    let copy = app.visitor();
    copy.set_cookie(&COOKIE, &old);
    assert_eq!(
        copy.value("a").await,
        Some(json!(1)),
        "a copy of the cookie reads the session"
    );
    assert_eq!(
        me.delete("/api/session").await.status(),
        StatusCode::NO_CONTENT
    );
    // The copy writes after the delete: it must get a new session, and the
    // deleted one must not come back.
    let resp = copy.put_json("/api/session/b", &json!(2)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let new_cookie = copy.session_cookie(&COOKIE).unwrap();
    assert_ne!(new_cookie, old);
    let replay = app.visitor();
    replay.set_cookie(&COOKIE, &old);
    if kind.server_side() {
        assert_eq!(
            copy.session().await["data"],
            json!({"b": 2}),
            "nothing of the deleted session"
        );
        assert_eq!(replay.session().await["new"], json!(true));
        app.assert_stored(1).await;
    } else {
        // Documented difference: the copy still holds the whole session.
        assert_eq!(copy.session().await["data"], json!({"a": 1, "b": 2}));
        assert_eq!(replay.value("a").await, Some(json!(1)));
    }
    app.finish().await;
}

pub async fn concurrent_visitors_never_mix(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..50 {
        let v = app.visitor();
        tasks.push(tokio::spawn(async move {
            v.set("who", json!(i)).await;
            for round in 0..3 {
                v.set("round", json!(round)).await;
                let body = v.session().await;
                assert_eq!(
                    body["data"],
                    json!({"who": i, "round": round}),
                    "visitor {i} saw other data"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("visitor task");
    }
    app.assert_stored(50).await;
    app.finish().await;
}

pub async fn writes_over_the_size_limits_are_refused(kind: Kind) {
    if !kind.server_side() {
        return cookie_size_limit(kind).await;
    }
    let Some(app) = spawn_app_with(kind, |s| {
        s.session.max_value_bytes = 100;
        s.session.max_session_bytes = 300;
    })
    .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!("x".repeat(90))).await;
    let resp = me
        .put_json("/api/session/big", &json!("x".repeat(150)))
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error = resp.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("100"), "{error}");
    me.set("b", json!("y".repeat(90))).await;
    let resp = me.put_json("/api/session/c", &json!("z".repeat(90))).await;
    assert_eq!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "session total over 300 bytes"
    );
    let data = me.session().await["data"].clone();
    assert_eq!(
        data,
        json!({"a": "x".repeat(90), "b": "y".repeat(90)}),
        "the session stayed as it was"
    );
    app.finish().await;
}

/// The cookie backend's limit is the 4096-byte cookie, computed exactly
/// before anything changes.
async fn cookie_size_limit(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!("x".repeat(1500))).await;
    let before = me.session_cookie(&COOKIE).unwrap();
    let resp = me
        .put_json("/api/session/b", &json!("y".repeat(2500)))
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "the browser keeps the cookie it had"
    );
    let error = resp.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("4096"), "{error}");
    assert_eq!(me.session_cookie(&COOKIE).unwrap(), before);
    assert_eq!(me.session().await["data"], json!({"a": "x".repeat(1500)}));
    // Just under the limit is accepted, and the cookie really fits.
    let mut n = 2400;
    loop {
        let resp = me.put_json("/api/session/b", &json!("y".repeat(n))).await;
        if resp.status() == StatusCode::OK {
            let cookie = set_cookies(resp.headers(), &COOKIE)[0]
                .split(';')
                .next()
                .unwrap()
                .len();
            assert!(cookie <= 4096, "cookie of {cookie} bytes");
            assert!(cookie > 3900, "the check is not far too strict: {cookie}");
            break;
        }
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        n -= 20;
    }
    app.finish().await;
}

pub async fn health_reports_the_backend_and_sets_no_cookie(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    let resp = me.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "ok", "backend": kind.backend().as_str()})
    );
    let resp = me.get("/healthz/live").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("set-cookie").is_none());
    assert_eq!(resp.text().await.unwrap(), "ok");
    app.finish().await;
}

/// A JSON value nested deeper than 64 levels is refused with 400 and the
/// session stays as it was; a value exactly 64 deep stores and loads back
/// (stored records add nesting of their own: a value that stores must load).
pub async fn json_nested_deeper_than_64_levels_is_refused(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("ok", json!(1)).await;
    let before = me.session().await;
    let nested = |depth: usize| {
        let mut value = json!(true);
        for level in 0..depth {
            value = if level % 2 == 0 {
                json!([value])
            } else {
                json!({ "k": value })
            };
        }
        value
    };
    for depth in [65, 100, 126, 127] {
        let resp = me.put_json("/api/session/deep", &nested(depth)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{depth} levels");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap_or("").contains("64"),
            "the error says the limit: {body}"
        );
        let after = me.session().await;
        assert_eq!(
            after["fingerprint"], before["fingerprint"],
            "{depth} levels"
        );
        assert_eq!(after["data"], before["data"], "nothing changed");
    }
    let deepest = nested(64);
    me.set("deep", deepest.clone()).await;
    assert_eq!(me.value("deep").await, Some(deepest.clone()));
    let after = me.session().await;
    assert_eq!(
        after["fingerprint"], before["fingerprint"],
        "the session loads"
    );
    assert_eq!(after["data"], json!({"ok": 1, "deep": deepest}));
    app.finish().await;
}

/// An active client cannot stretch a session past its absolute timeout:
/// explicit saves and writes once a second store `min(now + idle, created +
/// absolute)`, never later, and the session is gone at the cap. The engine's
/// clock is moved, not slept on: the cap is checked on every load from the
/// record's own `_created_at`, whatever the store's own clock says.
pub async fn saves_and_writes_do_not_outlive_the_absolute_timeout(kind: Kind) {
    let Some((app, clock)) = spawn_app_with_manual_clock(kind, |s| {
        s.session.idle_timeout = Duration::from_secs(2);
        s.session.absolute_timeout = Duration::from_secs(4);
        s.session.touch_interval = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let me = app.me();
    me.set("origin", json!("first")).await;
    let original = me.session().await["fingerprint"].clone();
    assert!(original.is_string());
    for second in 1..=5_i64 {
        clock.advance(Duration::from_secs(1));
        let body = me.session().await;
        if second < 4 {
            assert_eq!(body["new"], json!(false), "{second} s: before the cap");
            assert_eq!(body["fingerprint"], original, "{second} s: same session");
            assert_eq!(body["data"]["origin"], json!("first"), "{second} s");
        } else {
            assert_ne!(
                body["fingerprint"], original,
                "{second} s: the session outlived its absolute timeout: {body}"
            );
            assert_eq!(body["data"].get("origin"), None, "{second} s: {body}");
        }
        if second == 4 {
            assert_eq!(body["new"], json!(true), "ended at the cap: {body}");
        }
        let save = me.post("/api/session/save").await;
        assert_eq!(save.status(), StatusCode::NO_CONTENT);
        let write = me.put_json("/api/session/k", &json!(second)).await;
        assert_eq!(write.status(), StatusCode::OK);
        if second < 4 {
            // No cookie promises more than the cap leaves.
            for cookie in set_cookies(save.headers(), &COOKIE)
                .into_iter()
                .chain(set_cookies(write.headers(), &COOKIE))
            {
                let age = max_age(cookie).expect("Max-Age");
                assert!(
                    age <= 4 - second,
                    "{second} s: Max-Age {age} goes past the cap"
                );
            }
        }
    }
    app.finish().await;
}

/// Another application on the host (or a subdomain) may set a cookie with
/// non-ASCII bytes; the browser sends it in the same `Cookie` header as the
/// session cookie, which must still be found.
pub async fn a_non_ascii_cookie_beside_the_session_cookie_does_not_hide_it(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!("kept")).await;
    let value = me.session_cookie(&COOKIE).expect("a session cookie");
    let stranger = app.visitor();
    for header in [
        format!("theme=caf\u{e9}; {COOKIE}={value}; lang=\u{65e5}\u{672c}"),
        format!("{COOKIE}={value}; theme=caf\u{e9}"),
    ] {
        let resp = stranger
            .client
            .get(stranger.url("/api/session"))
            .header("cookie", header.as_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["new"], json!(false), "the session was found");
        assert_eq!(body["data"]["a"], json!("kept"));
        let resp = stranger
            .client
            .put(stranger.url("/api/session/b"))
            .header("cookie", header.as_bytes())
            .json(&json!(2))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        if kind.server_side() {
            assert!(
                set_cookies(resp.headers(), &COOKIE)
                    .iter()
                    .all(|c| c.starts_with(&format!("{COOKIE}={value};"))),
                "the write went to the same session, not a new one"
            );
        }
    }
    if kind.server_side() {
        assert_eq!(me.session().await["data"], json!({"a": "kept", "b": 2}));
        app.assert_stored(1).await;
    }
    app.finish().await;
}
