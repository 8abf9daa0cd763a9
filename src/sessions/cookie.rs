//! The cookie backend: the whole session travels in the cookie, signed or
//! encrypted with the secret key; nothing is stored on the server.
//!
//! It goes through the same middleware and [`Policy`](super::policy::Policy)
//! as every server-side store: the record is decoded once, when the request
//! arrives, and encoded once, when a write or a touch needs a new cookie.
//! The record format is `tower-sessions-cookie-store`'s; the keys rotate:
//! a cookie is read with the current key, then each previous one, and always
//! written with the current one, so keys rotate without logging anyone out.

use tower_cookies::Key;
use tower_cookies::cookie::{Cookie, CookieJar};
use tower_sessions::session::Record;
use tower_sessions::session_store;

pub use super::CookieMode;

/// Browsers keep cookies up to this size (name and value).
pub const MAX_COOKIE_BYTES: usize = 4096;

/// The `cookie` crate's private cookies: a 96-bit AES-GCM nonce and a
/// 128-bit tag around the ciphertext.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The `cookie` crate's signed cookies: the HMAC-SHA-256 in padded base64.
const SIGNATURE_LEN: usize = 44;

/// Encodes records into cookie values and back, with rotating keys.
pub struct CookieCodec {
    name: String,
    mode: CookieMode,
    /// `keys[0]` writes; all of them read.
    keys: Vec<Key>,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CookieCodec {{ name: {:?}, mode: {:?}, keys: {} (masked) }}",
            self.name,
            self.mode,
            self.keys.len()
        )
    }
}

impl CookieCodec {
    /// `current` writes and reads; `previous` only read. Each key is 64
    /// bytes (the caller has checked that).
    pub fn new(name: &str, mode: CookieMode, current: &[u8; 64], previous: &[[u8; 64]]) -> Self {
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|k| Key::from(k.as_slice()))
            .collect();
        Self {
            name: name.to_owned(),
            mode,
            keys,
        }
    }

    pub fn mode(&self) -> CookieMode {
        self.mode
    }

    /// The cookie value for a record: encoded, then encrypted or signed with
    /// the current key.
    pub fn encode(&self, record: &Record) -> session_store::Result<String> {
        let plain = tower_sessions_cookie_store::encode_record(record)?;
        let mut jar = CookieJar::new();
        let cookie = Cookie::new(self.name.clone(), plain);
        match self.mode {
            CookieMode::Private => jar.private_mut(&self.keys[0]).add(cookie),
            CookieMode::Signed => jar.signed_mut(&self.keys[0]).add(cookie),
        }
        jar.get(&self.name)
            .map(|c| c.value().to_owned())
            .ok_or_else(|| session_store::Error::Encode("the cookie jar lost the cookie".into()))
    }

    /// The record in a cookie value, if any key verifies it and it decodes;
    /// `None` for a forged, tampered or unreadable value.
    pub fn decode(&self, value: &str) -> Option<Record> {
        self.keys.iter().enumerate().find_map(|(i, key)| {
            let mut jar = CookieJar::new();
            jar.add_original(Cookie::new(self.name.clone(), value.to_owned()));
            let plain = match self.mode {
                CookieMode::Private => jar.private(key).get(&self.name),
                CookieMode::Signed => jar.signed(key).get(&self.name),
            }?;
            if i > 0 {
                tracing::debug!(
                    "session cookie verified with a previous key; the next write re-issues it"
                );
            }
            tower_sessions_cookie_store::decode_record(plain.value()).ok()
        })
    }

    /// Bytes of `name=value`, what the browser's 4096-byte limit counts.
    pub fn cookie_len(&self, value: &str) -> usize {
        self.name.len() + 1 + value.len()
    }

    /// Bytes of `name=value` that [`encode`](Self::encode) would give for
    /// `record`, without encrypting or signing it: both add a fixed
    /// overhead to the encoded record, so the size is known from the
    /// encoded record alone.
    pub fn predicted_cookie_len(&self, record: &Record) -> session_store::Result<usize> {
        let plain = tower_sessions_cookie_store::encode_record(record)?.len();
        let value = match self.mode {
            // Base64 (padded) of nonce ‖ ciphertext ‖ tag; AES-GCM's
            // ciphertext is exactly as long as the plaintext.
            CookieMode::Private => (NONCE_LEN + plain + TAG_LEN).div_ceil(3) * 4,
            // The HMAC-SHA-256 in base64, then the value itself.
            CookieMode::Signed => SIGNATURE_LEN + plain,
        };
        Ok(self.name.len() + 1 + value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;
    use tower_sessions::session::Id;

    use super::*;

    fn record() -> Record {
        Record {
            id: Id::default(),
            data: HashMap::from([("k".to_owned(), Value::from("v"))]),
            expiry_date: time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap(),
        }
    }

    #[test]
    fn a_cookie_round_trips_and_is_read_with_a_previous_key_after_rotation() {
        for mode in [CookieMode::Private, CookieMode::Signed] {
            let (old, new) = ([1u8; 64], [2u8; 64]);
            let before = CookieCodec::new("id", mode, &old, &[]);
            let value = before.encode(&record()).unwrap();
            let r = before.decode(&value).unwrap();
            assert_eq!(r.data["k"], "v");
            let after = CookieCodec::new("id", mode, &new, &[old]);
            assert!(
                after.decode(&value).is_some(),
                "{mode:?}: read after rotation"
            );
            let forgotten = CookieCodec::new("id", mode, &new, &[]);
            assert!(
                forgotten.decode(&value).is_none(),
                "{mode:?}: old key dropped"
            );
        }
    }

    #[test]
    fn the_predicted_cookie_length_is_the_encoded_one() {
        for mode in [CookieMode::Private, CookieMode::Signed] {
            let codec = CookieCodec::new("session_id", mode, &[4u8; 64], &[]);
            let mut r = record();
            // Every remainder of the base64 padding, and sizes near the limit.
            for n in (0..40).chain(2900..2920) {
                r.data.insert("k".into(), Value::from("x".repeat(n)));
                let value = codec.encode(&r).unwrap();
                assert_eq!(
                    codec.predicted_cookie_len(&r).unwrap(),
                    codec.cookie_len(&value),
                    "{mode:?}, {n} bytes"
                );
            }
        }
    }

    #[test]
    fn a_tampered_cookie_decodes_to_nothing() {
        for mode in [CookieMode::Private, CookieMode::Signed] {
            let codec = CookieCodec::new("id", mode, &[3u8; 64], &[]);
            let mut value = codec.encode(&record()).unwrap().into_bytes();
            let last = value.len() - 1;
            value[last] = if value[last] == b'A' { b'B' } else { b'A' };
            assert!(codec.decode(&String::from_utf8(value).unwrap()).is_none());
            assert!(codec.decode("garbage").is_none());
        }
    }
}
