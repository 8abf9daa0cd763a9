//! Session metrics: what the engine did with sessions, and how long each
//! store operation took.
//!
//! The metrics live in a `prometheus_client` [`Registry`] owned by the
//! application that creates them (one per app, not one per process), so
//! several apps in one process (tests, or two sites in one binary) each
//! count their own. The engine holds an `Option<Arc<SessionMetrics>>`:
//! `None` (metrics switched off) costs one branch per event.
//!
//! Every method is a relaxed atomic add or one uncontended lock: cheap
//! enough for every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::store::{Capability, Inspect, Keyed, SiteStore, WriteOutcome};

/// A store operation, as the `operation` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Create,
    Load,
    Save,
    Touch,
    Delete,
    Ping,
    Count,
    CountExpired,
    PurgeExpired,
    Clear,
    /// The user index's compare-and-swap.
    Swap,
}

impl StoreOp {
    pub const ALL: [StoreOp; 11] = [
        StoreOp::Create,
        StoreOp::Load,
        StoreOp::Save,
        StoreOp::Touch,
        StoreOp::Delete,
        StoreOp::Ping,
        StoreOp::Count,
        StoreOp::CountExpired,
        StoreOp::PurgeExpired,
        StoreOp::Clear,
        StoreOp::Swap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Create => "create",
            StoreOp::Load => "load",
            StoreOp::Save => "save",
            StoreOp::Touch => "touch",
            StoreOp::Delete => "delete",
            StoreOp::Ping => "ping",
            StoreOp::Count => "count",
            StoreOp::CountExpired => "count_expired",
            StoreOp::PurgeExpired => "purge_expired",
            StoreOp::Clear => "clear",
            StoreOp::Swap => "swap",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    backend: &'static str,
    operation: &'static str,
}

/// Latency buckets in seconds: 50 µs (memory) to 5 s (a command timeout).
const LATENCY_BUCKETS: [f64; 15] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The engine's counters and store histograms, registered in the
/// application's registry under the `websessions_` prefix the caller gives.
#[derive(Debug)]
pub struct SessionMetrics {
    created: Counter,
    loaded: Counter,
    saved: Counter,
    touched: Counter,
    deleted: Counter,
    refused: Counter,
    expired_on_load: Counter,
    revoked: Counter,
    /// One histogram per operation, indexed like `StoreOp::ALL`, created
    /// up front so an observation never looks a label set up.
    latency: Vec<Histogram>,
    errors: Vec<Counter>,
}

impl SessionMetrics {
    /// Registers the session metrics in `registry`; `backend` labels the
    /// store metrics ("redis", "database", …).
    pub fn new(registry: &mut Registry, backend: &'static str) -> Self {
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let created = counter(
            registry,
            "sessions_created",
            "Sessions stored for the first time (a new session, or a new id after cycling)",
        );
        let loaded = counter(
            registry,
            "sessions_loaded",
            "Requests whose session cookie named a live session",
        );
        let saved = counter(
            registry,
            "sessions_saved",
            "Changed sessions written back to the store",
        );
        let touched = counter(
            registry,
            "sessions_touched",
            "Unchanged sessions extended (expiry only)",
        );
        let deleted = counter(
            registry,
            "sessions_deleted",
            "Sessions deleted (delete, logout, cycle's old id)",
        );
        let refused = counter(
            registry,
            "sessions_refused",
            "Session writes refused as too large (413)",
        );
        let expired_on_load = counter(
            registry,
            "sessions_expired_on_load",
            "Session cookies that named no live session (expired, deleted or unknown): a fresh session instead",
        );
        let revoked = counter(
            registry,
            "sessions_revoked",
            "Sessions revoked from another session of the same user",
        );

        let latency_family: Family<StoreLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let error_family: Family<StoreLabels, Counter> = Family::default();
        let mut latency = Vec::with_capacity(StoreOp::ALL.len());
        let mut errors = Vec::with_capacity(StoreOp::ALL.len());
        // Store metrics only exist for a server-side store; the cookie
        // backend registers none (it has no store to time).
        if backend != "cookie" {
            for op in StoreOp::ALL {
                let labels = StoreLabels {
                    backend,
                    operation: op.as_str(),
                };
                latency.push(latency_family.get_or_create(&labels).clone());
                errors.push(error_family.get_or_create(&labels).clone());
            }
            registry.register_with_unit(
                "store_operation_duration",
                "Time each session store operation took",
                Unit::Seconds,
                latency_family,
            );
            registry.register(
                "store_errors",
                "Session store operations that failed (the request got 503)",
                error_family,
            );
        }
        Self {
            created,
            loaded,
            saved,
            touched,
            deleted,
            refused,
            expired_on_load,
            revoked,
            latency,
            errors,
        }
    }

    pub fn created(&self) {
        self.created.inc();
    }
    pub fn loaded(&self) {
        self.loaded.inc();
    }
    pub fn saved(&self) {
        self.saved.inc();
    }
    pub fn touched(&self) {
        self.touched.inc();
    }
    pub fn deleted(&self) {
        self.deleted.inc();
    }
    pub fn refused(&self) {
        self.refused.inc();
    }
    pub fn expired_on_load(&self) {
        self.expired_on_load.inc();
    }
    pub fn revoked(&self, n: u64) {
        self.revoked.inc_by(n);
    }

    /// Records one store operation's duration, and its failure.
    pub fn observe_store(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        let i = op as usize;
        if let Some(h) = self.latency.get(i) {
            h.observe(elapsed.as_secs_f64());
        }
        if !ok {
            if let Some(c) = self.errors.get(i) {
                c.inc();
            }
        }
    }

    /// `store`, with every operation timed into these metrics.
    pub fn wrap(self: &Arc<Self>, store: Arc<dyn SiteStore>) -> Arc<dyn SiteStore> {
        Arc::new(MeteredStore {
            inner: store,
            metrics: self.clone(),
        })
    }
}

/// Calls a metrics method when metrics are on: `count(&m, SessionMetrics::saved)`.
pub fn count(metrics: &Option<Arc<SessionMetrics>>, event: fn(&SessionMetrics)) {
    if let Some(m) = metrics {
        event(m);
    }
}

/// A store that times every operation of the store it wraps.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn SiteStore>,
    metrics: Arc<SessionMetrics>,
}

impl MeteredStore {
    async fn timed<T>(
        &self,
        op: StoreOp,
        f: impl Future<Output = session_store::Result<T>>,
    ) -> session_store::Result<T> {
        let start = Instant::now();
        let result = f.await;
        self.metrics
            .observe_store(op, start.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl SessionStore for MeteredStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.timed(StoreOp::Create, self.inner.create(record)).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.timed(StoreOp::Save, self.inner.save(record)).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.timed(StoreOp::Load, self.inner.load(id)).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.timed(StoreOp::Delete, self.inner.delete(id)).await
    }
}

#[async_trait]
impl SiteStore for MeteredStore {
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome> {
        self.timed(StoreOp::Save, self.inner.save_existing(record))
            .await
    }

    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        self.timed(StoreOp::Touch, self.inner.touch(id, expires_at))
            .await
    }

    async fn ping(&self) -> session_store::Result<()> {
        self.timed(StoreOp::Ping, self.inner.ping()).await
    }

    async fn count(&self) -> session_store::Result<Capability<u64>> {
        self.timed(StoreOp::Count, self.inner.count()).await
    }

    async fn count_expired(&self) -> session_store::Result<Capability<u64>> {
        self.timed(StoreOp::CountExpired, self.inner.count_expired())
            .await
    }

    async fn purge_expired(&self) -> session_store::Result<Capability<u64>> {
        self.timed(StoreOp::PurgeExpired, self.inner.purge_expired())
            .await
    }

    async fn clear(&self) -> session_store::Result<Capability<u64>> {
        self.timed(StoreOp::Clear, self.inner.clear()).await
    }

    async fn delete_keyed(&self, key: &str) -> session_store::Result<()> {
        self.timed(StoreOp::Delete, self.inner.delete_keyed(key))
            .await
    }

    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>> {
        self.timed(StoreOp::Load, self.inner.load_keyed(key)).await
    }

    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool> {
        self.timed(StoreOp::Swap, self.inner.swap_keyed(key, expected, new))
            .await
    }

    /// Inspection is for pages that teach, not a store operation to time.
    fn inspector(&self) -> Option<&dyn Inspect> {
        self.inner.inspector()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::memory::MemoryStore;

    fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[tokio::test]
    async fn the_wrapper_times_each_operation_under_its_name() {
        let mut registry = Registry::with_prefix("websessions");
        let metrics = Arc::new(SessionMetrics::new(&mut registry, "memory"));
        let store = metrics.wrap(Arc::new(MemoryStore::new()));
        let mut record = Record {
            id: Id::default(),
            data: [("k".to_owned(), serde_json::json!(1))].into(),
            expiry_date: OffsetDateTime::now_utc() + Duration::from_secs(60),
        };
        store.create(&mut record).await.unwrap();
        store.load(&record.id).await.unwrap();
        store.load(&record.id).await.unwrap();
        metrics.created();
        let text = encode(&registry);
        assert!(text.contains(
            r#"websessions_store_operation_duration_seconds_count{backend="memory",operation="load"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"websessions_store_operation_duration_seconds_count{backend="memory",operation="create"} 1"#
        ));
        assert!(
            text.contains(r#"websessions_store_errors_total{backend="memory",operation="load"} 0"#)
        );
        assert!(text.contains("websessions_sessions_created_total 1"));
    }

    #[test]
    fn the_cookie_backend_has_no_store_metrics() {
        let mut registry = Registry::with_prefix("websessions");
        let _metrics = SessionMetrics::new(&mut registry, "cookie");
        let text = encode(&registry);
        assert!(!text.contains("store_operation"), "{text}");
        assert!(text.contains("websessions_sessions_refused_total 0"));
    }
}
