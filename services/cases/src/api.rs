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
    AddNoteRequest, AddTeamMemberRequest, CallerKind, Case, CaseCommandResponse, CaseLink,
    CaseSource, CaseSummary, ChangeStageRequest, ChildIdentity, ConcernCategory, ContactChannel,
    DecideClosureRequest, GetCaseRequest, GetLinkedCasesRequest, GetLinkedCasesResponse,
    GetTimelineRequest, GetTimelineResponse, LinkCasesRequest, LinkKind, ListCasesRequest,
    ListCasesResponse, MilestoneKind, NoteCompartment, OpenCaseRequest, OpenCaseResponse,
    RecordContactRequest, RecordContactResponse, RecordJusticeMilestoneRequest,
    RecordRiskAssessmentRequest, RemoveTeamMemberRequest, ReopenCaseRequest, RequestClosureRequest,
    RiskLevel, Stage, TeamMember, UnlinkCasesRequest, Urgency, Visibility,
};
use caseline_server::ApiError;
use caseline_timeline::{Item, Render, note_compartment, timestamp};
use caseline_trust::{Call, vault_error};

use crate::contacts;
use crate::directory::{Directory, LinkRecord, Summary};
use caseline_aggregate::{Done, Gate, Intent, Request as Asked, Store};
use caseline_case::Loaded;
use caseline_case::domain::{Actor, Command, Opening};
use caseline_server::validate::{Check, MAX_LABEL_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS};
use caseline_trust::request::new_aggregate_id;

/// How many concern categories there are (`ConcernCategory` without `UNSPECIFIED`).
const CONCERN_CATEGORIES: usize = 7;
/// Default and largest page of `ListCases`.
const LIST_PAGE: (u32, u32) = (50, 500);
/// Default and largest page of `GetTimeline`.
const TIMELINE_PAGE: (u32, u32) = (500, 1000);
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

/// The case, request and expected version of a command on a case.
struct Target {
    case_id: Uuid,
    request_id: Uuid,
    expected: Option<u64>,
    /// The request as received, for its fingerprint.
    encoded: Vec<u8>,
}

impl Target {
    /// The request's identity, once the caller may act on the case (the fingerprint
    /// uses the case's key, which must not be made for a case that does not exist).
    async fn request(&self, call: &Call) -> Result<Asked, ApiError> {
        call.request(self.case_id, self.request_id, &self.encoded)
            .await
    }
}

fn target(
    check: &mut Check,
    case_id: &str,
    request_id: &str,
    expected: Option<u64>,
    message: &impl Message,
) -> Target {
    Target {
        case_id: check.uuid("case_id", case_id),
        request_id: check.uuid("request_id", request_id),
        expected,
        encoded: message.encode_to_vec(),
    }
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

/// Concern categories: at least one, each known, none twice.
fn concerns(check: &mut Check, field: &str, values: &[i32]) {
    if values.is_empty() {
        check.fail(field, "name at least one concern category");
        return;
    }
    // More than there are categories must repeat one.
    if !check.repeated(field, values.len(), CONCERN_CATEGORIES) {
        return;
    }
    let mut seen = HashSet::new();
    for v in values {
        let _: ConcernCategory = check.known(field, *v);
        if !seen.insert(*v) {
            check.fail(field, "must not repeat a category");
            return;
        }
    }
}

/// An open stage to move or reopen into.
fn open_stage(check: &mut Check, value: i32) -> Stage {
    let stage: Stage = check.known("stage", value);
    if stage == Stage::Closed {
        check.fail(
            "stage",
            "must be an open stage (closing needs RequestClosure)",
        );
    }
    stage
}

impl CaseApi {
    /// Runs a command on the target case (already authorised).
    async fn run(
        &self,
        call: &Call,
        t: &Target,
        request: &Asked,
        action: Action,
        loaded: Option<Loaded>,
        command: Command,
    ) -> Result<Done, ApiError> {
        self.cases
            .execute(
                Intent {
                    id: t.case_id,
                    request,
                    expected: t.expected,
                    metadata: call.event_metadata(Some(t.case_id), None),
                },
                loaded,
                command,
                &OnTheTeam { call, action },
            )
            .await
    }

    /// The common path of a command on a case: authorise `action`, identify the
    /// request, let `build` seal and make the command (and the id of what it creates),
    /// run it on the state authorised, and answer with the case's new version.
    async fn apply(
        &self,
        call: &Call,
        t: &Target,
        action: Action,
        build: impl AsyncFnOnce(&Asked) -> Result<(Command, Option<Uuid>), ApiError>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let loaded = self.authorise(call, t, action).await?;
        let request = t.request(call).await?;
        let (command, entry) = build(&request).await?;
        let done = self.run(call, t, &request, action, loaded, command).await?;
        Ok(answer(t.case_id, done, entry))
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
        let loaded = self.cases.load(t.case_id).await?;
        let team = loaded.version.map(|_| loaded.team());
        let decision = call.decide_for(team.as_ref(), action, Entry::default());
        if decision.is_allowed() {
            call.enforce(t.case_id, decision)?;
            return Ok(Some(loaded));
        }
        call.case(t.case_id, action).await?;
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
        let r = request.into_inner();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let _: ContactChannel = check.known("channel", r.channel);
        let _: CallerKind = check.known("caller_kind", r.caller_kind);
        concerns(&mut check, "concerns", &r.concerns);
        let _: Urgency = check.known("urgency", r.urgency);
        check.text("summary", &r.summary, MAX_TEXT_CHARS, true);
        check.text("caller_name", &r.caller_name, MAX_LABEL_CHARS, false);
        check.text("caller_contact", &r.caller_contact, MAX_LABEL_CHARS, false);
        if r.anonymous && !(r.caller_name.is_empty() && r.caller_contact.is_empty()) {
            check.fail(
                "anonymous",
                "an anonymous contact has no caller name or contact details",
            );
        }
        check.done(())?;
        let contact_id = new_aggregate_id(&call, "contact", request_id);
        let request = call
            .request(contact_id, request_id, &r.encode_to_vec())
            .await?;
        let contact = ContactRecorded {
            channel: r.channel,
            caller_kind: r.caller_kind,
            concerns: r.concerns.clone(),
            urgency: r.urgency,
            anonymous: r.anonymous,
            summary_sealed: seal(&call, contact_id, &r.summary).await?,
            caller_name_sealed: seal(&call, contact_id, &r.caller_name).await?,
            caller_contact_sealed: seal(&call, contact_id, &r.caller_contact).await?,
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
        let r = request.into_inner();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let contact_id = check.optional_uuid("contact_id", &r.contact_id);
        check.text("pseudonym", &r.pseudonym, 100, true);
        let identity = r.identity.clone().unwrap_or_default();
        check.text("identity.name", &identity.name, MAX_LABEL_CHARS, false);
        check.date_of_birth(
            "identity.date_of_birth",
            &identity.date_of_birth,
            call.now(),
        );
        check.text(
            "identity.contact_details",
            &identity.contact_details,
            MAX_LABEL_CHARS,
            false,
        );
        let _: caseline_proto::v1::AgeBand = check.known("age_band", r.age_band);
        let _: caseline_proto::v1::Gender = check.known("gender", r.gender);
        if r.language.len() > 35
            || !r
                .language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            check.fail("language", "must be a BCP 47 tag such as en or sw-KE");
        }
        check.text("region", &r.region, MAX_LABEL_CHARS, false);
        let _: CaseSource = check.known("source", r.source);
        concerns(&mut check, "concerns", &r.concerns);
        let _: RiskLevel = check.known("initial_risk", r.initial_risk);
        check.done(())?;

        let case_id = new_aggregate_id(&call, "case", request_id);
        let request = call
            .request(case_id, request_id, &r.encode_to_vec())
            .await?;
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
            pseudonym: r.pseudonym.trim().to_owned(),
            name_sealed: seal(&call, case_id, &identity.name).await?,
            date_of_birth_sealed: seal(&call, case_id, &identity.date_of_birth).await?,
            contact_details_sealed: seal(&call, case_id, &identity.contact_details).await?,
            age_band: r.age_band,
            gender: r.gender,
            language: r.language.clone(),
            region_sealed: seal(&call, case_id, &r.region).await?,
            source: r.source,
            concerns: r.concerns.clone(),
            initial_risk: r.initial_risk,
            contact_id: contact_id.map(|c| c.to_string()).unwrap_or_default(),
        };
        // Claimed last, once everything else is sealed: a key store failing above
        // leaves the contact free.
        let contact = match contact_id {
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
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let _: RiskLevel = check.known("level", r.level);
        check.text("factors", &r.factors, MAX_TEXT_CHARS, false);
        check.text(
            "immediate_actions",
            &r.immediate_actions,
            MAX_TEXT_CHARS,
            false,
        );
        check.done(())?;
        let action = Action::Manage(Operation::RecordRiskAssessment);
        self.apply(&call, &t, action, async |_| {
            let command = Command::AssessRisk(RiskAssessed {
                level: r.level,
                factors_sealed: seal(&call, t.case_id, &r.factors).await?,
                immediate_actions_sealed: seal(&call, t.case_id, &r.immediate_actions).await?,
            });
            Ok((command, None))
        })
        .await
    }

    async fn add_team_member(
        &self,
        request: Request<AddTeamMemberRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.id_label("subject", &r.subject);
        check.id_label("agency", &r.agency);
        match r.role.parse::<Role>() {
            Ok(role) if team_role(role) => {}
            Ok(_) => check.fail(
                "role",
                "auditors, complaints officers, data protection officers and admins are never on a case's team",
            ),
            Err(_) => check.fail("role", "must be a Caseline role name"),
        }
        check.done(())?;
        let action = Action::Manage(Operation::ManageTeam);
        self.apply(&call, &t, action, async |_| {
            if r.subject == call.subject() && r.agency == call.agency() {
                // Joining a team, or taking another role on it, is for someone else to
                // decide: otherwise a supervisor standing by agency, or a member holding
                // several roles, could widen their own access.
                return Err(ApiError::PermissionDenied(
                    "you may not add yourself to a case's team",
                ));
            }
            let command = Command::AddMember(TeamMemberAdded {
                subject: r.subject,
                agency: r.agency,
                role: r.role,
            });
            Ok((command, None))
        })
        .await
    }

    async fn remove_team_member(
        &self,
        request: Request<RemoveTeamMemberRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.id_label("subject", &r.subject);
        check.id_label("agency", &r.agency);
        check.done(())?;
        let action = Action::Manage(Operation::ManageTeam);
        self.apply(&call, &t, action, async |_| {
            let command = Command::RemoveMember(TeamMemberRemoved {
                subject: r.subject,
                agency: r.agency,
            });
            Ok((command, None))
        })
        .await
    }

    async fn add_note(
        &self,
        request: Request<AddNoteRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let _: NoteCompartment = check.known("compartment", r.compartment);
        check.text("text", &r.text, MAX_TEXT_CHARS, true);
        check.done(())?;
        let Some(compartment) = note_compartment(r.compartment) else {
            return Err(ApiError::Internal("note compartment checked above").into());
        };
        let action = Action::Write(compartment);
        self.apply(&call, &t, action, async |request| {
            let note_id = request.entry_id();
            let command = Command::AddNote(NoteAdded {
                note_id: note_id.to_string(),
                compartment: r.compartment,
                text_sealed: seal(&call, t.case_id, &r.text).await?,
            });
            Ok((command, Some(note_id)))
        })
        .await
    }

    async fn link_cases(
        &self,
        request: Request<LinkCasesRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let other = check.uuid("other_case_id", &r.other_case_id);
        let _: LinkKind = check.known("kind", r.kind);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(())?;
        let action = Action::Write(Compartment::Investigation);
        self.authorise(&call, &t, action).await?;
        let request = t.request(&call).await?;
        if other != t.case_id {
            // The other case must be one the caller may see; else it does not exist.
            call.case(other, Action::Read(Compartment::CaseCore))
                .await?;
        }
        let link_id = request.entry_id();
        let command = Command::Link {
            case_id: t.case_id,
            other_case_id: other,
            link_id,
            kind: r.kind,
            reason_sealed: seal(&call, t.case_id, &r.reason).await?,
        };
        let _linking = self.linking.lock().await;
        // Read under the lock. A retry gets its first answer, whatever was linked since.
        let loaded = self.cases.load(t.case_id).await?;
        if let Some(done) = self.cases.answered(&loaded, t.case_id, &request).await? {
            return Ok(answer(t.case_id, done, Some(link_id)));
        }
        // A link made from the other side already links the two. Read from the other
        // case's own stream, which holds every committed link (the directory may lag).
        if other != t.case_id
            && self
                .cases
                .load(other)
                .await?
                .state
                .links
                .contains_key(&t.case_id)
        {
            return Err(ApiError::FailedPrecondition("the cases are already linked".into()).into());
        }
        let done = self
            .run(&call, &t, &request, action, Some(loaded), command)
            .await?;
        Ok(answer(t.case_id, done, Some(link_id)))
    }

    async fn unlink_cases(
        &self,
        request: Request<UnlinkCasesRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let other = check.uuid("other_case_id", &r.other_case_id);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(())?;
        let action = Action::Write(Compartment::Investigation);
        self.apply(&call, &t, action, async |_| {
            // As for linking: a case the caller may not see does not exist, so an
            // unlink never confirms a guessed id.
            call.case(other, Action::Read(Compartment::CaseCore))
                .await?;
            let command = Command::Unlink {
                other_case_id: other,
                reason_sealed: seal(&call, t.case_id, &r.reason).await?,
            };
            Ok((command, None))
        })
        .await
    }

    async fn change_stage(
        &self,
        request: Request<ChangeStageRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let stage = open_stage(&mut check, r.stage);
        check.text("reason", &r.reason, MAX_REASON_CHARS, false);
        check.done(())?;
        let action = Action::Manage(Operation::ChangeStage);
        self.apply(&call, &t, action, async |_| {
            let command = Command::ChangeStage {
                to: stage,
                reason_sealed: seal(&call, t.case_id, &r.reason).await?,
            };
            Ok((command, None))
        })
        .await
    }

    async fn request_closure(
        &self,
        request: Request<RequestClosureRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(())?;
        let action = Action::Manage(Operation::RequestClosure);
        self.apply(&call, &t, action, async |_| {
            let command = Command::RequestClosure {
                by: actor(&call),
                reason_sealed: seal(&call, t.case_id, &r.reason).await?,
            };
            Ok((command, None))
        })
        .await
    }

    async fn decide_closure(
        &self,
        request: Request<DecideClosureRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("comment", &r.comment, MAX_REASON_CHARS, !r.approve);
        check.done(())?;
        let action = Action::Manage(Operation::DecideClosure);
        self.apply(&call, &t, action, async |_| {
            let command = Command::DecideClosure {
                by: actor(&call),
                approve: r.approve,
                comment_sealed: seal(&call, t.case_id, &r.comment).await?,
            };
            Ok((command, None))
        })
        .await
    }

    async fn reopen_case(
        &self,
        request: Request<ReopenCaseRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let stage = open_stage(&mut check, r.stage);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(())?;
        let action = Action::Manage(Operation::Reopen);
        self.apply(&call, &t, action, async |_| {
            let command = Command::Reopen {
                stage,
                reason_sealed: seal(&call, t.case_id, &r.reason).await?,
            };
            Ok((command, None))
        })
        .await
    }

    async fn record_justice_milestone(
        &self,
        request: Request<RecordJusticeMilestoneRequest>,
    ) -> Result<Response<CaseCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let now = call.now();
        let mut check = Check::new();
        let t = target(
            &mut check,
            &r.case_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let _: MilestoneKind = check.known("kind", r.kind);
        let occurred = check.past("occurred_at", r.occurred_at.as_ref(), now);
        check.text("description", &r.description, MAX_TEXT_CHARS, false);
        let informed = if r.child_informed {
            Some(check.past("child_informed_at", r.child_informed_at.as_ref(), now))
        } else {
            if r.child_informed_at.is_some() {
                check.fail(
                    "child_informed_at",
                    "must be empty unless child_informed is true",
                );
            }
            None
        };
        check.done(())?;
        let action = Action::Write(Compartment::JusticeMilestones);
        self.apply(&call, &t, action, async |request| {
            let milestone_id = request.entry_id();
            let command = Command::RecordMilestone(JusticeMilestoneRecorded {
                milestone_id: milestone_id.to_string(),
                kind: r.kind,
                occurred_at_unix_ms: caseline_policy::teams::to_unix_ms(occurred),
                description_sealed: seal(&call, t.case_id, &r.description).await?,
                child_informed: r.child_informed,
                child_informed_at_unix_ms: informed.map_or(0, caseline_policy::teams::to_unix_ms),
            });
            Ok((command, Some(milestone_id)))
        })
        .await
    }

    async fn get_case(&self, request: Request<GetCaseRequest>) -> Result<Response<Case>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        check.done(())?;
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
        let r = request.into_inner();
        let mut check = Check::new();
        let stage = Stage::try_from(r.stage).unwrap_or_else(|_| {
            check.fail("stage", "is not a known value");
            Stage::Unspecified
        });
        let risk = RiskLevel::try_from(r.risk_level).unwrap_or_else(|_| {
            check.fail("risk_level", "is not a known value");
            RiskLevel::Unspecified
        });
        let size = check.page_size(r.page_size, LIST_PAGE);
        let before = check.page_token(&r.page_token);
        check.done(())?;
        let works_on = |d: &Decision| {
            d.is_allowed()
                && match d.via {
                    Via::Team => true,
                    Via::AgencySupervisor | Via::BreakGlass { .. } => !r.mine,
                    _ => false,
                }
        };
        // Candidates from the directory, which may lag the log (PostgreSQL holds back
        // commits behind an older open transaction)…
        let candidates: Vec<(Position, Summary)> = {
            let view = self.directory.view().await?;
            view.newest_first(before)
                .filter(|(_, s)| {
                    (stage == Stage::Unspecified || s.stage == stage)
                        && (risk == RiskLevel::Unspecified || s.risk == risk)
                        && works_on(&call.decide_for(
                            Some(&s.team),
                            Action::Read(Compartment::CaseCore),
                            Entry::default(),
                        ))
                })
                .map(|(p, s)| (p, s.clone()))
                .collect()
        };
        // …each decided again on its team as the case's own streams say now, so a
        // removal takes effect on the member's very next list.
        let mut cases = Vec::new();
        let mut next = None;
        for (position, s) in candidates {
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
            if cases.len() == size {
                next = Some(position);
                break;
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
        let r = request.into_inner();
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        check.done(())?;
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
        let r = request.into_inner();
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        let size = check.page_size(r.page_size, TIMELINE_PAGE);
        let after = check.page_token(&r.page_token);
        check.done(())?;
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

/// Roles a case's team may hold.
fn team_role(role: Role) -> bool {
    matches!(
        role,
        Role::HelplineCounsellor
            | Role::SocialWorker
            | Role::PoliceInvestigator
            | Role::Prosecutor
            | Role::HealthWorker
            | Role::VictimAdvocate
            | Role::Supervisor
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_of_concern_categories_follows_the_proto() {
        let last = i32::try_from(CONCERN_CATEGORIES).unwrap_or(i32::MAX);
        assert!(ConcernCategory::try_from(last).is_ok());
        assert!(ConcernCategory::try_from(last + 1).is_err());
    }
}
