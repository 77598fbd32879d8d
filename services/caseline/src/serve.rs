//! `caseline serve`: every service in one process, on one port, over one event log.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::{Duration, SystemTime};

use caseline_audit::{Clock, Trust, TrustConfig};
use caseline_auth::{AuthConfig, Authenticator, DevKey};
use caseline_eventlog::EventLog;
use caseline_referrals::Escalation;
use caseline_server::{GrpcServer, Services};
use caseline_vault::{KeyStore, MasterKey, PostgresKeyStore, SqliteKeyStore, Vault};

use crate::config::FileConfig;

const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
const DEFAULT_DATA_DIR: &str = "./caseline-data";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:50051]
    #[arg(long, env = "CASELINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded event log and its keys [default: ./caseline-data]
    #[arg(long, env = "CASELINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Development identity mode: a signing key in the data directory. Never in
    /// production.
    #[arg(long)]
    pub dev: bool,
    /// Event log URL (`sqlite:PATH` or `postgres://…`); default: SQLite in the data
    /// directory.
    #[arg(long, env = "CASELINE_EVENT_LOG")]
    pub event_log: Option<String>,
    /// Configuration file (TOML): token issuers, master key file, and the settings above.
    #[arg(long, env = "CASELINE_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Arguments for a development server on `listen` over `data_dir`.
    pub fn dev(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen: Some(listen),
            data_dir: Some(data_dir),
            dev: true,
            event_log: None,
            config: None,
        }
    }
}

/// What runs beside the services and follows time: the clock they decide by, and how
/// often overdue referrals are looked for. Tests inject a clock they move.
#[derive(Clone)]
pub struct Clockwork {
    pub clock: Clock,
    pub escalation_every: Duration,
}

impl Default for Clockwork {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemTime::now),
            escalation_every: caseline_referrals::DEFAULT_EVERY,
        }
    }
}

impl std::fmt::Debug for Clockwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clockwork")
            .field("escalation_every", &self.escalation_every)
            .finish_non_exhaustive()
    }
}

/// The all-in-one, bound and ready to serve.
#[derive(Debug)]
pub struct AllInOne {
    server: GrpcServer,
    log: Arc<dyn EventLog>,
    trust: Trust,
    escalation: Escalation,
    escalation_every: Duration,
}

type BoxError = Box<dyn std::error::Error>;

impl AllInOne {
    /// Resolves the configuration, opens the event log and the key store, and binds the
    /// server with all five services behind the trust layer.
    pub async fn build(args: &ServeArgs) -> Result<Self, BoxError> {
        Self::build_with(args, Clockwork::default()).await
    }

    /// As [`AllInOne::build`], deciding by `clockwork`'s clock.
    pub async fn build_with(args: &ServeArgs, clockwork: Clockwork) -> Result<Self, BoxError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        if !args.dev && file.auth.issuers.is_empty() {
            return Err("no token issuers are configured, so no call could be authenticated. \
                 Configure issuers (issuer, audience, jwks_url or jwks_file) under [[auth.issuers]] \
                 in the configuration file (--config / CASELINE_CONFIG), or start with --dev for \
                 local development only"
                .into());
        }
        if args.dev && !file.auth.issuers.is_empty() {
            return Err(
                "--dev cannot be combined with configured issuers: a dev token could \
                 name any user of their agencies. Drop --dev, or the [[auth.issuers]]"
                    .into(),
            );
        }
        let listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;

        // Everything that can be wrong with the configuration, before anything is opened.
        let master = master_key(args.dev, &file, &data_dir)?;
        let mut issuers = file.auth.issuers.clone();
        if args.dev {
            warn_dev_mode();
            issuers.push(DevKey::load_or_create(&data_dir)?.issuer_config());
        }
        let authenticator = Authenticator::new(AuthConfig {
            issuers,
            leeway: file.leeway(),
            dev_mode: args.dev,
        })
        .await?;

        let url = args
            .event_log
            .clone()
            .or_else(|| file.event_log.clone())
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("events.sqlite").display()));
        let log = caseline_eventlog::open(&url).await?;
        let backend = url.split(':').next().unwrap_or("");
        tracing::info!(backend, "event log open");

        let store: Arc<dyn KeyStore> = if backend == "sqlite" {
            Arc::new(SqliteKeyStore::open(data_dir.join(caseline_vault::KEY_STORE_FILE)).await?)
        } else {
            // Beside the log, in the same database: a small mutable table, never the log.
            Arc::new(PostgresKeyStore::connect(&url).await?)
        };
        let instance = file.instance.clone().unwrap_or_else(default_instance);
        if instance.len() > 128 || instance.chars().any(char::is_control) {
            return Err("instance must be at most 128 bytes of printable text".into());
        }
        let trust = Trust::with_clock(
            TrustConfig {
                authenticator,
                log: Arc::clone(&log),
                vault: Vault::new(master, store),
                instance,
            },
            Arc::clone(&clockwork.clock),
        );
        for methods in [
            caseline_cases::METHODS,
            caseline_referrals::METHODS,
            caseline_support_plans::METHODS,
            caseline_compensation::METHODS,
            caseline_audit_service::METHODS,
        ] {
            trust.register(methods);
        }

        let services = Services::new(trust.guard())
            .add_service(caseline_cases::server(Arc::clone(&log)))
            .add_service(caseline_referrals::server(Arc::clone(&log)))
            .add_service(caseline_support_plans::server(Arc::clone(&log)))
            .add_service(caseline_compensation::server(Arc::clone(&log)))
            .add_service(caseline_audit_service::server());
        let server = GrpcServer::build(listen, services).await?;
        let escalation = Escalation::new(Arc::clone(&log), trust.vault().clone(), clockwork.clock);
        Ok(Self {
            server,
            log,
            trust,
            escalation,
            escalation_every: clockwork.escalation_every,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The event log this server appends to (tests inspect it).
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The trust layer (tests reach the vault and the team projection through it).
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Serves until `shutdown` completes, then closes the event log.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), BoxError> {
        let escalation = self.escalation.spawn(self.escalation_every);
        let served = self.server.run_until_stopped(shutdown).await;
        escalation.abort();
        let _ = escalation.await;
        self.log.close().await;
        tracing::info!("stopped");
        Ok(served?)
    }
}

/// The master key: `CASELINE_MASTER_KEY`, else the configured file, else (dev only) one
/// generated in the data directory.
fn master_key(
    dev: bool,
    file: &FileConfig,
    data_dir: &std::path::Path,
) -> Result<MasterKey, BoxError> {
    if let Ok(encoded) = std::env::var("CASELINE_MASTER_KEY") {
        return Ok(MasterKey::from_base64(&encoded)?);
    }
    if let Some(path) = &file.vault.master_key_file {
        return Ok(MasterKey::from_file(path)?);
    }
    if dev {
        return Ok(MasterKey::load_or_create(data_dir)?);
    }
    Err(
        "no master key is configured, so sealed data could not be protected. Set \
         CASELINE_MASTER_KEY (base64 of 32 random bytes) or [vault] master_key_file in the \
         configuration file"
            .into(),
    )
}

fn default_instance() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("caseline@{host}/{}", std::process::id())
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
#  DEVELOPMENT MODE (--dev): tokens signed by a key kept in the data directory  #
#  (mint them with `caseline token`), HS256 allowed, a generated master key.    #
#  Never use --dev with real cases or real children's data.                     #
################################################################################";
    eprintln!("{banner}");
    tracing::warn!("development identity mode is on");
}
