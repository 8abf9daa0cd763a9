//! The rules that need no socket, checked by calling the whole router (every
//! layer the binary has) with `tower::ServiceExt::oneshot`: routing, the
//! security headers, key validation, the API's origin check. Each runs once,
//! on the memory backend, because none of them depends on where sessions
//! are kept; the real-port tests prove the wiring on every backend.

use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use websessions::config::Backend;
use websessions::startup::{Application, Overrides};

use crate::support::{COOKIE, test_settings};

/// The site's router and one visitor's cookie, kept by hand.
struct Site {
    router: Router,
    cookie: Mutex<Option<String>>,
    // Keeps the listener (and so the port) for as long as the test runs.
    _app: Application,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Site {
    async fn new() -> Self {
        let mut settings = test_settings();
        settings.session.backend = Backend::Memory;
        let app = Application::build_with(settings, Overrides::default())
            .await
            .expect("the site builds");
        Self {
            router: app.router(),
            cookie: Mutex::new(None),
            _app: app,
        }
    }

    async fn send(&self, mut req: Request<Body>) -> Answer {
        if let Some(cookie) = self.cookie.lock().unwrap().clone() {
            req.headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        req.headers_mut()
            .insert(header::HOST, "site.test".parse().unwrap());
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let prefix = format!("{COOKIE}=");
        for set in resp.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            if let Some(rest) = set.strip_prefix(&prefix) {
                let value = rest.split(';').next().unwrap();
                *self.cookie.lock().unwrap() =
                    (!value.is_empty()).then(|| format!("{prefix}{value}"));
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("the body");
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn call(&self, method: Method, path: &str) -> Answer {
        self.send(request(method, path).body(Body::empty()).unwrap())
            .await
    }

    async fn put(&self, path: &str, value: &Value) -> Answer {
        self.send(
            request(Method::PUT, path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(value.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn data(&self) -> Value {
        let answer = self.call(Method::GET, "/api/session").await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json()["data"].clone()
    }
}

fn request(method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(path)
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_and_nothing_changes() {
    let site = Site::new().await;
    assert_eq!(site.put("/api/session/ok", &json!(1)).await.status, 200);
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    const NOT_ALLOWED: StatusCode = StatusCode::METHOD_NOT_ALLOWED;
    let cases: Vec<(Method, &str, &[StatusCode])> = vec![
        (Method::GET, "/api/session/a/b", &[NOT_FOUND]),
        (Method::GET, "/api", &[NOT_FOUND]),
        (Method::GET, "/session", &[NOT_FOUND]),
        (Method::GET, "/%2e%2e/%2e%2e/etc/passwd", &[NOT_FOUND]),
        (Method::GET, "/static/../Cargo.toml", &[NOT_FOUND]),
        (Method::GET, "/static/%2e%2e/Cargo.toml", &[NOT_FOUND]),
        (Method::DELETE, "/", &[NOT_ALLOWED]),
        (Method::PUT, "/session/set", &[NOT_ALLOWED]),
        (Method::GET, "/session/set", &[NOT_ALLOWED]),
        (Method::GET, "/login", &[NOT_ALLOWED]),
        (Method::GET, "/logout", &[NOT_ALLOWED]),
        (Method::POST, "/api/session", &[NOT_ALLOWED]),
        (Method::PATCH, "/api/session/ok", &[NOT_ALLOWED]),
        (Method::POST, "/healthz", &[NOT_ALLOWED]),
        (Method::TRACE, "/", &[NOT_ALLOWED]),
        (
            Method::from_bytes(b"BREW").unwrap(),
            "/api/session",
            &[NOT_ALLOWED, StatusCode::BAD_REQUEST],
        ),
        (Method::GET, "/account/sessions/revoke", &[NOT_ALLOWED]),
        (
            Method::POST,
            "/account/sessions/revoke",
            &[
                StatusCode::FORBIDDEN,
                StatusCode::BAD_REQUEST,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ],
        ),
    ];
    for (method, path, allowed) in cases {
        let what = format!("{method} {path}");
        let answer = site.call(method, path).await;
        assert!(
            allowed.contains(&answer.status),
            "{what}: {} (expected one of {allowed:?})",
            answer.status
        );
        if path.starts_with("/api/") {
            assert!(
                answer.json()["error"].is_string(),
                "{what}: API errors are JSON: {:.100}",
                answer.body
            );
        } else {
            assert!(
                answer.body.contains("id=\"error-status\""),
                "{what}: page errors are a page: {:.100}",
                answer.body
            );
        }
    }
    assert_eq!(site.data().await, json!({"ok": 1}), "nothing changed");
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_security_headers() {
    let site = Site::new().await;
    let cases = [
        (Method::GET, "/"),
        (Method::GET, "/healthz"),
        (Method::GET, "/healthz/live"),
        (Method::GET, "/static/style.css"),
        (Method::GET, "/api/session"),
        (Method::GET, "/nowhere"),
        (Method::GET, "/api/nowhere"),
        (Method::DELETE, "/"),
        (Method::POST, "/session/set"),
        (Method::GET, "/api/session/%01"),
    ];
    for (method, path) in cases {
        let what = format!("{method} {path}");
        let answer = site.call(method, path).await;
        let h = &answer.headers;
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap_or_else(|| panic!("{what} ({}): no CSP", answer.status));
        assert!(
            csp.to_str().unwrap().contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{what}");
    }
}

#[tokio::test]
async fn bad_keys_are_400_with_a_json_error_and_write_nothing() {
    let site = Site::new().await;
    assert_eq!(site.put("/api/session/ok", &json!(1)).await.status, 200);
    let long = "k".repeat(129);
    let bad = [
        long.as_str(),
        "a%01b",
        "a%7Fb",
        "a%09b",
        "%0D%0A",
        "a%C2%85b",
        "_visits",
        "_user",
        "_flash",
        "_created_at",
        "_",
        "%5Fvisits",
        "%ff",
    ];
    for key in bad {
        let path = format!("/api/session/{key}");
        let mut answers = vec![
            site.put(&path, &json!("x")).await,
            site.call(Method::DELETE, &path).await,
        ];
        // Reading a reserved key is simply absent; a malformed one is refused.
        if !key.starts_with('_') && !key.starts_with("%5F") {
            answers.push(site.call(Method::GET, &path).await);
        }
        for answer in answers {
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
            assert!(
                answer.json()["error"].is_string(),
                "{path}: {}",
                answer.body
            );
        }
    }
    // 128 characters is the limit, not over it.
    let max = format!("/api/session/{}", "m".repeat(128));
    assert_eq!(site.put(&max, &json!("max")).await.status, StatusCode::OK);
    assert_eq!(
        site.call(Method::DELETE, &max).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(site.data().await, json!({"ok": 1}), "nothing changed");
}

#[tokio::test]
async fn the_api_refuses_bodies_that_are_not_json_or_too_large() {
    let site = Site::new().await;
    assert_eq!(site.put("/api/session/ok", &json!(1)).await.status, 200);
    let not_json = site
        .send(
            request(Method::PUT, "/api/session/a")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("1"))
                .unwrap(),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = site
        .send(
            request(Method::PUT, "/api/session/a")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"unclosed\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    let deep = site
        .send(
            request(Method::PUT, "/api/session/a")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    "{}{}",
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(deep.status, StatusCode::BAD_REQUEST, "deep nesting");
    let limit = test_settings().session.max_session_bytes;
    let huge = site
        .put("/api/session/a", &json!("x".repeat(limit + 1)))
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "over the limit");
    let over_body = site
        .put("/api/session/a", &json!("h".repeat(2 * 1024 * 1024)))
        .await;
    assert_eq!(
        over_body.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over the body limit"
    );
    for answer in [not_json, broken, deep, huge, over_body] {
        assert!(answer.json()["error"].is_string(), "{}", answer.body);
    }
    assert_eq!(site.data().await, json!({"ok": 1}), "nothing changed");
}

/// A state-changing API request is refused with 403 when `Sec-Fetch-Site`
/// is present and not `same-origin`/`none`, or `Origin` is present and not
/// the site's own; a script that sends neither is served; reads never are
/// refused.
#[tokio::test]
async fn api_writes_from_another_origin_are_refused() {
    let site = Site::new().await;
    assert_eq!(
        site.put("/api/session/kept", &json!("yes")).await.status,
        200
    );
    let before = site.call(Method::GET, "/api/session").await.json();
    let refused = [
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "CROSS-SITE"),
        ("sec-fetch-site", "garbage"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://site.test:8081"),
        ("origin", "http://site.test.evil.example"),
        ("origin", "https://site.test"),
        ("origin", "not a url"),
    ];
    let writes = [
        (Method::PUT, "/api/session/kept"),
        (Method::PUT, "/api/session/planted"),
        (Method::DELETE, "/api/session/kept"),
        (Method::POST, "/api/session/save"),
        (Method::POST, "/api/session/cycle"),
        (Method::DELETE, "/api/session"),
    ];
    for (name, value) in refused {
        for (method, path) in &writes {
            let what = format!("{method} {path} with {name}: {value}");
            let answer = site
                .send(
                    request(method.clone(), path)
                        .header(name, value)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from("\"changed\""))
                        .unwrap(),
                )
                .await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
            assert!(answer.json()["error"].is_string(), "{what}: a JSON error");
        }
    }
    let after = site.call(Method::GET, "/api/session").await.json();
    assert_eq!(after["fingerprint"], before["fingerprint"], "not cycled");
    assert_eq!(after["data"], before["data"], "nothing changed");

    let served: [&[(&str, &str)]; 5] = [
        &[],
        &[("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "none")],
        &[("origin", "http://site.test")],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://site.test"),
        ],
    ];
    for headers in served {
        for (method, path) in [
            (Method::PUT, "/api/session/kept"),
            (Method::POST, "/api/session/cycle"),
        ] {
            let mut req =
                request(method.clone(), path).header(header::CONTENT_TYPE, "application/json");
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let answer = site.send(req.body(Body::from("1")).unwrap()).await;
            assert_eq!(answer.status, StatusCode::OK, "{method} {path} {headers:?}");
        }
    }
    let read = site
        .send(
            request(Method::GET, "/api/session")
                .header("sec-fetch-site", "cross-site")
                .header("origin", "https://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "reads are never refused");
}
