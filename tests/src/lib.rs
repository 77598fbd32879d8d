//! Client-side checks shared by the end-to-end tests: what any gRPC client (grpcurl, a
//! generated stub) sees of a running Caseline.
#![forbid(unsafe_code)]

pub mod check;
pub mod otlp;
pub mod processes;
pub mod requests;
pub mod seed;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use caseline_eventlog::Uuid;
use caseline_proto::prost_types::Timestamp;
use caseline_proto::tonic;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::compensation_service_client::CompensationServiceClient;
use caseline_proto::v1::referral_service_client::ReferralServiceClient;
use caseline_proto::v1::support_plan_service_client::SupportPlanServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Connects a plaintext channel to a server on this machine.
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// Asserts that health reports SERVING for the server and for each of Caseline's five
/// services, and NOT_FOUND for a service that does not exist.
pub async fn assert_all_services_serving(channel: Channel) {
    let mut health = HealthClient::new(channel);
    for service in std::iter::once("").chain(caseline_proto::SERVICE_NAMES) {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check of {service:?} failed: {e}"))
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "health of {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "caseline.v1.NoSuchService".to_owned(),
        })
        .await
        .expect_err("an unknown service has no health");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// Which reflection protocol to ask.
#[derive(Clone, Copy, Debug)]
pub enum Reflection {
    V1,
    V1Alpha,
}

/// The services a server lists through reflection.
pub async fn reflected_services(channel: Channel, version: Reflection) -> BTreeSet<String> {
    macro_rules! list {
        ($pb:ident) => {{
            use tonic_reflection::pb::$pb::ServerReflectionRequest;
            use tonic_reflection::pb::$pb::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$pb::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$pb::server_reflection_response::MessageResponse;
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut responses = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::once(request))
                .await
                .expect("reflection call")
                .into_inner();
            let response = responses
                .message()
                .await
                .expect("reflection response")
                .expect("one response");
            match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    list.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("unexpected reflection answer: {other:?}"),
            }
        }};
    }
    match version {
        Reflection::V1 => list!(v1),
        Reflection::V1Alpha => list!(v1alpha),
    }
}

/// Asserts both reflection protocols list the five services and health.
pub async fn assert_reflection_lists_everything(channel: Channel) {
    for version in [Reflection::V1, Reflection::V1Alpha] {
        let listed = reflected_services(channel.clone(), version).await;
        for service in caseline_proto::SERVICE_NAMES
            .into_iter()
            .chain(["grpc.health.v1.Health"])
        {
            assert!(
                listed.contains(service),
                "{version:?} reflection lacks {service}: {listed:?}"
            );
        }
    }
}

/// A whole all-in-one Caseline (`serve --dev`) running in-process on port 0 with its
/// own data directory, and the means to mint its users' tokens.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub log: std::sync::Arc<dyn caseline_eventlog::EventLog>,
    pub trust: caseline_trust::Trust,
    pub dir: tempfile::TempDir,
    dev_key: caseline_auth::DevKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(caseline::serve::Clockwork::default()).await
    }

    /// A server deciding by `clockwork`'s clock (tests move it rather than wait).
    pub async fn start_with(clockwork: caseline::serve::Clockwork) -> Self {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let args = caseline::serve::ServeArgs::dev(
            "127.0.0.1:0".parse().expect("address"),
            dir.path().to_path_buf(),
        );
        let app = caseline::serve::AllInOne::build_with(&args, clockwork)
            .await
            .expect("all-in-one builds");
        let addr = app.local_addr();
        let log = std::sync::Arc::clone(app.log());
        let trust = app.trust().clone();
        let dev_key =
            caseline_auth::DevKey::load_or_create(dir.path()).expect("the server's dev key");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .expect("server stops cleanly");
        });
        Self {
            addr,
            log,
            trust,
            dir,
            dev_key,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A token for `sub` of `agency` acting as `role`, valid for an hour.
    pub fn token(&self, sub: &str, role: caseline_auth::Role, agency: &str) -> String {
        self.dev_key
            .issue(
                sub,
                &[role],
                agency,
                None,
                std::time::Duration::from_secs(3600),
            )
            .expect("dev token")
    }

    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// Stops the server and waits until it has closed its log.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// `message` with `token` as its bearer credential.
/// A client of every service, on one channel to `server`.
#[derive(Clone, Debug)]
pub struct Clients {
    pub cases: CaseServiceClient<Channel>,
    pub referrals: ReferralServiceClient<Channel>,
    pub plans: SupportPlanServiceClient<Channel>,
    pub compensation: CompensationServiceClient<Channel>,
}

impl Clients {
    pub async fn of(server: &TestServer) -> Self {
        let channel = server.channel().await;
        Self {
            cases: CaseServiceClient::new(channel.clone()),
            referrals: ReferralServiceClient::new(channel.clone()),
            plans: SupportPlanServiceClient::new(channel.clone()),
            compensation: CompensationServiceClient::new(channel),
        }
    }
}

pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// A fresh request id.
pub fn rid() -> String {
    Uuid::new_v4().to_string()
}

/// `t` as a protobuf timestamp.
pub fn ts(t: SystemTime) -> Timestamp {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a time after the epoch");
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A clock the test moves forward; the server decides by it.
#[derive(Clone, Debug)]
pub struct TestClock {
    /// Seconds added to the real time.
    offset: Arc<AtomicU64>,
    /// Where the server's referral process tells when its last round began.
    swept: tokio::sync::watch::Sender<Option<SystemTime>>,
}

impl Default for TestClock {
    fn default() -> Self {
        Self {
            offset: Arc::default(),
            swept: tokio::sync::watch::Sender::new(None),
        }
    }
}

/// How long [`TestClock::swept`] waits for a round of the referral process.
const SWEEP_WAIT: Duration = Duration::from_secs(20);

impl TestClock {
    /// Moves the clock forward by `by` (whole seconds).
    pub fn advance(&self, by: Duration) {
        self.offset.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// The time now by this clock.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.offset.load(Ordering::SeqCst))
    }

    /// The server's clockwork on this clock, sweeping for escalations every
    /// `escalation_every`.
    pub fn clockwork(&self, escalation_every: Duration) -> caseline::serve::Clockwork {
        let clock = self.clone();
        caseline::serve::Clockwork {
            clock: Arc::new(move || clock.now()),
            escalation_every,
            escalation_swept: self.swept.clone(),
        }
    }

    /// Waits until the server's referral process has run a whole round (attaching,
    /// then escalating) that began at this clock's time now or later: whatever it does
    /// by now is done. A check that it did nothing comes after this, never after a
    /// pause, which would also pass if the round had not run yet. Panics after 20 s.
    pub async fn swept(&self) {
        let now = self.now();
        let mut swept = self.swept.subscribe();
        tokio::time::timeout(
            SWEEP_WAIT,
            swept.wait_for(|began| began.is_some_and(|began| began >= now)),
        )
        .await
        .unwrap_or_else(|_| panic!("the referral process ran no round within {SWEEP_WAIT:?}"))
        .expect("the clock holds the sender");
    }
}

/// Someone with a token: subject, agency and the one role they act in.
#[derive(Clone, Debug)]
pub struct User {
    pub sub: String,
    pub agency: String,
    pub role: caseline_auth::Role,
    pub token: String,
}

impl User {
    /// `sub` of `agency` acting as `role`, with a token from `server`.
    pub fn new(server: &TestServer, sub: &str, role: caseline_auth::Role, agency: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            agency: agency.to_owned(),
            role,
            token: server.token(sub, role, agency),
        }
    }
}

/// Seconds in a day.
const SECONDS_PER_DAY: u64 = 86_400;

/// The UTC date `days` from now by the real clock.
pub fn date_in(days: i64) -> String {
    let now = SystemTime::now();
    let by = Duration::from_secs(days.unsigned_abs() * SECONDS_PER_DAY);
    caseline_server::validate::date_of(if days < 0 { now - by } else { now + by })
}

#[derive(Debug)]
/// A server clock the test moves by whole days, started at noon UTC so that no date
/// changes under a running test.
pub struct Calendar {
    pub clock: TestClock,
    offset: Duration,
}

impl Calendar {
    pub fn at_noon() -> Self {
        let clock = TestClock::default();
        let secs = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let offset = Duration::from_secs(
            (SECONDS_PER_DAY + SECONDS_PER_DAY / 2 - secs % SECONDS_PER_DAY) % SECONDS_PER_DAY,
        );
        clock.advance(offset);
        Self { clock, offset }
    }

    pub fn advance_days(&mut self, days: u64) {
        let by = Duration::from_secs(days * SECONDS_PER_DAY);
        self.clock.advance(by);
        self.offset += by;
    }

    /// The date `days` after the server's today.
    pub fn date(&self, days: i64) -> String {
        let now = SystemTime::now() + self.offset;
        let by = Duration::from_secs(days.unsigned_abs() * SECONDS_PER_DAY);
        caseline_server::validate::date_of(if days < 0 { now - by } else { now + by })
    }
}
