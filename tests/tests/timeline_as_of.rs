//! AuditService.GetTimelineAsOf on a whole all-in-one server: what one identity, or any
//! team member in a role, could see of a child's timeline at an instant — built through
//! the public CaseService API, asked over real gRPC with real tokens.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_e2e::{TestServer, authed, rid, ts};
use caseline_eventlog::{Position, RecordedEvent, Uuid};
use caseline_proto::tonic::Code;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::get_timeline_as_of_request::Viewer as Asked;
use caseline_proto::v1::{
    AddNoteRequest, AddTeamMemberRequest, AgeBand, CaseSource, ConcernCategory, Gender,
    GetTimelineAsOfRequest, GetTimelineAsOfResponse, GetTimelineRequest, NoteCompartment,
    OpenCaseRequest, RemoveTeamMemberRequest, RiskLevel, Viewer, Visibility,
};
use caseline_trust::{BREAK_GLASS_HEADER, PURPOSE_HEADER};
use tonic_types::StatusExt;

const HELPLINE: &str = "childline-east";
const POLICE: &str = "national-police-cyber";

/// Everything recorded about the case so far, its access records included, in log
/// order.
async fn records(server: &TestServer, case_id: &str) -> Vec<RecordedEvent> {
    let case_id = Uuid::parse_str(case_id).unwrap();
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let page = server.log.read_case(case_id, after, 100).await.unwrap();
        let Some(last) = page.last() else {
            return all;
        };
        after = last.position;
        all.extend(page);
    }
}

/// An instant strictly between what was done so far and what is done next, read from
/// the log rather than waited for: the time the newest record of the case was recorded
/// at. As of it, everything done so far counts (what was recorded at the instant is
/// in). What is done next is recorded a whole request later, so at a later microsecond
/// of the server's clock; [`Mark::separates`] checks that once it is done.
#[derive(Clone, Copy, Debug)]
struct Mark {
    at: SystemTime,
    /// How many records of the case there were then.
    records: usize,
}

impl Mark {
    async fn now(server: &TestServer, case_id: &str) -> Self {
        let all = records(server, case_id).await;
        Self {
            at: all.iter().map(|e| e.recorded_at).max().unwrap(),
            records: all.len(),
        }
    }

    /// Asserts that whatever was recorded about the case after the mark was taken was
    /// recorded after its instant.
    fn separates(self, all: &[RecordedEvent]) {
        for later in &all[self.records..] {
            assert!(
                later.recorded_at > self.at,
                "{} was recorded no later than the instant before it",
                later.event_type
            );
        }
    }
}

struct Story {
    server: TestServer,
    case_id: String,
    auditor: String,
    before_open: SystemTime,
    opened: SystemTime,
    with_police_note: SystemTime,
    after_removal: SystemTime,
}

/// A helpline counsellor opens a case; a police investigator joins and files an
/// investigation note; later the investigator is removed from the team.
async fn story() -> Story {
    let server = TestServer::start().await;
    let counsellor = server.token("hc-1", Role::HelplineCounsellor, HELPLINE);
    let police = server.token("pi-1", Role::PoliceInvestigator, POLICE);
    let auditor = server.token("au-1", Role::Auditor, "oversight-board");
    let mut cases = CaseServiceClient::new(server.channel().await);

    let opened = cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: rid(),
                pseudonym: "Child A-17".into(),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Girl as i32,
                language: "en".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                initial_risk: RiskLevel::High as i32,
                ..OpenCaseRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner();
    let case_id = opened.case_id;
    // Nothing of the case is recorded before it is opened.
    let first = records(&server, &case_id)
        .await
        .iter()
        .map(|e| e.recorded_at)
        .min()
        .unwrap();
    let before_open = first - Duration::from_micros(1);
    cases
        .add_note(authed(
            AddNoteRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                compartment: NoteCompartment::Helpline as i32,
                text: "Child disclosed threats to share images".into(),
                ..AddNoteRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap();
    let opened_at = Mark::now(&server, &case_id).await;
    cases
        .add_team_member(authed(
            AddTeamMemberRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                subject: "pi-1".into(),
                agency: POLICE.into(),
                role: "police_investigator".into(),
                ..AddTeamMemberRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap();
    cases
        .add_note(authed(
            AddNoteRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                compartment: NoteCompartment::Investigation as i32,
                text: "Account handle traced to a known offender".into(),
                ..AddNoteRequest::default()
            },
            &police,
        ))
        .await
        .unwrap();
    let with_police_note = Mark::now(&server, &case_id).await;
    cases
        .remove_team_member(authed(
            RemoveTeamMemberRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                subject: "pi-1".into(),
                agency: POLICE.into(),
                ..RemoveTeamMemberRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap();
    let after_removal = Mark::now(&server, &case_id).await;
    let all = records(&server, &case_id).await;
    opened_at.separates(&all);
    with_police_note.separates(&all);
    Story {
        server,
        case_id,
        auditor,
        before_open,
        opened: opened_at.at,
        with_police_note: with_police_note.at,
        after_removal: after_removal.at,
    }
}

async fn as_of(
    s: &Story,
    at: SystemTime,
    viewer: Asked,
) -> Result<GetTimelineAsOfResponse, caseline_proto::tonic::Status> {
    let mut audit = AuditServiceClient::new(s.server.channel().await);
    audit
        .get_timeline_as_of(authed(
            GetTimelineAsOfRequest {
                case_id: s.case_id.clone(),
                as_of: Some(ts(at)),
                viewer: Some(viewer),
                ..GetTimelineAsOfRequest::default()
            },
            &s.auditor,
        ))
        .await
        .map(|r| r.into_inner())
}

fn investigator() -> Asked {
    Asked::Identity(Viewer {
        subject: "pi-1".into(),
        agency: POLICE.into(),
        role: "police_investigator".into(),
    })
}

fn kinds(r: &GetTimelineAsOfResponse) -> Vec<(String, String, i32)> {
    r.entries
        .iter()
        .map(|e| (e.kind.clone(), e.compartment.clone(), e.visibility))
        .collect()
}

#[tokio::test]
async fn an_identity_sees_what_its_membership_allowed_at_each_instant() {
    let s = story().await;

    let before = as_of(&s, s.before_open, investigator()).await.unwrap();
    assert!(!before.case_existed);
    assert!(!before.could_open);
    assert!(before.entries.is_empty());

    // Opened, but the investigator was not on the team yet: nothing, not even that the
    // case exists.
    let early = as_of(&s, s.opened, investigator()).await.unwrap();
    assert!(early.case_existed);
    assert!(!early.could_open);
    assert_eq!(early.reason, "not_on_team");
    assert!(early.entries.is_empty());
    assert_eq!(early.hidden_entries, 3, "{:?}", kinds(&early));

    // On the team: the case core in full, the helpline's note as a summary, their own
    // investigation note in full.
    let member = as_of(&s, s.with_police_note, investigator()).await.unwrap();
    assert!(member.could_open);
    assert_eq!(member.reason, "team_member");
    assert_eq!(member.policy_version, caseline_policy::POLICY_VERSION);
    let seen = kinds(&member);
    assert!(seen.contains(&(
        "case_opened".into(),
        "case_core".into(),
        Visibility::Full as i32
    )));
    assert!(seen.contains(&(
        "note_added".into(),
        "helpline_contacts".into(),
        Visibility::Summary as i32
    )));
    assert!(seen.contains(&(
        "note_added".into(),
        "investigation".into(),
        Visibility::Full as i32
    )));
    assert_eq!(member.hidden_entries, 0);

    // Removed: nothing again.
    let after = as_of(&s, s.after_removal, investigator()).await.unwrap();
    assert!(!after.could_open);
    assert!(after.entries.is_empty());
    s.server.stop().await;
}

#[tokio::test]
async fn the_answer_is_metadata_and_never_content() {
    let s = story().await;
    let r = as_of(&s, s.after_removal, Asked::Role("prosecutor".into()))
        .await
        .unwrap();
    assert!(r.could_open);
    assert!(!r.entries.is_empty());
    for e in &r.entries {
        assert!(e.detail.is_none(), "{} carries content", e.kind);
        assert!(!e.actor.is_empty() && e.recorded_at.is_some() && !e.event_id.is_empty());
    }
    // A prosecutor reads investigation notes but no helpline contacts.
    let seen = kinds(&r);
    assert!(seen.contains(&(
        "note_added".into(),
        "investigation".into(),
        Visibility::Full as i32
    )));
    assert!(!seen.iter().any(|(_, c, _)| c == "helpline_contacts"));
    assert_eq!(r.hidden_entries, 1);
    s.server.stop().await;
}

#[tokio::test]
async fn break_glass_counts_from_its_grant_for_one_hour() {
    let s = story().await;
    let outsider = s
        .server
        .token("pi-9", Role::PoliceInvestigator, "regional-police");
    let before_grant = Mark::now(&s.server, &s.case_id).await;
    let mut cases = CaseServiceClient::new(s.server.channel().await);
    let mut request = authed(
        GetTimelineRequest {
            case_id: s.case_id.clone(),
            ..GetTimelineRequest::default()
        },
        &outsider,
    );
    request
        .metadata_mut()
        .insert(PURPOSE_HEADER, "emergency_safeguarding".parse().unwrap());
    request.metadata_mut().insert(
        BREAK_GLASS_HEADER,
        "Child at immediate risk, duty officer on call"
            .parse()
            .unwrap(),
    );
    let timeline = cases.get_timeline(request).await.unwrap().into_inner();
    assert!(!timeline.entries.is_empty());
    let after_grant = Mark::now(&s.server, &s.case_id).await;
    before_grant.separates(&records(&s.server, &s.case_id).await);
    let (before_grant, after_grant) = (before_grant.at, after_grant.at);

    let viewer = || {
        Asked::Identity(Viewer {
            subject: "pi-9".into(),
            agency: "regional-police".into(),
            role: "police_investigator".into(),
        })
    };
    let before = as_of(&s, before_grant, viewer()).await.unwrap();
    assert!(!before.could_open);
    let during = as_of(&s, after_grant, viewer()).await.unwrap();
    assert!(during.could_open);
    assert_eq!(during.reason, "break_glass_active");
    let expired = as_of(&s, after_grant + Duration::from_secs(3601), viewer())
        .await
        .unwrap();
    assert!(!expired.could_open);
    // The same person in another role never rode on that grant.
    let other_role = as_of(
        &s,
        after_grant,
        Asked::Identity(Viewer {
            subject: "pi-9".into(),
            agency: "regional-police".into(),
            role: "social_worker".into(),
        }),
    )
    .await
    .unwrap();
    assert!(!other_role.could_open);
    s.server.stop().await;
}

#[tokio::test]
async fn only_auditors_ask_and_bad_questions_name_their_field() {
    let s = story().await;
    let mut audit = AuditServiceClient::new(s.server.channel().await);
    let police = s.server.token("pi-1", Role::PoliceInvestigator, POLICE);
    let denied = audit
        .get_timeline_as_of(authed(
            GetTimelineAsOfRequest {
                case_id: s.case_id.clone(),
                as_of: Some(ts(s.after_removal)),
                viewer: Some(investigator()),
                ..GetTimelineAsOfRequest::default()
            },
            &police,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let bad = [
        (GetTimelineAsOfRequest::default(), "case_id"),
        (
            GetTimelineAsOfRequest {
                case_id: s.case_id.clone(),
                ..GetTimelineAsOfRequest::default()
            },
            "as_of",
        ),
        (
            GetTimelineAsOfRequest {
                case_id: s.case_id.clone(),
                as_of: Some(ts(s.after_removal)),
                viewer: None,
                ..GetTimelineAsOfRequest::default()
            },
            "viewer",
        ),
        (
            GetTimelineAsOfRequest {
                case_id: s.case_id.clone(),
                as_of: Some(ts(s.after_removal)),
                viewer: Some(Asked::Role("sheriff".into())),
                ..GetTimelineAsOfRequest::default()
            },
            "role",
        ),
        (
            GetTimelineAsOfRequest {
                case_id: s.case_id.clone(),
                as_of: Some(ts(s.after_removal)),
                viewer: Some(Asked::Identity(Viewer::default())),
                ..GetTimelineAsOfRequest::default()
            },
            "identity.subject",
        ),
    ];
    for (request, field) in bad {
        let status = audit
            .get_timeline_as_of(authed(request, &s.auditor))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, field);
    }
    s.server.stop().await;
}
