//! The cookie backend logs a warning for a cookie it cannot use (malformed,
//! forged with another key, tampered), as the server-side backends do, and
//! never the cookie's value.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_sessions::session::{Id, Record};
use websessions::sessions::CookieMode;
use websessions::sessions::cookie::CookieCodec;

use crate::reliability::common::COOKIE;
use crate::support::{Kind, spawn_app};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs on the current-thread runtime of `#[tokio::test]`, so the server's
/// tasks log to this thread's subscriber.
pub async fn a_malformed_or_forged_cookie_is_logged_as_a_warning(kind: Kind) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let Some(app) = spawn_app(kind).await else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    let real = me.session_cookie(&COOKIE).expect("a cookie");
    assert!(
        !captured.text().contains("WARN"),
        "a good cookie logs nothing"
    );
    let mode = match kind {
        Kind::CookieSigned => CookieMode::Signed,
        _ => CookieMode::Private,
    };
    let forged = CookieCodec::new(&COOKIE, mode, &[0x42; 64], &[])
        .encode(&Record {
            id: Id::default(),
            data: [("a".to_owned(), json!("forged"))].into(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
        .unwrap();
    let mut tampered = real.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let bad = [
        ("malformed", "not-a-cookie".to_owned()),
        ("forged", forged),
        ("tampered", tampered),
    ];
    for (what, value) in &bad {
        let warnings = captured.text().matches("WARN").count();
        let resp = app
            .visitor()
            .client
            .get(app.url("/api/session"))
            .header("cookie", format!("{COOKIE}={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["new"], json!(true), "{what}: a fresh session");
        assert_eq!(
            captured.text().matches("WARN").count(),
            warnings + 1,
            "{what}: one warning\n{}",
            captured.text()
        );
    }
    let log = captured.text();
    for (_, value) in &bad {
        assert!(!log.contains(value.as_str()), "a cookie value in the log");
    }
    assert!(!log.contains(real.as_str()));
    app.finish().await;
}
