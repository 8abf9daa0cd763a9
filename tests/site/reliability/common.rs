//! Helpers the scenarios share.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};

use crate::support::{TestApp, Visitor};

pub use crate::support::COOKIE;

/// A visitor with data of its own, to prove after every hostile request
/// that nobody else's request reached it.
pub struct Owner {
    pub visitor: Visitor,
    pub secret: String,
}

impl Owner {
    pub async fn new(app: &TestApp) -> Self {
        let visitor = app.visitor();
        let secret = format!("owner-secret-{}", uuid::Uuid::new_v4().simple());
        visitor.set("secret", json!(secret)).await;
        Owner { visitor, secret }
    }

    /// The owner still reads exactly its own data.
    pub async fn check(&self, after: &str) {
        let body = self.visitor.session().await;
        assert_eq!(
            body["data"],
            json!({"secret": self.secret}),
            "the owner's session changed after {after}"
        );
    }

    /// The response body must not carry the owner's data.
    pub fn assert_not_in(&self, body: &str, what: &str) {
        assert!(
            !body.contains(&self.secret),
            "{what} showed another visitor's data"
        );
    }
}

/// Never a 5xx; the status one of `allowed`.
pub fn assert_status(status: StatusCode, allowed: &[StatusCode], what: &str) {
    assert!(!status.is_server_error(), "{what}: {status}");
    assert!(
        allowed.contains(&status),
        "{what}: {status}, expected one of {allowed:?}"
    );
}

/// The value of cookie `name` in a response's `Set-Cookie` headers.
pub fn set_cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| h.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
}

/// A client without a cookie jar: the test sets the `Cookie` header itself.
pub fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// `GET /api/session` with exactly this cookie header.
pub async fn session_with_cookie(app: &TestApp, cookie: &str) -> (StatusCode, Value) {
    let resp = bare_client()
        .get(app.url("/api/session"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET /api/session");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The session id behind a server-side cookie value.
pub fn id_of(cookie: &str) -> tower_sessions::session::Id {
    cookie.parse().expect("a session id")
}

/// The stored record of a visitor, read from the store directly.
pub async fn stored(app: &TestApp, v: &Visitor) -> Option<tower_sessions::session::Record> {
    let cookie = v.session_cookie(&COOKIE)?;
    app.store().load(&id_of(&cookie)).await.expect("load")
}

/// A fresh base64 64-byte key (a key of another site).
pub fn other_key() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A free local port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
