//! Browser-driven functional tests: headless Chromium, through Debian's
//! chromedriver, over the real pages of the real app. Every scenario runs
//! against every backend; each test has its own app, store and browser
//! profile, and ends by closing the browser and proving the store empty.
//!
//! Without chromedriver (`CHROMEDRIVER`, /usr/bin/chromedriver, `PATH`) each
//! test prints `SKIP browser: chromedriver not found` and passes.
//! `UPDATE_SCREENSHOTS=1` rewrites the screenshots in `docs/`.

#[path = "../support/mod.rs"]
mod support;

mod driver;
mod scenarios;

crate::backends! {
    #[tokio::test]
    [file, memory, sqlite, cookie_private] => {
        scenarios::{
            first_visit_creates_no_session,
            a_stored_value_shows_in_the_table_and_the_flash,
            a_reload_keeps_the_data,
            get_shows_the_value_or_the_marked_default,
            a_removed_key_leaves_the_table,
            an_explicit_save_keeps_the_id_and_creates_nothing_alone,
            cycling_changes_the_fingerprint_and_keeps_the_data,
            deleting_the_session_drops_the_cookie_and_the_data,
            login_cycles_the_id_and_logout_ends_the_session,
            stale_csrf_token_is_refused,
            a_refused_write_shows_its_error_inline,
            markup_in_keys_and_values_is_text,
            session_cookie_is_http_only,
            two_visitors_never_meet,
            with_extension_off_a_read_does_not_move_the_expiry,
            a_read_moves_the_expiry,
            the_account_page_lists_the_signed_in_sessions,
            the_not_found_page_uses_the_layout,
        },
    }
}

use support::Kind;

/// The docs' screenshots: the root page with its at-rest panel on three
/// backends, and the account page. Written to docs/ only with
/// `UPDATE_SCREENSHOTS=1`; what they must show is asserted on every run.
#[tokio::test]
async fn screenshot_file() {
    scenarios::screenshot_root(Kind::File, "screenshot-file.png").await
}
#[tokio::test]
async fn screenshot_database() {
    scenarios::screenshot_root(Kind::Sqlite, "screenshot-database.png").await
}
#[tokio::test]
async fn screenshot_cookie() {
    scenarios::screenshot_root(Kind::Cookie, "screenshot-cookie.png").await
}
#[tokio::test]
async fn screenshot_account() {
    scenarios::screenshot_account(Kind::File).await
}
