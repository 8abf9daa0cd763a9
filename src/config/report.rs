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
        let shown = match key.as_str() {
            "session.max_value_bytes"
                if loaded.settings.session.max_value_bytes
                    > loaded.settings.session.max_session_bytes =>
            {
                format!(
                    "{shown} (clamped to {}: session.max_session_bytes)",
                    loaded.settings.session.max_session_bytes
                )
            }
            _ => shown,
        };
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
        toml::Value::String(s) if key.ends_with(".url") => format!("\"{}\"", mask_url(s)),
        toml::Value::String(s) if s.is_empty() => "\"\" (not set)".into(),
        toml::Value::Array(items) => format!("[{} keys, masked]", items.len()),
        _ => "\"***\" (masked)".into(),
    }
}

/// A URL with its password masked wherever it sits: the user info, or a
/// query parameter such as `?password=`. A URL that does not parse cannot
/// be read safely, so all of it after the scheme is masked.
fn mask_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return match raw.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                format!("{scheme}://*** (not a valid URL; masked)")
            }
            _ => "*** (not a valid URL; masked)".into(),
        };
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        url.set_query(Some(&masked.join("&")));
    }
    url.to_string()
}

/// Query parameters that carry a password or another credential.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "auth", "key"]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn passwords_are_masked_wherever_they_sit() {
        assert_eq!(
            mask_url("postgres://app:hunter2@db:5432/s?sslmode=require"),
            "postgres://app:***@db:5432/s?sslmode=require"
        );
        assert_eq!(
            mask_url("postgres://app@db/s?sslmode=require&password=hunter2"),
            "postgres://app@db/s?sslmode=require&password=***"
        );
        assert_eq!(
            mask_url("mysql://db/s?PassWord=x%20y&user=app"),
            "mysql://db/s?PassWord=***&user=app"
        );
        assert_eq!(
            mask_url("redis://u:p ss@[::1:6379"),
            "redis://*** (not a valid URL; masked)"
        );
        assert_eq!(mask_url("hunter2"), "*** (not a valid URL; masked)");
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
