//! websessions: a web site that teaches web sessions. Read the modules in
//! this order:

/// The command line: `serve`, `migrate`, `sessions …`, `config`, `keygen`.
pub mod cli;
/// Layered, typed configuration (files, `APP_…` variables, flags).
pub mod config;
/// One error type, answered as a page or as JSON.
pub mod error;
/// The router: which routes sit behind the session layer.
pub mod routes;
/// The accept loop: header-read timeout, connection cap, graceful stop.
pub mod server;
/// The session middleware, the per-request store wrapper, and the stores.
pub mod sessions;
/// Ctrl-C and SIGTERM.
pub mod shutdown;
/// Opening the store, binding the port, serving, background purge.
pub mod startup;
/// What handlers share.
pub mod state;
/// Logging and request spans.
pub mod telemetry;
/// Pages: CSRF, the typed session wrapper, templates.
pub mod web;
