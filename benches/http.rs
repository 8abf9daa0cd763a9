//! The HTTP load benchmark: `cargo bench --bench http`.
//!
//! One binary, three roles (chosen by `WS_BENCH_ROLE`):
//! - (unset) the **orchestrator**: builds the release `websessions` binary,
//!   starts it per backend with an isolated store, starts the reference
//!   server, runs the load generator against each, runs the scale checks,
//!   prints the table and writes `target/bench/http.json`;
//! - `loadgen`: the load generator, in a process of its own (`http/loadgen.rs`);
//! - `reference`: the bare axum + tower-sessions server (`http/reference.rs`).
//!
//! Re-executing the bench binary keeps everything in one target that
//! `cargo bench` builds, with nothing else to install.
//!
//! Environment (all optional):
//! - `BENCH_SECONDS` (1.5) measured seconds per run of a scenario, after
//!   `BENCH_WARMUP` (0.5) seconds of warm-up;
//! - `BENCH_ROUNDS` (3) runs of every scenario, interleaved between the
//!   site and the reference; each cell is their median;
//! - `BENCH_CONNECTIONS` (8) concurrent keep-alive connections;
//! - `BENCH_MANY` (64) connections of the "many connections" cells (the
//!   liveness route against a bare axum route, and file and SQLite writes
//!   by that many visitors, or by one visitor over that many connections);
//! - `BENCH_BACKENDS` (all) comma list of
//!   memory,file,sqlite,postgres,mysql,redis,memcached,cookie;
//! - `BENCH_SCALE` (1) 0 skips the scale checks;
//! - `BENCH_RUST_LOG` (warn) the `RUST_LOG` of the site and the reference;
//! - `BENCH_NO_BUILD` (unset) 1 skips `cargo build --release --bin websessions`;
//! - `BENCH_SITE_BIN` (`target/release/websessions`) the site binary to
//!   measure, say a copy of an earlier build for a before/after run;
//! - `TEST_POSTGRES_URL`, `TEST_MYSQL_URL`, `TEST_REDIS_URL`,
//!   `TEST_MEMCACHED_URL`: the network backends run only when set (a fresh
//!   database, or a fresh key prefix, per run; databases are dropped after).

#[path = "http/loadgen.rs"]
mod loadgen;
#[path = "http/reference.rs"]
mod reference;
#[path = "http/scale.rs"]
mod scale;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

fn main() {
    match std::env::var("WS_BENCH_ROLE").as_deref() {
        Ok("loadgen") => loadgen::main(),
        Ok("reference") => reference::main(),
        _ => orchestrate(),
    }
}

/// Run-wide settings, from `BENCH_…` variables.
#[derive(Debug, Clone)]
pub struct Opts {
    pub seconds: f64,
    pub warmup: f64,
    pub connections: usize,
    /// Connections of the "many connections" cells.
    pub many: usize,
    /// Each cell is the median of this many interleaved runs.
    pub rounds: usize,
    pub rust_log: String,
    pub site_bin: PathBuf,
    pub manifest: PathBuf,
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub backend: String,
    pub scenario: String,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Concurrent connections (each its own visitor).
    pub connections: usize,
    /// Share of one core the load generator used.
    pub lg_cpu: f64,
    /// Bytes per response on the wire, head and body.
    pub bytes: u64,
    /// Requests/s relative to this backend's `/healthz/live` baseline.
    pub vs_baseline: Option<f64>,
    /// Relative to the reference server (JSON scenarios), or to the site's
    /// own JSON read (root page).
    pub vs_reference: Option<f64>,
}

/// One load-generator result.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub requests: u64,
    pub connections: usize,
    pub cpu_share: f64,
    pub bytes: u64,
}

/// A server process under test, killed on drop.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's stdout until a line holds `marker`, returns the
/// address after it, and drains the rest in a thread.
fn address_from_stdout(child: &mut Child, marker: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the server exited before printing {marker:?}");
        }
        if let Some(rest) = line.split(marker).nth(1) {
            let addr = rest
                .trim()
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = lines.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            });
            return addr;
        }
    }
}

/// Waits until `GET /healthz/live` answers 200.
fn wait_live(addr: &str) {
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ =
                s.write_all(b"GET /healthz/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr} never became live");
}

/// Starts the site's release binary with the test profile and `env`.
pub fn start_site(opts: &Opts, env: &[(String, String)]) -> Server {
    let mut child = Command::new(&opts.site_bin)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", opts.manifest.join("config"))
        .env("RUST_LOG", &opts.rust_log)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the site binary");
    let addr = address_from_stdout(&mut child, "serving http://");
    wait_live(&addr);
    Server { child, addr }
}

/// Starts the reference server (this binary, role `reference`).
pub fn start_reference(opts: &Opts, env: &[(String, String)]) -> Server {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env("WS_BENCH_ROLE", "reference")
        .env("RUST_LOG", &opts.rust_log)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the reference server");
    let addr = address_from_stdout(&mut child, "listening on ");
    wait_live(&addr);
    Server { child, addr }
}

/// Runs the load generator (this binary, role `loadgen`) once.
pub fn load(opts: &Opts, addr: &str, scenario: &str, extra: &[(&str, String)]) -> Measure {
    load_with(opts, addr, scenario, opts.connections, extra)
}

/// [`load`] with `connections` connections instead of `BENCH_CONNECTIONS`.
pub fn load_with(
    opts: &Opts,
    addr: &str,
    scenario: &str,
    connections: usize,
    extra: &[(&str, String)],
) -> Measure {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("WS_BENCH_ROLE", "loadgen")
        .env("LG_ADDR", addr)
        .env("LG_SCENARIO", scenario)
        .env("LG_CONNECTIONS", connections.to_string())
        .env("LG_SECONDS", opts.seconds.to_string())
        .env("LG_WARMUP", opts.warmup.to_string())
        .envs(extra.iter().map(|(k, v)| (*k, v)))
        .stderr(Stdio::inherit())
        .output()
        .expect("run the load generator");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!("load generator output {text:?}: {e}");
    });
    let m = Measure {
        rps: v["rps"].as_f64().unwrap_or(0.0),
        p50_ms: v["p50_ms"].as_f64().unwrap_or(0.0),
        p99_ms: v["p99_ms"].as_f64().unwrap_or(0.0),
        errors: v["errors"].as_u64().unwrap_or(0),
        requests: v["requests"].as_u64().unwrap_or(0),
        connections,
        cpu_share: v["cpu_share"].as_f64().unwrap_or(0.0),
        bytes: v["bytes_per_response"].as_u64().unwrap_or(0),
    };
    if m.errors > 0 {
        eprintln!(
            "  ! {scenario} on {addr}: {} errors (first: {})",
            m.errors, v["first_error"]
        );
    }
    m
}

/// A backend as the benchmark runs it.
struct Target {
    /// Name in the table: memory, file, sqlite, postgres, mysql, redis, memcached, cookie.
    name: &'static str,
    /// `session.backend`.
    backend: &'static str,
    site_env: Vec<(String, String)>,
    ref_env: Vec<(String, String)>,
    /// A database to drop afterwards: (admin URL, name).
    database: Option<(String, String)>,
}

fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

fn fresh_name() -> String {
    format!("wsbench_{:016x}", rand::random::<u64>())
}

fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a database URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

async fn admin_sql(admin: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    if admin.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(admin).await?;
        c.execute(sql).await?;
        c.close().await
    } else {
        let mut c = sqlx::MySqlConnection::connect(admin).await?;
        c.execute(sql).await?;
        c.close().await
    }
}

/// Builds the isolated store settings of one backend; `None` (after a
/// SKIP line) when its server is not configured.
fn target(rt: &tokio::runtime::Runtime, name: &'static str, tmp: &Path) -> Option<Target> {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let needs = |var: &str| -> Option<String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                println!("SKIP {name}: {var} not set");
                None
            }
        }
    };
    let prefix = format!("wsbench:{:016x}:", rand::random::<u64>());
    let t = |backend, site_env, ref_env, database| Target {
        name,
        backend,
        site_env,
        ref_env,
        database,
    };
    Some(match name {
        "memory" => t("memory", vec![], vec![], None),
        "file" => t(
            "file",
            vec![kv(
                "APP_SESSION__FILE__DIR",
                dir.join("site").display().to_string(),
            )],
            vec![kv("REF_FILE_DIR", dir.join("ref").display().to_string())],
            None,
        ),
        "sqlite" => t(
            "database",
            vec![kv(
                "APP_SESSION__DATABASE__URL",
                format!("sqlite://{}", dir.join("site.db").display()),
            )],
            vec![kv(
                "REF_DATABASE_URL",
                format!("sqlite://{}", dir.join("ref.db").display()),
            )],
            None,
        ),
        "postgres" | "mysql" => {
            let var = if name == "postgres" {
                "TEST_POSTGRES_URL"
            } else {
                "TEST_MYSQL_URL"
            };
            let admin = needs(var)?;
            let site_db = fresh_name();
            let ref_db = fresh_name();
            for db in [&site_db, &ref_db] {
                rt.block_on(admin_sql(&admin, &format!("CREATE DATABASE {db}")))
                    .unwrap_or_else(|e| panic!("create database on {name}: {e}"));
            }
            let site_url = with_database(&admin, &site_db);
            let ref_url = with_database(&admin, &ref_db);
            Target {
                name,
                backend: "database",
                site_env: vec![kv("APP_SESSION__DATABASE__URL", site_url)],
                ref_env: vec![kv("REF_DATABASE_URL", ref_url)],
                // Both are dropped: the name list is joined below.
                database: Some((admin, format!("{site_db},{ref_db}"))),
            }
        }
        "redis" => {
            let url = needs("TEST_REDIS_URL")?;
            t(
                "redis",
                vec![
                    kv("APP_SESSION__REDIS__URL", url.clone()),
                    kv("APP_SESSION__REDIS__PREFIX", format!("{prefix}site:")),
                ],
                vec![
                    kv("REF_REDIS_URL", url),
                    kv("REF_PREFIX", format!("{prefix}ref:")),
                ],
                None,
            )
        }
        "memcached" => {
            let url = needs("TEST_MEMCACHED_URL")?;
            t(
                "memcached",
                vec![
                    kv("APP_SESSION__MEMCACHED__URL", url.clone()),
                    kv("APP_SESSION__MEMCACHED__PREFIX", format!("{prefix}site:")),
                ],
                vec![
                    kv("REF_MEMCACHED_URL", url),
                    kv("REF_PREFIX", format!("{prefix}ref:")),
                ],
                None,
            )
        }
        "cookie" => t(
            "cookie",
            vec![],
            vec![kv("REF_SECRET_KEY", test_secret_key())],
            None,
        ),
        other => panic!("unknown backend {other:?} in BENCH_BACKENDS"),
    })
}

/// The development key of `config/test.toml`, for the cookie reference.
fn test_secret_key() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/test.toml"))
        .expect("config/test.toml");
    let v: toml::Value = text.parse().expect("test.toml parses");
    v["session"]["secret_key"]
        .as_str()
        .expect("test.toml has session.secret_key")
        .to_owned()
}

fn row(backend: &str, scenario: &str, m: &Measure, base: Option<f64>, vs: Option<f64>) -> Row {
    let r = Row {
        backend: backend.to_owned(),
        scenario: scenario.to_owned(),
        rps: m.rps,
        p50_ms: m.p50_ms,
        p99_ms: m.p99_ms,
        errors: m.errors,
        connections: m.connections,
        lg_cpu: m.cpu_share,
        bytes: m.bytes,
        vs_baseline: base.map(|b| m.rps / b),
        vs_reference: vs.map(|v| m.rps / v),
    };
    println!("{}", format_row(&r));
    r
}

fn format_row(r: &Row) -> String {
    let ratio = |x: Option<f64>| x.map_or("—".to_owned(), |x| format!("{x:.2}×"));
    format!(
        "| {:<9} | {:<34} | {:>5} | {:>9.0} | {:>7.2} | {:>7.2} | {:>8} | {:>9} | {:>6.2} | {:>5} |{}",
        r.backend,
        r.scenario,
        r.connections,
        r.rps,
        r.p50_ms,
        r.p99_ms,
        ratio(r.vs_baseline),
        ratio(r.vs_reference),
        r.lg_cpu,
        r.bytes,
        if r.errors > 0 {
            format!(" {} errors", r.errors)
        } else {
            String::new()
        }
    )
}

const HEADER: &str = "| backend   | scenario                           | conns |     req/s | p50 ms  | p99 ms  | vs base  | vs ref    | lg cpu | bytes |\n|-----------|------------------------------------|-------|-----------|---------|---------|----------|-----------|--------|-------|";

/// A job of the site only: the `write` scenario with every connection
/// sharing one session (`LG_SHARED=1`).
const ONE_VISITOR_WRITES: &str = "write, one visitor";

/// Every scenario of one backend.
///
/// All the servers of a backend are started together (an idle one costs
/// nothing) and every measurement is taken `rounds` times, round after
/// round, so the site and the reference take turns: a slow minute of a
/// shared machine then hits both, and each cell is the median of its
/// rounds.
fn run_backend(opts: &Opts, t: &Target, rows: &mut Vec<Row>) {
    let b = t.name;
    let mut site_env = t.site_env.clone();
    site_env.push(kv("APP_SESSION__BACKEND", t.backend));
    let mut ref_env = t.ref_env.clone();
    ref_env.push(kv("REF_BACKEND", t.backend));
    let with = |extra: (&str, &str)| {
        let mut env = site_env.clone();
        env.push(kv(extra.0, extra.1));
        env
    };

    // The site with the default configuration (extend on, touch 1s), its
    // extension variants, and the reference server over the same store type.
    let mut servers = vec![
        ("site", start_site(opts, &site_env)),
        (
            "touch0",
            start_site(opts, &with(("APP_SESSION__TOUCH_INTERVAL", "0s"))),
        ),
        (
            "no-extend",
            start_site(
                opts,
                &with(("APP_SESSION__EXTEND_ON_EVERY_REQUEST", "false")),
            ),
        ),
        ("ref", start_reference(opts, &ref_env)),
    ];
    let (few, many) = (opts.connections, opts.many);
    let mut jobs = vec![
        ("site", "baseline", few),
        // The reference's `/healthz/live` is a bare axum route (no layer at
        // all): what the site's outer stack is measured against.
        ("ref", "baseline", few),
        ("site", "baseline", many),
        ("ref", "baseline", many),
        ("site", "new", few),
        ("ref", "new", few),
        ("site", "read", few),
        ("ref", "read", few),
        ("site", "write", few),
        ("ref", "write", few),
        ("site", "root", few),
        ("touch0", "read", few),
        ("no-extend", "read", few),
    ];
    // Many visitors writing at once: one lock per record, so a store that
    // serializes writes to one file or one database shows it here. Then one
    // visitor writing over as many connections: every write waits for the
    // same record's lock.
    if b == "file" || b == "sqlite" {
        jobs.extend([
            ("site", "write", many),
            ("ref", "write", many),
            ("site", ONE_VISITOR_WRITES, many),
        ]);
    }
    // Where the site's cost lies, on the memory backend only: the reference
    // with the site's outer layers (request span and log, timeout, security
    // headers, body limit) but not its session layer; and the site with its
    // default request log (one info line per request).
    if b == "memory" {
        let mut env = ref_env.clone();
        env.push(kv("REF_STACK", "1"));
        servers.push(("ref+stack", start_reference(opts, &env)));
        let info = Opts {
            rust_log: "info".into(),
            ..opts.clone()
        };
        servers.push(("site-info", start_site(&info, &site_env)));
        jobs.extend([
            ("ref+stack", "baseline", few),
            ("ref+stack", "new", few),
            ("ref+stack", "read", few),
            ("ref+stack", "write", few),
            ("site-info", "read", few),
        ]);
    }

    let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); jobs.len()];
    for _ in 0..opts.rounds {
        for (job, (server, scenario, conns)) in jobs.iter().enumerate() {
            let (_, s) = servers
                .iter()
                .find(|(name, _)| name == server)
                .expect("a started server");
            let shared = [("LG_SHARED", "1".to_owned())];
            let (scenario, extra): (&str, &[(&str, String)]) = match *scenario {
                ONE_VISITOR_WRITES => ("write", &shared),
                other => (other, &[]),
            };
            runs[job].push(load_with(opts, &s.addr, scenario, *conns, extra));
        }
    }
    drop(servers);
    let m_at = |server: &str, scenario: &str, conns: usize| {
        let job = jobs
            .iter()
            .position(|j| *j == (server, scenario, conns))
            .expect("a measured job");
        median_measure(&runs[job])
    };
    let m = |server: &str, scenario: &str| m_at(server, scenario, few);

    let base = m("site", "baseline");
    let read = m("site", "read");
    let read_off = m("no-extend", "read");
    let bb = Some(base.rps);
    rows.push(row(
        b,
        "baseline /healthz/live (vs bare)",
        &base,
        bb,
        Some(m("ref", "baseline").rps),
    ));
    rows.push(row(
        b,
        "baseline, many conns (vs bare)",
        &m_at("site", "baseline", many),
        bb,
        Some(m_at("ref", "baseline", many).rps),
    ));
    rows.push(row(
        b,
        "new visitor read",
        &m("site", "new"),
        bb,
        Some(m("ref", "new").rps),
    ));
    rows.push(row(
        b,
        "read (extend, touch 1s)",
        &read,
        bb,
        Some(m("ref", "read").rps),
    ));
    rows.push(row(
        b,
        "write",
        &m("site", "write"),
        bb,
        Some(m("ref", "write").rps),
    ));
    rows.push(row(
        b,
        "root page, 10 keys (vs read)",
        &m("site", "root"),
        bb,
        Some(read.rps),
    ));
    rows.push(row(
        b,
        "read (extend, touch 0s)",
        &m("touch0", "read"),
        bb,
        Some(read_off.rps),
    ));
    rows.push(row(b, "read (no extend)", &read_off, bb, None));
    if b == "file" || b == "sqlite" {
        rows.push(row(
            b,
            "write, many visitors",
            &m_at("site", "write", many),
            bb,
            Some(m_at("ref", "write", many).rps),
        ));
        rows.push(row(
            b,
            "write, one visitor, many conns",
            &m_at("site", ONE_VISITOR_WRITES, many),
            bb,
            None,
        ));
    }
    rows.push(row(b, "ref: bare route", &m("ref", "baseline"), bb, None));
    rows.push(row(
        b,
        "ref: bare route, many conns",
        &m_at("ref", "baseline", many),
        bb,
        None,
    ));
    rows.push(row(b, "ref: new visitor read", &m("ref", "new"), bb, None));
    rows.push(row(b, "ref: read", &m("ref", "read"), bb, None));
    rows.push(row(b, "ref: write", &m("ref", "write"), bb, None));
    if b == "memory" {
        for (label, scenario) in [
            ("ref+site layers: bare (vs bare)", "baseline"),
            ("ref+site layers: new (vs ref)", "new"),
            ("ref+site layers: read (vs ref)", "read"),
            ("ref+site layers: write (vs ref)", "write"),
        ] {
            rows.push(row(
                b,
                label,
                &m("ref+stack", scenario),
                bb,
                Some(m("ref", scenario).rps),
            ));
        }
        rows.push(row(
            b,
            "read, RUST_LOG=info (vs warn)",
            &m("site-info", "read"),
            bb,
            Some(read.rps),
        ));
    }
}

/// The run with the median requests/s (its latencies come with it); errors
/// are summed over all runs, so none is hidden.
fn median_measure(runs: &[Measure]) -> Measure {
    let mut sorted: Vec<&Measure> = runs.iter().collect();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mut m = sorted[sorted.len() / 2].clone();
    m.errors = runs.iter().map(|r| r.errors).sum();
    m
}

/// Drops a backend's databases and clears its Redis prefix.
fn clean_up(rt: &tokio::runtime::Runtime, opts: &Opts, t: &Target) {
    if let Some((admin, names)) = &t.database {
        for db in names.split(',') {
            let sql = if admin.starts_with("postgres") {
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            } else {
                format!("DROP DATABASE IF EXISTS {db}")
            };
            if let Err(e) = rt.block_on(admin_sql(admin, &sql)) {
                eprintln!("  ! dropping {db}: {e}");
            }
        }
    }
    if t.name == "redis" {
        // Both prefixes: the site's and the reference's.
        let url = &t.site_env[0].1;
        for prefix in [&t.site_env[1].1, &t.ref_env[1].1] {
            let _ = Command::new(&opts.site_bin)
                .args(["sessions", "clear", "--yes"])
                .env("APP_ENV", "test")
                .env("APP_CONFIG_DIR", opts.manifest.join("config"))
                .env("RUST_LOG", "error")
                .env("APP_SESSION__BACKEND", "redis")
                .env("APP_SESSION__REDIS__URL", url)
                .env("APP_SESSION__REDIS__PREFIX", prefix)
                .stdout(Stdio::null())
                .status();
        }
    }
}

fn build_site(manifest: &Path) {
    if std::env::var_os("BENCH_NO_BUILD").is_some() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building the release binary: cargo build --release --bin websessions");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "websessions",
            "--manifest-path",
        ])
        .arg(manifest.join("Cargo.toml"))
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build --release --bin websessions failed"
    );
}

fn orchestrate() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // This binary is target/release/deps/http-…; the site's is target/release/websessions.
    let exe = std::env::current_exe().expect("own path");
    let release_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release")
        .to_path_buf();
    build_site(&manifest);
    let opts = Opts {
        seconds: env_or("BENCH_SECONDS", 1.5),
        warmup: env_or("BENCH_WARMUP", 0.5),
        connections: env_or("BENCH_CONNECTIONS", 8),
        many: env_or("BENCH_MANY", 64),
        rounds: env_or("BENCH_ROUNDS", 3usize).max(1),
        rust_log: std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        site_bin: std::env::var_os("BENCH_SITE_BIN")
            .map_or_else(|| release_dir.join("websessions"), PathBuf::from),
        manifest,
    };
    assert!(
        opts.site_bin.exists(),
        "{} is missing",
        opts.site_bin.display()
    );
    let backends = std::env::var("BENCH_BACKENDS")
        .unwrap_or_else(|_| "memory,file,sqlite,postgres,mysql,redis,memcached,cookie".into());
    let backends: Vec<&'static str> = backends
        .split(',')
        .map(|s| &*Box::leak(s.trim().to_owned().into_boxed_str()))
        .filter(|s| !s.is_empty())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let tmp =
        tempfile::tempdir_in(release_dir.parent().unwrap_or(&release_dir)).expect("a temp dir");

    println!(
        "median of {} interleaved runs of {} s per scenario (after {} s warm-up), {} keep-alive connections, RUST_LOG={} for the site and the reference",
        opts.rounds, opts.seconds, opts.warmup, opts.connections, opts.rust_log
    );
    println!("{HEADER}");
    let mut rows = Vec::new();
    for name in &backends {
        let Some(t) = target(&rt, name, tmp.path()) else {
            continue;
        };
        run_backend(&opts, &t, &mut rows);
        clean_up(&rt, &opts, &t);
    }

    let scale = if env_or("BENCH_SCALE", 1) == 1 {
        scale::run(&rt, &opts, &backends, tmp.path())
    } else {
        json!(null)
    };

    println!("\nAll rows again:\n{HEADER}");
    for r in &rows {
        println!("{}", format_row(r));
    }
    let targets = scale::targets(&rows, &scale);

    let out_dir = release_dir.parent().unwrap_or(&release_dir).join("bench");
    std::fs::create_dir_all(&out_dir).expect("target/bench");
    let machine = json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu_model(),
        "mem_total": mem_total(),
    });
    let doc = json!({
        "machine": machine,
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "seconds": opts.seconds,
        "rounds": opts.rounds,
        "warmup": opts.warmup,
        "connections": opts.connections,
        "many": opts.many,
        "rust_log": opts.rust_log,
        "rows": rows,
        "scale": scale,
        "targets": targets,
    });
    let path = out_dir.join("http.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write json");
    println!("\nwrote {}", path.display());
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default()
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default()
}
