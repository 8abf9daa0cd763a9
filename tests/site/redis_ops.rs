//! Redis Cluster and Redis over TLS, beyond the conformance suite: sessions
//! spread over every master and `sessions clear --yes` empties each one; a
//! server certificate that does not verify is refused (503 and a clear
//! start-up line), never answered in plaintext.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Builder, Config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use websessions::startup::Application;

use crate::support::{Kind, servers, spawn_app, test_settings};

/// How many record keys under `prefix` each master of the cluster holds.
async fn keys_per_master(cluster_url: &str, prefix: &str) -> Vec<(String, usize)> {
    let client = Builder::from_config(Config::from_url(cluster_url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let masters = client
        .cached_cluster_state()
        .expect("cluster state")
        .unique_primary_nodes();
    let mut out = Vec::new();
    for server in masters {
        let node = client.with_cluster_node(&server);
        let mut cursor = "0".to_owned();
        let mut n = 0;
        loop {
            let (next, keys): (String, Vec<String>) = node
                .scan_page(cursor, format!("{prefix}*"), Some(500), None)
                .await
                .unwrap();
            n += keys.len();
            if next == "0" {
                break;
            }
            cursor = next;
        }
        out.push((server.to_string(), n));
    }
    client.quit().await.unwrap();
    out.sort();
    out
}

/// Runs the binary (off the async runtime); returns success and stdout +
/// stderr.
async fn run(args: &[&str], env: &[(&'static str, String)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_websessions"));
    cmd.args(args)
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run websessions"))
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn sessions_spread_over_every_master_and_clear_empties_each() {
    let Some(app) = spawn_app(Kind::RedisCluster).await else {
        return;
    };
    let url = app.settings.session.redis.url.expose().to_owned();
    let prefix = app.settings.session.redis.prefix.clone();
    // 40 random ids leave a master empty with odds of about 1 in 4 million.
    for i in 0..40 {
        app.visitor().set("i", json!(i)).await;
    }
    let spread = keys_per_master(&url, &prefix).await;
    assert_eq!(spread.len(), 3, "three masters: {spread:?}");
    assert!(
        spread.iter().all(|(_, n)| *n > 0),
        "every master holds sessions: {spread:?}"
    );
    assert_eq!(spread.iter().map(|(_, n)| n).sum::<usize>(), 40);

    let env = vec![
        ("APP_SESSION__BACKEND", "redis".to_owned()),
        ("APP_SESSION__REDIS__URL", url.clone()),
        ("APP_SESSION__REDIS__PREFIX", prefix.clone()),
    ];
    let (code, out) = run(&["sessions", "stats"], &env).await;
    assert!(
        code && out.contains("sessions: 40"),
        "stats counts every master: {out}"
    );
    let (code, out) = run(&["sessions", "clear", "--yes"], &env).await;
    assert!(code && out.contains("deleted 40"), "{out}");
    let after = keys_per_master(&url, &prefix).await;
    assert!(
        after.iter().all(|(_, n)| *n == 0),
        "every master is empty: {after:?}"
    );
    app.finish().await;
}

/// The TLS server's URL and a CA that did not sign its certificate.
fn tls_env() -> Option<(String, String)> {
    let url = servers::env_url("rediss", "TEST_REDISS_URL")?;
    let wrong = servers::env_url("rediss", "TEST_REDISS_WRONG_CA_FILE")?;
    Some((url, wrong))
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_gives_503_never_plaintext() {
    let Some((url, wrong_ca)) = tls_env() else {
        return;
    };
    // A CA that signed something else, and the system's roots alone.
    for ca_file in [wrong_ca, String::new()] {
        let mut settings = test_settings();
        settings.session.backend = websessions::config::Backend::Redis;
        settings.session.redis.url = websessions::config::Secret::new(url.clone());
        settings.session.redis.ca_file = ca_file.clone();
        settings.session.redis.prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let app = Application::build(settings).await.expect("the app starts");
        let address = format!("http://127.0.0.1:{}", app.local_addr().port());
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until(stop.clone()));
        let client = reqwest::Client::new();
        let resp = client
            .put(format!("{address}/api/session/k"))
            .json(&json!("v"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{ca_file}");
        assert!(resp.headers().get("set-cookie").is_none());
        let body: Value = resp.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("certificate"),
            "the error says why (test profile shows causes): {error}"
        );
        let health = client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        stop.cancel();
        server.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_binary_says_at_start_up_that_the_certificate_does_not_verify() {
    let Some((url, wrong_ca)) = tls_env() else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_websessions"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("APP_SESSION__BACKEND", "redis")
        .env("APP_SESSION__REDIS__URL", &url)
        .env("APP_SESSION__REDIS__CA_FILE", &wrong_ca)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Logs and the banner share stdout; read up to the banner.
    let mut seen = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url_line = loop {
        let line = lines.next().expect("the banner").unwrap();
        if line.contains("serving http://") {
            break line;
        }
        seen.push(line);
    };
    assert!(
        seen.iter()
            .any(|l| l.contains("ERROR") && l.contains("TLS certificate does not verify")),
        "a clear start-up line: {seen:#?}"
    );
    let base = url_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let resp = reqwest::Client::new()
        .put(format!("{base}api/session/k"))
        .json(&json!("v"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    crate::support::stop_gracefully(child).await;
}
