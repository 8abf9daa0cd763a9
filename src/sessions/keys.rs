//! The keys the site keeps in every session for itself. Keys starting with
//! `_` are refused on every write from outside (pages and API).

/// Unix milliseconds of the first save; kept by `cycle_id`, so the absolute
/// timeout counts from the session's real start.
pub const CREATED_AT: &str = "_created_at";
/// The visit counter, incremented by `GET /` when a session exists.
pub const VISITS: &str = "_visits";
/// A one-shot message shown by the next page.
pub const FLASH: &str = "_flash";
/// The demo login's user (a typed, versioned bucket).
pub const USER: &str = "_user";

/// Is this key reserved for the site?
pub fn is_reserved(key: &str) -> bool {
    key.starts_with('_')
}
