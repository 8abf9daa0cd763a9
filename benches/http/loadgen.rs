//! The load generator: the bench binary re-executed with
//! `WS_BENCH_ROLE=loadgen`, so it runs in a process of its own, apart from
//! the server it measures.
//!
//! It opens N keep-alive HTTP/1.1 connections and drives each from one task
//! of a single-threaded tokio runtime (so it takes at most one core from the
//! server). The client is a few dozen lines over `httparse` rather than
//! hyper or reqwest: the cheaper the client, the less it steals from the
//! server on a 2-core machine, and it is the same client for the site and
//! the reference server.
//!
//! Parameters arrive as environment variables (`LG_…`); the result is one
//! JSON line on stdout. `LG_SHARED=1` gives every connection the same
//! visitor: one session, created before the clock starts.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What every connection does in its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `GET /healthz/live`: no session layer.
    Baseline,
    /// `GET /api/session/bench` without a cookie (answered 404).
    New,
    /// `GET /api/session/bench` with the connection's own session.
    Read,
    /// `PUT /api/session/bench` with the connection's own session.
    Write,
    /// `GET /` with a session of 10 keys.
    Root,
    /// `PUT /api/session/bench` without a cookie, `LG_COUNT` times in all:
    /// creates that many sessions (for the memory RSS check).
    Create,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "baseline" => Self::Baseline,
            "new" => Self::New,
            "read" => Self::Read,
            "write" => Self::Write,
            "root" => Self::Root,
            "create" => Self::Create,
            _ => return None,
        })
    }
}

/// One keep-alive connection with the visitor's cookie.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    cookie: Option<String>,
}

struct Answer {
    status: u16,
    /// Bytes of the response, head and body.
    bytes: usize,
}

const COOKIE_NAME: &str = "session_id";

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            cookie: None,
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Answer> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(c) = &self.cookie {
            req.push_str("Cookie: ");
            req.push_str(COOKIE_NAME);
            req.push('=');
            req.push_str(c);
            req.push_str("\r\n");
        }
        match body {
            Some(b) => {
                req.push_str("Content-Type: application/json\r\nContent-Length: ");
                req.push_str(&b.len().to_string());
                req.push_str("\r\n\r\n");
                req.push_str(b);
            }
            None => req.push_str("\r\n"),
        }
        self.stream.write_all(req.as_bytes()).await?;
        self.read_response().await
    }

    /// Reads one response; keeps the session cookie up to date.
    async fn read_response(&mut self) -> std::io::Result<Answer> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            match res.parse(&self.buf).map_err(std::io::Error::other)? {
                httparse::Status::Complete(head_len) => {
                    let status = res.code.unwrap_or(0);
                    let mut length = None;
                    let mut chunked = false;
                    for h in res.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = h.value.eq_ignore_ascii_case(b"chunked");
                        } else if h.name.eq_ignore_ascii_case("set-cookie") {
                            if let Some(v) = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.split(';').next())
                                .and_then(|v| v.split_once('='))
                                .filter(|(n, _)| n.trim() == COOKIE_NAME)
                                .map(|(_, v)| v.trim().to_owned())
                            {
                                self.cookie = (!v.is_empty()).then_some(v);
                            }
                        }
                    }
                    self.buf.drain(..head_len);
                    let body = if chunked {
                        self.skip_chunked().await?
                    } else {
                        let n = length.unwrap_or(0);
                        self.fill(n).await?;
                        self.buf.drain(..n);
                        n
                    };
                    return Ok(Answer {
                        status,
                        bytes: head_len + body,
                    });
                }
                httparse::Status::Partial => self.more().await?,
            }
        }
    }

    async fn more(&mut self) -> std::io::Result<()> {
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn fill(&mut self, n: usize) -> std::io::Result<()> {
        while self.buf.len() < n {
            self.more().await?;
        }
        Ok(())
    }

    /// Skips a chunked body; returns its bytes on the wire.
    async fn skip_chunked(&mut self) -> std::io::Result<usize> {
        let mut wire = 0;
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                self.more().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[..line_end]).unwrap_or("0");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
                .map_err(std::io::Error::other)?;
            self.buf.drain(..line_end + 2);
            self.fill(size + 2).await?;
            self.buf.drain(..size + 2);
            wire += line_end + 2 + size + 2;
            if size == 0 {
                return Ok(wire);
            }
        }
    }
}

/// Prepares one connection's visitor, then returns the request to repeat.
async fn prepare(
    conn: &mut Conn,
    scenario: Scenario,
    cookie: Option<String>,
) -> std::io::Result<()> {
    if let Some(c) = cookie {
        conn.cookie = Some(c);
        return Ok(());
    }
    match scenario {
        Scenario::Read | Scenario::Write => {
            let a = conn
                .send("PUT", "/api/session/bench", Some("\"value\""))
                .await?;
            expect(a.status, 200, "PUT to create the session")?;
        }
        Scenario::Root => {
            for i in 0..10 {
                let a = conn
                    .send(
                        "PUT",
                        &format!("/api/session/key{i}"),
                        Some(&format!("\"value {i}\"")),
                    )
                    .await?;
                expect(a.status, 200, "PUT of the 10 keys")?;
            }
        }
        _ => {}
    }
    if matches!(scenario, Scenario::Read | Scenario::Write | Scenario::Root)
        && conn.cookie.is_none()
    {
        return Err(std::io::Error::other("the server sent no session cookie"));
    }
    Ok(())
}

fn expect(got: u16, want: u16, what: &str) -> std::io::Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{what}: status {got}, expected {want}"
        )))
    }
}

/// The status a healthy server answers in this scenario.
fn expected_status(scenario: Scenario) -> u16 {
    match scenario {
        Scenario::New => 404,
        _ => 200,
    }
}

async fn one(conn: &mut Conn, scenario: Scenario, i: u64) -> std::io::Result<Answer> {
    match scenario {
        Scenario::Baseline => conn.send("GET", "/healthz/live", None).await,
        Scenario::New => {
            conn.cookie = None;
            conn.send("GET", "/api/session/bench", None).await
        }
        Scenario::Read => conn.send("GET", "/api/session/bench", None).await,
        Scenario::Write => {
            conn.send("PUT", "/api/session/bench", Some(&format!("{{\"n\":{i}}}")))
                .await
        }
        Scenario::Root => conn.send("GET", "/", None).await,
        Scenario::Create => {
            conn.cookie = None;
            conn.send("PUT", "/api/session/bench", Some("\"small\""))
                .await
        }
    }
}

struct Tally {
    latencies_us: Vec<u32>,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
}

pub fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let addr = var("LG_ADDR");
    let scenario = Scenario::parse(&var("LG_SCENARIO")).expect("LG_SCENARIO");
    let connections: usize = var("LG_CONNECTIONS").parse().unwrap_or(8);
    let seconds: f64 = var("LG_SECONDS").parse().unwrap_or(3.0);
    let warmup: f64 = var("LG_WARMUP").parse().unwrap_or(0.5);
    let count: u64 = var("LG_COUNT").parse().unwrap_or(0);
    let mut cookies: Vec<String> = var("LG_COOKIES")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if var("LG_SHARED") == "1" && cookies.is_empty() {
        let shared = rt.block_on(async {
            let mut conn = Conn::open(&addr).await?;
            prepare(&mut conn, Scenario::Write, None).await?;
            Ok::<_, std::io::Error>(conn.cookie)
        });
        cookies.extend(shared.expect("a shared session"));
    }
    let result = rt.block_on(async move {
        let per_conn = count.div_ceil(connections as u64);
        let mut tasks = Vec::new();
        // Everyone prepares first; the clock starts once all are ready.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(connections + 1));
        let start_at = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
        for c in 0..connections {
            let addr = addr.clone();
            let cookie = (!cookies.is_empty()).then(|| cookies[c % cookies.len()].clone());
            let barrier = barrier.clone();
            let start_at = start_at.clone();
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally {
                    latencies_us: Vec::with_capacity(200_000),
                    bytes: 0,
                    errors: 0,
                    first_error: None,
                };
                let mut conn = match Conn::open(&addr).await {
                    Ok(conn) => Some(conn),
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error = Some(format!("connect: {e}"));
                        None
                    }
                };
                if let Some(c) = conn.as_mut() {
                    if let Err(e) = prepare(c, scenario, cookie).await {
                        tally.errors += 1;
                        tally.first_error = Some(format!("prepare: {e}"));
                        conn = None;
                    }
                }
                barrier.wait().await;
                let Some(mut conn) = conn else { return tally };
                let t0 = *start_at.get().expect("start time set");
                let measure_from = t0 + Duration::from_secs_f64(warmup);
                let end = measure_from + Duration::from_secs_f64(seconds);
                let mut i = 0u64;
                loop {
                    let sent = Instant::now();
                    if scenario == Scenario::Create {
                        if i >= per_conn {
                            break;
                        }
                    } else if sent >= end {
                        break;
                    }
                    match one(&mut conn, scenario, i).await {
                        Ok(a) => {
                            if a.status != expected_status(scenario) {
                                tally.errors += 1;
                                tally
                                    .first_error
                                    .get_or_insert_with(|| format!("status {}", a.status));
                            } else if scenario == Scenario::Create || sent >= measure_from {
                                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX));
                                tally.latencies_us.push(us as u32);
                                tally.bytes += a.bytes as u64;
                            }
                        }
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert_with(|| format!("{e}"));
                            match Conn::open(&addr).await {
                                Ok(mut fresh) => {
                                    fresh.cookie = conn.cookie.take();
                                    conn = fresh;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    i += 1;
                }
                tally
            }));
        }
        let _ = start_at.set(Instant::now());
        barrier.wait().await;
        let began = Instant::now();
        let cpu_before = own_cpu_seconds();
        let mut all = Vec::new();
        let mut bytes = 0;
        let mut errors = 0;
        let mut first_error = None;
        for t in tasks {
            let tally = t.await.expect("a connection task");
            all.extend(tally.latencies_us);
            bytes += tally.bytes;
            errors += tally.errors;
            if first_error.is_none() {
                first_error = tally.first_error;
            }
        }
        let elapsed = began.elapsed().as_secs_f64();
        let cpu = own_cpu_seconds() - cpu_before;
        (all, bytes, errors, first_error, elapsed, cpu)
    });
    let (mut lat, bytes, errors, first_error, elapsed, cpu) = result;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    let rps = if scenario == Scenario::Create {
        lat.len() as f64 / elapsed
    } else {
        lat.len() as f64 / seconds
    };
    let out = json!({
        "requests": lat.len(),
        "rps": rps,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
        "first_error": first_error,
        // The share of one core the generator itself used (warm-up
        // included): near 1.0 it, not the server, sets the pace.
        "cpu_share": cpu / elapsed,
        "bytes_per_response": if lat.is_empty() { 0 } else { bytes / lat.len() as u64 },
    });
    println!("{out}");
}

/// CPU seconds (user + system) this process has used, from
/// `/proc/self/stat`; 0 where that file does not exist.
fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, in parentheses):
    // utime and stime are the 12th and 13th, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}
