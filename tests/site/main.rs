//! Site-level tests over the real app: the HTML pages and forms, the file
//! store on disk, and the built binary's command line.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod cli;
mod file_store;
mod instances;
mod metrics;
mod pages;
mod redis_ops;
