//! `caseline bench`: figures next to a baseline measured in the same run, because
//! absolute numbers on a shared 2-core machine drift from run to run.
//!
//! - `bench eventlog`: event log appends against raw inserts ([`eventlog`]).
//! - `bench access`: audited reads against health checks on the same server
//!   ([`access`]).
//! - `bench commands`: whole commands through gRPC against a bare tonic server
//!   ([`commands`]).
//! - `bench timeline`: a 500-event timeline read by a team member against a raw read of
//!   the same events ([`timeline`]).
//! - `bench scale`: a realistic log grown to a million events and more, and how every
//!   measure grows with it ([`scale`]).

mod access;
mod commands;
mod eventlog;
mod scale;
mod timeline;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caseline_auth::{DevKey, Role};
use caseline_eventlog::EventLog;
use caseline_proto::tonic;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use uuid::Uuid;

pub use access::AccessArgs;
pub use commands::CommandsArgs;
pub use eventlog::EventlogArgs;
pub use scale::ScaleArgs;
pub use timeline::TimelineArgs;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Event log appends: concurrent appenders against a raw-insert baseline.
    Eventlog(EventlogArgs),
    /// Audited reads through the trust layer (token check, policy, access record
    /// appended before the answer) against health checks on the same server.
    Access(AccessArgs),
    /// Whole commands (AddNote) through gRPC on the all-in-one (token check,
    /// validation, policy, decide, sealed append) against health checks on a bare
    /// tonic server.
    Commands(CommandsArgs),
    /// GetTimeline of a 500-event case by a team member, one caller, against a raw
    /// read of the same events from the log.
    Timeline(TimelineArgs),
    /// A realistic log grown to 10 000, 100 000 and 1 000 000 events (or the sizes
    /// given), and at each size: start, RSS, per-case reads, first pages of lists,
    /// access-history replay, writes, projection rebuild and checkpoints, with the
    /// growth of each from the smallest size to the largest.
    Scale(ScaleArgs),
}

pub async fn run(command: BenchCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        BenchCommand::Eventlog(args) => eventlog::eventlog(args).await.map_err(|e| e as _),
        BenchCommand::Access(args) => access::access(args).await.map_err(|e| e as _),
        BenchCommand::Commands(args) => commands::commands(args).await.map_err(|e| e as _),
        BenchCommand::Timeline(args) => timeline::timeline(args).await.map_err(|e| e as _),
        BenchCommand::Scale(args) => scale::scale(args).await.map_err(|e| e as _),
    }
}

/// What one side of the benchmark achieved.
#[derive(Debug)]
pub(crate) struct Throughput {
    events: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Throughput {
    /// Waits for timed tasks that each return their calls' latencies (µs).
    async fn gather<E>(
        start: Instant,
        tasks: Vec<tokio::task::JoinHandle<Result<Vec<u64>, E>>>,
    ) -> Result<Throughput, BoxError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut latencies_us = Vec::new();
        for task in tasks {
            latencies_us.extend(task.await??);
        }
        let elapsed = start.elapsed();
        Ok(Throughput::of(latencies_us, elapsed))
    }

    /// Calls made back to back, one at a time, taking `latencies_us` in all.
    fn sequential(latencies_us: Vec<u64>) -> Throughput {
        let elapsed = Duration::from_micros(latencies_us.iter().sum());
        Throughput::of(latencies_us, elapsed)
    }

    fn of(mut latencies_us: Vec<u64>, elapsed: Duration) -> Throughput {
        latencies_us.sort_unstable();
        Throughput {
            events: latencies_us.len() as u64,
            elapsed,
            latencies_us,
        }
    }

    fn per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// `count` tasks calling `call(task index)` back to back until `duration` has passed.
async fn callers<F, Fut>(count: usize, duration: Duration, call: F) -> Result<Throughput, BoxError>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    call(i).await?;
                    latencies.push(t.elapsed().as_micros() as u64);
                }
                Ok::<_, tonic::Status>(latencies)
            })
        })
        .collect();
    Throughput::gather(start, tasks).await
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `met` or `NOT met`.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A fresh `caseline-<what>-<uuid>` in the system's temporary directory.
    pub(crate) fn new(what: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("caseline-{what}-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An all-in-one in development mode, served in this process on a free port of
/// 127.0.0.1, and the means to mint tokens it accepts.
#[derive(Debug)]
pub(crate) struct DevServer {
    addr: SocketAddr,
    log: Arc<dyn EventLog>,
    key: DevKey,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl DevServer {
    /// Starts the all-in-one over `data_dir` (which must outlive it).
    pub(crate) async fn start(data_dir: &Path) -> Result<Self, BoxError> {
        let app = crate::serve::AllInOne::build(&crate::serve::ServeArgs::dev(
            "127.0.0.1:0".parse()?,
            data_dir.to_path_buf(),
        ))
        .await
        .map_err(|e| e.to_string())?;
        let addr = app.local_addr();
        let log = Arc::clone(app.log());
        let key = DevKey::load_or_create(data_dir)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
        });
        Ok(Self {
            addr,
            log,
            key,
            stop,
            task,
        })
    }

    /// The event log the server appends to.
    pub(crate) fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// `Bearer <token>` for `sub` of `agency` acting as `role`, valid for an hour.
    pub(crate) fn bearer(
        &self,
        sub: &str,
        role: Role,
        agency: &str,
        agency_type: Option<&str>,
    ) -> Result<MetadataValue<Ascii>, BoxError> {
        let token = self
            .key
            .issue(sub, &[role], agency, agency_type, Duration::from_secs(3600))?;
        Ok(format!("Bearer {token}").parse()?)
    }

    /// One plaintext HTTP/2 connection to the server.
    pub(crate) async fn channel(&self) -> Result<Channel, BoxError> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?)
    }

    /// Stops serving and waits until the log is closed.
    pub(crate) async fn stop(self) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// `message` with `bearer` as its credential.
pub(crate) fn authed<T>(message: T, bearer: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

/// A fresh request id.
pub(crate) fn request_id() -> String {
    Uuid::new_v4().to_string()
}
