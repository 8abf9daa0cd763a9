//! CSRF tokens that are derived, never stored:
//! `token = HMAC-SHA-256(secret_key, "csrf" ‖ binding)`, where the binding is
//! the session id when a session exists, else a random nonce kept in a
//! separate `csrf` cookie (`__Host-csrf` when `session.secure = true`, so a
//! sibling subdomain cannot plant it). Rendering a page therefore never
//! writes the session, and a visitor who only looks gets at most the nonce
//! cookie. A nonce-bound token is accepted only while the request carries
//! no live session: once there is one, only its own token opens its forms.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::session::Id;

/// Name of the nonce cookie for visitors without a session.
pub const NONCE_COOKIE: &str = "csrf";
/// Its name when cookies are HTTPS-only: a `__Host-` cookie must be
/// `Secure`, `Path=/` and carry no `Domain`, so no other host can set it.
pub const SECURE_NONCE_COOKIE: &str = "__Host-csrf";
const NONCE_MAX_AGE: time::Duration = time::Duration::hours(2);

#[derive(Clone)]
pub struct Csrf {
    keys: Vec<[u8; 64]>,
    secure: bool,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf { keys: *** }")
    }
}

/// What a token is bound to.
#[derive(Debug, Clone)]
pub enum Binding {
    Session(Id),
    Nonce(String),
}

impl Csrf {
    /// `keys[0]` signs; all of them verify (so key rotation keeps open forms valid).
    pub fn new(current: [u8; 64], previous: Vec<[u8; 64]>, secure: bool) -> Self {
        let mut keys = vec![current];
        keys.extend(previous);
        Self { keys, secure }
    }

    fn mac(key: &[u8; 64], binding: &Binding) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("BUG: HMAC takes any key length");
        mac.update(b"csrf");
        match binding {
            Binding::Session(id) => {
                mac.update(b"s:");
                mac.update(id.to_string().as_bytes());
            }
            Binding::Nonce(nonce) => {
                mac.update(b"n:");
                mac.update(nonce.as_bytes());
            }
        }
        mac
    }

    /// The nonce cookie's name: `__Host-csrf` when cookies are `Secure`.
    pub fn nonce_cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_NONCE_COOKIE
        } else {
            NONCE_COOKIE
        }
    }

    pub fn token(&self, binding: &Binding) -> String {
        URL_SAFE_NO_PAD.encode(Self::mac(&self.keys[0], binding).finalize().into_bytes())
    }

    /// Constant-time check of `token` against every binding and key.
    pub fn verify(&self, token: &str, bindings: &[Binding]) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        bindings.iter().any(|binding| {
            self.keys
                .iter()
                .any(|key| Self::mac(key, binding).verify_slice(&bytes).is_ok())
        })
    }

    /// A fresh nonce and the cookie that carries it.
    pub fn new_nonce(&self) -> (String, Cookie<'static>) {
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let cookie = Cookie::build((self.nonce_cookie_name(), nonce.clone()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .max_age(NONCE_MAX_AGE)
            .build();
        (nonce, cookie)
    }
}

/// Nonces are 22 base64url characters; anything else is ignored.
pub fn valid_nonce(value: &str) -> bool {
    value.len() == 22
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csrf() -> Csrf {
        Csrf::new([7; 64], vec![[9; 64]], false)
    }

    #[test]
    fn a_token_verifies_only_for_its_binding() {
        let c = csrf();
        let id = Id::default();
        let token = c.token(&Binding::Session(id));
        assert!(c.verify(&token, &[Binding::Session(id)]));
        assert!(!c.verify(&token, &[Binding::Session(Id::default())]));
        assert!(!c.verify(&token, &[Binding::Nonce("x".into())]));
        assert!(!c.verify("garbage!", &[Binding::Session(id)]));
        assert!(!c.verify("", &[Binding::Session(id)]));
    }

    #[test]
    fn tokens_of_a_previous_key_still_verify() {
        let old = Csrf::new([9; 64], vec![], false);
        let binding = Binding::Nonce("abc".into());
        let token = old.token(&binding);
        assert!(csrf().verify(&token, std::slice::from_ref(&binding)));
        assert!(!Csrf::new([1; 64], vec![], false).verify(&token, &[binding]));
    }

    #[test]
    fn the_nonce_cookie_is_host_prefixed_when_secure() {
        let (_, cookie) = Csrf::new([7; 64], vec![], true).new_nonce();
        assert_eq!(cookie.name(), "__Host-csrf");
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.domain(), None);
        let (_, cookie) = csrf().new_nonce();
        assert_eq!(cookie.name(), "csrf");
    }
}
