//! `websessions config`: every effective value, where it came from, and
//! secrets masked.

use std::fmt::Write as _;

use super::{Loaded, is_secret_key, layer_name};

/// One line per key: `session.backend = "file"    # config/default.toml`.
pub fn effective_config(loaded: &Loaded) -> String {
    let value = toml::Value::try_from(&loaded.settings).expect("BUG: settings serialize to TOML");
    let mut leaves = Vec::new();
    flatten("", &value, &mut leaves);
    let width = leaves
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .max()
        .unwrap_or(0)
        + 4;
    let mut out = format!("# profile: {} (APP_ENV)\n", loaded.profile);
    for (key, shown) in leaves {
        let source = loaded
            .figment
            .find_metadata(&key)
            .map(|m| {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                layer_name(m, &path)
            })
            .unwrap_or_else(|| "built-in defaults".into());
        let line = format!("{key} = {shown}");
        let _ = writeln!(out, "{line:<width$}# {source}", width = width);
    }
    out
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            let shown = if is_secret_key(prefix) {
                mask(prefix, other)
            } else {
                other.to_string()
            };
            out.push((prefix.to_owned(), shown));
        }
    }
}

/// Keys are replaced entirely; URLs keep everything but the password.
fn mask(key: &str, value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) if key.ends_with(".url") => match url::Url::parse(s) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                format!("\"{url}\"")
            }
            _ => format!("\"{s}\""),
        },
        toml::Value::String(s) if s.is_empty() => "\"\" (not set)".into(),
        toml::Value::Array(items) => format!("[{} keys, masked]", items.len()),
        _ => "\"***\" (masked)".into(),
    }
}
