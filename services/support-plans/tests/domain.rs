//! The support plan aggregate's rules, given/when/then: given the events of a plan (its
//! creation written by its author), when a command is decided, then exactly these events
//! (or exactly this refusal). Pure: no store, no vault, no clock: sealed fields are plain
//! non-empty bytes and dates are fixed calendar dates.

use caseline_aggregate::EventCodec;
use caseline_aggregate::testing::{
    assert_holds_none, assert_invalid, assert_stored_as, given, given_by, refused, then_state,
    then_state_by, when,
};
use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    GoalAdded, GoalStatusUpdated, PlanApproved, PlanChangesRequested, PlanClosed, PlanCreated,
    PlanReviewed, PlanSubmitted, ProviderAssigned, ReviewScheduled, SafetyPlanRecorded,
    ServiceDelivered,
};
use caseline_proto::v1::{GoalDomain, GoalStatus, PlanClosure, PlanPhase, PlanStatus, RiskLevel};
use caseline_support_plans::domain::{
    Command, DomainError, Event, Goal, NO_GOAL, PlanState, is_health_goal,
};

// ---------------------------------------------------------------------------------------
// Given / when / then

const NOT_ASSESSED: &str = "the case has no risk assessment: record one before planning support";
const ALREADY_EXISTS: &str = "the plan already exists";
const CLOSED: &str = "the plan is closed";
const GOAL_EXISTS: &str = "the goal already exists";
const GOAL_RESOLVED: &str = "the goal is already achieved or discontinued";
const SAME_STATUS: &str = "the goal already has this status";
const NOT_SUBMITTABLE: &str = "only a draft, or a plan sent back for changes, is submitted";
const NO_GOALS: &str = "add at least one goal before submitting";
const NOT_SUBMITTED: &str = "only a submitted plan is approved or sent back";
const AUTHOR_DECIDES: &str = "the plan's author may not decide on it";
const OPEN_GOALS: &str = "every goal must be achieved or discontinued before the plan is closed";

// ---------------------------------------------------------------------------------------
// Fixtures

const PLAN_ID: &str = "0000000b-0000-0000-0000-000000000001";
const CASE_ID: &str = "0000000a-0000-0000-0000-000000000001";
/// The social worker who drafts the plan.
/// The author of the plans of these tests: who appends their events unless a test
/// says otherwise.
const AUTHOR: &str = caseline_aggregate::testing::ACTOR;
/// The supervisor who decides on it.
const SUPERVISOR: &str = "supervisor-3";
const PROVIDER: &str = "child-advocacy-centre";

/// A safety goal, during the investigation.
const SAFETY_GOAL: &str = "goal-safety";
/// A therapy goal (a health goal), during the prosecution.
const THERAPY_GOAL: &str = "goal-therapy";
/// A court-preparation goal, during the prosecution.
const COURT_GOAL: &str = "goal-court";
/// An education goal, in after-care.
const SCHOOL_GOAL: &str = "goal-school";

const REVIEW_DATE: &str = "2025-03-01";
const NEXT_REVIEW_DATE: &str = "2025-06-01";

fn sealed(text: &str) -> Vec<u8> {
    format!("sealed:{text}").into_bytes()
}

/// The creation as recorded: it names its author.
fn created() -> PlanCreated {
    PlanCreated {
        plan_id: PLAN_ID.into(),
        case_id: CASE_ID.into(),
        author: AUTHOR.into(),
    }
}

fn create(case_assessed: bool) -> Command {
    Command::Create {
        created: PlanCreated {
            author: String::new(),
            ..created()
        },
        author: AUTHOR.into(),
        case_assessed,
    }
}

fn plan_created() -> Event {
    Event::Created(created())
}

fn safety_plan(text: &str) -> SafetyPlanRecorded {
    SafetyPlanRecorded {
        plan_id: PLAN_ID.into(),
        text_sealed: sealed(text),
    }
}

fn goal(goal_id: &str, domain: GoalDomain, phase: PlanPhase) -> GoalAdded {
    GoalAdded {
        plan_id: PLAN_ID.into(),
        goal_id: goal_id.into(),
        domain: domain as i32,
        phase: phase as i32,
        description_sealed: sealed(goal_id),
        target_date: "2025-12-31".into(),
    }
}

fn safety_goal() -> GoalAdded {
    goal(SAFETY_GOAL, GoalDomain::Safety, PlanPhase::Investigation)
}

fn therapy_goal() -> GoalAdded {
    goal(THERAPY_GOAL, GoalDomain::Therapy, PlanPhase::Prosecution)
}

fn court_goal() -> GoalAdded {
    goal(
        COURT_GOAL,
        GoalDomain::CourtPreparation,
        PlanPhase::Prosecution,
    )
}

fn school_goal() -> GoalAdded {
    goal(SCHOOL_GOAL, GoalDomain::Education, PlanPhase::AfterCare)
}

fn assign(goal_id: &str) -> Command {
    Command::AssignProvider {
        goal_id: goal_id.into(),
        provider: PROVIDER.into(),
    }
}

fn provider_assigned(goal_id: &str, domain: GoalDomain) -> Event {
    Event::ProviderAssigned(ProviderAssigned {
        plan_id: PLAN_ID.into(),
        goal_id: goal_id.into(),
        domain: domain as i32,
        provider: PROVIDER.into(),
    })
}

fn deliver(goal_id: &str, on: &str) -> Command {
    Command::RecordServiceDelivered {
        goal_id: goal_id.into(),
        provider: PROVIDER.into(),
        delivered_on: on.into(),
        note_sealed: sealed("session"),
    }
}

fn delivered(goal_id: &str, domain: GoalDomain, on: &str) -> Event {
    Event::ServiceDelivered(ServiceDelivered {
        plan_id: PLAN_ID.into(),
        goal_id: goal_id.into(),
        domain: domain as i32,
        provider: PROVIDER.into(),
        delivered_on: on.into(),
        note_sealed: sealed("session"),
    })
}

fn update(goal_id: &str, status: GoalStatus, reason_sealed: Vec<u8>) -> Command {
    Command::UpdateGoalStatus {
        goal_id: goal_id.into(),
        status,
        reason_sealed,
    }
}

fn status_updated(
    goal_id: &str,
    domain: GoalDomain,
    status: GoalStatus,
    reason_sealed: Vec<u8>,
) -> Event {
    Event::GoalStatus(GoalStatusUpdated {
        plan_id: PLAN_ID.into(),
        goal_id: goal_id.into(),
        domain: domain as i32,
        status: status as i32,
        reason_sealed,
    })
}

fn achieved(goal_id: &str, domain: GoalDomain) -> Event {
    status_updated(goal_id, domain, GoalStatus::Achieved, Vec::new())
}

fn discontinued(goal_id: &str, domain: GoalDomain) -> Event {
    status_updated(goal_id, domain, GoalStatus::Discontinued, sealed("why"))
}

fn submitted() -> Event {
    Event::Submitted(PlanSubmitted {
        plan_id: PLAN_ID.into(),
    })
}

fn approve(by: &str) -> Command {
    Command::Approve {
        by: by.into(),
        comment_sealed: sealed("approved"),
    }
}

fn approved() -> Event {
    Event::Approved(PlanApproved {
        plan_id: PLAN_ID.into(),
        comment_sealed: sealed("approved"),
    })
}

fn request_changes(by: &str) -> Command {
    Command::RequestChanges {
        by: by.into(),
        comment_sealed: sealed("more after-care"),
    }
}

fn changes_requested() -> Event {
    Event::ChangesRequested(PlanChangesRequested {
        plan_id: PLAN_ID.into(),
        comment_sealed: sealed("more after-care"),
    })
}

fn schedule_review(date: &str) -> Command {
    Command::ScheduleReview {
        review_date: date.into(),
    }
}

fn review_scheduled(date: &str) -> Event {
    Event::ReviewScheduled(ReviewScheduled {
        plan_id: PLAN_ID.into(),
        review_date: date.into(),
    })
}

fn review(next_review_date: &str) -> PlanReviewed {
    PlanReviewed {
        plan_id: PLAN_ID.into(),
        summary_sealed: sealed("review"),
        risk_level: RiskLevel::Medium as i32,
        next_review_date: next_review_date.into(),
    }
}

fn closure(closure: PlanClosure) -> PlanClosed {
    PlanClosed {
        plan_id: PLAN_ID.into(),
        closure: closure as i32,
        note_sealed: sealed("closing"),
    }
}

/// A plan just created by its author.
fn draft_plan() -> Vec<Event> {
    vec![plan_created()]
}

/// A created plan with `more` after its creation.
fn draft_plan_then(more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    let mut events = draft_plan();
    events.extend(more);
    events
}

/// A draft with a safety plan and a goal in each phase: safety (investigation), therapy
/// and court preparation (prosecution), education (after-care).
fn drafted_plan() -> Vec<Event> {
    draft_plan_then([
        Event::SafetyPlan(safety_plan("safety plan")),
        Event::GoalAdded(safety_goal()),
        Event::GoalAdded(therapy_goal()),
        Event::GoalAdded(court_goal()),
        Event::GoalAdded(school_goal()),
    ])
}

/// A drafted plan with `more` after its drafting.
fn drafted_plan_then(more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    let mut events = drafted_plan();
    events.extend(more);
    events
}

fn submitted_plan() -> Vec<Event> {
    drafted_plan_then([submitted()])
}

fn changes_requested_plan() -> Vec<Event> {
    drafted_plan_then([submitted(), changes_requested()])
}

fn approved_plan() -> Vec<Event> {
    drafted_plan_then([submitted(), approved()])
}

/// An approved plan whose goals are all achieved or discontinued.
fn resolved_plan() -> Vec<Event> {
    drafted_plan_then([
        submitted(),
        approved(),
        achieved(SAFETY_GOAL, GoalDomain::Safety),
        achieved(THERAPY_GOAL, GoalDomain::Therapy),
        discontinued(COURT_GOAL, GoalDomain::CourtPreparation),
        achieved(SCHOOL_GOAL, GoalDomain::Education),
    ])
}

fn closed_plan() -> Vec<Event> {
    let mut events = resolved_plan();
    events.push(review_scheduled(REVIEW_DATE));
    events.push(Event::Closed(closure(PlanClosure::ChildIndependent)));
    events
}

/// The goal `goal_id` of `state`.
#[track_caller]
fn goal_of<'a>(state: &'a PlanState, goal_id: &str) -> &'a Goal {
    state
        .goals
        .get(goal_id)
        .unwrap_or_else(|| panic!("no goal {goal_id:?} in {:?}", state.goals.keys()))
}

/// One of every command but `Create`, its goal commands naming the drafted plan's safety
/// goal.
fn every_command_but_create() -> Vec<Command> {
    vec![
        Command::RecordSafetyPlan(safety_plan("another safety plan")),
        Command::AddGoal(goal("goal-new", GoalDomain::Family, PlanPhase::AfterCare)),
        assign(SAFETY_GOAL),
        deliver(SAFETY_GOAL, "2025-02-01"),
        update(SAFETY_GOAL, GoalStatus::InProgress, Vec::new()),
        Command::Submit,
        approve(SUPERVISOR),
        request_changes(SUPERVISOR),
        schedule_review(REVIEW_DATE),
        Command::RecordReview(review(NEXT_REVIEW_DATE)),
        Command::Close(closure(PlanClosure::Transferred)),
    ]
}

// ---------------------------------------------------------------------------------------
// Create

#[test]
fn creating_a_plan_for_an_assessed_case_records_it() {
    let state = given::<Event>(&[]);

    let events = when(&state, create(true));

    assert_eq!(events, Ok(vec![plan_created()]));
}

#[test]
fn creating_a_plan_for_a_case_without_a_risk_assessment_is_refused() {
    let state = given::<Event>(&[]);

    assert_eq!(when(&state, create(false)), refused(NOT_ASSESSED));
}

#[test]
fn a_created_plan_is_an_open_draft_without_goals_by_its_author() {
    let state = given::<Event>(&[]);

    let events = when(&state, create(true)).expect("created");
    let state = then_state_by(AUTHOR, state, &events);

    assert!(state.exists());
    assert!(state.is_open());
    assert_eq!(state.created, Some(created()));
    assert_eq!(state.status, PlanStatus::Draft);
    assert_eq!(state.author, AUTHOR);
    assert!(state.goals.is_empty());
    assert_eq!(state.open_goals(), 0);
    assert_eq!(state.next_review, None);
    assert_eq!(state.last_review, None);
    assert_eq!(state.closure, None);
}

#[test]
fn the_plans_author_is_the_one_its_creation_names_and_no_later_actor() {
    // The creation names its author, whoever appended it.
    let state = given_by("worker-9", &draft_plan());
    assert_eq!(state.author, AUTHOR);
    let decided = when(&PlanState::default(), create(true)).expect("created");
    assert!(matches!(&decided[..], [Event::Created(c)] if c.author == AUTHOR));

    // A creation that names none (older events) falls back to who wrote it.
    let unnamed = Event::Created(PlanCreated {
        author: String::new(),
        ..created()
    });
    let state = given_by("worker-9", &[unnamed]);
    assert_eq!(state.author, "worker-9");

    let state = then_state_by(SUPERVISOR, state, &[submitted(), approved()]);
    assert_eq!(state.author, "worker-9");
}

#[test]
fn creating_a_plan_that_exists_is_refused() {
    for events in [draft_plan(), submitted_plan(), approved_plan()] {
        let state = given(&events);

        assert_eq!(
            when(&state, create(true)),
            refused(ALREADY_EXISTS),
            "{:?}",
            state.status
        );
        assert_eq!(
            when(&state, create(false)),
            refused(ALREADY_EXISTS),
            "{:?}",
            state.status
        );
    }
}

// ---------------------------------------------------------------------------------------
// A plan that does not exist

#[test]
fn a_plan_never_created_does_not_exist() {
    let state = given::<Event>(&[]);

    assert!(!state.exists());
    assert!(!state.is_open());
    assert_eq!(state.created, None);
    assert_eq!(state.status, PlanStatus::Unspecified);
}

#[test]
fn every_command_but_create_on_a_missing_plan_is_no_plan() {
    let state = given::<Event>(&[]);

    for command in every_command_but_create() {
        let name = format!("{command:?}");
        assert_eq!(when(&state, command), Err(DomainError::Missing), "{name}");
    }
}

#[test]
fn goal_commands_naming_an_unknown_goal_are_no_goal() {
    let state = given(&drafted_plan());

    for command in [
        assign("goal-unknown"),
        deliver("goal-unknown", "2025-02-01"),
        update("goal-unknown", GoalStatus::Achieved, Vec::new()),
        update("goal-unknown", GoalStatus::Discontinued, sealed("why")),
    ] {
        let name = format!("{command:?}");
        assert_eq!(when(&state, command), Err(NO_GOAL), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Safety plan

#[test]
fn recording_a_safety_plan_keeps_its_text() {
    let state = given(&draft_plan());

    let events = when(
        &state,
        Command::RecordSafetyPlan(safety_plan("stay with aunt")),
    );

    assert_eq!(
        events,
        Ok(vec![Event::SafetyPlan(safety_plan("stay with aunt"))])
    );
    let state = then_state(state, &events.expect("recorded"));
    assert_eq!(state.safety_plan_sealed, sealed("stay with aunt"));
}

#[test]
fn a_later_safety_plan_replaces_the_earlier() {
    let state = given(&drafted_plan());

    let events = when(&state, Command::RecordSafetyPlan(safety_plan("revised"))).expect("recorded");
    let state = then_state(state, &events);

    assert_eq!(state.safety_plan_sealed, sealed("revised"));
}

#[test]
fn a_safety_plan_without_text_is_refused_naming_text() {
    let state = given(&draft_plan());
    let empty = SafetyPlanRecorded {
        text_sealed: Vec::new(),
        ..safety_plan("")
    };

    assert_invalid(when(&state, Command::RecordSafetyPlan(empty)), "text");
}

// ---------------------------------------------------------------------------------------
// Goals

#[test]
fn goals_across_the_three_phases_and_several_domains_are_added() {
    let mut state = given(&draft_plan());

    for added in [safety_goal(), therapy_goal(), court_goal(), school_goal()] {
        let events = when(&state, Command::AddGoal(added.clone()));
        assert_eq!(
            events,
            Ok(vec![Event::GoalAdded(added.clone())]),
            "{added:?}"
        );
        state = then_state(state, &events.expect("added"));
    }

    assert_eq!(state.goals.len(), 4);
    assert_eq!(state.open_goals(), 4);
    for (goal_id, domain, phase) in [
        (SAFETY_GOAL, GoalDomain::Safety, PlanPhase::Investigation),
        (THERAPY_GOAL, GoalDomain::Therapy, PlanPhase::Prosecution),
        (
            COURT_GOAL,
            GoalDomain::CourtPreparation,
            PlanPhase::Prosecution,
        ),
        (SCHOOL_GOAL, GoalDomain::Education, PlanPhase::AfterCare),
    ] {
        let goal = goal_of(&state, goal_id);
        assert_eq!(goal.added.domain, domain as i32, "{goal_id}");
        assert_eq!(goal.added.phase, phase as i32, "{goal_id}");
    }
}

#[test]
fn a_new_goal_is_planned_without_a_provider_or_deliveries() {
    let state = given(&draft_plan());

    let events = when(&state, Command::AddGoal(therapy_goal())).expect("added");
    let state = then_state(state, &events);

    let goal = goal_of(&state, THERAPY_GOAL);
    assert_eq!(goal.added, therapy_goal());
    assert_eq!(goal.status, GoalStatus::Planned);
    assert!(!goal.is_resolved());
    assert!(goal.provider.is_empty());
    assert!(goal.deliveries.is_empty());
    assert!(goal.status_reason_sealed.is_empty());
}

#[test]
fn adding_a_goal_whose_id_exists_is_refused() {
    let state = given(&drafted_plan());
    let same_id = goal(SAFETY_GOAL, GoalDomain::Family, PlanPhase::AfterCare);

    assert_eq!(
        when(&state, Command::AddGoal(same_id)),
        refused(GOAL_EXISTS)
    );
}

#[test]
fn a_goal_without_a_domain_is_refused_naming_domain() {
    let state = given(&draft_plan());

    for domain in [GoalDomain::Unspecified as i32, 99] {
        let added = GoalAdded {
            domain,
            ..safety_goal()
        };

        assert_invalid(when(&state, Command::AddGoal(added)), "domain");
    }
}

// ---------------------------------------------------------------------------------------
// Providers

#[test]
fn assigning_a_provider_names_the_goals_domain() {
    let state = given(&drafted_plan());

    assert_eq!(
        when(&state, assign(THERAPY_GOAL)),
        Ok(vec![provider_assigned(THERAPY_GOAL, GoalDomain::Therapy)])
    );
    assert_eq!(
        when(&state, assign(SCHOOL_GOAL)),
        Ok(vec![provider_assigned(SCHOOL_GOAL, GoalDomain::Education)])
    );
}

#[test]
fn an_assigned_provider_is_kept_on_the_goal_which_stays_planned() {
    let state = given(&drafted_plan());

    let events = when(&state, assign(THERAPY_GOAL)).expect("assigned");
    let state = then_state(state, &events);

    let goal = goal_of(&state, THERAPY_GOAL);
    assert_eq!(goal.provider, PROVIDER);
    assert_eq!(goal.status, GoalStatus::Planned);
}

#[test]
fn assigning_a_provider_to_an_achieved_or_discontinued_goal_is_refused() {
    let state = given(&drafted_plan_then([
        achieved(SAFETY_GOAL, GoalDomain::Safety),
        discontinued(COURT_GOAL, GoalDomain::CourtPreparation),
    ]));

    assert_eq!(when(&state, assign(SAFETY_GOAL)), refused(GOAL_RESOLVED));
    assert_eq!(when(&state, assign(COURT_GOAL)), refused(GOAL_RESOLVED));
}

// ---------------------------------------------------------------------------------------
// Services delivered

#[test]
fn a_delivered_service_names_the_goals_domain() {
    let state = given(&drafted_plan());

    assert_eq!(
        when(&state, deliver(THERAPY_GOAL, "2025-02-01")),
        Ok(vec![delivered(
            THERAPY_GOAL,
            GoalDomain::Therapy,
            "2025-02-01"
        )])
    );
    assert_eq!(
        when(&state, deliver(COURT_GOAL, "2025-02-02")),
        Ok(vec![delivered(
            COURT_GOAL,
            GoalDomain::CourtPreparation,
            "2025-02-02"
        )])
    );
}

#[test]
fn a_delivery_moves_a_planned_goal_in_progress() {
    let state = given(&drafted_plan());

    let events = when(&state, deliver(THERAPY_GOAL, "2025-02-01")).expect("delivered");
    let state = then_state(state, &events);

    let goal = goal_of(&state, THERAPY_GOAL);
    assert_eq!(goal.status, GoalStatus::InProgress);
    assert_eq!(
        goal.deliveries,
        vec![ServiceDelivered {
            plan_id: PLAN_ID.into(),
            goal_id: THERAPY_GOAL.into(),
            domain: GoalDomain::Therapy as i32,
            provider: PROVIDER.into(),
            delivered_on: "2025-02-01".into(),
            note_sealed: sealed("session"),
        }]
    );
    assert_eq!(goal_of(&state, SAFETY_GOAL).status, GoalStatus::Planned);
}

#[test]
fn further_deliveries_are_added_and_the_goal_stays_in_progress() {
    let state = given(&drafted_plan_then([delivered(
        THERAPY_GOAL,
        GoalDomain::Therapy,
        "2025-02-01",
    )]));

    let events = when(&state, deliver(THERAPY_GOAL, "2025-02-08")).expect("delivered");
    let state = then_state(state, &events);

    let goal = goal_of(&state, THERAPY_GOAL);
    assert_eq!(goal.status, GoalStatus::InProgress);
    let dates: Vec<&str> = goal
        .deliveries
        .iter()
        .map(|d| d.delivered_on.as_str())
        .collect();
    assert_eq!(dates, ["2025-02-01", "2025-02-08"]);
}

#[test]
fn recording_a_delivery_on_an_achieved_or_discontinued_goal_is_refused() {
    let state = given(&drafted_plan_then([
        achieved(SAFETY_GOAL, GoalDomain::Safety),
        discontinued(COURT_GOAL, GoalDomain::CourtPreparation),
    ]));

    assert_eq!(
        when(&state, deliver(SAFETY_GOAL, "2025-02-01")),
        refused(GOAL_RESOLVED)
    );
    assert_eq!(
        when(&state, deliver(COURT_GOAL, "2025-02-01")),
        refused(GOAL_RESOLVED)
    );
}

// ---------------------------------------------------------------------------------------
// Goal status

#[test]
fn updating_a_goals_status_names_the_goals_domain() {
    let state = given(&drafted_plan());

    assert_eq!(
        when(
            &state,
            update(THERAPY_GOAL, GoalStatus::InProgress, Vec::new())
        ),
        Ok(vec![status_updated(
            THERAPY_GOAL,
            GoalDomain::Therapy,
            GoalStatus::InProgress,
            Vec::new()
        )])
    );
}

#[test]
fn an_achieved_goal_is_resolved_and_no_longer_open() {
    let state = given(&drafted_plan());

    let events = when(
        &state,
        update(SAFETY_GOAL, GoalStatus::Achieved, Vec::new()),
    )
    .expect("achieved");
    let state = then_state(state, &events);

    let goal = goal_of(&state, SAFETY_GOAL);
    assert_eq!(goal.status, GoalStatus::Achieved);
    assert!(goal.is_resolved());
    assert_eq!(state.open_goals(), 3);
}

#[test]
fn a_discontinued_goal_keeps_its_reason() {
    let state = given(&drafted_plan());

    let events = when(
        &state,
        update(COURT_GOAL, GoalStatus::Discontinued, sealed("case dropped")),
    );

    assert_eq!(
        events,
        Ok(vec![status_updated(
            COURT_GOAL,
            GoalDomain::CourtPreparation,
            GoalStatus::Discontinued,
            sealed("case dropped")
        )])
    );
    let state = then_state(state, &events.expect("discontinued"));
    let goal = goal_of(&state, COURT_GOAL);
    assert_eq!(goal.status, GoalStatus::Discontinued);
    assert!(goal.is_resolved());
    assert_eq!(goal.status_reason_sealed, sealed("case dropped"));
}

#[test]
fn discontinuing_a_goal_without_a_reason_is_refused_naming_reason() {
    let state = given(&drafted_plan());

    assert_invalid(
        when(
            &state,
            update(COURT_GOAL, GoalStatus::Discontinued, Vec::new()),
        ),
        "reason",
    );
}

#[test]
fn a_goal_status_left_unspecified_is_refused_naming_status() {
    let state = given(&drafted_plan());

    assert_invalid(
        when(
            &state,
            update(SAFETY_GOAL, GoalStatus::Unspecified, Vec::new()),
        ),
        "status",
    );
}

#[test]
fn setting_a_goal_to_the_status_it_has_is_refused() {
    let state = given(&drafted_plan_then([delivered(
        THERAPY_GOAL,
        GoalDomain::Therapy,
        "2025-02-01",
    )]));

    assert_eq!(
        when(&state, update(SAFETY_GOAL, GoalStatus::Planned, Vec::new())),
        refused(SAME_STATUS)
    );
    assert_eq!(
        when(
            &state,
            update(THERAPY_GOAL, GoalStatus::InProgress, Vec::new())
        ),
        refused(SAME_STATUS)
    );
}

#[test]
fn a_resolved_goal_cannot_change_status() {
    let state = given(&drafted_plan_then([
        achieved(SAFETY_GOAL, GoalDomain::Safety),
        discontinued(COURT_GOAL, GoalDomain::CourtPreparation),
    ]));

    for (goal_id, status, reason) in [
        (SAFETY_GOAL, GoalStatus::InProgress, Vec::new()),
        (SAFETY_GOAL, GoalStatus::Discontinued, sealed("why")),
        (SAFETY_GOAL, GoalStatus::Achieved, Vec::new()),
        (COURT_GOAL, GoalStatus::Achieved, Vec::new()),
        (COURT_GOAL, GoalStatus::Planned, Vec::new()),
    ] {
        assert_eq!(
            when(&state, update(goal_id, status, reason)),
            refused(GOAL_RESOLVED),
            "{goal_id} {status:?}"
        );
    }
}

#[test]
fn a_goal_is_resolved_exactly_when_achieved_or_discontinued() {
    for (status, resolved) in [
        (GoalStatus::Unspecified, false),
        (GoalStatus::Planned, false),
        (GoalStatus::InProgress, false),
        (GoalStatus::Achieved, true),
        (GoalStatus::Discontinued, true),
    ] {
        let goal = Goal {
            status,
            ..Goal::default()
        };

        assert_eq!(goal.is_resolved(), resolved, "{status:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Submit

#[test]
fn submitting_a_draft_with_goals_submits_it() {
    let state = given(&drafted_plan());

    let events = when(&state, Command::Submit);

    assert_eq!(events, Ok(vec![submitted()]));
    let state = then_state(state, &events.expect("submitted"));
    assert_eq!(state.status, PlanStatus::Submitted);
}

#[test]
fn submitting_a_plan_without_goals_is_refused() {
    let state = given(&draft_plan_then([Event::SafetyPlan(safety_plan(
        "safety plan",
    ))]));

    assert_eq!(when(&state, Command::Submit), refused(NO_GOALS));
}

#[test]
fn only_a_draft_or_a_plan_sent_back_is_submitted() {
    for events in [submitted_plan(), approved_plan()] {
        let state = given(&events);

        assert_eq!(
            when(&state, Command::Submit),
            refused(NOT_SUBMITTABLE),
            "{:?}",
            state.status
        );
    }
}

// ---------------------------------------------------------------------------------------
// Approve, request changes

#[test]
fn a_supervisor_approves_a_submitted_plan() {
    let state = given(&submitted_plan());

    let events = when(&state, approve(SUPERVISOR));

    assert_eq!(events, Ok(vec![approved()]));
    let state = then_state_by(SUPERVISOR, state, &events.expect("approved"));
    assert_eq!(state.status, PlanStatus::Approved);
    assert!(state.is_open());
}

#[test]
fn an_approval_may_carry_no_comment() {
    let state = given(&submitted_plan());

    let events = when(
        &state,
        Command::Approve {
            by: SUPERVISOR.into(),
            comment_sealed: Vec::new(),
        },
    );

    assert_eq!(
        events,
        Ok(vec![Event::Approved(PlanApproved {
            plan_id: PLAN_ID.into(),
            comment_sealed: Vec::new(),
        })])
    );
}

#[test]
fn a_supervisor_sends_a_submitted_plan_back_for_changes() {
    let state = given(&submitted_plan());

    let events = when(&state, request_changes(SUPERVISOR));

    assert_eq!(events, Ok(vec![changes_requested()]));
    let state = then_state_by(SUPERVISOR, state, &events.expect("sent back"));
    assert_eq!(state.status, PlanStatus::ChangesRequested);
}

#[test]
fn only_a_submitted_plan_is_approved_or_sent_back() {
    for events in [drafted_plan(), changes_requested_plan(), approved_plan()] {
        let state = given(&events);

        assert_eq!(
            when(&state, approve(SUPERVISOR)),
            refused(NOT_SUBMITTED),
            "{:?}",
            state.status
        );
        assert_eq!(
            when(&state, request_changes(SUPERVISOR)),
            refused(NOT_SUBMITTED),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn the_plans_author_may_not_approve_it() {
    let state = given(&submitted_plan());

    assert_eq!(when(&state, approve(AUTHOR)), refused(AUTHOR_DECIDES));
}

#[test]
fn the_plans_author_may_not_send_it_back() {
    let state = given(&submitted_plan());

    assert_eq!(
        when(&state, request_changes(AUTHOR)),
        refused(AUTHOR_DECIDES)
    );
}

#[test]
fn requesting_changes_without_a_comment_is_refused_naming_comment() {
    let state = given(&submitted_plan());

    let result = when(
        &state,
        Command::RequestChanges {
            by: SUPERVISOR.into(),
            comment_sealed: Vec::new(),
        },
    );

    assert_invalid(result, "comment");
}

#[test]
fn a_plan_sent_back_is_changed_submitted_again_and_approved() {
    let state = given(&changes_requested_plan());

    let added = goal("goal-family", GoalDomain::Family, PlanPhase::AfterCare);
    let events = when(&state, Command::AddGoal(added.clone()));
    assert_eq!(events, Ok(vec![Event::GoalAdded(added)]));
    let state = then_state(state, &events.expect("added"));
    assert_eq!(state.status, PlanStatus::ChangesRequested);

    let events = when(&state, Command::Submit);
    assert_eq!(events, Ok(vec![submitted()]));
    let state = then_state(state, &events.expect("submitted again"));
    assert_eq!(state.status, PlanStatus::Submitted);

    let events = when(&state, approve(SUPERVISOR));
    assert_eq!(events, Ok(vec![approved()]));
    let state = then_state_by(SUPERVISOR, state, &events.expect("approved"));
    assert_eq!(state.status, PlanStatus::Approved);
    assert_eq!(state.goals.len(), 5);
    assert_eq!(state.author, AUTHOR);
}

// ---------------------------------------------------------------------------------------
// Reviews

#[test]
fn scheduling_a_review_sets_the_next_review() {
    let state = given(&approved_plan());

    let events = when(&state, schedule_review(REVIEW_DATE));

    assert_eq!(events, Ok(vec![review_scheduled(REVIEW_DATE)]));
    let state = then_state(state, &events.expect("scheduled"));
    assert_eq!(state.next_review.as_deref(), Some(REVIEW_DATE));
}

#[test]
fn scheduling_another_review_replaces_the_next_review() {
    let state = given(&approved_plan());
    let state = then_state(state, &[review_scheduled(REVIEW_DATE)]);

    let events = when(&state, schedule_review("2025-04-01")).expect("scheduled");
    let state = then_state(state, &events);

    assert_eq!(state.next_review.as_deref(), Some("2025-04-01"));
}

#[test]
fn a_review_is_recorded_on_the_plan_and_sets_the_next_review() {
    let state = given(&approved_plan());
    let state = then_state(state, &[review_scheduled(REVIEW_DATE)]);

    let events = when(&state, Command::RecordReview(review(NEXT_REVIEW_DATE)));

    assert_eq!(events, Ok(vec![Event::Reviewed(review(NEXT_REVIEW_DATE))]));
    let state = then_state(state, &events.expect("reviewed"));
    assert_eq!(state.last_review, Some(review(NEXT_REVIEW_DATE)));
    assert_eq!(state.next_review.as_deref(), Some(NEXT_REVIEW_DATE));
}

#[test]
fn a_review_with_no_next_date_leaves_no_review_scheduled() {
    let state = given(&approved_plan());
    let state = then_state(state, &[review_scheduled(REVIEW_DATE)]);

    let events = when(&state, Command::RecordReview(review(""))).expect("reviewed");
    let state = then_state(state, &events);

    assert_eq!(state.next_review, None);
    assert_eq!(state.last_review, Some(review("")));
}

#[test]
fn a_review_is_recorded_under_the_plans_own_id() {
    let state = given(&approved_plan());
    let asked = PlanReviewed {
        plan_id: String::new(),
        ..review(NEXT_REVIEW_DATE)
    };

    assert_eq!(
        when(&state, Command::RecordReview(asked)),
        Ok(vec![Event::Reviewed(review(NEXT_REVIEW_DATE))])
    );
}

#[test]
fn a_review_without_a_summary_is_refused_naming_summary() {
    let state = given(&approved_plan());
    let asked = PlanReviewed {
        summary_sealed: Vec::new(),
        ..review(NEXT_REVIEW_DATE)
    };

    assert_invalid(when(&state, Command::RecordReview(asked)), "summary");
}

// ---------------------------------------------------------------------------------------
// Close

#[test]
fn closing_a_plan_with_an_open_goal_is_refused() {
    // Three goals resolved, the therapy goal still in progress.
    let state = given(&drafted_plan_then([
        submitted(),
        approved(),
        achieved(SAFETY_GOAL, GoalDomain::Safety),
        delivered(THERAPY_GOAL, GoalDomain::Therapy, "2025-02-01"),
        discontinued(COURT_GOAL, GoalDomain::CourtPreparation),
        achieved(SCHOOL_GOAL, GoalDomain::Education),
    ]));
    assert_eq!(state.open_goals(), 1);

    assert_eq!(
        when(&state, Command::Close(closure(PlanClosure::MovedAway))),
        refused(OPEN_GOALS)
    );
}

#[test]
fn closing_a_plan_whose_goals_are_all_planned_is_refused() {
    let state = given(&approved_plan());

    assert_eq!(
        when(&state, Command::Close(closure(PlanClosure::Other))),
        refused(OPEN_GOALS)
    );
}

#[test]
fn a_plan_whose_goals_are_all_achieved_or_discontinued_is_closed() {
    let state = given(&resolved_plan());
    assert_eq!(state.open_goals(), 0);

    let events = when(
        &state,
        Command::Close(closure(PlanClosure::ChildIndependent)),
    );

    assert_eq!(
        events,
        Ok(vec![Event::Closed(closure(PlanClosure::ChildIndependent))])
    );
}

#[test]
fn a_closure_is_recorded_under_the_plans_own_id() {
    let state = given(&resolved_plan());
    let asked = PlanClosed {
        plan_id: "someone-elses-plan".into(),
        ..closure(PlanClosure::Transferred)
    };

    assert_eq!(
        when(&state, Command::Close(asked)),
        Ok(vec![Event::Closed(closure(PlanClosure::Transferred))])
    );
}

#[test]
fn a_closed_plan_keeps_its_closure_and_no_review_is_scheduled() {
    let state = given(&resolved_plan());
    let state = then_state(state, &[review_scheduled(REVIEW_DATE)]);
    assert_eq!(state.next_review.as_deref(), Some(REVIEW_DATE));

    let events = when(
        &state,
        Command::Close(closure(PlanClosure::ChildIndependent)),
    )
    .expect("closed");
    let state = then_state(state, &events);

    assert_eq!(state.status, PlanStatus::Closed);
    assert!(state.exists());
    assert!(!state.is_open());
    assert_eq!(state.closure, Some(closure(PlanClosure::ChildIndependent)));
    assert_eq!(state.next_review, None);
}

#[test]
fn a_closure_left_unspecified_is_refused_naming_closure() {
    let state = given(&resolved_plan());

    for value in [PlanClosure::Unspecified as i32, 99] {
        let asked = PlanClosed {
            closure: value,
            ..closure(PlanClosure::Other)
        };

        assert_invalid(when(&state, Command::Close(asked)), "closure");
    }
}

#[test]
fn every_command_on_a_closed_plan_is_refused() {
    let state = given(&closed_plan());

    for command in every_command_but_create() {
        let name = format!("{command:?}");
        assert_eq!(when(&state, command), refused(CLOSED), "{name}");
    }
}

#[test]
fn creating_a_closed_plan_again_is_refused_because_it_exists() {
    let state = given(&closed_plan());

    assert_eq!(when(&state, create(true)), refused(ALREADY_EXISTS));
}

// ---------------------------------------------------------------------------------------
// Health goals

#[test]
fn a_health_goal_is_exactly_a_medical_or_therapy_goal() {
    for (domain, health) in [
        (GoalDomain::Unspecified, false),
        (GoalDomain::Safety, false),
        (GoalDomain::Medical, true),
        (GoalDomain::Therapy, true),
        (GoalDomain::Accommodation, false),
        (GoalDomain::Education, false),
        (GoalDomain::CourtPreparation, false),
        (GoalDomain::Financial, false),
        (GoalDomain::Family, false),
        (GoalDomain::Independence, false),
    ] {
        assert_eq!(is_health_goal(domain as i32), health, "{domain:?}");
    }
    assert!(!is_health_goal(99));
    assert!(!is_health_goal(-1));
}

// ---------------------------------------------------------------------------------------
// Encoding

/// One of every event, with every field set, and its stored type.
fn every_event() -> Vec<(Event, &'static str)> {
    vec![
        (plan_created(), "caseline.v1.events.PlanCreated"),
        (
            Event::SafetyPlan(safety_plan("safety plan")),
            "caseline.v1.events.SafetyPlanRecorded",
        ),
        (
            Event::GoalAdded(therapy_goal()),
            "caseline.v1.events.GoalAdded",
        ),
        (
            provider_assigned(THERAPY_GOAL, GoalDomain::Therapy),
            "caseline.v1.events.ProviderAssigned",
        ),
        (
            delivered(THERAPY_GOAL, GoalDomain::Therapy, "2025-02-01"),
            "caseline.v1.events.ServiceDelivered",
        ),
        (
            discontinued(COURT_GOAL, GoalDomain::CourtPreparation),
            "caseline.v1.events.GoalStatusUpdated",
        ),
        (submitted(), "caseline.v1.events.PlanSubmitted"),
        (approved(), "caseline.v1.events.PlanApproved"),
        (
            changes_requested(),
            "caseline.v1.events.PlanChangesRequested",
        ),
        (
            review_scheduled(REVIEW_DATE),
            "caseline.v1.events.ReviewScheduled",
        ),
        (
            Event::Reviewed(review(NEXT_REVIEW_DATE)),
            "caseline.v1.events.PlanReviewed",
        ),
        (
            Event::Closed(closure(PlanClosure::MovedAway)),
            "caseline.v1.events.PlanClosed",
        ),
    ]
}

#[test]
fn every_event_is_stored_under_its_payloads_full_name() {
    assert_stored_as(&every_event());
}

#[test]
fn an_event_with_default_fields_round_trips_too() {
    let event = Event::Submitted(PlanSubmitted::default());

    let decoded = Event::decode(event.event_type(), &event.encode());

    assert_eq!(decoded, Ok(Some(event)));
}

#[test]
fn an_event_type_the_plan_stream_does_not_hold_decodes_to_none() {
    assert_holds_none::<Event>(&[
        "caseline.v1.events.NoSuchEvent",
        "",
        "PlanCreated",
        types::CASE_OPENED,
        types::RISK_ASSESSED,
        types::REFERRAL_MADE,
        types::ACCESS_RECORDED,
    ]);
}

// ---------------------------------------------------------------------------------------
// Approval means something

#[test]
fn someone_who_wrote_part_of_the_plan_may_not_decide_on_it() {
    // A goal added by another worker (say, acting later as a supervisor).
    let state = then_state_by(
        "colleague-4",
        given(&drafted_plan()),
        &[Event::GoalAdded(goal(
            "goal-extra",
            GoalDomain::Family,
            PlanPhase::AfterCare,
        ))],
    );
    let state = then_state(state, &[submitted()]);
    assert!(state.writers.contains("colleague-4"));
    assert_eq!(
        when(&state, approve("colleague-4")),
        refused("someone who wrote part of the plan may not decide on it")
    );
    assert!(when(&state, approve(SUPERVISOR)).is_ok());
}

#[test]
fn the_plan_does_not_change_while_a_decision_waits() {
    let state = given(&submitted_plan());
    const WAITS: &str =
        "the plan awaits a decision: it changes after approval or a request for changes";
    assert_eq!(
        when(&state, Command::AddGoal(school_goal())),
        refused(WAITS)
    );
    assert_eq!(
        when(&state, Command::RecordSafetyPlan(safety_plan("new"))),
        refused(WAITS)
    );
    // Carrying it out goes on: services, statuses.
    assert!(when(&state, deliver(SAFETY_GOAL, REVIEW_DATE)).is_ok());
}

#[test]
fn a_new_goal_or_safety_plan_returns_an_approved_plan_to_draft() {
    let approved_plan = drafted_plan_then([submitted(), approved()]);
    let state = given(&approved_plan);
    assert_eq!(state.status, PlanStatus::Approved);
    let extra = GoalAdded {
        goal_id: "goal-extra".into(),
        ..school_goal()
    };
    let events = when(&state, Command::AddGoal(extra)).expect("added");
    assert_eq!(then_state(state.clone(), &events).status, PlanStatus::Draft);
    let events = when(&state, Command::RecordSafetyPlan(safety_plan("new"))).expect("recorded");
    assert_eq!(then_state(state.clone(), &events).status, PlanStatus::Draft);
    // Services and statuses leave the approval standing.
    let events = when(&state, deliver(SAFETY_GOAL, REVIEW_DATE)).expect("delivered");
    assert_eq!(then_state(state, &events).status, PlanStatus::Approved);
}
