//! Several app instances over one store: a session created on A is read,
//! changed and deleted on B. Memory cannot do this (each process has its
//! own map); the test says so by asserting it.

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{Kind, TestApp, Visitor, spawn_app, spawn_sibling};

use crate::support::COOKIE;

/// Starts a second instance with the same configuration; returns its
/// address and the token that stops it.
async fn second_instance(
    a: &TestApp,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let b = spawn_sibling(a, |_| {}).await;
    let address = format!("http://127.0.0.1:{}", b.local_addr().port());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(b.run_until(stop.clone()));
    (address, stop, handle)
}

/// The same visitor (same cookie jar) talking to instance B.
fn on(visitor: &Visitor, address: &str) -> Visitor {
    Visitor {
        address: address.to_owned(),
        client: visitor.client.clone(),
        jar: visitor.jar.clone(),
    }
}

async fn shared(kind: Kind) {
    let Some(a) = spawn_app(kind).await else {
        return;
    };
    let (b_address, stop, handle) = second_instance(&a).await;
    let me_a = a.me();
    me_a.set("made_on", json!("A")).await;
    // The cookie jar is per host:port; carry the cookie over to B's address.
    let cookie = me_a.session_cookie(&COOKIE).unwrap();
    let me_b = on(&me_a, &b_address);
    me_b.set_cookie(&COOKIE, &cookie);
    assert_eq!(
        me_b.value("made_on").await,
        Some(json!("A")),
        "B reads A's session"
    );
    me_b.set("changed_on", json!("B")).await;
    let cookie = me_b.session_cookie(&COOKIE).unwrap();
    me_a.set_cookie(&COOKIE, &cookie);
    assert_eq!(
        me_a.session().await["data"],
        json!({"made_on": "A", "changed_on": "B"}),
        "A sees B's change"
    );
    assert_eq!(
        me_b.delete("/api/session").await.status(),
        reqwest::StatusCode::NO_CONTENT
    );
    if kind.server_side() {
        assert_eq!(
            me_a.session().await["new"],
            json!(true),
            "deleted on B, gone on A"
        );
    }
    stop.cancel();
    handle.await.unwrap().unwrap();
    a.finish().await;
}

#[tokio::test]
async fn file_on_a_shared_directory() {
    shared(Kind::File).await
}

#[tokio::test]
async fn sqlite_on_a_shared_file() {
    shared(Kind::Sqlite).await
}

#[tokio::test]
async fn postgres() {
    shared(Kind::Postgres).await
}

#[tokio::test]
async fn mysql() {
    shared(Kind::Mysql).await
}

#[tokio::test]
async fn redis() {
    shared(Kind::Redis).await
}

#[tokio::test]
async fn redis_cluster() {
    shared(Kind::RedisCluster).await
}

#[tokio::test]
async fn rediss() {
    shared(Kind::Rediss).await
}

#[tokio::test]
async fn rediss_cluster() {
    shared(Kind::RedissCluster).await
}

#[tokio::test]
async fn redis_sentinel() {
    shared(Kind::RedisSentinel).await
}

#[tokio::test]
async fn memcached() {
    shared(Kind::Memcached).await
}

#[tokio::test]
async fn cookie_with_a_shared_key() {
    shared(Kind::Cookie).await
}

#[tokio::test]
async fn cookie_key_rotation_keeps_sessions() {
    let Some(a) = spawn_app(Kind::Cookie).await else {
        return;
    };
    let me = a.me();
    me.set("kept", json!(true)).await;
    let old_cookie = me.session_cookie(&COOKIE).unwrap();
    let old_key = a.settings.session.secret_key.clone();
    let new_key = websessions::config::Secret::new(fresh_key());
    // A restart with a new key, the old one kept for reading.
    let rotated = spawn_sibling(&a, |s| {
        s.session.secret_key = new_key.clone();
        s.session.previous_secret_keys = vec![old_key.clone()];
    })
    .await;
    let address = format!("http://127.0.0.1:{}", rotated.local_addr().port());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(rotated.run_until(stop.clone()));
    let me_b = on(&me, &address);
    me_b.set_cookie(&COOKIE, &old_cookie);
    assert_eq!(
        me_b.value("kept").await,
        Some(json!(true)),
        "the old key still reads"
    );
    me_b.set("after", json!(1)).await;
    let reissued = me_b.session_cookie(&COOKIE).unwrap();
    assert_ne!(
        reissued, old_cookie,
        "the next write re-issues the cookie under the new key"
    );
    // Without the old key, the old cookie is a fresh session; the new one works.
    let strict = spawn_sibling(&a, |s| {
        s.session.secret_key = new_key.clone();
        s.session.previous_secret_keys = vec![];
    })
    .await;
    let strict_address = format!("http://127.0.0.1:{}", strict.local_addr().port());
    let stop2 = CancellationToken::new();
    let handle2 = tokio::spawn(strict.run_until(stop2.clone()));
    let probe = on(&a.visitor(), &strict_address);
    probe.set_cookie(&COOKIE, &old_cookie);
    assert_eq!(
        probe.session().await["new"],
        json!(true),
        "an unknown key's cookie is a fresh session"
    );
    probe.set_cookie(&COOKIE, &reissued);
    assert_eq!(
        probe.session().await["data"],
        json!({"kept": true, "after": 1})
    );
    stop.cancel();
    stop2.cancel();
    handle.await.unwrap().unwrap();
    handle2.await.unwrap().unwrap();
    a.finish().await;
}

fn fresh_key() -> String {
    use base64::Engine as _;
    let key: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(7));
    base64::engine::general_purpose::STANDARD.encode(key)
}

#[tokio::test]
async fn memory_is_not_shared_between_instances() {
    let Some(a) = spawn_app(Kind::Memory).await else {
        return;
    };
    let (b_address, stop, handle) = second_instance(&a).await;
    let me = a.me();
    me.set("only_on", json!("A")).await;
    let me_b = on(&me, &b_address);
    me_b.set_cookie(&COOKIE, &me.session_cookie(&COOKIE).unwrap());
    assert_eq!(
        me_b.session().await["new"],
        json!(true),
        "each process has its own memory store"
    );
    stop.cancel();
    handle.await.unwrap().unwrap();
    a.finish().await;
}
