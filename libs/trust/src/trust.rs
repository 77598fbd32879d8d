//! The trust layer around every call: authenticate, pick the acting role, check the
//! method's role gate through `decide`, run the handler, then record the access and
//! only then let the response leave.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use base64::Engine as _;
use caseline_auth::{Authenticator, Principal, Role};
use caseline_eventlog::{EventLog, Uuid};
use caseline_policy::{
    Action, BreakGlassRequest, CaseTeams, Context, Decision, Resource, decide, is_purpose,
};
use caseline_proto::prost::Message;
use caseline_proto::tonic::{self, Code, Status};
use caseline_server::{ApiError, BoxFuture, FieldViolation, Guard, Next};
use caseline_vault::{SecretText, Vault};
use tonic::body::Body;
use tracing::Instrument as _;

use crate::call::{Call, CallInner, CallRecord};
use crate::flood::{Refusal, Refusals};
use crate::record::{AccessFacts, append_access};
use crate::spec::{Kind, MethodSpec, Scope};
use crate::trace::TraceContext;

/// Metadata a client sets to choose its role when the token carries several.
pub const ROLE_HEADER: &str = "x-caseline-role";
/// Metadata naming the purpose of use (one of `caseline_policy::PURPOSES`).
pub const PURPOSE_HEADER: &str = "x-caseline-purpose";
/// Metadata carrying the break-glass reason (ASCII), or `-bin` for any UTF-8.
pub const BREAK_GLASS_HEADER: &str = "x-caseline-break-glass-reason";
const BREAK_GLASS_BIN_HEADER: &str = "x-caseline-break-glass-reason-bin";

/// A source of "now"; tests move it instead of waiting.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What the trust layer needs.
#[derive(Debug)]
pub struct TrustConfig {
    pub authenticator: Authenticator,
    pub log: Arc<dyn EventLog>,
    pub vault: Vault,
    /// Names this server instance in access records (e.g. `caseline-serve@host`).
    pub instance: String,
    /// Calls refused before anyone is authenticated that are recorded per peer address
    /// and minute ([`crate::flood`]); the default is
    /// [`crate::flood::DEFAULT_REFUSED_PER_MINUTE`].
    pub refused_per_minute: u32,
}

/// The trust layer of one process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Trust {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) auth: Authenticator,
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) vault: Vault,
    pub(crate) teams: CaseTeams,
    pub(crate) instance: String,
    pub(crate) clock: Clock,
    pub(crate) refusals: Refusals,
    methods: RwLock<HashMap<&'static str, MethodSpec>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("instance", &self.instance)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Trust {
    pub fn new(config: TrustConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemTime::now))
    }

    /// A trust layer whose notion of now is `clock` (break-glass expiry in tests).
    pub fn with_clock(config: TrustConfig, clock: Clock) -> Self {
        let teams = CaseTeams::new(Arc::clone(&config.log));
        Self {
            inner: Arc::new(Inner {
                auth: config.authenticator,
                log: config.log,
                vault: config.vault,
                teams,
                instance: config.instance,
                clock,
                refusals: Refusals::new(config.refused_per_minute),
                methods: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Declares the methods of a service. A method not declared is never served.
    pub fn register(&self, methods: &'static [MethodSpec]) {
        let mut known = self
            .inner
            .methods
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for m in methods {
            known.insert(m.path, *m);
        }
    }

    /// The guard to give `caseline_server::Services::new`.
    pub fn guard(&self) -> Arc<dyn Guard> {
        Arc::new(self.clone())
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.inner.log
    }

    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    pub fn teams(&self) -> &CaseTeams {
        &self.inner.teams
    }

    /// The clock the trust layer decides by (injected in tests), for processes that
    /// follow time (escalation of overdue referrals).
    pub fn clock(&self) -> Clock {
        Arc::clone(&self.inner.clock)
    }

    fn has_methods_under(&self, prefix: &str) -> bool {
        let known = self.inner.methods.read().unwrap_or_else(|p| p.into_inner());
        known.keys().any(|path| path.starts_with(prefix))
    }

    fn spec(&self, path: &str) -> Option<MethodSpec> {
        let known = self.inner.methods.read().unwrap_or_else(|p| p.into_inner());
        known.get(path).copied()
    }
}

impl Guard for Trust {
    fn check_services(&self, services: &[&'static str]) -> Result<(), String> {
        let set = caseline_proto::prost_types::FileDescriptorSet::decode(
            caseline_proto::FILE_DESCRIPTOR_SET,
        )
        .map_err(|e| format!("descriptor set does not decode: {e}"))?;
        let mut missing = Vec::new();
        for name in services {
            let mut found = false;
            for file in &set.file {
                for service in &file.service {
                    let full = format!("{}.{}", file.package(), service.name());
                    if full != *name {
                        continue;
                    }
                    found = true;
                    for method in &service.method {
                        let path = format!("/{full}/{}", method.name());
                        if self.spec(&path).is_none() {
                            missing.push(path);
                        }
                    }
                }
            }
            // A service outside Caseline's API (a test probe) cannot be checked method by
            // method; it must at least have declared some. Undeclared methods of any
            // service are refused at call time all the same.
            let prefix = format!("/{name}/");
            if !found && !self.has_methods_under(&prefix) {
                missing.push(format!("{name} (no method declared)"));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "methods without an access declaration: {}",
                missing.join(", ")
            ))
        }
    }

    fn handle(&self, request: http::Request<Body>, next: Next) -> BoxFuture<http::Response<Body>> {
        let trust = self.clone();
        Box::pin(async move { trust.serve(request, next).await })
    }
}

impl Trust {
    async fn serve(&self, request: http::Request<Body>, next: Next) -> http::Response<Body> {
        let started = std::time::Instant::now();
        let path = request.uri().path().to_owned();
        let received = TraceContext::received(
            request
                .headers()
                .get(caseline_telemetry::TRACEPARENT)
                .and_then(|v| v.to_str().ok()),
        );
        // This span leaves the process when spans are exported: it names the method and
        // the trace, never who calls or about whom.
        let span = tracing::info_span!(
            "call",
            otel.kind = "server",
            rpc = %path,
            trace_id = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        // The server span continues the client's trace; without one it begins a trace.
        if let Some(client) = &received {
            caseline_telemetry::join_trace(&span, &client.traceparent);
        }
        // Events written during the call then carry the server span's own context, so
        // whoever handles them continues the trace under this span.
        let own = span.in_scope(caseline_telemetry::current_traceparent);
        let trace = TraceContext::of_call(received, own.as_deref());
        span.record("trace_id", trace.trace_id.as_str());
        let spec = self.spec(&path);
        let response = self
            .guarded(request, spec, next, trace)
            .instrument(span.clone())
            .await;
        // The answer's status, by the OpenTelemetry conventions for gRPC servers: the
        // code on every call span, and the span an error only where the server failed
        // (a refusal is the server doing its job).
        let code = grpc_status(&response);
        span.record("rpc.grpc.status_code", i64::from(code));
        // Only the methods this server declares are named: any other path a client
        // sends counts as one.
        caseline_telemetry::metrics::rpc_answered(&path, spec.is_some(), code, started.elapsed());
        if matches!(
            Code::from_i32(code),
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ) {
            span.record("otel.status_code", "ERROR");
        }
        response
    }

    async fn guarded(
        &self,
        mut request: http::Request<Body>,
        spec: Option<MethodSpec>,
        next: Next,
        trace: TraceContext,
    ) -> http::Response<Body> {
        let rpc = request.uri().path().to_owned();
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut facts = AccessFacts {
            rpc: rpc.clone(),
            trace: trace.clone(),
            peer,
            instance: self.inner.instance.clone(),
            ..AccessFacts::default()
        };

        let Some(spec) = spec else {
            facts.reason = "unknown_method".into();
            return self
                .refuse(facts, Status::unimplemented("unknown method"))
                .await;
        };

        // Who is calling. Unauthenticated calls are recorded too.
        let authorization = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let principal = match self.inner.auth.authenticate(authorization).await {
            Ok(p) => p,
            Err(e) => {
                facts.unauthenticated = true;
                facts.reason = e.reason().into();
                tracing::info!(reason = e.reason(), "call refused: not authenticated");
                return self
                    .refuse(facts, Status::unauthenticated(e.to_string()))
                    .await;
            }
        };
        facts.actor = principal.subject.clone();
        facts.agency = principal.agency.clone();

        let role = match acting_role(&principal, header(ROLE_HEADER)) {
            Ok(role) => role,
            Err(message) => {
                facts.reason = "no_acting_role".into();
                return self.refuse(facts, Status::permission_denied(message)).await;
            }
        };
        facts.role = role.as_str().into();

        let (purpose, reason) = match purpose_and_reason(headers) {
            Ok(pr) => pr,
            Err(violation) => {
                facts.reason = "invalid_metadata".into();
                let status = Status::from(ApiError::InvalidArgument(vec![violation]));
                return self.refuse(facts, status).await;
            }
        };
        facts.purpose = purpose.clone().unwrap_or_default();

        // The method's role gate, through the one decision function.
        let gate = decide(
            caseline_policy::Caller {
                subject: &principal.subject,
                role,
                agency: &principal.agency,
            },
            Action::Invoke(spec.roles),
            Resource::Global,
            Context {
                now: (self.inner.clock)(),
                break_glass: None,
            },
        );
        facts.policy_version = gate.policy_version.into();
        if !gate.is_allowed() {
            facts.reason = gate.reason.as_str().into();
            facts.denied = true;
            let status = Status::permission_denied("your role may not call this method");
            return self.refuse(facts, status).await;
        }

        let call = Call {
            inner: Arc::new(CallInner {
                trust: Arc::clone(&self.inner),
                principal,
                role,
                rpc: rpc.clone(),
                spec,
                peer: facts.peer.clone(),
                purpose,
                break_glass_reason: reason,
                trace,
                gate,
                record: Mutex::new(CallRecord::default()),
            }),
        };
        request.extensions_mut().insert(call.clone());

        let response = next(request).await;

        let code = grpc_status(&response);
        let record =
            std::mem::take(&mut *call.inner.record.lock().unwrap_or_else(|p| p.into_inner()));
        facts.status_code = code;

        if code == 0 && spec.scope == Scope::Case && record.cases.is_empty() {
            // A handler that touched a case without asking the policy: withhold it.
            tracing::error!(rpc = %rpc, "handler answered without declaring its case; response withheld");
            facts.reason = "undeclared_case_access".into();
            return self.withhold(facts, &[], unauthorised()).await;
        }
        if code == 0 && record.cases.iter().any(|(_, d)| !d.is_allowed()) {
            // The policy refused a case and the handler answered OK anyway: withhold it.
            tracing::error!(rpc = %rpc, "handler answered OK after a refusal; response withheld");
            return self.withhold(facts, &record.cases, unauthorised()).await;
        }
        if code == 0 && spec.kind == Kind::Write {
            // The events the write appended carry who, when, which case and trace.
            return response;
        }
        facts.reason = gate.reason.as_str().into();
        facts.resource_ids = record.resource_ids;
        match self.record(facts, &record.cases).await {
            Ok(()) => response,
            Err(status) => status.into_http(),
        }
    }

    /// Records a call refused before its handler ran and answers `status`, within the
    /// limit on such refusals per peer address ([`crate::flood`]).
    async fn refuse(&self, mut facts: AccessFacts, status: Status) -> http::Response<Body> {
        let peer = facts
            .peer
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip());
        let limited = || {
            Status::resource_exhausted(
                "too many refused calls from this address; try again in a minute",
            )
        };
        // Only calls from no one authenticated: a refusal of a valid token is
        // attributable, and its holder's agency answers for it.
        let anonymous = facts.actor.is_empty();
        match anonymous.then(|| self.inner.refusals.note(peer, (self.inner.clock)())) {
            None | Some(Refusal::Record) => {}
            Some(Refusal::Limit) => {
                tracing::warn!(
                    peer = %facts.peer,
                    "refused calls over the limit from one address: answering them \
                     RESOURCE_EXHAUSTED, unrecorded, until the minute ends"
                );
                facts.reason = "rate_limited".into();
                facts.denied = true;
                return self.withhold(facts, &[], limited()).await;
            }
            Some(Refusal::Quiet) => return limited().into_http(),
        }
        facts.denied = matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied
        );
        self.withhold(facts, &[], status).await
    }

    /// Records the call as answered with `status` instead of whatever the handler said,
    /// and answers it (UNAVAILABLE if even the record cannot be made).
    async fn withhold(
        &self,
        mut facts: AccessFacts,
        cases: &[(Uuid, Decision)],
        status: Status,
    ) -> http::Response<Body> {
        facts.status_code = status.code() as i32;
        match self.record(facts, cases).await {
            Ok(()) => status.into_http(),
            Err(unavailable) => unavailable.into_http(),
        }
    }

    /// Appends the access record(s): one per case touched, else one to a stream of no
    /// case. If that fails nothing else leaves (fail closed).
    async fn record(&self, facts: AccessFacts, cases: &[(Uuid, Decision)]) -> Result<(), Status> {
        let targets: Vec<Option<(Uuid, Decision)>> = if cases.is_empty() {
            vec![None]
        } else {
            cases.iter().copied().map(Some).collect()
        };
        for case in targets {
            if let Err(e) = append_access(&*self.inner.log, &facts, case).await {
                tracing::error!(error = %e, "cannot record an access; response withheld");
                return Err(Status::unavailable(
                    "the access could not be recorded, so nothing was returned; retry later",
                ));
            }
        }
        Ok(())
    }
}

/// What a caller gets when the server withholds a handler's answer.
fn unauthorised() -> Status {
    Status::internal("the server could not authorise this call")
}

/// The role the caller acts in: the one their token carries, or the one they chose
/// among several with `x-caseline-role`.
fn acting_role(principal: &Principal, requested: Option<&str>) -> Result<Role, &'static str> {
    match requested {
        Some(name) => name
            .parse::<Role>()
            .ok()
            .filter(|r| principal.roles.contains(r))
            .ok_or("the token does not carry the role named in x-caseline-role"),
        None => match principal.roles.as_slice() {
            [one] => Ok(*one),
            [] => Err("the token carries no caseline role"),
            _ => Err("the token carries several roles: choose one with x-caseline-role"),
        },
    }
}

type PurposeAndReason = (Option<String>, Option<SecretText>);

/// The purpose of use and break-glass reason the caller declared, validated.
fn purpose_and_reason(headers: &http::HeaderMap) -> Result<PurposeAndReason, FieldViolation> {
    let purpose = match headers.get(PURPOSE_HEADER) {
        None => None,
        Some(v) => {
            let code = v.to_str().ok().filter(|c| is_purpose(c)).ok_or_else(|| {
                FieldViolation::new(PURPOSE_HEADER, "must be a known purpose-of-use code")
            })?;
            Some(code.to_owned())
        }
    };
    let reason = if let Some(v) = headers.get(BREAK_GLASS_BIN_HEADER) {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(
                v.as_bytes()
                    .iter()
                    .copied()
                    .filter(|b| *b != b'=')
                    .collect::<Vec<_>>(),
            )
            .map_err(|_| FieldViolation::new(BREAK_GLASS_BIN_HEADER, "must be base64"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| FieldViolation::new(BREAK_GLASS_BIN_HEADER, "must be UTF-8 text"))?;
        Some(SecretText::new(text))
    } else if let Some(v) = headers.get(BREAK_GLASS_HEADER) {
        let text = v.to_str().map_err(|_| {
            FieldViolation::new(BREAK_GLASS_HEADER, "must be ASCII; use the -bin form")
        })?;
        Some(SecretText::new(text))
    } else {
        None
    };
    if let Some(reason) = &reason {
        let purpose = purpose.as_deref().ok_or_else(|| {
            FieldViolation::new(PURPOSE_HEADER, "break-glass needs a purpose-of-use code")
        })?;
        if let Err(field) = BreakGlassRequest::new(purpose, reason.expose()) {
            return Err(match field {
                "purpose" => {
                    FieldViolation::new(PURPOSE_HEADER, "must be a known purpose-of-use code")
                }
                _ => FieldViolation::new(
                    if headers.contains_key(BREAK_GLASS_BIN_HEADER) {
                        BREAK_GLASS_BIN_HEADER
                    } else {
                        BREAK_GLASS_HEADER
                    },
                    format!(
                        "must be at least {} characters",
                        caseline_policy::BREAK_GLASS_MIN_REASON_CHARS
                    ),
                ),
            });
        }
    }
    Ok((purpose, reason))
}

/// The gRPC status of a response as it leaves the handler: a refusal or failure is a
/// trailers-only response whose headers carry `grpc-status`; an answer without it in
/// its headers is OK (its status follows in the trailers).
fn grpc_status(response: &http::Response<Body>) -> i32 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}
