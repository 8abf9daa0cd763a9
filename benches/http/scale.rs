//! Scale checks and the targets.
//!
//! - File store with 100 000 sessions on disk against 100: the site reads
//!   and writes the same few sessions in both folders.
//! - purge-expired of 1 000 expired among 10 000 and among 100 000, on the
//!   file and SQLite stores, timed in this process on the store itself
//!   (median of three: the 1 000 expired are re-seeded before each).
//! - Memory backend RSS: the site process's `VmRSS` before and after
//!   100 000 small sessions created through the API (`PUT` without a cookie).
//!
//! Seeding happens in this process through the store types themselves
//! (`FileStore::create`; for SQLite, the store's own encoding inserted in
//! one transaction), so the records are exactly what the site writes.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use websessions::config::{DatabaseSettings, Secret};
use websessions::sessions::database::{DatabaseStore, DbPool};
use websessions::sessions::file::FileStore;
use websessions::sessions::keys::CREATED_AT;
use websessions::sessions::store::{Capability, SiteStore, encode, storage_key, unix_ms};

use super::{Opts, Row, kv, load, start_site};

fn record(expires: OffsetDateTime) -> Record {
    let now = OffsetDateTime::now_utc();
    let mut data = HashMap::new();
    data.insert(CREATED_AT.to_owned(), Value::from(unix_ms(now)));
    data.insert("bench".to_owned(), Value::from("value"));
    Record {
        id: Id::default(),
        data,
        expiry_date: expires,
    }
}

fn live_until() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

fn expired_at() -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::from_secs(60)
}

/// Creates `n` records through `FileStore::create`, 8 at a time; returns their ids.
async fn seed_files(store: &FileStore, n: usize, expires: OffsetDateTime) -> Vec<Id> {
    let mut set = tokio::task::JoinSet::new();
    let workers = 8;
    for w in 0..workers {
        let store = store.clone();
        let count = n / workers + usize::from(w < n % workers);
        set.spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let mut r = record(expires);
                store.create(&mut r).await.expect("seed a session file");
                ids.push(r.id);
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(part) = set.join_next().await {
        ids.extend(part.expect("a seeding task"));
    }
    ids
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Purges three times, re-seeding `expired` expired records before each.
async fn time_purges<F, Fut>(
    store: &dyn SiteStore,
    expired: usize,
    mut reseed: F,
) -> (f64, Vec<f64>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::new();
    for rep in 0..5 {
        if rep > 0 {
            reseed().await;
        }
        let t = Instant::now();
        let n = store.purge_expired().await.expect("purge");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            n,
            Capability::Supported(expired as u64),
            "purge removed the expired ones"
        );
    }
    (median(times.clone()), times)
}

fn file_checks(rt: &tokio::runtime::Runtime, opts: &Opts, tmp: &Path) -> Value {
    println!("\nscale: file store, 100 vs 100 000 sessions on disk …");
    let small_dir = tmp.join("scale-file-100");
    let big_dir = tmp.join("scale-file-100k");
    let mid_dir = tmp.join("scale-file-10k");
    let small = FileStore::open(&small_dir, false).expect("file store");
    let big = FileStore::open(&big_dir, false).expect("file store");
    let mid = FileStore::open(&mid_dir, false).expect("file store");
    let t = Instant::now();
    let (small_ids, big_ids) = rt.block_on(async {
        let small_ids = seed_files(&small, 100, live_until()).await;
        let big_ids = seed_files(&big, 100, live_until()).await;
        seed_files(&big, 98_900, live_until()).await;
        seed_files(&big, 1_000, expired_at()).await;
        seed_files(&mid, 9_000, live_until()).await;
        seed_files(&mid, 1_000, expired_at()).await;
        (small_ids, big_ids)
    });
    println!(
        "  seeded 110 100 session files in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let cookies = |ids: &[Id]| {
        ids.iter()
            .take(opts.connections)
            .map(Id::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let run = |dir: &Path, ids: &[Id]| {
        let env = vec![
            kv("APP_SESSION__BACKEND", "file"),
            kv("APP_SESSION__FILE__DIR", dir.display().to_string()),
            // No background purge during the measurement.
            kv("APP_SESSION__PURGE_INTERVAL", "1h"),
        ];
        let site = start_site(opts, &env);
        let c = cookies(ids);
        let read = load(opts, &site.addr, "read", &[("LG_COOKIES", c.clone())]);
        let write = load(opts, &site.addr, "write", &[("LG_COOKIES", c)]);
        (read, write)
    };
    let (r100, w100) = run(&small_dir, &small_ids);
    let (r100k, w100k) = run(&big_dir, &big_ids);
    println!(
        "  read  {:>8.0}/s at 100, {:>8.0}/s at 100 000: {:.2}×",
        r100.rps,
        r100k.rps,
        r100k.rps / r100.rps
    );
    println!(
        "  write {:>8.0}/s at 100, {:>8.0}/s at 100 000: {:.2}×",
        w100.rps,
        w100k.rps,
        w100k.rps / w100.rps
    );

    println!("scale: file purge-expired, 1 000 expired among 10 000 and 100 000 …");
    let (p10k, p10k_all) = rt.block_on(time_purges(&mid, 1_000, || async {
        seed_files(&mid, 1_000, expired_at()).await;
    }));
    let (p100k, p100k_all) = rt.block_on(time_purges(&big, 1_000, || async {
        seed_files(&big, 1_000, expired_at()).await;
    }));
    println!(
        "  {p10k:.1} ms among 10 000, {p100k:.1} ms among 100 000: {:.2}×",
        p100k / p10k
    );
    json!({
        "read_100_rps": r100.rps, "read_100k_rps": r100k.rps, "read_ratio": r100k.rps / r100.rps,
        "write_100_rps": w100.rps, "write_100k_rps": w100k.rps, "write_ratio": w100k.rps / w100.rps,
        "read_100_p99_ms": r100.p99_ms, "read_100k_p99_ms": r100k.p99_ms,
        "purge_10k_ms": p10k, "purge_100k_ms": p100k, "purge_ratio": p100k / p10k,
        "purge_10k_runs_ms": p10k_all, "purge_100k_runs_ms": p100k_all,
    })
}

/// Inserts rows with the store's own key and encoding, in one transaction.
async fn seed_sqlite(store: &DatabaseStore, n: usize, expires: OffsetDateTime) {
    let DbPool::Sqlite(pool) = store.pool() else {
        panic!("an SQLite store")
    };
    let mut tx = pool.begin().await.expect("begin");
    for _ in 0..n {
        let r = record(expires);
        sqlx::query("INSERT INTO sessions (id_hash, data, expires_at) VALUES (?, ?, ?)")
            .bind(storage_key(&r.id))
            .bind(encode(&r).expect("encode"))
            .bind(unix_ms(r.expiry_date))
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");
}

fn sqlite_purge(rt: &tokio::runtime::Runtime, tmp: &Path) -> Value {
    println!("scale: SQLite purge-expired, 1 000 expired among 10 000, 100 000 and 1 000 000 …");
    let open = |name: &str| {
        let settings = DatabaseSettings {
            url: Secret::new(format!("sqlite://{}", tmp.join(name).display())),
            max_connections: 10,
            auto_migrate: true,
        };
        rt.block_on(DatabaseStore::open(&settings.options()))
            .expect("sqlite store")
    };
    let mut results = Vec::new();
    // The million shows where the cost settles: once the table has more
    // pages than there are expired rows, each expired row costs its own
    // page, however many live rows surround it.
    for (name, total) in [
        ("purge-10k.db", 10_000),
        ("purge-100k.db", 100_000),
        ("purge-1m.db", 1_000_000),
    ] {
        let store = open(name);
        rt.block_on(async {
            seed_sqlite(&store, total - 1_000, live_until()).await;
            seed_sqlite(&store, 1_000, expired_at()).await;
        });
        let (ms, all) = rt.block_on(time_purges(&store, 1_000, || async {
            seed_sqlite(&store, 1_000, expired_at()).await;
        }));
        rt.block_on(store.close());
        results.push((ms, all));
    }
    let ratio = results[1].0 / results[0].0;
    let ratio_1m = results[2].0 / results[1].0;
    println!(
        "  {:.1} ms among 10 000, {:.1} ms among 100 000: {ratio:.2}×; {:.1} ms among 1 000 000: {ratio_1m:.2}× of among 100 000",
        results[0].0, results[1].0, results[2].0
    );
    json!({
        "purge_10k_ms": results[0].0, "purge_100k_ms": results[1].0, "purge_ratio": ratio,
        "purge_1m_ms": results[2].0, "purge_ratio_1m_vs_100k": ratio_1m,
        "purge_10k_runs_ms": results[0].1, "purge_100k_runs_ms": results[1].1,
        "purge_1m_runs_ms": results[2].1,
    })
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn memory_rss(opts: &Opts) -> Value {
    println!("scale: memory backend RSS with 100 000 sessions …");
    let env = vec![kv("APP_SESSION__BACKEND", "memory")];
    let site = start_site(opts, &env);
    // Warm the runtime and the allocator with 1 000 sessions first.
    load(opts, &site.addr, "create", &[("LG_COUNT", "1000".into())]);
    std::thread::sleep(Duration::from_millis(200));
    let before = vm_rss_kib(site.pid());
    let m = load(opts, &site.addr, "create", &[("LG_COUNT", "100000".into())]);
    std::thread::sleep(Duration::from_millis(200));
    let after = vm_rss_kib(site.pid());
    drop(site);
    let per = (after.saturating_sub(before) as f64 * 1024.0) / 100_000.0;
    println!(
        "  VmRSS {:.1} MiB before, {:.1} MiB after 100 000 sessions: {per:.0} bytes per session (created at {:.0}/s)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        m.rps
    );
    json!({
        "rss_before_kib": before, "rss_after_kib": after,
        "bytes_per_session": per, "create_rps": m.rps, "create_errors": m.errors,
    })
}

pub fn run(rt: &tokio::runtime::Runtime, opts: &Opts, backends: &[&str], tmp: &Path) -> Value {
    let mut out = serde_json::Map::new();
    if backends.contains(&"file") {
        out.insert("file".into(), file_checks(rt, opts, tmp));
    }
    if backends.contains(&"sqlite") {
        out.insert("sqlite".into(), sqlite_purge(rt, tmp));
    }
    if backends.contains(&"memory") {
        out.insert("memory".into(), memory_rss(opts));
    }
    Value::Object(out)
}

/// Every performance target, evaluated on this run's numbers.
pub fn targets(rows: &[Row], scale: &Value) -> Value {
    let find = |b: &str, s: &str| rows.iter().find(|r| r.backend == b && r.scenario == s);
    let mut out = Vec::new();
    let mut check = |name: String, value: f64, want: &str, met: bool| {
        println!(
            "{} {name}: {value:.2} (target {want})",
            if met { "MET    " } else { "MISSED " }
        );
        out.push(json!({ "target": name, "value": value, "want": want, "met": met }));
    };
    println!("\nTargets:");
    let backends: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.backend.as_str()).collect();
        v.dedup();
        v
    };
    for b in &backends {
        for (s, label) in [
            ("read (extend, touch 1s)", "JSON read"),
            ("write", "JSON write"),
            ("new visitor read", "new-visitor read"),
        ] {
            if let Some(x) = find(b, s).and_then(|r| r.vs_reference) {
                check(
                    format!("{b}: site/reference, {label}"),
                    x,
                    "≥ 0.90",
                    x >= 0.9,
                );
            }
        }
    }
    // Round 2: the outer stack against a bare axum route, the cookie
    // backend against its library, many visitors writing.
    for b in &backends {
        for s in [
            "baseline /healthz/live (vs bare)",
            "baseline, many conns (vs bare)",
        ] {
            if let Some(x) = find(b, s).and_then(|r| r.vs_reference) {
                check(format!("{b}: {s}"), x, "≥ 0.90", x >= 0.9);
            }
        }
    }
    for s in ["read (extend, touch 1s)", "write"] {
        if let Some(x) = find("cookie", s).and_then(|r| r.vs_reference) {
            check(
                format!("cookie: site/library, {s} (round 2)"),
                x,
                "≥ 0.60",
                x >= 0.6,
            );
        }
    }
    // Ten times the TurboGears + Beaker peer's write rate on this machine
    // kind, with many visitors writing at once.
    for (b, peer) in [("file", 1_909.0), ("sqlite", 508.0)] {
        if let Some(r) = find(b, "write, many visitors") {
            let want = 10.0 * peer;
            check(
                format!("{b}: writes/s, many visitors, vs 10 × peer"),
                r.rps,
                &format!("≥ {want:.0}"),
                r.rps >= want,
            );
        }
    }
    for b in &backends {
        if let (Some(on), Some(off)) = (
            find(b, "read (extend, touch 1s)"),
            find(b, "read (no extend)"),
        ) {
            let x = on.rps / off.rps;
            let applies = !matches!(*b, "memory" | "cookie");
            let name = if applies {
                format!("{b}: extend (touch 1s) / no-extend reads")
            } else {
                format!("{b}: extend (touch 1s) / no-extend reads (informational)")
            };
            check(name, x, "≥ 0.90", x >= 0.9);
        }
    }
    for (b, want) in [("memory", 0.7), ("file", 0.6)] {
        if let Some(x) = find(b, "read (extend, touch 1s)").and_then(|r| r.vs_baseline) {
            check(
                format!("{b}: reads / liveness baseline"),
                x,
                &format!("≥ {want:.2}"),
                x >= want,
            );
        }
    }
    if let Some(f) = scale.get("file") {
        for k in ["read_ratio", "write_ratio"] {
            if let Some(x) = f[k].as_f64() {
                check(
                    format!("file: 100 000 / 100 sessions, {k}"),
                    x,
                    "≥ 0.90",
                    x >= 0.9,
                );
            }
        }
        if let Some(x) = f["purge_ratio"].as_f64() {
            check(
                "file: purge 1 000 expired, among 100 000 / among 10 000 (informational)".into(),
                x,
                "≤ 1.50 (set for SQLite)",
                x <= 1.5,
            );
        }
    }
    if let Some(x) = scale.get("sqlite").and_then(|s| s["purge_ratio"].as_f64()) {
        check(
            "sqlite: purge 1 000 expired, among 100 000 / among 10 000".into(),
            x,
            "≤ 1.50",
            x <= 1.5,
        );
    }
    if let Some(x) = scale
        .get("sqlite")
        .and_then(|s| s["purge_ratio_1m_vs_100k"].as_f64())
    {
        check(
            "sqlite: purge 1 000 expired, among 1 000 000 / among 100 000 (informational)".into(),
            x,
            "≤ 1.50",
            x <= 1.5,
        );
    }
    for b in &backends {
        if let Some(r) = find(b, "read (extend, touch 1s)") {
            check(
                format!("{b}: session reads/s vs 20 × 2 000 (= 40 000)"),
                r.rps,
                "≥ 40 000",
                r.rps >= 40_000.0,
            );
        }
    }
    Value::Array(out)
}
