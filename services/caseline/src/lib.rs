//! The all-in-one Caseline: every service in one process over one event log, the demo
//! and the benchmarks. `main.rs` is a thin command line over this library, which
//! end-to-end tests use to start the whole server in-process on port 0.
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod serve;
pub mod token;
