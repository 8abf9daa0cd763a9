//! Session fixation and logout, on every backend. Server-side: login gives a
//! new id and the pre-login id is dead; logout deletes the record on the
//! server; an id the store does not hold is never adopted. Cookie backend:
//! the documented difference (a copy of an older cookie stays valid until
//! its embedded expiry).

use reqwest::StatusCode;
use serde_json::json;

use crate::reliability::common::{COOKIE, id_of, session_with_cookie, set_cookie_value};
use crate::support::{Kind, assert_see_other, spawn_app};

pub async fn login_cycles_the_id_and_logout_deletes_the_session(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("cart", json!(["apple"])).await;
    let before = me.session_cookie(&COOKIE).unwrap();
    let fp_before = me.session().await["fingerprint"].clone();
    let token = me.csrf_token().await;
    let resp = me
        .post_form(
            "/login",
            &[("csrf_token", &token), ("name", "mallory's victim")],
        )
        .await;
    assert_see_other(&resp, "/");
    let after = set_cookie_value(&resp, &COOKIE).expect("login sets the cookie");
    assert_ne!(after, before, "login cycles the id");
    let body = me.session().await;
    assert_ne!(body["fingerprint"], fp_before, "a new fingerprint");
    assert_eq!(
        body["data"],
        json!({"cart": ["apple"]}),
        "data survives login"
    );

    let (status, old) = session_with_cookie(&app, &format!("{COOKIE}={before}")).await;
    assert_eq!(status, StatusCode::OK);
    if kind.server_side() {
        assert_eq!(old["new"], json!(true), "the pre-login id is dead");
        assert_eq!(old["data"], json!({}));
        assert!(
            app.store().load(&id_of(&before)).await.unwrap().is_none(),
            "no record under the pre-login id"
        );
        let record = app
            .store()
            .load(&id_of(&after))
            .await
            .unwrap()
            .expect("the logged-in record");
        assert_eq!(record.data["_user"]["name"], json!("mallory's victim"));
        // The session, and its user's index of sessions (`/account/sessions`).
        // (memcached is counted through the cookies handed out, so the index,
        // which no cookie names, is not among them.)
        app.assert_stored(if kind == Kind::Memcached { 1 } else { 2 })
            .await;
    } else {
        // Documented difference: the pre-login cookie still carries the
        // pre-login record (without the user) until its expiry.
        assert_eq!(
            old["fingerprint"], fp_before,
            "a cookie copy outlives login"
        );
        assert_eq!(old["data"], json!({"cart": ["apple"]}));
    }

    // Logout deletes the record on the server.
    let token = me.csrf_token().await;
    let resp = me.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_see_other(&resp, "/?done=logged_out");
    let removal = set_cookie_value(&resp, &COOKIE).expect("logout removes the cookie");
    assert!(removal.is_empty(), "{removal}");
    assert_eq!(me.session_cookie(&COOKIE), None);
    let (_, replay) = session_with_cookie(&app, &format!("{COOKIE}={after}")).await;
    if kind.server_side() {
        assert!(
            app.store().load(&id_of(&after)).await.unwrap().is_none(),
            "logout deleted the record"
        );
        app.assert_stored(0).await;
        assert_eq!(replay["new"], json!(true), "the logged-out id is dead");
        // A write with the logged-out id creates a fresh id, not the old one.
        let client = crate::reliability::common::bare_client();
        let resp = client
            .put(app.url("/api/session/x"))
            .header("cookie", format!("{COOKIE}={after}"))
            .json(&json!(1))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let fresh = set_cookie_value(&resp, &COOKIE).unwrap();
        assert_ne!(fresh, after, "the logged-out id is not revived");
        app.store().delete(&id_of(&fresh)).await.unwrap();
    } else {
        // Documented difference: a copy of the logged-in cookie stays
        // logged in until its embedded expiry.
        assert_eq!(replay["new"], json!(false), "a cookie copy outlives logout");
        assert_eq!(replay["data"], json!({"cart": ["apple"]}));
    }
    app.finish().await;
}

pub async fn planted_id_is_never_adopted(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    // A well-formed id the store does not hold (what an attacker plants).
    let planted = tower_sessions::session::Id::default().to_string();
    let victim = app.visitor();
    victim.set_cookie(&COOKIE, &planted);
    // A write gives another id.
    let resp = victim.put_json("/api/session/a", &json!(1)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let got = set_cookie_value(&resp, &COOKIE).expect("a session cookie");
    assert_ne!(got, planted, "the planted id was adopted on write");
    if kind.server_side() {
        assert!(app.store().load(&id_of(&planted)).await.unwrap().is_none());
    }
    assert_eq!(
        victim.delete("/api/session").await.status(),
        StatusCode::NO_CONTENT
    );

    // A login that starts from the planted cookie gets another id too.
    let victim = app.visitor();
    victim.set_cookie(&COOKIE, &planted);
    let token = victim.csrf_token().await;
    let resp = victim
        .post_form("/login", &[("csrf_token", &token), ("name", "ada")])
        .await;
    assert_see_other(&resp, "/");
    let got = set_cookie_value(&resp, &COOKIE).expect("login sets a cookie");
    assert_ne!(got, planted, "the planted id was adopted by login");
    let attacker = app.visitor();
    attacker.set_cookie(&COOKIE, &planted);
    let body = attacker.session().await;
    assert_eq!(body["new"], json!(true), "the attacker's id names nothing");
    assert!(
        !attacker
            .get("/")
            .await
            .text()
            .await
            .unwrap()
            .contains("id=\"user\">ada"),
        "the attacker is not logged in as the victim"
    );
    if kind.server_side() {
        assert!(app.store().load(&id_of(&planted)).await.unwrap().is_none());
        // The victim's session, and the user's index of sessions.
        // (memcached is counted through the cookies handed out, so the index,
        // which no cookie names, is not among them.)
        app.assert_stored(if kind == Kind::Memcached { 1 } else { 2 })
            .await;
    }
    // Other planted shapes never become the id either.
    for value in ["AAAAAAAAAAAAAAAAAAAAAA", "___________________w", "attacker"] {
        let v = app.visitor();
        v.set_cookie(&COOKIE, value);
        let resp = v.put_json("/api/session/a", &json!(1)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_ne!(set_cookie_value(&resp, &COOKIE).unwrap(), value);
        assert_eq!(
            v.delete("/api/session").await.status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        victim.delete("/api/session").await.status(),
        StatusCode::NO_CONTENT
    );
    app.finish().await;
}
