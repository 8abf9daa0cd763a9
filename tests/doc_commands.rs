//! No instruction goes stale: what README.md and docs/**/*.md show is
//! checked here against the code.
//!
//! - Shell commands (below). `config/default.toml` keys carry comments; every
//!   command of the CLI has its help.
//! - Every ```toml snippet loads merged into the config file it names
//!   (`every_toml_snippet_loads_merged_into_its_file`).
//! - Every route named is mounted by the router, with its method
//!   (`every_route_in_the_docs_is_routed`); every configuration key, table
//!   and `APP_…` variable named exists, and `key = value` spans hold values
//!   the settings accept (`every_config_key_in_the_docs_exists`).
//! - Every metric named is served by `GET /metrics`, every metric served is
//!   described, with its store operations (`every_metric_in_the_docs_is_served`).
//! - Every file of the repository named exists
//!   (`every_file_named_in_the_docs_exists`).
//! - Every relative link and image resolves, anchors included
//!   (`every_link_in_the_docs_resolves`).
//! - Rust snippets are quotes that are still in their file, or new code
//!   whose names exist (`every_rust_snippet_names_what_exists`); and the
//!   tutorial's page, applied to a copy of the crate as written, builds and
//!   works (`the_tutorial_page_builds_and_works`).
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
//! - `curl` lines call a route the router mounts, with its method.
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
    let routes = router_routes();
    let (methods, pattern) = route_for(&routes, path)
        .unwrap_or_else(|| panic!("{at}: {path} is not a route of the site"));
    assert!(
        methods.iter().any(|m| m == method),
        "{at}: {method} {path} is not routed ({pattern} has {methods:?})"
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

// ---------------------------------------------------------------------
// Snippets, routes, keys and code named in the docs.
// ---------------------------------------------------------------------

/// A fenced block of a page, with the prose just above it.
#[derive(Debug)]
struct Block {
    file: String,
    line: usize,
    lang: String,
    text: String,
    /// The lines between the previous block or heading and this block.
    before: String,
}

/// One page: its fenced blocks, and its prose outside fences (paragraphs,
/// list items and table rows, each with its first line and the heading it
/// sits under).
struct Page {
    file: String,
    blocks: Vec<Block>,
    prose: Vec<(usize, String, String)>,
}

fn pages() -> Vec<Page> {
    doc_files()
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = path
                .strip_prefix(ROOT)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut page = Page {
                file: file.clone(),
                blocks: Vec::new(),
                prose: Vec::new(),
            };
            let mut open: Option<(usize, String, String)> = None;
            let mut before = String::new();
            let mut heading = String::new();
            for (n, line) in text.lines().enumerate() {
                let fence = line.trim_start().strip_prefix("```");
                match (&mut open, fence) {
                    (Some((start, lang, body)), Some(_)) => {
                        page.blocks.push(Block {
                            file: file.clone(),
                            line: *start,
                            lang: std::mem::take(lang),
                            text: std::mem::take(body),
                            before: std::mem::take(&mut before),
                        });
                        open = None;
                    }
                    (Some((_, _, body)), None) => {
                        body.push_str(line);
                        body.push('\n');
                    }
                    (None, Some(info)) => {
                        open = Some((n + 1, info.trim().to_owned(), String::new()))
                    }
                    (None, None) => {
                        if line.starts_with('#') {
                            heading = line.trim_start_matches('#').trim().to_owned();
                            before.clear();
                        } else {
                            before.push_str(line);
                            before.push('\n');
                        }
                        // A paragraph is one entry (a code span may wrap), a
                        // table row too.
                        let continues = !line.trim().is_empty()
                            && !line.starts_with('|')
                            && !line.starts_with('#')
                            && !line.trim_start().starts_with(['*', '-'])
                            && page.prose.last().is_some_and(|(_, _, p)| {
                                !p.is_empty() && !p.starts_with('|') && !p.starts_with('#')
                            });
                        match page.prose.last_mut() {
                            Some((_, _, p)) if continues => {
                                p.push(' ');
                                p.push_str(line.trim());
                            }
                            _ => page.prose.push((n + 1, heading.clone(), line.to_owned())),
                        }
                    }
                }
            }
            assert!(open.is_none(), "{file}: a fence is never closed");
            page
        })
        .collect()
}

/// The `code spans` of a prose line. In the Beaker table, the first
/// column is Beaker's vocabulary, not this project's, and is left out.
fn code_spans(heading: &str, line: &str) -> Vec<String> {
    let line = if heading.contains("Beaker") && line.starts_with('|') {
        line.trim_start_matches('|')
            .split_once('|')
            .map_or("", |(_, rest)| rest)
    } else {
        line
    };
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn default_toml() -> toml::Table {
    std::fs::read_to_string(format!("{ROOT}/config/default.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

/// The value at a dotted path of a table, if any.
fn lookup<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut node = table.get(parts.next()?)?;
    for part in parts {
        node = node.as_table()?.get(part)?;
    }
    Some(node)
}

/// Sets the value at a dotted path whose tables exist.
fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let (tables, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let mut node = table;
    for part in tables.split('.').filter(|p| !p.is_empty()) {
        node = node.get_mut(part).unwrap().as_table_mut().unwrap();
    }
    node.insert(leaf.into(), value);
}

/// Every dotted key path of a table (tables included).
fn key_paths(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let path = format!("{prefix}{k}");
        if let toml::Value::Table(t) = v {
            key_paths(t, &format!("{path}."), out);
        }
        out.push(path);
    }
}

/// Copies `config/` into a temp dir, where a snippet can be merged.
fn config_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(format!("{ROOT}/config")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    tmp
}

/// Loads settings from `dir` the way the binary does (no environment), with
/// a fresh key for production, which refuses the development one.
fn load_from(dir: &Path, profile: &str) -> Result<websessions::config::Loaded, String> {
    use websessions::config::{LoadOptions, load};
    let mut options = LoadOptions::profile_in(profile, dir);
    if profile == "production" {
        options
            .overrides
            .push(("session.secret_key".into(), keygen()));
    }
    load(&options).map_err(|e| e.to_string())
}

/// Every ```toml block of README.md and docs/ is what a reader pastes into
/// a config file, so it must work there:
/// - the file is the `config/NAME.toml` named last in the prose just above
///   the block (or in a `# config/NAME.toml` first line);
/// - prose that says the file "becomes" the block shows the whole file: it
///   must keep every key the file has (a value saying "unchanged" stands
///   for the file's own);
/// - otherwise the block is appended to the file, which must still parse (a
///   second `[session]` header is TOML's duplicate-key error);
/// - a block that names no file is merged into `config/default.toml`'s
///   tables, and every key it sets must already be there;
/// - then the configuration loads through `websessions::config::load` (keys,
///   types and the rules between keys), in that file's profile.
#[test]
fn every_toml_snippet_loads_merged_into_its_file() {
    let mut checked = 0;
    for page in pages() {
        for block in page.blocks.iter().filter(|b| b.lang == "toml") {
            let at = format!("{}:{}", block.file, block.line);
            let config_names = |text: &str| -> Vec<String> {
                text.match_indices("config/")
                    .filter_map(|(i, _)| {
                        let name: String = text[i + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                            .collect();
                        name.strip_suffix(".toml").map(str::to_owned)
                    })
                    .collect()
            };
            let first = block.text.lines().next().unwrap_or("");
            let named = if first.starts_with('#') {
                config_names(first).pop()
            } else {
                None
            }
            .or_else(|| config_names(&block.before).pop());
            let tmp = config_copy();
            let profile = match &named {
                Some(name) => {
                    let path = format!("{ROOT}/config/{name}.toml");
                    let original = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                        panic!("{at}: names config/{name}.toml, which does not exist")
                    });
                    let merged = if block.before.contains("becomes") {
                        let orig: toml::Table = original.parse().unwrap();
                        let mut whole: toml::Table = block
                            .text
                            .parse()
                            .unwrap_or_else(|e| panic!("{at}: not TOML: {e}"));
                        let mut keys = Vec::new();
                        key_paths(&orig, "", &mut keys);
                        for key in keys {
                            let kept = lookup(&whole, &key).cloned();
                            let kept = kept.unwrap_or_else(|| {
                                panic!(
                                    "{at}: shows the whole of config/{name}.toml but drops `{key}`"
                                )
                            });
                            if kept.as_str().is_some_and(|s| s.contains("unchanged")) {
                                set_path(&mut whole, &key, lookup(&orig, &key).unwrap().clone());
                            }
                        }
                        toml::to_string(&whole).unwrap()
                    } else {
                        format!("{original}\n{}", block.text)
                    };
                    merged.parse::<toml::Table>().unwrap_or_else(|e| {
                        panic!("{at}: merged into config/{name}.toml it does not parse:\n{e}")
                    });
                    std::fs::write(tmp.path().join(format!("{name}.toml")), merged).unwrap();
                    if name == "default" {
                        "development".to_owned()
                    } else {
                        name.clone()
                    }
                }
                None => {
                    let mut default = default_toml();
                    let snippet: toml::Table = block
                        .text
                        .parse()
                        .unwrap_or_else(|e| panic!("{at}: not TOML: {e}"));
                    let mut keys = Vec::new();
                    key_paths(&snippet, "", &mut keys);
                    for key in keys {
                        let value = lookup(&snippet, &key).unwrap();
                        let known = lookup(&default, &key).unwrap_or_else(|| {
                            panic!("{at}: `{key}` is not in config/default.toml")
                        });
                        assert_eq!(known.type_str(), value.type_str(), "{at}: `{key}`");
                        if !value.is_table() {
                            set_path(&mut default, &key, value.clone());
                        }
                    }
                    std::fs::write(
                        tmp.path().join("default.toml"),
                        toml::to_string(&default).unwrap(),
                    )
                    .unwrap();
                    "development".to_owned()
                }
            };
            if let Err(e) = load_from(tmp.path(), &profile) {
                panic!(
                    "{at}: merged into {named:?}, the `{profile}` configuration does not load: {e}"
                );
            }
            println!("toml     {at} -> {named:?} ({profile})");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} toml snippets");
}

/// The routes of the site as `src/routes/` mounts them: every
/// `.route("PATH", get(..).post(..))` call, as (methods, path).
/// `every_route_in_the_docs_is_routed` proves this reading against the
/// running router.
fn router_routes() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(format!("{ROOT}/src/routes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        for (i, _) in src.match_indices(".route(") {
            let rest = &src[i + ".route(".len()..];
            let rest = rest.trim_start();
            let rest = rest.strip_prefix('"').expect("a route path literal");
            let (path, rest) = rest.split_once('"').unwrap();
            // The method chain, up to the `)` that closes `.route(`.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .expect("the end of .route(")
                .0;
            let chain = &rest[..end];
            let methods: Vec<String> = ["get", "post", "put", "delete", "patch"]
                .iter()
                .filter(|m| {
                    chain.match_indices(&format!("{m}(")).any(|(j, _)| {
                        j == 0 || !chain[..j].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
                .map(|m| m.to_ascii_uppercase())
                .collect();
            assert!(
                !methods.is_empty(),
                "{}: no method for {path}",
                file.display()
            );
            out.push((methods, path.to_owned()));
        }
    }
    out
}

/// The route a concrete path takes, as the router picks it: a literal
/// segment wins over `{param}`.
fn route_for<'a>(
    routes: &'a [(Vec<String>, String)],
    path: &str,
) -> Option<&'a (Vec<String>, String)> {
    let q: Vec<_> = path.split('/').collect();
    routes
        .iter()
        .filter(|(_, pattern)| {
            let p: Vec<_> = pattern.split('/').collect();
            p.len() == q.len()
                && p.iter()
                    .zip(&q)
                    .all(|(p, q)| p == q || (p.starts_with('{') && !q.is_empty()))
        })
        .min_by_key(|(_, p)| p.matches('{').count())
}

/// Paths in the docs that are not routes of the site, and why.
const NOT_ROUTES: &[(&str, &str)] = &[(
    "/notes",
    "the page docs/TUTORIAL.md walks the reader through adding",
)];

/// Filesystem paths start with one of these; routes never do.
const FS_ROOTS: &[&str] = &[
    "usr", "tmp", "proc", "etc", "var", "home", "dev", "opt", "bin",
];

/// A route named in the docs: `METHOD /path`, `/path`, `/path?query`, or a
/// prefix ending in `*` (`/session/*`).
fn route_mentions() -> Vec<(String, Option<String>, String)> {
    let mut out = Vec::new();
    let mut push = |at: String, text: &str| {
        let text = text.trim().trim_end_matches(['.', ',', ':', ';']);
        let (method, path) = match text.split_once(' ') {
            Some((m, p)) if m.chars().all(|c| c.is_ascii_uppercase()) && p.starts_with('/') => {
                (Some(m.to_owned()), p)
            }
            _ => (None, text),
        };
        if !path.starts_with('/') || path.contains(' ') {
            return;
        }
        let first = path[1..].split('/').next().unwrap_or("");
        if FS_ROOTS.contains(&first) {
            return;
        }
        let path = path.split('?').next().unwrap();
        out.push((at, method, path.to_owned()));
    };
    for page in pages() {
        for (line, heading, text) in &page.prose {
            for span in code_spans(heading, text) {
                push(format!("{}:{line}", page.file), &span);
            }
        }
        // The architecture diagram labels its arrows with routes.
        for block in page.blocks.iter().filter(|b| b.lang == "mermaid") {
            for (n, text) in block.text.lines().enumerate() {
                for label in text.split('"').skip(1).step_by(2) {
                    for part in label.split(", ") {
                        for word in part.split(['(', ')']) {
                            push(format!("{}:{}", page.file, block.line + 1 + n), word);
                        }
                    }
                }
            }
        }
    }
    out
}

/// The real app, on the memory backend of the test profile, on a free port.
async fn serve_site() -> (String, tokio_util::sync::CancellationToken) {
    let dir = PathBuf::from(ROOT).join("config");
    let mut settings = load_from(&dir, "test").unwrap().settings;
    settings.session.backend = websessions::config::Backend::Memory;
    let app = websessions::startup::Application::build(settings)
        .await
        .expect("the app builds");
    let address = format!("http://{}", app.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run_until(stop.clone()));
    (address, stop)
}

/// Every route named in README.md and docs/ (code spans, the architecture
/// diagram, and `curl` lines through `every_command_in_the_docs_runs`) is
/// one the router mounts, with the method named. The route list is read
/// from `src/routes/` and proven against the running site first: every
/// listed path answers `PATCH` with 405 (routed, method not allowed) where
/// an unrouted path answers 404, and every listed method is not 405.
#[tokio::test]
async fn every_route_in_the_docs_is_routed() {
    let routes = router_routes();
    assert!(routes.len() >= 20, "only {} routes read", routes.len());
    let (address, stop) = serve_site().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let send = |method: &str, path: &str| {
        let url = format!("{address}{}", path.replace("{key}", "color"));
        client.request(method.parse().unwrap(), url).send()
    };
    let status = send("PATCH", "/no/such/route").await.unwrap().status();
    assert_eq!(status, 404, "an unrouted path");
    for (methods, path) in &routes {
        assert!(
            !methods.iter().any(|m| m == "PATCH"),
            "{path}: PATCH is the probe"
        );
        let status = send("PATCH", path).await.unwrap().status();
        assert_eq!(status, 405, "PATCH {path}: not routed as src/routes/ reads");
        for method in methods {
            let status = send(method, path).await.unwrap().status();
            assert_ne!(
                status, 405,
                "{method} {path}: not routed as src/routes/ reads"
            );
        }
    }
    stop.cancel();

    let mentions = route_mentions();
    assert!(mentions.len() > 30, "only {} routes named", mentions.len());
    let mut used_exemptions = std::collections::BTreeSet::new();
    for (at, method, path) in &mentions {
        if let Some((p, _)) = NOT_ROUTES.iter().find(|(p, _)| p == path) {
            used_exemptions.insert(*p);
            continue;
        }
        if let Some(prefix) = path.strip_suffix('*') {
            assert!(
                routes.iter().any(|(_, p)| p.starts_with(prefix)),
                "{at}: no route starts with {prefix}"
            );
            println!("route    {at}: {path}");
            continue;
        }
        let (methods, pattern) = route_for(&routes, path)
            .unwrap_or_else(|| panic!("{at}: {path} is not a route of the site"));
        if let Some(m) = method {
            assert!(
                methods.contains(m),
                "{at}: {m} {path} is not routed ({pattern} has {methods:?})"
            );
        }
        println!("route    {at}: {} {path}", method.as_deref().unwrap_or("*"));
    }
    for (p, _) in NOT_ROUTES {
        assert!(
            used_exemptions.contains(p),
            "NOT_ROUTES lists {p}, which no page names any more"
        );
    }
}

/// A `session.…` code span that is a call of `tower_sessions::Session`,
/// not a configuration key (`every_rust_snippet_names_what_exists` proves
/// the methods exist).
const SESSION_CALLS: &[&str] = &["get", "insert", "remove", "save", "flush", "cycle_id"];

/// Environment variables the docs name that are not configuration keys.
const NOT_KEYS: &[(&str, &str)] = &[
    ("APP_ENV", "chooses the profile"),
    ("APP_CONFIG_DIR", "chooses the config folder"),
    ("APP_SECTION__KEY", "the pattern, not a variable"),
    (
        "APP_PORT",
        "the docs' example of a stray variable that start-up refuses (asserted below)",
    ),
];

/// Every configuration key named in README.md and docs/ exists:
/// - `session.…` / `server.…` code spans name a key or table of
///   `config/default.toml` (a `session.get`-style call aside);
/// - `[table]` spans name a table of `config/default.toml` (or of
///   `Cargo.toml`, for `[features]`);
/// - `APP_…` variables anywhere name a key (`APP_SESSION__FILE__DIR` is
///   `session.file.dir`);
/// - a span `key = value` whose key is a setting (dotted, or the name of a
///   key of default.toml) holds a value the settings accept: it is merged
///   over default.toml and extracted into `Settings` (types, enum values).
#[test]
fn every_config_key_in_the_docs_exists() {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};
    let default = default_toml();
    let default_text = std::fs::read_to_string(format!("{ROOT}/config/default.toml")).unwrap();
    let cargo: toml::Table = std::fs::read_to_string(format!("{ROOT}/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut keys = Vec::new();
    key_paths(&default, "", &mut keys);
    // Leaf name -> the dotted keys that end with it.
    let leaf_paths = |leaf: &str| -> Vec<&String> {
        keys.iter()
            .filter(|k| k.rsplit('.').next() == Some(leaf))
            .collect()
    };
    let accepts = |path: &str, value: &str| -> Result<(), String> {
        let (table, leaf) = path.rsplit_once('.').unwrap();
        let snippet = format!("[{table}]\n{leaf} = {value}\n");
        Figment::from(Serialized::defaults(
            websessions::config::Settings::default(),
        ))
        .merge(Toml::string(&default_text))
        .merge(Toml::string(&snippet))
        .extract::<websessions::config::Settings>()
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let mut checked = 0;
    let mut seen_not_keys = std::collections::BTreeSet::new();
    for page in pages() {
        let texts = page
            .prose
            .iter()
            .map(|(n, h, t)| (*n, h.clone(), t.clone()))
            .chain(page.blocks.iter().flat_map(|b| {
                b.text
                    .lines()
                    .enumerate()
                    .map(|(n, t)| (b.line + 1 + n, String::new(), t.to_owned()))
                    .collect::<Vec<_>>()
            }));
        for (line, heading, text) in texts {
            let at = format!("{}:{line}", page.file);
            // APP_ variables, anywhere.
            for (i, _) in text.match_indices("APP_") {
                if i > 0 && text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let var: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if var == "APP_" {
                    continue; // `APP_…`
                }
                if NOT_KEYS.iter().any(|(v, _)| *v == var) {
                    seen_not_keys.insert(var);
                    continue;
                }
                let path = var["APP_".len()..].to_ascii_lowercase().replace("__", ".");
                assert!(
                    lookup(&default, &path).is_some_and(|v| !v.is_table()),
                    "{at}: {var} is not a configuration key (`{path}`)"
                );
                checked += 1;
            }
            if page
                .blocks
                .iter()
                .any(|b| b.line < line && line <= b.line + b.text.lines().count())
            {
                continue;
            }
            for span in code_spans(&heading, &text) {
                let span = span.trim();
                if let Some(table) = span.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    if table.is_empty() {
                        continue;
                    }
                    let known = lookup(&default, table).is_some_and(|v| v.is_table())
                        || (text.contains("Cargo.toml") && cargo.contains_key(table));
                    assert!(
                        known,
                        "{at}: `[{table}]` is not a table of config/default.toml"
                    );
                    checked += 1;
                    continue;
                }
                let (key, value) = match span.split_once(" = ") {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (span, None),
                };
                let dotted = (key.starts_with("session.") || key.starts_with("server."))
                    && key
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
                let path = if dotted {
                    let mut parts = key.split('.');
                    if parts.next() == Some("session")
                        && parts.next().is_some_and(|m| SESSION_CALLS.contains(&m))
                    {
                        continue;
                    }
                    assert!(
                        lookup(&default, key).is_some(),
                        "{at}: `{key}` is not a key of config/default.toml"
                    );
                    key.to_owned()
                } else if value.is_some()
                    && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && !leaf_paths(key).is_empty()
                {
                    // A bare key: one of the keys with that name must take the value.
                    let paths = leaf_paths(key);
                    let ok = paths.iter().find(|p| accepts(p, value.unwrap()).is_ok());
                    assert!(
                        ok.is_some(),
                        "{at}: `{span}`: no key named `{key}` accepts that value ({paths:?})"
                    );
                    checked += 1;
                    continue;
                } else {
                    continue;
                };
                if let Some(value) = value {
                    if let Err(e) = accepts(&path, value) {
                        panic!("{at}: `{span}` is not a value the settings accept: {e}");
                    }
                }
                println!("key      {at}: {span}");
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "only {checked} keys named");
    for (var, _) in NOT_KEYS {
        assert!(
            seen_not_keys.contains(*var),
            "NOT_KEYS lists {var}, which no page names"
        );
    }
    // The stray variable the docs show is refused, naming the key.
    let out = Command::new(BIN)
        .arg("config")
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", format!("{ROOT}/config"))
        .env("APP_PORT", "8080")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "APP_PORT was accepted\n{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("port"),
        "{}",
        show(&out)
    );
}

/// ```rust blocks that show code the reader writes (not a quote of the
/// code), by page and first line, with the file the code goes into. Their
/// names are checked; every other block must be a quote.
const NEW_CODE: &[(&str, &str, &str)] = &[
    (
        "README.md",
        "use tower_sessions::Session;",
        "src/routes/pages.rs",
    ),
    (
        "docs/TUTORIAL.md",
        "#[derive(Template)]",
        "src/web/templates.rs",
    ),
    (
        "docs/TUTORIAL.md",
        "use askama::Template as _;",
        "src/routes/notes.rs",
    ),
    ("docs/TUTORIAL.md", "pub mod notes;", "src/routes/mod.rs"),
];

/// Names every Rust file may use without declaring them.
const PRELUDE: &[&str] = &[
    "String", "Option", "Some", "None", "Result", "Ok", "Err", "Vec", "Self",
];

/// A line of Rust without its `//` comment, trimmed.
fn code_line(line: &str) -> &str {
    match line.find("//") {
        Some(i) if !line[..i].contains('"') => line[..i].trim(),
        _ => line.trim(),
    }
}

/// Rust without its `//` comments.
fn strip_comments(text: &str) -> String {
    text.lines().map(code_line).collect::<Vec<_>>().join("\n")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Identifiers (`[A-Za-z_][A-Za-z0-9_]*`) with what precedes and follows.
fn idents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '\'' {
            // A char literal ('x', '\n', '"'); a lifetime is left alone.
            if bytes.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            if bytes.get(i + 2) == Some(&b'\'') {
                i += 3;
                continue;
            }
        }
        if bytes[i..].starts_with(b"r#\"") {
            i = bytes[i + 3..]
                .windows(2)
                .position(|w| w == b"\"#")
                .map_or(bytes.len(), |end| i + 3 + end + 2);
            continue;
        }
        if c == '"' {
            // Skip string literals.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((start, text[start..i].to_owned()));
            continue;
        }
        i += 1;
    }
    out
}

/// The names an item declaration or `use` brings in, in a Rust source.
fn declared(src: &str) -> std::collections::BTreeSet<String> {
    let mut out = items(src);
    out.extend(imports(src));
    out
}

/// The names a `use` brings in.
fn imports(src: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    // `use a::b::{C, d};` brings in the last segments.
    for stmt in src.split(';') {
        if let Some(path) = stmt
            .trim_start()
            .strip_prefix("use ")
            .or_else(|| stmt.trim_start().strip_prefix("pub use "))
        {
            for part in path.split([',', '{', '}']) {
                // `a::B as C` brings in C (nothing for `as _`).
                let name = match part.split_once(" as ") {
                    Some((_, alias)) => alias.trim(),
                    None => part.trim().rsplit("::").next().unwrap_or(""),
                };
                if name != "_" && !name.is_empty() {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

/// The items a Rust source declares, enum variants included.
fn items(src: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let ids = idents(src);
    for w in ids.windows(2) {
        if matches!(
            w[0].1.as_str(),
            "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "mod"
        ) {
            out.insert(w[1].1.clone());
        }
    }
    for w in &ids {
        if w.1 == "enum" {
            // Variants: the identifiers right after `{` or `,` inside the body.
            let body = &src[w.0..];
            if let (Some(open), Some(close)) = (body.find('{'), body.find('}')) {
                for v in body[open + 1..close].split(',') {
                    let v = v.trim().split(['(', ' ', '{']).next().unwrap_or("");
                    if !v.is_empty() && !v.starts_with('#') && !v.starts_with('/') {
                        out.insert(v.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// The public methods of a Rust source (`pub fn` / `pub async fn`).
fn pub_methods(src: &str) -> std::collections::BTreeSet<String> {
    let ids = idents(src);
    let word = |i: Option<usize>| i.and_then(|i| ids.get(i)).map_or("", |w| w.1.as_str());
    (0..ids.len())
        .filter(|&i| ids[i].1 == "fn")
        .filter(|&i| {
            word(i.checked_sub(1)) == "pub"
                || (word(i.checked_sub(1)) == "async" && word(i.checked_sub(2)) == "pub")
        })
        .filter_map(|i| ids.get(i + 1).map(|w| w.1.clone()))
        .collect()
}

/// The source of a dependency, found through `cargo metadata`.
fn dependency_src(name: &str, file: &str) -> String {
    // Only this platform's packages: the others may not be downloaded.
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc's host triple");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", show(&out));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not a dependency"))["manifest_path"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = Path::new(&manifest).parent().unwrap().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ```rust blocks of README.md and docs/TUTORIAL.md, docs/TESTING.md.
/// This is not a compile (a scratch crate per block would rebuild the whole
/// dependency tree); it checks what a compile would check first:
/// - a block the prose says comes from a file (`src/…` or `tests/…`, named
///   in the lines above it) is a quote: its lines, comments and `// …`
///   elisions aside, appear in that file in the same order;
/// - a block of new code (`NEW_CODE`) names only what exists: `use
///   crate::…` items are declared in that module's file, other `use` roots
///   are dependencies, every CamelCase name is declared or imported in
///   `src/`, in the file the code goes into, or by the block's page, `session.…` calls are methods of
///   `tower_sessions::Session` (its source, through `cargo metadata`) or of
///   `SiteSession`, `module::f()` and `Type::f()` calls name functions of
///   that module or type, and `state.…` fields are fields of `AppState`.
#[test]
fn every_rust_snippet_names_what_exists() {
    let mut src_files = Vec::new();
    rust_files(&PathBuf::from(ROOT).join("src"), &mut src_files);
    let read = |p: &Path| strip_comments(&std::fs::read_to_string(p).unwrap());
    let all_src: String = src_files
        .iter()
        .map(|p| read(p))
        .collect::<Vec<_>>()
        .join("\n");
    let declared_in_src = declared(&all_src);
    let session_methods = pub_methods(&dependency_src("tower-sessions-core", "src/session.rs"));
    for m in SESSION_CALLS {
        assert!(
            session_methods.contains(*m),
            "tower_sessions::Session has no `{m}`"
        );
    }
    let site_session_methods =
        pub_methods(&read(&PathBuf::from(ROOT).join("src/web/site_session.rs")));
    let state_src = read(&PathBuf::from(ROOT).join("src/state.rs"));
    let cargo: toml::Table = read(&PathBuf::from(ROOT).join("Cargo.toml"))
        .parse()
        .unwrap();
    let deps = cargo["dependencies"].as_table().unwrap();
    // The file of a module of the crate, by path (`web::page`) or by name.
    let module_file = |path: &str| -> Option<PathBuf> {
        let rel = path.replace("::", "/");
        let direct = [format!("src/{rel}.rs"), format!("src/{rel}/mod.rs")]
            .into_iter()
            .map(|p| PathBuf::from(ROOT).join(p))
            .find(|p| p.exists());
        direct.or_else(|| {
            let name = path.rsplit("::").next().unwrap();
            let found: Vec<_> = src_files
                .iter()
                .filter(|p| {
                    p.file_stem().is_some_and(|s| s == name)
                        || (p.file_name().is_some_and(|f| f == "mod.rs")
                            && p.parent().unwrap().file_name().is_some_and(|d| d == name))
                })
                .collect();
            (found.len() == 1).then(|| found[0].clone())
        })
    };

    let mut quotes = 0;
    let mut new_code = 0;
    let mut used = std::collections::BTreeSet::new();
    for page in pages() {
        if !["README.md", "docs/TUTORIAL.md", "docs/TESTING.md"].contains(&page.file.as_str()) {
            continue;
        }
        let page_declared: std::collections::BTreeSet<String> = page
            .blocks
            .iter()
            .filter(|b| b.lang == "rust")
            .flat_map(|b| items(&strip_comments(&b.text)))
            .collect();
        for block in page.blocks.iter().filter(|b| b.lang == "rust") {
            let at = format!("{}:{}", block.file, block.line);
            let first = block.text.lines().next().unwrap_or("").trim();
            if let Some((_, _, target)) = NEW_CODE
                .iter()
                .find(|(f, l, _)| *f == page.file && *l == first)
            {
                used.insert((page.file.clone(), first.to_owned()));
                let target_path = PathBuf::from(ROOT).join(target);
                let mut known = declared_in_src.clone();
                known.extend(page_declared.iter().cloned());
                if target_path.exists() {
                    known.extend(declared(&read(&target_path)));
                }
                // `use` lines.
                for stmt in strip_comments(&block.text).split(';') {
                    let Some(path) = stmt.trim().strip_prefix("use ") else {
                        continue;
                    };
                    let (root, rest) = path.split_once("::").unwrap_or((path, ""));
                    if root == "crate" {
                        let (module, names) = match rest.split_once("::{") {
                            Some((m, names)) => {
                                (m.to_owned(), names.trim_end_matches('}').to_owned())
                            }
                            None => {
                                let (m, n) = rest.rsplit_once("::").unwrap();
                                (m.to_owned(), n.to_owned())
                            }
                        };
                        let file = module_file(&module)
                            .unwrap_or_else(|| panic!("{at}: no module crate::{module}"));
                        let there = declared(&read(&file));
                        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                            assert!(
                                there.contains(name) || page_declared.contains(name),
                                "{at}: crate::{module} has no `{name}`"
                            );
                        }
                    } else {
                        let dep = root.replace('_', "-");
                        assert!(
                            ["std", "core", "alloc"].contains(&root)
                                || deps.contains_key(&dep)
                                || deps.contains_key(root),
                            "{at}: `{root}` is not a dependency"
                        );
                    }
                }
                // `use` lines are checked above.
                let text = &strip_comments(&block.text)
                    .lines()
                    .filter(|l| !l.starts_with("use "))
                    .collect::<Vec<_>>()
                    .join("\n");
                let ids = idents(text);
                let session_type = if text.contains("session: SiteSession") {
                    "SiteSession"
                } else {
                    "Session"
                };
                for (n, (pos, id)) in ids.iter().enumerate() {
                    let after = &text[pos + id.len()..];
                    let before = &text[..*pos];
                    // Type-like names.
                    if id.starts_with(|c: char| c.is_ascii_uppercase())
                        && id.contains(|c: char| c.is_ascii_lowercase())
                        && !PRELUDE.contains(&id.as_str())
                    {
                        assert!(known.contains(id), "{at}: `{id}` is declared nowhere");
                    }
                    // session.method( and session.session.method(, across
                    // a line break.
                    let receiver = before.trim_end().strip_suffix('.').map(str::trim_end);
                    let is_session = |r: &str| {
                        r.strip_suffix("session").is_some_and(|head| {
                            !head.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                        })
                    };
                    if receiver.is_some_and(is_session)
                        && (after.starts_with('(') || after.starts_with("::<"))
                    {
                        let r = receiver.unwrap();
                        let on_session =
                            r.ends_with("session.session") || session_type == "Session";
                        let methods = if on_session {
                            &session_methods
                        } else {
                            &site_session_methods
                        };
                        assert!(
                            methods.contains(id),
                            "{at}: `{id}` is not a method of {}",
                            if on_session {
                                "tower_sessions::Session"
                            } else {
                                "SiteSession"
                            }
                        );
                    }
                    // state.field
                    if before.ends_with("state.") && !after.starts_with('(') {
                        assert!(
                            state_src.contains(&format!("pub {id}:")),
                            "{at}: AppState has no field `{id}`"
                        );
                    }
                    // module::f( and Type::f(
                    if let Some((_, prev)) = n.checked_sub(1).map(|p| &ids[p]) {
                        let joined = &text[ids[n - 1].0..*pos];
                        if joined == format!("{prev}::") && after.starts_with('(') {
                            let file = if prev.starts_with(|c: char| c.is_ascii_uppercase()) {
                                src_files
                                    .iter()
                                    .find(|p| {
                                        let s = read(p);
                                        s.contains(&format!("pub struct {prev}"))
                                            || s.contains(&format!("pub enum {prev}"))
                                    })
                                    .cloned()
                            } else if page_declared.contains(prev) {
                                None // a module the reader adds
                            } else {
                                Some(
                                    module_file(prev)
                                        .unwrap_or_else(|| panic!("{at}: no module `{prev}`")),
                                )
                            };
                            if let Some(file) = file {
                                assert!(
                                    read(&file).contains(&format!("fn {id}")),
                                    "{at}: `{prev}::{id}` is not a function of {}",
                                    file.display()
                                );
                            }
                        }
                    }
                }
                println!("rust new {at} -> {target}");
                new_code += 1;
                continue;
            }
            // A quote: the source file named just above.
            let named: Vec<String> = block
                .before
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| {
                    (s.starts_with("src/") || s.starts_with("tests/")) && s.ends_with(".rs")
                })
                .map(str::to_owned)
                .collect();
            let file = named
                .last()
                .unwrap_or_else(|| panic!("{at}: a rust block that names no source file above it and is not listed in NEW_CODE"));
            let source = read(&PathBuf::from(ROOT).join(file));
            let mut lines = source.lines().map(code_line);
            for line in block.text.lines().map(code_line).filter(|l| !l.is_empty()) {
                assert!(
                    lines.any(|l| l == line),
                    "{at}: `{line}` is not in {file} (in this order): the quote went stale"
                );
            }
            println!("rust quo {at} <- {file}");
            quotes += 1;
        }
    }
    assert!(
        quotes >= 4 && new_code >= 3,
        "{quotes} quotes, {new_code} new"
    );
    for (f, l, _) in NEW_CODE {
        assert!(
            used.contains(&(f.to_string(), l.to_string())),
            "NEW_CODE lists `{l}` in {f}, which no block starts with"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every relative link and image of README.md and docs/ points at a file
/// that exists, and every `#anchor` at a heading of that page.
#[test]
fn every_link_in_the_docs_resolves() {
    let mut checked = 0;
    for page in pages() {
        let dir = PathBuf::from(ROOT)
            .join(&page.file)
            .parent()
            .unwrap()
            .to_path_buf();
        for (line, _, text) in &page.prose {
            let at = format!("{}:{line}", page.file);
            // `](target)` of inline links and images; `[x]: target` lines.
            let mut targets: Vec<String> = text
                .match_indices("](")
                .filter_map(|(i, _)| {
                    let rest = &text[i + 2..];
                    rest.find(')').map(|end| rest[..end].to_owned())
                })
                .collect();
            if let Some(rest) = text.strip_prefix('[').and_then(|t| t.split_once("]: ")) {
                targets.push(rest.1.trim().to_owned());
            }
            for target in targets {
                if target.starts_with("http://") || target.starts_with("https://") {
                    continue;
                }
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() {
                    PathBuf::from(ROOT).join(&page.file)
                } else {
                    dir.join(path)
                };
                assert!(file.exists(), "{at}: `{target}`: no such file");
                if let Some(fragment) = fragment {
                    let text = std::fs::read_to_string(&file).unwrap();
                    let mut in_fence = false;
                    let found = text.lines().any(|l| {
                        if l.trim_start().starts_with("```") {
                            in_fence = !in_fence;
                        }
                        !in_fence
                            && l.starts_with('#')
                            && anchor(l.trim_start_matches('#')) == fragment
                    });
                    assert!(found, "{at}: `{target}`: no heading with that anchor");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} links");
}

/// Every `websessions_…` metric the docs name is one `GET /metrics` serves,
/// every metric it serves is described in docs/OPERATIONS.md, and the
/// store operations listed there are the `operation` labels it serves.
#[tokio::test]
async fn every_metric_in_the_docs_is_served() {
    let (address, stop) = serve_site().await;
    // One request first: a labelled family shows once it has a sample.
    reqwest::get(format!("{address}/api/session"))
        .await
        .unwrap();
    let body = reqwest::get(format!("{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.cancel();
    // `# TYPE name type` lines: OpenMetrics names counters without `_total`.
    let served: Vec<(String, String)> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect();
    assert!(served.len() >= 10, "{body}");
    let matches = |doc: &str| {
        served.iter().any(|(name, kind)| {
            let rest = doc.strip_prefix(name.as_str());
            matches!(
                (kind.as_str(), rest),
                (_, Some(""))
                    | ("counter", Some("_total"))
                    | ("histogram", Some("_bucket" | "_count" | "_sum"))
            )
        })
    };
    let mut named = std::collections::BTreeSet::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, _) in text.match_indices("websessions_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                matches(&name),
                "{}: `{name}` is not a metric /metrics serves",
                path.display()
            );
            if path.ends_with("docs/OPERATIONS.md") {
                named.insert(name);
            }
        }
    }
    for (name, kind) in &served {
        let documented =
            named.contains(name) || (kind == "counter" && named.contains(&format!("{name}_total")));
        assert!(documented, "docs/OPERATIONS.md does not describe `{name}`");
    }
    let ops_doc: std::collections::BTreeSet<String> = {
        let text = std::fs::read_to_string(format!("{ROOT}/docs/OPERATIONS.md")).unwrap();
        let row = text
            .lines()
            .find(|l| l.starts_with("| `websessions_store_operation_duration_seconds`"))
            .expect("the store latency row");
        let list = &row[row.find("operation (").expect("its operations") + 11..];
        let list = &list[..list.find(')').unwrap()];
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let ops_served: std::collections::BTreeSet<String> = body
        .match_indices("operation=\"")
        .map(|(i, _)| {
            let rest = &body[i + 11..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect();
    assert_eq!(ops_doc, ops_served, "docs/OPERATIONS.md's store operations");
}

/// Files the docs name that do not exist, and why.
const NOT_FILES: &[(&str, &str)] = &[
    (
        "src/routes/notes.rs",
        "docs/TUTORIAL.md has the reader create it",
    ),
    (
        "templates/notes.html",
        "docs/TUTORIAL.md has the reader create it",
    ),
];

/// Every file or folder of the repository named in a code span of README.md
/// and docs/ (`src/…`, `tests/…`, `config/…`, …) exists; `*` matches within
/// one name, and a `<placeholder>` or `$VAR` is not checked.
#[test]
fn every_file_named_in_the_docs_exists() {
    const ROOTS: &[&str] = &[
        "src/",
        "tests/",
        "templates/",
        "config/",
        "migrations/",
        "benches/",
        "static/",
        "docs/",
        ".ci/",
    ];
    let mut checked = 0;
    let mut exempt_used = std::collections::BTreeSet::new();
    for page in pages() {
        for (line, heading, text) in &page.prose {
            for span in code_spans(heading, text) {
                if !ROOTS.iter().any(|r| span.starts_with(r)) || span.contains(['<', '$', ' ']) {
                    continue;
                }
                let at = format!("{}:{line}", page.file);
                if let Some((f, _)) = NOT_FILES.iter().find(|(f, _)| *f == span) {
                    exempt_used.insert(*f);
                    continue;
                }
                let exists = match span.split_once('*') {
                    None => PathBuf::from(ROOT).join(&span).exists(),
                    Some((head, tail)) => {
                        let (dir, prefix) = head.rsplit_once('/').unwrap();
                        std::fs::read_dir(PathBuf::from(ROOT).join(dir))
                            .map(|entries| {
                                entries.filter_map(Result::ok).any(|e| {
                                    let name = e.file_name().to_string_lossy().into_owned();
                                    name.starts_with(prefix) && name.ends_with(tail)
                                })
                            })
                            .unwrap_or(false)
                    }
                };
                assert!(exists, "{at}: `{span}` does not exist");
                checked += 1;
            }
        }
    }
    assert!(checked > 80, "only {checked} paths");
    for (f, _) in NOT_FILES {
        assert!(
            exempt_used.contains(f),
            "NOT_FILES lists {f}, which no page names"
        );
    }
}

/// Writes only what differs, so cargo (which compares mtimes) rebuilds
/// only what changed.
fn write_if_changed(path: &Path, content: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(content) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Copies a folder of the checkout, but the files in `skip` (edited apart).
fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &dest, skip);
        } else if !skip.contains(&dest) {
            write_if_changed(&dest, &std::fs::read(&path).unwrap());
        }
    }
}

/// Inserts the lines of `block` that `file` lacks, each after the line that
/// precedes it in the block (`// …` elisions skipped); a first line the file
/// lacks goes before the first line that starts with the same word.
fn insert_lines(file: &str, block: &str) -> String {
    let mut lines: Vec<String> = file.lines().map(str::to_owned).collect();
    let mut prev: Option<String> = None;
    for line in block.lines() {
        let code = code_line(line);
        if code.is_empty() {
            continue;
        }
        let pos = lines.iter().position(|l| code_line(l) == code);
        match (pos, &prev) {
            (Some(_), _) => {}
            (None, Some(p)) => {
                let at = lines
                    .iter()
                    .position(|l| code_line(l) == p)
                    .unwrap_or_else(|| panic!("`{p}` is not in the file"));
                lines.insert(at + 1, line.to_owned());
            }
            (None, None) => {
                let word = code.split_whitespace().next().unwrap();
                let at = lines
                    .iter()
                    .position(|l| l.starts_with(word))
                    .unwrap_or_else(|| panic!("no line starts with `{word}`"));
                lines.insert(at, line.to_owned());
            }
        }
        prev = Some(code.to_owned());
    }
    lines.join("\n") + "\n"
}

/// docs/TUTORIAL.md, done for real: a copy of the crate gets the tutorial's
/// code exactly as the page shows it (plus README's plain-`Session` handler),
/// is built against this checkout's `target/` (only the crate itself
/// compiles), and the new page works: `GET /notes` renders the form, the
/// form with its CSRF token stores the note and leaves a flash message,
/// and a form without the token is refused with 403.
#[tokio::test]
async fn the_tutorial_page_builds_and_works() {
    // Always the same folder, so cargo rebuilds only what changed.
    let dir = &PathBuf::from(ROOT).join("target/doc-tutorial");
    let edited: Vec<PathBuf> = [
        "src/web/templates.rs",
        "src/routes/mod.rs",
        "templates/base.html",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    for file in ["Cargo.lock", "build.rs"] {
        write_if_changed(
            &dir.join(file),
            &std::fs::read(format!("{ROOT}/{file}")).unwrap(),
        );
    }
    for sub in [
        "src",
        "templates",
        "static",
        "migrations",
        "config",
        "benches",
    ] {
        copy_tree(&PathBuf::from(ROOT).join(sub), &dir.join(sub), &edited);
    }
    let tutorial = pages()
        .into_iter()
        .find(|p| p.file == "docs/TUTORIAL.md")
        .unwrap();
    let readme = pages().into_iter().find(|p| p.file == "README.md").unwrap();
    let block = |page: &Page, first: &str| -> String {
        page.blocks
            .iter()
            .find(|b| b.text.lines().next() == Some(first))
            .unwrap_or_else(|| panic!("{}: no block starting `{first}`", page.file))
            .text
            .clone()
    };
    // The checkout's file (or nothing, for a new one), edited, into the copy.
    let edit = |file: &str, f: &dyn Fn(String) -> String| {
        let text = std::fs::read_to_string(PathBuf::from(ROOT).join(file)).unwrap_or_default();
        write_if_changed(&dir.join(file), f(text).as_bytes());
    };
    // 1. The template struct.
    let page_struct = block(&tutorial, "#[derive(Template)]");
    edit("src/web/templates.rs", &|t| format!("{t}\n{page_struct}"));
    // 2. The askama file.
    let html = block(&tutorial, "{% extends \"base.html\" %}");
    edit("templates/notes.html", &|_| html.clone());
    // 3. The route, plus README's handler on the plain Session API.
    let route = block(&tutorial, "use askama::Template as _;");
    let handler = block(&readme, "use tower_sessions::Session;");
    edit("src/routes/notes.rs", &|_| {
        format!(
            "{route}\n#[allow(dead_code)]\nmod plain {{\nuse crate::error::PageError;\n{handler}}}\n"
        )
    });
    let mount = block(&tutorial, "pub mod notes;");
    edit("src/routes/mod.rs", &|t| insert_lines(&t, &mount));
    // 4. The nav link, after the last one.
    let nav = block(&tutorial, "<a href=\"/notes\" id=\"nav-notes\">Notes</a>");
    edit("templates/base.html", &|t| {
        insert_lines(
            &t,
            &format!("<a href=\"/api/session\" id=\"nav-api\">JSON</a>\n{nav}"),
        )
    });

    // Another package and binary name, so this checkout's `target/` gives
    // the dependencies without this build replacing its own artifacts.
    edit("Cargo.toml", &|t| {
        t.replacen(
            "name = \"websessions\"",
            "name = \"websessions-tutorial\"",
            1,
        )
        .replace(
            "[[bin]]\nname = \"websessions\"",
            "[[bin]]\nname = \"websessions-tutorial\"",
        )
        .replace(
            "default-run = \"websessions\"",
            "default-run = \"websessions-tutorial\"",
        )
    });
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    // The variables cargo set for this test (CARGO_MANIFEST_DIR, OUT_DIR, …) would
    // make build scripts that watch them rerun, here and in the next build
    // of the checkout.
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "OUT_DIR" {
            build.env_remove(key);
        }
    }
    let out = build
        .args(["build", "--offline", "--bin", "websessions-tutorial"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", format!("{ROOT}/target"))
        .output()
        .expect("cargo build");
    assert!(
        out.status.success(),
        "the tutorial's code does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Run it, and use the page.
    use std::io::BufRead;
    let mut child = Command::new(format!("{ROOT}/target/debug/websessions-tutorial"))
        .arg("serve")
        .env_clear()
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", format!("{ROOT}/config"))
        .env("APP_SESSION__BACKEND", "memory")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the tutorial's site");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let address = loop {
        banner.clear();
        assert!(
            stdout.read_line(&mut banner).unwrap() > 0,
            "no serving line"
        );
        if let Some(rest) = banner.split_once("serving ").map(|(_, r)| r) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
        }
    };
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let notes = format!("{address}/notes");
    let page = client.get(&notes).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"form-note\""), "{html}");
    assert!(html.contains("id=\"nav-notes\""), "the nav link: {html}");
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a CSRF token") + marker.len();
    let token = html[start..start + html[start..].find('"').unwrap()].to_owned();

    let refused = client
        .post(&notes)
        .form(&[("note", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "a form without the token");

    let saved = client
        .post(&notes)
        .form(&[("csrf_token", token.as_str()), ("note", "hello tutorial")])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 303);
    assert_eq!(saved.headers()["location"], "/notes");
    let html = client
        .get(&notes)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<p id=\"note-value\">hello tutorial</p>"),
        "the note: {html}"
    );
    assert!(
        html.contains("id=\"flash\"") && html.contains("Note saved."),
        "the flash: {html}"
    );
    let html = client
        .get(&notes)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Note saved."), "a flash shows once");
    assert!(html.contains("hello tutorial"));

    child.kill().unwrap();
    child.wait().unwrap();
}
