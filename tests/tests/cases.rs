//! CaseService on a whole all-in-one server: the visibility table per role, NOT_FOUND
//! for cases the caller is not on, field-naming refusals, concurrency, idempotency, the
//! domain's rules, links, lists and team removal — real gRPC, real tokens, a real
//! SQLite log.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_e2e::check::{contains, expect_err, fields_of, last_global_access, shape};
use caseline_e2e::requests::{
    CALLER_NAME, CHILD_NAME, CONTACT_SUMMARY, add_member_request, contact_request, opening,
};
use caseline_e2e::{TestServer, User, authed, rid, ts};
use caseline_eventlog::{Direction, StreamName, Uuid};
use caseline_policy::table::{Scope as CellScope, cell_for};
use caseline_policy::{Compartment, Sight};
use caseline_proto::prost::Message;
use caseline_proto::prost_types::{FileDescriptorSet, Timestamp};
use caseline_proto::tonic::transport::Channel;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::timeline_entry::Detail;
use caseline_proto::v1::{
    AddNoteRequest, AddTeamMemberRequest, Case, CaseCommandResponse, CaseLink, ChangeStageRequest,
    ChildIdentity, DecideClosureRequest, GetCaseRequest, GetLinkedCasesRequest, GetTimelineRequest,
    LinkCasesRequest, LinkKind, ListCasesRequest, ListCasesResponse, MilestoneKind,
    NoteCompartment, OpenCaseRequest, OpenCaseResponse, RecordContactRequest,
    RecordJusticeMilestoneRequest, RecordRiskAssessmentRequest, RemoveTeamMemberRequest,
    ReopenCaseRequest, RequestClosureRequest, RiskLevel, Stage, TimelineEntry, UnlinkCasesRequest,
    Urgency, Visibility,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

type Client = CaseServiceClient<Channel>;

async fn client(server: &TestServer) -> Client {
    CaseServiceClient::new(server.channel().await)
}

fn yesterday() -> Timestamp {
    ts(SystemTime::now() - Duration::from_secs(24 * 3600))
}

/// A contact recorded by a helpline counsellor, with a named caller.
async fn record_contact(c: &mut Client, by: &User) -> String {
    c.record_contact(authed(contact_request(rid()), &by.token))
        .await
        .unwrap()
        .into_inner()
        .contact_id
}

async fn open_case(c: &mut Client, by: &User, request: OpenCaseRequest) -> OpenCaseResponse {
    c.open_case(authed(request, &by.token))
        .await
        .unwrap()
        .into_inner()
}

/// Opens a case with no contact and returns its id.
async fn new_case(c: &mut Client, by: &User, pseudonym: &str, risk: RiskLevel) -> String {
    open_case(c, by, opening(pseudonym, "", risk)).await.case_id
}

async fn add_member(
    c: &mut Client,
    by: &User,
    case_id: &str,
    who: &User,
) -> Result<CaseCommandResponse, Status> {
    c.add_team_member(authed(add_member_request(case_id, who), &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn remove_member(
    c: &mut Client,
    by: &User,
    case_id: &str,
    who: &User,
) -> Result<CaseCommandResponse, Status> {
    c.remove_team_member(authed(
        RemoveTeamMemberRequest {
            case_id: case_id.into(),
            request_id: rid(),
            expected_version: None,
            subject: who.sub.clone(),
            agency: who.agency.clone(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

fn note_request(case_id: &str, compartment: NoteCompartment, text: &str) -> AddNoteRequest {
    AddNoteRequest {
        case_id: case_id.into(),
        request_id: rid(),
        expected_version: None,
        compartment: compartment as i32,
        text: text.into(),
    }
}

async fn add_note(
    c: &mut Client,
    by: &User,
    case_id: &str,
    compartment: NoteCompartment,
    text: &str,
) -> Result<CaseCommandResponse, Status> {
    c.add_note(authed(note_request(case_id, compartment, text), &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn assess_risk(
    c: &mut Client,
    by: &User,
    case_id: &str,
    level: RiskLevel,
) -> Result<CaseCommandResponse, Status> {
    c.record_risk_assessment(authed(
        RecordRiskAssessmentRequest {
            case_id: case_id.into(),
            request_id: rid(),
            expected_version: None,
            level: level as i32,
            factors: "contact with an unknown adult online".into(),
            immediate_actions: "safety plan agreed with the aunt".into(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

async fn link(
    c: &mut Client,
    by: &User,
    case_id: &str,
    other: &str,
) -> Result<CaseCommandResponse, Status> {
    c.link_cases(authed(link_request(case_id, other), &by.token))
        .await
        .map(|r| r.into_inner())
}

fn link_request(case_id: &str, other: &str) -> LinkCasesRequest {
    LinkCasesRequest {
        case_id: case_id.into(),
        request_id: rid(),
        expected_version: None,
        other_case_id: other.into(),
        kind: LinkKind::SameSuspect as i32,
        reason: "the same online account groomed both children".into(),
    }
}

fn milestone_request(case_id: &str, kind: MilestoneKind) -> RecordJusticeMilestoneRequest {
    RecordJusticeMilestoneRequest {
        case_id: case_id.into(),
        request_id: rid(),
        expected_version: None,
        kind: kind as i32,
        occurred_at: Some(yesterday()),
        description: "reported at the central police station".into(),
        child_informed: true,
        child_informed_at: Some(yesterday()),
    }
}

async fn milestone(
    c: &mut Client,
    by: &User,
    case_id: &str,
    kind: MilestoneKind,
) -> Result<CaseCommandResponse, Status> {
    c.record_justice_milestone(authed(milestone_request(case_id, kind), &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn change_stage(
    c: &mut Client,
    by: &User,
    case_id: &str,
    stage: Stage,
) -> Result<CaseCommandResponse, Status> {
    c.change_stage(authed(
        ChangeStageRequest {
            case_id: case_id.into(),
            request_id: rid(),
            expected_version: None,
            stage: stage as i32,
            reason: "the police opened an investigation".into(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

async fn request_closure(
    c: &mut Client,
    by: &User,
    case_id: &str,
) -> Result<CaseCommandResponse, Status> {
    c.request_closure(authed(
        RequestClosureRequest {
            case_id: case_id.into(),
            request_id: rid(),
            expected_version: None,
            reason: "support plan completed".into(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

async fn decide_closure(
    c: &mut Client,
    by: &User,
    case_id: &str,
    approve: bool,
) -> Result<CaseCommandResponse, Status> {
    c.decide_closure(authed(
        DecideClosureRequest {
            case_id: case_id.into(),
            request_id: rid(),
            expected_version: None,
            approve,
            comment: if approve {
                String::new()
            } else {
                "the trial has not happened yet".into()
            },
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

async fn reopen(
    c: &mut Client,
    by: &User,
    case_id: &str,
    stage: Stage,
) -> Result<CaseCommandResponse, Status> {
    c.reopen_case(authed(
        ReopenCaseRequest {
            case_id: case_id.into(),
            request_id: rid(),
            expected_version: None,
            stage: stage as i32,
            reason: "new disclosure by the child".into(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

async fn get_case(c: &mut Client, by: &User, case_id: &str) -> Result<Case, Status> {
    c.get_case(authed(
        GetCaseRequest {
            case_id: case_id.into(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner())
}

async fn version_of(c: &mut Client, by: &User, case_id: &str) -> u64 {
    get_case(c, by, case_id).await.unwrap().version
}

async fn timeline(c: &mut Client, by: &User, case_id: &str) -> Result<Vec<TimelineEntry>, Status> {
    c.get_timeline(authed(
        GetTimelineRequest {
            case_id: case_id.into(),
            ..Default::default()
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner().entries)
}

/// The whole timeline, walked in pages of `page_size`.
async fn timeline_pages(
    c: &mut Client,
    by: &User,
    case_id: &str,
    page_size: u32,
) -> Vec<TimelineEntry> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = c
            .get_timeline(authed(
                GetTimelineRequest {
                    case_id: case_id.into(),
                    page_size,
                    page_token,
                },
                &by.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= page_size as usize);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
    panic!("the pages never end");
}

async fn linked(c: &mut Client, by: &User, case_id: &str) -> Result<Vec<CaseLink>, Status> {
    c.get_linked_cases(authed(
        GetLinkedCasesRequest {
            case_id: case_id.into(),
        },
        &by.token,
    ))
    .await
    .map(|r| r.into_inner().links)
}

async fn list(
    c: &mut Client,
    by: &User,
    request: ListCasesRequest,
) -> Result<ListCasesResponse, Status> {
    c.list_cases(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

/// The ids of one page of ListCases.
async fn list_ids(c: &mut Client, by: &User, request: ListCasesRequest) -> Vec<String> {
    list(c, by, request)
        .await
        .unwrap()
        .cases
        .into_iter()
        .map(|s| s.case_id)
        .collect()
}

/// What `role` sees of an entry of `compartment` written by CaseService. CaseService
/// writes no referrals and no support-plan goals, so scoped cells (health workers'
/// referrals "to them" and health goals) show its entries as their `otherwise`.
fn expected_sight(role: Role, compartment: Compartment) -> Sight {
    let cell = cell_for(role, compartment);
    match cell.scope {
        CellScope::All => cell.read,
        CellScope::AddressedToOwnAgency | CellScope::HealthGoals => cell.otherwise,
    }
}

fn compartment_named(name: &str) -> Compartment {
    Compartment::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
        .unwrap_or_else(|| panic!("unknown compartment {name:?}"))
}

fn visibility_of(sight: Sight) -> Option<Visibility> {
    match sight {
        Sight::None => None,
        Sight::Metadata => Some(Visibility::Metadata),
        Sight::Summary => Some(Visibility::Summary),
        Sight::Full => Some(Visibility::Full),
    }
}

/// One call of each of CaseService's 17 methods, to send with any token.
#[derive(Clone, Debug)]
enum Rpc {
    RecordContact(RecordContactRequest),
    OpenCase(OpenCaseRequest),
    RecordRiskAssessment(RecordRiskAssessmentRequest),
    AddTeamMember(AddTeamMemberRequest),
    RemoveTeamMember(RemoveTeamMemberRequest),
    AddNote(AddNoteRequest),
    LinkCases(LinkCasesRequest),
    UnlinkCases(UnlinkCasesRequest),
    ChangeStage(ChangeStageRequest),
    RequestClosure(RequestClosureRequest),
    DecideClosure(DecideClosureRequest),
    ReopenCase(ReopenCaseRequest),
    RecordJusticeMilestone(RecordJusticeMilestoneRequest),
    GetCase(GetCaseRequest),
    ListCases(ListCasesRequest),
    GetLinkedCases(GetLinkedCasesRequest),
    GetTimeline(GetTimelineRequest),
}

impl Rpc {
    /// Every method with an empty request.
    fn all_empty() -> Vec<Rpc> {
        vec![
            Rpc::RecordContact(Default::default()),
            Rpc::OpenCase(Default::default()),
            Rpc::RecordRiskAssessment(Default::default()),
            Rpc::AddTeamMember(Default::default()),
            Rpc::RemoveTeamMember(Default::default()),
            Rpc::AddNote(Default::default()),
            Rpc::LinkCases(Default::default()),
            Rpc::UnlinkCases(Default::default()),
            Rpc::ChangeStage(Default::default()),
            Rpc::RequestClosure(Default::default()),
            Rpc::DecideClosure(Default::default()),
            Rpc::ReopenCase(Default::default()),
            Rpc::RecordJusticeMilestone(Default::default()),
            Rpc::GetCase(Default::default()),
            Rpc::ListCases(Default::default()),
            Rpc::GetLinkedCases(Default::default()),
            Rpc::GetTimeline(Default::default()),
        ]
    }

    /// A valid request of every method that names a case, each with the role that
    /// could make it as a member of the case's team.
    fn naming_case(case_id: &str) -> Vec<(Role, Rpc)> {
        let id = || case_id.to_owned();
        vec![
            (
                Role::SocialWorker,
                Rpc::RecordRiskAssessment(RecordRiskAssessmentRequest {
                    case_id: id(),
                    request_id: rid(),
                    level: RiskLevel::High as i32,
                    ..Default::default()
                }),
            ),
            (
                Role::SocialWorker,
                Rpc::AddTeamMember(AddTeamMemberRequest {
                    case_id: id(),
                    request_id: rid(),
                    subject: "hw-9".into(),
                    agency: "health-north".into(),
                    role: "health_worker".into(),
                    ..Default::default()
                }),
            ),
            (
                Role::SocialWorker,
                Rpc::RemoveTeamMember(RemoveTeamMemberRequest {
                    case_id: id(),
                    request_id: rid(),
                    subject: "sw-1".into(),
                    agency: "social-north".into(),
                    ..Default::default()
                }),
            ),
            (
                Role::PoliceInvestigator,
                Rpc::AddNote(note_request(
                    case_id,
                    NoteCompartment::Investigation,
                    "suspect identified",
                )),
            ),
            (
                Role::PoliceInvestigator,
                Rpc::LinkCases(link_request(case_id, &Uuid::new_v4().to_string())),
            ),
            (
                Role::PoliceInvestigator,
                Rpc::UnlinkCases(UnlinkCasesRequest {
                    case_id: id(),
                    request_id: rid(),
                    other_case_id: Uuid::new_v4().to_string(),
                    reason: "linked by mistake".into(),
                    ..Default::default()
                }),
            ),
            (
                Role::SocialWorker,
                Rpc::ChangeStage(ChangeStageRequest {
                    case_id: id(),
                    request_id: rid(),
                    stage: Stage::Investigation as i32,
                    ..Default::default()
                }),
            ),
            (
                Role::SocialWorker,
                Rpc::RequestClosure(RequestClosureRequest {
                    case_id: id(),
                    request_id: rid(),
                    reason: "support completed".into(),
                    ..Default::default()
                }),
            ),
            (
                Role::Supervisor,
                Rpc::DecideClosure(DecideClosureRequest {
                    case_id: id(),
                    request_id: rid(),
                    approve: true,
                    ..Default::default()
                }),
            ),
            (
                Role::Supervisor,
                Rpc::ReopenCase(ReopenCaseRequest {
                    case_id: id(),
                    request_id: rid(),
                    stage: Stage::Aftercare as i32,
                    reason: "new disclosure".into(),
                    ..Default::default()
                }),
            ),
            (
                Role::Prosecutor,
                Rpc::RecordJusticeMilestone(milestone_request(case_id, MilestoneKind::Report)),
            ),
            (
                Role::SocialWorker,
                Rpc::GetCase(GetCaseRequest { case_id: id() }),
            ),
            (
                Role::PoliceInvestigator,
                Rpc::GetLinkedCases(GetLinkedCasesRequest { case_id: id() }),
            ),
            (
                Role::SocialWorker,
                Rpc::GetTimeline(GetTimelineRequest {
                    case_id: id(),
                    ..Default::default()
                }),
            ),
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Rpc::RecordContact(_) => "RecordContact",
            Rpc::OpenCase(_) => "OpenCase",
            Rpc::RecordRiskAssessment(_) => "RecordRiskAssessment",
            Rpc::AddTeamMember(_) => "AddTeamMember",
            Rpc::RemoveTeamMember(_) => "RemoveTeamMember",
            Rpc::AddNote(_) => "AddNote",
            Rpc::LinkCases(_) => "LinkCases",
            Rpc::UnlinkCases(_) => "UnlinkCases",
            Rpc::ChangeStage(_) => "ChangeStage",
            Rpc::RequestClosure(_) => "RequestClosure",
            Rpc::DecideClosure(_) => "DecideClosure",
            Rpc::ReopenCase(_) => "ReopenCase",
            Rpc::RecordJusticeMilestone(_) => "RecordJusticeMilestone",
            Rpc::GetCase(_) => "GetCase",
            Rpc::ListCases(_) => "ListCases",
            Rpc::GetLinkedCases(_) => "GetLinkedCases",
            Rpc::GetTimeline(_) => "GetTimeline",
        }
    }

    /// Sends the call; the answer's content is not needed, only whether and how it
    /// failed.
    async fn send(self, c: &mut Client, token: &str) -> Result<(), Status> {
        macro_rules! call {
            ($method:ident, $request:expr) => {
                c.$method(authed($request, token)).await.map(|_| ())
            };
        }
        match self {
            Rpc::RecordContact(r) => call!(record_contact, r),
            Rpc::OpenCase(r) => call!(open_case, r),
            Rpc::RecordRiskAssessment(r) => call!(record_risk_assessment, r),
            Rpc::AddTeamMember(r) => call!(add_team_member, r),
            Rpc::RemoveTeamMember(r) => call!(remove_team_member, r),
            Rpc::AddNote(r) => call!(add_note, r),
            Rpc::LinkCases(r) => call!(link_cases, r),
            Rpc::UnlinkCases(r) => call!(unlink_cases, r),
            Rpc::ChangeStage(r) => call!(change_stage, r),
            Rpc::RequestClosure(r) => call!(request_closure, r),
            Rpc::DecideClosure(r) => call!(decide_closure, r),
            Rpc::ReopenCase(r) => call!(reopen_case, r),
            Rpc::RecordJusticeMilestone(r) => call!(record_justice_milestone, r),
            Rpc::GetCase(r) => call!(get_case, r),
            Rpc::ListCases(r) => call!(list_cases, r),
            Rpc::GetLinkedCases(r) => call!(get_linked_cases, r),
            Rpc::GetTimeline(r) => call!(get_timeline, r),
        }
    }
}

/// The methods of `caseline.v1.CaseService` as the published descriptor names them.
fn case_service_methods() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(caseline_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "caseline.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == "CaseService")
        .flat_map(|s| &s.method)
        .map(|m| m.name().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. The visibility table, per role, on a real server
// ---------------------------------------------------------------------------------------

/// Everyone of the fully seeded case.
struct Cast {
    counsellor: User,
    social: User,
    police: User,
    prosecutor: User,
    health: User,
    advocate: User,
    /// A supervisor of an agency on the team, not a member.
    supervisor: User,
    /// Not a member; sees the case core as a summary.
    complaints: User,
}

impl Cast {
    fn new(server: &TestServer) -> Self {
        Self {
            counsellor: User::new(server, "hc-1", Role::HelplineCounsellor, "helpline-central"),
            social: User::new(server, "sw-1", Role::SocialWorker, "social-north"),
            police: User::new(server, "pol-1", Role::PoliceInvestigator, "police-north"),
            prosecutor: User::new(server, "pr-1", Role::Prosecutor, "prosecution-north"),
            health: User::new(server, "hw-1", Role::HealthWorker, "health-north"),
            advocate: User::new(server, "va-1", Role::VictimAdvocate, "advocacy-north"),
            supervisor: User::new(server, "sup-1", Role::Supervisor, "social-north"),
            complaints: User::new(server, "co-1", Role::ComplaintsOfficer, "complaints-office"),
        }
    }

    fn everyone(&self) -> [&User; 8] {
        [
            &self.counsellor,
            &self.social,
            &self.police,
            &self.prosecutor,
            &self.health,
            &self.advocate,
            &self.supervisor,
            &self.complaints,
        ]
    }
}

/// The note each compartment's writer files, by note compartment.
const NOTES: [(NoteCompartment, &str); 5] = [
    (NoteCompartment::Helpline, "helpline: the child called back"),
    (NoteCompartment::Social, "social: home visit done"),
    (NoteCompartment::Investigation, "police: device seized"),
    (NoteCompartment::Legal, "legal: charge file prepared"),
    (NoteCompartment::Health, "health: examination booked"),
];

/// Seeds case A through the public API with an entry in every compartment CaseService
/// writes; returns (A, B, what happened to A in order as (kind, compartment)).
async fn seed_full_case(
    c: &mut Client,
    cast: &Cast,
) -> (String, String, Vec<(&'static str, Compartment)>) {
    use Compartment::*;
    let contact_id = record_contact(c, &cast.counsellor).await;
    let opened = open_case(
        c,
        &cast.counsellor,
        opening("Child A-17", &contact_id, RiskLevel::Medium),
    )
    .await;
    let a = opened.case_id;
    assert_eq!(opened.version, 2, "opened, first member, contact attached");
    let mut happened = vec![
        ("case_opened", CaseCore),
        ("team_member_added", CaseCore),
        ("contact_attached", HelplineContacts),
    ];

    assess_risk(c, &cast.counsellor, &a, RiskLevel::High)
        .await
        .unwrap();
    happened.push(("risk_assessed", CaseCore));
    for member in [
        &cast.social,
        &cast.police,
        &cast.prosecutor,
        &cast.health,
        &cast.advocate,
    ] {
        add_member(c, &cast.counsellor, &a, member).await.unwrap();
        happened.push(("team_member_added", CaseCore));
    }

    let writers = [
        &cast.counsellor,
        &cast.social,
        &cast.police,
        &cast.prosecutor,
        &cast.health,
    ];
    let compartments = [
        HelplineContacts,
        SupportPlan,
        Investigation,
        JusticeMilestones,
        HealthNotes,
    ];
    for (((note, text), writer), compartment) in NOTES.into_iter().zip(writers).zip(compartments) {
        let done = add_note(c, writer, &a, note, text).await.unwrap();
        assert!(Uuid::parse_str(&done.entry_id).is_ok(), "{done:?}");
        happened.push(("note_added", compartment));
    }

    // Case B, opened by the police officer, who links A to it.
    let b = new_case(c, &cast.police, "Child B-3", RiskLevel::Low).await;
    link(c, &cast.police, &a, &b).await.unwrap();
    happened.push(("cases_linked", Investigation));

    milestone(c, &cast.prosecutor, &a, MilestoneKind::Report)
        .await
        .unwrap();
    happened.push(("justice_milestone_recorded", JusticeMilestones));
    (a, b, happened)
}

#[tokio::test]
async fn each_role_sees_each_entry_as_the_visibility_table_says() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let cast = Cast::new(&server);
    let (a, b, happened) = seed_full_case(&mut c, &cast).await;

    // Every compartment CaseService writes is on the case.
    let written: BTreeSet<Compartment> = happened.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        written,
        BTreeSet::from([
            Compartment::CaseCore,
            Compartment::HelplineContacts,
            Compartment::SupportPlan,
            Compartment::Investigation,
            Compartment::JusticeMilestones,
            Compartment::HealthNotes,
        ])
    );

    let mut event_ids: BTreeMap<String, (String, String)> = BTreeMap::new();
    for user in cast.everyone() {
        let who = format!("{} ({})", user.sub, user.role);
        let entries = timeline(&mut c, user, &a)
            .await
            .unwrap_or_else(|s| panic!("{who}: {s:?}"));

        // The entries shown, in order, are exactly those the table lets the role see.
        let expected: Vec<(&str, Compartment, Visibility)> = happened
            .iter()
            .filter_map(|(kind, compartment)| {
                visibility_of(expected_sight(user.role, *compartment))
                    .map(|v| (*kind, *compartment, v))
            })
            .collect();
        let got: Vec<(&str, Compartment, Visibility)> = entries
            .iter()
            .map(|e| {
                (
                    e.kind.as_str(),
                    compartment_named(&e.compartment),
                    e.visibility(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{who}");

        for e in &entries {
            assert!(
                e.recorded_at.is_some() && !e.agency.is_empty(),
                "{who}: {e:?}"
            );
            let seen = event_ids
                .entry(e.event_id.clone())
                .or_insert_with(|| (e.position.clone(), e.kind.clone()));
            assert_eq!(*seen, (e.position.clone(), e.kind.clone()), "{who}: {e:?}");
            match e.visibility() {
                Visibility::Full => {
                    assert!(e.detail.is_some(), "{who}: FULL without detail: {e:?}");
                    assert!(
                        !e.actor.is_empty() && !e.actor_role.is_empty(),
                        "{who}: {e:?}"
                    );
                }
                Visibility::Summary => {
                    assert!(e.detail.is_none(), "{who}: SUMMARY with detail: {e:?}");
                    assert!(
                        e.actor.is_empty() && e.actor_role.is_empty(),
                        "{who}: {e:?}"
                    );
                }
                other => panic!("{who}: unexpected visibility {other:?}"),
            }
            // Sealed content opened for FULL, and only for FULL.
            match &e.detail {
                Some(Detail::Note(n)) => {
                    let text = NOTES
                        .iter()
                        .find(|(nc, _)| *nc as i32 == n.compartment)
                        .map(|(_, t)| *t)
                        .unwrap();
                    assert_eq!(n.text, text, "{who}");
                    assert!(!n.erased);
                }
                Some(Detail::Contact(v)) => {
                    assert_eq!(
                        (v.summary.as_str(), v.caller_name.as_str()),
                        (CONTACT_SUMMARY, CALLER_NAME),
                        "{who}"
                    );
                    assert_eq!(e.actor, cast.counsellor.sub);
                }
                Some(Detail::CaseOpened(v)) => {
                    assert_eq!(v.pseudonym, "Child A-17");
                    let sees_identity =
                        cell_for(user.role, Compartment::ChildIdentity).read == Sight::Full;
                    assert_eq!(
                        v.identity.as_ref().map(|i| i.name.as_str()),
                        sees_identity.then_some(CHILD_NAME),
                        "{who}"
                    );
                }
                Some(Detail::Link(l)) => {
                    // Only the police officer, on both cases, may see B.
                    let sees_b = user.sub == cast.police.sub;
                    assert_eq!(l.other_case_visible, sees_b, "{who}: {l:?}");
                    assert_eq!(
                        l.other_case_id,
                        if sees_b { b.clone() } else { String::new() }
                    );
                    assert!(l.linked && !l.reason.is_empty());
                }
                _ => {}
            }
        }
        // Nothing sealed leaks in what the role may not read.
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode_to_vec()).collect();
        for (note, text) in NOTES {
            if expected_sight(user.role, note_compartment_of(note)) != Sight::Full {
                assert!(!contains(&bytes, text.as_bytes()), "{who} read {text:?}");
            }
        }
        if cell_for(user.role, Compartment::ChildIdentity).read != Sight::Full {
            assert!(!contains(&bytes, CHILD_NAME.as_bytes()), "{who}");
        }
    }

    // Pages of two walk the same entries, once each, for every role.
    for user in cast.everyone() {
        assert_eq!(
            timeline_pages(&mut c, user, &a, 2).await,
            timeline(&mut c, user, &a).await.unwrap(),
            "{}",
            user.sub
        );
    }

    // GetCase: the identity exactly for the roles whose ChildIdentity cell is Full; the
    // complaints officer sees a summary of the case core, no pseudonym, no identity.
    for user in cast.everyone() {
        let who = format!("{} ({})", user.sub, user.role);
        let case = get_case(&mut c, user, &a).await.unwrap();
        assert_eq!(case.case_id, a);
        assert!(case.opened_at.is_some() && case.version > 0, "{who}");
        assert_eq!(case.opened_by_agency, cast.counsellor.agency, "{who}");
        let core = expected_sight(user.role, Compartment::CaseCore);
        assert_eq!(Some(case.visibility()), visibility_of(core), "{who}");
        let identity = cell_for(user.role, Compartment::ChildIdentity).read == Sight::Full;
        assert_eq!(
            case.identity.as_ref().map(|i| i.name.as_str()),
            identity.then_some(CHILD_NAME),
            "{who}"
        );
        if core == Sight::Full {
            assert_eq!(case.pseudonym, "Child A-17", "{who}");
            assert_eq!(case.team.len(), 6, "{who}");
            assert_eq!(case.risk_level(), RiskLevel::High);
            assert_eq!(case.stage(), Stage::Intake);
        } else {
            assert!(
                case.pseudonym.is_empty()
                    && case.identity.is_none()
                    && case.team.is_empty()
                    && case.contact_id.is_empty()
                    && case.concerns.is_empty(),
                "{who}: a summary holds no content: {case:?}"
            );
        }
    }
    let complaints = get_case(&mut c, &cast.complaints, &a).await.unwrap();
    assert_eq!(complaints.visibility(), Visibility::Summary);

    // Auditors see metadata through AuditService; CaseService's gate refuses them.
    let auditor = User::new(&server, "aud-1", Role::Auditor, "oversight-board");
    expect_err(
        timeline(&mut c, &auditor, &a).await,
        Code::PermissionDenied,
        "auditor",
    );
    server.stop().await;
}

fn note_compartment_of(note: NoteCompartment) -> Compartment {
    match note {
        NoteCompartment::Helpline => Compartment::HelplineContacts,
        NoteCompartment::Social => Compartment::SupportPlan,
        NoteCompartment::Investigation => Compartment::Investigation,
        NoteCompartment::Legal => Compartment::JusticeMilestones,
        NoteCompartment::Health => Compartment::HealthNotes,
        NoteCompartment::Unspecified => panic!("no compartment"),
    }
}

// ---------------------------------------------------------------------------------------
// 2. A case the caller is not on is NOT_FOUND, exactly like an absent one
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_method_answers_not_found_for_a_case_the_caller_is_not_on() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    let case_id = new_case(&mut c, &social, "Child C-1", RiskLevel::Medium).await;
    add_member(&mut c, &social, &case_id, &police)
        .await
        .unwrap();
    let version = version_of(&mut c, &social, &case_id).await;

    let mut covered = BTreeSet::new();
    let real = Rpc::naming_case(&case_id);
    for (role, rpc) in real {
        let name = rpc.name();
        covered.insert(name.to_owned());
        // Someone in the role that could do it, of an agency not on the team.
        let outsider = User::new(&server, "out-1", role, "elsewhere");
        let hidden = expect_err(
            rpc.send(&mut c, &outsider.token).await,
            Code::NotFound,
            name,
        );
        let absent_id = Uuid::new_v4().to_string();
        let (_, absent_rpc) = Rpc::naming_case(&absent_id)
            .into_iter()
            .find(|(_, r)| r.name() == name)
            .unwrap();
        let absent = expect_err(
            absent_rpc.send(&mut c, &outsider.token).await,
            Code::NotFound,
            name,
        );
        assert_eq!(
            shape(&hidden, &case_id),
            shape(&absent, &absent_id),
            "{name}"
        );
        assert!(hidden.message().contains(&case_id), "{name}: {hidden:?}");
        assert!(hidden.details().is_empty() && absent.details().is_empty());
    }
    let expected: BTreeSet<String> = case_service_methods()
        .into_iter()
        .filter(|m| !["RecordContact", "OpenCase", "ListCases"].contains(&m.as_str()))
        .collect();
    assert_eq!(covered, expected, "every method naming a case");

    // LinkCases' other case: one the police officer cannot see reads as absent.
    let other_police = User::new(&server, "pol-2", Role::PoliceInvestigator, "police-south");
    let hidden_case = new_case(&mut c, &other_police, "Child D-4", RiskLevel::Low).await;
    let hidden = expect_err(
        link(&mut c, &police, &case_id, &hidden_case).await,
        Code::NotFound,
        "link to a hidden case",
    );
    let absent_id = Uuid::new_v4().to_string();
    let absent = expect_err(
        link(&mut c, &police, &case_id, &absent_id).await,
        Code::NotFound,
        "link to an absent case",
    );
    assert_eq!(shape(&hidden, &hidden_case), shape(&absent, &absent_id));

    // OpenCase from another agency's contact: as absent as a random one.
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );
    let other_counsellor = User::new(&server, "hc-2", Role::HelplineCounsellor, "helpline-east");
    let contact = record_contact(&mut c, &counsellor).await;
    let hidden = expect_err(
        c.open_case(authed(
            opening("Child E-5", &contact, RiskLevel::Low),
            &other_counsellor.token,
        ))
        .await,
        Code::NotFound,
        "another agency's contact",
    );
    let absent_id = Uuid::new_v4().to_string();
    let absent = expect_err(
        c.open_case(authed(
            opening("Child E-5", &absent_id, RiskLevel::Low),
            &other_counsellor.token,
        ))
        .await,
        Code::NotFound,
        "an absent contact",
    );
    assert_eq!(shape(&hidden, &contact), shape(&absent, &absent_id));

    // Nothing of all that changed the case.
    assert_eq!(version_of(&mut c, &social, &case_id).await, version);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. Empty and malformed requests name their field
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn empty_and_malformed_requests_name_the_field() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    // Helpline counsellors may call all 17 methods (RecordContact is theirs alone).
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );

    let empty = Rpc::all_empty();
    let names: BTreeSet<String> = empty.iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(
        names,
        case_service_methods(),
        "one empty request per method"
    );
    assert_eq!(names.len(), 17);
    for rpc in empty {
        let name = rpc.name();
        let answer = rpc.send(&mut c, &counsellor.token).await;
        if name == "ListCases" {
            assert!(answer.is_ok(), "an empty ListCases is valid: {answer:?}");
            continue;
        }
        let status = expect_err(answer, Code::InvalidArgument, name);
        let fields = fields_of(&status, name);
        assert!(fields.iter().all(|f| !f.is_empty()), "{name}: {fields:?}");
        if name != "RecordContact" && name != "OpenCase" && name != "ListCases" {
            assert!(fields.contains(&"case_id".to_owned()), "{name}: {fields:?}");
        }
    }

    // Malformed: each request is valid but for one field, which is named alone.
    let case_id = new_case(&mut c, &counsellor, "Child F-6", RiskLevel::Low).await;
    // One character over the service's MAX_TEXT_CHARS (20 000).
    let too_long = "x".repeat(20_001);
    let future = ts(SystemTime::now() + Duration::from_secs(24 * 3600));
    let malformed: Vec<(&str, Rpc)> = vec![
        (
            "case_id",
            Rpc::GetCase(GetCaseRequest {
                case_id: "not-a-uuid".into(),
            }),
        ),
        (
            "case_id",
            Rpc::AddNote(AddNoteRequest {
                case_id: "not-a-uuid".into(),
                ..note_request(&case_id, NoteCompartment::Helpline, "a note")
            }),
        ),
        (
            "request_id",
            Rpc::AddNote(AddNoteRequest {
                request_id: "not-a-uuid".into(),
                ..note_request(&case_id, NoteCompartment::Helpline, "a note")
            }),
        ),
        (
            "compartment",
            Rpc::AddNote(AddNoteRequest {
                compartment: 99,
                ..note_request(&case_id, NoteCompartment::Helpline, "a note")
            }),
        ),
        (
            "text",
            Rpc::AddNote(note_request(&case_id, NoteCompartment::Helpline, &too_long)),
        ),
        (
            "text",
            Rpc::AddNote(note_request(&case_id, NoteCompartment::Helpline, "a\u{0}b")),
        ),
        (
            "level",
            Rpc::RecordRiskAssessment(RecordRiskAssessmentRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                level: 99,
                ..Default::default()
            }),
        ),
        (
            "page_size",
            Rpc::ListCases(ListCasesRequest {
                page_size: 100_000,
                ..Default::default()
            }),
        ),
        (
            "stage",
            Rpc::ListCases(ListCasesRequest {
                stage: 99,
                ..Default::default()
            }),
        ),
        (
            "risk_level",
            Rpc::ListCases(ListCasesRequest {
                risk_level: 99,
                ..Default::default()
            }),
        ),
        (
            "page_token",
            Rpc::ListCases(ListCasesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            }),
        ),
        (
            "page_size",
            Rpc::GetTimeline(GetTimelineRequest {
                case_id: case_id.clone(),
                page_size: 100_000,
                ..Default::default()
            }),
        ),
        (
            "page_token",
            Rpc::GetTimeline(GetTimelineRequest {
                case_id: case_id.clone(),
                page_token: "not-a-token".into(),
                ..Default::default()
            }),
        ),
        (
            // A decimal position no page of this log ever gave (2^64).
            "page_token",
            Rpc::GetTimeline(GetTimelineRequest {
                case_id: case_id.clone(),
                page_token: "18446744073709551616".into(),
                ..Default::default()
            }),
        ),
        (
            "concerns",
            Rpc::RecordContact(RecordContactRequest {
                concerns: vec![99],
                ..contact_request(rid())
            }),
        ),
        (
            "summary",
            Rpc::RecordContact(RecordContactRequest {
                summary: too_long.clone(),
                ..contact_request(rid())
            }),
        ),
        (
            "anonymous",
            Rpc::RecordContact(RecordContactRequest {
                anonymous: true,
                ..contact_request(rid())
            }),
        ),
        (
            "identity.date_of_birth",
            Rpc::OpenCase(OpenCaseRequest {
                identity: Some(ChildIdentity {
                    date_of_birth: "2013-02-29".into(),
                    ..Default::default()
                }),
                ..opening("Child G-7", "", RiskLevel::Low)
            }),
        ),
        (
            "contact_id",
            Rpc::OpenCase(opening("Child G-7", "not-a-uuid", RiskLevel::Low)),
        ),
        (
            "gender",
            Rpc::OpenCase(OpenCaseRequest {
                gender: 99,
                ..opening("Child G-7", "", RiskLevel::Low)
            }),
        ),
        (
            "other_case_id",
            Rpc::LinkCases(link_request(&case_id, "not-a-uuid")),
        ),
        (
            "kind",
            Rpc::LinkCases(LinkCasesRequest {
                kind: 99,
                ..link_request(&case_id, &Uuid::new_v4().to_string())
            }),
        ),
        (
            "role",
            Rpc::AddTeamMember(AddTeamMemberRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                subject: "aud-1".into(),
                agency: "oversight-board".into(),
                role: "auditor".into(),
                ..Default::default()
            }),
        ),
        (
            "role",
            Rpc::AddTeamMember(AddTeamMemberRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                subject: "x-1".into(),
                agency: "somewhere".into(),
                role: "wizard".into(),
                ..Default::default()
            }),
        ),
        (
            "agency",
            Rpc::AddTeamMember(AddTeamMemberRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                subject: "x-1".into(),
                agency: " padded".into(),
                role: "social_worker".into(),
                ..Default::default()
            }),
        ),
        (
            "stage",
            Rpc::ChangeStage(ChangeStageRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                stage: Stage::Closed as i32,
                ..Default::default()
            }),
        ),
        (
            "comment",
            Rpc::DecideClosure(DecideClosureRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                approve: false,
                ..Default::default()
            }),
        ),
        (
            "occurred_at",
            Rpc::RecordJusticeMilestone(RecordJusticeMilestoneRequest {
                occurred_at: Some(future),
                ..milestone_request(&case_id, MilestoneKind::Report)
            }),
        ),
        (
            "child_informed_at",
            Rpc::RecordJusticeMilestone(RecordJusticeMilestoneRequest {
                child_informed: false,
                ..milestone_request(&case_id, MilestoneKind::Report)
            }),
        ),
        (
            "kind",
            Rpc::RecordJusticeMilestone(RecordJusticeMilestoneRequest {
                kind: 99,
                ..milestone_request(&case_id, MilestoneKind::Report)
            }),
        ),
    ];
    for (field, rpc) in malformed {
        let name = rpc.name();
        let what = format!("{name} with a bad {field}");
        let status = expect_err(
            rpc.send(&mut c, &counsellor.token).await,
            Code::InvalidArgument,
            &what,
        );
        assert_eq!(fields_of(&status, &what), [field], "{what}");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 4. Concurrency: conflicting commands never both apply
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_commands_never_both_apply() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    let case_id = new_case(&mut c, &social, "Child H-8", RiskLevel::Medium).await;
    let start = version_of(&mut c, &social, &case_id).await;

    // Eight requests to add the same person: one lands, the others see them there.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut c = c.clone();
        let request = AddTeamMemberRequest {
            case_id: case_id.clone(),
            request_id: rid(),
            expected_version: None,
            subject: police.sub.clone(),
            agency: police.agency.clone(),
            role: police.role.as_str().into(),
        };
        let token = social.token.clone();
        tasks.spawn(async move {
            c.add_team_member(authed(request, &token))
                .await
                .map(|r| r.into_inner())
        });
    }
    let results = tasks.join_all().await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(ok[0].version, start + 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r.code(), Code::FailedPrecondition | Code::Aborted),
            "{r:?}"
        );
    }
    let case = get_case(&mut c, &social, &case_id).await.unwrap();
    assert_eq!(case.version, start + 1);
    assert_eq!(
        case.team.iter().filter(|m| m.subject == police.sub).count(),
        1
    );

    // Eight different commands made against the same version: one applies; the others
    // are ABORTED and told the version that stands now.
    let seen = case.version;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u32 {
        let mut c = c.clone();
        let case_id = case_id.clone();
        let (token, social_token) = (police.token.clone(), social.token.clone());
        tasks.spawn(async move {
            let expected_version = Some(seen);
            match i % 3 {
                0 => c
                    .add_note(authed(
                        AddNoteRequest {
                            expected_version,
                            ..note_request(&case_id, NoteCompartment::Investigation, "seized")
                        },
                        &token,
                    ))
                    .await
                    .map(|r| r.into_inner()),
                1 => c
                    .record_risk_assessment(authed(
                        RecordRiskAssessmentRequest {
                            case_id,
                            request_id: rid(),
                            expected_version,
                            level: RiskLevel::High as i32,
                            ..Default::default()
                        },
                        &social_token,
                    ))
                    .await
                    .map(|r| r.into_inner()),
                _ => c
                    .change_stage(authed(
                        ChangeStageRequest {
                            case_id,
                            request_id: rid(),
                            expected_version,
                            stage: Stage::Investigation as i32,
                            reason: String::new(),
                        },
                        &token,
                    ))
                    .await
                    .map(|r| r.into_inner()),
            }
        });
    }
    let results = tasks.join_all().await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(ok[0].version, seen + 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), Code::Aborted, "{r:?}");
        assert!(
            r.message()
                .contains(&format!("current version is {}", seen + 1)),
            "{r:?}"
        );
    }
    assert_eq!(version_of(&mut c, &social, &case_id).await, seen + 1);

    // Eight closure requests without expected_version: the first pending request makes
    // every other one fail.
    let seen = seen + 1;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut c = c.clone();
        let case_id = case_id.clone();
        let social = social.clone();
        tasks.spawn(async move { request_closure(&mut c, &social, &case_id).await });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r.code(), Code::FailedPrecondition | Code::Aborted),
            "{r:?}"
        );
    }
    assert_eq!(version_of(&mut c, &social, &case_id).await, seen + 1);

    // Commands that do not conflict all apply, none lost.
    let supervisor = User::new(&server, "sup-1", Role::Supervisor, "social-north");
    decide_closure(&mut c, &supervisor, &case_id, false)
        .await
        .unwrap();
    let seen = version_of(&mut c, &social, &case_id).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let mut c = c.clone();
        let case_id = case_id.clone();
        let police = police.clone();
        tasks.spawn(async move {
            add_note(
                &mut c,
                &police,
                &case_id,
                NoteCompartment::Investigation,
                &format!("note {i}"),
            )
            .await
        });
    }
    let versions: BTreeSet<u64> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    assert_eq!(versions, (seen + 1..=seen + 8).collect());

    // One request sent eight times at once (a client retrying in a hurry): one note,
    // and every answer is the first.
    let seen = seen + 8;
    let note = note_request(&case_id, NoteCompartment::Investigation, "sent eight times");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (mut c, note, token) = (c.clone(), note.clone(), police.token.clone());
        tasks.spawn(async move {
            c.add_note(authed(note, &token))
                .await
                .map(|r| r.into_inner())
        });
    }
    let answers: Vec<CaseCommandResponse> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].version, seen + 1);
    assert_eq!(version_of(&mut c, &social, &case_id).await, seen + 1);

    // Two openings from one contact: one case gets it.
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );
    let contact = record_contact(&mut c, &counsellor).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (mut c, token) = (c.clone(), counsellor.token.clone());
        let request = opening(&format!("Child Q-{i}"), &contact, RiskLevel::Medium);
        tasks.spawn(async move { c.open_case(authed(request, &token)).await });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), Code::FailedPrecondition, "{r:?}");
    }
    assert_eq!(
        list_ids(&mut c, &counsellor, ListCasesRequest::default())
            .await
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cases_are_never_linked_twice_even_from_both_sides() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    for round in 0..10 {
        let a = new_case(
            &mut c,
            &police,
            &format!("Child P-{round}a"),
            RiskLevel::Low,
        )
        .await;
        let b = new_case(
            &mut c,
            &police,
            &format!("Child P-{round}b"),
            RiskLevel::Low,
        )
        .await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let (mut c, police, from, to) = (c.clone(), police.clone(), from.clone(), to.clone());
            tasks.spawn(async move { link(&mut c, &police, &from, &to).await });
        }
        let results = tasks.join_all().await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(r.code(), Code::FailedPrecondition | Code::Aborted),
                "{r:?}"
            );
        }
        assert_eq!(linked(&mut c, &police, &a).await.unwrap().len(), 1);
        assert_eq!(linked(&mut c, &police, &b).await.unwrap().len(), 1);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 5. Idempotency
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retry_answers_as_the_first_and_stores_nothing_new() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );

    // RecordContact: the same contact, one event.
    let contact_req = contact_request(rid());
    let first = c
        .record_contact(authed(contact_req.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .record_contact(authed(contact_req.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let contact_stream =
        StreamName::for_id("contact", Uuid::parse_str(&first.contact_id).unwrap()).unwrap();
    let stored = server
        .log
        .read_stream(&contact_stream, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    expect_err(
        c.record_contact(authed(
            RecordContactRequest {
                urgency: Urgency::Emergency as i32,
                ..contact_req
            },
            &counsellor.token,
        ))
        .await,
        Code::AlreadyExists,
        "RecordContact, same id, other request",
    );

    // OpenCase from the contact: the same case, version and timeline.
    let open_req = opening("Child I-9", &first.contact_id, RiskLevel::High);
    let opened = open_case(&mut c, &counsellor, open_req.clone()).await;
    let before = timeline(&mut c, &counsellor, &opened.case_id)
        .await
        .unwrap();
    let reopened = open_case(&mut c, &counsellor, open_req.clone()).await;
    assert_eq!(opened, reopened);
    let case_id = opened.case_id.clone();
    assert_eq!(
        version_of(&mut c, &counsellor, &case_id).await,
        opened.version
    );
    assert_eq!(
        timeline(&mut c, &counsellor, &case_id).await.unwrap(),
        before
    );
    expect_err(
        c.open_case(authed(
            OpenCaseRequest {
                pseudonym: "Child I-10".into(),
                ..open_req.clone()
            },
            &counsellor.token,
        ))
        .await,
        Code::AlreadyExists,
        "OpenCase, same id, other request",
    );
    // A reused id naming another contact is refused without touching that contact: a
    // case can still be opened from it.
    let spare = record_contact(&mut c, &counsellor).await;
    expect_err(
        c.open_case(authed(
            OpenCaseRequest {
                contact_id: spare.clone(),
                ..open_req
            },
            &counsellor.token,
        ))
        .await,
        Code::AlreadyExists,
        "OpenCase, same id, another contact",
    );
    let from_spare = open_case(
        &mut c,
        &counsellor,
        opening("Child I-11", &spare, RiskLevel::Low),
    )
    .await;
    let case = get_case(&mut c, &counsellor, &from_spare.case_id)
        .await
        .unwrap();
    assert_eq!(case.contact_id, spare);

    // AddNote: the same answer (entry id and version), nothing stored twice.
    let note = note_request(&case_id, NoteCompartment::Helpline, "the child called back");
    let first = c
        .add_note(authed(note.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    let version = version_of(&mut c, &counsellor, &case_id).await;
    let entries = timeline(&mut c, &counsellor, &case_id).await.unwrap();
    let again = c
        .add_note(authed(note.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(version_of(&mut c, &counsellor, &case_id).await, version);
    assert_eq!(
        timeline(&mut c, &counsellor, &case_id).await.unwrap(),
        entries
    );
    expect_err(
        c.add_note(authed(
            AddNoteRequest {
                text: "something else".into(),
                ..note.clone()
            },
            &counsellor.token,
        ))
        .await,
        Code::AlreadyExists,
        "AddNote, same id, other text",
    );
    // The same request id from someone else is not theirs to replay.
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    add_member(&mut c, &counsellor, &case_id, &social)
        .await
        .unwrap();
    expect_err(
        c.add_note(authed(
            AddNoteRequest {
                compartment: NoteCompartment::Social as i32,
                ..note.clone()
            },
            &social.token,
        ))
        .await,
        Code::AlreadyExists,
        "AddNote, same id, other caller",
    );

    // A retry made against a version that has moved on since still gets its first
    // answer, not ABORTED.
    let seen = version_of(&mut c, &counsellor, &case_id).await;
    let guarded = AddNoteRequest {
        expected_version: Some(seen),
        ..note_request(&case_id, NoteCompartment::Helpline, "guarded note")
    };
    let first = c
        .add_note(authed(guarded.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.version, seen + 1);
    assess_risk(&mut c, &counsellor, &case_id, RiskLevel::Medium)
        .await
        .unwrap();
    let again = c
        .add_note(authed(guarded, &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(version_of(&mut c, &counsellor, &case_id).await, seen + 2);

    // Team changes: a retried addition is not a duplicate member.
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    let add = AddTeamMemberRequest {
        case_id: case_id.clone(),
        request_id: rid(),
        expected_version: None,
        subject: police.sub.clone(),
        agency: police.agency.clone(),
        role: police.role.as_str().into(),
    };
    let first = c
        .add_team_member(authed(add.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .add_team_member(authed(add, &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(
        version_of(&mut c, &counsellor, &case_id).await,
        first.version
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 6. The domain's rules over gRPC
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn domain_rules_answer_failed_precondition_and_closure_takes_two_supervisors() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    let prosecutor = User::new(&server, "pr-1", Role::Prosecutor, "prosecution-north");
    let sup_a = User::new(&server, "sup-a", Role::Supervisor, "social-north");
    let sup_b = User::new(&server, "sup-b", Role::Supervisor, "social-north");
    let case_id = new_case(&mut c, &social, "Child J-10", RiskLevel::Medium).await;
    for m in [&police, &prosecutor] {
        add_member(&mut c, &social, &case_id, m).await.unwrap();
    }
    let fp = Code::FailedPrecondition;

    expect_err(
        add_member(&mut c, &social, &case_id, &police).await,
        fp,
        "duplicate member",
    );
    expect_err(
        link(&mut c, &police, &case_id, &case_id).await,
        fp,
        "self-link",
    );
    expect_err(
        milestone(&mut c, &prosecutor, &case_id, MilestoneKind::Charge).await,
        fp,
        "charge before report",
    );
    milestone(&mut c, &prosecutor, &case_id, MilestoneKind::Report)
        .await
        .unwrap();
    milestone(&mut c, &prosecutor, &case_id, MilestoneKind::Charge)
        .await
        .unwrap();
    expect_err(
        change_stage(&mut c, &social, &case_id, Stage::Intake).await,
        fp,
        "already in that stage",
    );
    expect_err(
        reopen(&mut c, &social, &case_id, Stage::Intake).await,
        fp,
        "reopening an open case",
    );
    expect_err(
        decide_closure(&mut c, &sup_a, &case_id, true).await,
        fp,
        "deciding with nothing pending",
    );
    expect_err(
        remove_member(
            &mut c,
            &police,
            &case_id,
            &User::new(&server, "nobody", Role::SocialWorker, "social-north"),
        )
        .await,
        fp,
        "removing a non-member",
    );
    change_stage(&mut c, &police, &case_id, Stage::Investigation)
        .await
        .unwrap();

    // A supervisor of an agency on the team asks; they may not decide their own request.
    request_closure(&mut c, &sup_a, &case_id).await.unwrap();
    assert!(
        get_case(&mut c, &social, &case_id)
            .await
            .unwrap()
            .closure_pending
    );
    expect_err(
        decide_closure(&mut c, &sup_a, &case_id, true).await,
        fp,
        "deciding one's own closure request",
    );
    expect_err(
        request_closure(&mut c, &social, &case_id).await,
        fp,
        "a second closure request",
    );
    expect_err(
        change_stage(&mut c, &police, &case_id, Stage::Prosecution).await,
        fp,
        "changing stage with a closure pending",
    );
    // Only supervisors decide.
    expect_err(
        decide_closure(&mut c, &social, &case_id, true).await,
        Code::PermissionDenied,
        "a social worker deciding",
    );
    // Another supervisor rejects: the case stays open.
    decide_closure(&mut c, &sup_b, &case_id, false)
        .await
        .unwrap();
    let case = get_case(&mut c, &social, &case_id).await.unwrap();
    assert_eq!(case.stage(), Stage::Investigation);
    assert!(!case.closure_pending);

    // The social worker asks again; another supervisor approves: closed.
    request_closure(&mut c, &social, &case_id).await.unwrap();
    decide_closure(&mut c, &sup_b, &case_id, true)
        .await
        .unwrap();
    let case = get_case(&mut c, &social, &case_id).await.unwrap();
    assert_eq!(case.stage(), Stage::Closed);
    assert!(!case.closure_pending);

    // A closed case takes nothing but reopening.
    expect_err(
        add_note(
            &mut c,
            &police,
            &case_id,
            NoteCompartment::Investigation,
            "late",
        )
        .await,
        fp,
        "note on a closed case",
    );
    expect_err(
        add_member(
            &mut c,
            &social,
            &case_id,
            &User::new(&server, "hw-1", Role::HealthWorker, "health-north"),
        )
        .await,
        fp,
        "member on a closed case",
    );
    expect_err(
        assess_risk(&mut c, &social, &case_id, RiskLevel::High).await,
        fp,
        "risk on a closed case",
    );
    expect_err(
        request_closure(&mut c, &social, &case_id).await,
        fp,
        "closing a closed case",
    );
    expect_err(
        reopen(&mut c, &police, &case_id, Stage::Aftercare).await,
        Code::PermissionDenied,
        "police may not reopen",
    );
    reopen(&mut c, &social, &case_id, Stage::Aftercare)
        .await
        .unwrap();
    assert_eq!(
        get_case(&mut c, &social, &case_id).await.unwrap().stage(),
        Stage::Aftercare
    );
    add_note(
        &mut c,
        &police,
        &case_id,
        NoteCompartment::Investigation,
        "after",
    )
    .await
    .unwrap();

    // The closure's history is on the timeline, in the case core.
    let kinds: Vec<String> = timeline(&mut c, &social, &case_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.compartment == "case_core")
        .map(|e| e.kind)
        .filter(|k| k.contains("closure") || k.contains("reopen") || k.contains("stage"))
        .collect();
    assert_eq!(
        kinds,
        [
            "stage_changed",
            "closure_requested",
            "closure_decided",
            "closure_requested",
            "closure_decided",
            "case_reopened"
        ]
    );

    // The last member of a team cannot be removed.
    let lone = new_case(&mut c, &social, "Child K-11", RiskLevel::Low).await;
    expect_err(
        remove_member(&mut c, &social, &lone, &social).await,
        fp,
        "removing the last member",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 7. Links never open the other case
// ---------------------------------------------------------------------------------------

/// A link retried after its maker lost sight of the other case is answered as the first
/// time (same version, same link id): the retry is recognised before the other case is
/// looked at. A new link to a case out of sight is NOT_FOUND.
#[tokio::test]
async fn a_link_retried_after_losing_sight_of_the_other_case_answers_as_the_first() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    let a = new_case(&mut c, &social, "Child L-14", RiskLevel::Medium).await;
    let b = new_case(&mut c, &social, "Child M-15", RiskLevel::High).await;
    for case_id in [&a, &b] {
        add_member(&mut c, &social, case_id, &police).await.unwrap();
    }
    let request = link_request(&a, &b);
    let first = c
        .link_cases(authed(request.clone(), &police.token))
        .await
        .unwrap()
        .into_inner();
    remove_member(&mut c, &social, &b, &police).await.unwrap();
    expect_err(
        get_case(&mut c, &police, &b).await,
        Code::NotFound,
        "B after leaving its team",
    );

    let again = c
        .link_cases(authed(request, &police.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    let links = linked(&mut c, &police, &a).await.unwrap();
    assert_eq!(links.len(), 1, "linked once: {links:?}");
    assert_eq!(links[0].link_id, first.entry_id);

    let out_of_sight = new_case(&mut c, &social, "Child N-16", RiskLevel::Low).await;
    expect_err(
        link(&mut c, &police, &a, &out_of_sight).await,
        Code::NotFound,
        "a new link to a case out of sight",
    );
    server.stop().await;
}

#[tokio::test]
async fn links_show_the_other_case_only_to_those_who_may_see_it() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-north");
    let prosecutor = User::new(&server, "pr-1", Role::Prosecutor, "prosecution-north");
    let police_b = User::new(&server, "pol-2", Role::PoliceInvestigator, "police-north");
    let a = new_case(&mut c, &social, "Child L-12", RiskLevel::Medium).await;
    for m in [&police, &prosecutor] {
        add_member(&mut c, &social, &a, m).await.unwrap();
    }
    // B: opened by the police officer; a colleague of theirs is on B only.
    let b = new_case(&mut c, &police, "Child M-13", RiskLevel::High).await;
    add_member(&mut c, &police, &b, &police_b).await.unwrap();

    let done = link(&mut c, &police, &a, &b).await.unwrap();
    expect_err(
        link(&mut c, &police, &a, &b).await,
        Code::FailedPrecondition,
        "linked twice",
    );
    expect_err(
        link(&mut c, &police, &b, &a).await,
        Code::FailedPrecondition,
        "linked back",
    );

    // On both cases: the other id, the reason on the side that made the link.
    let from_a = linked(&mut c, &police, &a).await.unwrap();
    assert_eq!(from_a.len(), 1, "{from_a:?}");
    let l = &from_a[0];
    assert_eq!(l.link_id, done.entry_id);
    assert_eq!(
        (l.other_case_id.as_str(), l.other_case_visible),
        (b.as_str(), true)
    );
    assert!(l.outgoing);
    assert_eq!(l.kind(), LinkKind::SameSuspect);
    assert_eq!(l.reason, "the same online account groomed both children");
    assert_eq!(l.linked_by_agency, police.agency);
    let from_b = linked(&mut c, &police, &b).await.unwrap();
    assert_eq!(from_b.len(), 1);
    assert_eq!(
        (
            from_b[0].other_case_id.as_str(),
            from_b[0].other_case_visible
        ),
        (a.as_str(), true)
    );
    assert!(!from_b[0].outgoing);
    assert!(from_b[0].reason.is_empty(), "the reason is A's");

    // The prosecutor is on A only: the link, not the case behind it.
    let seen = linked(&mut c, &prosecutor, &a).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].other_case_visible);
    assert!(seen[0].other_case_id.is_empty());
    assert_eq!(seen[0].link_id, done.entry_id);
    let entry = timeline(&mut c, &prosecutor, &a)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "cases_linked")
        .unwrap();
    let Some(Detail::Link(view)) = entry.detail else {
        panic!("{entry:?}");
    };
    assert!(!view.other_case_visible && view.other_case_id.is_empty());
    // Nor does the link open B to them.
    expect_err(
        get_case(&mut c, &prosecutor, &b).await,
        Code::NotFound,
        "B to A's prosecutor",
    );
    // The colleague on B only sees the incoming link without A's id.
    let seen = linked(&mut c, &police_b, &b).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].other_case_visible && seen[0].other_case_id.is_empty());

    // Social workers cannot read the investigation compartment.
    expect_err(
        linked(&mut c, &social, &a).await,
        Code::PermissionDenied,
        "social worker",
    );

    // Unlinking removes it from both sides.
    c.unlink_cases(authed(
        UnlinkCasesRequest {
            case_id: a.clone(),
            request_id: rid(),
            expected_version: None,
            other_case_id: b.clone(),
            reason: "different suspect after all".into(),
        },
        &police.token,
    ))
    .await
    .unwrap();
    assert!(linked(&mut c, &police, &a).await.unwrap().is_empty());
    assert!(linked(&mut c, &police, &b).await.unwrap().is_empty());
    let kinds: Vec<String> = timeline(&mut c, &police, &a)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.compartment == "investigation")
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["cases_linked", "cases_unlinked"]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 8. ListCases
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn list_cases_filters_pages_and_records_every_returned_id() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let sw1 = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let sw2 = User::new(&server, "sw-2", Role::SocialWorker, "social-south");
    let sup = User::new(&server, "sup-1", Role::Supervisor, "social-north");
    let outsiders = [
        User::new(&server, "pol-9", Role::PoliceInvestigator, "police-east"),
        User::new(
            &server,
            "co-1",
            Role::ComplaintsOfficer,
            "complaints-office",
        ),
        User::new(&server, "sup-9", Role::Supervisor, "social-east"),
    ];

    let c1 = new_case(&mut c, &sw1, "Child N-1", RiskLevel::Low).await;
    let c2 = new_case(&mut c, &sw1, "Child N-2", RiskLevel::Medium).await;
    let c3 = new_case(&mut c, &sw1, "Child N-3", RiskLevel::Medium).await;
    let c4 = new_case(&mut c, &sw2, "Child S-4", RiskLevel::High).await;
    let c5 = new_case(&mut c, &sw2, "Child S-5", RiskLevel::Low).await;
    add_member(&mut c, &sw2, &c4, &sw1).await.unwrap();
    assess_risk(&mut c, &sw1, &c2, RiskLevel::High)
        .await
        .unwrap();
    change_stage(&mut c, &sw1, &c2, Stage::Investigation)
        .await
        .unwrap();

    let all = || ListCasesRequest::default();
    let checks: Vec<(&User, ListCasesRequest, Vec<&String>)> = vec![
        (&sw1, all(), vec![&c4, &c3, &c2, &c1]),
        (
            &sw1,
            ListCasesRequest {
                mine: true,
                ..all()
            },
            vec![&c4, &c3, &c2, &c1],
        ),
        (
            &sw1,
            ListCasesRequest {
                stage: Stage::Investigation as i32,
                ..all()
            },
            vec![&c2],
        ),
        (
            &sw1,
            ListCasesRequest {
                stage: Stage::Intake as i32,
                ..all()
            },
            vec![&c4, &c3, &c1],
        ),
        (
            &sw1,
            ListCasesRequest {
                risk_level: RiskLevel::High as i32,
                ..all()
            },
            vec![&c4, &c2],
        ),
        (
            &sw1,
            ListCasesRequest {
                risk_level: RiskLevel::Medium as i32,
                stage: Stage::Intake as i32,
                ..all()
            },
            vec![&c3],
        ),
        (&sw2, all(), vec![&c5, &c4]),
        // The supervisor sees the cases of their agency, but works on none.
        (&sup, all(), vec![&c4, &c3, &c2, &c1]),
        (
            &sup,
            ListCasesRequest {
                mine: true,
                ..all()
            },
            vec![],
        ),
        (&outsiders[0], all(), vec![]),
        (&outsiders[1], all(), vec![]),
        (&outsiders[2], all(), vec![]),
    ];
    for (user, request, expected) in checks {
        let what = format!("{} {request:?}", user.sub);
        let page = list(&mut c, user, request).await.unwrap();
        let ids: Vec<&String> = page.cases.iter().map(|s| &s.case_id).collect();
        assert_eq!(ids, expected, "{what}");
        assert!(page.next_page_token.is_empty(), "{what}");
        let (actor, record) = last_global_access(&server).await;
        assert_eq!(actor, user.sub, "{what}");
        assert_eq!(record.rpc, "/caseline.v1.CaseService/ListCases");
        assert_eq!(
            record.resource_ids.iter().collect::<Vec<_>>(),
            expected,
            "{what}: the record lists every returned id"
        );
    }
    let page = list(&mut c, &sw1, all()).await.unwrap();
    let s2 = page.cases.iter().find(|s| s.case_id == c2).unwrap();
    assert_eq!(
        (s2.pseudonym.as_str(), s2.stage(), s2.risk_level()),
        ("Child N-2", Stage::Investigation, RiskLevel::High)
    );
    assert!(s2.opened_at.is_some());

    // Pages of one walk every case exactly once, newest first, each page recorded.
    let mut walked = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &mut c,
            &sw1,
            ListCasesRequest {
                page_size: 1,
                page_token: token.clone(),
                ..all()
            },
        )
        .await
        .unwrap();
        assert_eq!(page.cases.len(), 1, "{page:?}");
        let (_, record) = last_global_access(&server).await;
        assert_eq!(record.resource_ids, [page.cases[0].case_id.clone()]);
        walked.push(page.cases[0].case_id.clone());
        assert!(walked.len() <= 4, "{walked:?}");
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(walked, [c4.clone(), c3.clone(), c2.clone(), c1.clone()]);
    // Pages of three: three, then the last one.
    let first = list(
        &mut c,
        &sw1,
        ListCasesRequest {
            page_size: 3,
            ..all()
        },
    )
    .await
    .unwrap();
    assert_eq!(first.cases.len(), 3);
    assert!(!first.next_page_token.is_empty());
    let second = list(
        &mut c,
        &sw1,
        ListCasesRequest {
            page_size: 3,
            page_token: first.next_page_token,
            ..all()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        second.cases.iter().map(|s| &s.case_id).collect::<Vec<_>>(),
        [&c1]
    );
    assert!(second.next_page_token.is_empty());

    // No one else's case ever shows, whatever the filter.
    let everything: HashSet<String> = [&c1, &c2, &c3, &c4].into_iter().cloned().collect();
    for stage in [Stage::Unspecified, Stage::Intake, Stage::Investigation] {
        let ids = list_ids(
            &mut c,
            &sw1,
            ListCasesRequest {
                stage: stage as i32,
                ..all()
            },
        )
        .await;
        assert!(ids.iter().all(|id| everything.contains(id)), "{ids:?}");
        assert!(!ids.contains(&c5));
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 9. A removal takes effect on the very next call
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_removed_member_loses_the_case_on_their_next_call() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    let health = User::new(&server, "hw-1", Role::HealthWorker, "health-north");
    let case_id = new_case(&mut c, &social, "Child O-15", RiskLevel::Medium).await;
    add_member(&mut c, &social, &case_id, &health)
        .await
        .unwrap();
    add_note(
        &mut c,
        &health,
        &case_id,
        NoteCompartment::Health,
        "seen at clinic",
    )
    .await
    .unwrap();
    assert!(
        !timeline(&mut c, &health, &case_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        list_ids(&mut c, &health, ListCasesRequest::default()).await,
        std::slice::from_ref(&case_id)
    );

    remove_member(&mut c, &social, &case_id, &health)
        .await
        .unwrap();
    let gone = expect_err(
        timeline(&mut c, &health, &case_id).await,
        Code::NotFound,
        "timeline after removal",
    );
    let absent_id = Uuid::new_v4().to_string();
    let absent = expect_err(
        timeline(&mut c, &health, &absent_id).await,
        Code::NotFound,
        "an absent case",
    );
    assert_eq!(shape(&gone, &case_id), shape(&absent, &absent_id));
    expect_err(
        get_case(&mut c, &health, &case_id).await,
        Code::NotFound,
        "GetCase after removal",
    );
    expect_err(
        add_note(&mut c, &health, &case_id, NoteCompartment::Health, "again").await,
        Code::NotFound,
        "AddNote after removal",
    );
    assert!(
        list_ids(&mut c, &health, ListCasesRequest::default())
            .await
            .is_empty()
    );
    // The social worker still sees the removal, and the health note only as a summary.
    let entries = timeline(&mut c, &social, &case_id).await.unwrap();
    let removal = entries
        .iter()
        .find(|e| e.kind == "team_member_removed")
        .unwrap();
    let Some(Detail::TeamChange(change)) = &removal.detail else {
        panic!("{removal:?}");
    };
    assert_eq!(
        (change.subject.as_str(), change.added),
        (health.sub.as_str(), false)
    );
    assert!(entries.iter().all(|e| e.compartment != "health_notes"));
    server.stop().await;
}

#[tokio::test]
async fn no_one_adds_themselves_to_a_team() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let social = User::new(&server, "sw-1", Role::SocialWorker, "social-north");
    // A supervisor of an agency on the team stands on the case without being on it…
    let supervisor = User::new(&server, "sup-1", Role::Supervisor, "social-north");
    let case_id = new_case(&mut c, &social, "Child S-1", RiskLevel::Medium).await;
    let before = version_of(&mut c, &social, &case_id).await;

    // …and may manage its team, but not join it (nor may a member take another role).
    let status = expect_err(
        add_member(&mut c, &supervisor, &case_id, &supervisor).await,
        Code::PermissionDenied,
        "supervisor adding themselves",
    );
    assert!(status.message().contains("yourself"), "{status:?}");
    let as_other_role = User {
        role: Role::PoliceInvestigator,
        ..social.clone()
    };
    expect_err(
        add_member(&mut c, &social, &case_id, &as_other_role).await,
        Code::PermissionDenied,
        "member adding themselves in another role",
    );
    assert_eq!(version_of(&mut c, &social, &case_id).await, before);

    // Adding a colleague is what managing a team is for.
    let colleague = User::new(&server, "sw-2", Role::SocialWorker, "social-north");
    add_member(&mut c, &supervisor, &case_id, &colleague)
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_date_of_birth_in_the_future_or_before_1900_is_refused_saying_why() {
    let server = TestServer::start().await;
    let mut c = client(&server).await;
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );
    let born = |date: &str| OpenCaseRequest {
        identity: Some(ChildIdentity {
            name: CHILD_NAME.into(),
            date_of_birth: date.into(),
            contact_details: String::new(),
        }),
        ..opening("Child B-1", "", RiskLevel::Low)
    };
    // Two days ahead: still the future if the date changes during the test.
    let soon = caseline_e2e::date_in(2);
    for (date, why) in [
        ("2999-01-01", "future"),
        (soon.as_str(), "future"),
        ("1800-01-01", "1900"),
        ("1899-12-31", "1900"),
        ("2013-02-29", "YYYY-MM-DD"),
    ] {
        let status = expect_err(
            c.open_case(authed(born(date), &counsellor.token)).await,
            Code::InvalidArgument,
            date,
        );
        assert_eq!(fields_of(&status, date), ["identity.date_of_birth"]);
        let details = tonic_types::StatusExt::get_error_details(&status);
        let description = &details.bad_request().unwrap().field_violations[0].description;
        assert!(description.contains(why), "{date}: {description:?}");
        assert!(!description.contains(date), "{date}: {description:?}");
    }
    for date in ["1900-01-01", "2011-04-03", &caseline_e2e::date_in(-1)] {
        c.open_case(authed(born(date), &counsellor.token))
            .await
            .unwrap_or_else(|e| panic!("born {date}: {e:?}"));
    }
    server.stop().await;
}
