//! No instruction goes stale: every shell command shown in README.md and
//! docs/**/*.md is checked here, and every `config/default.toml` key carries
//! a comment, and every command of the CLI has its help.
//!
//! For each line of a ```sh block (continuations joined, comments dropped):
//! - `websessions …` and `cargo run [-- …]` are parsed by the real CLI
//!   (`Cli::try_parse_from`), their subcommand's `--help` runs through the
//!   built binary, and `config` runs with the line's environment (so every
//!   `APP_…` variable shown must load). The safe commands — `config`,
//!   `keygen`, `migrate`, `sessions …` — run for real when the backend needs
//!   no server: `APP_ENV=test` unless the docs set it, a temp dir for the
//!   file store and SQLite.
//! - `cargo test …` is the test command `.ci/run` runs.
//! - Anything else must appear, as written, in `.ci/run`, or be listed in
//!   `NOT_RUN` below with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::{CommandFactory, Parser};
use websessions::cli::Cli;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_websessions");

/// Lines shown in the docs that no test or CI step runs, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "apt-get install -y postgresql mariadb-server",
        "installs system packages; .ci/run expects the servers present and starts them",
    ),
    (
        "apt-get install -y redis-server",
        "installs system packages; .ci/run expects redis-server present and starts it",
    ),
    (
        "apt-get install -y memcached",
        ".ci/run installs memcached (with chromium and chromium-driver) when missing",
    ),
    (
        "cargo bench --bench http",
        "builds the release binary and loads the site for minutes; run by hand, results in docs/PERFORMANCE.md",
    ),
    (
        "cargo bench --bench micro",
        "criterion micro-benchmarks: an optimised build and minutes of measuring; run by hand, results in docs/PERFORMANCE.md",
    ),
    (
        "cargo install --path .",
        "installs the binary into ~/.cargo/bin; a full release build, run by hand",
    ),
    (
        "cd myapp",
        "a directory change after `cargo generate`; .ci/run builds the generated project in place",
    ),
];

/// `K=V` pairs, in order.
type Env = Vec<(String, String)>;

#[derive(Debug)]
struct DocLine {
    file: String,
    line: usize,
    text: String,
    /// `export`ed earlier in the same block.
    exported: Env,
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(ROOT).join("README.md")];
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    walk(&PathBuf::from(ROOT).join("docs"), &mut files);
    files
}

/// Splits a shell line into words (single and double quotes, no expansion
/// except `$(websessions keygen)`, which the caller substitutes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for c in line.chars() {
        match quote {
            Some(q) if c == q && depth == 0 => quote = None,
            Some(_) => {
                if c == '(' {
                    depth += 1;
                } else if c == ')' {
                    depth -= 1;
                }
                cur.push(c);
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Drops a trailing `# comment` (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return line[..i].trim_end(),
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

fn normalize(s: &str) -> String {
    s.replace("\\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_lines() -> Vec<DocLine> {
    let mut out = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path
            .strip_prefix(ROOT)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut in_block = false;
        let mut exported: Env = Vec::new();
        let mut pending = String::new();
        let mut start = 0;
        for (n, raw) in text.lines().enumerate() {
            let trimmed = raw.trim_start();
            if let Some(info) = trimmed.strip_prefix("```") {
                if in_block {
                    in_block = false;
                } else {
                    let info = info.trim();
                    assert!(
                        !matches!(info, "bash" | "shell" | "console" | "zsh"),
                        "{file}:{}: write shell blocks as ```sh so this test sees them",
                        n + 1
                    );
                    in_block = info == "sh";
                    exported.clear();
                }
                continue;
            }
            if !in_block {
                continue;
            }
            if pending.is_empty() {
                start = n + 1;
            }
            if let Some(head) = raw.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(raw);
            let line = strip_comment(pending.trim()).to_owned();
            pending.clear();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("export ") {
                let (k, v) = rest.split_once('=').expect("export K=V");
                let v = words(v).concat();
                exported.push((k.to_owned(), v));
            }
            out.push(DocLine {
                file: file.clone(),
                line: start,
                text: line,
                exported: exported.clone(),
            });
        }
    }
    out
}

fn keygen() -> String {
    let out = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `$(websessions keygen)` or `$(cargo run -q -- keygen)`: a real key.
fn expand(value: &str) -> String {
    if value.starts_with("$(") && value.contains("keygen") {
        keygen()
    } else {
        value.to_owned()
    }
}

/// The CLI arguments of a `websessions …` / `cargo run …` line, and its
/// leading `K=V` environment; `None` for other commands.
fn cli_args(words: &[String]) -> Option<(Env, Vec<String>)> {
    let mut env = Vec::new();
    let mut i = 0;
    while i < words.len() {
        match words[i].split_once('=') {
            Some((k, v)) if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                env.push((k.to_owned(), expand(v)));
                i += 1;
            }
            _ => break,
        }
    }
    let rest = &words[i..];
    match rest.first().map(String::as_str) {
        Some("websessions") => Some((env, rest[1..].to_vec())),
        Some("cargo") if rest.get(1).map(String::as_str) == Some("run") => {
            let args = match rest.iter().position(|w| w == "--") {
                Some(p) => rest[p + 1..].to_vec(),
                None => {
                    assert!(
                        rest[2..].iter().all(|w| w == "-q" || w == "--release"),
                        "unexpected cargo run flags: {rest:?}"
                    );
                    Vec::new()
                }
            };
            Some((env, args))
        }
        _ => None,
    }
}

/// Runs the built binary the way a reader would, in a sandbox: the repo's
/// `config/`, `APP_ENV=test` unless set, stores under `tmp`.
fn run(args: &[String], env: &BTreeMap<String, String>, tmp: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", format!("{ROOT}/config"))
        .env("APP_SESSION__FILE__DIR", tmp.join("sessions"))
        .env(
            "APP_SESSION__DATABASE__URL",
            format!("sqlite://{}", tmp.join("sessions.db").display()),
        )
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run websessions")
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Can this environment run without a server? (File, memory, cookie, or the
/// database on SQLite, which is moved into the temp dir.)
fn needs_no_server(env: &mut BTreeMap<String, String>, tmp: &Path) -> bool {
    let backend = env
        .get("APP_SESSION__BACKEND")
        .cloned()
        .unwrap_or_else(|| "file".into());
    match backend.as_str() {
        "file" | "memory" | "cookie" => true,
        "database" => match env.get("APP_SESSION__DATABASE__URL") {
            None => true,
            Some(url) if url.starts_with("sqlite:") => {
                env.insert(
                    "APP_SESSION__DATABASE__URL".into(),
                    format!("sqlite://{}", tmp.join("docs.db").display()),
                );
                true
            }
            Some(_) => false,
        },
        _ => false,
    }
}

fn check_cli(line: &DocLine, env: Env, args: Vec<String>) {
    let at = format!("{}:{}: `{}`", line.file, line.line, line.text);
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{at}\n{}", show(&out));
        return;
    }
    // 1. The real parser accepts it.
    let mut argv = vec!["websessions".to_owned()];
    argv.extend(args.iter().cloned());
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{at}: does not parse:\n{e}"));
    // 2. Its subcommand's help runs.
    let sub: Vec<String> = args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let mut help = sub.clone();
    help.push("--help".into());
    let out = Command::new(BIN).args(&help).output().unwrap();
    assert!(out.status.success(), "{at}: `--help`\n{}", show(&out));

    // 3. Its environment loads (`websessions config`), and the safe
    //    commands run for real.
    let tmp = tempfile::tempdir().unwrap();
    let mut env: BTreeMap<String, String> = line
        .exported
        .iter()
        .map(|(k, v)| (k.clone(), expand(v)))
        .chain(env)
        .collect();
    let local = needs_no_server(&mut env, tmp.path());
    let out = run(&["config".into()], &env, tmp.path());
    assert!(
        out.status.success(),
        "{at}: its configuration does not load\n{}",
        show(&out)
    );
    use websessions::cli::{Command as C, SessionsCommand as S};
    let safe = match &cli.command {
        Some(C::Config | C::Keygen) => true,
        Some(C::Migrate | C::Sessions { .. }) => local,
        Some(C::Serve { .. }) | None => false,
    };
    if safe {
        let out = run(&args, &env, tmp.path());
        assert!(out.status.success(), "{at}\n{}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.trim().is_empty(), "{at}: printed nothing");
        if let Some(C::Sessions {
            action: S::Clear { yes: false },
        }) = &cli.command
        {
            panic!("{at}: `sessions clear` needs --yes");
        }
    }
}

/// The JSON routes (DESIGN's table, mounted in `src/routes/`) a `curl` line
/// may call, as (method, path pattern); `{key}` matches one path segment.
const JSON_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/session"),
    ("DELETE", "/api/session"),
    ("GET", "/api/session/{key}"),
    ("PUT", "/api/session/{key}"),
    ("DELETE", "/api/session/{key}"),
    ("POST", "/api/session/save"),
    ("POST", "/api/session/cycle"),
    ("GET", "/api/session/expiry"),
    ("GET", "/healthz"),
    ("GET", "/healthz/live"),
    ("GET", "/metrics"),
];

/// A `curl` line names a route of the site with its method, on the address
/// `cargo run` serves, and keeps the session in a cookie jar when it calls
/// the session API.
fn check_curl(at: &str, cmd: &[&str]) {
    let mut method = "GET";
    let mut url = None;
    let mut jar = false;
    let mut i = 1;
    while i < cmd.len() {
        match cmd[i] {
            "-X" => {
                method = cmd[i + 1];
                i += 1;
            }
            "-c" | "-b" => {
                jar = true;
                i += 1;
            }
            "-H" | "-d" | "--data" | "-o" => i += 1,
            w if w.starts_with("http://") => url = Some(w),
            _ => {}
        }
        i += 1;
    }
    let url = url.unwrap_or_else(|| panic!("{at}: no http:// URL"));
    let path = url
        .strip_prefix("http://127.0.0.1:8080")
        .unwrap_or_else(|| panic!("{at}: not the address `cargo run` serves"));
    let path = path.split('?').next().unwrap_or(path);
    let matches = |pattern: &str| {
        let (p, q): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
        p.len() == q.len()
            && p.iter()
                .zip(&q)
                .all(|(p, q)| p == q || (*p == "{key}" && !q.is_empty()))
    };
    // A literal route wins over `{key}`, as in the router.
    let route = JSON_ROUTES
        .iter()
        .filter(|(_, p)| matches(p))
        .min_by_key(|(_, p)| p.contains('{'))
        .unwrap_or_else(|| panic!("{at}: {path} is not a route of the site"));
    let allowed: Vec<_> = JSON_ROUTES
        .iter()
        .filter(|(_, p)| *p == route.1)
        .map(|(m, _)| *m)
        .collect();
    assert!(
        allowed.contains(&method),
        "{at}: {method} {path} is not routed (only {allowed:?})"
    );
    if path.starts_with("/api/") {
        assert!(jar, "{at}: the session API needs a cookie jar (-c/-b)");
    }
    println!("curl     {at}");
}

#[test]
fn every_command_in_the_docs_runs() {
    let ci = normalize(&std::fs::read_to_string(format!("{ROOT}/.ci/run")).unwrap());
    let lines = shell_lines();
    assert!(lines.len() > 20, "found only {} shell lines", lines.len());
    let mut checked = 0;
    for line in &lines {
        let at = format!("{}:{}: `{}`", line.file, line.line, line.text);
        if line.text.starts_with("export ") {
            let norm = normalize(&line.text);
            if norm.starts_with("export TEST_") {
                assert!(ci.contains(&norm), "{at}: not what .ci/run sets");
            }
            // Other exports are the environment of the block's next commands.
            continue;
        }
        let w = words(&line.text);
        if let Some((env, args)) = cli_args(&w) {
            println!("cli      {at}");
            check_cli(line, env, args);
            checked += 1;
            continue;
        }
        let norm = normalize(&line.text);
        let cmd: Vec<&str> = w
            .iter()
            .map(String::as_str)
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .collect();
        if cmd.starts_with(&["cargo", "test"]) {
            assert!(
                ci.contains("cargo test"),
                "{at}: .ci/run runs no cargo test"
            );
            continue;
        }
        if cmd.starts_with(&["cargo", "generate", "--path"]) {
            assert!(
                ci.contains("cargo generate --path") && ci.contains("--name"),
                "{at}: .ci/run does not generate a project"
            );
            continue;
        }
        if cmd.first() == Some(&"curl") {
            check_curl(&at, &cmd);
            continue;
        }
        if ci.contains(&norm) {
            println!(".ci/run  {at}");
            continue;
        }
        assert!(
            NOT_RUN.iter().any(|(l, _)| *l == norm),
            "{at}: neither run by this test nor found in .ci/run; run it somewhere or list it in NOT_RUN with a reason"
        );
    }
    assert!(checked >= 10, "only {checked} CLI lines found");
    // Every exemption is still in the docs (no dead entries).
    for (l, _) in NOT_RUN {
        assert!(
            lines.iter().any(|d| normalize(&d.text) == *l),
            "NOT_RUN lists `{l}`, which no page shows any more"
        );
    }
}

#[test]
fn every_default_config_key_has_a_comment() {
    let text = std::fs::read_to_string(format!("{ROOT}/config/default.toml")).unwrap();
    let mut keys = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (key, rest) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("default.toml:{}: not `key = value`", n + 1));
        keys += 1;
        // The comment follows the value, outside any string.
        let comment = strip_comment(rest).len() < rest.trim_end().len();
        assert!(
            comment,
            "default.toml:{}: `{}` has no comment",
            n + 1,
            key.trim()
        );
    }
    // Every key the program knows is in default.toml: compare with the
    // effective configuration the binary prints.
    let out = Command::new(BIN)
        .arg("config")
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", format!("{ROOT}/config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_owned()))
        .filter(|k| k.contains('.'))
        .collect();
    let parsed: toml::Table = text.parse().unwrap();
    for key in &printed {
        let mut node = toml::Value::Table(parsed.clone());
        for part in key.split('.') {
            node = node
                .get(part)
                .cloned()
                .unwrap_or_else(|| panic!("`{key}` is a setting but not in default.toml"));
        }
    }
    assert!(keys >= printed.len() && keys > 20, "{keys} keys");
}

#[test]
fn every_command_and_argument_has_help() {
    fn walk(cmd: &clap::Command, path: &str) {
        println!("help     {path} {}", cmd.get_name());
        let here = format!("{path} {}", cmd.get_name());
        assert!(
            cmd.get_about().is_some_and(|a| !a.to_string().is_empty()),
            "`{here}` has no help text"
        );
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(
                arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                "`{here} --{id}` has no help text"
            );
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                walk(sub, &here);
            }
        }
    }
    let cli = Cli::command();
    cli.clone().debug_assert();
    walk(&cli, "");
    // And the binary prints it.
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["sessions", "--help"],
        &["sessions", "stats", "--help"],
        &["sessions", "purge-expired", "--help"],
        &["sessions", "clear", "--help"],
        &["config", "--help"],
        &["keygen", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}\n{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let top = Command::new(BIN).arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    for sub in ["serve", "migrate", "sessions", "config", "keygen"] {
        assert!(
            top.contains(sub),
            "`websessions --help` does not list {sub}"
        );
    }
}
