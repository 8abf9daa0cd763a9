//! Slow clients against the real port, over raw TCP: a client that never
//! finishes its request headers is disconnected after the header-read
//! timeout; connections beyond the cap wait until one closes; a request that
//! outlives the request timeout gets a 408 with the security headers.

use std::time::Duration;

use axum::routing::get;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Kind, TestApp, spawn_app_with, spawn_app_with_routes};

/// Far longer than any timeout a test sets: only a server that never acts
/// runs into it.
const PATIENCE: Duration = Duration::from_secs(15);

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; `None` if it does not
/// within `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

pub async fn half_a_header_is_disconnected() {
    let Some(app) = spawn_app_with(Kind::Memory, |s| {
        s.server.header_read_timeout = Duration::from_millis(300)
    })
    .await
    else {
        return;
    };
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut slow, PATIENCE).await.is_some(),
        "a client that never finishes its headers was not disconnected"
    );
    // A client that sends nothing at all is disconnected too.
    let mut silent = connect(&app).await;
    assert!(read_until_closed(&mut silent, PATIENCE).await.is_some());
    // The server is still serving everyone else.
    let resp = app.me().get("/healthz/live").await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.finish().await;
}

pub async fn connections_beyond_the_cap_wait() {
    let Some(app) = spawn_app_with(Kind::Memory, |s| s.server.max_connections = 2).await else {
        return;
    };
    // Two idle connections take the two places.
    let mut held = vec![connect(&app).await, connect(&app).await];
    for stream in &mut held {
        stream
            .write_all(b"GET /healthz/live HTTP/1.1\r\n")
            .await
            .unwrap();
    }
    // Real time: nothing shows from outside when the server has taken the
    // two connections from the backlog; they must hold both places before
    // the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third one can connect (the listen backlog) but is not served...
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a connection beyond the cap was served"
    );
    // ...until one of the others closes.
    drop(held.pop());
    let answer = read_until_closed(&mut third, PATIENCE)
        .await
        .expect("served once a place is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    app.finish().await;
}

pub async fn request_timeout_408_carries_the_security_headers() {
    let slow = axum::Router::new().route(
        "/test/slow",
        // Never answers: only the request timeout ends it.
        get(std::future::pending::<&'static str>),
    );
    let Some(app) = spawn_app_with_routes(
        Kind::Memory,
        |s| s.server.request_timeout = Duration::from_millis(200),
        Some(slow),
    )
    .await
    else {
        return;
    };
    let resp = app.me().get("/test/slow").await;
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    let h = resp.headers();
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(h.contains_key(name), "the 408 lacks {name}: {h:?}");
    }
    app.finish().await;
}
