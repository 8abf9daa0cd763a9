//! websessions: a web site that teaches web sessions. Two parts: the
//! session engine (`sessions`, which imports nothing of the rest) and the
//! site around it. Read the modules in this order (each stands alone, so
//! rustfmt keeps the order instead of sorting them):

/// The command line: `serve`, `migrate`, `sessions …`, `config`, `keygen`.
pub mod cli;

/// Layered, typed configuration (files, `APP_…` variables, flags).
pub mod config;

/// Building the application: settings → engine, router and bound port.
pub mod startup;

/// The session engine: middleware, policy, user index, stores.
pub mod sessions;

/// What handlers share: settings, the engine, the CSRF signer, the limits.
pub mod state;

/// The router, and the page and JSON handlers behind the session layer.
pub mod routes;

/// The HTML side: CSRF, the typed session wrapper, templates.
pub mod web;

/// One error type, answered as a page or as JSON.
pub mod error;

/// The accept loop: header-read timeout, connection cap, graceful stop.
pub mod server;

/// Logging and request spans.
pub mod telemetry;

/// Ctrl-C and SIGTERM.
pub mod shutdown;
