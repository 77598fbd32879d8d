//! `caseline.v1.SupportPlanService`: support plans from the immediate safety plan
//! through investigation, prosecution and after-care, with a supervisor's approval and
//! reviews.
//!
//! Plans live in `plan-<id>` streams with the case id on every event, so they are on
//! the child's timeline as the `support_plan` row of the visibility table says: social
//! workers read and write, health workers read and update the health goals (medical,
//! therapy) and see the rest as a summary, supervisors read and approve (never a plan
//! they wrote), others see a summary.
#![forbid(unsafe_code)]

mod api;
mod command;
pub mod domain;
mod store;

use std::sync::Arc;

use caseline_aggregate::Projection;
use caseline_auth::Role;
use caseline_proto::v1::support_plan_service_server::SupportPlanServiceServer;
use caseline_trust::{Kind, MethodSpec, Scope};

pub use api::PlanApi;
pub use store::PLAN_CATEGORY;

/// Roles that write plans or their health goals.
const WRITERS: &[Role] = &[Role::SocialWorker, Role::HealthWorker];
/// Roles that approve plans.
const APPROVERS: &[Role] = &[Role::Supervisor];
/// Roles that see plans (as the table says) on the cases they stand on.
const READERS: &[Role] = &[
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::Prosecutor,
    Role::HealthWorker,
    Role::VictimAdvocate,
    Role::Supervisor,
];

const fn write(path: &'static str, roles: &'static [Role]) -> MethodSpec {
    MethodSpec::new(path, Kind::Write, Scope::Case, roles)
}

/// What the trust layer needs to know of each method; the policy narrows each call by
/// the case's team and the support-plan row.
pub const METHODS: &[MethodSpec] = &[
    write("/caseline.v1.SupportPlanService/CreatePlan", WRITERS),
    write("/caseline.v1.SupportPlanService/RecordSafetyPlan", WRITERS),
    write("/caseline.v1.SupportPlanService/AddGoal", WRITERS),
    write("/caseline.v1.SupportPlanService/AssignProvider", WRITERS),
    write(
        "/caseline.v1.SupportPlanService/RecordServiceDelivered",
        WRITERS,
    ),
    write("/caseline.v1.SupportPlanService/UpdateGoalStatus", WRITERS),
    write(
        "/caseline.v1.SupportPlanService/SubmitPlanForApproval",
        WRITERS,
    ),
    write("/caseline.v1.SupportPlanService/ApprovePlan", APPROVERS),
    write(
        "/caseline.v1.SupportPlanService/RequestPlanChanges",
        APPROVERS,
    ),
    write("/caseline.v1.SupportPlanService/ScheduleReview", WRITERS),
    write("/caseline.v1.SupportPlanService/RecordReview", WRITERS),
    write("/caseline.v1.SupportPlanService/ClosePlan", WRITERS),
    MethodSpec::new(
        "/caseline.v1.SupportPlanService/GetPlan",
        Kind::Read,
        Scope::Case,
        READERS,
    ),
    MethodSpec::new(
        "/caseline.v1.SupportPlanService/ListReviewsDue",
        Kind::Read,
        Scope::Global,
        READERS,
    ),
    MethodSpec::new(
        "/caseline.v1.SupportPlanService/ListPlans",
        Kind::Read,
        Scope::Global,
        READERS,
    ),
];

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server(host: &caseline_host::Host) -> SupportPlanServiceServer<PlanApi> {
    let plans = Projection::new(host.projection("support-plans.plans"));
    let members = host.index(caseline_case::members::INDEX);
    SupportPlanServiceServer::new(PlanApi::new(Arc::clone(host.log()), plans, members))
}

/// Mounts SupportPlanService on a server: its methods with the trust layer, its gRPC
/// service.
pub fn mount(
    host: &caseline_host::Host,
    services: caseline_server::Services,
) -> caseline_server::Services {
    host.trust().register(METHODS);
    services.add_service(server(host))
}
