//! A child's support plan across services, on a whole all-in-one server: a case with a
//! risk assessment → a plan with goals across the three phases → approval by a
//! supervisor who did not write it → services delivered → a review that re-assesses
//! the case's risk → closure refused while a goal is open, accepted once all are
//! resolved; reviews due listed at chosen instants of a clock the test moves. Real
//! gRPC, real tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_e2e::requests::{add_member_request, opening};
use caseline_e2e::{TestClock, TestServer, User, authed, rid};
use caseline_proto::tonic::Code;
use caseline_proto::tonic::transport::Channel;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::support_plan_service_client::SupportPlanServiceClient;
use caseline_proto::v1::{
    AddGoalRequest, ApprovePlanRequest, ClosePlanRequest, CreatePlanRequest, GetCaseRequest,
    GetPlanRequest, GetTimelineRequest, GoalDomain, GoalStatus, ListReviewsDueRequest, PlanClosure,
    PlanCommandResponse, PlanPhase, PlanStatus, RecordReviewRequest, RecordRiskAssessmentRequest,
    RecordSafetyPlanRequest, RecordServiceDeliveredRequest, RiskLevel, ScheduleReviewRequest,
    SubmitPlanForApprovalRequest, UpdateGoalStatusRequest, Visibility,
};
use caseline_server::validate::date_of;

const SOCIAL: &str = "county-social-services";
const CLINIC: &str = "east-clinic";

struct Desk {
    cases: CaseServiceClient<Channel>,
    plans: SupportPlanServiceClient<Channel>,
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_carries_the_child_from_investigation_to_after_care() {
    let clock = TestClock::default();
    let server = TestServer::start_with(clock.clockwork(Duration::from_secs(3600))).await;
    let channel = server.channel().await;
    let mut d = Desk {
        cases: CaseServiceClient::new(channel.clone()),
        plans: SupportPlanServiceClient::new(channel),
    };
    let social = User::new(&server, "sw-1", Role::SocialWorker, SOCIAL);
    let nurse = User::new(&server, "nurse-2", Role::HealthWorker, CLINIC);
    let supervisor = User::new(&server, "sup-3", Role::Supervisor, SOCIAL);

    // A case, and its risk assessment: a plan needs one.
    let case_id = d
        .cases
        .open_case(authed(
            opening("Child P-9", "", RiskLevel::Medium),
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    d.cases
        .add_team_member(authed(add_member_request(&case_id, &nurse), &social.token))
        .await
        .unwrap();
    let create = CreatePlanRequest {
        request_id: rid(),
        case_id: case_id.clone(),
    };
    let refused = d
        .plans
        .create_plan(authed(create.clone(), &social.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    d.cases
        .record_risk_assessment(authed(
            RecordRiskAssessmentRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                level: RiskLevel::High as i32,
                factors: "Abuser still in contact online.".into(),
                ..RecordRiskAssessmentRequest::default()
            },
            &social.token,
        ))
        .await
        .unwrap();
    let plan_id = d
        .plans
        .create_plan(authed(
            CreatePlanRequest {
                request_id: rid(),
                case_id: case_id.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .plan_id;
    d.plans
        .record_safety_plan(authed(
            RecordSafetyPlanRequest {
                request_id: rid(),
                plan_id: plan_id.clone(),
                text: "Phone blocked numbers; aunt collects her from school.".into(),
                ..RecordSafetyPlanRequest::default()
            },
            &social.token,
        ))
        .await
        .unwrap();

    // Goals across the three phases; the health goal is the nurse's to add.
    let today = date_of(SystemTime::now());
    let goal = |domain: GoalDomain, phase: PlanPhase, text: &str| AddGoalRequest {
        request_id: rid(),
        plan_id: plan_id.clone(),
        expected_version: None,
        domain: domain as i32,
        phase: phase as i32,
        description: text.into(),
        target_date: today.clone(),
    };
    let mut goals = Vec::new();
    for (who, request) in [
        (
            &social,
            goal(GoalDomain::Safety, PlanPhase::Investigation, "Safe at home"),
        ),
        (
            &nurse,
            goal(
                GoalDomain::Therapy,
                PlanPhase::Investigation,
                "Trauma therapy",
            ),
        ),
        (
            &social,
            goal(
                GoalDomain::CourtPreparation,
                PlanPhase::Prosecution,
                "Court visit with an advocate",
            ),
        ),
        (
            &social,
            goal(
                GoalDomain::Education,
                PlanPhase::AfterCare,
                "Back at school",
            ),
        ),
    ] {
        let r: PlanCommandResponse = d
            .plans
            .add_goal(authed(request, &who.token))
            .await
            .unwrap()
            .into_inner();
        goals.push(r.goal_id);
    }

    // Submitted, and approved by a supervisor of the agency (not its author).
    d.plans
        .submit_plan_for_approval(authed(
            SubmitPlanForApprovalRequest {
                request_id: rid(),
                plan_id: plan_id.clone(),
                expected_version: None,
            },
            &social.token,
        ))
        .await
        .unwrap();
    d.plans
        .approve_plan(authed(
            ApprovePlanRequest {
                request_id: rid(),
                plan_id: plan_id.clone(),
                expected_version: None,
                comment: "Good plan; review in a week.".into(),
            },
            &supervisor.token,
        ))
        .await
        .unwrap();

    // Services delivered (therapy by the clinic), a review scheduled a week out.
    for (who, goal_id, provider) in [(&nurse, &goals[1], CLINIC), (&social, &goals[0], SOCIAL)] {
        d.plans
            .record_service_delivered(authed(
                RecordServiceDeliveredRequest {
                    request_id: rid(),
                    plan_id: plan_id.clone(),
                    expected_version: None,
                    goal_id: goal_id.clone(),
                    provider: provider.into(),
                    delivered_on: today.clone(),
                    note: "Session held.".into(),
                },
                &who.token,
            ))
            .await
            .unwrap();
    }
    let review_on = date_of(SystemTime::now() + days(7));
    d.plans
        .schedule_review(authed(
            ScheduleReviewRequest {
                request_id: rid(),
                plan_id: plan_id.clone(),
                expected_version: None,
                review_date: review_on.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap();

    // Reviews due, by the moved clock: not at +6 days, yes at +7.
    let listing = d.plans.clone();
    let due = |token: String| {
        let mut plans = listing.clone();
        async move {
            plans
                .list_reviews_due(authed(ListReviewsDueRequest::default(), &token))
                .await
                .unwrap()
                .into_inner()
                .reviews
        }
    };
    clock.advance(days(6));
    assert!(due(social.token.clone()).await.is_empty());
    clock.advance(days(1));
    let listed = due(social.token.clone()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].plan_id.as_str(), listed[0].review_date.as_str()),
        (plan_id.as_str(), review_on.as_str())
    );

    // The review re-assesses the risk: the case's risk follows.
    d.plans
        .record_review(authed(
            RecordReviewRequest {
                request_id: rid(),
                plan_id: plan_id.clone(),
                expected_version: None,
                summary: "Settled at home; therapy helping.".into(),
                risk_level: RiskLevel::Low as i32,
                next_review_date: date_of(SystemTime::now() + days(37)),
            },
            &social.token,
        ))
        .await
        .unwrap();
    let case = d
        .cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.risk_level(), RiskLevel::Low);
    assert!(
        due(social.token.clone()).await.is_empty(),
        "the next review is later"
    );

    // Closing waits for every goal.
    let close = || ClosePlanRequest {
        request_id: rid(),
        plan_id: plan_id.clone(),
        expected_version: None,
        closure: PlanClosure::ChildIndependent as i32,
        note: "She is safe and back at school.".into(),
    };
    let refused = d
        .plans
        .close_plan(authed(close(), &social.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    for (i, goal_id) in goals.iter().enumerate() {
        let (who, status, reason) = match i {
            1 => (&nurse, GoalStatus::Achieved, ""),
            2 => (
                &social,
                GoalStatus::Discontinued,
                "The accused pleaded guilty.",
            ),
            _ => (&social, GoalStatus::Achieved, ""),
        };
        d.plans
            .update_goal_status(authed(
                UpdateGoalStatusRequest {
                    request_id: rid(),
                    plan_id: plan_id.clone(),
                    expected_version: None,
                    goal_id: goal_id.clone(),
                    status: status as i32,
                    reason: reason.into(),
                },
                &who.token,
            ))
            .await
            .unwrap();
    }
    d.plans
        .close_plan(authed(close(), &social.token))
        .await
        .unwrap();

    let plan = d
        .plans
        .get_plan(authed(
            GetPlanRequest {
                plan_id: plan_id.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.status(), PlanStatus::Closed);
    assert_eq!(plan.visibility(), Visibility::Full);
    assert_eq!((plan.goals_total, plan.goals_open), (4, 0));
    assert_eq!(plan.last_review.unwrap().risk_level(), RiskLevel::Low);
    assert!(due(social.token.clone()).await.is_empty());

    // The nurse sees the plan as a summary, and the therapy goal in full.
    let seen = d
        .plans
        .get_plan(authed(GetPlanRequest { plan_id }, &nurse.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.visibility(), Visibility::Summary);
    assert!(seen.safety_plan.is_empty());
    assert_eq!(seen.goals.len(), 1);
    assert_eq!(seen.goals[0].description, "Trauma therapy");

    // Every step is on the timeline: in full for the social worker.
    let entries = d
        .cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id,
                ..GetTimelineRequest::default()
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let plan_entries: Vec<_> = entries
        .iter()
        .filter(|e| e.compartment == "support_plan")
        .collect();
    assert!(
        plan_entries
            .iter()
            .all(|e| e.visibility() == Visibility::Full)
    );
    for kind in [
        "plan_created",
        "safety_plan_recorded",
        "goal_added",
        "plan_submitted",
        "plan_approved",
        "service_delivered",
        "review_scheduled",
        "plan_reviewed",
        "goal_status_updated",
        "plan_closed",
    ] {
        assert!(
            plan_entries.iter().any(|e| e.kind == kind),
            "{kind} on the timeline"
        );
    }
    server.stop().await;
}
