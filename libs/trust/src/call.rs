//! What a handler sees of the trust layer: the authenticated caller, and the one way to
//! touch a case ([`Call::case`]), which asks the policy and leaves a trace in the record.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use caseline_auth::{Principal, Role};
use caseline_eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamName, Uuid};
use caseline_policy::teams::{ACCESS_CATEGORY, BREAK_GLASS_GRANTED, to_unix_ms};
use caseline_policy::{
    Action, BREAK_GLASS_TTL, BreakGlassRequest, Caller, CaseTeam, Context, Decision, Entry, Reason,
    ReferralFacts, ReferralStep, Resource, Via, decide,
};
use caseline_proto::prost::Message;
use caseline_proto::tonic;
use caseline_proto::v1::events::BreakGlassGranted;
use caseline_server::ApiError;
use caseline_vault::{SecretText, Vault};

use crate::spec::{Kind, MethodSpec, Scope};
use crate::trace::TraceContext;
use crate::trust::Inner;

/// The authenticated call a handler is serving. Cheap to clone.
#[derive(Clone)]
pub struct Call {
    pub(crate) inner: Arc<CallInner>,
}

pub(crate) struct CallInner {
    pub(crate) trust: Arc<Inner>,
    pub(crate) principal: Principal,
    pub(crate) role: Role,
    pub(crate) rpc: String,
    /// The method's declaration.
    pub(crate) spec: MethodSpec,
    /// The caller's address as this server saw it.
    pub(crate) peer: String,
    pub(crate) purpose: Option<String>,
    pub(crate) break_glass_reason: Option<SecretText>,
    pub(crate) trace: TraceContext,
    /// The method's role gate, as decided.
    pub(crate) gate: Decision,
    pub(crate) record: Mutex<CallRecord>,
}

/// What the handler declared it touched, for the access record.
#[derive(Debug, Default)]
pub(crate) struct CallRecord {
    /// Cases touched, each with the decision taken (the first denial wins).
    pub(crate) cases: Vec<(Uuid, Decision)>,
    /// Resources returned (list pages) or otherwise touched.
    pub(crate) resource_ids: Vec<String>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("rpc", &self.inner.rpc)
            .field("subject", &self.inner.principal.subject)
            .field("role", &self.inner.role)
            .field("trace_id", &self.inner.trace.trace_id)
            .finish_non_exhaustive()
    }
}

/// A case the caller may touch, with what the policy decided.
#[derive(Clone, Debug)]
pub struct CaseAccess {
    pub case_id: Uuid,
    pub team: CaseTeam,
    pub decision: Decision,
}

impl Call {
    /// The call the trust layer authenticated for this request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, ApiError> {
        request
            .extensions()
            .get::<Call>()
            .cloned()
            .ok_or(ApiError::Internal("the call did not pass the trust layer"))
    }

    pub fn principal(&self) -> &Principal {
        &self.inner.principal
    }

    /// The role the caller acts in for this call.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The full gRPC method, `/package.Service/Method`.
    pub fn rpc(&self) -> &str {
        &self.inner.rpc
    }

    pub fn subject(&self) -> &str {
        &self.inner.principal.subject
    }

    pub fn agency(&self) -> &str {
        &self.inner.principal.agency
    }

    pub fn trace_id(&self) -> &str {
        &self.inner.trace.trace_id
    }

    /// The declared purpose of use, if any.
    pub fn purpose(&self) -> Option<&str> {
        self.inner.purpose.as_deref()
    }

    /// Now, by the trust layer's clock (injectable in tests).
    pub fn now(&self) -> SystemTime {
        (self.inner.trust.clock)()
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.inner.trust.log
    }

    pub fn vault(&self) -> &Vault {
        &self.inner.trust.vault
    }

    /// The case-team projection (who is on which case, who holds break-glass).
    pub fn trust_teams(&self) -> &caseline_policy::CaseTeams {
        &self.inner.trust.teams
    }

    /// Touches a case: decides with the team as the log says now, records the case and
    /// the decision, and answers NOT_FOUND (exactly as for an absent case) when the
    /// caller may not know it exists, PERMISSION_DENIED when they may see it but not do
    /// this. Opening break-glass records the grant before returning.
    pub async fn case(&self, case_id: Uuid, action: Action) -> Result<CaseAccess, ApiError> {
        self.case_entry(case_id, action, Entry::default()).await
    }

    /// [`Call::case`] for one entry whose scope matters (a referral's addressee, a
    /// health goal).
    pub async fn case_entry(
        &self,
        case_id: Uuid,
        action: Action,
        entry: Entry<'_>,
    ) -> Result<CaseAccess, ApiError> {
        let team = self.inner.trust.teams.current(case_id).await?;
        let now = self.now();
        let request = self.break_glass_request();
        let decision = decide(
            self.caller(),
            action,
            Resource::Case {
                team: team.as_ref(),
                entry,
            },
            Context {
                now,
                break_glass: request,
            },
        );
        if !decision.is_allowed() {
            // Recorded, and answered NOT_FOUND or PERMISSION_DENIED.
            self.enforce(case_id, decision)?;
        }
        let Some(team) = team else {
            // decide() never allows an absent case; keep the compiler and the reader sure.
            return Err(not_found(case_id));
        };
        let mut team = team;
        if decision.via == (Via::BreakGlass { new: true }) {
            // Recorded as allowed only once the grant is in the log.
            if let Err(e) = self.grant_break_glass(case_id, now).await {
                self.note_case(case_id, Decision::deny(Reason::NotOnTeam));
                return Err(e);
            }
            // The team as the handler sees it holds the grant just made, so what the
            // handler decides next (each entry's sight) counts it.
            if let Some(fresh) = self.inner.trust.teams.current(case_id).await? {
                team = fresh;
            }
        }
        self.note_case(case_id, decision);
        Ok(CaseAccess {
            case_id,
            team,
            decision,
        })
    }

    /// What the policy says of `action` on a case whose team the caller already has
    /// (from a projection), without recording anything or opening break-glass: for
    /// lists and for deciding how much of each entry to show after [`Call::case`]
    /// admitted the call. Record what is returned with [`Call::returned`].
    pub fn decide_for(
        &self,
        team: Option<&CaseTeam>,
        action: Action,
        entry: Entry<'_>,
    ) -> Decision {
        decide(
            self.caller(),
            action,
            Resource::Case { team, entry },
            Context {
                now: self.now(),
                break_glass: None,
            },
        )
    }

    /// What the policy says of a referral step, without recording anything: record it
    /// with [`Call::enforce`] on the case (or contact) the referral is about. Reads
    /// may be allowed through an active break-glass grant; none is opened here.
    pub fn decide_referral(&self, step: ReferralStep, referral: ReferralFacts<'_>) -> Decision {
        decide(
            self.caller(),
            Action::Referral(step),
            Resource::Referral(referral),
            Context {
                now: self.now(),
                break_glass: None,
            },
        )
    }

    /// Records `decision` (from [`Call::decide_for`]) on the case and answers as
    /// [`Call::case`] would for it: for a write that must hold on the very state it
    /// appends to, decided again after the first check.
    pub fn enforce(&self, case_id: Uuid, decision: Decision) -> Result<(), ApiError> {
        self.note_case(case_id, decision);
        if decision.is_allowed() {
            Ok(())
        } else if decision.hides_case() {
            Err(not_found(case_id))
        } else {
            Err(ApiError::PermissionDenied(
                "your role may not do this on this case",
            ))
        }
    }

    /// Records ids this call returns or touches (every id of a list page).
    pub fn returned<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: ToString,
    {
        let mut record = self.lock_record();
        record
            .resource_ids
            .extend(ids.into_iter().map(|id| id.to_string()));
    }

    /// For global methods about one case (an auditor's replay of a case): the access
    /// record goes to that case's access history. Authorisation was the role gate's.
    /// In a case-scoped method it declares nothing: those must ask [`Call::case`].
    pub fn concerns(&self, case_id: Uuid) {
        if self.inner.spec.scope == Scope::Global {
            self.note_case(case_id, self.inner.gate);
        }
    }

    /// The envelope metadata for events this call appends: who, in which role and
    /// agency, for which case and request, in which trace.
    pub fn event_metadata(&self, case_id: Option<Uuid>, request_id: Option<Uuid>) -> Metadata {
        Metadata {
            case_id,
            actor: self.inner.principal.subject.clone(),
            actor_role: self.inner.role.as_str().to_owned(),
            agency: self.inner.principal.agency.clone(),
            request_id,
            correlation_id: None,
            causation_id: None,
            traceparent: Some(self.inner.trace.traceparent.clone()),
            call: Some(self.call_context().to_json()),
        }
    }

    /// Where, why and under which rules this call was made, for the envelope of the
    /// events it writes.
    pub fn call_context(&self) -> CallContext {
        let break_glass = self
            .lock_record()
            .cases
            .iter()
            .any(|(_, d)| matches!(d.via, Via::BreakGlass { .. }));
        CallContext {
            rpc: self.inner.rpc.clone(),
            peer: self.inner.peer.clone(),
            instance: self.inner.trust.instance.clone(),
            purpose: self.inner.purpose.clone().unwrap_or_default(),
            break_glass,
            policy_version: self.inner.gate.policy_version.to_owned(),
        }
    }

    pub(crate) fn caller(&self) -> Caller<'_> {
        Caller {
            subject: &self.inner.principal.subject,
            role: self.inner.role,
            agency: &self.inner.principal.agency,
        }
    }

    /// Break-glass opens reads only: a write method never opens it, whatever its
    /// handler asks first.
    fn break_glass_request(&self) -> Option<BreakGlassRequest<'_>> {
        if self.inner.spec.kind != Kind::Read {
            return None;
        }
        let purpose = self.inner.purpose.as_deref()?;
        let reason = self.inner.break_glass_reason.as_ref()?;
        BreakGlassRequest::new(purpose, reason.expose()).ok()
    }

    fn note_case(&self, case_id: Uuid, decision: Decision) {
        let mut record = self.lock_record();
        match record.cases.iter_mut().find(|(id, _)| *id == case_id) {
            // A denial, or a break-glass allowance, is worth recording over an allowance;
            // nothing replaces a denial.
            Some((_, kept))
                if kept.is_allowed()
                    && (!decision.is_allowed()
                        || matches!(decision.via, Via::BreakGlass { .. })) =>
            {
                *kept = decision
            }
            Some(_) => {}
            None => record.cases.push((case_id, decision)),
        }
    }

    fn lock_record(&self) -> std::sync::MutexGuard<'_, CallRecord> {
        self.inner
            .record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn grant_break_glass(&self, case_id: Uuid, now: SystemTime) -> Result<(), ApiError> {
        let (Some(purpose), Some(reason)) = (&self.inner.purpose, &self.inner.break_glass_reason)
        else {
            return Err(ApiError::Internal("break-glass granted without a request"));
        };
        let sealed = self
            .vault()
            .seal_text(case_id, reason)
            .await
            .map_err(|e| match e {
                // Erased: to a non-member the case reads as absent, like any other.
                caseline_vault::Error::Shredded { .. } => not_found(case_id),
                e => {
                    tracing::error!(error = %e, "cannot seal a break-glass reason");
                    ApiError::Unavailable("the key store is unavailable, retry later")
                }
            })?;
        let payload = BreakGlassGranted {
            subject: self.inner.principal.subject.clone(),
            role: self.inner.role.as_str().to_owned(),
            agency: self.inner.principal.agency.clone(),
            purpose: purpose.clone(),
            reason_sealed: sealed.into_bytes(),
            granted_at_unix_ms: to_unix_ms(now),
            expires_at_unix_ms: to_unix_ms(now + BREAK_GLASS_TTL),
        };
        let event = NewEvent {
            // Time-ordered, like the access records beside it.
            event_id: Uuid::now_v7(),
            event_type: BREAK_GLASS_GRANTED.to_owned(),
            data: payload.encode_to_vec(),
            metadata: self.event_metadata(Some(case_id), None),
        };
        let stream = StreamName::for_id(ACCESS_CATEGORY, case_id)?;
        self.log()
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await?;
        tracing::warn!(
            %case_id,
            role = %self.inner.role,
            purpose = %purpose,
            trace_id = %self.inner.trace.trace_id,
            "break-glass access granted"
        );
        Ok(())
    }
}

/// The part of an access record that a write's own events carry in their envelope
/// (`Metadata::call`), as a small JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CallContext {
    pub rpc: String,
    pub peer: String,
    pub instance: String,
    pub purpose: String,
    pub break_glass: bool,
    pub policy_version: String,
}

impl CallContext {
    pub fn to_json(&self) -> String {
        // Serialising plain strings and a bool cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The context stored in an event's envelope, if it is one.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// The status for a failure of the vault: a key store that cannot answer is UNAVAILABLE;
/// a sealed value that does not open is damaged data (never its content in the message).
pub fn vault_error(error: caseline_vault::Error) -> ApiError {
    match error {
        caseline_vault::Error::Unavailable(reason) => {
            tracing::error!(%reason, "key store unavailable");
            ApiError::Unavailable("the key store is unavailable, retry later")
        }
        caseline_vault::Error::Shredded { .. } => ApiError::FailedPrecondition(
            "the case's data was erased: nothing more can be recorded on it".into(),
        ),
        e => {
            tracing::error!(error = %e, "sealed data cannot be opened");
            ApiError::Log(caseline_eventlog::Error::Corrupt {
                position: "sealed field".into(),
                reason: e.to_string(),
            })
        }
    }
}

fn not_found(case_id: Uuid) -> ApiError {
    ApiError::NotFound {
        kind: "case",
        id: case_id.to_string(),
    }
}
