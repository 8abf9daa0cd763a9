//! The file store on disk: atomic writes under concurrency, corrupted files,
//! ids hashed at rest, and purge over many files.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use websessions::sessions::file::FileStore;
use websessions::sessions::store::{Capability, SiteStore};

use crate::support::{
    Kind, LaggingClock, eventually, files_under, spawn_app, spawn_app_with, spawn_app_with_clock,
    spawn_sharing_store,
};

use crate::support::COOKIE;

#[tokio::test]
async fn concurrent_writers_never_leave_a_torn_file() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let me = app.me();
    me.set("seed", json!(0)).await;
    let dir = app.settings.session.file.dir.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for path in files_under(&dir)
                    .into_iter()
                    .filter(|p| !p.to_string_lossy().contains(".tmp-"))
                {
                    if let Ok(bytes) = std::fs::read(&path) {
                        serde_json::from_slice::<Value>(&bytes)
                            .expect("a whole JSON record, never a torn one");
                        reads += 1;
                    }
                }
            }
            reads
        })
    };
    let mut writers = Vec::new();
    for i in 0..20 {
        let me = me.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..5 {
                let big = format!("{i}-{round}-{}", "x".repeat(20_000));
                me.set("big", json!(big)).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0, "the reader saw the file");
    let value = me.value("big").await.expect("the last write reads back");
    assert!(value.as_str().unwrap().ends_with(&"x".repeat(20_000)));
    assert_eq!(app.count().await, 1);
    app.finish().await;
}

#[tokio::test]
async fn a_corrupted_or_truncated_file_is_a_fresh_session() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    for garbage in [&b"{\"truncated\": \"val"[..], b"\x00\xff not json", b""] {
        let v = app.visitor();
        v.set("a", json!(1)).await;
        let files: Vec<_> = files_under(&app.settings.session.file.dir);
        for f in &files {
            // Overwrite the content but keep the expiry (mtime) in the future.
            let mtime = std::fs::metadata(f).unwrap().modified().unwrap();
            std::fs::write(f, garbage).unwrap();
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
        let resp = v.get("/api/session").await;
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["new"], json!(true));
        v.set("b", json!(2)).await;
        assert_eq!(v.session().await["data"], json!({"b": 2}));
        app.store().clear().await.unwrap();
    }
    app.finish().await;
}

#[tokio::test]
async fn no_cookie_value_appears_in_any_path_or_file() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let mut cookies = Vec::new();
    for i in 0..5 {
        let v = app.visitor();
        v.set("i", json!(i)).await;
        cookies.push(v.session_cookie(&COOKIE).unwrap());
        v.post("/api/session/cycle").await;
        cookies.push(v.session_cookie(&COOKIE).unwrap());
    }
    let files = files_under(&app.settings.session.file.dir);
    assert_eq!(files.len(), 5);
    for path in files {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let path = path.to_string_lossy().into_owned();
        for cookie in &cookies {
            assert!(!path.contains(cookie.as_str()), "cookie value in a path");
            assert!(!text.contains(cookie.as_str()), "cookie value in a file");
        }
    }
    app.finish().await;
}

fn record(expiry: OffsetDateTime, i: usize) -> Record {
    let mut data = HashMap::new();
    data.insert("i".to_owned(), Value::from(i));
    Record {
        id: Id::default(),
        data,
        expiry_date: expiry,
    }
}

#[tokio::test]
async fn purge_reads_metadata_only_and_handles_ten_thousand_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("s"), false).unwrap();
    let now = OffsetDateTime::now_utc();
    let past = now - Duration::from_secs(60);
    let future = now + Duration::from_secs(3600);
    let mut tasks = Vec::new();
    for chunk in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1000 {
                let expiry = if (chunk * 1000 + i) % 4 == 0 {
                    future
                } else {
                    past
                };
                store.create(&mut record(expiry, i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), Capability::Supported(10_000));
    assert_eq!(
        store.count_expired().await.unwrap(),
        Capability::Supported(7_500)
    );
    assert_eq!(
        store.purge_expired().await.unwrap(),
        Capability::Supported(7_500)
    );
    assert_eq!(store.count().await.unwrap(), Capability::Supported(2_500));
    assert_eq!(
        store.count_expired().await.unwrap(),
        Capability::Supported(0)
    );
    assert_eq!(store.clear().await.unwrap(), Capability::Supported(2_500));
    assert!(files_under(store.dir()).is_empty());
}

#[tokio::test]
async fn create_is_insert_only_and_save_touch_are_update_only() {
    use websessions::sessions::store::WriteOutcome;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), false).unwrap();
    let future = OffsetDateTime::now_utc() + Duration::from_secs(60);
    let mut first = record(future, 1);
    store.create(&mut first).await.unwrap();
    let mut clash = record(future, 2);
    clash.id = first.id;
    store.create(&mut clash).await.unwrap();
    assert_ne!(
        clash.id, first.id,
        "a taken id is not overwritten: a fresh one is drawn"
    );
    assert_eq!(
        store.load(&first.id).await.unwrap().unwrap().data["i"],
        json!(1)
    );

    store.delete(&first.id).await.unwrap();
    assert_eq!(
        store.save_existing(&first).await.unwrap(),
        WriteOutcome::Gone
    );
    assert_eq!(
        store.touch(&first.id, future).await.unwrap(),
        WriteOutcome::Gone
    );
    assert!(
        store.load(&first.id).await.unwrap().is_none(),
        "no resurrection"
    );
    assert_eq!(
        store
            .touch(&clash.id, future + Duration::from_secs(60))
            .await
            .unwrap(),
        WriteOutcome::Written
    );
    let loaded = store.load(&clash.id).await.unwrap().unwrap();
    assert!(
        loaded.expiry_date > future,
        "touch moved the expiry (mtime)"
    );
    assert_eq!(loaded.data["i"], json!(2), "and kept the data");
    store.clear().await.unwrap();
}

#[tokio::test]
async fn the_background_task_purges_expired_sessions() {
    // Sessions written an hour ago, by an instance that purges rarely.
    let clock = LaggingClock::new();
    clock.set_behind(Duration::from_secs(3600));
    let Some(app) = spawn_app_with_clock(
        Kind::File,
        |s| s.session.idle_timeout = Duration::from_secs(2),
        clock,
    )
    .await
    else {
        return;
    };
    for i in 0..3 {
        app.visitor().set("i", json!(i)).await;
    }
    let dir = app.settings.session.file.dir.clone();
    assert_eq!(files_under(&dir).len(), 3);
    // Nobody calls purge: the background task of an instance that purges
    // often deletes the expired files.
    let purger = spawn_sharing_store(
        &app,
        |s| s.session.purge_interval = Duration::from_millis(500),
        None,
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "expired files purged",
        async || files_under(&dir).is_empty(),
    )
    .await;
    purger.stop().await;
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Several processes over one folder. The file store's per-record lock is an
// `flock` on the record file, so another process (a second instance, the
// CLI's `sessions clear`/`purge-expired`) and this one exclude each other.
// These tests hold that lock themselves, as another process in the middle of
// a delete would, and watch `/proc/locks` to see an operation queue behind
// it: a deterministic interleaving, not a timing gamble.

fn record_path(dir: &std::path::Path, id: &Id) -> std::path::PathBuf {
    let key = websessions::sessions::store::storage_key(id);
    dir.join(&key[0..2]).join(&key[2..4]).join(&key)
}

/// Takes the record's lock the way another process does.
fn lock_record(path: &std::path::Path) -> std::fs::File {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .expect("the record exists");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).expect("flock");
    file
}

/// How many `flock` waiters of process `pid` queue on inode `ino`.
fn flock_waiters(pid: u32, ino: u64) -> usize {
    let ino = format!(":{ino}");
    let pid = pid.to_string();
    std::fs::read_to_string("/proc/locks")
        .expect("/proc/locks")
        .lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.get(1) == Some(&"->")
                && words.get(2) == Some(&"FLOCK")
                && words.get(5) == Some(&pid.as_str())
                && words.get(6).is_some_and(|w| w.ends_with(&ino))
        })
        .count()
}

/// Waits until `n` operations of process `pid` wait for the lock on the
/// record at `path`.
async fn until_waiting(pid: u32, path: &std::path::Path, n: usize, what: &str) {
    use std::os::unix::fs::MetadataExt;
    let ino = match std::fs::metadata(path) {
        Ok(meta) => meta.ino(),
        Err(e) => panic!("{what} did not wait for the record's lock: the record is gone ({e})"),
    };
    eventually(
        Duration::from_secs(20),
        &format!("{what} waiting for the record's lock held by another process"),
        async || flock_waiters(pid, ino) >= n,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_or_touch_waits_for_another_process_and_finds_the_record_gone() {
    use websessions::sessions::store::WriteOutcome;
    let dir = tempfile::tempdir().unwrap();
    // Two instances over one folder (two servers): one saves, one touches.
    let store = FileStore::open(dir.path(), false).unwrap();
    let other = FileStore::open(dir.path(), false).unwrap();
    let future = OffsetDateTime::now_utc() + Duration::from_secs(60);
    let mut rec = record(future, 1);
    store.create(&mut rec).await.unwrap();
    let path = record_path(dir.path(), &rec.id);

    // A third process is deleting the record: it holds the lock.
    let held = lock_record(&path);
    let mut changed = rec.clone();
    changed.data.insert("i".into(), json!(2));
    let save = tokio::spawn({
        let store = store.clone();
        async move { store.save_existing(&changed).await }
    });
    let touch = tokio::spawn({
        let other = other.clone();
        async move { other.touch(&rec.id, future + Duration::from_secs(60)).await }
    });
    until_waiting(std::process::id(), &path, 2, "save and touch").await;
    std::fs::remove_file(&path).unwrap();
    drop(held);

    assert_eq!(save.await.unwrap().unwrap(), WriteOutcome::Gone);
    assert_eq!(touch.await.unwrap().unwrap(), WriteOutcome::Gone);
    assert!(!path.exists(), "the deleted session did not come back");
    assert!(other.load(&rec.id).await.unwrap().is_none());
    assert!(files_under(dir.path()).is_empty());
}

/// Two store instances over one folder, each with its own in-process state:
/// one writes while the other deletes, clears or purges. Both queue behind
/// a third holder of the lock; whichever goes first, the record is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_cannot_bring_a_deleted_session_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = FileStore::open(dir.path(), false).unwrap();
    let admin = FileStore::open(dir.path(), false).unwrap();
    for remover in ["delete", "clear", "purge"] {
        for writer in ["save", "touch"] {
            let now = OffsetDateTime::now_utc();
            // Purge removes only an expired record; its writer is then a
            // late save of a session that was live when it was loaded.
            let expiry = if remover == "purge" {
                now - Duration::from_secs(1)
            } else {
                now + Duration::from_secs(60)
            };
            let mut rec = record(expiry, 1);
            server.create(&mut rec).await.unwrap();
            let path = record_path(dir.path(), &rec.id);
            let held = lock_record(&path);

            let mut changed = rec.clone();
            changed.expiry_date = now + Duration::from_secs(120);
            let write = tokio::spawn({
                let server = server.clone();
                async move {
                    if writer == "save" {
                        server.save_existing(&changed).await
                    } else {
                        server.touch(&changed.id, changed.expiry_date).await
                    }
                }
            });
            let remove = tokio::spawn({
                let admin = admin.clone();
                let id = rec.id;
                async move {
                    match remover {
                        "delete" => admin.delete(&id).await,
                        "clear" => admin.clear().await.map(|_| ()),
                        _ => admin.purge_expired().await.map(|_| ()),
                    }
                }
            });
            until_waiting(
                std::process::id(),
                &path,
                2,
                &format!("{writer} and {remover}"),
            )
            .await;
            drop(held);
            write.await.unwrap().unwrap();
            remove.await.unwrap().unwrap();
            assert!(
                !path.exists(),
                "{writer} racing {remover}: the session came back"
            );
            assert!(admin.load(&rec.id).await.unwrap().is_none());
        }
    }
    assert!(files_under(dir.path()).is_empty());
}

/// The real binary's `sessions clear --yes`, run while the server saves the
/// same session: neither order brings the session back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_clear_while_the_server_saves_cannot_bring_the_session_back() {
    let Some(app) = spawn_app(Kind::File).await else {
        return;
    };
    let dir = app.settings.session.file.dir.clone();
    let v = app.visitor();
    v.set("a", json!(1)).await;
    let files = files_under(&dir);
    assert_eq!(files.len(), 1);
    let path = files[0].clone();
    let held = lock_record(&path);

    let clear = std::process::Command::new(env!("CARGO_BIN_EXE_websessions"))
        .args(["sessions", "clear", "--yes"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("APP_SESSION__FILE__DIR", &dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run websessions");
    let clear_pid = clear.id();
    let write = tokio::spawn({
        let v = v.clone();
        async move { v.put_json("/api/session/b", &json!(2)).await.status() }
    });
    until_waiting(clear_pid, &path, 1, "`sessions clear`").await;
    until_waiting(std::process::id(), &path, 1, "the server's save").await;
    drop(held);

    let out = tokio::task::spawn_blocking(move || clear.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(write.await.unwrap().is_success());
    assert!(files_under(&dir).is_empty(), "the session came back");
    assert_eq!(v.session().await["new"], json!(true));
    app.finish().await;
}

/// Session files are `0600` and their folders `0700`, whatever the umask.
#[tokio::test]
async fn session_files_are_0600_and_folders_0700() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sessions");
    // The most open umask: only the store's own modes decide.
    let before = rustix::process::umask(rustix::fs::Mode::empty());
    let store = FileStore::open(&root, false);
    rustix::process::umask(before);
    let store = store.unwrap();
    // Later writes happen under the usual umask, and under the open one too.
    let future = OffsetDateTime::now_utc() + Duration::from_secs(60);
    let mut rec = record(future, 1);
    let before = rustix::process::umask(rustix::fs::Mode::empty());
    let created = store.create(&mut rec).await;
    rustix::process::umask(before);
    created.unwrap();
    let path = record_path(&root, &rec.id);
    assert_eq!(mode(&root), 0o700, "the store's folder");
    assert_eq!(mode(path.parent().unwrap()), 0o700, "dir/ab/cd");
    assert_eq!(
        mode(path.parent().unwrap().parent().unwrap()),
        0o700,
        "dir/ab"
    );
    assert_eq!(mode(&path), 0o600, "a created file");
    store.save_existing(&rec).await.unwrap();
    assert_eq!(mode(&path), 0o600, "a saved (renamed) file");
    store.clear().await.unwrap();
}

/// The "at rest" panel names the file relative to `session.file.dir`: no
/// absolute server path, whatever `debug_errors` says.
#[tokio::test]
async fn the_at_rest_panel_shows_no_absolute_path() {
    let Some(app) = spawn_app_with(Kind::File, |s| s.server.debug_errors = false).await else {
        return;
    };
    let v = app.visitor();
    v.set("a", json!(1)).await;
    let dir = app.settings.session.file.dir.clone();
    assert!(dir.is_absolute(), "the test's folder is an absolute path");
    let page = v.get("/").await.text().await.unwrap();
    let file = files_under(&dir).pop().unwrap();
    let relative = file.strip_prefix(&dir).unwrap().display().to_string();
    assert!(
        page.contains(&format!("<code id=\"at-rest-location\">{relative}</code>")),
        "the panel names the file under the folder"
    );
    let absolute = dir.display().to_string();
    assert!(!page.contains(&absolute), "the page shows {absolute}");
    app.finish().await;
}
