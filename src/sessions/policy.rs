//! The session rules, in one place. Every backend — the server-side stores
//! and the cookie backend alike — asks this module:
//! - when a session expires: `min(now + idle, created + absolute)`;
//! - whether a loaded record is still within its absolute cap;
//! - whether an unchanged session is due for a touch;
//! - what `_created_at` a record carries (stamped on first save, kept by a
//!   new id);
//! - what the cookie looks like (attributes, `Max-Age` rounded up).
//!
//! Time comes from a [`Clock`], real by default, so tests can move it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::session::Record;

use super::keys::CREATED_AT;

/// Where "now" comes from.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> OffsetDateTime;

    /// `now()` in nanoseconds since the Unix epoch. The rules every
    /// request checks compare integers: building an `OffsetDateTime` and
    /// adding to it costs more than the rest of a memory-backend read.
    fn now_nanos(&self) -> i128 {
        self.now().unix_timestamp_nanos()
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn now_nanos(&self) -> i128 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => nanos(since),
            Err(before) => -nanos(before.duration()),
        }
    }
}

/// A clock that stands still until moved: tests advance it instead of
/// sleeping. It starts at the real time, so stores that keep their own
/// clock (a Redis TTL) still see sensible expiries.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Arc::new(Self {
            nanos: AtomicI64::new(i64::try_from(now).unwrap_or(i64::MAX)),
        })
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        from_unix_nanos(self.now_nanos())
    }

    fn now_nanos(&self) -> i128 {
        i128::from(self.nanos.load(Ordering::SeqCst))
    }
}

/// How the session cookie is written.
#[derive(Debug, Clone)]
pub struct CookieAttributes {
    pub name: String,
    pub secure: bool,
    pub same_site: SameSite,
}

impl CookieAttributes {
    /// `name=value; HttpOnly; SameSite=…; Path=/; Max-Age=…[; Secure]`.
    pub fn build(&self, value: String, max_age: time::Duration) -> Cookie<'static> {
        Cookie::build((self.name.clone(), value))
            .http_only(true)
            .same_site(self.same_site)
            .secure(self.secure)
            .path("/")
            .max_age(max_age)
            .build()
    }

    /// The cookie that makes the browser forget the session.
    pub fn removal(&self) -> Cookie<'static> {
        self.build(String::new(), time::Duration::ZERO)
    }

    /// [`build`](Self::build) as the `Set-Cookie` header, written directly:
    /// the same text as the cookie's `Display`, which a response that
    /// stores a session would otherwise pay for in formatting machinery.
    /// `None` when the value holds bytes a header cannot carry.
    pub fn header(&self, value: &str, max_age: time::Duration) -> Option<HeaderValue> {
        let mut text = String::with_capacity(self.name.len() + value.len() + 64);
        text.push_str(&self.name);
        text.push('=');
        text.push_str(value);
        text.push_str("; HttpOnly; SameSite=");
        text.push_str(match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        });
        if self.secure {
            text.push_str("; Secure");
        }
        text.push_str("; Path=/; Max-Age=");
        text.push_str(&max_age.whole_seconds().to_string());
        HeaderValue::from_maybe_shared(Bytes::from(text)).ok()
    }

    /// [`removal`](Self::removal) as the `Set-Cookie` header.
    pub fn removal_header(&self) -> Option<HeaderValue> {
        self.header("", time::Duration::ZERO)
    }
}

/// The rules every request and every backend follow.
#[derive(Debug, Clone)]
pub struct Policy {
    pub idle: Duration,
    /// `None` = no absolute cap.
    pub absolute: Option<Duration>,
    /// `false` = an unchanged session is neither saved nor extended.
    pub extend_on_every_request: bool,
    /// An unchanged session is extended at most this often.
    pub touch_interval: Duration,
    pub cookie: CookieAttributes,
    pub clock: Arc<dyn Clock>,
}

impl Policy {
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// `min(now + idle, created + absolute)`.
    pub fn expiry(&self, created_at: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
        let idle = now + self.idle;
        match self.absolute {
            Some(absolute) => idle.min(created_at + absolute),
            None => idle,
        }
    }

    /// [`expiry`](Self::expiry) in Unix nanoseconds.
    fn expiry_nanos(&self, created_at: i128, now: i128) -> i128 {
        let idle = now + nanos(self.idle);
        match self.absolute {
            Some(absolute) => idle.min(created_at + nanos(absolute)),
            None => idle,
        }
    }

    /// The record with its expiry capped at `created + absolute`, or `None`
    /// once that (or its own expiry) has passed. The cap is read from the
    /// record's own data, so it holds exactly whatever the backend and
    /// however coarse its clock (memcached keeps whole seconds).
    pub fn admit(&self, mut record: Record) -> Option<Record> {
        let created_at_ms = created_at_ms_of(&record);
        let mut expires = record.expiry_date.unix_timestamp_nanos();
        if let (Some(absolute), Some(created_at)) = (self.absolute, created_at_ms) {
            let cap = ms_to_nanos(created_at) + nanos(absolute);
            if cap < expires {
                expires = cap;
                record.expiry_date = from_unix_nanos(cap);
            }
        }
        (expires > self.clock.now_nanos()).then_some(record)
    }

    /// Stamps `_created_at` when the record has none (its first save) and
    /// sets the expiry a save stores. A new id keeps the stamp, so cycling
    /// never restarts the absolute timeout.
    pub fn prepare_save(&self, record: &mut Record) {
        let now = self.clock.now_nanos();
        let created_at = match created_at_ms_of(record) {
            Some(ms) => ms_to_nanos(ms),
            None => {
                let ms = i64::try_from(now.div_euclid(1_000_000)).unwrap_or(i64::MAX);
                record.data.insert(CREATED_AT.to_owned(), Value::from(ms));
                ms_to_nanos(ms)
            }
        };
        record.expiry_date = from_unix_nanos(self.expiry_nanos(created_at, now));
    }

    /// The expiry a touch would store now, when an unchanged session with
    /// this stored expiry (and `_created_at`, in Unix milliseconds as
    /// records store it) is due for one; `None` when it is not (extension
    /// is off, or the stored expiry is within `touch_interval` of it).
    pub fn touch_due(
        &self,
        created_at_ms: Option<i64>,
        stored_expiry: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        if !self.extend_on_every_request {
            return None;
        }
        let now = self.clock.now_nanos();
        let target = self.expiry_nanos(created_at_ms.map_or(now, ms_to_nanos), now);
        let due = stored_expiry.unix_timestamp_nanos() < target - nanos(self.touch_interval);
        due.then(|| from_unix_nanos(target))
    }

    /// `Max-Age` rounded *up* to whole seconds: rounding down would make the
    /// browser drop the cookie before the server lets the session go.
    pub fn max_age(&self, expires_at: OffsetDateTime) -> time::Duration {
        let left = expires_at.unix_timestamp_nanos() - self.clock.now_nanos();
        let seconds = u128::try_from(left).unwrap_or(0).div_ceil(1_000_000_000);
        time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
    }

    /// The session cookie's `Set-Cookie` header for a stored expiry.
    pub fn cookie_header(&self, value: &str, expires_at: OffsetDateTime) -> Option<HeaderValue> {
        self.cookie.header(value, self.max_age(expires_at))
    }
}

/// A record's `_created_at` as stored, in Unix milliseconds.
pub fn created_at_ms_of(record: &Record) -> Option<i64> {
    record.data.get(CREATED_AT).and_then(Value::as_i64)
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 4)
}

fn ms_to_nanos(ms: i64) -> i128 {
    i128::from(ms) * 1_000_000
}

fn from_unix_nanos(nanos: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    from_unix_nanos(ms_to_nanos(ms))
}

#[cfg(test)]
mod tests {
    use tower_sessions::session::Id;

    use super::*;

    fn created_at_of(record: &Record) -> Option<OffsetDateTime> {
        created_at_ms_of(record).map(from_unix_ms)
    }

    fn policy(idle: u64, absolute: Option<u64>, clock: Arc<ManualClock>) -> Policy {
        Policy {
            idle: Duration::from_secs(idle),
            absolute: absolute.map(Duration::from_secs),
            extend_on_every_request: true,
            touch_interval: Duration::from_secs(1),
            cookie: CookieAttributes {
                name: "id".into(),
                secure: false,
                same_site: SameSite::Lax,
            },
            clock,
        }
    }

    fn record_created(at: OffsetDateTime, expires: OffsetDateTime) -> Record {
        Record {
            id: Id::default(),
            data: [(CREATED_AT.to_owned(), Value::from(unix_ms(at)))].into(),
            expiry_date: expires,
        }
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_absolute() {
        let clock = ManualClock::new();
        let p = policy(3600, Some(7200), clock.clone());
        let created = clock.now();
        let early = created + Duration::from_secs(60);
        assert_eq!(p.expiry(created, early), early + Duration::from_secs(3600));
        let late = created + Duration::from_secs(7000);
        assert_eq!(p.expiry(created, late), created + Duration::from_secs(7200));
        let uncapped = Policy {
            absolute: None,
            ..p
        };
        assert_eq!(
            uncapped.expiry(created, late),
            late + Duration::from_secs(3600)
        );
    }

    #[test]
    fn a_record_past_its_absolute_cap_is_not_admitted_and_a_live_one_is_trimmed_to_it() {
        let clock = ManualClock::new();
        let p = policy(2, Some(3), clock.clone());
        let created = clock.now();
        // The store still holds it (a coarse TTL) after the cap has passed.
        let stale = record_created(created, created + Duration::from_secs(5));
        clock.advance(Duration::from_millis(3500));
        assert_eq!(p.admit(stale), None);
        let created = clock.now();
        let fresh = record_created(created, created + Duration::from_secs(5));
        clock.advance(Duration::from_secs(1));
        let cap = created_at_of(&fresh).expect("stamped") + Duration::from_secs(3);
        assert_eq!(p.admit(fresh).map(|r| r.expiry_date), Some(cap));
    }

    #[test]
    fn a_save_stamps_created_at_once_and_never_moves_the_expiry_past_the_cap() {
        let clock = ManualClock::new();
        let p = policy(2, Some(4), clock.clone());
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: clock.now(),
        };
        p.prepare_save(&mut record);
        let created = created_at_of(&record).expect("stamped");
        for _ in 0..10 {
            clock.advance(Duration::from_secs(1));
            p.prepare_save(&mut record);
            assert!(record.expiry_date <= created + Duration::from_secs(4));
            assert_eq!(created_at_of(&record), Some(created), "kept");
        }
    }

    #[test]
    fn a_touch_is_due_only_when_the_stored_expiry_lags_by_more_than_the_interval() {
        let clock = ManualClock::new();
        let p = policy(60, None, clock.clone());
        let stored = p.expiry(clock.now(), clock.now());
        assert_eq!(p.touch_due(None, stored), None);
        clock.advance(Duration::from_millis(900));
        assert_eq!(p.touch_due(None, stored), None);
        clock.advance(Duration::from_millis(200));
        assert!(p.touch_due(None, stored).is_some());
        let off = Policy {
            extend_on_every_request: false,
            ..p
        };
        assert_eq!(off.touch_due(None, stored), None);
    }

    #[test]
    fn max_age_rounds_up_to_whole_seconds() {
        let clock = ManualClock::new();
        let p = policy(60, None, clock.clone());
        let at = clock.now() + Duration::from_millis(1500);
        assert_eq!(p.max_age(at), time::Duration::seconds(2));
        assert_eq!(p.max_age(clock.now()), time::Duration::ZERO);
    }

    #[test]
    fn the_cookie_header_is_the_cookie_crates_text() {
        for same_site in [SameSite::Strict, SameSite::Lax, SameSite::None] {
            for secure in [false, true] {
                let attributes = CookieAttributes {
                    name: "session_id".into(),
                    secure,
                    same_site,
                };
                for (value, seconds) in [("abc-_123", 3600), ("", 0), ("x", 1)] {
                    let max_age = time::Duration::seconds(seconds);
                    let header = attributes.header(value, max_age).expect("a header");
                    let built = attributes.build(value.to_owned(), max_age).to_string();
                    assert_eq!(header.to_str().unwrap(), built);
                }
                let removal = attributes.removal_header().expect("a header");
                assert_eq!(removal.to_str().unwrap(), attributes.removal().to_string());
            }
        }
    }

    #[test]
    fn the_system_clock_agrees_with_itself_in_nanoseconds() {
        let before = SystemClock.now().unix_timestamp_nanos();
        let nanos = SystemClock.now_nanos();
        let after = SystemClock.now().unix_timestamp_nanos();
        assert!(
            before <= nanos && nanos <= after,
            "{before} {nanos} {after}"
        );
    }

    #[test]
    fn the_integer_rules_agree_with_the_date_arithmetic() {
        let clock = ManualClock::new();
        for (idle, absolute) in [(3600, Some(7200)), (2, Some(3)), (60, None)] {
            let p = policy(idle, absolute, clock.clone());
            let created = from_unix_ms(unix_ms(clock.now()));
            for step in [0, 1, 1500, 3_000, 7_000_000] {
                clock.advance(Duration::from_millis(step));
                let now = clock.now();
                let expected = p.expiry(created, now);
                let long_ago = now - Duration::from_secs(86_400);
                assert_eq!(
                    p.touch_due(Some(unix_ms(created)), long_ago),
                    Some(expected)
                );
                let mut record = record_created(created, long_ago);
                p.prepare_save(&mut record);
                assert_eq!(record.expiry_date, expected);
                let fits_seconds = (expected - now).as_seconds_f64().ceil().max(0.0);
                assert_eq!(p.max_age(expected).whole_seconds(), fits_seconds as i64);
            }
        }
    }
}
