//! Reliability and security: hostile input, session fixation,
//! response headers, concurrency of one visitor, touches and resurrection,
//! ids hashed at rest, crash safety, store outages, load and logs. Scenarios
//! written once and instantiated per backend, like the conformance suite;
//! what the conformance suite already covers is not repeated here.

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
async fn memcached_at_the_item_limit_plus_a_flash_is_413_not_503() {
    near_limit::memcached_at_the_item_limit_plus_a_flash_is_413_not_503().await
}

/// Scenarios that hold on every backend, the cookie backend included.
mod every {
    use super::*;
    crate::backends! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        [file, memory, sqlite, postgres, mysql, redis, memcached, cookie_private, cookie_signed] => {
            hostile::{
                hostile_cookies_get_a_fresh_session_never_a_5xx,
                an_expired_cookie_gets_a_fresh_session,
                hostile_keys_are_refused_and_change_nothing,
                hostile_values_and_bodies_are_refused_and_change_nothing,
            },
            fixation::{
                login_cycles_the_id_and_logout_deletes_the_session,
                planted_id_is_never_adopted,
            },
            headers::{
                every_response_carries_the_security_headers,
                with_secure_on_every_cookie_is_secure_and_http_only,
            },
            load::{two_hundred_visitors_never_see_each_others_data},
        }
    }
}

/// The cookie backend's own guarantees, in both modes.
mod cookie_backend {
    use super::*;
    crate::backends! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        [cookie_private, cookie_signed] => {
            near_limit::{
                a_write_that_would_overflow_the_final_cookie_is_refused_and_changes_nothing,
                no_response_sends_a_session_cookie_over_the_browser_limit,
            },
            // Current-thread: the server logs to this thread's subscriber.
            #[tokio::test]
            cookie_logs::{a_malformed_or_forged_cookie_is_logged_as_a_warning},
        }
    }
}

/// Scenarios of the backends that keep sessions on the server.
mod server_side {
    use super::*;
    crate::backends! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        [file, memory, sqlite, postgres, mysql, redis, memcached] => {
            concurrency::{
                serialized_increments_are_exact,
                visitors_stay_parallel_when_serialized,
                slow_touch_keeps_a_concurrent_write,
                slow_write_after_delete_does_not_resurrect,
                slow_write_after_logout_does_not_resurrect,
            },
            at_rest::{ids_hashed_at_rest},
        }
    }
}

/// Outages of the stores behind a network connection.
mod network_store {
    use super::*;
    crate::backends! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        [postgres, mysql, redis, memcached] => {
            outage::{an_outage_gives_503_and_the_site_recovers},
        }
    }
}
