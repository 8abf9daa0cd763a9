//! "Log out everywhere": the per-user index of sessions, revocation of one
//! session or of all others, and the cookie backend's honest refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_sessions::session::Id;
use websessions::config::Secret;
use websessions::sessions::index::{MAX_SESSIONS_PER_USER, UserIndex};
use websessions::sessions::policy::SystemClock;

use crate::support::{
    Kind, TestApp, Visitor, assert_see_other, csrf_from, spawn_app, spawn_app_with_manual_clock,
    spawn_sharing_store,
};

use crate::support::COOKIE;

async fn login(v: &Visitor, name: &str) {
    let token = v.csrf_token().await;
    let resp = v
        .post_form("/login", &[("csrf_token", &token), ("name", name)])
        .await;
    assert_see_other(&resp, "/");
}

fn fingerprints(html: &str) -> Vec<String> {
    html.split("data-fingerprint=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

pub async fn the_account_page_lists_and_revokes_the_users_sessions(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let laptop = app.visitor();
    let phone = app.visitor();
    login(&laptop, "ada").await;
    login(&phone, "ada").await;
    let other_user = app.visitor();
    login(&other_user, "grace").await;

    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    let listed = fingerprints(&page);
    assert_eq!(
        listed.len(),
        2,
        "both of ada's sessions, not grace's: {listed:?}"
    );
    let laptop_fp = laptop.session().await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone_fp = phone.session().await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(listed.contains(&laptop_fp) && listed.contains(&phone_fp));
    assert!(page.contains("this browser"));

    // The laptop revokes the phone.
    let token = csrf_from(&page);
    let resp = laptop
        .post_form(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("fingerprint", &phone_fp)],
        )
        .await;
    assert_see_other(&resp, "/account/sessions");
    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    assert!(page.contains("revoked"));
    assert_eq!(fingerprints(&page), vec![laptop_fp.clone()]);
    // Revoking deleted the phone's record: its next request has no session.
    let phone_home = phone.get("/").await.text().await.unwrap();
    assert!(
        !phone_home.contains("id=\"user\""),
        "the phone is signed out at its next request"
    );
    assert_eq!(phone.session().await["new"], true);

    // Sign out everywhere else, from a third browser.
    let tablet = app.visitor();
    login(&tablet, "ada").await;
    let page = tablet.get("/account/sessions").await.text().await.unwrap();
    assert_eq!(fingerprints(&page).len(), 2);
    let resp = tablet
        .post_form(
            "/account/sessions/revoke-others",
            &[("csrf_token", &csrf_from(&page))],
        )
        .await;
    assert_see_other(&resp, "/account/sessions");
    let laptop_home = laptop.get("/").await.text().await.unwrap();
    assert!(!laptop_home.contains("id=\"user\""));
    assert_eq!(laptop.session().await["new"], true);
    let page = tablet.get("/account/sessions").await.text().await.unwrap();
    assert_eq!(fingerprints(&page).len(), 1);

    // A forged revoke (no token) changes nothing.
    let resp = tablet
        .post_form("/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Logging out removes the last entry, and with it the index.
    for v in [&tablet, &other_user] {
        let token = v.csrf_token().await;
        assert_see_other(
            &v.post_form("/logout", &[("csrf_token", &token)]).await,
            "/?done=logged_out",
        );
    }
    // Revoked sessions were deleted at their next request; the index went
    // with the last logout.
    app.assert_stored(0).await;
    app.finish().await;
}

#[tokio::test]
async fn cookie_backend_explains_it_cannot_list_sessions() {
    let Some(app) = spawn_app(Kind::Cookie).await else {
        return;
    };
    let me = app.me();
    login(&me, "ada").await;
    let page = me.get("/account/sessions").await.text().await.unwrap();
    assert!(page.contains("account-note") && page.contains("cookie backend"));
    assert!(page.contains("no password"));
    app.finish().await;
}

async fn logout(v: &Visitor) {
    let token = v.csrf_token().await;
    assert_see_other(
        &v.post_form("/logout", &[("csrf_token", &token)]).await,
        "/?done=logged_out",
    );
}

/// The name of the signed-in user, read through the JSON API (the layer's
/// index check runs there too).
async fn signed_in_as(v: &Visitor) -> Option<String> {
    let resp = v.get("/api/session/_user").await;
    match resp.status() {
        StatusCode::OK => resp.json::<Value>().await.unwrap()["value"]["name"]
            .as_str()
            .map(str::to_owned),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET /api/session/_user: {other}"),
    }
}

async fn fingerprint_of(v: &Visitor) -> String {
    v.session().await["fingerprint"]
        .as_str()
        .expect("a session")
        .to_owned()
}

/// The session id behind a visitor's cookie (server-side stores).
fn id_of(v: &Visitor) -> Id {
    v.session_cookie(&COOKIE)
        .expect("a session cookie")
        .parse()
        .expect("a session id")
}

async fn listed(v: &Visitor) -> Vec<String> {
    let resp = v.get("/account/sessions").await;
    assert_eq!(resp.status(), StatusCode::OK);
    fingerprints(&resp.text().await.unwrap())
}

/// The user index over the app's store, read the way the engine reads it.
fn index_of(app: &TestApp) -> UserIndex {
    let policy = websessions::startup::policy(&app.settings, Arc::new(SystemClock));
    UserIndex::new(app.store().clone(), Arc::new(policy))
}

async fn index_fingerprints(app: &TestApp, user: &str) -> Vec<String> {
    index_of(app)
        .list(user)
        .await
        .expect("the index reads")
        .into_iter()
        .map(|(fp, _)| fp)
        .collect()
}

pub async fn cycling_while_signed_in_keeps_the_user_and_moves_the_entry(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    login(&me, "ada").await;
    me.set("kept", json!("yes")).await;
    let first = fingerprint_of(&me).await;
    assert_eq!(listed(&me).await, vec![first.clone()]);

    // The form.
    let token = me.csrf_token().await;
    assert_see_other(
        &me.post_form("/session/cycle", &[("csrf_token", &token)])
            .await,
        "/",
    );
    let second = fingerprint_of(&me).await;
    assert_ne!(second, first);
    assert_eq!(signed_in_as(&me).await.as_deref(), Some("ada"));
    let home = me.get("/").await.text().await.unwrap();
    assert!(home.contains("id=\"user\""), "signed in on the page");
    assert!(!home.contains("revoked"), "not taken for a revocation");
    assert_eq!(listed(&me).await, vec![second.clone()], "moved, once");

    // The JSON API.
    let resp = me.post("/api/session/cycle").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let third = resp.json::<Value>().await.unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(third, second);
    assert_eq!(fingerprint_of(&me).await, third);
    assert_eq!(signed_in_as(&me).await.as_deref(), Some("ada"));
    assert_eq!(me.value("kept").await, Some(json!("yes")), "data kept");
    assert_eq!(listed(&me).await, vec![third.clone()], "moved, once");
    assert_eq!(index_fingerprints(&app, "ada").await, vec![third]);

    logout(&me).await;
    app.finish().await;
}

pub async fn a_revoked_session_is_logged_out_on_its_next_json_request(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let laptop = app.visitor();
    let phone = app.visitor();
    login(&laptop, "ada").await;
    login(&phone, "ada").await;
    phone.set("note", json!("phone's")).await;
    let phone_id = id_of(&phone);
    let phone_fp = fingerprint_of(&phone).await;

    // Revoked from the laptop: entry removed and record deleted.
    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    let resp = laptop
        .post_form(
            "/account/sessions/revoke",
            &[
                ("csrf_token", &csrf_from(&page)),
                ("fingerprint", &phone_fp),
            ],
        )
        .await;
    assert_see_other(&resp, "/account/sessions");
    let body = phone.session().await;
    assert_eq!(body["new"], json!(true), "{body}");
    assert_eq!(body["data"], json!({}));
    assert_eq!(signed_in_as(&phone).await, None);
    let resp = phone.put_json("/api/session/note", &json!("after")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        app.store().load(&phone_id).await.unwrap().is_none(),
        "the write did not reach the revoked record"
    );
    assert_eq!(
        signed_in_as(&phone).await,
        None,
        "a fresh, anonymous session"
    );

    // Only the entry gone (the record not yet deleted, as when another
    // instance is halfway through a revocation): the layer's check alone
    // must log the session out, on a JSON route.
    let tablet = app.visitor();
    login(&tablet, "ada").await;
    tablet.set("note", json!("tablet's")).await;
    let tablet_id = id_of(&tablet);
    let tablet_fp = fingerprint_of(&tablet).await;
    index_of(&app)
        .remove("ada", &tablet_fp)
        .await
        .expect("entry removed");
    assert!(app.store().load(&tablet_id).await.unwrap().is_some());
    let resp = tablet.put_json("/api/session/note", &json!("after")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(signed_in_as(&tablet).await, None);
    let body = tablet.session().await;
    assert_eq!(body["data"], json!({"note": "after"}), "a fresh session");
    assert_ne!(body["fingerprint"], json!(tablet_fp));
    assert!(
        app.store().load(&tablet_id).await.unwrap().is_none(),
        "the revoked record was ended, not written to"
    );

    assert_eq!(listed(&laptop).await, vec![fingerprint_of(&laptop).await]);
    logout(&laptop).await;
    app.finish().await;
}

pub async fn after_a_key_rotation_the_user_stays_signed_in_and_the_list_is_intact(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let laptop = app.visitor();
    let phone = app.visitor();
    login(&laptop, "ada").await;
    login(&phone, "ada").await;
    let mut before = listed(&laptop).await;
    before.sort();
    assert_eq!(before.len(), 2);

    // The same store, restarted with a new key; the old one only reads.
    let new_key = base64::engine::general_purpose::STANDARD.encode([0x5a_u8; 64]);
    let rotated = spawn_sharing_store(
        &app,
        |s| {
            s.session.previous_secret_keys = vec![s.session.secret_key.clone()];
            s.session.secret_key = Secret::new(new_key);
        },
        None,
    )
    .await;
    let laptop_b = rotated.as_visitor(&laptop);
    laptop_b.set_cookie(&COOKIE, &laptop.session_cookie(&COOKIE).unwrap());
    assert_eq!(signed_in_as(&laptop_b).await.as_deref(), Some("ada"));
    let mut after = listed(&laptop_b).await;
    after.sort();
    assert_eq!(after, before, "the index survived the rotation");
    let home = laptop_b.get("/").await.text().await.unwrap();
    assert!(home.contains("id=\"user\""));
    // A form signed with the new key works: log out there.
    logout(&laptop_b).await;
    let phone_b = rotated.as_visitor(&phone);
    phone_b.set_cookie(&COOKIE, &phone.session_cookie(&COOKIE).unwrap());
    assert_eq!(signed_in_as(&phone_b).await.as_deref(), Some("ada"));
    assert_eq!(listed(&phone_b).await, vec![fingerprint_of(&phone_b).await]);
    logout(&phone_b).await;
    rotated.stop().await;
    assert!(index_fingerprints(&app, "ada").await.is_empty());
    app.finish().await;
}

pub async fn logging_out_prunes_the_list(kind: Kind) {
    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let laptop = app.visitor();
    let phone = app.visitor();
    login(&laptop, "ada").await;
    login(&phone, "ada").await;
    assert_eq!(listed(&laptop).await.len(), 2);
    logout(&phone).await;
    let laptop_fp = fingerprint_of(&laptop).await;
    assert_eq!(listed(&laptop).await, vec![laptop_fp.clone()]);
    assert_eq!(index_fingerprints(&app, "ada").await, vec![laptop_fp]);
    logout(&laptop).await;
    assert!(index_fingerprints(&app, "ada").await.is_empty());
    // No session and no index left behind.
    app.assert_stored(0).await;
    app.finish().await;
}

/// Instance A serves the victim's requests (each one refreshes its entry:
/// the clock moves past the refresh interval before each) while instance B
/// revokes it. No request that starts after the revocation is signed in,
/// and the entry never comes back.
pub async fn two_instances_revoking_and_refreshing_at_once_never_leave_a_revoked_session_alive(
    kind: Kind,
) {
    let Some((app, clock)) =
        spawn_app_with_manual_clock(kind, |s| s.session.touch_interval = Duration::ZERO).await
    else {
        return;
    };
    let b = spawn_sharing_store(&app, |_| {}, Some(clock.clone())).await;
    let admin = app.visitor();
    login(&admin, "ada").await;
    let admin_b = b.as_visitor(&admin);
    admin_b.set_cookie(&COOKIE, &admin.session_cookie(&COOKIE).unwrap());
    for round in 0..5 {
        let victim = app.visitor();
        login(&victim, "ada").await;
        let victim_id = id_of(&victim);
        let victim_fp = fingerprint_of(&victim).await;
        let revoked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = {
            let (victim, clock, revoked, stop) =
                (victim.clone(), clock.clone(), revoked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut signed_in_after_revocation = 0;
                let mut requests = 0;
                // Bounded, so the shared clock never runs past the admin's
                // idle timeout (1 h) while a slow machine serves one page.
                while !stop.load(Ordering::SeqCst) && requests < 500 {
                    clock.advance(Duration::from_millis(1100));
                    let after = revoked.load(Ordering::SeqCst);
                    let user = signed_in_as(&victim).await;
                    requests += 1;
                    if after && user.is_some() {
                        signed_in_after_revocation += 1;
                    }
                }
                (requests, signed_in_after_revocation)
            })
        };
        tokio::task::yield_now().await;
        let page = admin_b.get("/account/sessions").await.text().await.unwrap();
        assert!(fingerprints(&page).contains(&victim_fp), "round {round}");
        let resp = admin_b
            .post_form(
                "/account/sessions/revoke",
                &[
                    ("csrf_token", &csrf_from(&page)),
                    ("fingerprint", &victim_fp),
                ],
            )
            .await;
        assert_see_other(&resp, "/account/sessions");
        revoked.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            signed_in_as(&admin).await;
        }
        stop.store(true, Ordering::SeqCst);
        let (requests, alive) = refresher.await.unwrap();
        assert!(requests > 0);
        assert_eq!(
            alive, 0,
            "round {round}: signed in after the revocation ({requests} requests)"
        );
        let victim_b = b.as_visitor(&victim);
        for v in [&victim, &victim_b] {
            assert_eq!(signed_in_as(v).await, None, "round {round}");
            assert_eq!(v.session().await["new"], json!(true), "round {round}");
        }
        assert!(
            app.store().load(&victim_id).await.unwrap().is_none(),
            "round {round}: the revoked record is gone"
        );
        assert!(
            !index_fingerprints(&app, "ada").await.contains(&victim_fp),
            "round {round}: the entry came back"
        );
    }
    assert_eq!(listed(&admin_b).await, vec![fingerprint_of(&admin).await]);
    logout(&admin_b).await;
    b.stop().await;
    app.finish().await;
}

pub async fn a_user_keeps_at_most_fifty_sessions_and_the_least_recently_seen_go(kind: Kind) {
    let Some((app, clock)) = spawn_app_with_manual_clock(kind, |_| {}).await else {
        return;
    };
    let extra = 3;
    let mut sessions = Vec::new();
    for _ in 0..MAX_SESSIONS_PER_USER + extra {
        clock.advance(Duration::from_millis(10));
        let v = app.visitor();
        login(&v, "ada").await;
        let id = id_of(&v);
        sessions.push((v, id));
    }
    let index = index_fingerprints(&app, "ada").await;
    assert_eq!(index.len(), MAX_SESSIONS_PER_USER);
    for (n, (v, id)) in sessions.iter().enumerate() {
        let fp = websessions::sessions::store::fingerprint(id);
        if n < extra {
            assert!(!index.contains(&fp), "session {n} was revoked");
            assert!(
                app.store().load(id).await.unwrap().is_none(),
                "session {n}: its record was deleted"
            );
            assert_eq!(signed_in_as(v).await, None, "session {n}");
        } else {
            assert!(index.contains(&fp), "session {n} is kept");
        }
    }
    let (last, _) = sessions.last().unwrap();
    assert_eq!(signed_in_as(last).await.as_deref(), Some("ada"));
    let page = last.get("/account/sessions").await.text().await.unwrap();
    assert_eq!(fingerprints(&page).len(), MAX_SESSIONS_PER_USER);
    let resp = last
        .post_form(
            "/account/sessions/revoke-others",
            &[("csrf_token", &csrf_from(&page))],
        )
        .await;
    assert_see_other(&resp, "/account/sessions");
    logout(last).await;
    assert!(index_fingerprints(&app, "ada").await.is_empty());
    app.assert_stored(0).await;
    app.finish().await;
}

/// The account scenarios on every backend that keeps sessions on the
/// server (the cookie backend has no index: see the test above).
mod server_side {
    use crate::accounts;
    crate::backends! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        [file, memory, sqlite, postgres, mysql, redis, memcached] => {
            accounts::{
                the_account_page_lists_and_revokes_the_users_sessions,
                cycling_while_signed_in_keeps_the_user_and_moves_the_entry,
                a_revoked_session_is_logged_out_on_its_next_json_request,
                after_a_key_rotation_the_user_stays_signed_in_and_the_list_is_intact,
                logging_out_prunes_the_list,
                two_instances_revoking_and_refreshing_at_once_never_leave_a_revoked_session_alive,
                a_user_keeps_at_most_fifty_sessions_and_the_least_recently_seen_go,
            },
        }
    }
}
