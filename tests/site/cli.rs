//! The built binary: keygen, config (masked, with sources), config errors,
//! the production key check, sessions admin, migrate, serve + SIGTERM.

use crate::support::COOKIE;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::{Kind, LaggingClock, spawn_app_with_clock};

fn websessions(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_websessions"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("APP_SESSION__FILE__DIR", dir.join("sessions"))
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run websessions")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn keygen_prints_a_fresh_64_byte_key() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let a = websessions(dir.path(), &["keygen"], &[]);
    let b = websessions(dir.path(), &["keygen"], &[]);
    assert!(a.status.success());
    let key = stdout(&a).trim().to_owned();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap()
            .len(),
        64
    );
    assert_ne!(key, stdout(&b).trim(), "fresh every time");
}

#[test]
fn config_shows_values_sources_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = websessions(
        dir.path(),
        &["config"],
        &[
            ("APP_SESSION__BACKEND", "memory"),
            (
                "APP_SESSION__REDIS__URL",
                "redis://user:hunter2@127.0.0.1:6379",
            ),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("profile: test"));
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_owned()
    };
    assert!(
        line("session.backend").contains("\"memory\"")
            && line("session.backend").contains("environment variable APP_SESSION__BACKEND")
    );
    assert!(line("server.bind").contains("config/test.toml"));
    assert!(line("session.cookie_name").contains("config/default.toml"));
    assert!(line("session.secret_key").contains("masked"));
    assert!(
        !text.contains("d2Vic2Vzc2lvbnMt"),
        "the key itself is never printed"
    );
    assert!(line("session.redis.url").contains("***") && !text.contains("hunter2"));
}

#[test]
fn bad_config_stops_with_the_key_and_its_layer() {
    let dir = tempfile::tempdir().unwrap();
    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__IDLE_TIMEOUT", "soon")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("session.idle_timeout") && err.contains("APP_SESSION__IDLE_TIMEOUT"),
        "{err}"
    );

    let out = websessions(dir.path(), &["config"], &[("APP_SESSION__COLOUR", "red")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown key `session.colour`"),
        "{}",
        stderr(&out)
    );

    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__BACKEND", "floppy")],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("session.backend"), "{}", stderr(&out));

    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__COOKIE_NAME", "__Host-session_id")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("__Host-") && stderr(&out).contains("secure"),
        "{}",
        stderr(&out)
    );

    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__SECRET_KEY", "c2hvcnQ=")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("session.secret_key") && err.contains("64 bytes") && !err.contains("c2hvcnQ="),
        "{err}"
    );
}

#[test]
fn production_refuses_the_development_key_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let dev_key =
        "d2Vic2Vzc2lvbnMtREVWRUxPUE1FTlQtT05MWS1rZXk6bm90LXNlY3JldDtydW4gd2Vic2Vzc2lvbnMga2V5Zw==";
    for env in [
        vec![("APP_ENV", "production")],
        vec![
            ("APP_ENV", "production"),
            ("APP_SESSION__SECRET_KEY", dev_key),
        ],
    ] {
        let out = websessions(dir.path(), &["serve"], &env);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("session.secret_key") && err.contains("keygen"),
            "{err}"
        );
    }
    let key = stdout(&websessions(dir.path(), &["keygen"], &[]))
        .trim()
        .to_owned();
    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_ENV", "production"), ("APP_SESSION__SECRET_KEY", &key)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("session.secure = true"))
    );
}

const DEV_KEY: &str =
    "d2Vic2Vzc2lvbnMtREVWRUxPUE1FTlQtT05MWS1rZXk6bm90LXNlY3JldDtydW4gd2Vic2Vzc2lvbnMga2V5Zw==";

/// Production refuses the development key wherever it appears: moved into
/// `previous_secret_keys` (as a rotation would), it could still forge
/// cookie-backend sessions and CSRF tokens.
#[test]
fn production_refuses_the_development_key_among_previous_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = stdout(&websessions(dir.path(), &["keygen"], &[]))
        .trim()
        .to_owned();
    let previous = format!("[\"{DEV_KEY}\"]");
    for args in [&["config"][..], &["serve"]] {
        let out = websessions(
            dir.path(),
            args,
            &[
                ("APP_ENV", "production"),
                ("APP_SESSION__SECRET_KEY", &key),
                ("APP_SESSION__PREVIOUS_SECRET_KEYS", &previous),
            ],
        );
        assert!(
            !out.status.success(),
            "{args:?} accepted the development key"
        );
        let err = stderr(&out);
        assert!(
            err.contains("session.previous_secret_keys")
                && err.contains("APP_SESSION__PREVIOUS_SECRET_KEYS")
                && err.contains("development key")
                && !err.contains(DEV_KEY),
            "{err}"
        );
    }
    // Outside production the development key may rotate out as usual.
    let out = websessions(
        dir.path(),
        &["config"],
        &[
            ("APP_SESSION__SECRET_KEY", &key),
            ("APP_SESSION__PREVIOUS_SECRET_KEYS", &previous),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The development key serving on an address other machines can reach
/// gets a warning; on loopback, or with a real key, none.
#[tokio::test]
async fn the_development_key_on_a_public_address_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _url, lines) = serve_on(
        dir.path(),
        "0.0.0.0:0",
        &[("APP_SESSION__BACKEND", "memory")],
    );
    let text = lines.concat();
    crate::support::stop_gracefully(child).await;
    assert!(
        text.contains("WARN") && text.contains("development key") && text.contains("0.0.0.0"),
        "{text}"
    );
    let key = stdout(&websessions(dir.path(), &["keygen"], &[]))
        .trim()
        .to_owned();
    for (bind, key) in [("127.0.0.1:0", DEV_KEY), ("0.0.0.0:0", key.as_str())] {
        let (child, _url, lines) = serve_on(
            dir.path(),
            bind,
            &[
                ("APP_SESSION__BACKEND", "memory"),
                ("APP_SESSION__SECRET_KEY", key),
            ],
        );
        crate::support::stop_gracefully(child).await;
        assert!(
            !lines.concat().contains("development key"),
            "{bind}: {lines:?}"
        );
    }
}

/// Every key can be set alone: a cross-key rule never refuses a single
/// documented setting because of another key's default, and an error names
/// the key the person set.
#[test]
fn each_config_key_can_be_set_alone() {
    let dir = tempfile::tempdir().unwrap();
    let line = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_owned()
    };
    // An absolute cap shorter than the idle timeout: valid, the cap decides.
    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__ABSOLUTE_TIMEOUT", "30m")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(line(&stdout(&out), "session.absolute_timeout").contains("30m"));
    // A session limit below the default value limit: valid, and the value
    // limit is clamped to it.
    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__MAX_SESSION_BYTES", "3000")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(line(&text, "session.max_session_bytes").contains("3000"));
    assert!(
        line(&text, "session.max_value_bytes").contains("clamped to 3000"),
        "{text}"
    );
    // A bad value is blamed on the key that was set, not on its neighbour.
    let out = websessions(
        dir.path(),
        &["config"],
        &[("APP_SESSION__MAX_SESSION_BYTES", "0")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("session.max_session_bytes")
            && err.contains("APP_SESSION__MAX_SESSION_BYTES")
            && !err.contains("session.max_value_bytes"),
        "{err}"
    );
    // A cross-key conflict names the key the person set, with its layer,
    // whichever of the two it was.
    let key = stdout(&websessions(dir.path(), &["keygen"], &[]))
        .trim()
        .to_owned();
    for (set, env) in [
        (
            "APP_SESSION__SECURE",
            vec![
                ("APP_SESSION__COOKIE_NAME", "__Host-id"),
                ("APP_SESSION__SECURE", "false"),
            ],
        ),
        (
            "APP_SESSION__SECURE",
            vec![
                ("APP_SESSION__SAME_SITE", "none"),
                ("APP_SESSION__SECURE", "false"),
            ],
        ),
    ] {
        let mut env = env;
        env.push(("APP_ENV", "production"));
        env.push(("APP_SESSION__SECRET_KEY", &key));
        let out = websessions(dir.path(), &["config"], &env);
        assert!(!out.status.success(), "{env:?}");
        let err = stderr(&out);
        assert!(
            err.contains("session.secure") && err.contains(set),
            "{env:?}: {err}"
        );
    }
}

/// `websessions config` masks a password wherever it sits in a URL: the
/// user info, the query string, or a URL that does not even parse.
#[test]
fn config_masks_passwords_anywhere_in_a_url() {
    let dir = tempfile::tempdir().unwrap();
    for (var, url, secret) in [
        (
            "APP_SESSION__DATABASE__URL",
            "postgres://app@db.example/sessions?sslmode=require&password=hunter2",
            "hunter2",
        ),
        (
            "APP_SESSION__DATABASE__URL",
            "mysql://db.example/sessions?PASSWORD=swordfish&user=app",
            "swordfish",
        ),
        (
            "APP_SESSION__REDIS__URL",
            "redis://:correcthorse@cache.example:6379/0",
            "correcthorse",
        ),
        (
            "APP_SESSION__REDIS__URL",
            "redis://user:pa ss%zz@[::1:6379",
            "pa ss",
        ),
        (
            "APP_SESSION__MEMCACHED__URL",
            "memcache://cache.example:11211?password=batterystaple",
            "batterystaple",
        ),
    ] {
        let out = websessions(dir.path(), &["config"], &[(var, url)]);
        assert!(out.status.success(), "{url}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains(secret), "{url} printed as: {text}");
        assert!(text.contains("***"), "{text}");
    }
    // Nothing else of a URL is hidden.
    let out = websessions(
        dir.path(),
        &["config"],
        &[(
            "APP_SESSION__DATABASE__URL",
            "postgres://app:hunter2@db.example:5433/sessions?sslmode=require",
        )],
    );
    let text = stdout(&out);
    assert!(
        text.contains("postgres://app:***@db.example:5433/sessions?sslmode=require"),
        "{text}"
    );
}

#[tokio::test]
async fn sessions_stats_purge_and_clear_on_the_file_store() {
    // Sessions made through the real app, then inspected by the binary:
    // three written an hour ago, one now.
    let clock = LaggingClock::new();
    let Some(app) = spawn_app_with_clock(
        Kind::File,
        |s| s.session.idle_timeout = Duration::from_secs(2),
        clock.clone(),
    )
    .await
    else {
        return;
    };
    clock.set_behind(Duration::from_secs(3600));
    for i in 0..3 {
        app.visitor().set("i", json!(i)).await;
    }
    clock.set_behind(Duration::ZERO);
    app.visitor().set("live", json!(true)).await;
    let root = app.temp_dir().to_path_buf();
    let run = |args: &'static [&'static str]| {
        let root = root.clone();
        tokio::task::spawn_blocking(move || websessions(&root, args, &[]))
    };
    let stats = run(&["sessions", "stats"]).await.unwrap();
    assert!(stats.status.success(), "{}", stderr(&stats));
    assert!(
        stdout(&stats).contains("sessions: 4") && stdout(&stats).contains("expired: 3"),
        "{}",
        stdout(&stats)
    );
    let purge = run(&["sessions", "purge-expired"]).await.unwrap();
    assert!(stdout(&purge).contains("purged 3"), "{}", stdout(&purge));
    let refused = run(&["sessions", "clear"]).await.unwrap();
    assert!(!refused.status.success() && stderr(&refused).contains("--yes"));
    assert_eq!(app.count().await, 1, "clear without --yes deleted nothing");
    let clear = run(&["sessions", "clear", "--yes"]).await.unwrap();
    assert!(stdout(&clear).contains("deleted 1"), "{}", stdout(&clear));
    let migrate = run(&["migrate"]).await.unwrap();
    assert!(migrate.status.success() && stdout(&migrate).contains("nothing to migrate"));
    app.finish().await;
}

#[tokio::test]
async fn serve_prints_the_url_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url, line) = serve_line(dir.path(), &[("APP_SESSION__BACKEND", "memory")]);
    assert!(line.contains("backend: memory"), "{line}");
    let body = reqwest::get(format!("{url}healthz/live"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    crate::support::stop_gracefully(child).await;
}

/// The signal handlers are in place before the serving line is printed: a
/// SIGTERM sent the moment it appears shuts the site down gracefully, never
/// kills it. (Before, they were installed by a task spawned after the line,
/// so a signal in between killed the process.)
#[tokio::test]
async fn sigterm_the_moment_serving_is_printed_is_still_graceful() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let (child, _url, _line) = serve_line(dir.path(), &[("APP_SESSION__BACKEND", "memory")]);
        crate::support::stop_gracefully(child).await;
    }
}

#[test]
fn cookie_backend_admin_commands_say_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["sessions", "stats"][..],
        &["sessions", "purge-expired"],
        &["sessions", "clear", "--yes"],
    ] {
        let out = websessions(dir.path(), args, &[("APP_SESSION__BACKEND", "cookie")]);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("browsers") && text.contains("cannot"),
            "{args:?}: {text}"
        );
    }
    let out = websessions(
        dir.path(),
        &["migrate"],
        &[("APP_SESSION__BACKEND", "cookie")],
    );
    assert!(out.status.success() && stdout(&out).contains("nothing to migrate"));
}

/// Starts the built binary on a free port; returns the child and its URL.
fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let (child, url, _) = serve_line(dir, env);
    (child, url)
}

/// `serve`, also returning the line the binary printed on start-up.
fn serve_line(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, String) {
    let (child, url, mut lines) = serve_on(dir, "127.0.0.1:0", env);
    let line = lines.pop().expect("the serving line");
    (child, url, line)
}

/// `serve --bind ADDR`; returns the child, its URL and every line it
/// printed up to and including the one with the URL.
fn serve_on(
    dir: &std::path::Path,
    bind: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_websessions"));
    cmd.args(["serve", "--bind", bind])
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("APP_SESSION__FILE__DIR", dir.join("sessions"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "serve ended before printing its URL: {lines:?}"
        );
        let url = line.starts_with("websessions: serving").then(|| {
            line.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .expect("the URL is printed")
                .to_owned()
        });
        lines.push(line);
        if let Some(url) = url {
            break url;
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, url, lines)
}

#[tokio::test]
async fn a_cookie_session_written_by_one_process_is_read_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("APP_SESSION__BACKEND", "cookie")];
    let (mut a, url_a) = serve(dir.path(), &env);
    let (mut b, url_b) = serve(dir.path(), &env);
    let client = reqwest::Client::new();
    let resp = client
        .put(format!("{url_a}api/session/fruit"))
        .json(&json!("pear"))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = client
        .get(format!("{url_b}api/session/fruit"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"key": "fruit", "value": "pear"}),
        "process B reads what process A wrote"
    );
    for child in [&mut a, &mut b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn json_logs_are_one_json_object_per_line_without_ids() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_websessions"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("APP_SESSION__FILE__DIR", dir.path().join("sessions"))
        .env("APP_SERVER__LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                let end = rest.find(['"', ' ']).unwrap_or(rest.len());
                let _ = url_tx.send(rest[..end].to_owned());
            }
            lines.push(line);
        }
        lines
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let base = tokio::task::spawn_blocking(move || {
        url_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the listening line")
    })
    .await
    .unwrap();

    // A session life: a write, a read, a forged cookie, a malformed one, a 404.
    let client = reqwest::Client::new();
    let resp = client
        .put(format!("{base}/api/session/fruit"))
        .json(&json!("pear"))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let id = cookie.split_once('=').unwrap().1.to_owned();
    let read = client
        .get(format!("{base}/api/session/fruit"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), reqwest::StatusCode::OK);
    let forged = format!("{COOKIE}={}", "A".repeat(id.len()));
    let malformed = format!("{COOKIE}=not-an-id");
    for bad in [forged.as_str(), malformed.as_str()] {
        client
            .get(format!("{base}/api/session"))
            .header("cookie", bad)
            .send()
            .await
            .unwrap();
    }
    client.get(format!("{base}/nope")).send().await.unwrap();
    crate::support::stop_gracefully(child).await;

    let lines = reader.join().unwrap();
    let err = errors.join().unwrap();
    let all: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .chain(err.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(all.len() > 5, "the run logged: {all:#?}");
    let mut answered = 0;
    for line in &all {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.is_object() && v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(v["fields"].is_object(), "{line}");
        assert!(
            !line.contains(&id),
            "a log line carries the session id: {line}"
        );
        if v["fields"]["message"] == "answered" {
            answered += 1;
            assert!(v["fields"]["status"].is_number(), "{line}");
            assert!(v["span"]["route"].is_string(), "{line}");
        }
    }
    assert_eq!(answered, 5, "one line per request: {all:#?}");
    assert!(
        all.iter().any(|l| l.contains("malformed session cookie")),
        "the warnings are there, as JSON: {all:#?}"
    );
    assert!(
        all.iter().any(|l| l.contains("websessions stopped")),
        "{all:#?}"
    );
}

#[test]
fn bad_log_format_and_metrics_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    for (var, key) in [
        ("APP_SERVER__LOG_FORMAT", "server.log_format"),
        ("APP_SERVER__METRICS", "server.metrics"),
    ] {
        let out = websessions(dir.path(), &["config"], &[(var, "xml")]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(key) && err.contains(var), "{err}");
    }
}
