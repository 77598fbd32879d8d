//! The gRPC handlers of CompensationService.
//!
//! Every command: convert the request into its typed command (each bad field named;
//! money checked for a known currency and a positive amount) → load the claim or
//! complaint → the caller's standing on its case (`compensation_claims` or `complaints`
//! row), recorded → seal with the case's key → decide → append on the shared command
//! path. A claim or complaint the caller may not see is NOT_FOUND under its own id.

use std::sync::Arc;

use caseline_aggregate::{
    Aggregate, Intent, Loaded, Projection, Request as RequestKey, Store, page_of,
};
use caseline_case::members::{self, Members};
use caseline_eventlog::{EventLog, Position, Uuid};
use caseline_policy::{Action, CaseTeam, Compartment, Entry, Via};
use caseline_projection::Indexed;
use caseline_proto::tonic::{self, Request, Response, Status};
use caseline_proto::v1::compensation_service_server::CompensationService;
use caseline_proto::v1::events::{
    AppealLodged, ClaimClosed, ClaimDecided, ClaimFiled, ClaimSubmitted, ComplaintClosed,
    ComplaintEscalated, ComplaintFindingRecorded, ComplaintLodged, PaymentRecorded,
};
use caseline_proto::v1::{
    AcknowledgeComplaintRequest, Claim as ClaimMessage, ClaimStatus, CloseClaimRequest,
    CloseComplaintRequest, CompensationTotals, Complaint as ComplaintMessage, CurrencyTotals,
    EscalateComplaintRequest, FileClaimRequest, GetClaimRequest, GetCompensationTotalsRequest,
    GetComplaintRequest, ListClaimDeadlinesRequest, ListClaimsRequest, ListClaimsResponse,
    ListComplaintsRequest, ListComplaintsResponse, LodgeAppealRequest, LodgeComplaintRequest,
    Payment, RecordClaimDecisionRequest, RecordClaimSubmittedRequest,
    RecordComplaintFindingRequest, RecordPaymentRequest, RemedyCommandResponse,
};
use caseline_server::ApiError;
use caseline_server::validate::{At, date_of};
use caseline_trust::CaseGate;
use caseline_trust::request::new_aggregate_id;
use caseline_trust::{Call, vault_error};
use caseline_vault::Opened;

use crate::command::{
    AcknowledgeComplaint, CloseClaim, CloseComplaint, EscalateComplaint, FileClaim, GetClaim,
    GetCompensationTotals, GetComplaint, ListClaimDeadlines, ListClaims, ListComplaints,
    LodgeAppeal, LodgeComplaint, RecordClaimDecision, RecordClaimSubmitted, RecordComplaintFinding,
    RecordPayment,
};
use crate::domain::{ClaimCommand, ComplaintCommand, money};
use crate::money::{ByCurrency, Totals, add};
use crate::store::{Claim, Complaint, LoadedClaim, LoadedComplaint};
use caseline_server::validate::Target;

/// The gRPC handlers of CompensationService.
#[derive(Debug)]
pub struct CompensationApi {
    claims: Store<Claim>,
    complaints: Store<Complaint>,
    /// Every claim and every complaint, for lists.
    claim_list: Projection<Claim>,
    complaint_list: Projection<Complaint>,
    /// The cases each person and agency was added to: a caller's claims are read from
    /// their cases, not from every claim there is.
    members: Arc<Indexed<Members>>,
}

impl CompensationApi {
    pub fn new(
        log: Arc<dyn EventLog>,
        claims: Projection<Claim>,
        complaints: Projection<Complaint>,
        members: Arc<Indexed<Members>>,
    ) -> Self {
        Self {
            claims: Store::new(Arc::clone(&log)),
            complaints: Store::new(log),
            claim_list: claims,
            complaint_list: complaints,
            members,
        }
    }
}

/// What a kind of record is: its compartment, its name.
struct Kind {
    compartment: Compartment,
    name: &'static str,
}

const CLAIMS: Kind = Kind {
    compartment: Compartment::CompensationClaims,
    name: "claim",
};
const COMPLAINTS: Kind = Kind {
    compartment: Compartment::Complaints,
    name: "complaint",
};

fn not_found(kind: &Kind, id: Uuid) -> ApiError {
    ApiError::NotFound {
        kind: kind.name,
        id: id.to_string(),
    }
}

fn answer(id: Uuid, version: u64) -> Response<RemedyCommandResponse> {
    Response::new(RemedyCommandResponse {
        id: id.to_string(),
        version,
    })
}

async fn seal(call: &Call, case_id: Uuid, text: &str) -> Result<Vec<u8>, ApiError> {
    call.vault()
        .seal_field(case_id, text.trim())
        .await
        .map_err(vault_error)
}

/// Opens sealed fields of one case, remembering whether any was erased.
struct Opener<'a> {
    call: &'a Call,
    case_id: Uuid,
    erased: bool,
}

impl Opener<'_> {
    async fn text(&mut self, bytes: &[u8]) -> Result<String, ApiError> {
        match self
            .call
            .vault()
            .open_field(self.case_id, bytes)
            .await
            .map_err(vault_error)?
        {
            Opened::Plain(t) => Ok(t.expose().to_owned()),
            Opened::Erased => {
                self.erased = true;
                Ok(String::new())
            }
        }
    }
}

/// A claim or a complaint: an aggregate of a case, with its store.
trait Remedy: Aggregate {
    fn store(api: &CompensationApi) -> &Store<Self>;
}

impl Remedy for Claim {
    fn store(api: &CompensationApi) -> &Store<Self> {
        &api.claims
    }
}

impl Remedy for Complaint {
    fn store(api: &CompensationApi) -> &Store<Self> {
        &api.complaints
    }
}

impl CompensationApi {
    /// A command on an existing claim or complaint: load, authorise writing its
    /// compartment on its case, identify the request, let `build` seal and make the
    /// command unless the request is a retry, run it on the shared path.
    async fn act<A: Remedy>(
        &self,
        call: &Call,
        kind: &Kind,
        t: &Target,
        case_of: impl Fn(&A) -> Option<Uuid>,
        build: impl AsyncFnOnce(Uuid, &RequestKey) -> Result<A::Command, ApiError>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        call.returned([t.id]);
        let loaded = A::store(self).load(t.id).await?;
        let Some(case_id) = case_of(&loaded) else {
            return Err(not_found(kind, t.id).into());
        };
        let gate = CaseGate {
            call,
            case_id,
            action: Action::Write(kind.compartment),
            health_goal: false,
            kind: kind.name,
        };
        gate.admit(Some(t.id)).await?;
        let request = call.request(case_id, t.request_id, &t.encoded).await?;
        let done = A::store(self)
            .build_and_execute(
                Intent {
                    id: t.id,
                    request: &request,
                    expected: t.expected,
                    metadata: call.event_metadata(Some(case_id), None),
                },
                Some(loaded),
                async || build(case_id, &request).await,
                &gate,
            )
            .await?;
        Ok(answer(t.id, done.version))
    }

    /// Creates a claim or complaint on `case_id`.
    async fn create<A: Remedy>(
        &self,
        call: &Call,
        kind: &Kind,
        case_id: Uuid,
        request_id: Uuid,
        encoded: &[u8],
        build: impl AsyncFnOnce(Uuid) -> Result<A::Command, ApiError>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let gate = CaseGate {
            call,
            case_id,
            action: Action::Write(kind.compartment),
            health_goal: false,
            kind: kind.name,
        };
        gate.admit(None).await?;
        let id = new_aggregate_id(call, kind.name, request_id);
        let request = call.request(case_id, request_id, encoded).await?;
        let command = build(id).await?;
        let done = A::store(self)
            .execute(
                Intent {
                    id,
                    request: &request,
                    expected: None,
                    metadata: call.event_metadata(Some(case_id), None),
                },
                None,
                command,
                &gate,
            )
            .await?;
        Ok(answer(id, done.version))
    }

    /// Whether the caller reads `kind` on `case_id` in a list; the decision is not
    /// recorded. Lists show what the caller stands on (team, agency, complaints
    /// handling), never what a break-glass grant opened: those are read one by one,
    /// recorded as break-glass.
    async fn reads(&self, call: &Call, kind: &Kind, case_id: Uuid) -> Result<bool, ApiError> {
        let team = call.trust_teams().current(case_id).await?;
        let decision = call.decide_for(
            team.as_ref(),
            Action::Read(kind.compartment),
            Entry::default(),
        );
        Ok(decision.is_allowed() && !matches!(decision.via, Via::BreakGlass { .. }))
    }

    /// Records the caller's reading of `kind` on `case_id`: NOT_FOUND (under `id`) if
    /// they may not.
    async fn admit_read(
        &self,
        call: &Call,
        kind: &Kind,
        case_id: Uuid,
        id: Uuid,
    ) -> Result<(), ApiError> {
        let team = call.trust_teams().current(case_id).await?;
        let decision = call.decide_for(
            team.as_ref(),
            Action::Read(kind.compartment),
            Entry::default(),
        );
        match call.enforce(case_id, decision) {
            Ok(()) => Ok(()),
            Err(_) => Err(not_found(kind, id)),
        }
    }

    async fn render_claim(
        &self,
        call: &Call,
        id: Uuid,
        l: &LoadedClaim,
    ) -> Result<ClaimMessage, ApiError> {
        let s = &l.state;
        let case_id = l.case_id.unwrap_or_default();
        let mut o = Opener {
            call,
            case_id,
            erased: false,
        };
        let filed = s.filed.clone().unwrap_or_default();
        let currency = s.currency().to_owned();
        let decision = s.decision.clone().unwrap_or_default();
        let mut claim = ClaimMessage {
            claim_id: id.to_string(),
            case_id: case_id.to_string(),
            scheme: filed.scheme,
            jurisdiction: filed.jurisdiction,
            claimant: filed.claimant,
            amount_claimed: filed.amount_claimed,
            filing_deadline: filed.filing_deadline,
            status: s.status as i32,
            submitted_on: s
                .submitted
                .as_ref()
                .map(|x| x.submitted_on.clone())
                .unwrap_or_default(),
            reference: match &s.submitted {
                Some(x) => o.text(&x.reference_sealed).await?,
                None => String::new(),
            },
            outcome: decision.outcome,
            amount_awarded: s.decision.as_ref().map(|_| money(s.awarded(), &currency)),
            reasons: o.text(&decision.reasons_sealed).await?,
            appealed: s.appeal.is_some(),
            appeal_grounds: match &s.appeal {
                Some(a) => o.text(&a.grounds_sealed).await?,
                None => String::new(),
            },
            payments: s
                .payments
                .iter()
                .map(|p| Payment {
                    payment_id: p.payment_id.clone(),
                    amount: p.amount.clone(),
                    paid_on: p.paid_on.clone(),
                })
                .collect(),
            amount_paid: Some(money(s.paid(), &currency)),
            amount_outstanding: Some(money(s.outstanding(), &currency)),
            version: l.version.unwrap_or_default(),
            erased: false,
        };
        claim.erased = o.erased;
        Ok(claim)
    }

    async fn render_complaint(
        &self,
        call: &Call,
        id: Uuid,
        l: &LoadedComplaint,
    ) -> Result<ComplaintMessage, ApiError> {
        let s = &l.state;
        let case_id = l.case_id.unwrap_or_default();
        let mut o = Opener {
            call,
            case_id,
            erased: false,
        };
        let lodged = s.lodged.clone().unwrap_or_default();
        let mut complaint = ComplaintMessage {
            complaint_id: id.to_string(),
            case_id: case_id.to_string(),
            about: lodged.about,
            channel: lodged.channel,
            complainant: lodged.complainant,
            description: o.text(&lodged.description_sealed).await?,
            status: s.status as i32,
            finding: s.finding.as_ref().map_or(0, |f| f.finding),
            remedy: match &s.finding {
                Some(f) => o.text(&f.remedy_sealed).await?,
                None => String::new(),
            },
            escalated_to: s
                .escalation
                .as_ref()
                .map(|e| e.body.clone())
                .unwrap_or_default(),
            escalation_reason: match &s.escalation {
                Some(e) => o.text(&e.reason_sealed).await?,
                None => String::new(),
            },
            version: l.version.unwrap_or_default(),
            erased: false,
        };
        complaint.erased = o.erased;
        Ok(complaint)
    }

    /// A page of claims (of one case, if given) `include` admits that the caller may
    /// read, in the order filed; every claim and case id returned is recorded.
    async fn claim_page(
        &self,
        call: &Call,
        size: usize,
        after: Option<Position>,
        case_id: Option<Uuid>,
        include: impl Fn(&LoadedClaim) -> bool,
    ) -> Result<ListClaimsResponse, ApiError> {
        let visible = match case_id {
            Some(case_id) => {
                let candidates = self.claim_list.of_cases(&[case_id], after, include).await?;
                self.visible(call, &CLAIMS, candidates, size).await?
            }
            None => match self.cases_in_sight(call, &CLAIMS).await? {
                Some(cases) => {
                    let candidates = self.claim_list.of_cases(&cases, after, include).await?;
                    self.visible(call, &CLAIMS, candidates, size).await?
                }
                None => {
                    self.claim_list
                        .first(after, size, include, |id, l| {
                            self.kept(call, &CLAIMS, id, l)
                        })
                        .await?
                }
            },
        };
        let (page, next_page_token) = page_of(visible, size);
        let mut claims = Vec::new();
        for (id, case_id, l) in &page {
            claims.push(self.render_claim(call, *id, l).await?);
            call.returned([id, case_id]);
        }
        Ok(ListClaimsResponse {
            claims,
            next_page_token,
        })
    }

    /// The cases on which the caller may read `kind` in a list, if that depends on
    /// their standing on each case's team: those they were added to, and those their
    /// agency was if a supervisor's standing counts (each is decided again on its
    /// team as it stands now). `None` if their role reads `kind` on any case: then
    /// every item is a candidate, and the first are very likely theirs.
    async fn cases_in_sight(
        &self,
        call: &Call,
        kind: &Kind,
    ) -> Result<Option<Vec<Uuid>>, ApiError> {
        let read_on = |team: &CaseTeam| {
            call.decide_for(Some(team), Action::Read(kind.compartment), Entry::default())
                .is_allowed()
        };
        if read_on(&CaseTeam::new()) {
            return Ok(None);
        }
        let (subject, agency) = (call.subject(), call.agency());
        let mut cases = members::cases_of(&self.members, members::person(subject, agency)).await?;
        // Someone else of the caller's agency on the team (no subject is empty).
        if read_on(&CaseTeam::new().with_member("", agency, "")) {
            cases.extend(members::cases_of(&self.members, members::agency(agency)).await?);
            cases.sort_unstable();
            cases.dedup();
        }
        Ok(Some(cases))
    }

    /// Of `candidates` (in order), the first `size + 1` whose case's `kind` the caller
    /// reads in a list, with their case, for [`page_of`].
    async fn visible<A: Aggregate>(
        &self,
        call: &Call,
        kind: &Kind,
        candidates: Vec<(Position, Uuid, Loaded<A>)>,
        size: usize,
    ) -> Result<Vec<(Position, (Uuid, Uuid, Loaded<A>))>, ApiError>
    where
        Loaded<A>: CaseOf,
    {
        let mut visible = Vec::new();
        for (position, id, l) in candidates {
            if visible.len() > size {
                break;
            }
            if let Some(kept) = self.kept(call, kind, id, l).await? {
                visible.push((position, kept));
            }
        }
        Ok(visible)
    }

    /// A claim or complaint with its case, if the caller reads `kind` on that case in
    /// a list.
    async fn kept<A: Aggregate>(
        &self,
        call: &Call,
        kind: &Kind,
        id: Uuid,
        l: Loaded<A>,
    ) -> Result<Option<(Uuid, Uuid, Loaded<A>)>, ApiError>
    where
        Loaded<A>: CaseOf,
    {
        let Some(case_id) = l.case_of() else {
            return Ok(None);
        };
        Ok(self
            .reads(call, kind, case_id)
            .await?
            .then_some((id, case_id, l)))
    }
}

/// The case a claim or complaint belongs to.
trait CaseOf {
    fn case_of(&self) -> Option<Uuid>;
}

impl CaseOf for LoadedClaim {
    fn case_of(&self) -> Option<Uuid> {
        claim_case(self)
    }
}

impl CaseOf for LoadedComplaint {
    fn case_of(&self) -> Option<Uuid> {
        complaint_case(self)
    }
}

/// A refusal to read a case's claims, as an absent case; other failures as they are.
fn case_refusal(e: ApiError, case_id: Uuid) -> ApiError {
    match e {
        ApiError::NotFound { .. } => ApiError::NotFound {
            kind: "case",
            id: case_id.to_string(),
        },
        e => e,
    }
}

fn claim_case(c: &Claim) -> Option<Uuid> {
    c.case_id.filter(|_| c.state.exists())
}

fn complaint_case(c: &Complaint) -> Option<Uuid> {
    c.case_id.filter(|_| c.state.exists())
}

#[tonic::async_trait]
impl CompensationService for CompensationApi {
    async fn file_claim(
        &self,
        request: Request<FileClaimRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = FileClaim::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        self.create::<Claim>(
            &call,
            &CLAIMS,
            c.case_id,
            c.request_id,
            &c.encoded,
            async |id| {
                Ok(ClaimCommand::File(ClaimFiled {
                    claim_id: id.to_string(),
                    scheme: c.scheme as i32,
                    jurisdiction: c.jurisdiction.clone(),
                    claimant: c.claimant as i32,
                    amount_claimed: Some(c.amount_claimed.clone()),
                    filing_deadline: c.filing_deadline.clone(),
                }))
            },
        )
        .await
    }

    async fn record_claim_submitted(
        &self,
        request: Request<RecordClaimSubmittedRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordClaimSubmitted::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let t = &c.target;
        self.act::<Claim>(&call, &CLAIMS, t, claim_case, async |case_id, _| {
            Ok(ClaimCommand::Submit(ClaimSubmitted {
                claim_id: t.id.to_string(),
                submitted_on: c.submitted_on.clone(),
                reference_sealed: seal(&call, case_id, &c.reference).await?,
            }))
        })
        .await
    }

    async fn record_claim_decision(
        &self,
        request: Request<RecordClaimDecisionRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordClaimDecision::try_from(request.into_inner())?;
        let t = &c.target;
        self.act::<Claim>(&call, &CLAIMS, t, claim_case, async |case_id, _| {
            Ok(ClaimCommand::Decide(ClaimDecided {
                claim_id: t.id.to_string(),
                outcome: c.outcome as i32,
                amount_awarded: c.amount_awarded.clone(),
                exceeds_claim: c.exceeds_claim,
                reasons_sealed: seal(&call, case_id, &c.reasons).await?,
                on_appeal: false,
            }))
        })
        .await
    }

    async fn lodge_appeal(
        &self,
        request: Request<LodgeAppealRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = LodgeAppeal::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let t = &c.target;
        self.act::<Claim>(&call, &CLAIMS, t, claim_case, async |case_id, _| {
            Ok(ClaimCommand::Appeal(AppealLodged {
                claim_id: t.id.to_string(),
                lodged_on: c.lodged_on.clone(),
                grounds_sealed: seal(&call, case_id, &c.grounds).await?,
            }))
        })
        .await
    }

    async fn record_payment(
        &self,
        request: Request<RecordPaymentRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordPayment::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let t = &c.target;
        self.act::<Claim>(&call, &CLAIMS, t, claim_case, async |_, request| {
            Ok(ClaimCommand::Pay(PaymentRecorded {
                claim_id: t.id.to_string(),
                payment_id: request.entry_id().to_string(),
                amount: Some(c.amount.clone()),
                paid_on: c.paid_on.clone(),
            }))
        })
        .await
    }

    async fn close_claim(
        &self,
        request: Request<CloseClaimRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = CloseClaim::try_from(request.into_inner())?;
        let t = &c.target;
        self.act::<Claim>(&call, &CLAIMS, t, claim_case, async |case_id, _| {
            Ok(ClaimCommand::Close(ClaimClosed {
                claim_id: t.id.to_string(),
                note_sealed: seal(&call, case_id, &c.note).await?,
            }))
        })
        .await
    }

    async fn get_claim(
        &self,
        request: Request<GetClaimRequest>,
    ) -> Result<Response<ClaimMessage>, Status> {
        let call = Call::of(&request)?;
        let c = GetClaim::try_from(request.into_inner())?;
        let id = c.claim_id;
        call.returned([id]);
        let l = self.claims.load(id).await?;
        let Some(case_id) = claim_case(&l) else {
            return Err(not_found(&CLAIMS, id).into());
        };
        self.admit_read(&call, &CLAIMS, case_id, id).await?;
        Ok(Response::new(self.render_claim(&call, id, &l).await?))
    }

    async fn list_claims(
        &self,
        request: Request<ListClaimsRequest>,
    ) -> Result<Response<ListClaimsResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListClaims::try_from(request.into_inner())?;
        if let Some(case_id) = c.case_id {
            self.admit_read(&call, &CLAIMS, case_id, case_id)
                .await
                .map_err(|e| case_refusal(e, case_id))?;
        }
        let page = self
            .claim_page(&call, c.page_size, c.page_token, c.case_id, |l| {
                claim_case(l).is_some()
                    && c.case_id.is_none_or(|id| l.case_id == Some(id))
                    && (c.statuses.is_empty() || c.statuses.contains(&l.state.status))
            })
            .await?;
        Ok(Response::new(page))
    }

    async fn list_claim_deadlines(
        &self,
        request: Request<ListClaimDeadlinesRequest>,
    ) -> Result<Response<ListClaimsResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListClaimDeadlines::try_from(request.into_inner())?;
        let now = call.now();
        let until = date_of(now + std::time::Duration::from_secs(c.within_days * 86_400));
        let page = self
            .claim_page(&call, c.page_size, c.page_token, None, |l| {
                // Passed deadlines of claims still not submitted are the most urgent:
                // they are listed too.
                l.state.status == ClaimStatus::Filed
                    && l.state
                        .filed
                        .as_ref()
                        .is_some_and(|f| f.filing_deadline <= until)
            })
            .await?;
        Ok(Response::new(page))
    }

    async fn get_compensation_totals(
        &self,
        request: Request<GetCompensationTotalsRequest>,
    ) -> Result<Response<CompensationTotals>, Status> {
        let call = Call::of(&request)?;
        let c = GetCompensationTotals::try_from(request.into_inner())?;
        let case_id = c.case_id;
        self.admit_read(&call, &CLAIMS, case_id, case_id)
            .await
            .map_err(|e| case_refusal(e, case_id))?;
        let claims = self
            .claim_list
            .of_cases(&[case_id], None, |l| claim_case(l) == Some(case_id))
            .await?;
        let overflow =
            || ApiError::FailedPrecondition("the totals exceed what can be counted".into());
        let mut by = ByCurrency::new();
        for (_, id, l) in &claims {
            let s = &l.state;
            let totals = Totals {
                claimed: s.claimed(),
                awarded: s.awarded(),
                paid: s.paid(),
            };
            add(&mut by, s.currency(), totals).ok_or_else(overflow)?;
            call.returned([id]);
        }
        let mut totals = Vec::new();
        for (currency, t) in by {
            totals.push(CurrencyTotals {
                currency,
                claimed: t.claimed,
                awarded: t.awarded,
                paid: t.paid,
                outstanding: t.outstanding().ok_or_else(overflow)?,
            });
        }
        Ok(Response::new(CompensationTotals {
            case_id: case_id.to_string(),
            totals,
        }))
    }

    async fn lodge_complaint(
        &self,
        request: Request<LodgeComplaintRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = LodgeComplaint::try_from(request.into_inner())?;
        self.create::<Complaint>(
            &call,
            &COMPLAINTS,
            c.case_id,
            c.request_id,
            &c.encoded,
            async |id| {
                Ok(ComplaintCommand::Lodge(ComplaintLodged {
                    complaint_id: id.to_string(),
                    about: c.about.clone(),
                    channel: c.channel as i32,
                    complainant: c.complainant as i32,
                    description_sealed: seal(&call, c.case_id, &c.description).await?,
                }))
            },
        )
        .await
    }

    async fn acknowledge_complaint(
        &self,
        request: Request<AcknowledgeComplaintRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AcknowledgeComplaint::try_from(request.into_inner())?;
        self.act::<Complaint>(
            &call,
            &COMPLAINTS,
            &c.target,
            complaint_case,
            async |_, _| Ok(ComplaintCommand::Acknowledge),
        )
        .await
    }

    async fn record_complaint_finding(
        &self,
        request: Request<RecordComplaintFindingRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordComplaintFinding::try_from(request.into_inner())?;
        let t = &c.target;
        self.act::<Complaint>(&call, &COMPLAINTS, t, complaint_case, async |case_id, _| {
            Ok(ComplaintCommand::RecordFinding(ComplaintFindingRecorded {
                complaint_id: t.id.to_string(),
                finding: c.finding as i32,
                remedy_sealed: seal(&call, case_id, &c.remedy).await?,
            }))
        })
        .await
    }

    async fn escalate_complaint(
        &self,
        request: Request<EscalateComplaintRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = EscalateComplaint::try_from(request.into_inner())?;
        let t = &c.target;
        self.act::<Complaint>(&call, &COMPLAINTS, t, complaint_case, async |case_id, _| {
            Ok(ComplaintCommand::Escalate(ComplaintEscalated {
                complaint_id: t.id.to_string(),
                body: c.body.clone(),
                reason_sealed: seal(&call, case_id, &c.reason).await?,
            }))
        })
        .await
    }

    async fn close_complaint(
        &self,
        request: Request<CloseComplaintRequest>,
    ) -> Result<Response<RemedyCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = CloseComplaint::try_from(request.into_inner())?;
        let t = &c.target;
        self.act::<Complaint>(&call, &COMPLAINTS, t, complaint_case, async |case_id, _| {
            Ok(ComplaintCommand::Close(ComplaintClosed {
                complaint_id: t.id.to_string(),
                note_sealed: seal(&call, case_id, &c.note).await?,
            }))
        })
        .await
    }

    async fn get_complaint(
        &self,
        request: Request<GetComplaintRequest>,
    ) -> Result<Response<ComplaintMessage>, Status> {
        let call = Call::of(&request)?;
        let c = GetComplaint::try_from(request.into_inner())?;
        let id = c.complaint_id;
        call.returned([id]);
        let l = self.complaints.load(id).await?;
        let Some(case_id) = complaint_case(&l) else {
            return Err(not_found(&COMPLAINTS, id).into());
        };
        self.admit_read(&call, &COMPLAINTS, case_id, id).await?;
        Ok(Response::new(self.render_complaint(&call, id, &l).await?))
    }

    async fn list_complaints(
        &self,
        request: Request<ListComplaintsRequest>,
    ) -> Result<Response<ListComplaintsResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListComplaints::try_from(request.into_inner())?;
        let visible = self
            .complaint_list
            .first(
                c.page_token,
                c.page_size,
                |l| {
                    complaint_case(l).is_some()
                        && (c.statuses.is_empty() || c.statuses.contains(&l.state.status))
                },
                |id, l| self.kept(&call, &COMPLAINTS, id, l),
            )
            .await?;
        let (page, next_page_token) = page_of(visible, c.page_size);
        let mut complaints = Vec::new();
        for (id, case_id, l) in &page {
            complaints.push(self.render_complaint(&call, *id, l).await?);
            call.returned([id, case_id]);
        }
        Ok(Response::new(ListComplaintsResponse {
            complaints,
            next_page_token,
        }))
    }
}
