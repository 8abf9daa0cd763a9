//! Site-level tests over the real app: the HTML pages and forms, the file
//! store on disk, the built binary's command line, and each server-side
//! store through its trait (one binary, so the suite links once).

#[path = "../support/mod.rs"]
mod support;

#[path = "../forwarder/mod.rs"]
mod forwarder;

mod accounts;
mod cli;
mod cli_database;
mod conformance;
mod file_store;
mod instances;
mod metrics;
mod pages;
mod redis_ops;
mod reliability;
mod router;
mod stores;
