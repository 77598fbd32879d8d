//! The gRPC handlers of ReferralService.
//!
//! Every command: convert the request into its typed command (naming each bad field)
//! → load the referral → ask the policy for the caller's standing on it (recorded on
//! the case's, or contact's, access history) → seal free text with the case's (or
//! contact's) key → decide → append at the version read, the standing asked again on
//! that very state. A referral the caller may not see is NOT_FOUND, exactly as one that
//! does not exist.

use std::sync::Arc;

use caseline_aggregate::{Request as RequestKey, Store, page_of};
use caseline_case::{Case, Joined, join_team, read_contact};
use caseline_eventlog::{EventLog, Position, Uuid};
use caseline_policy::teams::to_unix_ms;
use caseline_policy::{ReferralStep, Via};
use caseline_proto::tonic::{self, Request, Response, Status};
use caseline_proto::v1::events::{ReferralMade, TeamMemberAdded};
use caseline_proto::v1::referral_service_server::ReferralService;
use caseline_proto::v1::{
    AcceptReferralRequest, AcknowledgeReferralRequest, DeclineReferralRequest, GetReferralRequest,
    ListInboxRequest, ListOutboxRequest, ListOverdueReferralsRequest, ListReferralsResponse,
    MakeReferralRequest, RecordReferralOutcomeRequest, ReferralCommandResponse, ReferralStatus,
    ReferredCase, ReferredContact, WithdrawReferralRequest,
};
use caseline_server::ApiError;
use caseline_timeline::{from_unix_ms, timestamp};
use caseline_trust::request::new_aggregate_id;
use caseline_trust::{Call, vault_error};
use caseline_vault::Opened;

use crate::access::{Authorise, admit, referral_not_found, standing};
use crate::attach;
use crate::command::{
    AcceptReferral, AcknowledgeReferral, DeclineReferral, GetReferral, ListInbox, ListOutbox,
    ListOverdueReferrals, MakeReferral, Page, RecordReferralOutcome, Sent, WithdrawReferral,
};
use crate::directory::Directory;
use crate::domain::Command;
use crate::store::{self, Intent, Loaded, Owner, Referral};
use caseline_server::validate::Target;

/// Index of the team-joining event among an acceptance's event ids (the referral's own
/// events use the low indices).
const JOIN_INDEX: usize = 1_000;

/// The gRPC handlers of ReferralService.
#[derive(Debug)]
pub struct ReferralApi {
    log: Arc<dyn EventLog>,
    store: Store<Referral>,
    /// Cases, for their state and the rules every service applies to them (joining
    /// the team).
    cases: Store<Case>,
    directory: Directory,
}

impl ReferralApi {
    pub(crate) fn new(log: Arc<dyn EventLog>, directory: Directory) -> Self {
        Self {
            store: Store::new(Arc::clone(&log)),
            cases: Store::new(Arc::clone(&log)),
            directory,
            log,
        }
    }
}

/// Seals `text` under `owner`'s key; empty text stays empty.
async fn seal(call: &Call, owner: Owner, text: &str) -> Result<Vec<u8>, ApiError> {
    call.vault()
        .seal_field(owner.id(), text.trim())
        .await
        .map_err(vault_error)
}

impl ReferralApi {
    /// The common path of a step on an existing referral: load, authorise `step`,
    /// identify the request, let `build` seal and make the command unless the request
    /// is a retry (whose first answer it gets, whatever `build` would check now), run it (the
    /// standing asked again on the state appended to). Returns the new version and the
    /// referral as authorised.
    async fn act(
        &self,
        call: &Call,
        t: &Target,
        step: ReferralStep,
        build: impl AsyncFnOnce(Owner) -> Result<Command, ApiError>,
    ) -> Result<(u64, Owner, RequestKey), ApiError> {
        let loaded = self.current(call, t.id).await?;
        Authorise::Step(step).check(call, t.id, &loaded).await?;
        let Some(owner) = loaded.owner() else {
            return Err(referral_not_found(t.id));
        };
        let origin = loaded.origin().unwrap_or(owner.id());
        let request = call.request(origin, t.request_id, &t.encoded).await?;
        let version = store::execute(
            &self.store,
            call,
            Intent {
                referral_id: t.id,
                request: &request,
                expected: t.expected,
                owner,
            },
            Some(loaded),
            async || build(owner).await,
            Authorise::Step(step),
        )
        .await?;
        Ok((version, owner, request))
    }

    /// The referral as the log says now, moved onto its case first if a case was opened
    /// from its contact. That move is the system's, whoever asked; if it fails, the
    /// referral is answered as it stands (the background process tries again), so the
    /// failure tells the caller nothing.
    async fn current(&self, call: &Call, referral_id: Uuid) -> Result<Loaded, ApiError> {
        match attach::current(call.vault(), &self.cases, &self.store, referral_id).await {
            Ok(loaded) => Ok(loaded),
            Err(e) => {
                tracing::warn!(error = %e, "attaching a referral to its case failed; answering as it stands");
                self.store.load(referral_id).await
            }
        }
    }

    fn answer(&self, referral_id: Uuid, version: u64) -> Response<ReferralCommandResponse> {
        Response::new(ReferralCommandResponse {
            referral_id: referral_id.to_string(),
            version,
            due_by: None,
        })
    }

    /// The referral as the caller may see it (`View` already allowed).
    async fn render(
        &self,
        call: &Call,
        referral_id: Uuid,
        loaded: &Loaded,
    ) -> Result<caseline_proto::v1::Referral, ApiError> {
        let (Some(made), Some(owner)) = (&loaded.state.made, loaded.owner()) else {
            return Err(referral_not_found(referral_id));
        };
        let mut erased = false;
        let mut open = async |bytes: &[u8]| -> Result<String, ApiError> {
            match call
                .vault()
                .open_field(owner.id(), bytes)
                .await
                .map_err(vault_error)?
            {
                Opened::Plain(text) => Ok(text.expose().to_owned()),
                Opened::Erased => {
                    erased = true;
                    Ok(String::new())
                }
            }
        };
        let reason = open(&made.reason_sealed).await?;
        let legal_basis = open(&made.legal_basis_sealed).await?;
        let decline_reason = match &loaded.declined {
            Some(d) => open(&d.reason_sealed).await?,
            None => String::new(),
        };
        let outcome = match &loaded.outcome {
            Some(o) => open(&o.outcome_sealed).await?,
            None => String::new(),
        };
        let withdraw_reason = match &loaded.withdrawn {
            Some(w) => open(&w.reason_sealed).await?,
            None => String::new(),
        };
        let (mut referred_case, mut referred_contact) = (None, None);
        if standing(call, loaded, ReferralStep::ViewReferredCase)
            .await?
            .is_allowed()
        {
            match owner {
                Owner::Case(case_id) => {
                    let state = &self.cases.load(case_id).await?.state;
                    referred_case = state.opened.as_ref().map(|o| ReferredCase {
                        pseudonym: o.pseudonym.clone(),
                        age_band: o.age_band,
                        gender: o.gender,
                        language: o.language.clone(),
                        concerns: o.concerns.clone(),
                        risk_level: state.risk as i32,
                        stage: state.stage as i32,
                    });
                }
                Owner::Contact(contact_id) => {
                    referred_contact =
                        read_contact(self.log.as_ref(), contact_id).await?.map(|c| {
                            ReferredContact {
                                channel: c.recorded.channel,
                                caller_kind: c.recorded.caller_kind,
                                concerns: c.recorded.concerns,
                                urgency: c.recorded.urgency,
                                anonymous: c.recorded.anonymous,
                                contacted_at: Some(timestamp(c.recorded_at)),
                            }
                        });
                }
            }
        }
        let contact_id = match owner {
            Owner::Contact(id) if call.agency() == made.from_agency => id.to_string(),
            _ => String::new(),
        };
        let state = &loaded.state;
        let t = |at: Option<std::time::SystemTime>| at.map(timestamp);
        Ok(caseline_proto::v1::Referral {
            referral_id: referral_id.to_string(),
            case_id: owner.case_id().map(|c| c.to_string()).unwrap_or_default(),
            contact_id,
            from_agency: made.from_agency.clone(),
            referred_by: loaded.made_by.clone(),
            to_agency: made.to_agency.clone(),
            service: made.service,
            urgency: made.urgency,
            consent: made.consent,
            legal_basis,
            reason,
            made_at: t(loaded.times.made),
            due_by: Some(timestamp(from_unix_ms(made.due_by_unix_ms))),
            status: state.status as i32,
            overdue: state.is_overdue(to_unix_ms(call.now())),
            escalated_at: t(loaded.times.escalated),
            escalation: state.escalation.map_or(0, |e| e as i32),
            acknowledged_at: t(loaded.times.acknowledged),
            accepted_by: state
                .accepted_by
                .as_ref()
                .map(|(subject, _)| subject.clone())
                .unwrap_or_default(),
            accepted_at: t(loaded.times.accepted),
            decline_reason,
            suggested_service: loaded.declined.as_ref().map_or(0, |d| d.suggested_service),
            declined_at: t(loaded.times.declined),
            outcome,
            completed_at: t(loaded.times.completed),
            withdraw_reason,
            withdrawn_at: t(loaded.times.withdrawn),
            version: loaded.version.unwrap_or_default(),
            referred_case,
            referred_contact,
            erased,
        })
    }

    /// A page of the referrals of the caller's agency (made or received) that `include`
    /// admits and the caller may see, in the order made. Every id returned (referral
    /// and case) is recorded in the access history.
    async fn list(
        &self,
        call: &Call,
        Page { size, after }: Page,
        include: impl Fn(&Loaded) -> bool,
    ) -> Result<ListReferralsResponse, ApiError> {
        let mut visible = Vec::new();
        let mut cursor = after;
        'chunks: loop {
            // The agency's referrals, a page's worth at a time (the lock is not held
            // while the caller's standing is decided).
            let candidates: Vec<(Position, Uuid, Loaded)> = {
                let view = self.directory.view().await?;
                view.of_agency(call.agency(), cursor, size + 1)
                    .into_iter()
                    .map(|(p, id, r)| (p, id, r.clone()))
                    .collect()
            };
            let Some((last, _, _)) = candidates.last() else {
                break;
            };
            cursor = Some(*last);
            for (position, referral_id, loaded) in candidates {
                if visible.len() > size {
                    break 'chunks;
                }
                if !include(&loaded) {
                    continue;
                }
                // What the caller stands on; never what a break-glass grant opened
                // (read one by one, recorded as break-glass).
                let decision = standing(call, &loaded, ReferralStep::View).await?;
                if decision.is_allowed() && !matches!(decision.via, Via::BreakGlass { .. }) {
                    visible.push((position, (referral_id, loaded)));
                }
            }
        }
        let (page, next_page_token) = page_of(visible, size);
        let (mut referrals, mut returned) = (Vec::new(), Vec::new());
        for (referral_id, loaded) in &page {
            let referral = self.render(call, *referral_id, loaded).await?;
            for id in [
                &referral.referral_id,
                &referral.case_id,
                &referral.contact_id,
            ] {
                if !id.is_empty() {
                    returned.push(id.clone());
                }
            }
            referrals.push(referral);
        }
        call.returned(returned);
        Ok(ListReferralsResponse {
            referrals,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl ReferralService for ReferralApi {
    async fn make_referral(
        &self,
        request: Request<MakeReferralRequest>,
    ) -> Result<Response<ReferralCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = MakeReferral::try_from(Sent {
            request: request.into_inner(),
            agency: call.agency(),
        })?;
        let owner = c.owner;

        // Where the referral belongs, and the caller's standing there.
        let from_agency = match owner {
            Owner::Case(_) => call.agency().to_owned(),
            Owner::Contact(contact_id) => {
                let contact = read_contact(call.log().as_ref(), contact_id).await?;
                contact.map(|found| found.agency).unwrap_or_default()
            }
        };
        let authorise = Authorise::Make {
            owner,
            from_agency: &from_agency,
            to_agency: &c.to_agency,
        };
        let referral_id = new_aggregate_id(&call, "referral", c.request_id);
        authorise
            .check(&call, referral_id, &Loaded::default())
            .await?;
        // A retry answers as the first time, whatever happened to the case or contact
        // since (closed, opened into a case).
        let request = call.request(owner.id(), c.request_id, &c.encoded).await?;
        let existing = self.store.load(referral_id).await?;
        if let Some(done) = self
            .store
            .answered(&existing, referral_id, &request)
            .await?
        {
            let mut answer = self.answer(referral_id, done.version);
            answer.get_mut().due_by = existing
                .state
                .made
                .as_ref()
                .map(|m| timestamp(from_unix_ms(m.due_by_unix_ms)));
            return Ok(answer);
        }
        match owner {
            Owner::Case(case_id) => {
                if self.cases.load(case_id).await?.state.stage == caseline_proto::v1::Stage::Closed
                {
                    return Err(ApiError::FailedPrecondition(
                        "the case is closed: reopen it before referring the child".into(),
                    )
                    .into());
                }
            }
            Owner::Contact(contact_id) => {
                let contact = read_contact(call.log().as_ref(), contact_id).await?;
                if contact.and_then(|c| c.case_id).is_some() {
                    return Err(ApiError::FailedPrecondition(
                        "a case was opened from this contact: refer from the case".into(),
                    )
                    .into());
                }
            }
        }

        let made = ReferralMade {
            referral_id: referral_id.to_string(),
            from_agency: from_agency.clone(),
            to_agency: c.to_agency.clone(),
            case_id: owner.case_id().map(|id| id.to_string()).unwrap_or_default(),
            contact_id: match owner {
                Owner::Contact(contact_id) => contact_id.to_string(),
                Owner::Case(_) => String::new(),
            },
            service: c.service as i32,
            urgency: c.urgency as i32,
            due_by_unix_ms: 0,
            reason_sealed: seal(&call, owner, &c.reason).await?,
            consent: c.consent as i32,
            legal_basis_sealed: seal(&call, owner, &c.legal_basis).await?,
        };
        let now_ms = to_unix_ms(call.now());
        let version = store::execute(
            &self.store,
            &call,
            Intent {
                referral_id,
                request: &request,
                expected: None,
                owner,
            },
            None,
            async || Ok(Command::Make { made, now_ms }),
            authorise,
        )
        .await?;
        let loaded = self.store.load(referral_id).await?;
        let mut answer = self.answer(referral_id, version);
        answer.get_mut().due_by = loaded
            .state
            .made
            .as_ref()
            .map(|m| timestamp(from_unix_ms(m.due_by_unix_ms)));
        Ok(answer)
    }

    async fn acknowledge_referral(
        &self,
        request: Request<AcknowledgeReferralRequest>,
    ) -> Result<Response<ReferralCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AcknowledgeReferral::try_from(request.into_inner())?;
        let t = &c.target;
        let (version, _, _) = self
            .act(&call, t, ReferralStep::Acknowledge, async |_| {
                Ok(Command::Acknowledge)
            })
            .await?;
        Ok(self.answer(t.id, version))
    }

    async fn accept_referral(
        &self,
        request: Request<AcceptReferralRequest>,
    ) -> Result<Response<ReferralCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AcceptReferral::try_from(request.into_inner())?;
        let t = &c.target;
        let (version, owner, request) = self
            .act(&call, t, ReferralStep::Accept, async |owner| {
                if let Owner::Case(case_id) = owner {
                    let state = &self.cases.load(case_id).await?.state;
                    if state.stage == caseline_proto::v1::Stage::Closed {
                        return Err(ApiError::FailedPrecondition(
                            "the case is closed: it must be reopened before the referral is accepted"
                                .into(),
                        ));
                    }
                }
                Ok(Command::Accept {
                    subject: call.subject().to_owned(),
                    role: call.role().as_str().to_owned(),
                })
            })
            .await?;
        // The one who accepts joins the case's team, in the role they act in. Done
        // after the acceptance is stored (and again on a retry, which appends nothing
        // twice): a failure here leaves an acceptance to retry, never a member added
        // for a referral that was not accepted.
        // Joined only while the acceptance stands, by the one who accepted, on the case
        // the referral belongs to now (a retry may come after a withdrawal, or after the
        // referral moved onto its case).
        let now = self.store.load(t.id).await?;
        let standing_acceptance = matches!(
            now.state.status,
            ReferralStatus::Accepted | ReferralStatus::Completed
        ) && now.state.accepted_by.as_ref().is_some_and(
            |(subject, role)| subject == call.subject() && role == call.role().as_str(),
        );
        let _ = owner;
        if let (true, Some(Owner::Case(case_id))) = (standing_acceptance, now.owner()) {
            let mut metadata = call.event_metadata(Some(case_id), Some(request.id));
            metadata.causation_id = Some(request.event_id(0));
            let joined = join_team(
                &self.cases,
                case_id,
                TeamMemberAdded {
                    subject: call.subject().to_owned(),
                    agency: call.agency().to_owned(),
                    role: call.role().as_str().to_owned(),
                },
                request.event_id(JOIN_INDEX),
                metadata,
            )
            .await?;
            tracing::debug!(
                already_member = joined == Joined::AlreadyMember,
                "referral accepted"
            );
        }
        Ok(self.answer(t.id, version))
    }

    async fn decline_referral(
        &self,
        request: Request<DeclineReferralRequest>,
    ) -> Result<Response<ReferralCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = DeclineReferral::try_from(request.into_inner())?;
        let t = &c.target;
        let (version, _, _) = self
            .act(&call, t, ReferralStep::Decline, async |owner| {
                Ok(Command::Decline {
                    reason_sealed: seal(&call, owner, &c.reason).await?,
                    suggested_service: c.suggested_service.map_or(0, |s| s as i32),
                })
            })
            .await?;
        Ok(self.answer(t.id, version))
    }

    async fn record_referral_outcome(
        &self,
        request: Request<RecordReferralOutcomeRequest>,
    ) -> Result<Response<ReferralCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordReferralOutcome::try_from(request.into_inner())?;
        let t = &c.target;
        let (version, _, _) = self
            .act(&call, t, ReferralStep::RecordOutcome, async |owner| {
                Ok(Command::RecordOutcome {
                    outcome_sealed: seal(&call, owner, &c.outcome).await?,
                })
            })
            .await?;
        Ok(self.answer(t.id, version))
    }

    async fn withdraw_referral(
        &self,
        request: Request<WithdrawReferralRequest>,
    ) -> Result<Response<ReferralCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = WithdrawReferral::try_from(request.into_inner())?;
        let t = &c.target;
        let (version, _, _) = self
            .act(&call, t, ReferralStep::Withdraw, async |owner| {
                Ok(Command::Withdraw {
                    reason_sealed: seal(&call, owner, &c.reason).await?,
                })
            })
            .await?;
        Ok(self.answer(t.id, version))
    }

    async fn get_referral(
        &self,
        request: Request<GetReferralRequest>,
    ) -> Result<Response<caseline_proto::v1::Referral>, Status> {
        let call = Call::of(&request)?;
        let GetReferral { referral_id } = GetReferral::try_from(request.into_inner())?;
        let loaded = self.current(&call, referral_id).await?;
        let decision = standing(&call, &loaded, ReferralStep::View).await?;
        admit(&call, referral_id, &loaded, ReferralStep::View, decision)?;
        Ok(Response::new(
            self.render(&call, referral_id, &loaded).await?,
        ))
    }

    async fn list_inbox(
        &self,
        request: Request<ListInboxRequest>,
    ) -> Result<Response<ListReferralsResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListInbox::try_from(request.into_inner())?;
        let agency = call.agency().to_owned();
        let wanted = &c.statuses;
        let page = self
            .list(&call, c.page, |l| {
                l.state.made.as_ref().is_some_and(|m| m.to_agency == agency)
                    && (wanted.is_empty() || wanted.contains(&l.state.status))
            })
            .await?;
        Ok(Response::new(page))
    }

    async fn list_outbox(
        &self,
        request: Request<ListOutboxRequest>,
    ) -> Result<Response<ListReferralsResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListOutbox::try_from(request.into_inner())?;
        let agency = call.agency().to_owned();
        let subject = call.subject().to_owned();
        let (mine, wanted) = (c.mine, &c.statuses);
        let page = self
            .list(&call, c.page, |l| {
                l.state
                    .made
                    .as_ref()
                    .is_some_and(|m| m.from_agency == agency)
                    && (!mine || l.made_by == subject)
                    && (wanted.is_empty() || wanted.contains(&l.state.status))
            })
            .await?;
        Ok(Response::new(page))
    }

    async fn list_overdue_referrals(
        &self,
        request: Request<ListOverdueReferralsRequest>,
    ) -> Result<Response<ListReferralsResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListOverdueReferrals::try_from(request.into_inner())?;
        let agency = call.agency().to_owned();
        let now_ms = to_unix_ms(call.now());
        let page = self
            .list(&call, c.page, |l| {
                l.state.is_overdue(now_ms)
                    && l.state
                        .made
                        .as_ref()
                        .is_some_and(|m| m.to_agency == agency || m.from_agency == agency)
            })
            .await?;
        Ok(Response::new(page))
    }
}
