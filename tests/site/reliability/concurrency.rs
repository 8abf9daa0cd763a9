//! One visitor's parallel requests: lost increments without
//! `serialize_requests`, exact counts with it, other visitors unaffected;
//! a slow touch never erases a concurrent write; a slow write after a delete
//! or logout never brings the session back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower_sessions::Session;
use websessions::state::AppState;

use crate::reliability::common::{COOKIE, id_of, set_cookie_value, stored};
use websessions::sessions::policy::ManualClock;

use crate::support::{
    Kind, TestApp, Visitor, spawn_app_with, spawn_app_with_routes, spawn_app_with_routes_and_clock,
};

/// The gates of the slow routes: a slow request signals `started` once its
/// session is loaded, then holds until the test `release`s it, so the test
/// acts while the request is really in flight, without guessing how long.
#[derive(Clone, Default)]
struct Gates {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

/// Routes only the tests have: reads and writes held open by `gates`, and a
/// read that takes 300 ms.
fn slow_routes(gates: Gates) -> Router<AppState> {
    let (read, write) = (gates.clone(), gates);
    Router::new()
        .route(
            "/test/slow-read",
            get(move |session: Session| async move {
                let _ = session.get_value("a").await;
                read.started.notify_one();
                read.release.notified().await;
                "read"
            }),
        )
        .route(
            "/test/slow-write",
            get(move |session: Session| async move {
                let _ = session.get_value("a").await;
                write.started.notify_one();
                write.release.notified().await;
                session
                    .insert_value("late", json!("written after the delete"))
                    .await
                    .expect("insert");
                "written"
            }),
        )
        .route(
            "/test/slow-300",
            get(|session: Session| async move {
                let _ = session.get_value("a").await;
                // Real time: only a request that takes a while shows whether
                // another one waited for it.
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
}

/// Starts a slow request with exactly this session cookie, and waits until
/// the server has loaded its session.
async fn in_flight(
    app: &TestApp,
    path: &str,
    cookie: &str,
    started: &Notify,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let req = crate::reliability::common::bare_client()
        .get(app.url(path))
        .header("cookie", format!("{COOKIE}={cookie}"));
    let task = tokio::spawn(async move { req.send().await.expect("the slow request") });
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the slow request started");
    task
}

/// `_visits` as stored.
async fn visits(app: &TestApp, v: &Visitor) -> i64 {
    let record = stored(app, v).await.expect("a stored session");
    record
        .data
        .get("_visits")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// 20 parallel `GET /` of one visitor; returns the final `_visits`.
async fn twenty_parallel_visits(app: &TestApp) -> i64 {
    let me = app.visitor();
    me.set("a", json!(1)).await;
    assert_eq!(visits(app, &me).await, 0);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let me = me.clone();
        tasks.push(tokio::spawn(async move {
            let resp = me.get("/").await;
            assert_eq!(resp.status(), StatusCode::OK);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = visits(app, &me).await;
    assert_eq!(
        me.delete("/api/session").await.status(),
        StatusCode::NO_CONTENT
    );
    n
}

/// Without `serialize_requests`, whole-record saves are last-write-wins:
/// parallel increments of one counter can be lost. Never more than 20, and
/// logged. Losses depend on scheduling, but here they are large (most of
/// the 20 increments, every try), so a loss in at least one of three tries
/// is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_can_be_lost_without_serialize() {
    for kind in [Kind::File, Kind::Sqlite] {
        let Some(app) = spawn_app_with(kind, |s| s.session.serialize_requests = false).await else {
            return;
        };
        let mut counts = Vec::new();
        for _ in 0..3 {
            let n = twenty_parallel_visits(&app).await;
            assert!((1..=20).contains(&n), "{n} visits counted");
            counts.push(n);
        }
        println!(
            "{kind:?} without serialize_requests: 20 parallel visits counted as {counts:?} \
             (lost: {:?})",
            counts.iter().map(|n| 20 - n).collect::<Vec<_>>()
        );
        assert!(
            counts.iter().any(|&n| n < 20),
            "{kind:?}: no increment lost in 3 tries of 20 parallel visits: {counts:?}"
        );
        app.finish().await;
    }
}

pub async fn serialized_increments_are_exact(kind: Kind) {
    let Some(app) = spawn_app_with(kind, |s| s.session.serialize_requests = true).await else {
        return;
    };
    for _ in 0..2 {
        assert_eq!(
            twenty_parallel_visits(&app).await,
            20,
            "serialize_requests: every increment counted"
        );
    }
    // Parallel writes of different keys all survive too.
    let me = app.me();
    me.set("a", json!(0)).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let me = me.clone();
        tasks.push(tokio::spawn(async move {
            me.set(&format!("k{i}"), json!(i)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let data = me.session().await["data"].clone();
    assert_eq!(data.as_object().unwrap().len(), 21, "no write lost: {data}");
    app.finish().await;
}

pub async fn visitors_stay_parallel_when_serialized(kind: Kind) {
    let Some(app) = spawn_app_with_routes(
        kind,
        |s| s.session.serialize_requests = true,
        Some(slow_routes(Gates::default())),
    )
    .await
    else {
        return;
    };
    let visitors: Vec<Visitor> = (0..20).map(|_| app.visitor()).collect();
    for (i, v) in visitors.iter().enumerate() {
        v.set("a", json!(i)).await;
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for v in visitors.clone() {
        tasks.push(tokio::spawn(async move {
            assert_eq!(v.get("/test/slow-300").await.status(), StatusCode::OK);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    println!("{kind:?}: 20 visitors x 300 ms with serialize_requests took {took:?}");
    assert!(
        took < Duration::from_millis(3000),
        "20 different visitors were serialized: {took:?} (20 x 300 ms = 6 s)"
    );
    // One visitor's requests do wait for each other.
    let one = visitors[0].clone();
    let start = Instant::now();
    let (a, b) = tokio::join!(one.get("/test/slow-300"), one.get("/test/slow-300"));
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    assert!(
        start.elapsed() >= Duration::from_millis(590),
        "one visitor's requests ran one at a time: {:?}",
        start.elapsed()
    );
    for v in &visitors {
        assert_eq!(
            v.delete("/api/session").await.status(),
            StatusCode::NO_CONTENT
        );
    }
    app.finish().await;
}

pub async fn slow_touch_keeps_a_concurrent_write(kind: Kind) {
    let gates = Gates::default();
    let clock = ManualClock::new();
    let Some(app) = spawn_app_with_routes_and_clock(
        kind,
        |s| s.session.touch_interval = Duration::ZERO,
        slow_routes(gates.clone()),
        clock.clone(),
    )
    .await
    else {
        return;
    };
    let me = app.me();
    for round in 0..2 {
        me.set("a", json!(round)).await;
        // Let the stored expiry fall behind, so the slow read does touch.
        clock.advance(Duration::from_secs(2));
        let cookie = me.session_cookie(&COOKIE).unwrap();
        let slow = in_flight(&app, "/test/slow-read", &cookie, &gates.started).await;
        let key = format!("written{round}");
        me.set(&key, json!("meanwhile")).await;
        gates.release.notify_one();
        let resp = slow.await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        if kind != Kind::Memcached {
            assert_eq!(
                set_cookies_of(&resp),
                1,
                "the slow read touched the session"
            );
        }
        assert_eq!(
            me.value(&key).await,
            Some(json!("meanwhile")),
            "the touch erased the concurrent write"
        );
        assert_eq!(me.value("a").await, Some(json!(round)));
        let record = stored(&app, &me).await.expect("stored");
        assert_eq!(record.data[&key], json!("meanwhile"), "in the store too");
    }
    app.finish().await;
}

fn set_cookies_of(resp: &reqwest::Response) -> usize {
    crate::support::set_cookies(resp.headers(), &COOKIE).len()
}

/// A slow write of the same visitor racing a delete: the delete wins, the
/// record stays absent, the slow answer carries no session cookie.
async fn no_resurrection(kind: Kind, logout: bool) {
    let gates = Gates::default();
    let Some(app) = spawn_app_with_routes(kind, |_| {}, Some(slow_routes(gates.clone()))).await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let cookie = me.session_cookie(&COOKIE).unwrap();
    let token = me.csrf_token().await;
    let slow = in_flight(&app, "/test/slow-write", &cookie, &gates.started).await;
    if logout {
        let resp = me.post_form("/logout", &[("csrf_token", &token)]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    } else {
        assert_eq!(
            me.delete("/api/session").await.status(),
            StatusCode::NO_CONTENT
        );
    }
    assert!(app.store().load(&id_of(&cookie)).await.unwrap().is_none());
    gates.release.notify_one();
    let resp = slow.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the slow write answered");
    assert_eq!(
        set_cookie_value(&resp, &COOKIE),
        None,
        "the slow answer carries no session cookie"
    );
    assert!(
        app.store().load(&id_of(&cookie)).await.unwrap().is_none(),
        "the slow write brought the session back"
    );
    app.assert_stored(0).await;
    let replay =
        crate::reliability::common::session_with_cookie(&app, &format!("{COOKIE}={cookie}")).await;
    assert_eq!(replay.1["new"], json!(true));
    assert_eq!(
        me.session_cookie(&COOKIE),
        None,
        "the visitor holds no cookie"
    );
    app.finish().await;
}

pub async fn slow_write_after_delete_does_not_resurrect(kind: Kind) {
    no_resurrection(kind, false).await
}

pub async fn slow_write_after_logout_does_not_resurrect(kind: Kind) {
    no_resurrection(kind, true).await
}
