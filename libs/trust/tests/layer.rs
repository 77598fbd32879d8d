//! The trust layer end to end: real gRPC on 127.0.0.1:0, a real SQLite event log, a real
//! vault and real dev tokens, around a hand-written probe service (no Caseline service
//! has case RPCs yet). Every test reads what the layer recorded back from the log.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use caseline_auth::{AuthConfig, Authenticator, DevKey, Role};
use caseline_eventlog::sqlite::SqliteEventLog;
use caseline_eventlog::{
    AppendResult, Direction, EventLog, ExpectedVersion, Metadata, NewEvent, Position,
    RecordedEvent, StreamName, Uuid,
};
use caseline_policy::teams::{BREAK_GLASS_GRANTED, TEAM_MEMBER_ADDED, TEAM_MEMBER_REMOVED};
use caseline_policy::{Action, Compartment, POLICY_VERSION};
use caseline_proto::v1::events::{
    AccessOutcome, AccessRecorded, BreakGlassGranted, TeamMemberAdded, TeamMemberRemoved,
};
use caseline_server::{ApiError, FieldViolation, GrpcServer, ServerError, Services};
use caseline_trust::flood::DEFAULT_REFUSED_PER_MINUTE;
use caseline_trust::{
    ACCESS_RECORDED, BREAK_GLASS_HEADER, CASE_ROLES, Call, Clock, Kind, MethodSpec, PURPOSE_HEADER,
    ROLE_HEADER, Scope, Trust, TrustConfig,
};
use caseline_vault::{KEY_STORE_FILE, MasterKey, Opened, Sealed, SqliteKeyStore, Vault};
use prost::Message as _;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tonic_types::StatusExt as _;

// ---------------------------------------------------------------------------------------
// The probe service
// ---------------------------------------------------------------------------------------

const PROBE: &str = "caseline.test.Probe";
const READ_CORE: &str = "/caseline.test.Probe/ReadCore";
const WRITE_NOTE: &str = "/caseline.test.Probe/WriteNote";
const FORGETFUL: &str = "/caseline.test.Probe/Forgetful";
/// Asks the policy, is refused, and answers OK with case data all the same.
const STUBBORN: &str = "/caseline.test.Probe/Stubborn";
const LIST: &str = "/caseline.test.Probe/List";
/// Served by the probe (it answers OK with case data) but never declared.
const UNDECLARED: &str = "/caseline.test.Probe/Undeclared";

const PROBE_METHODS: &[MethodSpec] = &[
    MethodSpec {
        path: READ_CORE,
        kind: Kind::Read,
        scope: Scope::Case,
        roles: CASE_ROLES,
    },
    MethodSpec {
        path: WRITE_NOTE,
        kind: Kind::Write,
        scope: Scope::Case,
        roles: CASE_ROLES,
    },
    MethodSpec {
        path: FORGETFUL,
        kind: Kind::Read,
        scope: Scope::Case,
        roles: CASE_ROLES,
    },
    MethodSpec {
        path: STUBBORN,
        kind: Kind::Read,
        scope: Scope::Case,
        roles: CASE_ROLES,
    },
    MethodSpec {
        path: LIST,
        kind: Kind::Read,
        scope: Scope::Global,
        roles: CASE_ROLES,
    },
];

/// What the probe answers with when it answers; tests look for it where it must not be.
const CASE_DATA: &str = "case-data-the-child-record-7f3a";
const NOTE_EVENT: &str = "caseline.test.InvestigationNoteAdded";

#[derive(Clone, PartialEq, prost::Message)]
struct ProbeRequest {
    #[prost(string, tag = "1")]
    case_id: String,
    #[prost(string, tag = "2")]
    request_id: String,
    #[prost(string, repeated, tag = "3")]
    ids: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProbeReply {
    #[prost(string, tag = "1")]
    sight: String,
    #[prost(string, tag = "2")]
    data: String,
    #[prost(string, repeated, tag = "3")]
    ids: Vec<String>,
}

type ProbeResult = Result<tonic::Response<ProbeReply>, Status>;

fn uuid_field(field: &'static str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::InvalidArgument(vec![FieldViolation::new(field, "must be a uuid")]))
}

fn data_reply() -> ProbeReply {
    ProbeReply {
        data: CASE_DATA.to_owned(),
        ..ProbeReply::default()
    }
}

async fn read_core(request: tonic::Request<ProbeRequest>) -> ProbeResult {
    let call = Call::of(&request)?;
    let case_id = uuid_field("case_id", &request.get_ref().case_id)?;
    let access = call
        .case(case_id, Action::Read(Compartment::CaseCore))
        .await?;
    Ok(tonic::Response::new(ProbeReply {
        sight: format!("{:?}", access.decision.sight),
        ..data_reply()
    }))
}

async fn write_note(request: tonic::Request<ProbeRequest>) -> ProbeResult {
    let call = Call::of(&request)?;
    let case_id = uuid_field("case_id", &request.get_ref().case_id)?;
    let request_id = uuid_field("request_id", &request.get_ref().request_id)?;
    call.case(case_id, Action::Write(Compartment::Investigation))
        .await?;
    let stream = StreamName::for_id("case", case_id).map_err(ApiError::from)?;
    let event = NewEvent {
        event_id: Uuid::new_v5(&request_id, b"0"),
        event_type: NOTE_EVENT.to_owned(),
        data: b"a sealed note would go here".to_vec(),
        metadata: call.event_metadata(Some(case_id), Some(request_id)),
    };
    let appended = call
        .log()
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .map_err(ApiError::from)?;
    Ok(tonic::Response::new(ProbeReply {
        ids: vec![appended.last_version.to_string()],
        ..ProbeReply::default()
    }))
}

/// A case method that forgets to ask the policy.
async fn forgetful(request: tonic::Request<ProbeRequest>) -> ProbeResult {
    Call::of(&request)?;
    Ok(tonic::Response::new(data_reply()))
}

/// A case method that asks the policy and ignores its answer.
async fn stubborn(request: tonic::Request<ProbeRequest>) -> ProbeResult {
    let call = Call::of(&request)?;
    let case_id = Uuid::parse_str(&request.get_ref().case_id)
        .map_err(|_| Status::invalid_argument("case_id"))?;
    let _ignored = call
        .case(case_id, Action::Read(Compartment::CaseCore))
        .await;
    Ok(tonic::Response::new(data_reply()))
}

async fn list(request: tonic::Request<ProbeRequest>) -> ProbeResult {
    let call = Call::of(&request)?;
    let ids = request.into_inner().ids;
    call.returned(&ids);
    Ok(tonic::Response::new(ProbeReply {
        ids,
        ..ProbeReply::default()
    }))
}

async fn undeclared(_request: tonic::Request<ProbeRequest>) -> ProbeResult {
    Ok(tonic::Response::new(data_reply()))
}

/// One unary handler, as tonic-generated servers wrap theirs.
struct Handler<F>(F);

impl<F, Fut> tonic::server::UnaryService<ProbeRequest> for Handler<F>
where
    F: FnMut(tonic::Request<ProbeRequest>) -> Fut,
    Fut: Future<Output = ProbeResult>,
{
    type Response = ProbeReply;
    type Future = Fut;

    fn call(&mut self, request: tonic::Request<ProbeRequest>) -> Fut {
        (self.0)(request)
    }
}

#[derive(Clone, Debug, Default)]
struct Probe;

impl tonic::server::NamedService for Probe {
    const NAME: &'static str = PROBE;
}

impl tower_service::Service<http::Request<Body>> for Probe {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<ProbeReply, ProbeRequest>::default());
            let response = match path.as_str() {
                READ_CORE => grpc.unary(Handler(read_core), request).await,
                WRITE_NOTE => grpc.unary(Handler(write_note), request).await,
                FORGETFUL => grpc.unary(Handler(forgetful), request).await,
                STUBBORN => grpc.unary(Handler(stubborn), request).await,
                LIST => grpc.unary(Handler(list), request).await,
                UNDECLARED => grpc.unary(Handler(undeclared), request).await,
                _ => Status::unimplemented("no such probe method").into_http(),
            };
            Ok(response)
        })
    }
}

// ---------------------------------------------------------------------------------------
// The harness: one server, log, vault and dev issuer per test
// ---------------------------------------------------------------------------------------

const INSTANCE: &str = "layer-test";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const EMERGENCY: &str = "emergency_safeguarding";
const REASON: &str = "child reported missing tonight, team unreachable";

struct Parts {
    log: Arc<dyn EventLog>,
    vault: Vault,
    dev: DevKey,
    authenticator: Authenticator,
}

async fn parts(dir: &Path) -> Parts {
    let log: Arc<dyn EventLog> =
        Arc::new(SqliteEventLog::open(dir.join("events.db")).await.unwrap());
    let master = MasterKey::load_or_create(dir).unwrap();
    let store = SqliteKeyStore::open(dir.join(KEY_STORE_FILE))
        .await
        .unwrap();
    let vault = Vault::new(master, Arc::new(store));
    let dev = DevKey::load_or_create(&dir.join("dev")).unwrap();
    let authenticator = Authenticator::new(AuthConfig {
        issuers: vec![dev.issuer_config()],
        leeway: Duration::from_secs(30),
        dev_mode: true,
    })
    .await
    .unwrap();
    Parts {
        log,
        vault,
        dev,
        authenticator,
    }
}

struct Harness {
    channel: Channel,
    /// The real log, for seeding and reading back (the server may see it wrapped).
    log: Arc<dyn EventLog>,
    vault: Vault,
    dev: DevKey,
    /// How far the trust layer's clock is ahead of the real one, in seconds.
    ahead: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(|log| log).await
    }

    /// A server that records at most `refused_per_minute` refused calls per address.
    async fn start_limited(refused_per_minute: u32) -> Self {
        Self::start_on(|log| log, refused_per_minute).await
    }

    /// A server whose trust layer writes to `wrap(real log)`.
    async fn start_with(wrap: impl FnOnce(Arc<dyn EventLog>) -> Arc<dyn EventLog>) -> Self {
        Self::start_on(wrap, DEFAULT_REFUSED_PER_MINUTE).await
    }

    async fn start_on(
        wrap: impl FnOnce(Arc<dyn EventLog>) -> Arc<dyn EventLog>,
        refused_per_minute: u32,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let Parts {
            log,
            vault,
            dev,
            authenticator,
        } = parts(dir.path()).await;
        let ahead = Arc::new(AtomicU64::new(0));
        let clock: Clock = {
            let ahead = Arc::clone(&ahead);
            Arc::new(move || SystemTime::now() + Duration::from_secs(ahead.load(Ordering::SeqCst)))
        };
        let trust = Trust::with_clock(
            TrustConfig {
                authenticator,
                log: wrap(Arc::clone(&log)),
                vault: vault.clone(),
                instance: INSTANCE.to_owned(),
                refused_per_minute,
            },
            clock,
        );
        trust.register(PROBE_METHODS);
        let services = Services::new(trust.guard()).add_service(Probe);
        let server = GrpcServer::build("127.0.0.1:0".parse().unwrap(), services)
            .await
            .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            channel,
            log,
            vault,
            dev,
            ahead,
            _stop: stop,
            _dir: dir,
        }
    }

    fn advance(&self, by: Duration) {
        self.ahead.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// The `authorization` value of a fresh dev token.
    fn bearer(&self, sub: &str, roles: &[Role], agency: &str) -> String {
        let token = self
            .dev
            .issue(sub, roles, agency, None, Duration::from_secs(3600))
            .unwrap();
        format!("Bearer {token}")
    }

    async fn call(
        &self,
        method: &'static str,
        body: ProbeRequest,
        headers: &[(&'static str, &str)],
    ) -> Result<ProbeReply, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unknown(format!("service was not ready: {e}")))?;
        let mut request = tonic::Request::new(body);
        for (name, value) in headers {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
        let codec = ProstCodec::<ProbeRequest, ProbeReply>::default();
        grpc.unary(request, http::uri::PathAndQuery::from_static(method), codec)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn read(
        &self,
        case_id: Uuid,
        headers: &[(&'static str, &str)],
    ) -> Result<ProbeReply, Status> {
        self.call(READ_CORE, on_case(case_id), headers).await
    }

    async fn write(
        &self,
        case_id: Uuid,
        request_id: Uuid,
        headers: &[(&'static str, &str)],
    ) -> Result<ProbeReply, Status> {
        let body = ProbeRequest {
            request_id: request_id.to_string(),
            ..on_case(case_id)
        };
        self.call(WRITE_NOTE, body, headers).await
    }

    async fn append_to_case(&self, case_id: Uuid, event_type: &str, data: Vec<u8>) {
        let event = NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.to_owned(),
            data,
            metadata: Metadata {
                case_id: Some(case_id),
                actor: "seed-admin".to_owned(),
                actor_role: Role::Admin.as_str().to_owned(),
                agency: "seed".to_owned(),
                ..Metadata::default()
            },
        };
        self.log
            .append(&case_stream(case_id), ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }

    async fn add_member(&self, case_id: Uuid, subject: &str, agency: &str, role: Role) {
        let added = TeamMemberAdded {
            subject: subject.to_owned(),
            agency: agency.to_owned(),
            role: role.as_str().to_owned(),
        };
        self.append_to_case(case_id, TEAM_MEMBER_ADDED, added.encode_to_vec())
            .await;
    }

    async fn remove_member(&self, case_id: Uuid, subject: &str, agency: &str) {
        let removed = TeamMemberRemoved {
            subject: subject.to_owned(),
            agency: agency.to_owned(),
        };
        self.append_to_case(case_id, TEAM_MEMBER_REMOVED, removed.encode_to_vec())
            .await;
    }

    /// A new case whose team is `members` (subject, agency, role).
    async fn case_with(&self, members: &[(&str, &str, Role)]) -> Uuid {
        let case_id = Uuid::new_v4();
        for (subject, agency, role) in members {
            self.add_member(case_id, subject, agency, *role).await;
        }
        case_id
    }

    async fn events(&self, stream: &StreamName) -> Vec<RecordedEvent> {
        self.log
            .read_stream(stream, Direction::Forwards, None, 1000)
            .await
            .unwrap()
    }

    async fn records(&self, stream: &StreamName) -> Vec<(RecordedEvent, AccessRecorded)> {
        self.events(stream)
            .await
            .into_iter()
            .filter(|e| e.event_type == ACCESS_RECORDED)
            .map(|e| {
                let record = AccessRecorded::decode(e.data.as_slice()).unwrap();
                (e, record)
            })
            .collect()
    }

    async fn case_records(&self, case_id: Uuid) -> Vec<(RecordedEvent, AccessRecorded)> {
        self.records(&access_stream(case_id)).await
    }

    async fn unauthenticated_records(&self) -> Vec<(RecordedEvent, AccessRecorded)> {
        self.records(&StreamName::new("access-unauthenticated").unwrap())
            .await
    }

    async fn global_records(&self) -> Vec<(RecordedEvent, AccessRecorded)> {
        self.records(&StreamName::new("access-global").unwrap())
            .await
    }

    async fn grants(&self, case_id: Uuid) -> Vec<(RecordedEvent, BreakGlassGranted)> {
        self.events(&access_stream(case_id))
            .await
            .into_iter()
            .filter(|e| e.event_type == BREAK_GLASS_GRANTED)
            .map(|e| {
                let grant = BreakGlassGranted::decode(e.data.as_slice()).unwrap();
                (e, grant)
            })
            .collect()
    }
}

/// Break-glass metadata with a valid purpose and reason.
fn glass(authorization: &str) -> [(&'static str, &str); 3] {
    [
        ("authorization", authorization),
        (PURPOSE_HEADER, EMERGENCY),
        (BREAK_GLASS_HEADER, REASON),
    ]
}

fn on_case(case_id: Uuid) -> ProbeRequest {
    ProbeRequest {
        case_id: case_id.to_string(),
        ..ProbeRequest::default()
    }
}

fn case_stream(case_id: Uuid) -> StreamName {
    StreamName::for_id("case", case_id).unwrap()
}

fn access_stream(case_id: Uuid) -> StreamName {
    StreamName::for_id("access", case_id).unwrap()
}

fn outcome(record: &AccessRecorded) -> AccessOutcome {
    AccessOutcome::try_from(record.outcome).unwrap()
}

/// Everything a stored event holds that a reader could see: payload and envelope.
fn stored_bytes(event: &RecordedEvent) -> Vec<u8> {
    let m = &event.metadata;
    let mut bytes = event.data.clone();
    for text in [
        m.actor.as_str(),
        m.actor_role.as_str(),
        m.agency.as_str(),
        m.traceparent.as_deref().unwrap_or_default(),
        event.event_type.as_str(),
    ] {
        bytes.extend_from_slice(text.as_bytes());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Everything a refused caller receives: code, message, details and metadata.
fn everything_in(status: &Status) -> Vec<u8> {
    let mut bytes = status.message().as_bytes().to_vec();
    bytes.extend_from_slice(status.details());
    bytes.extend_from_slice(format!("{:?}", status.metadata()).as_bytes());
    bytes
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_team_member_reads_and_the_read_is_recorded_with_who_what_where_and_trace() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");

    let reply = h
        .read(
            case_id,
            &[("authorization", &ana), ("traceparent", TRACEPARENT)],
        )
        .await
        .unwrap();
    assert_eq!(reply.data, CASE_DATA);
    assert_eq!(reply.sight, "Full");

    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (event, record) = &records[0];
    assert_eq!(outcome(record), AccessOutcome::Allowed);
    assert_eq!(record.status_code, 0);
    assert_eq!(record.rpc, READ_CORE);
    assert_eq!(record.case_id, case_id.to_string());
    assert_eq!(record.reason, "team_member");
    assert_eq!(record.policy_version, POLICY_VERSION);
    assert_eq!(record.trace_id, TRACE_ID);
    assert_eq!(record.instance, INSTANCE);
    assert!(!record.break_glass && !record.unauthenticated);
    let peer: SocketAddr = record.peer.parse().unwrap();
    assert!(peer.ip().is_loopback(), "{peer}");
    assert_ne!(peer.port(), 0);

    assert_eq!(event.metadata.case_id, Some(case_id));
    assert_eq!(event.metadata.actor, "sw-ana");
    assert_eq!(event.metadata.actor_role, "social_worker");
    assert_eq!(event.metadata.agency, "social-north");
    assert_eq!(event.metadata.traceparent.as_deref(), Some(TRACEPARENT));
    assert!(
        h.global_records().await.is_empty(),
        "a case read is recorded with its case only"
    );
}

#[tokio::test]
async fn a_non_member_gets_not_found_exactly_as_for_a_case_that_does_not_exist() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let absent = Uuid::new_v4();
    let dee = h.bearer("pros-dee", &[Role::Prosecutor], "prosecution");
    // The same subject from another agency is not the member either.
    let other_ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-south");

    let hidden = h
        .read(case_id, &[("authorization", &dee)])
        .await
        .unwrap_err();
    let missing = h
        .read(absent, &[("authorization", &dee)])
        .await
        .unwrap_err();
    let other = h
        .read(case_id, &[("authorization", &other_ana)])
        .await
        .unwrap_err();

    for status in [&hidden, &missing, &other] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(!contains(&everything_in(status), CASE_DATA));
    }
    assert!(hidden.message().contains(&case_id.to_string()));
    let shape = |s: &Status, id: Uuid| s.message().replace(&id.to_string(), "<id>");
    assert_eq!(shape(&hidden, case_id), shape(&missing, absent));
    assert_eq!(shape(&other, case_id), shape(&missing, absent));
    assert_eq!(hidden.details(), missing.details());

    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 2, "{records:?}");
    for (event, record) in &records {
        assert_eq!(outcome(record), AccessOutcome::Denied);
        assert_eq!(record.status_code, Code::NotFound as i32);
        assert_eq!(record.reason, "not_on_team");
        assert_eq!(event.metadata.case_id, Some(case_id));
    }
    assert_eq!(records[0].0.metadata.actor, "pros-dee");
    assert_eq!(records[1].0.metadata.agency, "social-south");
    let records = h.case_records(absent).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(outcome(&records[0].1), AccessOutcome::Denied);
    assert_eq!(records[0].1.status_code, Code::NotFound as i32);
    assert_eq!(records[0].1.reason, "no_such_case");
}

#[tokio::test]
async fn removing_a_member_takes_effect_on_their_very_next_call() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");
    let auth = [("authorization", ana.as_str())];

    h.read(case_id, &auth).await.unwrap();
    h.remove_member(case_id, "sw-ana", "social-north").await;
    let status = h.read(case_id, &auth).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let records = h.case_records(case_id).await;
    let outcomes: Vec<_> = records.iter().map(|(_, r)| outcome(r)).collect();
    assert_eq!(
        outcomes,
        [AccessOutcome::Allowed, AccessOutcome::Denied],
        "{records:?}"
    );
    assert_eq!(records[1].1.reason, "not_on_team");
}

#[tokio::test]
async fn break_glass_grants_read_access_for_one_hour_with_a_sealed_reason() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ben = h.bearer("police-ben", &[Role::PoliceInvestigator], "police-north");
    let auth = [("authorization", ben.as_str())];

    let reply = h
        .read(
            case_id,
            &[
                ("authorization", &ben),
                (PURPOSE_HEADER, EMERGENCY),
                (BREAK_GLASS_HEADER, REASON),
            ],
        )
        .await
        .unwrap();
    assert_eq!(reply.data, CASE_DATA);

    // The grant: who, why (sealed under the case key), for one hour.
    let grants = h.grants(case_id).await;
    assert_eq!(grants.len(), 1, "{grants:?}");
    let (grant_event, grant) = &grants[0];
    assert_eq!(grant.subject, "police-ben");
    assert_eq!(grant.role, "police_investigator");
    assert_eq!(grant.agency, "police-north");
    assert_eq!(grant.purpose, EMERGENCY);
    assert_eq!(
        grant.expires_at_unix_ms - grant.granted_at_unix_ms,
        60 * 60 * 1000
    );
    assert!(!contains(&stored_bytes(grant_event), REASON));
    let sealed = Sealed::from_bytes(grant.reason_sealed.clone()).unwrap();
    match h.vault.open_text(case_id, &sealed).await.unwrap() {
        Opened::Plain(text) => assert_eq!(text.expose(), REASON),
        Opened::Erased => panic!("the case key is not shredded"),
    }

    // The read itself, recorded after the grant.
    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (event, record) = &records[0];
    assert!(grant_event.version < event.version);
    assert_eq!(outcome(record), AccessOutcome::Allowed);
    assert!(record.break_glass);
    assert_eq!(record.reason, "break_glass_opened");
    assert_eq!(record.purpose, EMERGENCY);
    assert!(!contains(&stored_bytes(event), REASON));

    // Within the hour the grant stands without the headers, and is not granted again.
    h.advance(Duration::from_secs(59 * 60));
    h.read(case_id, &auth).await.unwrap();
    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records[1].1.break_glass);
    assert_eq!(records[1].1.reason, "break_glass_active");
    assert_eq!(h.grants(case_id).await.len(), 1);

    // After it, the case is gone again for them.
    h.advance(Duration::from_secs(2 * 60));
    let status = h.read(case_id, &auth).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(outcome(&records[2].1), AccessOutcome::Denied);
    assert!(!records[2].1.break_glass);
}

#[tokio::test]
async fn break_glass_is_read_only_and_not_for_every_role() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ben = h.bearer("police-ben", &[Role::PoliceInvestigator], "police-north");

    // A write through break-glass is refused and opens nothing; the case stays hidden,
    // exactly as an absent one (a write cannot probe for existence).
    let status = h
        .write(case_id, Uuid::new_v4(), &glass(&ben))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(h.grants(case_id).await.is_empty());
    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(outcome(&records[0].1), AccessOutcome::Denied);
    assert_eq!(records[0].1.reason, "not_on_team");

    // Nor does an open grant make writes possible (the case is known to them now).
    h.read(case_id, &glass(&ben)).await.unwrap();
    let status = h
        .write(case_id, Uuid::new_v4(), &[("authorization", &ben)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let last = h.case_records(case_id).await.pop().unwrap();
    assert_eq!(last.1.reason, "break_glass_is_read_only");
    let notes = h.events(&case_stream(case_id)).await;
    assert!(notes.iter().all(|e| e.event_type != NOTE_EVENT));

    // A helpline counsellor may not break the glass: the case does not exist for them.
    let cy = h.bearer("helpline-cy", &[Role::HelplineCounsellor], "helpline");
    let status = h.read(case_id, &glass(&cy)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let grants = h.grants(case_id).await;
    assert_eq!(grants.len(), 1, "only police-ben's: {grants:?}");
    assert_eq!(grants[0].1.subject, "police-ben");
    let last = h.case_records(case_id).await.pop().unwrap();
    assert_eq!(last.0.metadata.actor, "helpline-cy");
    assert_eq!(outcome(&last.1), AccessOutcome::Denied);
    assert!(!last.1.break_glass);
}

#[tokio::test]
async fn a_grant_opened_in_one_role_does_not_open_the_case_in_another() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let dual = h.bearer(
        "dana",
        &[Role::PoliceInvestigator, Role::SocialWorker],
        "north",
    );
    let [auth, purpose, reason] = glass(&dual);
    h.read(
        case_id,
        &[auth, purpose, reason, (ROLE_HEADER, "police_investigator")],
    )
    .await
    .unwrap();
    h.read(case_id, &[auth, (ROLE_HEADER, "police_investigator")])
        .await
        .unwrap();
    let status = h
        .read(case_id, &[auth, (ROLE_HEADER, "social_worker")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn a_bad_break_glass_request_is_invalid_argument_naming_the_metadata_at_fault() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ben = h.bearer("police-ben", &[Role::PoliceInvestigator], "police-north");

    let cases: [(&[(&'static str, &str)], &str); 2] = [
        (
            &[
                (PURPOSE_HEADER, EMERGENCY),
                (BREAK_GLASS_HEADER, "  urgent please   "),
            ],
            BREAK_GLASS_HEADER,
        ),
        (&[(BREAK_GLASS_HEADER, REASON)], PURPOSE_HEADER),
    ];
    for (glass, field) in cases {
        let mut headers = vec![("authorization", ben.as_str())];
        headers.extend_from_slice(glass);
        let status = h.read(case_id, &headers).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].field, field);
        assert!(!contains(&everything_in(&status), REASON));
    }
    assert!(h.grants(case_id).await.is_empty());
    let records = h.global_records().await;
    assert_eq!(records.len(), 2, "{records:?}");
    for (event, record) in &records {
        assert_eq!(record.status_code, Code::InvalidArgument as i32);
        assert_eq!(record.reason, "invalid_metadata");
        assert_eq!(event.metadata.actor, "police-ben");
        assert!(!contains(&stored_bytes(event), REASON));
    }
}

#[tokio::test]
async fn a_member_whose_role_may_not_write_the_compartment_is_refused_and_recorded() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("helpline-cy", "helpline", Role::HelplineCounsellor)])
        .await;
    let cy = h.bearer("helpline-cy", &[Role::HelplineCounsellor], "helpline");

    let status = h
        .write(case_id, Uuid::new_v4(), &[("authorization", &cy)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (event, record) = &records[0];
    assert_eq!(outcome(record), AccessOutcome::Denied);
    assert_eq!(record.status_code, Code::PermissionDenied as i32);
    assert_eq!(record.reason, "write_not_permitted");
    assert_eq!(record.rpc, WRITE_NOTE);
    assert_eq!(event.metadata.actor, "helpline-cy");
    assert_eq!(event.metadata.actor_role, "helpline_counsellor");
    let notes = h.events(&case_stream(case_id)).await;
    assert!(notes.iter().all(|e| e.event_type != NOTE_EVENT));
}

#[tokio::test]
async fn a_successful_write_appends_no_access_record_and_its_event_says_who_and_in_which_trace() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("police-ben", "police-north", Role::PoliceInvestigator)])
        .await;
    let ben = h.bearer("police-ben", &[Role::PoliceInvestigator], "police-north");
    let request_id = Uuid::new_v4();

    let reply = h
        .write(
            case_id,
            request_id,
            &[("authorization", &ben), ("traceparent", TRACEPARENT)],
        )
        .await
        .unwrap();

    let events = h.events(&case_stream(case_id)).await;
    let note = events.last().unwrap();
    assert_eq!(note.event_type, NOTE_EVENT);
    assert_eq!(reply.ids, [note.version.to_string()]);
    assert_eq!(note.metadata.case_id, Some(case_id));
    assert_eq!(note.metadata.request_id, Some(request_id));
    assert_eq!(note.metadata.actor, "police-ben");
    assert_eq!(note.metadata.actor_role, "police_investigator");
    assert_eq!(note.metadata.agency, "police-north");
    assert_eq!(note.metadata.traceparent.as_deref(), Some(TRACEPARENT));
    // Where, why and under which rules: the rest of what an access record would hold.
    let call = caseline_trust::CallContext::from_json(note.metadata.call.as_deref().unwrap())
        .expect("the write carries its call context");
    assert_eq!(call.rpc, WRITE_NOTE);
    assert!(call.peer.starts_with("127.0.0.1:"), "{call:?}");
    assert!(!call.instance.is_empty());
    assert_eq!(call.policy_version, POLICY_VERSION);
    assert!(!call.break_glass);
    assert!(h.case_records(case_id).await.is_empty());
    assert!(h.global_records().await.is_empty());
}

#[tokio::test]
async fn an_ok_answer_from_a_case_method_that_declared_no_case_is_withheld() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");

    let status = h
        .call(FORGETFUL, on_case(case_id), &[("authorization", &ana)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(!contains(&everything_in(&status), CASE_DATA));

    let records = h.global_records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (event, record) = &records[0];
    assert_eq!(record.reason, "undeclared_case_access");
    assert_eq!(record.status_code, Code::Internal as i32);
    assert_eq!(record.rpc, FORGETFUL);
    assert_eq!(outcome(record), AccessOutcome::Error);
    assert_eq!(event.metadata.actor, "sw-ana");
}

#[tokio::test]
async fn an_ok_answer_after_the_policy_refused_is_withheld() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let eve = h.bearer("pros-eve", &[Role::Prosecutor], "prosecution");

    let status = h
        .call(STUBBORN, on_case(case_id), &[("authorization", &eve)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(!contains(&everything_in(&status), CASE_DATA));
    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].1.status_code, Code::Internal as i32);
    assert_eq!(outcome(&records[0].1), AccessOutcome::Denied);
    assert_eq!(records[0].0.metadata.actor, "pros-eve");
}

#[tokio::test]
async fn an_undeclared_method_is_unimplemented_and_recorded() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");

    let status = h
        .call(UNDECLARED, on_case(case_id), &[("authorization", &ana)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(!contains(&everything_in(&status), CASE_DATA));

    let records = h.unauthenticated_records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (_, record) = &records[0];
    assert_eq!(record.rpc, UNDECLARED);
    assert_eq!(record.reason, "unknown_method");
    assert_eq!(record.status_code, Code::Unimplemented as i32);
    assert_eq!(outcome(record), AccessOutcome::Error);
    assert!(h.case_records(case_id).await.is_empty());
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_and_recorded_without_the_token() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    // Ana's claims under the signature of another token: well formed, forged.
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");
    let other = h.bearer("sw-zed", &[Role::SocialWorker], "social-north");
    let (signed, _) = ana.rsplit_once('.').unwrap();
    let (_, signature) = other.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{signature}");
    let garbage = "Bearer not-a-jwt-but-secret-looking-text";

    let attempts: [(Option<&str>, &str); 3] = [
        (None, "no_token"),
        (Some(garbage), "malformed"),
        (Some(&forged), "bad_signature"),
    ];
    for (authorization, _) in attempts {
        let headers: Vec<_> = authorization
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        let status = h.read(case_id, &headers).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(!contains(&everything_in(&status), CASE_DATA));
    }

    let records = h.unauthenticated_records().await;
    assert_eq!(records.len(), attempts.len(), "{records:?}");
    for ((event, record), (authorization, reason)) in records.iter().zip(attempts) {
        assert!(record.unauthenticated);
        assert_eq!(record.reason, reason);
        assert_eq!(outcome(record), AccessOutcome::Denied);
        assert_eq!(record.status_code, Code::Unauthenticated as i32);
        assert_eq!(record.rpc, READ_CORE);
        assert!(event.metadata.actor.is_empty());
        if let Some(authorization) = authorization {
            let token = authorization.strip_prefix("Bearer ").unwrap();
            let bytes = stored_bytes(event);
            assert!(!contains(&bytes, token));
            // Nor any of its parts (the claims segment names the subject).
            for segment in token.split('.') {
                assert!(!contains(&bytes, segment), "{segment}");
            }
        }
    }
    assert!(h.case_records(case_id).await.is_empty(), "no handler ran");
}

/// A flood of refused calls from one address does not grow the log with it: past the
/// limit the first is answered RESOURCE_EXHAUSTED and recorded as `rate_limited`, the
/// rest of the minute is answered so without a record; calls that pass the trust layer
/// are not limited; a minute later the address has its budget again.
#[tokio::test]
async fn refused_calls_past_the_limit_are_answered_but_not_recorded_one_by_one() {
    let h = Harness::start_limited(3).await;
    let case_id = h
        .case_with(&[("sw-ana", "social-north", Role::SocialWorker)])
        .await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(h.read(case_id, &[]).await.unwrap_err().code());
    }
    use Code::{ResourceExhausted, Unauthenticated};
    assert_eq!(
        codes,
        [
            Unauthenticated,
            Unauthenticated,
            Unauthenticated,
            ResourceExhausted,
            ResourceExhausted,
            ResourceExhausted
        ]
    );
    let records = h.unauthenticated_records().await;
    let reasons: Vec<&str> = records.iter().map(|(_, r)| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["no_token", "no_token", "no_token", "rate_limited"],
        "{records:?}"
    );
    let (_, limited) = &records[3];
    assert_eq!(limited.status_code, ResourceExhausted as i32);
    assert_eq!(outcome(limited), AccessOutcome::Denied);

    // A member's read from the same address passes and is recorded as always.
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");
    h.read(case_id, &[("authorization", &ana)]).await.unwrap();
    assert_eq!(h.case_records(case_id).await.len(), 1);

    // A minute on, refusals are answered and recorded one by one again.
    h.advance(Duration::from_secs(60));
    let status = h.read(case_id, &[]).await.unwrap_err();
    assert_eq!(status.code(), Unauthenticated);
    assert_eq!(h.unauthenticated_records().await.len(), 5);
}

#[tokio::test]
async fn a_token_with_several_roles_acts_in_the_one_it_names_and_carries() {
    let h = Harness::start().await;
    let case_id = h
        .case_with(&[("eve", "social-north", Role::Supervisor)])
        .await;
    let eve = h.bearer(
        "eve",
        &[Role::SocialWorker, Role::Supervisor],
        "social-north",
    );

    let status = h
        .read(case_id, &[("authorization", &eve)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    h.read(
        case_id,
        &[("authorization", &eve), (ROLE_HEADER, "supervisor")],
    )
    .await
    .unwrap();

    for lacking in ["police_investigator", "no_such_role"] {
        let status = h
            .read(case_id, &[("authorization", &eve), (ROLE_HEADER, lacking)])
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{lacking}: {status:?}"
        );
    }

    let records = h.case_records(case_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0.metadata.actor_role, "supervisor");
    assert_eq!(outcome(&records[0].1), AccessOutcome::Allowed);

    let refused = h.global_records().await;
    assert_eq!(refused.len(), 3, "{refused:?}");
    for (event, record) in &refused {
        assert_eq!(record.reason, "no_acting_role");
        assert_eq!(outcome(record), AccessOutcome::Denied);
        assert_eq!(event.metadata.actor, "eve");
        assert!(event.metadata.actor_role.is_empty());
    }
}

#[tokio::test]
async fn a_list_records_every_id_it_returns_in_one_record() {
    let h = Harness::start().await;
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");
    let ids: Vec<String> = (0..3).map(|_| Uuid::new_v4().to_string()).collect();

    let reply = h
        .call(
            LIST,
            ProbeRequest {
                ids: ids.clone(),
                ..ProbeRequest::default()
            },
            &[("authorization", &ana)],
        )
        .await
        .unwrap();
    assert_eq!(reply.ids, ids);

    let records = h.global_records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (event, record) = &records[0];
    assert_eq!(record.resource_ids, ids);
    assert_eq!(record.rpc, LIST);
    assert_eq!(outcome(record), AccessOutcome::Allowed);
    assert_eq!(record.reason, "role_permitted");
    assert!(record.case_id.is_empty() && event.metadata.case_id.is_none());
}

/// The real log, except that nothing can be appended to access streams.
#[derive(Debug)]
struct AccessRecordsDown(Arc<dyn EventLog>);

#[async_trait::async_trait]
impl EventLog for AccessRecordsDown {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, caseline_eventlog::Error> {
        if stream.as_str().starts_with("access-") {
            return Err(caseline_eventlog::Error::Unavailable(
                "access storage is down (test)".to_owned(),
            ));
        }
        self.0.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, caseline_eventlog::Error> {
        self.0.read_stream(stream, direction, from, limit).await
    }

    async fn read_case(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, caseline_eventlog::Error> {
        self.0.read_case(case_id, after, limit).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, caseline_eventlog::Error> {
        self.0.read_all(after, limit).await
    }

    fn appended(&self) -> tokio::sync::watch::Receiver<Position> {
        self.0.appended()
    }

    fn poll_interval(&self) -> Duration {
        self.0.poll_interval()
    }

    async fn close(&self) {
        self.0.close().await;
    }
}

#[tokio::test]
async fn a_read_that_cannot_be_recorded_fails_closed_without_its_data() {
    let h = Harness::start_with(|log| Arc::new(AccessRecordsDown(log))).await;
    let case_id = h
        .case_with(&[
            ("sw-ana", "social-north", Role::SocialWorker),
            ("police-ben", "police-north", Role::PoliceInvestigator),
        ])
        .await;
    let ana = h.bearer("sw-ana", &[Role::SocialWorker], "social-north");
    let dee = h.bearer("pros-dee", &[Role::Prosecutor], "prosecution");
    let ben = h.bearer("police-ben", &[Role::PoliceInvestigator], "police-north");

    let status = h
        .read(case_id, &[("authorization", &ana)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!contains(&everything_in(&status), CASE_DATA));
    assert!(!status.message().contains("test"), "no internal text");

    // A refusal that cannot be recorded is not answered either.
    let status = h
        .read(case_id, &[("authorization", &dee)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    assert!(h.case_records(case_id).await.is_empty());
    assert!(h.global_records().await.is_empty());

    // A write is audited by its own event, so it does not depend on access records.
    h.write(case_id, Uuid::new_v4(), &[("authorization", &ben)])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_server_whose_service_has_undeclared_methods_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Parts {
        log,
        vault,
        authenticator,
        ..
    } = parts(dir.path()).await;
    let checkpoints = caseline_projection::SqliteCheckpoints::open(dir.path().join("checkpoints"))
        .await
        .unwrap();
    let checkpoints: Arc<dyn caseline_projection::CheckpointStore> = Arc::new(checkpoints);
    let grants = caseline_projection::Followed::new(
        "audit.break-glass",
        Arc::clone(&log),
        Arc::clone(&checkpoints),
    );
    let listed = caseline_projection::Indexed::new("audit.listed", Arc::clone(&log), checkpoints);
    let trust = Trust::new(TrustConfig {
        refused_per_minute: DEFAULT_REFUSED_PER_MINUTE,
        authenticator,
        log,
        vault,
        instance: INSTANCE.to_owned(),
    });
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // The probe is not in Caseline's descriptors: it must have declared something.
    let services = Services::new(trust.guard()).add_service(Probe);
    match GrpcServer::build(listen, services).await {
        Err(ServerError::Unguarded(message)) => assert!(message.contains(PROBE), "{message}"),
        other => panic!("built without declarations: {other:?}"),
    }

    trust.register(PROBE_METHODS);
    let services = Services::new(trust.guard()).add_service(Probe).add_service(
        caseline_audit_service::server(grants.clone(), listed.clone()),
    );
    match GrpcServer::build(listen, services).await {
        Err(ServerError::Unguarded(message)) => {
            for method in caseline_audit_service::METHODS {
                assert!(message.contains(method.path), "{message}");
            }
            assert!(!message.contains(PROBE), "{message}");
        }
        other => panic!("built without declarations: {other:?}"),
    }

    trust.register(caseline_audit_service::METHODS);
    let services = Services::new(trust.guard()).add_service(Probe).add_service(
        caseline_audit_service::server(grants.clone(), listed.clone()),
    );
    GrpcServer::build(listen, services).await.unwrap();
}
