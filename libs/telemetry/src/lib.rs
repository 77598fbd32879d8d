//! Tracing for every Caseline binary: call [`init`] first thing in `main`.
//!
//! Logs go to standard error (standard output belongs to the command's own answer, such
//! as `listening on HOST:PORT`). The filter comes from `CASELINE_LOG`, then `RUST_LOG`,
//! in `tracing_subscriber::filter::Targets` syntax (`info`, `caseline_eventlog=debug`).
//! Fields are structured; no personal data is ever a field or part of a message.
#![forbid(unsafe_code)]

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter used when neither variable is set.
pub const DEFAULT_FILTER: &str = "info";

/// Why tracing could not be initialised.
#[derive(Debug)]
pub struct InitError(String);

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

/// Installs the global subscriber. Fails on an unparsable filter, or if a subscriber is
/// already installed.
pub fn init() -> Result<(), InitError> {
    let spec = std::env::var("CASELINE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let filter: Targets = spec
        .parse()
        .map_err(|e| InitError(format!("invalid log filter in CASELINE_LOG/RUST_LOG: {e}")))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(true),
        )
        .with(filter)
        .try_init()
        .map_err(|e| InitError(format!("tracing already initialised: {e}")))
}
