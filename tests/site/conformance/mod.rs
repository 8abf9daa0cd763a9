//! One conformance suite, written once, run against every backend: the same
//! scenarios over the real app on a real port, each test with its own store.

mod scenarios;

crate::backends! {
    #[tokio::test]
    [
        file, memory, sqlite, postgres, mysql,
        redis, redis_cluster, rediss, rediss_cluster, redis_sentinel,
        memcached, cookie_private, cookie_signed,
    ] => {
        scenarios::{
            new_visitor_gets_no_session,
            values_are_created_read_and_updated,
            the_session_cookie_carries_its_attributes,
            a_removed_key_is_gone_and_the_others_stay,
            an_explicit_save_creates_nothing_alone_and_resends_the_cookie,
            deleting_the_session_removes_its_record_and_cookie,
            cycling_keeps_the_data_and_kills_the_old_id,
            idle_expiry_ends_a_quiet_session,
            steady_reads_touch_about_once_per_interval,
            absolute_expiry_ends_an_active_session,
            a_read_extends_the_session,
            with_extension_off_only_writes_extend,
            a_read_within_the_touch_interval_does_not_extend,
            polling_the_expiry_never_extends,
            purge_deletes_only_expired_sessions,
            clear_deletes_every_session_where_the_store_can,
            bad_cookies_give_a_fresh_session,
            a_deleted_session_stays_deleted,
            concurrent_visitors_never_mix,
            writes_over_the_size_limits_are_refused,
            json_nested_deeper_than_64_levels_is_refused,
            saves_and_writes_do_not_outlive_the_absolute_timeout,
            a_non_ascii_cookie_beside_the_session_cookie_does_not_hide_it,
            health_reports_the_backend_and_sets_no_cookie,
        },
    }
}
