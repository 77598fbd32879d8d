//! `caseline serve`: every service in one process, on one port, over one event log.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use caseline_eventlog::EventLog;
use caseline_server::{GrpcServer, Services};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "CASELINE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Directory for the embedded event log and its keys.
    #[arg(long, env = "CASELINE_DATA_DIR", default_value = "./caseline-data")]
    pub data_dir: PathBuf,
    /// Development identity mode: a signing key in the data directory. Never in
    /// production.
    #[arg(long)]
    pub dev: bool,
    /// Event log URL (`sqlite:PATH` or `postgres://…`); default: SQLite in the data
    /// directory.
    #[arg(long, env = "CASELINE_EVENT_LOG")]
    pub event_log: Option<String>,
}

/// The all-in-one, bound and ready to serve.
#[derive(Debug)]
pub struct AllInOne {
    server: GrpcServer,
    log: Arc<dyn EventLog>,
}

impl AllInOne {
    /// Opens the event log and binds the server with all five services.
    pub async fn build(args: &ServeArgs) -> Result<Self, Box<dyn std::error::Error>> {
        if !args.dev {
            return Err(
                "no token issuers are configured, so no call could be authenticated. \
                 Configure issuers (issuer, audience, JWKS) in the configuration file, or \
                 start with --dev for local development only"
                    .into(),
            );
        }
        warn_dev_mode();
        let url = args
            .event_log
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", args.data_dir.join("events.sqlite").display()));
        let log = caseline_eventlog::open(&url).await?;
        tracing::info!(
            backend = url.split(':').next().unwrap_or(""),
            "event log open"
        );

        let services = Services::new()
            .add_service(caseline_cases::server())
            .add_service(caseline_referrals::server())
            .add_service(caseline_support_plans::server())
            .add_service(caseline_compensation::server())
            .add_service(caseline_audit_service::server());
        let server = GrpcServer::build(args.listen, services).await?;
        Ok(Self { server, log })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` completes, then closes the event log.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let served = self.server.run_until_stopped(shutdown).await;
        self.log.close().await;
        tracing::info!("stopped");
        Ok(served?)
    }
}

/// `caseline serve`: build, announce the address, serve until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let app = AllInOne::build(&args).await?;
    let addr = app.local_addr();
    // Scripts and tests wait for exactly this line on standard output.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%addr, "serving");
    app.run_until_stopped(caseline_server::shutdown_signal())
        .await
}

fn warn_dev_mode() {
    let banner = "\
################################################################################
#  DEVELOPMENT MODE (--dev): development identities only, no real issuer.      #
#  Never use --dev with real cases or real children's data.                     #
################################################################################";
    eprintln!("{banner}");
    tracing::warn!("development identity mode is on");
}
