//! In-process micro-benchmarks of the hot paths (criterion):
//! `cargo bench --bench micro`.
//!
//! - store load and save (update-only `save_existing`) for memory, file and
//!   SQLite, with a small record of three keys;
//! - the cookie backend's encode (record → encrypted cookie, as
//!   the request store computes it on every write) and decode (decrypt + parse);
//! - the CSRF token: create and verify.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use websessions::config::{DatabaseSettings, LoadOptions, Secret};
use websessions::sessions::CookieMode;
use websessions::sessions::cookie::CookieCodec;
use websessions::sessions::database::DatabaseStore;
use websessions::sessions::file::FileStore;
use websessions::sessions::memory::MemoryStore;
use websessions::sessions::store::SiteStore;
use websessions::web::csrf::{Binding, Csrf};

fn record() -> Record {
    let mut data = HashMap::new();
    data.insert("_created_at".to_owned(), Value::from(1_700_000_000_000i64));
    data.insert("user".to_owned(), Value::from("alice"));
    data.insert("cart".to_owned(), serde_json::json!([1, 2, 3]));
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + Duration::from_secs(3600),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn bench_store<S: SiteStore>(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: S,
) {
    let mut r = record();
    rt.block_on(store.create(&mut r)).expect("create");
    let id = r.id;
    c.bench_function(&format!("store/{name}/load"), |b| {
        b.to_async(rt).iter(|| async {
            black_box(store.load(&id).await.expect("load").expect("present"));
        })
    });
    c.bench_function(&format!("store/{name}/save"), |b| {
        b.to_async(rt).iter(|| async {
            black_box(store.save_existing(&r).await.expect("save"));
        })
    });
    c.bench_function(&format!("store/{name}/touch"), |b| {
        b.to_async(rt).iter(|| async {
            black_box(store.touch(&id, r.expiry_date).await.expect("touch"));
        })
    });
}

fn stores(c: &mut Criterion) {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("a temp dir");
    bench_store(c, "memory", &rt, MemoryStore::new());
    bench_store(
        c,
        "file",
        &rt,
        FileStore::open(tmp.path().join("files"), false).expect("file store"),
    );
    let settings = DatabaseSettings {
        url: Secret::new(format!("sqlite://{}", tmp.path().join("s.db").display())),
        max_connections: 10,
        auto_migrate: true,
    };
    let sqlite = rt
        .block_on(DatabaseStore::open(&settings.options()))
        .expect("sqlite store");
    bench_store(c, "sqlite", &rt, sqlite);
}

fn test_settings() -> websessions::config::Settings {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    websessions::config::load(&LoadOptions::profile_in("test", dir))
        .expect("the test profile loads")
        .settings
}

fn cookie(c: &mut Criterion) {
    let settings = test_settings();
    let key = websessions::config::decode_key(settings.session.secret_key.expose()).expect("key");
    let codec = CookieCodec::new("session_id", CookieMode::Private, &key, &[]);
    let r = record();
    c.bench_function("cookie/encode+encrypt (CookieCodec::encode)", |b| {
        b.iter(|| black_box(codec.encode(black_box(&r)).expect("encode")))
    });
    let sealed = codec.encode(&r).expect("encode");
    c.bench_function("cookie/decrypt+decode (CookieCodec::decode)", |b| {
        b.iter(|| black_box(codec.decode(black_box(&sealed)).expect("decodes")))
    });
}

fn csrf(c: &mut Criterion) {
    let csrf = Csrf::new([7; 64], vec![[9; 64]], false);
    let binding = Binding::Session(Id::default());
    let token = csrf.token(&binding);
    c.bench_function("csrf/token", |b| {
        b.iter(|| black_box(csrf.token(black_box(&binding))))
    });
    c.bench_function("csrf/verify (current key)", |b| {
        b.iter(|| black_box(csrf.verify(black_box(&token), std::slice::from_ref(&binding))))
    });
    let wrong = csrf.token(&Binding::Nonce("x".repeat(22)));
    c.bench_function("csrf/verify (wrong token, every key tried)", |b| {
        b.iter(|| black_box(csrf.verify(black_box(&wrong), std::slice::from_ref(&binding))))
    });
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = stores, cookie, csrf
}
criterion_main!(micro);
