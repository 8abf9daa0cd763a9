//! Reliability and security: hostile input, session fixation,
//! response headers, concurrency of one visitor, touches and resurrection,
//! ids hashed at rest, crash safety, store outages, load and logs. Scenarios
//! written once and instantiated per backend, like the conformance suite;
//! what the conformance suite already covers is not repeated here.

#[path = "../support/mod.rs"]
mod support;

#[path = "../forwarder/mod.rs"]
mod forwarder;

mod at_rest;
mod binary;
mod common;
mod concurrency;
mod cookie_logs;
mod fixation;
mod headers;
mod hostile;
mod load;
mod near_limit;
mod outage;
mod props;
mod slow_clients;

/// Scenarios that hold on every backend, the cookie backend included.
macro_rules! every_backend {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use crate::support::Kind;
            const KIND: Kind = $kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn hostile_cookies() {
                crate::hostile::hostile_cookies(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expired_cookie() {
                crate::hostile::expired_cookie(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn hostile_keys() {
                crate::hostile::hostile_keys(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn hostile_values_and_bodies() {
                crate::hostile::hostile_values_and_bodies(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unknown_routes_and_methods() {
                crate::hostile::unknown_routes_and_methods(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn login_cycles_and_logout_deletes() {
                crate::fixation::login_cycles_and_logout_deletes(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn planted_id_is_never_adopted() {
                crate::fixation::planted_id_is_never_adopted(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn security_headers() {
                crate::headers::security_headers(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cookie_secure_and_http_only() {
                crate::headers::cookie_secure_and_http_only(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn load() {
                crate::load::load(KIND).await
            }
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_path_errors_are_json() {
    hostile::api_path_errors_are_json().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_api_writes_are_refused() {
    hostile::cross_site_api_writes_are_refused().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_hides_the_raw_error_in_production() {
    outage::healthz_hides_the_raw_error_in_production().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_is_disconnected() {
    slow_clients::half_a_header_is_disconnected().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait() {
    slow_clients::connections_beyond_the_cap_wait().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_408_carries_the_security_headers() {
    slow_clients::request_timeout_408_carries_the_security_headers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_path_not_utf8_is_400() {
    hostile::api_path_not_utf8_is_400().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_at_the_item_limit_plus_a_flash_is_413_not_503() {
    near_limit::memcached_at_the_item_limit_plus_a_flash_is_413_not_503().await
}

/// The cookie backend's own guarantees, in both modes.
macro_rules! cookie_backend {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use crate::support::Kind;
            const KIND: Kind = $kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_write_that_would_overflow_the_final_cookie_is_refused_and_changes_nothing() {
                crate::near_limit::a_write_that_would_overflow_the_final_cookie_is_refused_and_changes_nothing(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_response_sends_a_session_cookie_over_the_browser_limit() {
                crate::near_limit::no_response_sends_a_session_cookie_over_the_browser_limit(KIND)
                    .await
            }
            // Current-thread: the server logs to this thread's subscriber.
            #[tokio::test]
            async fn a_malformed_or_forged_cookie_is_logged_as_a_warning() {
                crate::cookie_logs::a_malformed_or_forged_cookie_is_logged_as_a_warning(KIND).await
            }
        }
    };
}

mod cookie {
    cookie_backend!(private, Kind::Cookie);
    cookie_backend!(signed, Kind::CookieSigned);
}

/// Scenarios of the backends that keep sessions on the server.
macro_rules! server_side {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use crate::support::Kind;
            const KIND: Kind = $kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn serialized_increments_are_exact() {
                crate::concurrency::serialized_increments_are_exact(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn visitors_stay_parallel_when_serialized() {
                crate::concurrency::visitors_stay_parallel_when_serialized(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_touch_keeps_a_concurrent_write() {
                crate::concurrency::slow_touch_keeps_a_concurrent_write(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_write_after_delete_does_not_resurrect() {
                crate::concurrency::slow_write_after_delete_does_not_resurrect(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_write_after_logout_does_not_resurrect() {
                crate::concurrency::slow_write_after_logout_does_not_resurrect(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ids_hashed_at_rest() {
                crate::at_rest::ids_hashed_at_rest(KIND).await
            }
        }
    };
}

/// Outages of the stores behind a network connection.
macro_rules! network_store {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use crate::support::Kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn outage_gives_503_and_recovers() {
                crate::outage::outage_gives_503_and_recovers($kind).await
            }
        }
    };
}

mod every {
    every_backend!(file, Kind::File);
    every_backend!(memory, Kind::Memory);
    every_backend!(sqlite, Kind::Sqlite);
    every_backend!(postgres, Kind::Postgres);
    every_backend!(mysql, Kind::Mysql);
    every_backend!(redis, Kind::Redis);
    every_backend!(memcached, Kind::Memcached);
    every_backend!(cookie_private, Kind::Cookie);
    every_backend!(cookie_signed, Kind::CookieSigned);
}

mod server {
    server_side!(file, Kind::File);
    server_side!(memory, Kind::Memory);
    server_side!(sqlite, Kind::Sqlite);
    server_side!(postgres, Kind::Postgres);
    server_side!(mysql, Kind::Mysql);
    server_side!(redis, Kind::Redis);
    server_side!(memcached, Kind::Memcached);
}

mod outages {
    network_store!(postgres, Kind::Postgres);
    network_store!(mysql, Kind::Mysql);
    network_store!(redis, Kind::Redis);
    network_store!(memcached, Kind::Memcached);
}
