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

/// Instantiates every scenario for one backend: one line per backend below.
macro_rules! browser_tests {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use super::scenarios as s;
            use super::support::Kind;
            const KIND: Kind = $kind;

            #[tokio::test]
            async fn first_visit_creates_no_session() {
                s::first_visit_creates_no_session(KIND).await
            }
            #[tokio::test]
            async fn store_shows_in_table_and_flash() {
                s::store_shows_in_table_and_flash(KIND).await
            }
            #[tokio::test]
            async fn reload_keeps_data() {
                s::reload_keeps_data(KIND).await
            }
            #[tokio::test]
            async fn get_with_default() {
                s::get_with_default(KIND).await
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
            async fn cycle_changes_fingerprint_keeps_data() {
                s::cycle_changes_fingerprint_keeps_data(KIND).await
            }
            #[tokio::test]
            async fn delete_session() {
                s::delete_session(KIND).await
            }
            #[tokio::test]
            async fn login_and_logout() {
                s::login_and_logout(KIND).await
            }
            #[tokio::test]
            async fn stale_csrf_token_is_refused() {
                s::stale_csrf_token_is_refused(KIND).await
            }
            #[tokio::test]
            async fn refused_write_shows_inline() {
                s::refused_write_shows_inline(KIND).await
            }
            #[tokio::test]
            async fn markup_in_keys_and_values_is_text() {
                s::markup_in_keys_and_values_is_text(KIND).await
            }
            #[tokio::test]
            async fn session_cookie_is_http_only() {
                s::session_cookie_is_http_only(KIND).await
            }
            #[tokio::test]
            async fn two_visitors_never_meet() {
                s::two_visitors_never_meet(KIND).await
            }
            #[tokio::test]
            async fn extend_off_read_does_not_move_expiry() {
                s::extend_off_read_does_not_move_expiry(KIND).await
            }
            #[tokio::test]
            async fn extend_on_read_moves_expiry() {
                s::extend_on_read_moves_expiry(KIND).await
            }
            #[tokio::test]
            async fn account_page_after_login() {
                s::account_page_after_login(KIND).await
            }
            #[tokio::test]
            async fn not_found_page_uses_layout() {
                s::not_found_page_uses_layout(KIND).await
            }
        }
    };
}

browser_tests!(file, Kind::File);
browser_tests!(memory, Kind::Memory);
browser_tests!(sqlite, Kind::Sqlite);
browser_tests!(cookie, Kind::Cookie);

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
