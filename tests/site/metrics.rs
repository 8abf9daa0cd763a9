//! `GET /metrics`: after a scripted session life, the exposition parses
//! as Prometheus text and every counter says exactly what happened. Each
//! app has its own registry, so these tests run in parallel with any other.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Kind, TestApp, Visitor, assert_see_other, csrf_from, spawn_app_with};

use crate::support::COOKIE;

/// A parsed exposition: `name{labels}` → value, labels as printed.
type Samples = BTreeMap<String, f64>;

/// Parses the text exposition strictly: `# HELP`, `# TYPE`, `# UNIT` and a
/// final `# EOF`; every sample belongs to a declared family; every value is
/// a number. Panics on anything else.
fn parse_exposition(text: &str) -> Samples {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Samples::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "the exposition ends with # EOF"
    );
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().expect("a name"));
            assert!(valid_name(name), "metric name {name:?}");
            match kind {
                "TYPE" => {
                    let t = parts.next().expect("a type");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "unknown",
                            "info"
                        ]
                        .contains(&t),
                        "type {t}"
                    );
                    families.insert(name.to_owned(), t.to_owned());
                }
                "HELP" | "UNIT" => {}
                other => panic!("unknown comment {other:?} in {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a number in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "sample name {name:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "labels of {line:?}"
                );
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(valid_name(k) && !v.contains('\n'), "label {pair:?}");
                }
            }
        }
        let family = ["_total", "_bucket", "_sum", "_count", "_created", ""]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| families.contains_key(*base))
            })
            .unwrap_or_else(|| panic!("sample {name} of an undeclared family"));
        let _ = family;
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        && !name.as_bytes()[0].is_ascii_digit()
}

async fn scrape(app: &TestApp) -> (String, Samples) {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    assert!(
        set_cookie_names(resp.headers()).is_empty(),
        "a scrape sets no cookie"
    );
    let text = resp.text().await.unwrap();
    let samples = parse_exposition(&text);
    (text, samples)
}

fn set_cookie_names(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_owned())
        .collect()
}

fn value(samples: &Samples, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

fn sessions(samples: &Samples, what: &str) -> f64 {
    value(samples, &format!("websessions_sessions_{what}_total"))
}

fn http(samples: &Samples, method: &str, route: &str, status: u16) -> f64 {
    value(
        samples,
        &format!(
            "websessions_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        ),
    )
}

fn store_ops(samples: &Samples, op: &str) -> f64 {
    value(
        samples,
        &format!(
            "websessions_store_operation_duration_seconds_count{{backend=\"memory\",operation=\"{op}\"}}"
        ),
    )
}

#[tokio::test]
async fn counters_match_a_scripted_session_life() {
    // Every read touches (touch_interval 0), so touches are countable.
    let Some(app) = spawn_app_with(Kind::Memory, |s| {
        s.session.touch_interval = Duration::ZERO;
        s.session.max_value_bytes = 100;
    })
    .await
    else {
        return;
    };
    let me = app.me();
    // 1. No cookie yet: nothing loaded, nothing stored.
    assert_eq!(me.session().await["new"], json!(true));
    // 2. First write: created.
    me.set("fruit", json!("pear")).await;
    let first_cookie = me.session_cookie(&COOKIE).unwrap();
    // 3. A read of a live session: loaded, touched.
    assert_eq!(me.value("fruit").await, Some(json!("pear")));
    // 4. A change: loaded, saved.
    me.set("fruit", json!("apple")).await;
    // 5. Too large: loaded, refused (413), and touched (not a 5xx).
    let resp = me
        .put_json("/api/session/big", &json!("x".repeat(200)))
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // 6. A new id: loaded, the old record deleted, the new one created.
    assert_eq!(me.post("/api/session/cycle").await.status(), StatusCode::OK);
    // 7. The old cookie replayed by another browser: no live session.
    let replay = app.visitor();
    replay.set_cookie(&COOKIE, &first_cookie);
    assert_eq!(replay.session().await["new"], json!(true));
    // 8. Delete: loaded, deleted.
    assert_eq!(
        me.delete("/api/session").await.status(),
        StatusCode::NO_CONTENT
    );
    // 9. A route that is not there, and a key that must not become a label.
    assert_eq!(
        me.get("/no/such/page").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        me.get("/api/session/very-private-key").await.status(),
        StatusCode::NOT_FOUND
    );
    // 10. Readiness: one ping.
    assert_eq!(me.get("/healthz").await.status(), StatusCode::OK);

    let (text, m) = scrape(&app).await;
    assert_eq!(sessions(&m, "created"), 2.0, "first write + cycle");
    assert_eq!(
        sessions(&m, "loaded"),
        5.0,
        "steps 3, 4, 5, 6 and 8 (step 9's session was deleted)"
    );
    // Step 4, and step 6: the cycle handler saves explicitly (creating the
    // new record), and the layer then saves the still-modified session once
    // more. The metric shows that extra write as it happens.
    assert_eq!(
        sessions(&m, "saved"),
        2.0,
        "step 4 + the layer's save after cycle"
    );
    assert_eq!(sessions(&m, "touched"), 2.0, "steps 3 and 5");
    assert_eq!(sessions(&m, "deleted"), 2.0, "cycle's old id + delete");
    assert_eq!(sessions(&m, "refused"), 1.0);
    assert_eq!(sessions(&m, "expired_on_load"), 1.0, "the replayed cookie");
    assert_eq!(sessions(&m, "revoked"), 0.0);

    assert_eq!(store_ops(&m, "create"), 2.0);
    assert_eq!(store_ops(&m, "load"), 6.0, "five live + the replay");
    assert_eq!(store_ops(&m, "save"), 2.0);
    assert_eq!(store_ops(&m, "touch"), 2.0);
    assert_eq!(store_ops(&m, "delete"), 2.0);
    assert_eq!(store_ops(&m, "ping"), 1.0);
    assert_eq!(
        value(
            &m,
            "websessions_store_errors_total{backend=\"memory\",operation=\"load\"}"
        ),
        0.0
    );
    // Buckets are cumulative: the +Inf bucket holds every observation.
    assert_eq!(
        value(
            &m,
            "websessions_store_operation_duration_seconds_bucket{le=\"+Inf\",backend=\"memory\",operation=\"load\"}"
        ),
        6.0
    );

    assert_eq!(http(&m, "GET", "/api/session", 200), 2.0);
    assert_eq!(http(&m, "PUT", "/api/session/{key}", 200), 2.0);
    assert_eq!(http(&m, "PUT", "/api/session/{key}", 413), 1.0);
    assert_eq!(http(&m, "GET", "/api/session/{key}", 200), 1.0);
    assert_eq!(http(&m, "GET", "/api/session/{key}", 404), 1.0);
    assert_eq!(http(&m, "POST", "/api/session/cycle", 200), 1.0);
    assert_eq!(http(&m, "DELETE", "/api/session", 204), 1.0);
    assert_eq!(http(&m, "GET", "unmatched", 404), 1.0);
    assert_eq!(http(&m, "GET", "/healthz", 200), 1.0);
    assert!(
        !text.contains("very-private-key") && !text.contains("/no/such/page"),
        "raw paths never become labels"
    );
    // The scrape itself is counted once it is answered.
    let (_, m) = scrape(&app).await;
    assert_eq!(http(&m, "GET", "/metrics", 200), 1.0);
    app.finish().await;
}

async fn login(v: &Visitor, name: &str) {
    let token = v.csrf_token().await;
    let resp = v
        .post_form("/login", &[("csrf_token", &token), ("name", name)])
        .await;
    assert_see_other(&resp, "/");
}

#[tokio::test]
async fn revocations_are_counted() {
    let Some(app) = spawn_app_with(Kind::Memory, |_| {}).await else {
        return;
    };
    let (laptop, phone, tablet) = (app.visitor(), app.visitor(), app.visitor());
    for v in [&laptop, &phone, &tablet] {
        login(v, "ada").await;
    }
    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    let resp = laptop
        .post_form(
            "/account/sessions/revoke-others",
            &[("csrf_token", &csrf_from(&page))],
        )
        .await;
    assert_see_other(&resp, "/account/sessions");
    let (_, m) = scrape(&app).await;
    assert_eq!(sessions(&m, "revoked"), 2.0, "the phone and the tablet");
    app.finish().await;
}

#[tokio::test]
async fn the_cookie_backend_counts_sessions_but_has_no_store() {
    let Some(app) = spawn_app_with(Kind::Cookie, |s| {
        s.session.touch_interval = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let me = app.me();
    me.set("a", json!(1)).await;
    me.set("a", json!(2)).await;
    assert_eq!(me.value("a").await, Some(json!(2)));
    let (text, m) = scrape(&app).await;
    assert_eq!(sessions(&m, "created"), 1.0);
    assert_eq!(sessions(&m, "saved"), 1.0);
    assert_eq!(sessions(&m, "loaded"), 2.0);
    assert_eq!(
        sessions(&m, "touched"),
        1.0,
        "the read re-issues the cookie"
    );
    assert!(!text.contains("websessions_store_"), "no store to time");
    app.finish().await;
}

#[tokio::test]
async fn metrics_off_means_no_route() {
    let Some(app) = spawn_app_with(Kind::Memory, |s| s.server.metrics = false).await else {
        return;
    };
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}
