//! Tests that run the built binary: crash safety (SIGKILL under a write
//! storm, restart on the same store) and logs (no session id or cookie
//! value anywhere in a debug log of a whole session life).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};

use crate::reliability::common::{COOKIE, bare_client, free_port};
use crate::support::eventually;

/// Starts `websessions serve` on a fixed port with extra env vars.
fn serve(port: u16, env: &[(&str, String)], out: Stdio, err: Stdio) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_websessions"));
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the binary starts")
}

async fn wait_ready(base: &str, child: &mut Child) {
    let client = bare_client();
    eventually(Duration::from_secs(20), "server ready", async || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited: {status}");
        }
        let resp = client.get(format!("{base}/healthz")).send().await;
        resp.is_ok_and(|resp| resp.status() == StatusCode::OK)
    })
    .await;
}

fn cookie_from(resp: &reqwest::Response) -> Option<String> {
    crate::reliability::common::set_cookie_value(resp, &COOKIE).filter(|v| !v.is_empty())
}

/// Several visitors PUT continuously; the server is SIGKILLed mid-storm and
/// restarted on the same store; every session then reads back whole (one of
/// the values its visitor wrote) or is absent.
async fn crash_under_write_storm(env: Vec<(&'static str, String)>, store_dir: &Path) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = serve(port, &env, Stdio::null(), Stdio::null());
    wait_ready(&base, &mut child).await;

    const WRITERS: usize = 8;
    let client = bare_client();
    let mut cookies = Vec::new();
    for w in 0..WRITERS {
        let resp = client
            .put(format!("{base}/api/session/v"))
            .json(&json!({"writer": w, "n": 0, "pad": "p".repeat(4000)}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        cookies.push(cookie_from(&resp).expect("a session cookie"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (w, cookie) in cookies.iter().cloned().enumerate() {
        let (stop, written, base, client) =
            (stop.clone(), written.clone(), base.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            // Every value this writer sent (acknowledged or not).
            let mut sent = vec![0u64];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                sent.push(n);
                let pad = format!("{n}-").repeat(1000 + (n as usize % 7) * 300);
                let resp = client
                    .put(format!("{base}/api/session/v"))
                    .header("cookie", format!("{COOKIE}={cookie}"))
                    .json(&json!({"writer": w, "n": n, "pad": pad}))
                    .send()
                    .await;
                match resp {
                    Ok(resp) => {
                        assert!(
                            !resp.status().is_server_error(),
                            "a 5xx during the storm: {}",
                            resp.status()
                        );
                        if resp.status() == StatusCode::OK {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // The server was killed.
                    Err(_) => break,
                }
            }
            sent
        }));
    }
    // Mid-storm: once a good number of writes went through.
    eventually(Duration::from_secs(60), "the storm writes", async || {
        written.load(Ordering::Relaxed) >= 20 * WRITERS
    })
    .await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.unwrap());
    }
    let acknowledged = written.load(Ordering::Relaxed);
    assert!(acknowledged > WRITERS, "the storm wrote: {acknowledged}");

    let mut child = serve(port, &env, Stdio::null(), Stdio::null());
    wait_ready(&base, &mut child).await;
    let mut present = 0;
    for (w, cookie) in cookies.iter().enumerate() {
        let resp = client
            .get(format!("{base}/api/session"))
            .header("cookie", format!("{COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "writer {w} after the crash");
        let body: Value = resp.json().await.unwrap();
        if body["new"] == json!(true) {
            assert_eq!(body["data"], json!({}), "absent means empty");
            continue;
        }
        present += 1;
        let v = &body["data"]["v"];
        assert_eq!(v["writer"], json!(w), "writer {w} reads its own session");
        let n = v["n"].as_u64().expect("a whole value");
        assert!(sent[w].contains(&n), "writer {w}: value {n} was never sent");
        let pad = v["pad"].as_str().unwrap();
        if n > 0 {
            assert_eq!(
                pad,
                format!("{n}-").repeat(1000 + (n as usize % 7) * 300),
                "writer {w}: a torn value"
            );
        }
        // The page shows it too, no error page.
        let page = client
            .get(format!("{base}/"))
            .header("cookie", format!("{COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let resp = client
            .delete(format!("{base}/api/session"))
            .header("cookie", format!("{COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
    println!(
        "crash: {acknowledged} writes acknowledged before SIGKILL; {present}/{WRITERS} sessions read back whole"
    );
    // Clean up what is left (for example temp files of interrupted writes).
    let out = Command::new(env!("CARGO_BIN_EXE_websessions"))
        .args(["sessions", "clear", "--yes"])
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = store_dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_file() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    crash_under_write_storm(
        vec![
            ("APP_SESSION__BACKEND", "file".into()),
            ("APP_SESSION__FILE__DIR", sessions.display().to_string()),
        ],
        &sessions,
    )
    .await;
    // No torn or temporary file is left once the sessions are cleared.
    let left = crate::support::files_under(&sessions);
    assert!(left.is_empty(), "files left after clear: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    crash_under_write_storm(
        vec![
            ("APP_SESSION__BACKEND", "database".into()),
            (
                "APP_SESSION__DATABASE__URL",
                format!("sqlite://{}", db.display()),
            ),
        ],
        dir.path(),
    )
    .await;
}

/// A client that keeps cookies by hand, remembering every value it was sent.
struct Recorder {
    client: reqwest::Client,
    base: String,
    jar: HashMap<String, String>,
    secrets: Vec<String>,
}

impl Recorder {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let header: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = if header.is_empty() {
            req
        } else {
            req.header("cookie", header.join("; "))
        };
        let resp = req.send().await.unwrap();
        assert!(!resp.status().is_server_error(), "{}", resp.status());
        for h in resp.headers().get_all(SET_COOKIE) {
            let h = h.to_str().unwrap();
            let (name, rest) = h.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap().to_owned();
            if value.is_empty() {
                self.jar.remove(name);
            } else {
                self.secrets.push(value.clone());
                self.jar.insert(name.to_owned(), value);
            }
        }
        resp
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn token(&mut self) -> String {
        let req = self.client.get(self.url("/"));
        let html = self.send(req).await.text().await.unwrap();
        crate::support::csrf_from(&html)
    }

    async fn form(&mut self, path: &str, form: &[(&str, &str)]) -> StatusCode {
        let req = self.client.post(self.url(path)).form(form);
        self.send(req).await.status()
    }
}

async fn log_a_whole_session_life(env: Vec<(&'static str, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = env;
    env.push(("RUST_LOG", "debug".into()));
    env.push((
        "APP_SESSION__FILE__DIR",
        dir.path().join("sessions").display().to_string(),
    ));
    let mut child = serve(
        port,
        &env,
        Stdio::from(log.try_clone().unwrap()),
        Stdio::from(log),
    );
    wait_ready(&base, &mut child).await;
    let mut r = Recorder {
        client: bare_client(),
        base: base.clone(),
        jar: HashMap::new(),
        secrets: Vec::new(),
    };
    // Create, read, update, cycle, the form posts, login, logout.
    let req = r.client.put(r.url("/api/session/a")).json(&json!("one"));
    assert_eq!(r.send(req).await.status(), StatusCode::OK);
    let req = r.client.get(r.url("/api/session/a"));
    r.send(req).await;
    let req = r.client.get(r.url("/api/session"));
    r.send(req).await;
    let req = r.client.post(r.url("/api/session/cycle"));
    r.send(req).await;
    let token = r.token().await;
    r.secrets.push(token.clone());
    assert_eq!(
        r.form(
            "/session/set",
            &[("csrf_token", &token), ("key", "b"), ("value", "two")]
        )
        .await,
        StatusCode::SEE_OTHER
    );
    let token = r.token().await;
    assert_eq!(
        r.form("/session/cycle", &[("csrf_token", &token)]).await,
        StatusCode::SEE_OTHER
    );
    let token = r.token().await;
    assert_eq!(
        r.form("/login", &[("csrf_token", &token), ("name", "ada")])
            .await,
        StatusCode::SEE_OTHER
    );
    let req = r.client.get(r.url("/account/sessions"));
    r.send(req).await;
    // A refused write, and a bad CSRF token.
    let req = r.client.put(r.url("/api/session/_user")).json(&json!(1));
    r.send(req).await;
    assert_eq!(
        r.form(
            "/session/set",
            &[("csrf_token", "bad"), ("key", "b"), ("value", "x")]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    let old = r.jar.get(&*COOKIE).cloned().unwrap();
    let token = r.token().await;
    assert_eq!(
        r.form("/logout", &[("csrf_token", &token)]).await,
        StatusCode::SEE_OTHER
    );
    // Bad cookies: the logged-out one, a forged one, garbage.
    for bad in [
        old.clone(),
        tower_sessions::session::Id::default().to_string(),
        "garbage-cookie-value-0123456789".to_owned(),
    ] {
        r.secrets.push(bad.clone());
        r.jar.insert(COOKIE.to_string(), bad);
        let req = r.client.get(r.url("/api/session"));
        r.send(req).await;
    }
    // A new session, then delete it (the form, then the API).
    r.jar.remove(&*COOKIE);
    let req = r.client.put(r.url("/api/session/c")).json(&json!(3));
    r.send(req).await;
    let token = r.token().await;
    assert_eq!(
        r.form("/session/delete", &[("csrf_token", &token)]).await,
        StatusCode::SEE_OTHER
    );
    let req = r.client.put(r.url("/api/session/d")).json(&json!(4));
    r.send(req).await;
    let req = r.client.delete(r.url("/api/session"));
    assert_eq!(r.send(req).await.status(), StatusCode::NO_CONTENT);

    // Stop gracefully, then read everything it wrote.
    crate::support::stop_gracefully(child).await;
    let output = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        output.lines().count() > 20,
        "debug logging was on: {} lines",
        output.lines().count()
    );
    assert!(output.contains("DEBUG"), "debug lines in the log");
    let mut secrets = r.secrets.clone();
    secrets.sort();
    secrets.dedup();
    let session_ids = secrets.iter().filter(|s| s.len() == 22).count();
    assert!(
        secrets.len() >= 8,
        "the life saw many cookie values: {}",
        secrets.len()
    );
    for secret in &secrets {
        assert!(
            !output.contains(secret.as_str()),
            "a cookie value or session id is in the log: {secret:.12}…\n{}",
            output
                .lines()
                .filter(|l| l.contains(secret.as_str()))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    println!(
        "log of {} lines holds none of {} cookie values ({session_ids} of them session ids)",
        output.lines().count(),
        secrets.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_session_id_or_cookie_value_file() {
    log_a_whole_session_life(vec![("APP_SESSION__BACKEND", "file".into())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_session_id_or_cookie_value_cookie() {
    log_a_whole_session_life(vec![("APP_SESSION__BACKEND", "cookie".into())]).await;
}
