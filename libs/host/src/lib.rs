//! Start-up shared by every Caseline server: the all-in-one (`caseline serve`) and the
//! five service binaries (`caseline-cases`, `caseline-referrals`,
//! `caseline-support-plans`, `caseline-compensation`, `caseline-audit`).
//!
//! A server is a [`Host`] (configuration resolved, event log and state store open, the
//! trust layer in front) on which services are mounted, then bound and run. Separate
//! services share nothing but the event log and the state store beside it; each follows
//! the log for the projections it needs.
#![forbid(unsafe_code)]

pub mod config;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use caseline_auth::{AuthConfig, Authenticator, DevKey};
use caseline_eventlog::EventLog;
use caseline_projection::{CheckpointStore, Checkpointed, Feed, Fold, Followed, Indexed, Keys};
use caseline_server::{GrpcServer, Services};
use caseline_trust::{Clock, Trust, TrustConfig};
use caseline_vault::{KeyStore, MasterKey, PostgresKeyStore, SqliteKeyStore, Vault};
use tokio::task::JoinHandle;

use crate::config::FileConfig;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_DATA_DIR: &str = "./caseline-data";

/// The all-in-one's projection checkpoints, in its data directory.
const CHECKPOINTS_FILE: &str = "checkpoints.sqlite";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The options every server takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct HostArgs {
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:50051]
    #[arg(long, env = "CASELINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded event log, its keys and the dev identity [default:
    /// ./caseline-data]
    #[arg(long, env = "CASELINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Development identity mode: a signing key in the data directory. Never in
    /// production.
    #[arg(long)]
    pub dev: bool,
    /// Event log URL: `sqlite:PATH`, `postgres://…`, `kurrentdb://…` or `esdb://…`;
    /// default: SQLite in the data directory.
    #[arg(long, env = "CASELINE_EVENT_LOG")]
    pub event_log: Option<String>,
    /// The mutable store beside the log (data keys, projection checkpoints): `sqlite:PATH`
    /// or `postgres://…`; default: the log's PostgreSQL database, or the data directory.
    /// Required with a KurrentDB log.
    #[arg(long, env = "CASELINE_STATE_STORE")]
    pub state_store: Option<String>,
    /// Configuration file (TOML): token issuers, master key file, and the settings above.
    #[arg(long, env = "CASELINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds the calls in flight may run after SIGTERM or SIGINT before they are cut
    /// off (open streams included), at most 300 [default: 10]
    #[arg(
        long,
        env = "CASELINE_DRAIN_SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=caseline_server::MAX_DRAIN.as_secs()),
    )]
    pub drain_seconds: Option<u64>,
    /// Calls refused before anyone is authenticated (no valid token, an unknown method)
    /// that are answered and recorded per peer address and minute; past it they are
    /// answered RESOURCE_EXHAUSTED, recorded once [default: 120]
    #[arg(
        long,
        env = "CASELINE_REFUSED_PER_MINUTE",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
    )]
    pub refused_per_minute: Option<u32>,
}

impl HostArgs {
    /// Arguments for a development server on `listen` over `data_dir`.
    pub fn dev(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen: Some(listen),
            data_dir: Some(data_dir),
            dev: true,
            ..Self::default()
        }
    }
}

/// What runs beside the services and follows time: the clock they decide by, and how
/// often background work (overdue referrals, projections' checkpoints) is done. Tests
/// inject a clock they move.
#[derive(Clone)]
pub struct Clockwork {
    pub clock: Clock,
    pub escalation_every: Duration,
    /// The clock's time at the start of the referral process's last round that ran
    /// through without error (contacts' referrals attached, overdue ones escalated).
    /// A test that moves the clock waits here for a round that saw the new time before
    /// it checks that nothing was escalated; waiting a while instead would also pass if
    /// the round had not run yet. One value, overwritten; nothing needs to listen.
    pub escalation_swept: tokio::sync::watch::Sender<Option<SystemTime>>,
}

/// How often overdue referrals are looked for, unless a test says otherwise.
pub const DEFAULT_ESCALATION_EVERY: Duration = Duration::from_secs(30);

impl Default for Clockwork {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemTime::now),
            escalation_every: DEFAULT_ESCALATION_EVERY,
            escalation_swept: tokio::sync::watch::Sender::new(None),
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

/// A server's resources before any service is mounted: the event log, the trust layer
/// (authentication, policy, vault, access records), and the background tasks the
/// mounted services start.
#[derive(Debug)]
pub struct Host {
    name: &'static str,
    listen: SocketAddr,
    log: Arc<dyn EventLog>,
    trust: Trust,
    clockwork: Clockwork,
    drain: Duration,
    checkpoints: Arc<dyn CheckpointStore>,
    /// The one read of the log that feeds every projection and index.
    feed: Arc<Feed>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    projections: Mutex<Vec<Arc<dyn Checkpointed>>>,
    /// The indexes by name: services that read one index share it.
    indexes: Mutex<Vec<(&'static str, Arc<dyn std::any::Any + Send + Sync>)>>,
}

/// How often a projection looks for other processes' appends when this one appends
/// nothing (queries catch up anyway, so this only keeps it warm and its checkpoint
/// recent).
const PROJECTION_POLL: Duration = Duration::from_secs(1);
/// How often a projection that changed saves its checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// How long the checkpoint saves at a stop may take (milliseconds, normally). Past it the
/// stop goes on without them, so that it ends before the orchestrator's SIGKILL: the
/// next start then reads more of the log, nothing is lost.
const CHECKPOINTS_AT_STOP: Duration = Duration::from_secs(5);

/// What a service adds to a server: it registers its methods with the trust layer,
/// starts its background work on the host, and adds its gRPC service.
pub type Mount = fn(&Host, Services) -> Services;

impl Host {
    /// Resolves the configuration of the server `name` (it names the instance in access
    /// records), opens the event log and the state store, and sets up the trust layer.
    /// Everything that can be wrong with the configuration is reported before anything
    /// is opened.
    pub async fn open(
        name: &'static str,
        args: &HostArgs,
        clockwork: Clockwork,
    ) -> Result<Self, BoxError> {
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
        let drain = match args.drain_seconds.or(file.drain_seconds) {
            None => caseline_server::DEFAULT_DRAIN,
            Some(seconds) if seconds > caseline_server::MAX_DRAIN.as_secs() => {
                return Err(format!(
                    "drain_seconds must be at most {}",
                    caseline_server::MAX_DRAIN.as_secs()
                )
                .into());
            }
            Some(seconds) => Duration::from_secs(seconds),
        };
        let refused_per_minute = match args.refused_per_minute.or(file.refused_per_minute) {
            None => caseline_trust::flood::DEFAULT_REFUSED_PER_MINUTE,
            Some(0) => return Err("refused_per_minute must be at least 1".into()),
            Some(n) => n,
        };
        let listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let log_url = args
            .event_log
            .clone()
            .or_else(|| file.event_log.clone())
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("events.sqlite").display()));
        let state_url = args
            .state_store
            .clone()
            .or_else(|| file.state_store.clone());
        let state = StateStore::resolve(&log_url, state_url.as_deref(), &data_dir)?;
        let instance = file
            .instance
            .clone()
            .unwrap_or_else(|| default_instance(name));
        if instance.len() > 128 || instance.chars().any(char::is_control) {
            return Err("instance must be at most 128 bytes of printable text".into());
        }
        if args.dev || state.needs_data_dir() || log_url.starts_with("sqlite:") {
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
        }
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

        let log = caseline_eventlog::open(&log_url).await?;
        let backend = log_url.split(':').next().unwrap_or("");
        tracing::info!(backend, "event log open");
        let keys = state.open_keys().await?;
        let checkpoints = state.open_checkpoints().await?;
        let trust = Trust::with_clock(
            TrustConfig {
                authenticator,
                log: Arc::clone(&log),
                vault: Vault::new(master, keys),
                instance,
                refused_per_minute,
            },
            Arc::clone(&clockwork.clock),
        );
        Ok(Self {
            name,
            listen,
            feed: Feed::new(Arc::clone(&log)),
            log,
            trust,
            clockwork,
            drain,
            checkpoints,
            tasks: Mutex::new(Vec::new()),
            projections: Mutex::new(Vec::new()),
            indexes: Mutex::new(Vec::new()),
        })
    }

    /// The server's name (the binary's).
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn clockwork(&self) -> &Clockwork {
        &self.clockwork
    }

    /// Keeps a background task of a mounted service; it is stopped when the server stops.
    pub fn spawn(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// A projection named `name` (unique among the projections sharing the state
    /// store), following the log in the background from its checkpoint (one read of
    /// the log feeds them all, from when the server is bound), and saved once more when
    /// the server stops.
    pub fn projection<S: Fold>(&self, name: &'static str) -> Arc<Followed<S>> {
        let projection = Followed::<S>::fed_by(name, &self.feed, Arc::clone(&self.checkpoints));
        self.projections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&projection) as Arc<dyn Checkpointed>);
        projection
    }

    /// An index named `name` (unique among those sharing the state store), kept as a
    /// table there and following the log in the background; every entry it files is
    /// saved as it goes, and how far it read is saved once more when the server stops.
    ///
    /// Services mounted together that ask for the same index (the same name and keys)
    /// share one; one name with other keys is a programming error, refused at start.
    pub fn index<K: Keys>(&self, name: &'static str) -> Arc<Indexed<K>> {
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, any)) = indexes.iter().find(|(n, _)| *n == name) {
            match Arc::clone(any).downcast::<Indexed<K>>() {
                Ok(index) => return index,
                Err(_) => panic!("the index {name} is asked for with two kinds of keys"),
            }
        }
        let index = Indexed::<K>::fed_by(name, &self.feed, Arc::clone(&self.checkpoints));
        indexes.push((
            name,
            Arc::clone(&index) as Arc<dyn std::any::Any + Send + Sync>,
        ));
        self.projections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&index) as Arc<dyn Checkpointed>);
        index
    }

    /// Mounts `mounts` and binds the listening address (port 0 picks a free port).
    pub async fn bind(self, mounts: &[Mount]) -> Result<Bound, BoxError> {
        let mut services = Services::new(self.trust.guard());
        for mount in mounts {
            services = mount(&self, services);
        }
        self.spawn(self.feed.follow(PROJECTION_POLL, CHECKPOINT_EVERY));
        let server = GrpcServer::build(self.listen, services)
            .await?
            .with_drain(self.drain);
        Ok(Bound { host: self, server })
    }
}

/// A server bound to its address, ready to serve.
#[derive(Debug)]
pub struct Bound {
    host: Host,
    server: GrpcServer,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.host.log
    }

    pub fn trust(&self) -> &Trust {
        &self.host.trust
    }

    /// Serves until `shutdown` completes and the calls in flight have finished or been
    /// cut off at the drain limit, then stops the background tasks, saves the
    /// projections' checkpoints and closes the event log.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), BoxError> {
        let Self { host, server } = self;
        let served = server.run_until_stopped(shutdown).await;
        let tasks = std::mem::take(&mut *host.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let projections =
            std::mem::take(&mut *host.projections.lock().unwrap_or_else(|p| p.into_inner()));
        save_checkpoints(projections).await;
        host.log.close().await;
        tracing::info!("stopped");
        Ok(served?)
    }

    /// Prints the one line scripts and tests wait for, `listening on HOST:PORT`, then
    /// serves until SIGINT or SIGTERM.
    pub async fn announce_and_run(self) -> Result<(), BoxError> {
        let addr = self.local_addr();
        // Ready for a signal before anyone is told the server listens.
        let stop = caseline_server::shutdown_signal();
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
        drop(stdout);
        tracing::info!(%addr, server = self.host.name, "serving");
        self.run_until_stopped(stop).await
    }
}

/// The `main` of a service binary: `name [--listen ADDR] [--event-log URL] …`, serving
/// what `mounts` add. Exit status 0 after a graceful stop, 1 on a failure at start or
/// while serving, 2 on a bad command line or log filter.
pub fn main(name: &'static str, about: &'static str, mounts: &[Mount]) -> ExitCode {
    use clap::{Args, FromArgMatches};
    // The struct's doc comment would be the about text: set ours after.
    let command = HostArgs::augment_args(clap::Command::new(name))
        .about(about)
        .version(env!("CARGO_PKG_VERSION"));
    let args = match HostArgs::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let telemetry = match caseline_telemetry::init(name) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        let result = async {
            let host = Host::open(name, &args, Clockwork::default()).await?;
            host.bind(mounts).await?.announce_and_run().await
        }
        .await;
        // Spans of the last calls leave before the process does.
        telemetry.shutdown();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Saves each projection's checkpoint, within [`CHECKPOINTS_AT_STOP`], and logs the
/// outcome: `checkpoints saved` when none failed, with how many were written and how
/// many were already current.
async fn save_checkpoints(projections: Vec<Arc<dyn Checkpointed>>) {
    let total = projections.len();
    let (mut written, mut current, mut failed) = (0usize, 0usize, 0usize);
    let saving = async {
        for projection in &projections {
            match projection.checkpoint().await {
                Ok(true) => written += 1,
                Ok(false) => current += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(projection = projection.name(), error = %e, "checkpoint not saved at stop");
                }
            }
        }
    };
    if tokio::time::timeout(CHECKPOINTS_AT_STOP, saving)
        .await
        .is_err()
    {
        tracing::warn!(
            written,
            already_current = current,
            failed,
            not_tried = total - written - current - failed,
            limit_seconds = CHECKPOINTS_AT_STOP.as_secs(),
            "checkpoints not all saved within the limit; the next start reads more of the log"
        );
    } else if failed > 0 {
        tracing::warn!(
            written,
            already_current = current,
            failed,
            "checkpoints not all saved"
        );
    } else {
        tracing::info!(written, already_current = current, "checkpoints saved");
    }
}

/// Where data keys (and projections' checkpoints) are kept: never in the log, because
/// erasing a child's data destroys their key.
#[derive(Debug)]
enum StateStore {
    /// The key store file, and the checkpoints' (the same file when named by a URL).
    Sqlite {
        keys: PathBuf,
        checkpoints: PathBuf,
    },
    Postgres(String),
}

impl StateStore {
    fn resolve(log_url: &str, state_url: Option<&str>, data_dir: &Path) -> Result<Self, BoxError> {
        let kurrentdb = [
            "kurrentdb://",
            "kurrentdb+discover://",
            "esdb://",
            "esdb+discover://",
        ]
        .iter()
        .any(|scheme| log_url.starts_with(scheme));
        if !(kurrentdb || is_postgres(log_url) || log_url.starts_with("sqlite:")) {
            return Err(
                "event_log: unsupported url: use sqlite:PATH, postgres://…, \
                 kurrentdb://… or esdb://…"
                    .into(),
            );
        }
        let url = match state_url {
            Some(url) => url,
            None if log_url.starts_with("sqlite:") => {
                return Ok(Self::Sqlite {
                    keys: data_dir.join(caseline_vault::KEY_STORE_FILE),
                    checkpoints: data_dir.join(CHECKPOINTS_FILE),
                });
            }
            None if is_postgres(log_url) => log_url,
            None => {
                return Err(
                    "a KurrentDB event log needs a state store for data keys and \
                     projection checkpoints, shared by every instance: set --state-store / \
                     CASELINE_STATE_STORE to a postgres://… URL"
                        .into(),
                );
            }
        };
        if let Some(path) = url.strip_prefix("sqlite:") {
            // A file is one machine's: instances sharing a log on a server would each make
            // their own data key for a case, and erasure would destroy only one.
            if !log_url.starts_with("sqlite:") {
                return Err(
                    "state_store: a shared event log needs a shared state store \
                     (postgres://…); sqlite:PATH goes with an embedded sqlite: log only"
                        .into(),
                );
            }
            let path = path.strip_prefix("//").unwrap_or(path);
            Ok(Self::Sqlite {
                keys: PathBuf::from(path),
                checkpoints: PathBuf::from(path),
            })
        } else if is_postgres(url) {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err("state_store: unsupported url: use sqlite:PATH or postgres://…".into())
        }
    }

    fn needs_data_dir(&self) -> bool {
        matches!(self, Self::Sqlite { .. })
    }

    async fn open_keys(&self) -> Result<Arc<dyn KeyStore>, BoxError> {
        Ok(match self {
            Self::Sqlite { keys, .. } => Arc::new(SqliteKeyStore::open(keys).await?),
            // Beside the log, in the same database: a small mutable table, never the log.
            Self::Postgres(url) => Arc::new(PostgresKeyStore::connect(url).await?),
        })
    }

    async fn open_checkpoints(&self) -> Result<Arc<dyn CheckpointStore>, BoxError> {
        Ok(match self {
            Self::Sqlite { checkpoints, .. } => {
                Arc::new(caseline_projection::SqliteCheckpoints::open(checkpoints).await?)
            }
            Self::Postgres(url) => caseline_projection::open(url).await?,
        })
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The master key: `CASELINE_MASTER_KEY`, else the configured file, else (dev only) one
/// generated in the data directory.
fn master_key(dev: bool, file: &FileConfig, data_dir: &Path) -> Result<MasterKey, BoxError> {
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

fn default_instance(name: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{name}@{host}/{}", std::process::id())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_drain_limit_above_the_maximum_is_refused_before_anything_opens() {
        let dir = std::env::temp_dir().join(format!("caseline-host-drain-{}", std::process::id()));
        let args = HostArgs {
            drain_seconds: Some(caseline_server::MAX_DRAIN.as_secs() + 1),
            ..HostArgs::dev("127.0.0.1:0".parse().expect("an address"), dir.clone())
        };
        let err = Host::open("caseline", &args, Clockwork::default())
            .await
            .expect_err("a drain limit above the maximum");
        assert!(err.to_string().contains("drain_seconds"), "{err}");
        assert!(!dir.exists(), "nothing was created");
    }

    /// Files nothing: an index is only asked for here.
    struct Nothing;

    impl Keys for Nothing {
        const FORMAT: u32 = 1;
        fn keys(_: &caseline_eventlog::RecordedEvent) -> Vec<caseline_eventlog::Uuid> {
            Vec::new()
        }
    }

    /// Two services that ask for one index share it: one follower, one set of rows.
    #[tokio::test]
    async fn services_asking_for_one_index_share_it() {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let args = HostArgs::dev(
            "127.0.0.1:0".parse().expect("an address"),
            dir.path().to_path_buf(),
        );
        let host = Host::open("caseline", &args, Clockwork::default())
            .await
            .expect("a host");
        let first = host.index::<Nothing>("test.shared");
        let second = host.index::<Nothing>("test.shared");
        let other = host.index::<Nothing>("test.other");
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &other));
        let saved = host.projections.lock().expect("not poisoned").len();
        assert_eq!(saved, 2, "each index saved once at the stop");
        host.log.close().await;
    }
}
