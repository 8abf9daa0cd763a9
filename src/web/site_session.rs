//! `SiteSession`: the standard `tower_sessions::Session` plus what the site
//! knows about the stored record, with the site's own rules on top: key
//! validation, byte limits, flash messages, the visit counter and the typed,
//! versioned `_user` bucket.

use std::collections::{BTreeMap, HashMap};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::error::AppError;
use crate::sessions::info::SessionInfo;
use crate::sessions::keys::{CREATED_AT, FLASH, USER, VISITS, is_reserved};
use crate::sessions::store::{fingerprint, json_len};

/// The byte limits of one value and of the whole session.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_value_bytes: usize,
    pub max_session_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct SiteSession {
    pub session: Session,
    pub info: SessionInfo,
}

impl<S: Send + Sync> FromRequestParts<S> for SiteSession {
    type Rejection = crate::error::PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let session = parts.extensions.get::<Session>().cloned();
        let info = parts.extensions.get::<SessionInfo>().cloned();
        match (session, info) {
            (Some(session), Some(info)) => Ok(SiteSession { session, info }),
            _ => Err(crate::error::PageError::from(AppError::Unexpected(
                anyhow::anyhow!("BUG: route is not behind the session layer"),
            ))),
        }
    }
}

/// The demo login's user, stored under `_user`. `v` is bumped when the shape
/// changes; an older or unreadable bucket reads as "logged out".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserBucket {
    pub v: u32,
    pub name: String,
    pub logged_in_at: i64,
}

impl UserBucket {
    pub const VERSION: u32 = 1;
}

/// A one-shot message for the next page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flash {
    /// "ok" or "error": the page styles it.
    pub level: String,
    pub text: String,
}

/// Checks a key written from outside: 1 to 128 characters, no control
/// characters, not one of the site's own `_…` keys.
pub fn validate_key(key: &str) -> Result<(), AppError> {
    validate_readable_key(key)?;
    if is_reserved(key) {
        return Err(AppError::BadRequest(
            "Keys starting with `_` belong to the site (visit counter, flash, login) and cannot be changed from outside.".into(),
        ));
    }
    Ok(())
}

/// Checks a key that is only read: 1 to 128 characters, no control
/// characters (the site's own `_…` keys may be read).
pub fn validate_readable_key(key: &str) -> Result<(), AppError> {
    let chars = key.chars().count();
    if chars == 0 || chars > 128 {
        return Err(AppError::BadRequest(format!(
            "A key must be 1 to 128 characters long (this one has {chars})."
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "A key must not contain control characters.".into(),
        ));
    }
    Ok(())
}

impl SiteSession {
    /// The fingerprint of the current id (after a cycle: the new one, once saved).
    pub fn fingerprint(&self) -> Option<String> {
        self.session.id().map(|id| fingerprint(&id))
    }

    /// Is there a stored session this request started from?
    pub fn exists(&self) -> bool {
        self.session.id().is_some() && !self.info.is_new()
    }

    /// A typed value; one that no longer deserializes is logged and absent.
    pub async fn get_typed<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AppError> {
        let Some(value) = self.session.get_value(key).await? else {
            return Ok(None);
        };
        match serde_json::from_value(value) {
            Ok(v) => Ok(Some(v)),
            Err(error) => {
                tracing::warn!(
                    key,
                    session = self.fingerprint().as_deref().unwrap_or("-"),
                    %error,
                    "stored value no longer fits its type: treating it as absent"
                );
                Ok(None)
            }
        }
    }

    /// Every key with its current value, the site's own keys included, sorted.
    pub async fn entries(&self) -> Result<BTreeMap<String, Value>, AppError> {
        self.current_values().await
    }

    /// Every stored key with its current value, as a size check wants it.
    async fn data(&self) -> Result<HashMap<String, Value>, AppError> {
        self.current_values().await
    }

    /// The loaded keys with their current values, collected into `C`.
    async fn current_values<C: Default + Extend<(String, Value)>>(&self) -> Result<C, AppError> {
        let mut out = C::default();
        let keys = self.info.loaded.as_ref().map_or(&[][..], |l| &l.keys[..]);
        for key in keys {
            if let Some(value) = self.session.get_value(key).await? {
                out.extend([(key.clone(), value)]);
            }
        }
        Ok(out)
    }

    /// Only the visitor's keys (not starting with `_`).
    pub async fn user_data(&self) -> Result<BTreeMap<String, Value>, AppError> {
        let mut all = self.entries().await?;
        all.retain(|k, _| !is_reserved(k));
        Ok(all)
    }

    /// Stores a visitor's value after checking the key and both byte limits;
    /// on refusal nothing changes.
    pub async fn set_checked(
        &self,
        key: &str,
        value: Value,
        limits: Limits,
    ) -> Result<(), AppError> {
        validate_key(key)?;
        let size = json_len(&value).unwrap_or(usize::MAX);
        if size > limits.max_value_bytes {
            return Err(AppError::PayloadTooLarge(format!(
                "The value is {size} bytes as JSON; one value may be at most {} bytes.",
                limits.max_value_bytes
            )));
        }
        let mut all = self.data().await?;
        all.insert(key.to_owned(), value.clone());
        self.info.fits(all).map_err(AppError::PayloadTooLarge)?;
        self.session.insert_value(key, value).await?;
        Ok(())
    }

    /// Removes a visitor's key; absent keys are fine.
    pub async fn remove_checked(&self, key: &str) -> Result<Option<Value>, AppError> {
        validate_key(key)?;
        Ok(self.session.remove_value(key).await?)
    }

    /// Leaves a message for the next page. Only call when the session
    /// survives the action (after delete or logout, use a `done` code).
    pub async fn flash(&self, level: &str, text: impl Into<String>) -> Result<(), AppError> {
        let flash = Flash {
            level: level.into(),
            text: text.into(),
        };
        self.session.insert(FLASH, flash).await?;
        Ok(())
    }

    /// Takes the pending message, if any (a write: only when one is there).
    pub async fn take_flash(&self) -> Result<Option<Flash>, AppError> {
        if self.session.get_value(FLASH).await?.is_none() {
            return Ok(None);
        }
        let flash = self.get_typed::<Flash>(FLASH).await?;
        self.session.remove_value(FLASH).await?;
        Ok(flash)
    }

    /// Counts a visit to the root page when a session exists; returns the count.
    /// A session so close to its size limit that one more digit would not
    /// fit keeps its count: the page that lets the visitor delete data must
    /// never answer 413 itself.
    pub async fn count_visit(&self) -> Result<Option<i64>, AppError> {
        if !self.exists() {
            return Ok(None);
        }
        let before = self.get_typed::<i64>(VISITS).await?.unwrap_or(0);
        let visits = before.saturating_add(1);
        // Only a count that gains a digit can grow the record.
        if visits.to_string().len() > before.to_string().len() {
            let mut all = self.data().await?;
            all.insert(VISITS.to_owned(), visits.into());
            if self.info.fits(all).is_err() {
                tracing::debug!("session at its size limit: this visit is not counted");
                return Ok(Some(before));
            }
        }
        self.session.insert(VISITS, visits).await?;
        Ok(Some(visits))
    }

    pub async fn user(&self) -> Result<Option<UserBucket>, AppError> {
        Ok(self
            .get_typed::<UserBucket>(USER)
            .await?
            .filter(|u| u.v == UserBucket::VERSION))
    }

    pub async fn set_user(&self, name: &str) -> Result<(), AppError> {
        let bucket = UserBucket {
            v: UserBucket::VERSION,
            name: name.to_owned(),
            logged_in_at: OffsetDateTime::now_utc().unix_timestamp(),
        };
        self.session.insert(USER, bucket).await?;
        Ok(())
    }

    pub fn created_at(&self) -> Option<OffsetDateTime> {
        self.info.loaded.as_ref().and_then(|l| l.created_at())
    }

    pub fn stored_expiry(&self) -> Option<OffsetDateTime> {
        self.info.loaded.as_ref().map(|l| l.expires_at)
    }

    /// Is `_created_at` the only thing besides the visitor's keys? Used by
    /// pages to label the site's own keys.
    pub fn is_site_key(key: &str) -> bool {
        is_reserved(key) || key == CREATED_AT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"k".repeat(128)).is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(129)).is_err());
        assert!(validate_key("a\nb").is_err());
        assert!(validate_key("_visits").is_err());
        assert!(validate_key("héllo wörld").is_ok());
    }
}
