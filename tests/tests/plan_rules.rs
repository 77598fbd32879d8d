//! SupportPlanService's rules on a whole all-in-one server: one open plan per assessed
//! case, field-naming refusals, who may write which goals, what each role sees of a
//! plan and on the timeline, a supervisor's approval, closure only once every goal is
//! resolved, the review's risk on the case, reviews due at chosen instants of a clock
//! the test moves, and the lists — real gRPC, real tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::Duration;

use caseline_auth::Role;
use caseline_e2e::check::{
    expect_err, fields_of, invalid_fields, last_global_access, names, shape,
};
use caseline_e2e::requests::{add_member_request, opening};
use caseline_e2e::{Calendar, Clients, TestServer, User, authed, date_in, rid};
use caseline_eventlog::{Direction, RecordedEvent, StreamName, Uuid};
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::events::AccessRecorded;
use caseline_proto::v1::timeline_entry::Detail;
use caseline_proto::v1::{
    AddGoalRequest, ApprovePlanRequest, AssignProviderRequest, Case, ClosePlanRequest,
    CreatePlanRequest, GetCaseRequest, GetPlanRequest, GetTimelineRequest, GoalDomain, GoalStatus,
    ListPlansRequest, ListPlansResponse, ListReviewsDueRequest, ListReviewsDueResponse, Plan,
    PlanClosure, PlanCommandResponse, PlanPhase, PlanStatus, PlanView, RecordReviewRequest,
    RecordRiskAssessmentRequest, RecordSafetyPlanRequest, RecordServiceDeliveredRequest,
    RequestPlanChangesRequest, RiskLevel, ScheduleReviewRequest, SubmitPlanForApprovalRequest,
    TimelineEntry, UpdateGoalStatusRequest, Visibility, plan_view,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const SAFETY_TEXT: &str = "She stays with her aunt; no phone contact with the adult.";
const REVIEW_SUMMARY: &str = "The adult contacted her again through a new account.";

/// Everyone a test needs. The social worker opens the case and puts the health worker
/// and the police investigator on its team; the supervisor of the social worker's
/// agency is not on it (they stand by agency).
struct Cast {
    sw: User,
    health: User,
    police: User,
    supervisor: User,
    /// A social worker of the social worker's agency, not on the team.
    colleague: User,
    /// A supervisor of an agency not on the team.
    far_supervisor: User,
    complaints: User,
    /// A social worker of another agency, not on the team.
    stranger: User,
}

impl Cast {
    fn new(server: &TestServer) -> Self {
        Self {
            sw: User::new(server, "sw-1", Role::SocialWorker, "council-a"),
            health: User::new(server, "hw-1", Role::HealthWorker, "hospital-b"),
            police: User::new(server, "pol-1", Role::PoliceInvestigator, "police-c"),
            supervisor: User::new(server, "sup-1", Role::Supervisor, "council-a"),
            colleague: User::new(server, "sw-2", Role::SocialWorker, "council-a"),
            far_supervisor: User::new(server, "sup-9", Role::Supervisor, "council-z"),
            complaints: User::new(server, "co-1", Role::ComplaintsOfficer, "complaints-office"),
            stranger: User::new(server, "sw-9", Role::SocialWorker, "council-z"),
        }
    }
}

async fn open_case(c: &mut Clients, by: &User, pseudonym: &str) -> String {
    c.cases
        .open_case(authed(opening(pseudonym, "", RiskLevel::Medium), &by.token))
        .await
        .unwrap()
        .into_inner()
        .case_id
}

async fn assess(c: &mut Clients, by: &User, case_id: &str, level: RiskLevel) {
    c.cases
        .record_risk_assessment(authed(
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
        .unwrap();
}

async fn add_member(c: &mut Clients, by: &User, case_id: &str, who: &User) {
    c.cases
        .add_team_member(authed(add_member_request(case_id, who), &by.token))
        .await
        .unwrap();
}

/// A case the social worker opened and assessed, with the health worker and the police
/// investigator on its team.
async fn team_case(c: &mut Clients, cast: &Cast, pseudonym: &str) -> String {
    let case_id = open_case(c, &cast.sw, pseudonym).await;
    assess(c, &cast.sw, &case_id, RiskLevel::Medium).await;
    add_member(c, &cast.sw, &case_id, &cast.health).await;
    add_member(c, &cast.sw, &case_id, &cast.police).await;
    case_id
}

async fn get_case(c: &mut Clients, by: &User, case_id: &str) -> Case {
    c.cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.into(),
            },
            &by.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn timeline(c: &mut Clients, by: &User, case_id: &str) -> Vec<TimelineEntry> {
    c.cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id: case_id.into(),
                page_size: 1000,
                page_token: String::new(),
            },
            &by.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries
}

/// The events of `plan-<id>`, oldest first.
async fn plan_events(server: &TestServer, plan_id: &str) -> Vec<RecordedEvent> {
    let stream = StreamName::for_id("plan", Uuid::parse_str(plan_id).expect("a plan id"))
        .expect("plan stream");
    server
        .log
        .read_stream(&stream, Direction::Forwards, None, 1000)
        .await
        .expect("plan stream read")
}

type Answer = Result<PlanCommandResponse, Status>;

fn create_request(case_id: &str) -> CreatePlanRequest {
    CreatePlanRequest {
        request_id: rid(),
        case_id: case_id.into(),
    }
}

async fn create(c: &mut Clients, by: &User, request: CreatePlanRequest) -> Answer {
    c.plans
        .create_plan(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn new_plan(c: &mut Clients, by: &User, case_id: &str) -> String {
    create(c, by, create_request(case_id))
        .await
        .unwrap()
        .plan_id
}

fn describe(domain: GoalDomain) -> String {
    format!("{}: weekly sessions until the trial", domain.as_str_name())
}

fn goal_request(plan_id: &str, domain: GoalDomain) -> AddGoalRequest {
    AddGoalRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        domain: domain as i32,
        phase: PlanPhase::AfterCare as i32,
        description: describe(domain),
        target_date: date_in(90),
    }
}

async fn add_goal(c: &mut Clients, by: &User, request: AddGoalRequest) -> Answer {
    c.plans
        .add_goal(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

/// Adds a goal in `domain` and returns its id.
async fn goal(c: &mut Clients, by: &User, plan_id: &str, domain: GoalDomain) -> String {
    let added = add_goal(c, by, goal_request(plan_id, domain))
        .await
        .unwrap();
    assert!(!added.goal_id.is_empty(), "{added:?}");
    added.goal_id
}

fn status_request(
    plan_id: &str,
    goal_id: &str,
    status: GoalStatus,
    reason: &str,
) -> UpdateGoalStatusRequest {
    UpdateGoalStatusRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        goal_id: goal_id.into(),
        status: status as i32,
        reason: reason.into(),
    }
}

async fn set_status(c: &mut Clients, by: &User, request: UpdateGoalStatusRequest) -> Answer {
    c.plans
        .update_goal_status(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn safety_request(plan_id: &str, text: &str) -> RecordSafetyPlanRequest {
    RecordSafetyPlanRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        text: text.into(),
    }
}

async fn safety_plan(c: &mut Clients, by: &User, request: RecordSafetyPlanRequest) -> Answer {
    c.plans
        .record_safety_plan(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn provider_request(plan_id: &str, goal_id: &str, provider: &str) -> AssignProviderRequest {
    AssignProviderRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        goal_id: goal_id.into(),
        provider: provider.into(),
    }
}

async fn assign(c: &mut Clients, by: &User, request: AssignProviderRequest) -> Answer {
    c.plans
        .assign_provider(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn delivery_request(
    plan_id: &str,
    goal_id: &str,
    provider: &str,
    on: &str,
) -> RecordServiceDeliveredRequest {
    RecordServiceDeliveredRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        goal_id: goal_id.into(),
        provider: provider.into(),
        delivered_on: on.into(),
        note: "First session held at the clinic.".into(),
    }
}

async fn deliver(c: &mut Clients, by: &User, request: RecordServiceDeliveredRequest) -> Answer {
    c.plans
        .record_service_delivered(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn submit(c: &mut Clients, by: &User, plan_id: &str) -> Answer {
    c.plans
        .submit_plan_for_approval(authed(
            SubmitPlanForApprovalRequest {
                request_id: rid(),
                plan_id: plan_id.into(),
                expected_version: None,
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn approve(c: &mut Clients, by: &User, plan_id: &str) -> Answer {
    c.plans
        .approve_plan(authed(
            ApprovePlanRequest {
                request_id: rid(),
                plan_id: plan_id.into(),
                expected_version: None,
                comment: "Agreed.".into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn request_changes(c: &mut Clients, by: &User, plan_id: &str, comment: &str) -> Answer {
    c.plans
        .request_plan_changes(authed(
            RequestPlanChangesRequest {
                request_id: rid(),
                plan_id: plan_id.into(),
                expected_version: None,
                comment: comment.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn schedule(c: &mut Clients, by: &User, plan_id: &str, date: &str) -> Answer {
    c.plans
        .schedule_review(authed(
            ScheduleReviewRequest {
                request_id: rid(),
                plan_id: plan_id.into(),
                expected_version: None,
                review_date: date.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn review_request(plan_id: &str, risk: RiskLevel, next: &str) -> RecordReviewRequest {
    RecordReviewRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        summary: REVIEW_SUMMARY.into(),
        risk_level: risk as i32,
        next_review_date: next.into(),
    }
}

async fn review(c: &mut Clients, by: &User, request: RecordReviewRequest) -> Answer {
    c.plans
        .record_review(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn close_request(plan_id: &str, closure: PlanClosure) -> ClosePlanRequest {
    ClosePlanRequest {
        request_id: rid(),
        plan_id: plan_id.into(),
        expected_version: None,
        closure: closure as i32,
        note: "The family moved to another county.".into(),
    }
}

async fn close(c: &mut Clients, by: &User, request: ClosePlanRequest) -> Answer {
    c.plans
        .close_plan(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn get_plan(c: &mut Clients, by: &User, plan_id: &str) -> Result<Plan, Status> {
    c.plans
        .get_plan(authed(
            GetPlanRequest {
                plan_id: plan_id.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn reviews_due(
    c: &mut Clients,
    by: &User,
    request: ListReviewsDueRequest,
) -> Result<ListReviewsDueResponse, Status> {
    c.plans
        .list_reviews_due(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn list_plans(
    c: &mut Clients,
    by: &User,
    request: ListPlansRequest,
) -> Result<ListPlansResponse, Status> {
    c.plans
        .list_plans(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn due_ids(page: &ListReviewsDueResponse) -> Vec<String> {
    page.reviews.iter().map(|r| r.plan_id.clone()).collect()
}

fn plan_ids(page: &ListPlansResponse) -> Vec<String> {
    page.plans.iter().map(|p| p.plan_id.clone()).collect()
}

/// Asserts the newest `access-global` record is `user`'s successful call of `rpc` and
/// names every `(plan id, case id)` pair listed.
#[track_caller]
fn assert_recorded(
    (actor, record): (String, AccessRecorded),
    user: &User,
    rpc: &str,
    listed: &[(String, String)],
) {
    assert_eq!(actor, user.sub, "{rpc}");
    assert_eq!(record.rpc, rpc);
    assert_eq!(record.status_code, 0, "{record:?}");
    assert!(!listed.is_empty(), "{rpc}: nothing listed");
    let recorded: HashSet<&String> = record.resource_ids.iter().collect();
    for (plan_id, case_id) in listed {
        assert!(recorded.contains(plan_id), "{rpc}: {plan_id} in {record:?}");
        assert!(recorded.contains(case_id), "{rpc}: {case_id} in {record:?}");
    }
}

/// The support-plan entries of a timeline, oldest first.
fn plan_entries(entries: &[TimelineEntry]) -> Vec<&TimelineEntry> {
    entries
        .iter()
        .filter(|e| e.compartment == "support_plan")
        .collect()
}

fn plan_view(entry: &TimelineEntry) -> Option<&PlanView> {
    match &entry.detail {
        Some(Detail::Plan(p)) => Some(p),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Creating plans
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_plan_needs_a_risk_assessment_and_a_case_has_one_open_plan_at_a_time() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);

    // The initial risk given when the case was opened is no risk assessment.
    let unassessed = open_case(&mut c, &cast.sw, "Child U-1").await;
    let s = expect_err(
        create(&mut c, &cast.sw, create_request(&unassessed)).await,
        Code::FailedPrecondition,
        "CreatePlan on a case without a risk assessment",
    );
    assert!(s.message().contains("risk assessment"), "{s:?}");
    assess(&mut c, &cast.sw, &unassessed, RiskLevel::Low).await;
    new_plan(&mut c, &cast.sw, &unassessed).await;

    let case_id = team_case(&mut c, &cast, "Child C-1").await;
    let request = create_request(&case_id);
    let first = create(&mut c, &cast.sw, request.clone()).await.unwrap();
    let retried = create(&mut c, &cast.sw, request.clone()).await.unwrap();
    assert_eq!(retried, first, "a retry answers as the first time");
    assert_eq!(plan_events(&server, &first.plan_id).await.len(), 1);
    let plan = get_plan(&mut c, &cast.sw, &first.plan_id).await.unwrap();
    assert_eq!(plan.case_id, case_id);
    assert_eq!(plan.status(), PlanStatus::Draft);
    assert_eq!(plan.author, cast.sw.sub);
    assert_eq!(plan.version, first.version);

    // One open plan per case.
    let s = expect_err(
        create(&mut c, &cast.sw, create_request(&case_id)).await,
        Code::FailedPrecondition,
        "a second CreatePlan while one is open",
    );
    assert!(s.message().contains("open plan"), "{s:?}");

    // Once it is closed, a new one (another plan) can be made.
    close(
        &mut c,
        &cast.sw,
        close_request(&first.plan_id, PlanClosure::Transferred),
    )
    .await
    .unwrap();
    let second = create(&mut c, &cast.sw, create_request(&case_id))
        .await
        .unwrap();
    assert_ne!(second.plan_id, first.plan_id);
    // The first request retried now still answers with the first plan.
    let late = create(&mut c, &cast.sw, request).await.unwrap();
    assert_eq!(late, first);
    expect_err(
        create(&mut c, &cast.sw, create_request(&case_id)).await,
        Code::FailedPrecondition,
        "a third CreatePlan while the second is open",
    );
    let all = list_plans(
        &mut c,
        &cast.sw,
        ListPlansRequest {
            case_id: case_id.clone(),
            include_closed: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        plan_ids(&all),
        [first.plan_id.clone(), second.plan_id.clone()]
    );

    // A case the caller is not on, or that does not exist: NOT_FOUND.
    expect_err(
        create(&mut c, &cast.stranger, create_request(&case_id)).await,
        Code::NotFound,
        "CreatePlan by a social worker not on the case",
    );
    expect_err(
        create(&mut c, &cast.colleague, create_request(&case_id)).await,
        Code::NotFound,
        "CreatePlan by a colleague of the author, not on the case",
    );
    expect_err(
        create(
            &mut c,
            &cast.sw,
            create_request(&Uuid::new_v4().to_string()),
        )
        .await,
        Code::NotFound,
        "CreatePlan on a case that does not exist",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// INVALID_ARGUMENT
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_name_the_field_and_store_nothing() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child V-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let education = goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let sw = cast.sw.clone();
    let stored = plan_events(&server, &plan).await.len();

    // CreatePlan.
    let empty = invalid_fields(
        create(&mut c, &sw, CreatePlanRequest::default()).await,
        "empty CreatePlan",
    );
    for field in ["request_id", "case_id"] {
        assert!(empty.iter().any(|f| f == field), "{field} in {empty:?}");
    }
    names(
        create(
            &mut c,
            &sw,
            CreatePlanRequest {
                request_id: "again".into(),
                ..create_request(&case_id)
            },
        )
        .await,
        &["request_id"],
        "CreatePlan with a bad request_id",
    );
    names(
        create(&mut c, &sw, create_request("case-1")).await,
        &["case_id"],
        "CreatePlan with a bad case_id",
    );

    // The plan and request ids of a command on a plan.
    for (what, plan_id, request_id, field) in [
        ("no plan_id", "", rid(), "plan_id"),
        ("plan_id not a uuid", "plan-1", rid(), "plan_id"),
        (
            "nil plan_id",
            "00000000-0000-0000-0000-000000000000",
            rid(),
            "plan_id",
        ),
        ("no request_id", plan.as_str(), String::new(), "request_id"),
        (
            "request_id not a uuid",
            plan.as_str(),
            "r-1".into(),
            "request_id",
        ),
    ] {
        names(
            safety_plan(
                &mut c,
                &sw,
                RecordSafetyPlanRequest {
                    request_id,
                    ..safety_request(plan_id, SAFETY_TEXT)
                },
            )
            .await,
            &[field],
            &format!("RecordSafetyPlan: {what}"),
        );
    }
    names(
        safety_plan(&mut c, &sw, safety_request(&plan, " \n ")).await,
        &["text"],
        "RecordSafetyPlan without text",
    );
    names(
        get_plan(&mut c, &sw, "x").await,
        &["plan_id"],
        "GetPlan with a bad plan_id",
    );
    names(
        submit(&mut c, &sw, "").await,
        &["plan_id"],
        "SubmitPlanForApproval without plan_id",
    );

    // AddGoal.
    let valid = || goal_request(&plan, GoalDomain::Education);
    for (what, request, field) in [
        (
            "unknown domain",
            AddGoalRequest {
                domain: 99,
                ..valid()
            },
            "domain",
        ),
        (
            "no domain",
            AddGoalRequest {
                domain: GoalDomain::Unspecified as i32,
                ..valid()
            },
            "domain",
        ),
        (
            "unknown phase",
            AddGoalRequest {
                phase: 42,
                ..valid()
            },
            "phase",
        ),
        (
            "no phase",
            AddGoalRequest {
                phase: PlanPhase::Unspecified as i32,
                ..valid()
            },
            "phase",
        ),
        (
            "no description",
            AddGoalRequest {
                description: " \t ".into(),
                ..valid()
            },
            "description",
        ),
        (
            "a date that does not exist",
            AddGoalRequest {
                target_date: "2025-02-30".into(),
                ..valid()
            },
            "target_date",
        ),
        (
            "a target date in another format",
            AddGoalRequest {
                target_date: "30/06/2030".into(),
                ..valid()
            },
            "target_date",
        ),
        (
            "no target date",
            AddGoalRequest {
                target_date: String::new(),
                ..valid()
            },
            "target_date",
        ),
    ] {
        names(
            add_goal(&mut c, &sw, request).await,
            &[field],
            &format!("AddGoal: {what}"),
        );
    }

    // Goals and what happens to them.
    names(
        deliver(
            &mut c,
            &sw,
            delivery_request(&plan, &education, "council-a", &date_in(2)),
        )
        .await,
        &["delivered_on"],
        "RecordServiceDelivered in the future",
    );
    names(
        deliver(
            &mut c,
            &sw,
            delivery_request(&plan, &education, "council-a", "2025-02-30"),
        )
        .await,
        &["delivered_on"],
        "RecordServiceDelivered on a date that does not exist",
    );
    names(
        set_status(
            &mut c,
            &sw,
            status_request(&plan, &education, GoalStatus::Discontinued, "  "),
        )
        .await,
        &["reason"],
        "UpdateGoalStatus DISCONTINUED without reason",
    );
    names(
        set_status(
            &mut c,
            &sw,
            status_request(&plan, &education, GoalStatus::Unspecified, ""),
        )
        .await,
        &["status"],
        "UpdateGoalStatus without status",
    );
    names(
        assign(&mut c, &sw, provider_request(&plan, &education, "")).await,
        &["provider"],
        "AssignProvider without provider",
    );

    // A goal that is not a goal of this plan.
    let stranger_goal = Uuid::new_v4().to_string();
    names(
        set_status(
            &mut c,
            &sw,
            status_request(&plan, &stranger_goal, GoalStatus::Achieved, ""),
        )
        .await,
        &["goal_id"],
        "UpdateGoalStatus of a goal of no plan",
    );
    names(
        assign(
            &mut c,
            &sw,
            provider_request(&plan, &stranger_goal, "hospital-b"),
        )
        .await,
        &["goal_id"],
        "AssignProvider of a goal of no plan",
    );
    names(
        deliver(
            &mut c,
            &sw,
            delivery_request(&plan, &stranger_goal, "hospital-b", &date_in(-1)),
        )
        .await,
        &["goal_id"],
        "RecordServiceDelivered of a goal of no plan",
    );
    names(
        set_status(
            &mut c,
            &sw,
            status_request(&plan, "goal-1", GoalStatus::Achieved, ""),
        )
        .await,
        &["goal_id"],
        "UpdateGoalStatus with a goal_id that is no uuid",
    );
    // A goal of another plan is not a goal of this one.
    let other_case = team_case(&mut c, &cast, "Child V-2").await;
    let other_plan = new_plan(&mut c, &sw, &other_case).await;
    let other_goal = goal(&mut c, &sw, &other_plan, GoalDomain::Family).await;
    names(
        set_status(
            &mut c,
            &sw,
            status_request(&plan, &other_goal, GoalStatus::Achieved, ""),
        )
        .await,
        &["goal_id"],
        "UpdateGoalStatus of another plan's goal",
    );

    // Reviews.
    names(
        schedule(&mut c, &sw, &plan, &date_in(-2)).await,
        &["review_date"],
        "ScheduleReview in the past",
    );
    names(
        schedule(&mut c, &sw, &plan, "2026-13-01").await,
        &["review_date"],
        "ScheduleReview on a month that does not exist",
    );
    names(
        schedule(&mut c, &sw, &plan, "").await,
        &["review_date"],
        "ScheduleReview without a date",
    );
    names(
        review(
            &mut c,
            &sw,
            RecordReviewRequest {
                summary: String::new(),
                ..review_request(&plan, RiskLevel::Low, "")
            },
        )
        .await,
        &["summary"],
        "RecordReview without summary",
    );
    names(
        review(
            &mut c,
            &sw,
            review_request(&plan, RiskLevel::Unspecified, ""),
        )
        .await,
        &["risk_level"],
        "RecordReview without risk_level",
    );
    names(
        review(
            &mut c,
            &sw,
            RecordReviewRequest {
                risk_level: 17,
                ..review_request(&plan, RiskLevel::Low, "")
            },
        )
        .await,
        &["risk_level"],
        "RecordReview with an unknown risk_level",
    );
    names(
        review(
            &mut c,
            &sw,
            review_request(&plan, RiskLevel::Low, &date_in(0)),
        )
        .await,
        &["next_review_date"],
        "RecordReview with the next review today",
    );
    names(
        review(
            &mut c,
            &sw,
            review_request(&plan, RiskLevel::Low, &date_in(-3)),
        )
        .await,
        &["next_review_date"],
        "RecordReview with the next review in the past",
    );

    // Closing, and the supervisor's decision.
    names(
        close(&mut c, &sw, close_request(&plan, PlanClosure::Unspecified)).await,
        &["closure"],
        "ClosePlan without closure",
    );
    names(
        close(
            &mut c,
            &sw,
            ClosePlanRequest {
                closure: 9,
                ..close_request(&plan, PlanClosure::Other)
            },
        )
        .await,
        &["closure"],
        "ClosePlan with an unknown closure",
    );
    names(
        request_changes(&mut c, &cast.supervisor, &plan, " ").await,
        &["comment"],
        "RequestPlanChanges without comment",
    );

    // The lists.
    names(
        reviews_due(
            &mut c,
            &sw,
            ListReviewsDueRequest {
                on_or_before: "2025-02-30".into(),
                ..Default::default()
            },
        )
        .await,
        &["on_or_before"],
        "ListReviewsDue on a date that does not exist",
    );
    names(
        reviews_due(
            &mut c,
            &sw,
            ListReviewsDueRequest {
                page_size: 501,
                ..Default::default()
            },
        )
        .await,
        &["page_size"],
        "ListReviewsDue page_size 501",
    );
    names(
        reviews_due(
            &mut c,
            &sw,
            ListReviewsDueRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        )
        .await,
        &["page_token"],
        "ListReviewsDue bad page_token",
    );
    names(
        list_plans(
            &mut c,
            &sw,
            ListPlansRequest {
                case_id: "case-1".into(),
                ..Default::default()
            },
        )
        .await,
        &["case_id"],
        "ListPlans with a bad case_id",
    );
    names(
        list_plans(
            &mut c,
            &sw,
            ListPlansRequest {
                page_token: "-1".into(),
                ..Default::default()
            },
        )
        .await,
        &["page_token"],
        "ListPlans bad page_token",
    );

    assert_eq!(
        plan_events(&server, &plan).await.len(),
        stored,
        "a refused request stored something"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Who writes what
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_health_worker_writes_health_goals_only_and_the_police_write_nothing() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child H-1").await;

    let s = expect_err(
        create(&mut c, &cast.health, create_request(&case_id)).await,
        Code::PermissionDenied,
        "CreatePlan by a health worker on the team",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;

    // Health goals: the health worker adds and updates them.
    let medical = goal(&mut c, &cast.health, &plan, GoalDomain::Medical).await;
    let therapy = goal(&mut c, &cast.health, &plan, GoalDomain::Therapy).await;
    set_status(
        &mut c,
        &cast.health,
        status_request(&plan, &medical, GoalStatus::InProgress, ""),
    )
    .await
    .unwrap();
    set_status(
        &mut c,
        &cast.health,
        status_request(&plan, &therapy, GoalStatus::Achieved, ""),
    )
    .await
    .unwrap();
    // Also a health goal the social worker added.
    let sw_medical = goal(&mut c, &cast.sw, &plan, GoalDomain::Medical).await;
    set_status(
        &mut c,
        &cast.health,
        status_request(
            &plan,
            &sw_medical,
            GoalStatus::Discontinued,
            "seen by her own doctor",
        ),
    )
    .await
    .unwrap();

    // Everything else of the plan is not theirs to write.
    let education = goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let refusals = [
        (
            "AddGoal EDUCATION",
            add_goal(
                &mut c,
                &cast.health,
                goal_request(&plan, GoalDomain::Education),
            )
            .await,
        ),
        (
            "UpdateGoalStatus of an EDUCATION goal",
            set_status(
                &mut c,
                &cast.health,
                status_request(&plan, &education, GoalStatus::InProgress, ""),
            )
            .await,
        ),
        (
            "RecordSafetyPlan",
            safety_plan(&mut c, &cast.health, safety_request(&plan, SAFETY_TEXT)).await,
        ),
        (
            "SubmitPlanForApproval",
            submit(&mut c, &cast.health, &plan).await,
        ),
        (
            "ScheduleReview",
            schedule(&mut c, &cast.health, &plan, &date_in(10)).await,
        ),
    ];
    for (what, result) in refusals {
        let s = expect_err(
            result,
            Code::PermissionDenied,
            &format!("health worker: {what}"),
        );
        assert!(!s.message().contains(&case_id), "{what}: {s:?}");
    }

    // A police investigator on the team sees a summary and writes nothing.
    for domain in [
        GoalDomain::Education,
        GoalDomain::Medical,
        GoalDomain::CourtPreparation,
    ] {
        expect_err(
            add_goal(&mut c, &cast.police, goal_request(&plan, domain)).await,
            Code::PermissionDenied,
            &format!("police AddGoal {domain:?}"),
        );
    }
    expect_err(
        set_status(
            &mut c,
            &cast.police,
            status_request(&plan, &medical, GoalStatus::Achieved, ""),
        )
        .await,
        Code::PermissionDenied,
        "police UpdateGoalStatus",
    );
    expect_err(
        create(&mut c, &cast.police, create_request(&case_id)).await,
        Code::PermissionDenied,
        "police CreatePlan",
    );

    let seen = get_plan(&mut c, &cast.sw, &plan).await.unwrap();
    let status_of = |id: &str| {
        seen.goals
            .iter()
            .find(|g| g.goal_id == id)
            .unwrap_or_else(|| panic!("goal {id} in {seen:?}"))
            .status()
    };
    assert_eq!(status_of(&medical), GoalStatus::InProgress);
    assert_eq!(status_of(&therapy), GoalStatus::Achieved);
    assert_eq!(status_of(&sw_medical), GoalStatus::Discontinued);
    assert_eq!(status_of(&education), GoalStatus::Planned);
    // Created, four goals, three statuses: nothing of the refusals.
    assert_eq!(plan_events(&server, &plan).await.len(), 8);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// What each role sees
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn get_plan_shows_each_role_what_the_table_says() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child G-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    safety_plan(&mut c, &cast.sw, safety_request(&plan, SAFETY_TEXT))
        .await
        .unwrap();
    let medical = goal(&mut c, &cast.health, &plan, GoalDomain::Medical).await;
    let education = goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let therapy = goal(&mut c, &cast.sw, &plan, GoalDomain::Therapy).await;
    assign(
        &mut c,
        &cast.sw,
        provider_request(&plan, &medical, &cast.health.agency),
    )
    .await
    .unwrap();
    let last = deliver(
        &mut c,
        &cast.health,
        delivery_request(&plan, &medical, &cast.health.agency, &date_in(-1)),
    )
    .await
    .unwrap();

    // The social worker and the supervisor standing by agency: everything.
    for who in [&cast.sw, &cast.supervisor] {
        let p = get_plan(&mut c, who, &plan).await.unwrap();
        assert_eq!(p.visibility(), Visibility::Full, "{}", who.sub);
        assert_eq!(p.plan_id, plan);
        assert_eq!(p.case_id, case_id);
        assert_eq!(p.author, cast.sw.sub);
        assert_eq!(p.safety_plan, SAFETY_TEXT);
        assert_eq!(p.version, last.version);
        assert_eq!((p.goals_total, p.goals_open), (3, 3));
        let ids: HashSet<&str> = p.goals.iter().map(|g| g.goal_id.as_str()).collect();
        assert_eq!(
            ids,
            HashSet::from([medical.as_str(), education.as_str(), therapy.as_str()])
        );
        for g in &p.goals {
            assert_eq!(g.description, describe(g.domain()), "{g:?}");
        }
        let m = p.goals.iter().find(|g| g.goal_id == medical).unwrap();
        assert_eq!(m.provider, cast.health.agency);
        assert_eq!(m.deliveries.len(), 1);
        assert_eq!(m.deliveries[0].note, "First session held at the clinic.");
        assert_eq!(
            m.status(),
            GoalStatus::InProgress,
            "a delivery starts a goal"
        );
    }

    // The health worker: a summary, with the health goals in full.
    let p = get_plan(&mut c, &cast.health, &plan).await.unwrap();
    assert_eq!(p.visibility(), Visibility::Summary);
    assert_eq!(p.safety_plan, "");
    assert_eq!((p.goals_total, p.goals_open), (3, 3));
    let ids: HashSet<&str> = p.goals.iter().map(|g| g.goal_id.as_str()).collect();
    assert_eq!(ids, HashSet::from([medical.as_str(), therapy.as_str()]));
    for g in &p.goals {
        assert_eq!(g.description, describe(g.domain()), "{g:?}");
    }
    let shown = format!("{p:?}");
    assert!(!shown.contains(SAFETY_TEXT), "{shown}");
    assert!(!shown.contains(&describe(GoalDomain::Education)), "{shown}");

    // The police investigator: a summary (status, dates, counts), no goals, no text.
    let p = get_plan(&mut c, &cast.police, &plan).await.unwrap();
    assert_eq!(p.visibility(), Visibility::Summary);
    assert_eq!(p.status(), PlanStatus::Draft);
    assert_eq!(p.case_id, case_id);
    assert!(p.created_at.is_some());
    assert_eq!((p.goals_total, p.goals_open), (3, 3));
    assert!(p.goals.is_empty(), "{p:?}");
    assert_eq!(p.safety_plan, "");
    assert!(p.last_review.is_none());
    let shown = format!("{p:?}");
    for text in [
        SAFETY_TEXT.to_owned(),
        describe(GoalDomain::Medical),
        "First session".to_owned(),
    ] {
        assert!(!shown.contains(&text), "{text} in {shown}");
    }

    // A social worker of another agency, or a supervisor of an agency not on the team:
    // no such plan, told exactly as for a plan that does not exist.
    let random = Uuid::new_v4().to_string();
    let absent = expect_err(
        get_plan(&mut c, &cast.sw, &random).await,
        Code::NotFound,
        "GetPlan of a random id",
    );
    for who in [&cast.stranger, &cast.far_supervisor, &cast.colleague] {
        let s = expect_err(
            get_plan(&mut c, who, &plan).await,
            Code::NotFound,
            &format!("GetPlan by {}", who.sub),
        );
        assert!(!s.message().contains(&case_id), "{s:?}");
        assert_eq!(shape(&s, &plan), shape(&absent, &random));
    }
    server.stop().await;
}

/// The complaints officer's column shows nothing of support plans.
#[tokio::test]
async fn a_complaints_officer_may_not_read_plans_whatever_the_id() {
    // The support plan is not in the complaints officer's column: the role gate
    // refuses the method itself, the same for an existing plan and a random id, so the
    // refusal tells nothing of either.
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child G-2").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let existing = expect_err(
        get_plan(&mut c, &cast.complaints, &plan).await,
        Code::PermissionDenied,
        "GetPlan by a complaints officer",
    );
    let absent = expect_err(
        get_plan(&mut c, &cast.complaints, &Uuid::new_v4().to_string()).await,
        Code::PermissionDenied,
        "GetPlan of a random id by a complaints officer",
    );
    assert_eq!(existing.message(), absent.message());
    assert!(!existing.message().contains(&case_id), "{existing:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_timeline_shows_health_goals_to_the_health_worker_and_everything_to_the_social_worker()
{
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child T-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    safety_plan(&mut c, &cast.sw, safety_request(&plan, SAFETY_TEXT))
        .await
        .unwrap();
    let medical = goal(&mut c, &cast.health, &plan, GoalDomain::Medical).await;
    let education = goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let therapy = goal(&mut c, &cast.sw, &plan, GoalDomain::Therapy).await;
    let goals = [
        (medical.as_str(), GoalDomain::Medical),
        (education.as_str(), GoalDomain::Education),
        (therapy.as_str(), GoalDomain::Therapy),
    ];

    // The social worker: every plan entry in full.
    let all = timeline(&mut c, &cast.sw, &case_id).await;
    let entries = plan_entries(&all);
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "plan_created",
            "safety_plan_recorded",
            "goal_added",
            "goal_added",
            "goal_added"
        ]
    );
    for e in &entries {
        assert_eq!(e.visibility(), Visibility::Full, "{e:?}");
        assert_eq!(plan_view(e).expect("a plan view").plan_id, plan, "{e:?}");
    }
    assert_eq!(
        plan_view(entries[0]).unwrap().step(),
        plan_view::Step::Created
    );
    assert_eq!(plan_view(entries[1]).unwrap().text, SAFETY_TEXT);
    for (e, (id, domain)) in entries[2..].iter().zip(goals) {
        let v = plan_view(e).unwrap();
        assert_eq!(v.step(), plan_view::Step::GoalAdded);
        assert_eq!((v.goal_id.as_str(), v.domain()), (id, domain));
        assert_eq!(v.text, describe(domain));
    }

    // The health worker: health goals in full, the rest of the plan as a summary.
    let all = timeline(&mut c, &cast.health, &case_id).await;
    let entries = plan_entries(&all);
    assert_eq!(entries.len(), 5, "{entries:?}");
    for e in &entries[..2] {
        assert_eq!(e.visibility(), Visibility::Summary, "{e:?}");
        assert!(e.detail.is_none() && e.actor.is_empty(), "{e:?}");
    }
    assert_eq!(entries[0].kind, "plan_created");
    for (e, (id, domain)) in entries[2..].iter().zip(goals) {
        assert_eq!(e.kind, "goal_added");
        if domain == GoalDomain::Education {
            assert_eq!(e.visibility(), Visibility::Summary, "{e:?}");
            assert!(e.detail.is_none(), "{e:?}");
        } else {
            assert_eq!(e.visibility(), Visibility::Full, "{e:?}");
            let v = plan_view(e).expect("a health goal in full");
            assert_eq!((v.goal_id.as_str(), v.domain()), (id, domain));
            assert_eq!(v.text, describe(domain));
        }
    }
    let shown = format!("{all:?}");
    assert!(!shown.contains(SAFETY_TEXT), "{shown}");
    assert!(!shown.contains(&describe(GoalDomain::Education)), "{shown}");

    // The police investigator: all of it as a summary.
    let all = timeline(&mut c, &cast.police, &case_id).await;
    let entries = plan_entries(&all);
    assert_eq!(entries.len(), 5);
    assert!(
        entries
            .iter()
            .all(|e| e.visibility() == Visibility::Summary && e.detail.is_none()),
        "{entries:?}"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Approval
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_supervisor_of_the_agency_approves_a_submitted_plan() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child A-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;

    // A draft is not decided on, and is not submitted without a goal.
    expect_err(
        approve(&mut c, &cast.supervisor, &plan).await,
        Code::FailedPrecondition,
        "approving a draft",
    );
    expect_err(
        submit(&mut c, &cast.sw, &plan).await,
        Code::FailedPrecondition,
        "submitting a plan without goals",
    );
    goal(&mut c, &cast.sw, &plan, GoalDomain::Safety).await;
    submit(&mut c, &cast.sw, &plan).await.unwrap();
    expect_err(
        submit(&mut c, &cast.sw, &plan).await,
        Code::FailedPrecondition,
        "submitting twice",
    );

    // Only supervisors decide (the role gate), and only of an agency on the team.
    let s = expect_err(
        approve(&mut c, &cast.sw, &plan).await,
        Code::PermissionDenied,
        "a social worker approving",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");
    let (actor, record) = last_global_access(&server).await;
    assert_eq!(actor, cast.sw.sub);
    assert_eq!(record.rpc, "/caseline.v1.SupportPlanService/ApprovePlan");
    assert_eq!(record.reason, "role_not_permitted", "{record:?}");
    expect_err(
        approve(&mut c, &cast.health, &plan).await,
        Code::PermissionDenied,
        "a health worker approving",
    );
    expect_err(
        request_changes(&mut c, &cast.sw, &plan, "more detail").await,
        Code::PermissionDenied,
        "a social worker asking for changes",
    );
    let s = expect_err(
        approve(&mut c, &cast.far_supervisor, &plan).await,
        Code::NotFound,
        "a supervisor of an agency not on the team",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");

    // Sent back, resubmitted, approved.
    let back = request_changes(
        &mut c,
        &cast.supervisor,
        &plan,
        "Add a goal for school attendance.",
    )
    .await
    .unwrap();
    let p = get_plan(&mut c, &cast.sw, &plan).await.unwrap();
    assert_eq!(p.status(), PlanStatus::ChangesRequested);
    assert_eq!(p.version, back.version);
    expect_err(
        approve(&mut c, &cast.supervisor, &plan).await,
        Code::FailedPrecondition,
        "approving a plan sent back for changes",
    );
    goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    submit(&mut c, &cast.sw, &plan).await.unwrap();
    assert_eq!(
        get_plan(&mut c, &cast.supervisor, &plan)
            .await
            .unwrap()
            .status(),
        PlanStatus::Submitted
    );
    let approved = approve(&mut c, &cast.supervisor, &plan).await.unwrap();
    let p = get_plan(&mut c, &cast.sw, &plan).await.unwrap();
    assert_eq!(p.status(), PlanStatus::Approved);
    assert_eq!(p.version, approved.version);

    // Decided once.
    expect_err(
        approve(&mut c, &cast.supervisor, &plan).await,
        Code::FailedPrecondition,
        "approving twice",
    );
    expect_err(
        request_changes(&mut c, &cast.supervisor, &plan, "one more thing").await,
        Code::FailedPrecondition,
        "sending back an approved plan",
    );
    let types: Vec<String> = plan_events(&server, &plan)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types.iter().filter(|t| t.ends_with("PlanApproved")).count(),
        1,
        "{types:?}"
    );
    let approval = plan_events(&server, &plan).await.pop().unwrap();
    assert_eq!(approval.metadata.actor, cast.supervisor.sub);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_plan_closes_only_when_every_goal_is_achieved_or_discontinued() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child X-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let education = goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let medical = goal(&mut c, &cast.sw, &plan, GoalDomain::Medical).await;

    let refuse = async |c: &mut Clients, what: &str| {
        let s = expect_err(
            close(
                c,
                &cast.sw,
                close_request(&plan, PlanClosure::ChildIndependent),
            )
            .await,
            Code::FailedPrecondition,
            what,
        );
        assert!(s.message().contains("goal"), "{what}: {s:?}");
    };
    refuse(&mut c, "closing with two open goals").await;
    set_status(
        &mut c,
        &cast.sw,
        status_request(&plan, &education, GoalStatus::Achieved, ""),
    )
    .await
    .unwrap();
    set_status(
        &mut c,
        &cast.health,
        status_request(&plan, &medical, GoalStatus::InProgress, ""),
    )
    .await
    .unwrap();
    refuse(&mut c, "closing with a goal in progress").await;
    let p = get_plan(&mut c, &cast.police, &plan).await.unwrap();
    assert_eq!((p.goals_total, p.goals_open), (2, 1));

    // A resolved goal stays resolved.
    expect_err(
        set_status(
            &mut c,
            &cast.sw,
            status_request(&plan, &education, GoalStatus::InProgress, ""),
        )
        .await,
        Code::FailedPrecondition,
        "reopening an achieved goal",
    );
    set_status(
        &mut c,
        &cast.health,
        status_request(
            &plan,
            &medical,
            GoalStatus::Discontinued,
            "The family declined further treatment.",
        ),
    )
    .await
    .unwrap();
    let closed = close(
        &mut c,
        &cast.sw,
        close_request(&plan, PlanClosure::ChildIndependent),
    )
    .await
    .unwrap();
    let p = get_plan(&mut c, &cast.sw, &plan).await.unwrap();
    assert_eq!(p.status(), PlanStatus::Closed);
    assert_eq!(p.closure(), PlanClosure::ChildIndependent);
    assert_eq!((p.goals_total, p.goals_open), (2, 0));
    assert_eq!(p.version, closed.version);
    let m = p.goals.iter().find(|g| g.goal_id == medical).unwrap();
    assert_eq!(m.status(), GoalStatus::Discontinued);
    assert_eq!(m.status_reason, "The family declined further treatment.");

    // Closed: nothing more happens to it.
    let after = [
        (
            "AddGoal",
            add_goal(&mut c, &cast.sw, goal_request(&plan, GoalDomain::Family)).await,
        ),
        (
            "RecordSafetyPlan",
            safety_plan(&mut c, &cast.sw, safety_request(&plan, SAFETY_TEXT)).await,
        ),
        (
            "ScheduleReview",
            schedule(&mut c, &cast.sw, &plan, &date_in(5)).await,
        ),
        (
            "ClosePlan again",
            close(&mut c, &cast.sw, close_request(&plan, PlanClosure::Other)).await,
        ),
    ];
    for (what, result) in after {
        expect_err(
            result,
            Code::FailedPrecondition,
            &format!("{what} on a closed plan"),
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Reviews
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_review_re_assesses_the_risk_of_the_case() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child R-1").await;
    assert_eq!(
        get_case(&mut c, &cast.sw, &case_id).await.risk_level(),
        RiskLevel::Medium
    );
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let next = date_in(30);
    let reviewed = review(
        &mut c,
        &cast.sw,
        review_request(&plan, RiskLevel::High, &next),
    )
    .await
    .unwrap();

    // The case's risk follows the review, for everyone who sees the case.
    for who in [&cast.sw, &cast.police, &cast.health] {
        let case = get_case(&mut c, who, &case_id).await;
        assert_eq!(case.risk_level(), RiskLevel::High, "{}", who.sub);
    }
    let p = get_plan(&mut c, &cast.sw, &plan).await.unwrap();
    assert_eq!(p.version, reviewed.version);
    assert_eq!(p.next_review_date, next);
    let last = p.last_review.expect("the review");
    assert_eq!(last.summary, REVIEW_SUMMARY);
    assert_eq!(last.risk_level(), RiskLevel::High);
    assert_eq!(last.next_review_date, next);
    assert!(last.reviewed_at.is_some());
    // The summary's reader sees no review text.
    let p = get_plan(&mut c, &cast.police, &plan).await.unwrap();
    assert!(p.last_review.is_none(), "{p:?}");
    assert_eq!(p.next_review_date, next);

    // On the case's timeline: the re-assessment, as a risk assessment.
    let entries = timeline(&mut c, &cast.sw, &case_id).await;
    let risk = entries
        .iter()
        .rfind(|e| e.kind == "risk_assessed")
        .expect("the review's risk assessment on the timeline");
    match &risk.detail {
        Some(Detail::RiskAssessment(r)) => assert_eq!(r.level(), RiskLevel::High),
        other => panic!("{other:?}"),
    }
    // The review's text stays in the plan: the case core (read in full by the police)
    // carries the level only, never the summary that their column shows as a summary.
    for who in [&cast.police, &cast.health, &cast.sw] {
        let entries = timeline(&mut c, who, &case_id).await;
        let risk = entries
            .iter()
            .rfind(|e| e.kind == "risk_assessed")
            .expect("the review's risk assessment");
        assert_eq!(risk.visibility(), Visibility::Full, "{}", who.sub);
        let shown = format!("{risk:?}");
        assert!(!shown.contains(REVIEW_SUMMARY), "{}: {shown}", who.sub);
    }

    // A later review without a next date clears it; the risk follows again.
    review(&mut c, &cast.sw, review_request(&plan, RiskLevel::Low, ""))
        .await
        .unwrap();
    assert_eq!(
        get_case(&mut c, &cast.sw, &case_id).await.risk_level(),
        RiskLevel::Low
    );
    assert_eq!(
        get_plan(&mut c, &cast.sw, &plan)
            .await
            .unwrap()
            .next_review_date,
        ""
    );
    server.stop().await;
}

/// "Commands carry `request_id` (a retry stores nothing new)": a RecordReview retried
/// with the same request answers as the first time.
#[tokio::test]
async fn a_retried_review_answers_as_the_first() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child R-2").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let request = review_request(&plan, RiskLevel::High, &date_in(14));
    let first = review(&mut c, &cast.sw, request.clone()).await.unwrap();
    let again = review(&mut c, &cast.sw, request).await;
    assert_eq!(again.unwrap(), first);
    assert_eq!(plan_events(&server, &plan).await.len(), 2);
    let risks = timeline(&mut c, &cast.sw, &case_id)
        .await
        .into_iter()
        .filter(|e| e.kind == "risk_assessed")
        .count();
    assert_eq!(risks, 2, "the case's own assessment and the review's, once");
    server.stop().await;
}

/// A review scheduled for tomorrow, and a review setting the next one for the day
/// after, retried once those days have passed: each is answered as the first time (the
/// dates are held to today only once a retry is ruled out). A new request for such a
/// date is refused, naming the field.
#[tokio::test]
async fn a_review_retried_after_its_date_passed_answers_as_the_first() {
    let mut calendar = Calendar::at_noon();
    let server = TestServer::start_with(calendar.clock.clockwork(Duration::from_secs(3600))).await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child D-9").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let scheduling = ScheduleReviewRequest {
        request_id: rid(),
        plan_id: plan.clone(),
        expected_version: None,
        review_date: calendar.date(1),
    };
    let first = c
        .plans
        .schedule_review(authed(scheduling.clone(), &cast.sw.token))
        .await
        .unwrap()
        .into_inner();
    let reviewing = review_request(&plan, RiskLevel::Low, &calendar.date(2));
    let reviewed = review(&mut c, &cast.sw, reviewing.clone()).await.unwrap();
    let stored = plan_events(&server, &plan).await.len();

    calendar.advance_days(3);
    let again = c
        .plans
        .schedule_review(authed(scheduling, &cast.sw.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(review(&mut c, &cast.sw, reviewing).await.unwrap(), reviewed);
    assert_eq!(
        plan_events(&server, &plan).await.len(),
        stored,
        "nothing new"
    );

    names(
        schedule(&mut c, &cast.sw, &plan, &calendar.date(-2)).await,
        &["review_date"],
        "a new review on a day that has passed",
    );
    names(
        review(
            &mut c,
            &cast.sw,
            review_request(&plan, RiskLevel::Low, &calendar.date(-1)),
        )
        .await,
        &["next_review_date"],
        "a new next review on a day that has passed",
    );
    assert_eq!(plan_events(&server, &plan).await.len(), stored);
    server.stop().await;
}

#[tokio::test]
async fn reviews_due_are_listed_by_the_servers_clock() {
    let mut calendar = Calendar::at_noon();
    let server = TestServer::start_with(calendar.clock.clockwork(Duration::from_secs(3600))).await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child D-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let later_case = team_case(&mut c, &cast, "Child D-2").await;
    let later = new_plan(&mut c, &cast.sw, &later_case).await;
    let due = calendar.date(7);
    schedule(&mut c, &cast.sw, &plan, &due).await.unwrap();
    schedule(&mut c, &cast.sw, &later, &calendar.date(30))
        .await
        .unwrap();
    // Today is the earliest review date there is.
    schedule(&mut c, &cast.sw, &later, &calendar.date(0))
        .await
        .unwrap();
    schedule(&mut c, &cast.sw, &later, &calendar.date(30))
        .await
        .unwrap();
    let default = ListReviewsDueRequest::default;
    let rpc = "/caseline.v1.SupportPlanService/ListReviewsDue";

    assert!(
        due_ids(&reviews_due(&mut c, &cast.sw, default()).await.unwrap()).is_empty(),
        "nothing is due today"
    );
    calendar.advance_days(6);
    assert!(
        due_ids(&reviews_due(&mut c, &cast.sw, default()).await.unwrap()).is_empty(),
        "a review in a week is not due in six days"
    );
    // Asked for a date: what is due by then.
    let page = reviews_due(
        &mut c,
        &cast.sw,
        ListReviewsDueRequest {
            on_or_before: due.clone(),
            ..default()
        },
    )
    .await
    .unwrap();
    assert_eq!(due_ids(&page), [plan.as_str()]);
    assert_eq!(page.reviews[0].case_id, case_id);
    assert_eq!(page.reviews[0].review_date, due);
    assert_eq!(page.reviews[0].status(), PlanStatus::Draft);
    assert!(page.next_page_token.is_empty());
    assert!(
        due_ids(
            &reviews_due(
                &mut c,
                &cast.sw,
                ListReviewsDueRequest {
                    on_or_before: calendar.date(0),
                    ..default()
                },
            )
            .await
            .unwrap()
        )
        .is_empty()
    );

    // A week on, it is due by the clock.
    calendar.advance_days(1);
    assert_eq!(calendar.date(0), due);
    for who in [&cast.sw, &cast.health, &cast.police] {
        let page = reviews_due(&mut c, who, default()).await.unwrap();
        assert_eq!(due_ids(&page), [plan.as_str()], "{}", who.sub);
        assert_recorded(
            last_global_access(&server).await,
            who,
            rpc,
            &[(plan.clone(), case_id.clone())],
        );
    }
    // Both, in the order made, by a date far ahead; paged one by one.
    let far = ListReviewsDueRequest {
        on_or_before: "2999-12-31".into(),
        page_size: 1,
        ..default()
    };
    let first = reviews_due(&mut c, &cast.sw, far.clone()).await.unwrap();
    assert_eq!(due_ids(&first), [plan.as_str()]);
    assert!(!first.next_page_token.is_empty());
    let second = reviews_due(
        &mut c,
        &cast.sw,
        ListReviewsDueRequest {
            page_token: first.next_page_token.clone(),
            ..far.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(due_ids(&second), [later.as_str()]);
    assert_eq!(second.reviews[0].review_date, calendar.date(23));
    assert!(second.next_page_token.is_empty(), "{second:?}");
    assert_recorded(
        last_global_access(&server).await,
        &cast.sw,
        rpc,
        &[(later.clone(), later_case.clone())],
    );

    // The supervisor is on no team: their agency's cases only when they ask by agency.
    assert!(
        due_ids(
            &reviews_due(&mut c, &cast.supervisor, default())
                .await
                .unwrap()
        )
        .is_empty()
    );
    let page = reviews_due(
        &mut c,
        &cast.supervisor,
        ListReviewsDueRequest {
            agency: true,
            ..default()
        },
    )
    .await
    .unwrap();
    assert_eq!(due_ids(&page), [plan.as_str()]);
    assert_recorded(
        last_global_access(&server).await,
        &cast.supervisor,
        rpc,
        &[(plan.clone(), case_id.clone())],
    );
    // Those who stand nowhere on the case see nothing of it, even by agency.
    for who in [&cast.colleague, &cast.stranger, &cast.far_supervisor] {
        let page = reviews_due(
            &mut c,
            who,
            ListReviewsDueRequest {
                agency: true,
                ..default()
            },
        )
        .await
        .unwrap();
        assert!(due_ids(&page).is_empty(), "{}: {page:?}", who.sub);
    }

    // A closed plan is never due.
    close(
        &mut c,
        &cast.sw,
        close_request(&plan, PlanClosure::MovedAway),
    )
    .await
    .unwrap();
    calendar.advance_days(60);
    for (who, agency) in [(&cast.sw, false), (&cast.supervisor, true)] {
        for on_or_before in [String::new(), "2999-12-31".to_owned()] {
            let page = reviews_due(
                &mut c,
                who,
                ListReviewsDueRequest {
                    on_or_before,
                    agency,
                    ..default()
                },
            )
            .await
            .unwrap();
            assert_eq!(due_ids(&page), [later.as_str()], "{}", who.sub);
        }
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Lists of plans
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn plans_are_listed_by_case_and_as_ones_own() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let mut made = Vec::new();
    for n in 1..=3 {
        let case_id = team_case(&mut c, &cast, &format!("Child L-{n}")).await;
        let plan_id = new_plan(&mut c, &cast.sw, &case_id).await;
        made.push((plan_id, case_id));
    }
    let (p1, case1) = made[0].clone();
    let (p3, _) = made[2].clone();
    // The third plan has a goal the health worker's agency provides.
    let medical = goal(&mut c, &cast.sw, &p3, GoalDomain::Medical).await;
    assign(
        &mut c,
        &cast.sw,
        provider_request(&p3, &medical, &cast.health.agency),
    )
    .await
    .unwrap();

    // By case: for anyone who sees the plan.
    for who in [&cast.sw, &cast.health, &cast.police, &cast.supervisor] {
        let page = list_plans(
            &mut c,
            who,
            ListPlansRequest {
                case_id: case1.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(plan_ids(&page), [p1.as_str()], "{}", who.sub);
        assert_eq!(page.plans[0].case_id, case1);
        assert_eq!(page.plans[0].status(), PlanStatus::Draft);
        // The author, as in GetPlan, only for those who see the plan in full.
        let author = if matches!(who.role, Role::SocialWorker | Role::Supervisor) {
            cast.sw.sub.as_str()
        } else {
            ""
        };
        assert_eq!(page.plans[0].author, author, "{}", who.sub);
    }
    for who in [&cast.stranger, &cast.colleague, &cast.far_supervisor] {
        expect_err(
            list_plans(
                &mut c,
                who,
                ListPlansRequest {
                    case_id: case1.clone(),
                    ..Default::default()
                },
            )
            .await,
            Code::NotFound,
            &format!("ListPlans of a case {} is not on", who.sub),
        );
    }
    expect_err(
        list_plans(
            &mut c,
            &cast.sw,
            ListPlansRequest {
                case_id: Uuid::new_v4().to_string(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "ListPlans of a case that does not exist",
    );

    // One's own, a page at a time.
    let mut seen = Vec::new();
    let mut token = String::new();
    for (n, expected) in made.iter().enumerate() {
        let page = list_plans(
            &mut c,
            &cast.sw,
            ListPlansRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(page.plans.len(), 1, "{page:?}");
        let summary = &page.plans[0];
        assert_eq!(summary.author, cast.sw.sub);
        assert_eq!(
            (&summary.plan_id, &summary.case_id),
            (&expected.0, &expected.1)
        );
        assert_recorded(
            last_global_access(&server).await,
            &cast.sw,
            "/caseline.v1.SupportPlanService/ListPlans",
            std::slice::from_ref(expected),
        );
        seen.push(summary.plan_id.clone());
        token = page.next_page_token.clone();
        assert_eq!(token.is_empty(), n == made.len() - 1, "page {n}: {page:?}");
    }
    assert_eq!(
        seen,
        made.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
    let all = list_plans(&mut c, &cast.sw, ListPlansRequest::default())
        .await
        .unwrap();
    assert_eq!(all.plans.len(), 3);
    assert_eq!((all.plans[2].goals_total, all.plans[2].goals_open), (1, 1));

    // The health worker's own: the plan with a goal their agency provides.
    let theirs = list_plans(&mut c, &cast.health, ListPlansRequest::default())
        .await
        .unwrap();
    assert_eq!(plan_ids(&theirs), [p3.as_str()]);
    for who in [&cast.police, &cast.stranger] {
        let page = list_plans(&mut c, who, ListPlansRequest::default())
            .await
            .unwrap();
        assert!(page.plans.is_empty(), "{}: {page:?}", who.sub);
    }

    // Closed plans only when asked for.
    close(&mut c, &cast.sw, close_request(&p1, PlanClosure::Other))
        .await
        .unwrap();
    let open = list_plans(
        &mut c,
        &cast.sw,
        ListPlansRequest {
            case_id: case1.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(open.plans.is_empty(), "{open:?}");
    let with_closed = list_plans(
        &mut c,
        &cast.sw,
        ListPlansRequest {
            case_id: case1.clone(),
            include_closed: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(plan_ids(&with_closed), [p1.as_str()]);
    assert_eq!(with_closed.plans[0].status(), PlanStatus::Closed);
    let mine = list_plans(&mut c, &cast.sw, ListPlansRequest::default())
        .await
        .unwrap();
    assert_eq!(plan_ids(&mine), [made[1].0.clone(), p3.clone()]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Idempotency and expected_version
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retried_command_answers_as_the_first_and_a_stale_version_is_aborted() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child I-1").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;

    let request = goal_request(&plan, GoalDomain::Education);
    let first = add_goal(&mut c, &cast.sw, request.clone()).await.unwrap();
    let again = add_goal(&mut c, &cast.sw, request.clone()).await.unwrap();
    assert_eq!(again, first);
    assert!(!first.goal_id.is_empty());
    let s = expect_err(
        add_goal(
            &mut c,
            &cast.sw,
            AddGoalRequest {
                description: "another goal altogether".into(),
                ..request.clone()
            },
        )
        .await,
        Code::AlreadyExists,
        "the same request_id with another goal",
    );
    assert!(!s.message().contains("another goal"), "{s:?}");
    let p = get_plan(&mut c, &cast.sw, &plan).await.unwrap();
    assert_eq!(p.goals.len(), 1);
    assert_eq!(p.version, first.version);

    // expected_version.
    let stale = safety_plan(
        &mut c,
        &cast.sw,
        RecordSafetyPlanRequest {
            expected_version: Some(first.version - 1),
            ..safety_request(&plan, SAFETY_TEXT)
        },
    )
    .await;
    expect_err(stale, Code::Aborted, "RecordSafetyPlan at a stale version");
    let recorded = safety_plan(
        &mut c,
        &cast.sw,
        RecordSafetyPlanRequest {
            expected_version: Some(first.version),
            ..safety_request(&plan, SAFETY_TEXT)
        },
    )
    .await
    .unwrap();
    assert_eq!(recorded.version, first.version + 1);
    expect_err(
        add_goal(
            &mut c,
            &cast.sw,
            AddGoalRequest {
                expected_version: Some(first.version),
                ..goal_request(&plan, GoalDomain::Family)
            },
        )
        .await,
        Code::Aborted,
        "AddGoal at a stale version",
    );
    assert_eq!(plan_events(&server, &plan).await.len(), 3);
    server.stop().await;
}

/// The description of the one violation of an INVALID_ARGUMENT naming `field` alone.
#[track_caller]
fn why_refused<T: Debug>(result: Result<T, Status>, field: &str, what: &str) -> String {
    let status = expect_err(result, Code::InvalidArgument, what);
    assert_eq!(fields_of(&status, what), [field], "{what}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    details.bad_request().unwrap().field_violations[0]
        .description
        .clone()
}

#[tokio::test]
async fn dates_outside_a_plausible_range_are_refused_saying_why() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child V-30").await;
    let plan = new_plan(&mut c, &cast.sw, &case_id).await;
    let education = goal(&mut c, &cast.sw, &plan, GoalDomain::Education).await;
    let sw = cast.sw.clone();
    for (target, why) in [("1800-01-01", "1900"), ("2999-01-01", "years")] {
        let request = AddGoalRequest {
            target_date: target.into(),
            ..goal_request(&plan, GoalDomain::Family)
        };
        let description = why_refused(add_goal(&mut c, &sw, request).await, "target_date", target);
        assert!(description.contains(why), "{target}: {description:?}");
        assert!(!description.contains("YYYY"), "{target}: {description:?}");
    }
    let description = why_refused(
        schedule(&mut c, &sw, &plan, "2999-01-01").await,
        "review_date",
        "a review in 2999",
    );
    assert!(description.contains("years"), "{description:?}");
    let description = why_refused(
        review(
            &mut c,
            &sw,
            review_request(&plan, RiskLevel::Low, "2999-01-01"),
        )
        .await,
        "next_review_date",
        "the next review in 2999",
    );
    assert!(description.contains("years"), "{description:?}");
    let description = why_refused(
        deliver(
            &mut c,
            &sw,
            delivery_request(&plan, &education, "council-a", "1800-01-01"),
        )
        .await,
        "delivered_on",
        "delivered in 1800",
    );
    assert!(description.contains("1900"), "{description:?}");
    server.stop().await;
}
