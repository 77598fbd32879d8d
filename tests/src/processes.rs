//! Caseline's separate service binaries run as child processes of a test, sharing one
//! PostgreSQL schema and one identity provider: start a binary and wait for its
//! `listening on HOST:PORT` line, search what it logged, stop it with SIGTERM, start it
//! again with the same arguments. The identity is a real Ed25519 key whose public half
//! the services read from a JWKS file named in their configuration (no `--dev`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caseline_auth::{DevKey, Role};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::User;

/// How long a binary may take to print `listening on …`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a binary may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of a process's log a failure message quotes.
const TAIL_LINES: usize = 40;

/// The five service binaries, with the gRPC service each serves.
pub const CASES: (&str, &str) = ("caseline-cases", "caseline.v1.CaseService");
pub const REFERRALS: (&str, &str) = ("caseline-referrals", "caseline.v1.ReferralService");
pub const SUPPORT_PLANS: (&str, &str) =
    ("caseline-support-plans", "caseline.v1.SupportPlanService");
pub const COMPENSATION: (&str, &str) = ("caseline-compensation", "caseline.v1.CompensationService");
pub const AUDIT: (&str, &str) = ("caseline-audit", "caseline.v1.AuditService");

/// The path of the binary `name` built in the same profile as the running test
/// (`target/<profile>/<name>`; the test is `target/<profile>/deps/<test>-<hash>`).
/// Panics, saying how to build it, when it is not there.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()));
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the service binary {name} is not built ({} is missing): run \
         `cargo build --workspace --bins` (same profile as the tests) first",
        path.display()
    );
    path
}

/// What a process wrote to stderr (and to stdout after its `listening on` line),
/// line by line, and a signal for those waiting for a line.
#[derive(Debug, Default)]
struct Output {
    text: Mutex<String>,
    grew: Notify,
}

impl Output {
    fn push(&self, line: &str) {
        {
            let mut text = self.text.lock().unwrap_or_else(|p| p.into_inner());
            text.push_str(line);
            text.push('\n');
        }
        self.grew.notify_waiters();
    }

    fn snapshot(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Reads `from` line by line into `into` until end of file.
fn pump(from: impl AsyncRead + Unpin + Send + 'static, into: Arc<Output>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.push(&line);
        }
    })
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One run of a binary.
#[derive(Debug)]
struct Run {
    child: Child,
    addr: SocketAddr,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
}

/// A service binary running as a child process (killed if the test drops it).
#[derive(Debug)]
pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    run: Option<Run>,
    /// The log of the run stopped last.
    last_log: String,
    /// The logs of all the runs stopped, for failure messages.
    earlier: String,
}

impl Process {
    /// Starts the binary `name` (found by [`binary`]) with `args` and `env` (every
    /// `CASELINE_*` and `OTEL_*` variable of the test's own environment removed) in the
    /// working directory `dir`, and waits for its `listening on` line.
    pub async fn start(name: &str, args: &[String], env: &[(&str, &str)], dir: &Path) -> Self {
        let mut process = Self {
            name: name.to_owned(),
            program: binary(name),
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir: dir.to_owned(),
            run: None,
            last_log: String::new(),
            earlier: String::new(),
        };
        process.launch().await;
        process
    }

    async fn launch(&mut self) {
        assert!(self.run.is_none(), "{} is already running", self.name);
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            let inherited = key
                .to_str()
                .is_some_and(|k| k.starts_with("CASELINE_") || k.starts_with("OTEL_"));
            if inherited {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        let output = Arc::new(Output::default());
        let stderr = child.stderr.take().expect("piped stderr");
        let mut readers = vec![pump(stderr, Arc::clone(&output))];
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout).lines();

        let announced = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                match stdout.next_line().await {
                    Ok(Some(line)) => match line.strip_prefix("listening on ") {
                        Some(addr) => return Ok(addr.trim().to_owned()),
                        None => output.push(&format!("(stdout) {line}")),
                    },
                    Ok(None) => return Err("closed its stdout".to_owned()),
                    Err(e) => return Err(format!("stdout unreadable: {e}")),
                }
            }
        })
        .await;
        let failure = match announced {
            Ok(Ok(addr)) => match addr.parse::<SocketAddr>() {
                Ok(addr) => {
                    let rest = stdout.into_inner().into_inner();
                    readers.push(pump(rest, Arc::clone(&output)));
                    self.run = Some(Run {
                        child,
                        addr,
                        output,
                        readers,
                    });
                    return;
                }
                Err(e) => format!("announced an unparsable address {addr:?}: {e}"),
            },
            Ok(Err(why)) => why,
            Err(_) => format!("printed no `listening on` line within {START_TIMEOUT:?}"),
        };
        let _ = child.start_kill();
        let status = match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("not known: {e}"),
            Err(_) => "none, still running".to_owned(),
        };
        for reader in readers {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        panic!(
            "{} {failure} (exit status: {status}); the end of its stderr:\n{}",
            self.name,
            tail(&output.snapshot(), TAIL_LINES)
        );
    }

    fn running(&self) -> &Run {
        self.run
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// The binary's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it announced.
    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.running()
            .child
            .id()
            .unwrap_or_else(|| panic!("{} has exited", self.name))
    }

    /// A plaintext channel to it.
    pub async fn channel(&self) -> caseline_proto::tonic::transport::Channel {
        crate::connect(self.addr()).await
    }

    /// Everything the current run logged so far (empty when stopped).
    pub fn log(&self) -> String {
        self.run
            .as_ref()
            .map(|run| run.output.snapshot())
            .unwrap_or_default()
    }

    /// Waits until the current run has logged a line for which `wanted` holds, and
    /// returns it; panics after `timeout` quoting the end of the log.
    pub async fn wait_for_line(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let output = Arc::clone(&self.running().output);
        let deadline = Instant::now() + timeout;
        loop {
            let grew = output.grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
            if let Some(line) = output.snapshot().lines().find(|l| wanted(l)) {
                return line.to_owned();
            }
            if tokio::time::timeout_at(deadline, grew).await.is_err() {
                panic!(
                    "{} did not log {what} within {timeout:?}; the end of its stderr:\n{}",
                    self.name,
                    tail(&output.snapshot(), TAIL_LINES)
                );
            }
        }
    }

    /// Sends SIGTERM and waits for the process to exit (and its output to be read);
    /// panics if it is still running after [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) -> ExitStatus {
        self.terminate().await;
        self.wait_stopped().await
    }

    /// Sends SIGTERM, without waiting for the process to exit: the test can still talk
    /// to it and read its log while it stops; [`Process::wait_stopped`] then waits.
    pub async fn terminate(&self) {
        let pid = self.pid();
        // The workspace forbids unsafe code (libc::kill): the `kill` command sends it.
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .expect("the kill command runs");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
    }

    /// Waits for the process [`Process::terminate`] signalled to exit (and its output to
    /// be read); panics if it is still running after [`STOP_TIMEOUT`].
    pub async fn wait_stopped(&mut self) -> ExitStatus {
        let pid = self.pid();
        let mut run = self.run.take().expect("running");
        let status = match tokio::time::timeout(STOP_TIMEOUT, run.child.wait()).await {
            Ok(status) => status.expect("the exit status"),
            Err(_) => {
                let log = run.output.snapshot();
                let _ = run.child.start_kill();
                panic!(
                    "{} still runs {STOP_TIMEOUT:?} after SIGTERM; the end of its stderr:\n{}",
                    self.name,
                    tail(&log, TAIL_LINES)
                );
            }
        };
        for reader in run.readers {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        self.last_log = run.output.snapshot();
        let _ = writeln!(
            self.earlier,
            "--- {} (pid {pid}) ended: {status} ---\n{}",
            self.name, self.last_log
        );
        status
    }

    /// The log of the run [`Process::stop`] last stopped.
    pub fn stopped_log(&self) -> &str {
        &self.last_log
    }

    /// Starts it again, stopped, with the same arguments and environment, and waits for
    /// its new `listening on` line (with port 0, on a new port).
    pub async fn restart(&mut self) {
        self.launch().await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failing test shows what its processes said; `kill_on_drop` ends them.
        if std::thread::panicking() {
            eprintln!(
                "==== {}: earlier runs ====\n{}==== {}: current run ====\n{}",
                self.name,
                tail(&self.earlier, TAIL_LINES),
                self.name,
                tail(&self.log(), TAIL_LINES)
            );
        }
    }
}

/// The identity provider the services trust: a real Ed25519 key whose public half is
/// published as a JWKS file, and a configuration file naming that issuer exactly as the
/// tokens [`DevKey::issue`] mints carry it.
#[derive(Debug)]
pub struct Identity {
    key: DevKey,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Identity {
    /// A new key, its JWKS file and a configuration file, in a temporary directory.
    pub fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = DevKey::load_or_create(&dir.path().join("issuer")).expect("a signing key");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            serde_json::to_vec_pretty(&key.jwks()).expect("the JWKS as JSON"),
        )
        .expect("the JWKS file written");
        // What DevKey's tokens carry (see `DevKey::issuer_config`): `iss` and `aud`
        // `caseline-dev`, EdDSA, header `typ` JWT, and the default claim names (`roles`,
        // an array at the top level; `agency`; `agency_type`).
        let issuer = key.issuer_config();
        let config = dir.path().join("caseline.toml");
        std::fs::write(
            &config,
            format!(
                "[[auth.issuers]]\n\
                 issuer = {issuer:?}\n\
                 audience = {audience:?}\n\
                 jwks_file = {jwks:?}\n\
                 algorithms = [\"EdDSA\"]\n\
                 typ = \"JWT\"\n\
                 roles_claim = {roles:?}\n\
                 agency_claim = {agency:?}\n\
                 agency_type_claim = {agency_type:?}\n",
                issuer = issuer.issuer,
                audience = issuer.audience,
                jwks = jwks.to_str().expect("a UTF-8 temporary path"),
                roles = issuer.roles_claim,
                agency = issuer.agency_claim,
                agency_type = issuer.agency_type_claim,
            ),
        )
        .expect("the configuration file written");
        Self {
            key,
            config,
            _dir: dir,
        }
    }

    /// The configuration file (`--config`).
    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// A token for `sub` of `agency` acting as `role`, valid for an hour.
    pub fn token(&self, sub: &str, role: Role, agency: &str) -> String {
        self.key
            .issue(sub, &[role], agency, None, Duration::from_secs(3600))
            .expect("a signed token")
    }

    /// `sub` of `agency` acting as `role`, with a token of this issuer.
    pub fn user(&self, sub: &str, role: Role, agency: &str) -> User {
        User {
            sub: sub.to_owned(),
            agency: agency.to_owned(),
            role,
            token: self.token(sub, role, agency),
        }
    }
}

/// The PostgreSQL server of the tests: `CASELINE_TEST_DATABASE_URL`, by default
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub use caseline_eventlog::postgres::test_database_url as database_url;

/// A fresh schema in the test database, dropped (with everything in it) when this is
/// dropped, and a URL whose connections use it.
#[derive(Debug)]
pub struct Schema {
    /// The schema's name.
    pub name: String,
    /// The server's URL with `options=-c search_path=<name>`: give it to the services.
    pub url: String,
    /// Dropped with it: the schema goes.
    _scratch: caseline_eventlog::postgres::ScratchSchema,
}

impl Schema {
    /// Creates the schema; panics, saying how to start a server, if PostgreSQL does not
    /// answer.
    pub async fn create() -> Self {
        Self::create_on(&database_url()).await
    }

    /// Creates the schema on the server at `admin_url`.
    pub async fn create_on(admin_url: &str) -> Self {
        let scratch = caseline_eventlog::postgres::ScratchSchema::create(admin_url, "caseline_e2e")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is needed for this test and did not answer at {admin_url}: {e}. \
                     Start one (e.g. `pg_ctlcluster 15 main start`, or `docker run -p \
                     5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`) or point \
                     CASELINE_TEST_DATABASE_URL at a server."
                )
            });
        let name = scratch.name().to_owned();
        let url = scratch.url();
        // The services parse the URL with tokio-postgres too: it must decode the option.
        let parsed: tokio_postgres::Config = url.parse().expect("the schema's URL parses");
        assert_eq!(
            parsed.get_options(),
            Some(format!("-c search_path={name}").as_str())
        );
        Self {
            name,
            url,
            _scratch: scratch,
        }
    }
}

/// What the separate services of one deployment share: the PostgreSQL schema holding
/// the event log and the state store (data keys, checkpoints), the token issuer, and
/// the master key (the same for all, since they share the key store).
#[derive(Debug)]
pub struct Deployment {
    pub identity: Identity,
    master_key: caseline_vault::SecretText,
    workdir: tempfile::TempDir,
    /// Dropped last: the processes are gone by then.
    pub schema: Schema,
}

impl Deployment {
    /// A fresh schema, issuer and master key.
    pub async fn create() -> Self {
        Self::create_on(&database_url()).await
    }

    /// A fresh schema on the PostgreSQL server at `server_url`, issuer and master key.
    pub async fn create_on(server_url: &str) -> Self {
        Self {
            identity: Identity::create(),
            master_key: caseline_vault::MasterKey::generate_base64().expect("a master key"),
            workdir: tempfile::tempdir().expect("a working directory"),
            schema: Schema::create_on(server_url).await,
        }
    }

    /// The arguments every service gets: a free port on loopback, the shared log (the
    /// state store defaults to the same database), the configuration naming the issuer.
    pub fn args(&self) -> Vec<String> {
        [
            "--listen",
            "127.0.0.1:0",
            "--event-log",
            &self.schema.url,
            "--config",
            self.identity
                .config_file()
                .to_str()
                .expect("a UTF-8 temporary path"),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Starts the service binary `name` of this deployment (logging at `info`) and waits
    /// until it listens.
    pub async fn start(&self, name: &str) -> Process {
        Process::start(
            name,
            &self.args(),
            &[
                ("CASELINE_MASTER_KEY", self.master_key.expose()),
                ("CASELINE_LOG", "info"),
            ],
            self.workdir.path(),
        )
        .await
    }
}
