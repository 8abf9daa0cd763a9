//! One store-level suite, written once over the `SiteStore` trait and run
//! against every server-side store: file, memory, SQLite, PostgreSQL,
//! MariaDB, Redis, Redis Cluster and memcached. Each store brings a small
//! fixture (its own file here): open an isolated store, read its records
//! at rest, corrupt one, reach it through a connection the test can cut,
//! clean up. What only one store does (migrations, memcached's item limit,
//! TTLs past 30 days…) is tested in that store's file.
//!
//! A test is `stores::<scenario>::<store>`: `cargo test --test site
//! stores::` runs them all, `cargo test --test site redis` one store's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use websessions::sessions::store::{
    AtRest, Capability, SiteStore, WriteOutcome, from_unix_ms, storage_key, unix_ms,
};

use crate::forwarder::Forwarder;
use crate::support::Kind;

/// `suite!(runner, stores: [store: Kind, …], scenarios: [scenario, …])`: one test per store
/// and scenario, `<scenario>::<store>`, each name written once. The store
/// list is one token tree so that it can repeat inside the scenarios'.
macro_rules! suite {
    ($runner:ident, stores: $stores:tt, scenarios: [$($scenario:ident),* $(,)?]) => {
        $( suite!(@one $runner, $scenario, $stores); )*
    };
    (@one $runner:ident, $scenario:ident, [$($store:ident: $kind:ident),* $(,)?]) => {
        mod $scenario {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $store() {
                    super::$runner(crate::support::Kind::$kind, super::$scenario).await;
                }
            )*
        }
    };
}

mod database;
mod file;
mod memcached;
mod memory;
mod redis;

// ------------------------------------------------------------ the suite

suite!(
    run,
    stores: [
        file: File,
        memory: Memory,
        sqlite: Sqlite,
        postgres: Postgres,
        mysql: Mysql,
        redis: Redis,
        redis_cluster: RedisCluster,
        memcached: Memcached,
    ],
    scenarios: [
        create_load_save_touch_delete,
        create_is_insert_only,
        a_deleted_session_stays_deleted,
        a_write_whose_expiry_has_passed_ends_the_session,
        expired_records_are_never_served_and_purge_removes_them,
        the_store_expires_a_record_and_a_touch_extends_it,
        ids_are_hashed_at_rest,
        concurrent_writers_each_keep_their_last_save,
    ]
);

// The memory store holds no bytes that could be corrupted.
suite!(
    run,
    stores: [
        file: File,
        sqlite: Sqlite,
        postgres: Postgres,
        mysql: Mysql,
        redis: Redis,
        redis_cluster: RedisCluster,
        memcached: Memcached,
    ],
    scenarios: [a_corrupted_record_is_absent]
);

// memcached cannot list its keys, so it cannot clear them either.
suite!(
    run,
    stores: [
        file: File,
        memory: Memory,
        sqlite: Sqlite,
        postgres: Postgres,
        mysql: Mysql,
        redis: Redis,
        redis_cluster: RedisCluster,
    ],
    scenarios: [clear_removes_every_record]
);

// The stores behind a network connection (a cluster's nodes announce their
// own addresses, so one forwarder cannot stand in for them).
suite!(
    run,
    stores: [
        postgres: Postgres,
        mysql: Mysql,
        redis: Redis,
        memcached: Memcached,
    ],
    scenarios: [an_outage_gives_errors_and_the_store_recovers]
);

// -------------------------------------------------------------- fixture

/// Where the stores differ, so that one scenario can hold them all.
#[derive(Debug, Clone, Copy)]
pub struct Traits {
    /// `count`, `count_expired`, `purge_expired` and `clear` are answered
    /// (memcached cannot list its keys).
    pub counts: bool,
    /// An expired record stays stored until purged (file, memory,
    /// database); Redis and memcached drop it themselves.
    pub keeps_expired: bool,
    /// How far a loaded expiry may be from the one written: Redis derives
    /// it from the key's remaining TTL.
    pub expiry_slack: time::Duration,
    /// What `Inspect::at_rest` calls the record, and facts it must give.
    pub at_rest_kind: &'static str,
    pub at_rest_facts: &'static [&'static str],
}

/// One store's fixture: an isolated store, and access to it at rest.
#[async_trait]
pub trait Backing: Send + Sync {
    fn traits(&self) -> Traits;

    /// What the store holds at rest for this test, as (where, bytes): every
    /// record it can list, and for the store that cannot, what it holds
    /// under each of `ids`.
    async fn dump(&self, ids: &[Id]) -> Vec<(String, Vec<u8>)>;

    /// Where `Inspect::at_rest` says `id`'s record lives.
    fn location(&self, id: &Id) -> String;

    /// Overwrites the stored bytes of `id`'s record, keeping its expiry.
    async fn corrupt(&self, id: &Id, bytes: &[u8]);

    /// The server behind the store, for a forwarder to stand between.
    fn upstream(&self) -> Option<SocketAddr> {
        None
    }

    /// The same isolated store (same database, same prefix), reached
    /// through `via`.
    async fn open_via(&self, via: SocketAddr) -> Arc<dyn SiteStore> {
        unreachable!("{via}: an in-process store has no connection to cut")
    }

    /// Removes what the store leaves besides records (a database, a
    /// folder), proving it clean where it can.
    async fn finish(&mut self) {}
}

/// One test's store. `finish()` clears it and proves it empty; dropped
/// without it (a failed test), the backing still removes its database.
pub struct Fx {
    pub store: Arc<dyn SiteStore>,
    backing: Box<dyn Backing>,
    /// Every id the test created or asked for: memcached cannot list, so
    /// this is how it is cleaned.
    ids: Vec<Id>,
}

/// Opens `kind`'s fixture; `None` after the SKIP line.
async fn open(kind: Kind) -> Option<Fx> {
    let (store, backing) = match kind {
        Kind::File => file::open(),
        Kind::Memory => memory::open(),
        Kind::Sqlite | Kind::Postgres | Kind::Mysql => database::open(kind).await?,
        Kind::Redis | Kind::RedisCluster => redis::open(kind).await?,
        Kind::Memcached => memcached::open().await?,
        other => unreachable!("{other:?} is not in the store suite"),
    };
    Some(Fx {
        store,
        backing,
        ids: Vec::new(),
    })
}

/// Runs one scenario on a fresh store of `kind`, then cleans it up.
pub async fn run(kind: Kind, scenario: impl AsyncFnOnce(&mut Fx)) {
    let Some(mut fx) = open(kind).await else {
        return;
    };
    scenario(&mut fx).await;
    fx.finish().await;
}

impl Fx {
    pub fn traits(&self) -> Traits {
        self.backing.traits()
    }

    /// Creates `record` in the test's store, remembering its id.
    pub async fn create(&mut self, record: &mut Record) {
        let store = self.store.clone();
        self.create_in(&store, record).await;
    }

    /// Creates `record` through `store` (the same one, reached another way).
    pub async fn create_in(&mut self, store: &Arc<dyn SiteStore>, record: &mut Record) {
        let asked = record.id;
        store.create(record).await.expect("create");
        self.ids.extend([asked, record.id]);
    }

    pub fn remember(&mut self, id: Id) {
        self.ids.push(id);
    }

    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        self.backing.dump(&self.ids).await
    }

    pub async fn corrupt(&self, id: &Id, bytes: &[u8]) {
        self.backing.corrupt(id, bytes).await;
    }

    /// The store behind a forwarder the test can cut.
    pub async fn through_forwarder(&self) -> (Forwarder, Arc<dyn SiteStore>) {
        let upstream = self.backing.upstream().expect("a network store");
        let forwarder = Forwarder::start(upstream).await;
        let store = self.backing.open_via(forwarder.addr()).await;
        (forwarder, store)
    }

    /// Asserts the store holds `expected`: its data, and its expiry within
    /// the store's slack.
    pub async fn assert_holds(&self, expected: &Record) {
        let loaded = self
            .store
            .load(&expected.id)
            .await
            .expect("load")
            .expect("the record is there");
        assert_eq!(loaded.id, expected.id);
        assert_eq!(loaded.data, expected.data);
        assert_close(loaded.expiry_date, expected.expiry_date, self.traits());
    }

    /// Ends the test: clears the store and proves it empty.
    async fn finish(mut self) {
        if self.traits().counts {
            self.store.clear().await.expect("clear");
            assert_eq!(count(&self.store).await, 0, "the store is empty");
        } else {
            for id in &self.ids {
                self.store.delete(id).await.expect("delete");
            }
            for id in &self.ids {
                assert!(self.store.load(id).await.expect("load").is_none());
            }
        }
        self.backing.finish().await;
    }
}

// -------------------------------------------------------------- helpers

/// An expiry `secs` from now, at the millisecond precision stores keep.
pub fn in_secs(secs: i64) -> OffsetDateTime {
    in_ms(secs * 1000)
}

pub fn in_ms(ms: i64) -> OffsetDateTime {
    from_unix_ms(unix_ms(OffsetDateTime::now_utc()) + ms)
}

pub fn record(pairs: &[(&str, Value)], expiry: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        expiry_date: expiry,
    }
}

pub fn supported(c: Capability<u64>) -> u64 {
    match c {
        Capability::Supported(n) => n,
        Capability::Unsupported(why) => panic!("unsupported: {why}"),
    }
}

pub async fn count(store: &Arc<dyn SiteStore>) -> u64 {
    supported(store.count().await.expect("count"))
}

fn assert_close(loaded: OffsetDateTime, expected: OffsetDateTime, traits: Traits) {
    assert!(
        (loaded - expected).abs() <= traits.expiry_slack,
        "expiry {loaded}, expected {expected} (slack {})",
        traits.expiry_slack
    );
}

/// Does any place in the dump hold the record of `id`?
fn holds(dump: &[(String, Vec<u8>)], id: &Id) -> bool {
    let key = storage_key(id);
    dump.iter().any(|(place, _)| place.contains(&key))
}

fn check_at_rest(t: &Fx, at_rest: &AtRest, id: &Id) {
    let traits = t.traits();
    assert_eq!(at_rest.kind, traits.at_rest_kind);
    assert_eq!(at_rest.location, t.backing.location(id));
    assert!(
        at_rest.location.contains(&storage_key(id)),
        "located by its hash"
    );
    assert!(!at_rest.location.contains(&id.to_string()));
    for fact in traits.at_rest_facts {
        assert!(
            at_rest.facts.iter().any(|(k, _)| k == fact),
            "fact {fact:?} in {:?}",
            at_rest.facts
        );
    }
}

/// Polls `ping` until the store answers again; each failed try has already
/// waited for the store's own timeout or been refused at once.
async fn recovers(store: &Arc<dyn SiteStore>) {
    for _ in 0..60 {
        if store.ping().await.is_ok() {
            return;
        }
        // Only a pause between tries while the client reconnects.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    store.ping().await.expect("the store recovers");
}

// ------------------------------------------------------------ scenarios

async fn create_load_save_touch_delete(t: &mut Fx) {
    let store = t.store.clone();
    let traits = t.traits();
    store.ping().await.unwrap();

    let mut rec = record(&[("a", json!(1))], in_secs(3600));
    let id = rec.id;
    t.create(&mut rec).await;
    assert_eq!(rec.id, id, "no conflict: the id is kept");
    t.assert_holds(&rec).await;

    rec.data.insert("b".into(), json!("two"));
    rec.expiry_date = in_secs(7200);
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
    t.assert_holds(&rec).await;
    // Identical data and expiry: MySQL reports no "changed" row unless
    // CLIENT_FOUND_ROWS is on; it must still count as written.
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
    // The same for a touch that does not move the expiry.
    assert_eq!(
        store.touch(&id, rec.expiry_date).await.unwrap(),
        WriteOutcome::Written
    );

    let later = in_secs(9000);
    assert_eq!(
        store.touch(&id, later).await.unwrap(),
        WriteOutcome::Written
    );
    rec.expiry_date = later;
    // A touch moves the expiry and keeps the data.
    t.assert_holds(&rec).await;

    let inspector = store.inspector().expect("every store here shows at rest");
    let at_rest = inspector.at_rest(&id).await.unwrap().expect("at rest");
    check_at_rest(t, &at_rest, &id);

    if traits.counts {
        assert_eq!(count(&store).await, 1);
        assert_eq!(supported(store.count_expired().await.unwrap()), 0);
        assert_eq!(supported(store.purge_expired().await.unwrap()), 0);
    } else {
        assert!(matches!(
            store.count().await.unwrap(),
            Capability::Unsupported(_)
        ));
    }

    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert!(inspector.at_rest(&id).await.unwrap().is_none());
    assert!(!holds(&t.dump().await, &id), "nothing left at rest");
    // Deleting what is absent is fine.
    store.delete(&id).await.unwrap();
    store.ping().await.unwrap();
}

async fn create_is_insert_only(t: &mut Fx) {
    let store = t.store.clone();
    let traits = t.traits();
    let mut first = record(&[("who", json!("first"))], in_secs(3600));
    t.create(&mut first).await;

    let mut second = record(&[("who", json!("second"))], in_secs(3600));
    second.id = first.id;
    t.create(&mut second).await;
    assert_ne!(second.id, first.id, "a live id is never overwritten");
    t.assert_holds(&first).await;
    t.assert_holds(&second).await;

    // An expired record under the same key is no live session: it may be
    // taken (Redis and memcached never stored it).
    let mut old = record(&[("who", json!("old"))], in_secs(-10));
    t.create(&mut old).await;
    let mut new = record(&[("who", json!("new"))], in_secs(3600));
    new.id = old.id;
    t.create(&mut new).await;
    assert_eq!(new.id, old.id);
    t.assert_holds(&new).await;
    if traits.counts {
        assert_eq!(count(&store).await, 3);
    }
}

async fn clear_removes_every_record(t: &mut Fx) {
    let store = t.store.clone();
    for secs in [3600, 3600, -5] {
        let mut rec = record(&[("x", json!(true))], in_secs(secs));
        t.create(&mut rec).await;
    }
    let stored = if t.traits().keeps_expired { 3 } else { 2 };
    assert_eq!(supported(store.clear().await.unwrap()), stored);
    assert_eq!(count(&store).await, 0);
    assert!(t.dump().await.is_empty(), "nothing left at rest");
    assert_eq!(supported(store.clear().await.unwrap()), 0);
}

async fn a_deleted_session_stays_deleted(t: &mut Fx) {
    let store = t.store.clone();
    let mut rec = record(&[("k", json!("v"))], in_secs(3600));
    t.create(&mut rec).await;
    store.delete(&rec.id).await.unwrap();

    assert_eq!(store.save_existing(&rec).await.unwrap(), WriteOutcome::Gone);
    assert_eq!(
        store.touch(&rec.id, in_secs(7200)).await.unwrap(),
        WriteOutcome::Gone
    );
    // tower-sessions' own `save` goes through the same update-only path.
    SessionStore::save(&*store, &rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
    assert!(!holds(&t.dump().await, &rec.id), "nothing written back");
    if t.traits().counts {
        assert_eq!(count(&store).await, 0);
    }
}

async fn a_write_whose_expiry_has_passed_ends_the_session(t: &mut Fx) {
    let store = t.store.clone();
    let mut live = record(&[("a", json!(2))], in_secs(60));
    t.create(&mut live).await;
    live.expiry_date = in_secs(-1);
    assert_eq!(
        store.save_existing(&live).await.unwrap(),
        WriteOutcome::Written
    );
    assert!(store.load(&live.id).await.unwrap().is_none());
    assert_eq!(
        store.save_existing(&live).await.unwrap(),
        WriteOutcome::Gone,
        "the ended session is not written again"
    );
}

async fn expired_records_are_never_served_and_purge_removes_them(t: &mut Fx) {
    let store = t.store.clone();
    let traits = t.traits();
    let mut live = Vec::new();
    for n in 0..3 {
        let mut rec = record(&[("n", json!(n))], in_secs(3600));
        t.create(&mut rec).await;
        live.push(rec);
    }
    let mut expired = Vec::new();
    for n in 0..2 {
        let mut rec = record(&[("n", json!(n))], in_secs(-5));
        t.create(&mut rec).await;
        expired.push(rec);
    }
    for rec in &expired {
        assert_eq!(store.load(&rec.id).await.unwrap(), None);
        assert_eq!(store.save_existing(rec).await.unwrap(), WriteOutcome::Gone);
        assert_eq!(
            store.touch(&rec.id, in_secs(3600)).await.unwrap(),
            WriteOutcome::Gone,
            "an expired session cannot be revived by a touch"
        );
    }
    if traits.counts {
        let kept = if traits.keeps_expired { 2 } else { 0 };
        assert_eq!(count(&store).await, 3 + kept);
        assert_eq!(supported(store.count_expired().await.unwrap()), kept);
        assert_eq!(supported(store.purge_expired().await.unwrap()), kept);
        assert_eq!(count(&store).await, 3);
        assert_eq!(supported(store.count_expired().await.unwrap()), 0);
        assert_eq!(supported(store.purge_expired().await.unwrap()), 0);
    }
    for rec in &live {
        t.assert_holds(rec).await;
    }
}

/// The one scenario that waits on the real clock: a store's own expiry
/// (a file's mtime, SQL `expires_at`, a Redis PXAT, a memcached TTL) can
/// only be seen to pass by letting real time pass.
async fn the_store_expires_a_record_and_a_touch_extends_it(t: &mut Fx) {
    let store = t.store.clone();
    let traits = t.traits();
    let mut idle = record(&[("k", json!("idle"))], in_ms(2000));
    t.create(&mut idle).await;
    let mut kept = record(&[("k", json!("kept"))], in_ms(2000));
    t.create(&mut kept).await;
    kept.expiry_date = in_secs(60);
    assert_eq!(
        store.touch(&kept.id, kept.expiry_date).await.unwrap(),
        WriteOutcome::Written
    );
    assert!(store.load(&idle.id).await.unwrap().is_some());

    // Real time, past `idle`'s expiry: the only way to see the store's own.
    let left = idle.expiry_date - OffsetDateTime::now_utc();
    tokio::time::sleep(left.unsigned_abs() + Duration::from_millis(300)).await;

    assert!(store.load(&idle.id).await.unwrap().is_none(), "expired");
    assert_eq!(
        store.touch(&idle.id, in_secs(60)).await.unwrap(),
        WriteOutcome::Gone,
        "an expired session cannot be revived by a touch"
    );
    let mut resaved = idle.clone();
    resaved.expiry_date = in_secs(60);
    assert_eq!(
        store.save_existing(&resaved).await.unwrap(),
        WriteOutcome::Gone,
        "nor by a save"
    );
    assert!(store.load(&idle.id).await.unwrap().is_none(), "still gone");
    t.assert_holds(&kept).await;
    if traits.counts && traits.keeps_expired {
        assert_eq!(supported(store.count_expired().await.unwrap()), 1);
    }
}

async fn a_corrupted_record_is_absent(t: &mut Fx) {
    let store = t.store.clone();
    let mut bad = record(&[("k", json!("v"))], in_secs(3600));
    let mut good = record(&[("k", json!("fine"))], in_secs(3600));
    t.create(&mut bad).await;
    t.create(&mut good).await;
    t.corrupt(&bad.id, b"\x00\xffnot json{").await;
    // Still stored, still live: absent for its bytes, not its expiry.
    let dump = t.dump().await;
    assert!(
        dump.iter().any(|(place, bytes)| {
            place.contains(&storage_key(&bad.id)) && bytes.ends_with(b"not json{")
        }),
        "the corrupted bytes are stored: {dump:?}"
    );
    if t.traits().counts {
        assert_eq!(supported(store.count_expired().await.unwrap()), 0);
    }

    assert_eq!(store.load(&bad.id).await.unwrap(), None);
    t.assert_holds(&good).await;
    // The "at rest" panel can still show what is there, as text.
    let inspector = store.inspector().expect("at rest");
    assert!(inspector.at_rest(&bad.id).await.unwrap().is_some());
}

async fn ids_are_hashed_at_rest(t: &mut Fx) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut rec = record(&[("n", json!(n)), ("user", json!("ada"))], in_secs(3600));
        t.create(&mut rec).await;
        ids.push(rec.id);
    }
    let dump = t.dump().await;
    assert_eq!(dump.len(), ids.len(), "one record each: {dump:?}");
    for (place, bytes) in &dump {
        let text = String::from_utf8_lossy(bytes);
        for id in &ids {
            let id = id.to_string();
            assert!(!place.contains(&id), "an id names {place}");
            assert!(!text.contains(&id), "an id is stored in {place}");
        }
    }
    for id in &ids {
        assert!(holds(&dump, id), "found under the hash of its id");
    }
}

async fn concurrent_writers_each_keep_their_last_save(t: &mut Fx) {
    const TASKS: usize = 50;
    const SAVES: i64 = 20;
    let store = t.store.clone();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = record(&[("task", json!(task)), ("n", json!(-1))], in_secs(3600));
            store.create(&mut rec).await.expect("create");
            for n in 0..SAVES {
                rec.data.insert("n".into(), json!(n));
                let outcome = store.save_existing(&rec).await.expect("save");
                assert_eq!(outcome, WriteOutcome::Written);
            }
            rec
        }));
    }
    for task in tasks {
        let rec = task.await.expect("task");
        t.remember(rec.id);
        t.assert_holds(&rec).await;
        assert_eq!(rec.data["n"], json!(SAVES - 1));
    }
    if t.traits().counts {
        assert_eq!(count(&store).await, TASKS as u64);
    }
}

async fn an_outage_gives_errors_and_the_store_recovers(t: &mut Fx) {
    let (mut forwarder, store) = t.through_forwarder().await;
    let mut rec = record(&[("k", json!("v"))], in_secs(3600));
    t.create_in(&store, &mut rec).await;
    store.ping().await.unwrap();

    forwarder.cut().await;
    // The clients' own timeouts turn a dead server into errors; the
    // generous bound only stops a hang from stalling the suite.
    let cut = async {
        store.ping().await.expect_err("ping while cut");
        let err = store.load(&rec.id).await.expect_err("load fails, not None");
        assert!(!err.to_string().contains(&rec.id.to_string()));
        store.save_existing(&rec).await.expect_err("save while cut");
    };
    tokio::time::timeout(Duration::from_secs(60), cut)
        .await
        .expect("errors, not a hang");

    forwarder.restore().await;
    recovers(&store).await;
    t.assert_holds(&rec).await;
    assert_eq!(
        store.save_existing(&rec).await.unwrap(),
        WriteOutcome::Written
    );
}
