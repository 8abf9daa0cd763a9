//! `session.serialize_requests = true`: one visitor's requests run one at a
//! time (per instance). Whole-record saves are last-write-wins, so two
//! parallel requests of one visitor can lose a write; holding a per-visitor
//! lock from before the session is loaded until after it is saved makes
//! every read-modify-write of a session atomic.
//!
//! The lock is keyed by a hash of the session cookie (no cookie, no lock),
//! entries are removed when no request holds or waits for them, and the
//! request timeout sits outside this layer, so a stuck request releases it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub struct VisitorLocks {
    cookie_name: String,
    map: Mutex<HashMap<[u8; 32], Arc<AsyncMutex<()>>>>,
}

impl VisitorLocks {
    pub fn new(cookie_name: &str) -> Arc<Self> {
        Arc::new(Self {
            cookie_name: cookie_name.to_owned(),
            map: Mutex::default(),
        })
    }

    async fn lock(self: &Arc<Self>, key: [u8; 32]) -> VisitorGuard {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key).or_default().clone()
        };
        let guard = mutex.clone().lock_owned().await;
        VisitorGuard {
            guard: Some(guard),
            mutex,
            key,
            locks: self.clone(),
        }
    }
}

struct VisitorGuard {
    guard: Option<OwnedMutexGuard<()>>,
    mutex: Arc<AsyncMutex<()>>,
    key: [u8; 32],
    locks: Arc<VisitorLocks>,
}

impl Drop for VisitorGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and this guard hold it: nobody waits, remove it.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.key);
        }
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(locks, one_at_a_time)`.
pub async fn one_at_a_time(
    State(locks): State<Arc<VisitorLocks>>,
    req: Request,
    next: Next,
) -> Response {
    let cookie = super::layer::cookie_value(req.headers(), &locks.cookie_name);
    let Some(cookie) = cookie else {
        return next.run(req).await;
    };
    let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
    let _guard = locks.lock(key).await;
    next.run(req).await
}
