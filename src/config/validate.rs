//! Checks that serde cannot express. Each message names the key and the
//! layer its value came from.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use figment::Figment;

use super::{ConfigError, SameSite, Settings, layer_name};

/// The development and test profiles carry a key whose bytes start with this
/// mark; production refuses it.
pub const DEVELOPMENT_KEY_MARK: &[u8] = b"websessions-DEVELOPMENT-ONLY-key";

/// Is this (base64) key the marked development key?
pub fn is_development_key(value: &str) -> bool {
    decode_key(value).is_ok_and(|key| key.starts_with(DEVELOPMENT_KEY_MARK))
}

/// Decodes a base64 64-byte key, saying what is wrong without echoing it.
pub fn decode_key(value: &str) -> Result<[u8; 64], String> {
    let bytes = STANDARD
        .decode(value.trim())
        .map_err(|_| "is not valid base64".to_owned())?;
    <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "must decode to 64 bytes, not {} (run `websessions keygen` for a fresh one)",
            bytes.len()
        )
    })
}

pub(super) fn validate(
    settings: &Settings,
    profile: &str,
    figment: &Figment,
) -> Result<(), ConfigError> {
    let source = |key: &str| -> String {
        figment
            .find_metadata(key)
            .map(|m| {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                layer_name(m, &path)
            })
            .unwrap_or_else(|| "built-in defaults".into())
    };
    let fail = |key: &str, what: String| {
        ConfigError(format!("key `{key}` (from {}): {what}", source(key)))
    };
    // Two keys that only conflict together: name both and where each came
    // from, so the message always names the one the person set.
    let conflict = |key: &str, other: &str, what: &str| {
        ConfigError(format!(
            "key `{key}` (from {}) and key `{other}` (from {}): {what}",
            source(key),
            source(other)
        ))
    };
    let s = &settings.session;

    if s.secret_key.expose().is_empty() {
        return Err(fail(
            "session.secret_key",
            "is not set; run `websessions keygen` and put the key in APP_SESSION__SECRET_KEY"
                .into(),
        ));
    }
    let key = decode_key(s.secret_key.expose()).map_err(|e| fail("session.secret_key", e))?;
    if profile == "production" && key.starts_with(DEVELOPMENT_KEY_MARK) {
        return Err(fail(
            "session.secret_key",
            "is the development key, which production refuses; run `websessions keygen` and put the key in APP_SESSION__SECRET_KEY".into(),
        ));
    }
    for (i, old) in s.previous_secret_keys.iter().enumerate() {
        let old = decode_key(old.expose())
            .map_err(|e| fail("session.previous_secret_keys", format!("entry {i} {e}")))?;
        // Anyone can read the development key: accepted for reading, it
        // would let anyone forge cookie-backend sessions and CSRF tokens.
        if profile == "production" && old.starts_with(DEVELOPMENT_KEY_MARK) {
            return Err(fail(
                "session.previous_secret_keys",
                format!(
                    "entry {i} is the development key, which production refuses anywhere; remove it (sessions it signed end)"
                ),
            ));
        }
    }

    if s.cookie_name.is_empty()
        || !s
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(fail(
            "session.cookie_name",
            "must be a non-empty cookie token (letters, digits and !#$%&'*+-.^_`|~)".into(),
        ));
    }
    if s.cookie_name.starts_with("__Host-") && !s.secure {
        return Err(conflict(
            "session.cookie_name",
            "session.secure",
            "a `__Host-` cookie name needs session.secure = true (browsers drop it otherwise)",
        ));
    }
    if s.cookie_name.starts_with("__Secure-") && !s.secure {
        return Err(conflict(
            "session.cookie_name",
            "session.secure",
            "a `__Secure-` cookie name needs session.secure = true",
        ));
    }
    if s.same_site == SameSite::None && !s.secure {
        return Err(conflict(
            "session.same_site",
            "session.secure",
            "same_site = \"none\" is refused unless session.secure = true",
        ));
    }
    if s.cookie_name == "csrf" || s.cookie_name == "__Host-csrf" {
        return Err(fail(
            "session.cookie_name",
            format!(
                "`{}` is the name of the site's CSRF nonce cookie",
                s.cookie_name
            ),
        ));
    }
    if s.idle_timeout.as_secs() < 2 {
        return Err(fail("session.idle_timeout", "must be at least 2s".into()));
    }
    // An absolute cap shorter than the idle timeout is valid: expiry is
    // min(now + idle, created + absolute), so the cap decides.
    let server = &settings.server;
    if server.header_read_timeout.is_zero() {
        return Err(fail(
            "server.header_read_timeout",
            "must be more than 0s".into(),
        ));
    }
    if server.request_timeout.is_zero() {
        return Err(fail(
            "server.request_timeout",
            "must be more than 0s".into(),
        ));
    }
    if server.max_connections == 0 {
        return Err(fail("server.max_connections", "must be at least 1".into()));
    }
    if s.purge_interval.is_zero() {
        return Err(fail(
            "session.purge_interval",
            "must be more than 0s".into(),
        ));
    }
    // A value limit above the session limit is clamped to it where the
    // limits are used, never refused.
    if s.max_session_bytes == 0 {
        return Err(fail(
            "session.max_session_bytes",
            "must be at least 1".into(),
        ));
    }
    if s.max_value_bytes == 0 {
        return Err(fail("session.max_value_bytes", "must be at least 1".into()));
    }
    if s.database.max_connections == 0 {
        return Err(fail(
            "session.database.max_connections",
            "must be at least 1".into(),
        ));
    }
    Ok(())
}
