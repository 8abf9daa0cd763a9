//! One conformance suite, written once, run against every backend: the same
//! scenarios over the real app on a real port, each test with its own store.

#[path = "../support/mod.rs"]
mod support;

mod scenarios;

/// Instantiates every scenario of `scenarios` for one backend.
macro_rules! conformance_tests {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use super::scenarios as s;
            use super::support::Kind;
            const KIND: Kind = $kind;

            #[tokio::test]
            async fn new_visitor_gets_no_session() {
                s::new_visitor_gets_no_session(KIND).await
            }
            #[tokio::test]
            async fn create_read_update() {
                s::create_read_update(KIND).await
            }
            #[tokio::test]
            async fn cookie_attributes() {
                s::cookie_attributes(KIND).await
            }
            #[tokio::test]
            async fn remove_key() {
                s::remove_key(KIND).await
            }
            #[tokio::test]
            async fn explicit_save() {
                s::explicit_save(KIND).await
            }
            #[tokio::test]
            async fn delete_session() {
                s::delete_session(KIND).await
            }
            #[tokio::test]
            async fn cycle_keeps_data_and_kills_old_id() {
                s::cycle_keeps_data_and_kills_old_id(KIND).await
            }
            #[tokio::test]
            async fn idle_expiry() {
                s::idle_expiry(KIND).await
            }
            #[tokio::test]
            async fn steady_reads_touch_about_once_per_interval() {
                s::steady_reads_touch_about_once_per_interval(KIND).await
            }
            #[tokio::test]
            async fn absolute_expiry() {
                s::absolute_expiry(KIND).await
            }
            #[tokio::test]
            async fn extend_on_every_request() {
                s::extend_on_every_request(KIND).await
            }
            #[tokio::test]
            async fn extend_off_only_writes_extend() {
                s::extend_off_only_writes_extend(KIND).await
            }
            #[tokio::test]
            async fn touch_interval_throttles() {
                s::touch_interval_throttles(KIND).await
            }
            #[tokio::test]
            async fn expiry_route_never_extends() {
                s::expiry_route_never_extends(KIND).await
            }
            #[tokio::test]
            async fn purge_expired() {
                s::purge_expired(KIND).await
            }
            #[tokio::test]
            async fn clear() {
                s::clear(KIND).await
            }
            #[tokio::test]
            async fn bad_cookies_give_a_fresh_session() {
                s::bad_cookies_give_a_fresh_session(KIND).await
            }
            #[tokio::test]
            async fn no_resurrection_after_delete() {
                s::no_resurrection_after_delete(KIND).await
            }
            #[tokio::test]
            async fn concurrent_visitors_never_mix() {
                s::concurrent_visitors_never_mix(KIND).await
            }
            #[tokio::test]
            async fn size_limits() {
                s::size_limits(KIND).await
            }
            #[tokio::test]
            async fn bad_keys_and_bodies() {
                s::bad_keys_and_bodies(KIND).await
            }
            #[tokio::test]
            async fn json_nesting_limit() {
                s::json_nesting_limit(KIND).await
            }
            #[tokio::test]
            async fn saves_and_writes_do_not_outlive_the_absolute_timeout() {
                s::saves_and_writes_do_not_outlive_the_absolute_timeout(KIND).await
            }
            #[tokio::test]
            async fn a_non_ascii_cookie_beside_the_session_cookie_does_not_hide_it() {
                s::a_non_ascii_cookie_beside_the_session_cookie_does_not_hide_it(KIND).await
            }
            #[tokio::test]
            async fn health() {
                s::health(KIND).await
            }
        }
    };
}

conformance_tests!(file, Kind::File);
conformance_tests!(memory, Kind::Memory);
conformance_tests!(sqlite, Kind::Sqlite);
conformance_tests!(postgres, Kind::Postgres);
conformance_tests!(mysql, Kind::Mysql);
conformance_tests!(redis, Kind::Redis);
conformance_tests!(redis_cluster, Kind::RedisCluster);
conformance_tests!(rediss, Kind::Rediss);
conformance_tests!(rediss_cluster, Kind::RedissCluster);
conformance_tests!(redis_sentinel, Kind::RedisSentinel);
conformance_tests!(memcached, Kind::Memcached);
conformance_tests!(cookie_private, Kind::Cookie);
conformance_tests!(cookie_signed, Kind::CookieSigned);
