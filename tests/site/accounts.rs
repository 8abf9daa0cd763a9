//! "Log out everywhere": the per-user index of sessions, revocation of one
//! session or of all others, and the cookie backend's honest refusal.

use reqwest::StatusCode;

use crate::support::{Kind, Visitor, assert_see_other, csrf_from, spawn_app};

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

async fn account_page(kind: Kind) {
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
async fn account_page_file() {
    account_page(Kind::File).await
}

#[tokio::test]
async fn account_page_sqlite() {
    account_page(Kind::Sqlite).await
}

#[tokio::test]
async fn account_page_redis() {
    account_page(Kind::Redis).await
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

#[tokio::test]
async fn account_page_memcached() {
    account_page(Kind::Memcached).await
}

#[tokio::test]
async fn account_page_postgres() {
    account_page(Kind::Postgres).await
}
