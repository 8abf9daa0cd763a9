//! The HTML side: CSRF, the typed session wrapper, page structs, and the
//! helpers every page handler shares.

pub mod csrf;
pub mod format;
pub mod page;
pub mod site_session;
pub mod templates;

use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG_ERRORS: AtomicBool = AtomicBool::new(false);

/// Whether error pages may show causes (`server.debug_errors`). Process-wide
/// because error responders have no access to state; set once at start-up.
pub fn debug_errors() -> bool {
    DEBUG_ERRORS.load(Ordering::Relaxed)
}

pub fn set_debug_errors(on: bool) {
    DEBUG_ERRORS.store(on, Ordering::Relaxed);
}
