//! `caseline serve`: every service in one process, on one port, over one event log.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use caseline_eventlog::EventLog;
use caseline_host::{Bound, BoxError, Host, Mount};
use caseline_trust::Trust;

pub use caseline_host::{Clockwork, HostArgs as ServeArgs};

/// The five services, in the order they are mounted.
pub const ALL: [Mount; 5] = [
    caseline_cases::mount,
    caseline_referrals::mount,
    caseline_support_plans::mount,
    caseline_compensation::mount,
    caseline_audit_service::mount,
];

/// The all-in-one, bound and ready to serve.
#[derive(Debug)]
pub struct AllInOne {
    bound: Bound,
}

impl AllInOne {
    /// Resolves the configuration, opens the event log and the key store, and binds the
    /// server with all five services behind the trust layer.
    pub async fn build(args: &ServeArgs) -> Result<Self, BoxError> {
        Self::build_with(args, Clockwork::default()).await
    }

    /// As [`AllInOne::build`], deciding by `clockwork`'s clock.
    pub async fn build_with(args: &ServeArgs, clockwork: Clockwork) -> Result<Self, BoxError> {
        let host = Host::open("caseline", args, clockwork).await?;
        Ok(Self {
            bound: host.bind(&ALL).await?,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// The event log this server appends to (tests inspect it).
    pub fn log(&self) -> &Arc<dyn EventLog> {
        self.bound.log()
    }

    /// The trust layer (tests reach the vault and the team projection through it).
    pub fn trust(&self) -> &Trust {
        self.bound.trust()
    }

    /// Serves until `shutdown` completes, then closes the event log.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), BoxError> {
        self.bound.run_until_stopped(shutdown).await
    }
}

/// `caseline serve`: build, announce the address, serve until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), BoxError> {
    AllInOne::build(&args).await?.bound.announce_and_run().await
}
