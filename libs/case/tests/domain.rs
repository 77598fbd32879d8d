//! The case aggregate's rules, given/when/then: given the events of a case, when a
//! command is decided, then exactly these events (or exactly this refusal). Pure: no
//! store, no vault, no clock.

use caseline_aggregate::EventCodec;
use caseline_aggregate::testing::{
    assert_holds_none, assert_stored_as, given, refused, then_state, when,
};
use caseline_case::domain::{Actor, Command, DomainError, Event, Opening};
use caseline_eventlog::Uuid;
use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    CaseOpened, CaseReopened, CasesLinked, CasesUnlinked, ClosureDecided, ClosureRequested,
    ContactAttached, JusticeMilestoneRecorded, NoteAdded, RiskAssessed, StageChanged,
    TeamMemberAdded, TeamMemberRemoved,
};
use caseline_proto::v1::{
    AgeBand, CallerKind, CaseSource, ConcernCategory, ContactChannel, Gender, LinkKind,
    MilestoneKind, NoteCompartment, RiskLevel, Stage, Urgency,
};

// ---------------------------------------------------------------------------------------
// Given / when / then

const CLOSED: &str = "the case is closed: reopen it first";

// ---------------------------------------------------------------------------------------
// Fixtures

fn case_id() -> Uuid {
    Uuid::from_u128(0xCA5E_0001)
}

fn other_case() -> Uuid {
    Uuid::from_u128(0xCA5E_0002)
}

fn third_case() -> Uuid {
    Uuid::from_u128(0xCA5E_0003)
}

fn link_id(n: u128) -> Uuid {
    Uuid::from_u128(0x11AC_0000 + n)
}

fn actor(subject: &str, agency: &str) -> Actor {
    Actor {
        subject: subject.into(),
        agency: agency.into(),
    }
}

fn sealed(text: &str) -> Vec<u8> {
    format!("sealed:{text}").into_bytes()
}

fn case_opened() -> CaseOpened {
    CaseOpened {
        pseudonym: "Child A-17".into(),
        name_sealed: sealed("name"),
        date_of_birth_sealed: sealed("2012-03-04"),
        contact_details_sealed: sealed("details"),
        age_band: AgeBand::AgeBand10To12 as i32,
        gender: Gender::Girl as i32,
        language: "nl-NL".into(),
        region_sealed: sealed("Utrecht"),
        source: CaseSource::Helpline as i32,
        concerns: vec![
            ConcernCategory::Grooming as i32,
            ConcernCategory::Sextortion as i32,
        ],
        initial_risk: RiskLevel::High as i32,
        contact_id: String::new(),
    }
}

fn member(subject: &str, agency: &str, role: &str) -> TeamMemberAdded {
    TeamMemberAdded {
        subject: subject.into(),
        agency: agency.into(),
        role: role.into(),
    }
}

fn removal(subject: &str, agency: &str) -> TeamMemberRemoved {
    TeamMemberRemoved {
        subject: subject.into(),
        agency: agency.into(),
    }
}

/// The counsellor who opens the case: its first member.
fn opener() -> TeamMemberAdded {
    member("counsellor-1", "helpline", "helpline_counsellor")
}

fn contact() -> ContactAttached {
    ContactAttached {
        contact_id: "0000000c-0000-0000-0000-000000000001".into(),
        channel: ContactChannel::Chat as i32,
        caller_kind: CallerKind::Child as i32,
        concerns: vec![ConcernCategory::Sextortion as i32],
        urgency: Urgency::Urgent as i32,
        anonymous: true,
        summary_sealed: sealed("summary"),
        caller_name_sealed: Vec::new(),
        caller_contact_sealed: Vec::new(),
        contacted_at_unix_ms: 1_700_000_000_000,
    }
}

fn opening(contact: Option<ContactAttached>) -> Command {
    let mut opened = case_opened();
    if let Some(c) = &contact {
        opened.contact_id = c.contact_id.clone();
    }
    Command::Open(Box::new(Opening {
        opened,
        opener: opener(),
        contact,
    }))
}

fn risk(level: RiskLevel) -> RiskAssessed {
    RiskAssessed {
        level: level as i32,
        factors_sealed: sealed("factors"),
        immediate_actions_sealed: sealed("actions"),
    }
}

fn note() -> NoteAdded {
    NoteAdded {
        note_id: "0000000e-0000-0000-0000-000000000001".into(),
        compartment: NoteCompartment::Social as i32,
        text_sealed: sealed("note"),
    }
}

fn milestone(kind: MilestoneKind) -> JusticeMilestoneRecorded {
    JusticeMilestoneRecorded {
        milestone_id: format!("milestone-{}", kind as i32),
        kind: kind as i32,
        occurred_at_unix_ms: 1_700_000_000_000 + kind as i64,
        description_sealed: sealed("description"),
        child_informed: true,
        child_informed_at_unix_ms: 1_700_000_100_000,
    }
}

fn link(other: Uuid, id: Uuid) -> Command {
    Command::Link {
        case_id: case_id(),
        other_case_id: other,
        link_id: id,
        kind: LinkKind::SameSuspect as i32,
        reason_sealed: sealed("link"),
    }
}

fn linked(other: Uuid, id: Uuid) -> Event {
    Event::Linked(CasesLinked {
        link_id: id.to_string(),
        other_case_id: other.to_string(),
        kind: LinkKind::SameSuspect as i32,
        reason_sealed: sealed("link"),
    })
}

fn unlink(other: Uuid) -> Command {
    Command::Unlink {
        other_case_id: other,
        reason_sealed: sealed("unlink"),
    }
}

fn change_stage(to: Stage) -> Command {
    Command::ChangeStage {
        to,
        reason_sealed: sealed("stage"),
    }
}

fn stage_changed(from: Stage, to: Stage) -> Event {
    Event::StageChanged(StageChanged {
        from: from as i32,
        to: to as i32,
        reason_sealed: sealed("stage"),
    })
}

fn request_closure(by: Actor) -> Command {
    Command::RequestClosure {
        by,
        reason_sealed: sealed("closure"),
    }
}

fn closure_requested(by: &Actor) -> Event {
    Event::ClosureRequested(ClosureRequested {
        reason_sealed: sealed("closure"),
        requested_by: by.subject.clone(),
        requested_by_agency: by.agency.clone(),
    })
}

fn decide_closure(by: Actor, approve: bool) -> Command {
    Command::DecideClosure {
        by,
        approve,
        comment_sealed: sealed("decision"),
    }
}

fn closure_decided(approved: bool) -> Event {
    Event::ClosureDecided(ClosureDecided {
        approved,
        comment_sealed: sealed("decision"),
    })
}

fn reopen(stage: Stage) -> Command {
    Command::Reopen {
        stage,
        reason_sealed: sealed("reopen"),
    }
}

fn reopened(stage: Stage) -> Event {
    Event::Reopened(CaseReopened {
        stage: stage as i32,
        reason_sealed: sealed("reopen"),
    })
}

/// The supervisor who asks for closure.
fn supervisor_a() -> Actor {
    actor("supervisor-a", "social-services")
}

/// Another supervisor, who decides.
fn supervisor_b() -> Actor {
    actor("supervisor-b", "social-services")
}

/// The events of an open case: opened by the counsellor, who is its only member.
fn open_case() -> Vec<Event> {
    vec![Event::Opened(case_opened()), Event::MemberAdded(opener())]
}

/// An open case with `more` after its opening.
fn open_case_then(more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    let mut events = open_case();
    events.extend(more);
    events
}

/// The events of a closed case: opened, closure asked by A, approved by B.
fn closed_case() -> Vec<Event> {
    open_case_then([closure_requested(&supervisor_a()), closure_decided(true)])
}

/// One of every command but `Open` (and `Reopen` when `with_reopen` is false).
fn every_command_but_open(with_reopen: bool) -> Vec<Command> {
    let mut commands = vec![
        Command::AssessRisk(risk(RiskLevel::Medium)),
        Command::AddMember(member("worker-1", "social-services", "social_worker")),
        Command::RemoveMember(removal("counsellor-1", "helpline")),
        Command::AddNote(note()),
        link(other_case(), link_id(1)),
        unlink(other_case()),
        change_stage(Stage::Investigation),
        request_closure(supervisor_a()),
        decide_closure(supervisor_b(), true),
        Command::RecordMilestone(milestone(MilestoneKind::Report)),
    ];
    if with_reopen {
        commands.push(reopen(Stage::Intake));
    }
    commands
}

// ---------------------------------------------------------------------------------------
// Open

#[test]
fn opening_records_the_opening_then_the_opener_as_first_member() {
    let state = given::<Event>(&[]);

    let events = when(&state, opening(None));

    assert_eq!(
        events,
        Ok(vec![
            Event::Opened(case_opened()),
            Event::MemberAdded(opener())
        ])
    );
}

#[test]
fn opening_from_a_contact_attaches_the_contact_after_the_opener() {
    let state = given::<Event>(&[]);

    let events = when(&state, opening(Some(contact())));

    let mut opened = case_opened();
    opened.contact_id = contact().contact_id;
    assert_eq!(
        events,
        Ok(vec![
            Event::Opened(opened),
            Event::MemberAdded(opener()),
            Event::ContactAttached(contact()),
        ])
    );
}

#[test]
fn an_opened_case_is_in_intake_at_its_initial_risk_with_the_opener_on_its_team() {
    let state = given::<Event>(&[]);

    let events = when(&state, opening(Some(contact()))).unwrap();
    let state = then_state(state, &events);

    assert!(state.exists());
    assert_eq!(state.stage, Stage::Intake);
    assert_eq!(state.risk, RiskLevel::High);
    assert_eq!(
        state.team.into_iter().collect::<Vec<_>>(),
        vec![(
            ("counsellor-1".to_string(), "helpline".to_string()),
            "helpline_counsellor".to_string()
        )]
    );
    assert_eq!(state.closure_requested_by, None);
    assert!(state.links.is_empty());
    assert!(!state.reported);
    assert_eq!((state.notes, state.milestones), (0, 0));
}

#[test]
fn a_case_that_was_never_opened_does_not_exist() {
    let state = given::<Event>(&[]);

    assert!(!state.exists());
    assert_eq!(state.opened, None);
}

#[test]
fn opening_an_existing_case_is_refused() {
    let state = given(&open_case());

    assert_eq!(
        when(&state, opening(None)),
        refused("the case already exists")
    );
}

#[test]
fn opening_a_closed_case_is_refused_because_it_exists() {
    let state = given(&closed_case());

    assert_eq!(
        when(&state, opening(Some(contact()))),
        refused("the case already exists")
    );
}

// ---------------------------------------------------------------------------------------
// A case that does not exist

#[test]
fn every_command_but_open_on_a_missing_case_is_no_case() {
    let state = given::<Event>(&[]);

    for command in every_command_but_open(true) {
        let name = format!("{command:?}");
        assert_eq!(when(&state, command), Err(DomainError::Missing), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Closed and reopened

#[test]
fn an_approved_closure_closes_the_case() {
    let state = given(&closed_case());

    assert_eq!(state.stage, Stage::Closed);
    assert_eq!(state.closure_requested_by, None);
}

#[test]
fn every_command_but_reopen_and_removal_on_a_closed_case_is_refused() {
    let state = given(&closed_case());

    for command in every_command_but_open(false) {
        if matches!(command, Command::RemoveMember(_)) {
            continue;
        }
        let name = format!("{command:?}");
        assert_eq!(when(&state, command), refused(CLOSED), "{name}");
    }
}

#[test]
fn a_member_can_be_taken_off_a_closed_case() {
    let state = given(&closed_case());
    let mut events = closed_case();
    events.push(Event::MemberAdded(member(
        "worker-1",
        "social-services",
        "social_worker",
    )));
    let state_with_two = given(&events);
    assert_eq!(state.stage, Stage::Closed);

    let removal = removal("worker-1", "social-services");
    assert_eq!(
        when(&state_with_two, Command::RemoveMember(removal.clone())),
        Ok(vec![Event::MemberRemoved(removal)])
    );
}

#[test]
fn reopening_a_closed_case_reopens_it_into_the_stage_asked() {
    for stage in [
        Stage::Intake,
        Stage::Investigation,
        Stage::Prosecution,
        Stage::Aftercare,
    ] {
        let state = given(&closed_case());

        let events = when(&state, reopen(stage));

        assert_eq!(events, Ok(vec![reopened(stage)]), "{stage:?}");
        let state = then_state(state, &events.unwrap());
        assert_eq!(state.stage, stage);
    }
}

#[test]
fn a_reopened_case_takes_commands_again() {
    let state = given(&open_case_then([
        closure_requested(&supervisor_a()),
        closure_decided(true),
        reopened(Stage::Investigation),
    ]));

    assert_eq!(
        when(&state, Command::AddNote(note())),
        Ok(vec![Event::NoteAdded(note())])
    );
    assert_eq!(
        when(&state, change_stage(Stage::Prosecution)),
        Ok(vec![stage_changed(
            Stage::Investigation,
            Stage::Prosecution
        )])
    );
}

#[test]
fn a_reopened_case_can_be_closed_again() {
    let state = given(&open_case_then([
        closure_requested(&supervisor_a()),
        closure_decided(true),
        reopened(Stage::Aftercare),
    ]));

    assert_eq!(
        when(&state, request_closure(supervisor_b())),
        Ok(vec![closure_requested(&supervisor_b())])
    );
}

#[test]
fn reopening_an_open_case_is_refused() {
    let state = given(&open_case());

    assert_eq!(
        when(&state, reopen(Stage::Investigation)),
        refused("the case is not closed")
    );
}

#[test]
fn reopening_into_closed_or_unspecified_is_refused() {
    let state = given(&closed_case());

    for stage in [Stage::Closed, Stage::Unspecified] {
        assert_eq!(
            when(&state, reopen(stage)),
            refused("a case reopens into an open stage"),
            "{stage:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Team

#[test]
fn adding_a_member_puts_them_on_the_team_with_their_role() {
    let state = given(&open_case());
    let worker = member("worker-1", "social-services", "social_worker");

    let events = when(&state, Command::AddMember(worker.clone()));

    assert_eq!(events, Ok(vec![Event::MemberAdded(worker)]));
    let state = then_state(state, &events.unwrap());
    assert!(state.is_member(&actor("worker-1", "social-services")));
    assert_eq!(
        state
            .team
            .get(&("worker-1".to_string(), "social-services".to_string())),
        Some(&"social_worker".to_string())
    );
    assert_eq!(state.team.len(), 2);
}

#[test]
fn adding_a_member_already_on_the_team_is_refused() {
    let state = given(&open_case());

    // Same subject and agency, even in another role.
    let again = member("counsellor-1", "helpline", "supervisor");

    assert_eq!(
        when(&state, Command::AddMember(again)),
        refused("already a member of the team")
    );
}

#[test]
fn joining_puts_a_newcomer_on_the_team_and_changes_nothing_for_a_member() {
    let state = given(&open_case());
    let newcomer = member("shelter-worker-3", "safe-house", "social_worker");

    assert_eq!(
        when(&state, Command::Join(newcomer.clone())),
        Ok(vec![Event::MemberAdded(newcomer)])
    );
    // Already on the team, in whatever role: nothing to append, and no refusal.
    let again = member("counsellor-1", "helpline", "supervisor");
    assert_eq!(when(&state, Command::Join(again)), Ok(vec![]));
}

#[test]
fn nobody_joins_a_closed_or_missing_case() {
    let newcomer = member("shelter-worker-3", "safe-house", "social_worker");

    assert_eq!(
        when(&given(&closed_case()), Command::Join(newcomer.clone())),
        refused(CLOSED)
    );
    assert_eq!(
        when(&given::<Event>(&[]), Command::Join(newcomer)),
        Err(DomainError::Missing)
    );
}

#[test]
fn the_same_subject_from_another_agency_is_another_member() {
    let state = given(&open_case());
    let elsewhere = member("counsellor-1", "police", "police_investigator");

    let events = when(&state, Command::AddMember(elsewhere.clone()));

    assert_eq!(events, Ok(vec![Event::MemberAdded(elsewhere)]));
    let state = then_state(state, &events.unwrap());
    assert!(state.is_member(&actor("counsellor-1", "helpline")));
    assert!(state.is_member(&actor("counsellor-1", "police")));
    assert_eq!(state.team.len(), 2);
}

#[test]
fn removing_a_member_takes_them_off_the_team() {
    let state = given(&open_case_then([Event::MemberAdded(member(
        "worker-1",
        "social-services",
        "social_worker",
    ))]));

    let events = when(
        &state,
        Command::RemoveMember(removal("worker-1", "social-services")),
    );

    assert_eq!(
        events,
        Ok(vec![Event::MemberRemoved(removal(
            "worker-1",
            "social-services"
        ))])
    );
    let state = then_state(state, &events.unwrap());
    assert!(!state.is_member(&actor("worker-1", "social-services")));
    assert!(state.is_member(&actor("counsellor-1", "helpline")));
    assert_eq!(state.team.len(), 1);
}

#[test]
fn the_opener_can_leave_once_someone_else_is_on_the_team() {
    let state = given(&open_case_then([Event::MemberAdded(member(
        "worker-1",
        "social-services",
        "social_worker",
    ))]));

    let events = when(
        &state,
        Command::RemoveMember(removal("counsellor-1", "helpline")),
    );

    assert_eq!(
        events,
        Ok(vec![Event::MemberRemoved(removal(
            "counsellor-1",
            "helpline"
        ))])
    );
    let state = then_state(state, &events.unwrap());
    assert_eq!(
        state.team.keys().cloned().collect::<Vec<_>>(),
        vec![("worker-1".to_string(), "social-services".to_string())]
    );
}

#[test]
fn removing_someone_not_on_the_team_is_refused() {
    let state = given(&open_case_then([Event::MemberAdded(member(
        "worker-1",
        "social-services",
        "social_worker",
    ))]));

    assert_eq!(
        when(&state, Command::RemoveMember(removal("stranger", "police"))),
        refused("not a member of the team")
    );
    // The member's subject, but from another agency, is not the member.
    assert_eq!(
        when(&state, Command::RemoveMember(removal("worker-1", "police"))),
        refused("not a member of the team")
    );
}

#[test]
fn removing_a_member_who_already_left_is_refused() {
    let state = given(&open_case_then([
        Event::MemberAdded(member("worker-1", "social-services", "social_worker")),
        Event::MemberRemoved(removal("worker-1", "social-services")),
    ]));

    assert_eq!(
        when(
            &state,
            Command::RemoveMember(removal("worker-1", "social-services"))
        ),
        refused("not a member of the team")
    );
}

#[test]
fn removing_the_last_member_is_refused() {
    let state = given(&open_case());

    assert_eq!(
        when(
            &state,
            Command::RemoveMember(removal("counsellor-1", "helpline"))
        ),
        refused("the last member of the team cannot be removed: add another first")
    );
}

#[test]
fn a_member_who_left_can_be_added_again() {
    let worker = member("worker-1", "social-services", "social_worker");
    let state = given(&open_case_then([
        Event::MemberAdded(worker.clone()),
        Event::MemberRemoved(removal("worker-1", "social-services")),
    ]));

    assert_eq!(
        when(&state, Command::AddMember(worker.clone())),
        Ok(vec![Event::MemberAdded(worker)])
    );
}

// ---------------------------------------------------------------------------------------
// Risk and notes

#[test]
fn assessing_risk_records_the_assessment_and_sets_the_risk() {
    let state = given(&open_case());

    let events = when(
        &state,
        Command::AssessRisk(risk(RiskLevel::ImmediateDanger)),
    );

    assert_eq!(
        events,
        Ok(vec![Event::RiskAssessed(risk(RiskLevel::ImmediateDanger))])
    );
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.risk, RiskLevel::ImmediateDanger);
}

#[test]
fn the_latest_risk_assessment_is_the_risk() {
    let state = given(&open_case_then([
        Event::RiskAssessed(risk(RiskLevel::ImmediateDanger)),
        Event::RiskAssessed(risk(RiskLevel::Low)),
    ]));

    assert_eq!(state.risk, RiskLevel::Low);
}

#[test]
fn adding_a_note_records_it_unchanged() {
    let state = given(&open_case());

    let events = when(&state, Command::AddNote(note()));

    assert_eq!(events, Ok(vec![Event::NoteAdded(note())]));
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.notes, 1);
}

// ---------------------------------------------------------------------------------------
// Links

#[test]
fn linking_records_the_link_to_the_other_case() {
    let state = given(&open_case());

    let events = when(&state, link(other_case(), link_id(1)));

    assert_eq!(events, Ok(vec![linked(other_case(), link_id(1))]));
    let state = then_state(state, &events.unwrap());
    let active = state.links.get(&other_case()).expect("linked");
    assert_eq!(active.link_id, link_id(1).to_string());
    assert_eq!(active.kind, LinkKind::SameSuspect as i32);
}

#[test]
fn a_case_cannot_be_linked_to_itself() {
    let state = given(&open_case());

    assert_eq!(
        when(&state, link(case_id(), link_id(1))),
        refused("a case cannot be linked to itself")
    );
}

#[test]
fn linking_cases_already_linked_is_refused() {
    let state = given(&open_case_then([linked(other_case(), link_id(1))]));

    // Even with a new link id and another kind.
    let again = Command::Link {
        case_id: case_id(),
        other_case_id: other_case(),
        link_id: link_id(2),
        kind: LinkKind::Siblings as i32,
        reason_sealed: sealed("again"),
    };

    assert_eq!(when(&state, again), refused("the cases are already linked"));
}

#[test]
fn a_case_can_be_linked_to_several_others() {
    let state = given(&open_case_then([linked(other_case(), link_id(1))]));

    let events = when(&state, link(third_case(), link_id(2)));

    assert_eq!(events, Ok(vec![linked(third_case(), link_id(2))]));
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.links.len(), 2);
}

#[test]
fn unlinking_cases_that_are_not_linked_is_refused() {
    let state = given(&open_case_then([linked(other_case(), link_id(1))]));

    assert_eq!(
        when(&state, unlink(third_case())),
        refused("the cases are not linked from this case")
    );
}

#[test]
fn unlinking_records_the_original_link_id() {
    let state = given(&open_case_then([linked(other_case(), link_id(7))]));

    let events = when(&state, unlink(other_case()));

    assert_eq!(
        events,
        Ok(vec![Event::Unlinked(CasesUnlinked {
            link_id: link_id(7).to_string(),
            other_case_id: other_case().to_string(),
            reason_sealed: sealed("unlink"),
        })])
    );
    let state = then_state(state, &events.unwrap());
    assert!(state.links.is_empty());
}

#[test]
fn unlinking_twice_is_refused() {
    let state = given(&open_case_then([linked(other_case(), link_id(1))]));
    let events = when(&state, unlink(other_case())).unwrap();
    let state = then_state(state, &events);

    assert_eq!(
        when(&state, unlink(other_case())),
        refused("the cases are not linked from this case")
    );
}

#[test]
fn unlinked_cases_can_be_linked_again() {
    let state = given(&open_case_then([linked(other_case(), link_id(1))]));
    let events = when(&state, unlink(other_case())).unwrap();
    let state = then_state(state, &events);

    let events = when(&state, link(other_case(), link_id(2)));

    assert_eq!(events, Ok(vec![linked(other_case(), link_id(2))]));
    let state = then_state(state, &events.unwrap());
    assert_eq!(
        state.links.get(&other_case()).map(|l| l.link_id.clone()),
        Some(link_id(2).to_string())
    );
}

// ---------------------------------------------------------------------------------------
// Stages

#[test]
fn changing_stage_records_from_and_to_and_sets_the_stage() {
    let state = given(&open_case());

    let events = when(&state, change_stage(Stage::Investigation));

    assert_eq!(
        events,
        Ok(vec![stage_changed(Stage::Intake, Stage::Investigation)])
    );
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.stage, Stage::Investigation);

    let events = when(&state, change_stage(Stage::Aftercare));
    assert_eq!(
        events,
        Ok(vec![stage_changed(Stage::Investigation, Stage::Aftercare)])
    );
}

#[test]
fn a_stage_change_can_go_back() {
    let state = given(&open_case_then([stage_changed(
        Stage::Intake,
        Stage::Prosecution,
    )]));

    assert_eq!(
        when(&state, change_stage(Stage::Intake)),
        Ok(vec![stage_changed(Stage::Prosecution, Stage::Intake)])
    );
}

#[test]
fn changing_stage_to_closed_is_refused() {
    let state = given(&open_case());

    assert_eq!(
        when(&state, change_stage(Stage::Closed)),
        refused("closing needs a supervisor's approval: use RequestClosure")
    );
}

#[test]
fn changing_stage_to_unspecified_is_refused() {
    let state = given(&open_case());

    assert_eq!(
        when(&state, change_stage(Stage::Unspecified)),
        refused("a case moves into an open stage")
    );
}

#[test]
fn changing_to_the_current_stage_is_refused() {
    let state = given(&open_case());

    assert_eq!(
        when(&state, change_stage(Stage::Intake)),
        refused("the case is already in that stage")
    );
}

#[test]
fn changing_stage_while_a_closure_request_is_pending_is_refused() {
    let state = given(&open_case_then([closure_requested(&supervisor_a())]));

    assert_eq!(
        when(&state, change_stage(Stage::Investigation)),
        refused("a closure request is pending: a supervisor must decide it first")
    );
}

// ---------------------------------------------------------------------------------------
// Closure

#[test]
fn requesting_closure_records_who_asked_and_leaves_the_case_open() {
    let state = given(&open_case());

    let events = when(&state, request_closure(supervisor_a()));

    assert_eq!(events, Ok(vec![closure_requested(&supervisor_a())]));
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.closure_requested_by, Some(supervisor_a()));
    assert_eq!(state.stage, Stage::Intake);
}

#[test]
fn requesting_closure_while_one_is_pending_is_refused() {
    let state = given(&open_case_then([closure_requested(&supervisor_a())]));

    // Whoever asks.
    for by in [supervisor_a(), supervisor_b()] {
        assert_eq!(
            when(&state, request_closure(by)),
            refused("a closure request is already pending")
        );
    }
}

#[test]
fn deciding_closure_without_a_request_is_refused() {
    let state = given(&open_case());

    for approve in [true, false] {
        assert_eq!(
            when(&state, decide_closure(supervisor_b(), approve)),
            refused("no closure request is pending")
        );
    }
}

#[test]
fn closure_cannot_be_decided_by_whoever_asked_for_it() {
    let state = given(&open_case_then([closure_requested(&supervisor_a())]));

    for approve in [true, false] {
        assert_eq!(
            when(&state, decide_closure(supervisor_a(), approve)),
            refused("a closure must be decided by a supervisor other than the one who asked")
        );
    }
}

#[test]
fn the_asker_is_a_subject_at_an_agency_so_the_same_subject_elsewhere_may_decide() {
    let state = given(&open_case_then([closure_requested(&supervisor_a())]));

    assert_eq!(
        when(
            &state,
            decide_closure(actor("supervisor-a", "police"), true)
        ),
        Ok(vec![closure_decided(true)])
    );
}

#[test]
fn another_supervisor_approving_closes_the_case() {
    let state = given(&open_case_then([closure_requested(&supervisor_a())]));

    let events = when(&state, decide_closure(supervisor_b(), true));

    assert_eq!(events, Ok(vec![closure_decided(true)]));
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.stage, Stage::Closed);
    assert_eq!(state.closure_requested_by, None);
}

#[test]
fn a_rejected_closure_leaves_the_case_open_and_clears_the_request() {
    let state = given(&open_case_then([
        stage_changed(Stage::Intake, Stage::Aftercare),
        closure_requested(&supervisor_a()),
    ]));

    let events = when(&state, decide_closure(supervisor_b(), false));

    assert_eq!(events, Ok(vec![closure_decided(false)]));
    let state = then_state(state, &events.unwrap());
    assert_eq!(state.stage, Stage::Aftercare);
    assert_eq!(state.closure_requested_by, None);
    // No longer pending: the stage may change and closure may be asked again.
    assert_eq!(
        when(&state, change_stage(Stage::Investigation)),
        Ok(vec![stage_changed(Stage::Aftercare, Stage::Investigation)])
    );
    assert_eq!(
        when(&state, request_closure(supervisor_a())),
        Ok(vec![closure_requested(&supervisor_a())])
    );
    assert_eq!(
        when(&state, decide_closure(supervisor_b(), true)),
        refused("no closure request is pending")
    );
}

// ---------------------------------------------------------------------------------------
// Justice milestones

const NOT_REPORTS: [MilestoneKind; 8] = [
    MilestoneKind::Unspecified,
    MilestoneKind::Charge,
    MilestoneKind::FirstHearing,
    MilestoneKind::Trial,
    MilestoneKind::Verdict,
    MilestoneKind::Sentence,
    MilestoneKind::Appeal,
    MilestoneKind::RestitutionOrder,
];

#[test]
fn no_justice_milestone_comes_before_the_report() {
    let state = given(&open_case());

    for kind in NOT_REPORTS {
        assert_eq!(
            when(&state, Command::RecordMilestone(milestone(kind))),
            refused("no justice milestone before the report: record the report first"),
            "{kind:?}"
        );
    }
}

#[test]
fn recording_the_report_marks_the_case_reported() {
    let state = given(&open_case());

    let events = when(
        &state,
        Command::RecordMilestone(milestone(MilestoneKind::Report)),
    );

    assert_eq!(
        events,
        Ok(vec![Event::MilestoneRecorded(milestone(
            MilestoneKind::Report
        ))])
    );
    let state = then_state(state, &events.unwrap());
    assert!(state.reported);
    assert_eq!(state.milestones, 1);
}

#[test]
fn after_the_report_every_milestone_can_be_recorded() {
    let mut state = given(&open_case_then([Event::MilestoneRecorded(milestone(
        MilestoneKind::Report,
    ))]));

    for kind in NOT_REPORTS.into_iter().skip(1) {
        let events = when(&state, Command::RecordMilestone(milestone(kind)));
        assert_eq!(
            events,
            Ok(vec![Event::MilestoneRecorded(milestone(kind))]),
            "{kind:?}"
        );
        state = then_state(state, &events.unwrap());
    }
    assert_eq!(state.milestones, 8);
    assert!(state.reported);
}

// ---------------------------------------------------------------------------------------
// Encoding

/// One of every event, with every field set, and its stored type.
fn every_event() -> Vec<(Event, &'static str)> {
    let mut opened = case_opened();
    opened.contact_id = contact().contact_id;
    vec![
        (Event::Opened(opened), "caseline.v1.events.CaseOpened"),
        (
            Event::ContactAttached(contact()),
            "caseline.v1.events.ContactAttached",
        ),
        (
            Event::MemberAdded(opener()),
            "caseline.v1.events.TeamMemberAdded",
        ),
        (
            Event::MemberRemoved(removal("worker-1", "social-services")),
            "caseline.v1.events.TeamMemberRemoved",
        ),
        (
            Event::RiskAssessed(risk(RiskLevel::Medium)),
            "caseline.v1.events.RiskAssessed",
        ),
        (Event::NoteAdded(note()), "caseline.v1.events.NoteAdded"),
        (
            linked(other_case(), link_id(1)),
            "caseline.v1.events.CasesLinked",
        ),
        (
            Event::Unlinked(CasesUnlinked {
                link_id: link_id(1).to_string(),
                other_case_id: other_case().to_string(),
                reason_sealed: sealed("unlink"),
            }),
            "caseline.v1.events.CasesUnlinked",
        ),
        (
            stage_changed(Stage::Investigation, Stage::Prosecution),
            "caseline.v1.events.StageChanged",
        ),
        (
            closure_requested(&supervisor_a()),
            "caseline.v1.events.ClosureRequested",
        ),
        (closure_decided(true), "caseline.v1.events.ClosureDecided"),
        (
            reopened(Stage::Aftercare),
            "caseline.v1.events.CaseReopened",
        ),
        (
            Event::MilestoneRecorded(milestone(MilestoneKind::Verdict)),
            "caseline.v1.events.JusticeMilestoneRecorded",
        ),
    ]
}

#[test]
fn every_event_is_stored_under_its_payloads_full_name() {
    assert_stored_as(&every_event());
}

#[test]
fn an_event_with_default_fields_round_trips_too() {
    let event = Event::ClosureDecided(ClosureDecided::default());

    let decoded = Event::decode(event.event_type(), &event.encode());

    assert_eq!(decoded, Ok(Some(event)));
}

#[test]
fn an_event_type_the_case_stream_does_not_hold_decodes_to_none() {
    assert_holds_none::<Event>(&[
        "caseline.v1.events.NoSuchEvent",
        "",
        types::CONTACT_RECORDED,
        types::CONTACT_CASE_OPENED,
        types::ACCESS_RECORDED,
    ]);
}
