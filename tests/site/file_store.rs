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

use crate::support::{Kind, files_under, spawn_app, spawn_app_with};

const COOKIE: &str = "session_id";

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
        cookies.push(v.session_cookie(COOKIE).unwrap());
        v.post("/api/session/cycle").await;
        cookies.push(v.session_cookie(COOKIE).unwrap());
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
    let Some(app) = spawn_app_with(Kind::File, |s| {
        s.session.idle_timeout = Duration::from_secs(2);
        s.session.purge_interval = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    for i in 0..3 {
        app.visitor().set("i", json!(i)).await;
    }
    assert_eq!(files_under(&app.settings.session.file.dir).len(), 3);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // Nobody called purge: the server's own task deleted the expired files.
    assert!(
        files_under(&app.settings.session.file.dir).is_empty(),
        "expired files were purged"
    );
    app.finish().await;
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
