//! The gRPC handlers of CaseService.

use std::collections::HashSet;
use std::sync::Arc;

use caseline_auth::Role;
use caseline_eventlog::{EventLog, Position, Uuid};
use caseline_policy::{Action, CaseTeam, Compartment, Decision, Entry, Operation, Sight, Via};
use caseline_proto::prost::Message;
use caseline_proto::tonic::{self, Request, Response, Status};
use caseline_proto::v1::case_service_server::CaseService;
use caseline_proto::v1::events::{
    CaseOpened, ContactRecorded, JusticeMilestoneRecorded, NoteAdded, RiskAssessed,
    TeamMemberAdded, TeamMemberRemoved,
};
use caseline_proto::v1::{
    AddNoteRequest, AddTeamMemberRequest, Case, CaseCommandResponse, CaseLink, CaseSummary,
    ChangeStageRequest, ChildIdentity, DecideClosureRequest, GetCaseRequest, GetLinkedCasesRequest,
    GetLinkedCasesResponse, GetTimelineRequest, GetTimelineResponse, LinkCasesRequest,
    ListCasesRequest, ListCasesResponse, OpenCaseRequest, OpenCaseResponse, RecordContactRequest,
    RecordContactResponse, RecordJusticeMilestoneRequest, RecordRiskAssessmentRequest,
    RemoveTeamMemberRequest, ReopenCaseRequest, RequestClosureRequest, TeamMember,
    UnlinkCasesRequest, Visibility,
};
use caseline_server::ApiError;
use caseline_server::validate::At;
use caseline_timeline::{Item, Render, timestamp};
use caseline_trust::{Call, vault_error};

use crate::command::{
    AddNote, AddTeamMember, ChangeStage, DecideClosure, GetCase, GetLinkedCases, GetTimeline,
    LinkCases, ListCases, OpenCase, RecordContact, RecordJusticeMilestone, RecordRiskAssessment,
    RemoveTeamMember, ReopenCase, RequestClosure, UnlinkCases,
};
use crate::contacts;
use crate::directory::{Directory, LinkRecord, Summary};
use caseline_aggregate::{Done, Gate, Intent, Request as Asked, Store};
use caseline_case::Loaded;
use caseline_case::domain::{Actor, Command, Opening};
use caseline_server::validate::Target;
use caseline_trust::request::new_aggregate_id;

/// A timeline page stops growing past this many bytes (clients' default limit on a
/// message is 4 MiB); the rest comes with the next page.
const TIMELINE_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The gRPC handlers of CaseService.
#[derive(Debug)]
pub struct CaseApi {
    cases: Store<caseline_case::Case>,
    directory: Directory,
    /// Held while a link is checked against the other case and recorded: the two
    /// sides of a link are two streams, which no single append checks together, so
    /// without it two cases linked from both sides at once would end linked twice.
    linking: tokio::sync::Mutex<()>,
}

impl CaseApi {
    pub(crate) fn new(log: Arc<dyn EventLog>, directory: Arc<crate::directory::Followed>) -> Self {
        Self {
            cases: Store::new(Arc::clone(&log)),
            directory: Directory::new(directory),
            linking: tokio::sync::Mutex::new(()),
        }
    }
}

/// The gate of a command on a case: `action` decided with the team of the very state
/// the events are appended to, so a caller taken off the team after their first check
/// never writes.
struct OnTheTeam<'a> {
    call: &'a Call,
    action: Action,
}

impl Gate<caseline_case::Case> for OnTheTeam<'_> {
    async fn check(&self, case_id: Uuid, loaded: &Loaded) -> Result<(), ApiError> {
        let team = loaded.version.map(|_| loaded.team());
        self.call.enforce(
            case_id,
            self.call
                .decide_for(team.as_ref(), self.action, Entry::default()),
        )
    }
}

/// The request's identity, once the caller may act on the case (the fingerprint uses
/// the case's key, which must not be made for a case that does not exist).
async fn request_of(call: &Call, t: &Target) -> Result<Asked, ApiError> {
    call.request(t.id, t.request_id, &t.encoded).await
}

/// Seals `text` for `owner` (a case or contact); empty text stays empty.
async fn seal(call: &Call, owner: Uuid, text: &str) -> Result<Vec<u8>, ApiError> {
    call.vault()
        .seal_field(owner, text)
        .await
        .map_err(vault_error)
}

/// Opens a sealed field of `case_id`: empty when none or erased.
async fn open(call: &Call, case_id: Uuid, bytes: &[u8]) -> Result<String, ApiError> {
    let opened = call
        .vault()
        .open_field(case_id, bytes)
        .await
        .map_err(vault_error)?;
    Ok(opened
        .into_plain()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default())
}

/// Whether the caller reads `compartment` of the case with `team` in full.
fn reads_in_full(call: &Call, team: &CaseTeam, compartment: Compartment) -> bool {
    call.decide_for(Some(team), Action::Read(compartment), Entry::default())
        .sight
        == Sight::Full
}

fn actor(call: &Call) -> Actor {
    Actor {
        subject: call.subject().to_owned(),
        agency: call.agency().to_owned(),
    }
}

fn answer(case_id: Uuid, done: Done, entry: Option<Uuid>) -> Response<CaseCommandResponse> {
    Response::new(CaseCommandResponse {
        case_id: case_id.to_string(),
        version: done.version,
        entry_id: entry.map(|e| e.to_string()).unwrap_or_default(),
    })
}

/// What a command on a case makes that its answer names: a timeline entry (a note, a
/// link, a milestone), whose id comes from the request, or nothing.
#[derive(Clone, Copy)]
enum Makes {
    Entry,
    Nothing,
}

impl Makes {
    fn entry(self, request: &Asked) -> Option<Uuid> {
        match self {
            Makes::Entry => Some(request.entry_id()),
            Makes::Nothing => None,
        }
    }
}

impl CaseApi {
    /// Runs the command `build` makes on the target case (already authorised), unless
    /// the request is a retry, which gets its first answer ([`Store::build_and_execute`]).
    async fn run(
        &self,
        call: &Call,
        t: &Target,
        request: &Asked,
        action: Action,
        loaded: Option<Loaded>,
        build: impl AsyncFnOnce() -> Result<Command, ApiError>,
    ) -> Result<Done, ApiError> {
        self.cases
            .build_and_execute(
                Intent {
                    id: t.id,
                    request,
                    expected: t.expected,
                    metadata: call.event_metadata(Some(t.id), None),
                },
                loaded,
                build,
                &OnTheTeam { call, action },
            )
            .await
    }

    /// The common path of a command on a case: authorise `action`, identify the
    /// request, let `build` seal and make the command (asked only if the request is not
    /// a retry), run it on the state authorised, and answer with the case's new version
    /// and the id of what it `makes`.
    async fn apply(
        &self,
        call: &Call,
        t: &Target,
        action: Action,
        makes: Makes,
        build: impl AsyncFnOnce(&Asked) -> Result<Command, ApiError>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let loaded = self.authorise(call, t, action).await?;
        let request = request_of(call, t).await?;
        let done = self
            .run(call, t, &request, action, loaded, async || {
                build(&request).await
            })
            .await?;
        Ok(answer(t.id, done, makes.entry(&request)))
    }

    /// Whether the caller may see `case_id` at all (its case core), as its own streams
    /// say now; nothing is recorded and no break-glass opens.
    async fn may_see(&self, call: &Call, case_id: Uuid) -> Result<bool, ApiError> {
        let team = call.trust_teams().current(case_id).await?;
        Ok(call
            .decide_for(
                team.as_ref(),
                Action::Read(Compartment::CaseCore),
                Entry::default(),
            )
            .is_allowed())
    }

    /// Asks the policy whether the caller may do `action` on the target case.
    ///
    /// Decided on the case as its own stream says (the state the command will apply
    /// to, one read); only a refusal asks again with everything the policy knows (a
    /// break-glass holder learns that break-glass is read-only, not that the case is
    /// absent). The command is decided again on the state it is appended to.
    async fn authorise(
        &self,
        call: &Call,
        t: &Target,
        action: Action,
    ) -> Result<Option<Loaded>, ApiError> {
        let loaded = self.cases.load(t.id).await?;
        let team = loaded.version.map(|_| loaded.team());
        let decision = call.decide_for(team.as_ref(), action, Entry::default());
        if decision.is_allowed() {
            call.enforce(t.id, decision)?;
            return Ok(Some(loaded));
        }
        call.case(t.id, action).await?;
        // Allowed after all: the team changed meanwhile; the command reloads.
        Ok(None)
    }
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn record_contact(
        &self,
        request: Request<RecordContactRequest>,
    ) -> Result<Response<RecordContactResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordContact::try_from(request.into_inner())?;
        let contact_id = new_aggregate_id(&call, "contact", c.request_id);
        let request = call.request(contact_id, c.request_id, &c.encoded).await?;
        let contact = ContactRecorded {
            channel: c.channel as i32,
            caller_kind: c.caller_kind as i32,
            concerns: c.concerns.iter().map(|&v| v as i32).collect(),
            urgency: c.urgency as i32,
            anonymous: c.anonymous,
            summary_sealed: seal(&call, contact_id, &c.summary).await?,
            caller_name_sealed: seal(&call, contact_id, &c.caller_name).await?,
            caller_contact_sealed: seal(&call, contact_id, &c.caller_contact).await?,
        };
        contacts::record(&call, contact_id, &request, contact).await?;
        Ok(Response::new(RecordContactResponse {
            contact_id: contact_id.to_string(),
        }))
    }

    async fn open_case(
        &self,
        request: Request<OpenCaseRequest>,
    ) -> Result<Response<OpenCaseResponse>, Status> {
        let call = Call::of(&request)?;
        let c = OpenCase::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let case_id = new_aggregate_id(&call, "case", c.request_id);
        let request = call.request(case_id, c.request_id, &c.encoded).await?;
        // A retry answers before anything is claimed; a request id reused for another
        // opening is refused before it marks another contact as opened into this case
        // (which would leave that contact claimed by a case that never held it).
        let loaded = self.cases.load(case_id).await?;
        if let Some(done) = self.cases.answered(&loaded, case_id, &request).await? {
            return Ok(Response::new(OpenCaseResponse {
                case_id: case_id.to_string(),
                version: done.version,
            }));
        }
        let opened = CaseOpened {
            pseudonym: c.pseudonym,
            name_sealed: seal(&call, case_id, &c.name).await?,
            date_of_birth_sealed: seal(&call, case_id, c.date_of_birth.as_deref().unwrap_or(""))
                .await?,
            contact_details_sealed: seal(&call, case_id, &c.contact_details).await?,
            age_band: c.age_band as i32,
            gender: c.gender as i32,
            language: c.language,
            region_sealed: seal(&call, case_id, &c.region).await?,
            source: c.source as i32,
            concerns: c.concerns.iter().map(|&v| v as i32).collect(),
            initial_risk: c.initial_risk as i32,
            contact_id: c.contact_id.map(|id| id.to_string()).unwrap_or_default(),
        };
        // Claimed last, once everything else is sealed: a key store failing above
        // leaves the contact free.
        let contact = match c.contact_id {
            Some(contact_id) => Some(contacts::claim(&call, contact_id, case_id, &request).await?),
            None => None,
        };
        let opener = TeamMemberAdded {
            subject: call.subject().to_owned(),
            agency: call.agency().to_owned(),
            role: call.role().as_str().to_owned(),
        };
        let done = self
            .cases
            .execute(
                Intent {
                    id: case_id,
                    request: &request,
                    expected: None,
                    metadata: call.event_metadata(Some(case_id), None),
                },
                Some(loaded),
                Command::Open(Box::new(Opening {
                    opened,
                    opener,
                    contact,
                })),
                // Opening is authorised by role alone (the case has no team yet).
                &(),
            )
            .await?;
        Ok(Response::new(OpenCaseResponse {
            case_id: case_id.to_string(),
            version: done.version,
        }))
    }

    async fn record_risk_assessment(
        &self,
        request: Request<RecordRiskAssessmentRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordRiskAssessment::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::RecordRiskAssessment);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            let command = Command::AssessRisk(RiskAssessed {
                level: c.level as i32,
                factors_sealed: seal(&call, t.id, &c.factors).await?,
                immediate_actions_sealed: seal(&call, t.id, &c.immediate_actions).await?,
            });
            Ok(command)
        })
        .await
    }

    async fn add_team_member(
        &self,
        request: Request<AddTeamMemberRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AddTeamMember::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::ManageTeam);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            if c.subject == call.subject() && c.agency == call.agency() {
                // Joining a team, or taking another role on it, is for someone else to
                // decide: otherwise a supervisor standing by agency, or a member holding
                // several roles, could widen their own access.
                return Err(ApiError::PermissionDenied(
                    "you may not add yourself to a case's team",
                ));
            }
            let command = Command::AddMember(TeamMemberAdded {
                subject: c.subject,
                agency: c.agency,
                role: c.role.as_str().to_owned(),
            });
            Ok(command)
        })
        .await
    }

    async fn remove_team_member(
        &self,
        request: Request<RemoveTeamMemberRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RemoveTeamMember::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::ManageTeam);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            let command = Command::RemoveMember(TeamMemberRemoved {
                subject: c.subject,
                agency: c.agency,
            });
            Ok(command)
        })
        .await
    }

    async fn add_note(
        &self,
        request: Request<AddNoteRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AddNote::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Write(c.compartment);
        self.apply(&call, t, action, Makes::Entry, async |request| {
            let note_id = request.entry_id();
            let command = Command::AddNote(NoteAdded {
                note_id: note_id.to_string(),
                compartment: c.note as i32,
                text_sealed: seal(&call, t.id, &c.text).await?,
            });
            Ok(command)
        })
        .await
    }

    async fn link_cases(
        &self,
        request: Request<LinkCasesRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = LinkCases::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Write(Compartment::Investigation);
        self.authorise(&call, t, action).await?;
        let request = request_of(&call, t).await?;
        let link_id = request.entry_id();
        let _linking = self.linking.lock().await;
        // Read under the lock, so that the other side's links below and the append
        // see every link this process made. A retry gets its first answer before any
        // of the checks: the caller may have lost sight of the other case since, or it
        // may have been linked from its side since.
        let loaded = self.cases.load(t.id).await?;
        let done = self
            .run(&call, t, &request, action, Some(loaded), async || {
                if c.other != t.id {
                    // The other case must be one the caller may see; else it does not
                    // exist.
                    call.case(c.other, Action::Read(Compartment::CaseCore))
                        .await?;
                    // A link made from the other side already links the two. Read from
                    // the other case's own stream, which holds every committed link
                    // (the directory may lag).
                    if self
                        .cases
                        .load(c.other)
                        .await?
                        .state
                        .links
                        .contains_key(&t.id)
                    {
                        return Err(ApiError::FailedPrecondition(
                            "the cases are already linked".into(),
                        ));
                    }
                }
                Ok(Command::Link {
                    case_id: t.id,
                    other_case_id: c.other,
                    link_id,
                    kind: c.kind as i32,
                    reason_sealed: seal(&call, t.id, &c.reason).await?,
                })
            })
            .await?;
        Ok(answer(t.id, done, Some(link_id)))
    }

    async fn unlink_cases(
        &self,
        request: Request<UnlinkCasesRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = UnlinkCases::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Write(Compartment::Investigation);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            // As for linking: a case the caller may not see does not exist, so an
            // unlink never confirms a guessed id.
            call.case(c.other, Action::Read(Compartment::CaseCore))
                .await?;
            let command = Command::Unlink {
                other_case_id: c.other,
                reason_sealed: seal(&call, t.id, &c.reason).await?,
            };
            Ok(command)
        })
        .await
    }

    async fn change_stage(
        &self,
        request: Request<ChangeStageRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ChangeStage::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::ChangeStage);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            let command = Command::ChangeStage {
                to: c.stage,
                reason_sealed: seal(&call, t.id, &c.reason).await?,
            };
            Ok(command)
        })
        .await
    }

    async fn request_closure(
        &self,
        request: Request<RequestClosureRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RequestClosure::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::RequestClosure);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            let command = Command::RequestClosure {
                by: actor(&call),
                reason_sealed: seal(&call, t.id, &c.reason).await?,
            };
            Ok(command)
        })
        .await
    }

    async fn decide_closure(
        &self,
        request: Request<DecideClosureRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = DecideClosure::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::DecideClosure);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            let command = Command::DecideClosure {
                by: actor(&call),
                approve: c.approve,
                comment_sealed: seal(&call, t.id, &c.comment).await?,
            };
            Ok(command)
        })
        .await
    }

    async fn reopen_case(
        &self,
        request: Request<ReopenCaseRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ReopenCase::try_from(request.into_inner())?;
        let t = &c.target;
        let action = Action::Manage(Operation::Reopen);
        self.apply(&call, t, action, Makes::Nothing, async |_| {
            let command = Command::Reopen {
                stage: c.stage,
                reason_sealed: seal(&call, t.id, &c.reason).await?,
            };
            Ok(command)
        })
        .await
    }

    async fn record_justice_milestone(
        &self,
        request: Request<RecordJusticeMilestoneRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordJusticeMilestone::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let t = &c.target;
        let action = Action::Write(Compartment::JusticeMilestones);
        self.apply(&call, t, action, Makes::Entry, async |request| {
            let milestone_id = request.entry_id();
            let command = Command::RecordMilestone(JusticeMilestoneRecorded {
                milestone_id: milestone_id.to_string(),
                kind: c.kind as i32,
                occurred_at_unix_ms: caseline_policy::teams::to_unix_ms(c.occurred),
                description_sealed: seal(&call, t.id, &c.description).await?,
                child_informed: c.informed.is_some(),
                child_informed_at_unix_ms: c.informed.map_or(0, caseline_policy::teams::to_unix_ms),
            });
            Ok(command)
        })
        .await
    }

    async fn get_case(&self, request: Request<GetCaseRequest>) -> Result<Response<Case>, Status> {
        let call = Call::of(&request)?;
        let GetCase { case_id } = GetCase::try_from(request.into_inner())?;
        let access = call
            .case(case_id, Action::Read(Compartment::CaseCore))
            .await?;
        let loaded = self.cases.load(case_id).await?;
        let (Some(opened), Some(version)) = (&loaded.state.opened, loaded.version) else {
            return Err(ApiError::NotFound {
                kind: "case",
                id: case_id.to_string(),
            }
            .into());
        };
        let mut case = Case {
            case_id: case_id.to_string(),
            visibility: Visibility::Summary as i32,
            opened_at: loaded.opened_at.map(timestamp),
            opened_by_agency: loaded.opened_by_agency.clone(),
            version,
            ..Case::default()
        };
        if access.decision.sight == Sight::Full {
            case.visibility = Visibility::Full as i32;
            case.pseudonym = opened.pseudonym.clone();
            if reads_in_full(&call, &access.team, Compartment::ChildIdentity) {
                case.identity = Some(ChildIdentity {
                    name: open(&call, case_id, &opened.name_sealed).await?,
                    date_of_birth: open(&call, case_id, &opened.date_of_birth_sealed).await?,
                    contact_details: open(&call, case_id, &opened.contact_details_sealed).await?,
                });
            }
            case.age_band = opened.age_band;
            case.gender = opened.gender;
            case.language = opened.language.clone();
            case.region = open(&call, case_id, &opened.region_sealed).await?;
            case.source = opened.source;
            case.concerns = opened.concerns.clone();
            case.stage = loaded.state.stage as i32;
            case.risk_level = loaded.state.risk as i32;
            case.team = loaded
                .state
                .team
                .iter()
                .map(|((subject, agency), role)| TeamMember {
                    subject: subject.clone(),
                    agency: agency.clone(),
                    role: role.clone(),
                })
                .collect();
            case.closure_pending = loaded.state.closure_requested_by.is_some();
            if reads_in_full(&call, &access.team, Compartment::HelplineContacts) {
                case.contact_id = opened.contact_id.clone();
            }
        }
        Ok(Response::new(case))
    }

    async fn list_cases(
        &self,
        request: Request<ListCasesRequest>,
    ) -> Result<Response<ListCasesResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListCases::try_from(request.into_inner())?;
        let works_on = |d: &Decision| {
            d.is_allowed()
                && match d.via {
                    Via::Team => true,
                    Via::AgencySupervisor | Via::BreakGlass { .. } => !c.mine,
                    _ => false,
                }
        };
        // A supervisor's list without `mine` holds the cases their agency is on too;
        // everyone's holds the cases they are on (as a member or by break-glass).
        let whole_agency = !c.mine && call.role() == Role::Supervisor;
        let mut cases = Vec::new();
        let mut next = None;
        let mut below = c.before;
        'pages: loop {
            // Candidates from the directory, which may lag the log (PostgreSQL holds
            // back commits behind an older open transaction), a page's worth at a time…
            let candidates: Vec<(Position, Summary)> = {
                let view = self.directory.view().await?;
                view.newest_first_for(
                    call.subject(),
                    call.agency(),
                    whole_agency,
                    below,
                    c.size + 1,
                )
                .into_iter()
                .map(|(p, s)| (p, s.clone()))
                .collect()
            };
            let Some((last, _)) = candidates.last() else {
                break;
            };
            below = Some(*last);
            // …each decided again on its team as the case's own streams say now, so a
            // removal takes effect on the member's very next list.
            for (position, s) in candidates {
                if c.stage.is_some_and(|stage| s.stage != stage)
                    || c.risk.is_some_and(|risk| s.risk != risk)
                {
                    continue;
                }
                let team = call
                    .trust_teams()
                    .current(s.case_id)
                    .await
                    .map_err(ApiError::from)?;
                let d = call.decide_for(
                    team.as_ref(),
                    Action::Read(Compartment::CaseCore),
                    Entry::default(),
                );
                if !works_on(&d) {
                    continue;
                }
                if cases.len() == c.size {
                    next = Some(position);
                    break 'pages;
                }
                cases.push((
                    position,
                    CaseSummary {
                        case_id: s.case_id.to_string(),
                        pseudonym: s.pseudonym.clone(),
                        stage: s.stage as i32,
                        risk_level: s.risk as i32,
                        opened_at: Some(timestamp(s.opened_at)),
                        closure_pending: s.closure_pending,
                    },
                ));
            }
        }
        call.returned(cases.iter().map(|(_, c)| c.case_id.clone()));
        // The next page starts below the last case of this one.
        let next_page_token = next
            .and(cases.last().map(|(p, _)| p.to_string()))
            .unwrap_or_default();
        Ok(Response::new(ListCasesResponse {
            cases: cases.into_iter().map(|(_, c)| c).collect(),
            next_page_token,
        }))
    }

    async fn get_linked_cases(
        &self,
        request: Request<GetLinkedCasesRequest>,
    ) -> Result<Response<GetLinkedCasesResponse>, Status> {
        let call = Call::of(&request)?;
        let GetLinkedCases { case_id } = GetLinkedCases::try_from(request.into_inner())?;
        call.case(case_id, Action::Read(Compartment::Investigation))
            .await?;
        let records: Vec<LinkRecord> = self
            .directory
            .view()
            .await?
            .links_of(case_id)
            .into_iter()
            .cloned()
            .collect();
        let mut links = Vec::new();
        let mut visible = Vec::new();
        for l in records {
            let outgoing = l.from == case_id;
            let other = if outgoing { l.to } else { l.from };
            let sees_other = self.may_see(&call, other).await?;
            if sees_other {
                visible.push(other);
            }
            let mut link = CaseLink {
                link_id: l.link_id.clone(),
                other_case_visible: sees_other,
                outgoing,
                ..CaseLink::default()
            };
            if sees_other {
                link.other_case_id = other.to_string();
            }
            // A link made from this case is this case's record; one made from a case
            // the caller cannot see is the other case's, of which they learn only that
            // it exists.
            if outgoing || sees_other {
                link.kind = l.kind;
                link.linked_at = Some(timestamp(l.linked_at));
                link.linked_by_agency = l.agency.clone();
            }
            if outgoing {
                link.reason = open(&call, case_id, &l.reason_sealed).await?;
            }
            links.push(link);
        }
        call.returned(visible);
        Ok(Response::new(GetLinkedCasesResponse { links }))
    }

    async fn get_timeline(
        &self,
        request: Request<GetTimelineRequest>,
    ) -> Result<Response<GetTimelineResponse>, Status> {
        let call = Call::of(&request)?;
        let GetTimeline {
            case_id,
            size,
            after,
        } = GetTimeline::try_from(request.into_inner())?;
        let access = call
            .case(case_id, Action::Read(Compartment::CaseCore))
            .await?;
        let events = call
            .log()
            .read_case_events(case_id, after.unwrap_or(Position::START), size)
            .await
            .map_err(|e| match e {
                // A decimal token that is no position of this log (another backend's,
                // or made up): the caller's token is at fault, not a field they never
                // sent.
                caseline_eventlog::Error::InvalidInput { .. } if after.is_some() => {
                    ApiError::InvalidArgument(vec![caseline_server::FieldViolation::new(
                        "page_token",
                        "must be a next_page_token from a previous answer",
                    )])
                }
                e => ApiError::from(e),
            })?;
        let mut items = Vec::with_capacity(events.len());
        for event in &events {
            if let Some(item) = Item::of(event).map_err(ApiError::from)? {
                let sight = call
                    .decide_for(
                        Some(&access.team),
                        Action::Read(item.compartment()),
                        item.entry(),
                    )
                    .sight;
                if sight != Sight::None {
                    items.push((item, sight));
                }
            }
        }
        // Links show the other case only to those who may see it.
        let others: HashSet<Uuid> = items
            .iter()
            .filter(|(_, s)| *s == Sight::Full)
            .filter_map(|(i, _)| i.other_case())
            .collect();
        let mut visible_cases = HashSet::new();
        for other in others {
            if self.may_see(&call, other).await? {
                visible_cases.insert(other);
            }
        }
        let identity = reads_in_full(&call, &access.team, Compartment::ChildIdentity);
        let ctx = Render {
            vault: call.vault(),
            case_id,
            identity,
            visible_cases: &visible_cases,
            contacts: reads_in_full(&call, &access.team, Compartment::HelplineContacts),
        };
        let mut entries = Vec::with_capacity(items.len());
        let mut bytes = 0;
        let mut cut_after = None;
        for (item, sight) in &items {
            let entry = item.render(*sight, &ctx).await.map_err(vault_error)?;
            bytes += entry.encoded_len();
            if bytes > TIMELINE_PAGE_BYTES && !entries.is_empty() {
                // The page ends before this entry; the next starts with it.
                cut_after = entries
                    .last()
                    .map(|e: &caseline_proto::v1::TimelineEntry| e.position.clone());
                break;
            }
            entries.push(entry);
        }
        call.returned(visible_cases.iter());
        let next_page_token = match cut_after {
            Some(position) => position,
            None if events.len() == size => events
                .last()
                .map(|e| e.position.to_string())
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(Response::new(GetTimelineResponse {
            entries,
            next_page_token,
        }))
    }
}
