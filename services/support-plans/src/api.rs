//! The gRPC handlers of SupportPlanService.
//!
//! Every command: the request converted into its typed command (`crate::command`,
//! naming each bad field) → load the plan → the caller's standing on its case, from the
//! one policy (`support_plan` row; a health goal's commands carry `health_goal`;
//! approval is `Operation::DecidePlan`), recorded on the case's access history → seal
//! with the case's key → decide → append at the version read (the shared command path),
//! the standing asked again on that state.

use std::sync::Arc;

use caseline_aggregate::{Intent, Projection, Request as RequestKey, Store, page_of};
use caseline_case::{Case, assess_risk};
use caseline_eventlog::{EventLog, Position, Uuid};
use caseline_policy::{Action, CaseTeam, Compartment, Entry, Operation, Sight, Via};
use caseline_proto::tonic::{self, Request, Response, Status};
use caseline_proto::v1::events::{
    GoalAdded, PlanClosed, PlanCreated, PlanReviewed, RiskAssessed, SafetyPlanRecorded,
};
use caseline_proto::v1::support_plan_service_server::SupportPlanService;
use caseline_proto::v1::{
    AddGoalRequest, ApprovePlanRequest, AssignProviderRequest, ClosePlanRequest, CreatePlanRequest,
    Delivery, GetPlanRequest, Goal, ListPlansRequest, ListPlansResponse, ListReviewsDueRequest,
    ListReviewsDueResponse, Plan as PlanMessage, PlanCommandResponse, PlanSummary,
    RecordReviewRequest, RecordSafetyPlanRequest, RecordServiceDeliveredRequest,
    RequestPlanChangesRequest, Review, ReviewDue, ScheduleReviewRequest, Stage,
    SubmitPlanForApprovalRequest, UpdateGoalStatusRequest, Visibility,
};
use caseline_server::ApiError;
use caseline_server::validate::At;
use caseline_timeline::timestamp;
use caseline_trust::CaseGate;
use caseline_trust::{Call, vault_error};
use caseline_vault::Opened;

use crate::command::{
    AddGoal, AssignProvider, ClosePlan, CreatePlan, Decision, GetPlan, ListPlans, ListReviewsDue,
    RecordReview, RecordSafetyPlan, RecordServiceDelivered, ScheduleReview, SubmitPlanForApproval,
    UpdateGoalStatus,
};
use crate::domain::{Command, is_health_goal};
use crate::store::{Loaded, Plan, nth_plan_id};
use caseline_case::members::{self, Members};
use caseline_projection::Indexed;
use caseline_server::validate::Target;

/// Index of the case's risk assessment among a review's event ids.
const RISK_INDEX: usize = 1_000;

/// The gRPC handlers of SupportPlanService.
#[derive(Debug)]
pub struct PlanApi {
    plans: Store<Plan>,
    /// Cases, for their state and the risk a review assesses on them.
    cases: Store<Case>,
    directory: Projection<Plan>,
    /// The cases each person and agency was added to.
    members: Arc<Indexed<Members>>,
}

impl PlanApi {
    pub fn new(
        log: Arc<dyn EventLog>,
        directory: Projection<Plan>,
        members: Arc<Indexed<Members>>,
    ) -> Self {
        Self {
            plans: Store::new(Arc::clone(&log)),
            cases: Store::new(log),
            directory,
            members,
        }
    }
}

fn plan_not_found(plan_id: Uuid) -> ApiError {
    ApiError::NotFound {
        kind: "plan",
        id: plan_id.to_string(),
    }
}

/// The gate of a command on a plan: `action` on its case.
fn plan_gate(call: &Call, case_id: Uuid, action: Action, health_goal: bool) -> CaseGate<'_> {
    CaseGate {
        call,
        case_id,
        action,
        health_goal,
        kind: "plan",
    }
}

async fn seal(call: &Call, case_id: Uuid, text: &str) -> Result<Vec<u8>, ApiError> {
    call.vault()
        .seal_field(case_id, text.trim())
        .await
        .map_err(vault_error)
}

fn answer(plan_id: Uuid, version: u64, goal_id: Option<Uuid>) -> Response<PlanCommandResponse> {
    Response::new(PlanCommandResponse {
        plan_id: plan_id.to_string(),
        version,
        goal_id: goal_id.map(|g| g.to_string()).unwrap_or_default(),
    })
}

/// Whether the caller reads the support plan of the case with `team` at `sight` or more.
fn plan_sight(call: &Call, team: Option<&CaseTeam>, health_goal: bool) -> Sight {
    call.decide_for(
        team,
        Action::Read(Compartment::SupportPlan),
        Entry {
            addressed_to: None,
            health_goal,
        },
    )
    .sight
}

/// Which goal a goal command is about, and whether it is a health goal.
fn goal_of(loaded: &Loaded, goal_id: &str) -> bool {
    loaded
        .state
        .goals
        .get(goal_id)
        .is_some_and(|g| is_health_goal(g.added.domain))
}

impl PlanApi {
    /// The common path of a command on an existing plan: load, authorise `action` (a
    /// health goal's when `health` says so of the plan as loaded), identify the request,
    /// let `build` seal and make the command unless the request is a retry (a case closed
    /// since refuses only new changes), and run it on the shared path. Returns the new
    /// version, the case and the request.
    async fn act(
        &self,
        call: &Call,
        t: &Target,
        action: Action,
        health: impl Fn(&Loaded) -> bool,
        build: impl AsyncFnOnce(Uuid, &RequestKey) -> Result<Command, ApiError>,
    ) -> Result<(u64, Uuid, RequestKey), ApiError> {
        let loaded = self.plans.load(t.id).await?;
        let Some(case_id) = loaded.case_id() else {
            call.returned([t.id]);
            return Err(plan_not_found(t.id));
        };
        call.returned([t.id]);
        let gate = plan_gate(call, case_id, action, health(&loaded));
        gate.admit(Some(t.id)).await?;
        let request = call.request(case_id, t.request_id, &t.encoded).await?;
        let version = self
            .plans
            .build_and_execute(
                Intent {
                    id: t.id,
                    request: &request,
                    expected: t.expected,
                    metadata: call.event_metadata(Some(case_id), None),
                },
                Some(loaded),
                async || {
                    if self.cases.load(case_id).await?.state.stage == Stage::Closed {
                        return Err(ApiError::FailedPrecondition(
                            "the case is closed: reopen it before changing its plan".into(),
                        ));
                    }
                    build(case_id, &request).await
                },
                &gate,
            )
            .await?
            .version;
        Ok((version, case_id, request))
    }

    /// A plan-level write (social workers): the plan itself, not a goal.
    async fn write(
        &self,
        call: &Call,
        t: &Target,
        build: impl AsyncFnOnce(Uuid, &RequestKey) -> Result<Command, ApiError>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let action = Action::Write(Compartment::SupportPlan);
        let (version, _, _) = self.act(call, t, action, |_| false, build).await?;
        Ok(answer(t.id, version, None))
    }

    /// A write about one goal of the plan: a health goal's when that goal is one.
    async fn goal_write(
        &self,
        call: &Call,
        t: &Target,
        goal_id: &str,
        build: impl AsyncFnOnce(Uuid, &RequestKey) -> Result<Command, ApiError>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let action = Action::Write(Compartment::SupportPlan);
        let (version, _, _) = self
            .act(call, t, action, |l| goal_of(l, goal_id), build)
            .await?;
        Ok(answer(t.id, version, None))
    }

    /// A supervisor's decision on a submitted plan: approval or a request for changes.
    async fn decide_plan(
        &self,
        call: &Call,
        c: &Decision,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let action = Action::Manage(Operation::DecidePlan);
        let (version, _, _) = self
            .act(
                call,
                &c.target,
                action,
                |_| false,
                async |case_id, _| {
                    let (by, comment_sealed) = (
                        call.subject().to_owned(),
                        seal(call, case_id, &c.comment).await?,
                    );
                    Ok(if c.approve {
                        Command::Approve { by, comment_sealed }
                    } else {
                        Command::RequestChanges { by, comment_sealed }
                    })
                },
            )
            .await?;
        Ok(answer(c.target.id, version, None))
    }

    /// The plan as the caller may see it.
    async fn render(
        &self,
        call: &Call,
        plan_id: Uuid,
        loaded: &Loaded,
        team: Option<&CaseTeam>,
    ) -> Result<PlanMessage, ApiError> {
        let state = &loaded.state;
        let case_id = loaded.case_id().map(|c| c.to_string()).unwrap_or_default();
        let sight = plan_sight(call, team, false);
        let mut erased = false;
        let owner = loaded.case_id().unwrap_or_default();
        let mut open = async |bytes: &[u8]| -> Result<String, ApiError> {
            match call
                .vault()
                .open_field(owner, bytes)
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
        let mut plan = PlanMessage {
            plan_id: plan_id.to_string(),
            case_id,
            visibility: match sight {
                Sight::Full => Visibility::Full,
                Sight::Metadata => Visibility::Metadata,
                _ => Visibility::Summary,
            } as i32,
            status: state.status as i32,
            created_at: loaded.created_at.map(timestamp),
            next_review_date: state.next_review.clone().unwrap_or_default(),
            goals_total: u32::try_from(state.goals.len()).unwrap_or(u32::MAX),
            goals_open: u32::try_from(state.open_goals()).unwrap_or(u32::MAX),
            closure: state.closure.as_ref().map_or(0, |c| c.closure),
            version: loaded.version.unwrap_or_default(),
            ..PlanMessage::default()
        };
        if sight == Sight::Full {
            plan.author = state.author.clone();
            plan.safety_plan = open(&state.safety_plan_sealed).await?;
            if let Some(r) = &state.last_review {
                plan.last_review = Some(Review {
                    summary: open(&r.summary_sealed).await?,
                    risk_level: r.risk_level,
                    reviewed_at: loaded.last_review_at.map(timestamp),
                    next_review_date: r.next_review_date.clone(),
                });
            }
        }
        for goal in state.goals.values() {
            let health = is_health_goal(goal.added.domain);
            if plan_sight(call, team, health) != Sight::Full {
                continue;
            }
            let mut deliveries = Vec::new();
            for d in &goal.deliveries {
                deliveries.push(Delivery {
                    provider: d.provider.clone(),
                    delivered_on: d.delivered_on.clone(),
                    note: open(&d.note_sealed).await?,
                });
            }
            plan.goals.push(Goal {
                goal_id: goal.added.goal_id.clone(),
                domain: goal.added.domain,
                phase: goal.added.phase,
                description: open(&goal.added.description_sealed).await?,
                target_date: goal.added.target_date.clone(),
                status: goal.status as i32,
                status_reason: open(&goal.status_reason_sealed).await?,
                provider: goal.provider.clone(),
                deliveries,
            });
        }
        plan.erased = erased;
        Ok(plan)
    }

    /// A page of the plans the caller stands on (`visible`, at most `size + 1`, in the
    /// order created), each as `show` makes it. Every plan and case id returned is
    /// recorded.
    fn page<T>(
        call: &Call,
        size: usize,
        visible: Vec<(Position, Visible)>,
        show: impl Fn(Uuid, &Loaded, Sight) -> T,
    ) -> (Vec<T>, String) {
        let (page, next_page_token) = page_of(visible, size);
        call.returned(
            page.iter()
                .flat_map(|(plan_id, case_id, _, _)| [*plan_id, *case_id]),
        );
        let items = page
            .into_iter()
            .map(|(plan_id, _, loaded, sight)| show(plan_id, &loaded, sight))
            .collect();
        (items, next_page_token)
    }
}

/// A plan a list may show: its id, its case, the plan, and how the caller sees it.
type Visible = (Uuid, Uuid, Loaded, Sight);

/// Of `candidates` (in order), the first `size + 1` the caller stands on, for a page.
async fn stood_on(
    call: &Call,
    size: usize,
    candidates: Vec<(Position, Uuid, Loaded)>,
    on_team: impl Fn(&CaseTeam) -> bool,
) -> Result<Vec<(Position, Visible)>, ApiError> {
    let mut visible = Vec::new();
    for (position, plan_id, loaded) in candidates {
        if visible.len() > size {
            break;
        }
        if let Some(v) = standing_on(call, plan_id, loaded, &on_team).await? {
            visible.push((position, v));
        }
    }
    Ok(visible)
}

/// The plan, if the caller reads the support plan of its case (at least as a summary)
/// and `on_team` admits the case's team; what the caller stands on, never what a
/// break-glass grant opened (read one by one, recorded as break-glass).
async fn standing_on(
    call: &Call,
    plan_id: Uuid,
    loaded: Loaded,
    on_team: &impl Fn(&CaseTeam) -> bool,
) -> Result<Option<Visible>, ApiError> {
    let Some(case_id) = loaded.case_id() else {
        return Ok(None);
    };
    let team = call.trust_teams().current(case_id).await?;
    let decision = call.decide_for(
        team.as_ref(),
        Action::Read(Compartment::SupportPlan),
        Entry::default(),
    );
    let sight = decision.sight;
    Ok((team.as_ref().is_some_and(on_team)
        && sight != Sight::None
        && !matches!(decision.via, Via::BreakGlass { .. }))
    .then_some((plan_id, case_id, loaded, sight)))
}

/// Any team: lists that ask only for the caller's sight.
fn any_team(_: &CaseTeam) -> bool {
    true
}

#[tonic::async_trait]
impl SupportPlanService for PlanApi {
    async fn create_plan(
        &self,
        request: Request<CreatePlanRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = CreatePlan::try_from(request.into_inner())?;
        let case_id = c.case_id;
        let gate = plan_gate(
            &call,
            case_id,
            Action::Write(Compartment::SupportPlan),
            false,
        );
        gate.admit(None).await?;
        let request = call.request(case_id, c.request_id, &c.encoded).await?;
        // The case's plans, oldest first: a retry answers as the first time; an open
        // plan refuses a second; the first free slot takes the new one.
        let mut n = 0;
        let (plan_id, loaded) = loop {
            let plan_id = nth_plan_id(case_id, n);
            let loaded = self.plans.load(plan_id).await?;
            if let Some(done) = self.plans.answered(&loaded, plan_id, &request).await? {
                return Ok(answer(plan_id, done.version, None));
            }
            if !loaded.state.exists() {
                break (plan_id, loaded);
            }
            if loaded.state.is_open() {
                return Err(ApiError::FailedPrecondition(
                    "the case already has an open plan".into(),
                )
                .into());
            }
            n += 1;
        };
        let case = self.cases.load(case_id).await?;
        if case.state.stage == Stage::Closed {
            return Err(ApiError::FailedPrecondition(
                "the case is closed: reopen it before planning support".into(),
            )
            .into());
        }
        let version = self
            .plans
            .execute(
                Intent {
                    id: plan_id,
                    request: &request,
                    expected: None,
                    metadata: call.event_metadata(Some(case_id), None),
                },
                Some(loaded),
                Command::Create {
                    created: PlanCreated {
                        plan_id: plan_id.to_string(),
                        case_id: case_id.to_string(),
                        author: String::new(),
                    },
                    author: call.subject().to_owned(),
                    case_assessed: case.state.assessed,
                },
                &gate,
            )
            .await
            .map(|done| done.version)
            .map_err(|e| match e {
                // Another creation took this slot meanwhile.
                ApiError::FailedPrecondition(why) if why == "the plan already exists" => {
                    ApiError::FailedPrecondition("the case already has an open plan".into())
                }
                e => e,
            })?;
        Ok(answer(plan_id, version, None))
    }

    async fn record_safety_plan(
        &self,
        request: Request<RecordSafetyPlanRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordSafetyPlan::try_from(request.into_inner())?;
        self.write(&call, &c.target, async |case_id, _| {
            Ok(Command::RecordSafetyPlan(SafetyPlanRecorded {
                plan_id: c.target.id.to_string(),
                text_sealed: seal(&call, case_id, &c.text).await?,
            }))
        })
        .await
    }

    async fn add_goal(
        &self,
        request: Request<AddGoalRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AddGoal::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let t = &c.target;
        let health = is_health_goal(c.domain as i32);
        let (version, _, request) = self
            .act(
                &call,
                t,
                Action::Write(Compartment::SupportPlan),
                |_| health,
                async |case_id, request| {
                    Ok(Command::AddGoal(GoalAdded {
                        plan_id: t.id.to_string(),
                        goal_id: request.entry_id().to_string(),
                        domain: c.domain as i32,
                        phase: c.phase as i32,
                        description_sealed: seal(&call, case_id, &c.description).await?,
                        target_date: c.target_date.clone(),
                    }))
                },
            )
            .await?;
        // The goal's id comes from the request: the same on a retry, which is answered
        // before the goal is built.
        Ok(answer(t.id, version, Some(request.entry_id())))
    }

    async fn assign_provider(
        &self,
        request: Request<AssignProviderRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = AssignProvider::try_from(request.into_inner())?;
        let goal_id = c.goal_id.to_string();
        self.goal_write(&call, &c.target, &goal_id, async |_, _| {
            Ok(Command::AssignProvider {
                goal_id: goal_id.clone(),
                provider: c.provider.clone(),
            })
        })
        .await
    }

    async fn record_service_delivered(
        &self,
        request: Request<RecordServiceDeliveredRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordServiceDelivered::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let goal_id = c.goal_id.to_string();
        self.goal_write(&call, &c.target, &goal_id, async |case_id, _| {
            Ok(Command::RecordServiceDelivered {
                goal_id: goal_id.clone(),
                provider: c.provider.clone(),
                delivered_on: c.delivered_on.clone(),
                note_sealed: seal(&call, case_id, &c.note).await?,
            })
        })
        .await
    }

    async fn update_goal_status(
        &self,
        request: Request<UpdateGoalStatusRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = UpdateGoalStatus::try_from(request.into_inner())?;
        let goal_id = c.goal_id.to_string();
        self.goal_write(&call, &c.target, &goal_id, async |case_id, _| {
            Ok(Command::UpdateGoalStatus {
                goal_id: goal_id.clone(),
                status: c.status,
                reason_sealed: seal(&call, case_id, &c.reason).await?,
            })
        })
        .await
    }

    async fn submit_plan_for_approval(
        &self,
        request: Request<SubmitPlanForApprovalRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = SubmitPlanForApproval::try_from(request.into_inner())?;
        self.write(&call, &c.target, async |_, _| Ok(Command::Submit))
            .await
    }

    async fn approve_plan(
        &self,
        request: Request<ApprovePlanRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = Decision::try_from(request.into_inner())?;
        self.decide_plan(&call, &c).await
    }

    async fn request_plan_changes(
        &self,
        request: Request<RequestPlanChangesRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = Decision::try_from(request.into_inner())?;
        self.decide_plan(&call, &c).await
    }

    async fn schedule_review(
        &self,
        request: Request<ScheduleReviewRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ScheduleReview::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        self.write(&call, &c.target, async |_, _| {
            c.still_ahead(call.now())?;
            Ok(Command::ScheduleReview {
                review_date: c.review_date.clone(),
            })
        })
        .await
    }

    async fn record_review(
        &self,
        request: Request<RecordReviewRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = RecordReview::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let t = &c.target;
        let risk_level = c.risk_level as i32;
        let action = Action::Write(Compartment::SupportPlan);
        let mut summary_sealed = Vec::new();
        let (version, case_id, request) = self
            .act(
                &call,
                t,
                action,
                |_| false,
                async |case_id, _| {
                    c.next_still_ahead(call.now())?;
                    summary_sealed = seal(&call, case_id, &c.summary).await?;
                    Ok(Command::RecordReview(PlanReviewed {
                        plan_id: t.id.to_string(),
                        summary_sealed: summary_sealed.clone(),
                        risk_level,
                        next_review_date: c.next_review_date.clone().unwrap_or_default(),
                    }))
                },
            )
            .await?;
        // The risk re-assessed at the review is the case's risk from now on (caused by
        // the review; a retry appends nothing twice). A closed case keeps its own.
        let mut metadata = call.event_metadata(Some(case_id), Some(request.id));
        metadata.causation_id = Some(request.event_id(0));
        match assess_risk(
            &self.cases,
            case_id,
            // The level only: the review's text stays in the support plan, where its
            // readers are; the link is the causation id. The same bytes on every try,
            // so a retry appends nothing twice.
            RiskAssessed {
                level: risk_level,
                factors_sealed: Vec::new(),
                immediate_actions_sealed: Vec::new(),
            },
            request.event_id(RISK_INDEX),
            metadata,
        )
        .await
        {
            Ok(()) | Err(ApiError::FailedPrecondition(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(answer(t.id, version, None))
    }

    async fn close_plan(
        &self,
        request: Request<ClosePlanRequest>,
    ) -> Result<Response<PlanCommandResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ClosePlan::try_from(request.into_inner())?;
        self.write(&call, &c.target, async |case_id, _| {
            Ok(Command::Close(PlanClosed {
                plan_id: c.target.id.to_string(),
                closure: c.closure as i32,
                note_sealed: seal(&call, case_id, &c.note).await?,
            }))
        })
        .await
    }

    async fn get_plan(
        &self,
        request: Request<GetPlanRequest>,
    ) -> Result<Response<PlanMessage>, Status> {
        let call = Call::of(&request)?;
        let c = GetPlan::try_from(request.into_inner())?;
        let plan_id = c.plan_id;
        call.returned([plan_id]);
        let loaded = self.plans.load(plan_id).await?;
        let Some(case_id) = loaded.case_id() else {
            return Err(plan_not_found(plan_id).into());
        };
        // Seeing any of the plan: the plan itself, or (health workers) a health goal.
        let team = call
            .trust_teams()
            .current(case_id)
            .await
            .map_err(ApiError::from)?;
        let any = [false, true]
            .into_iter()
            .map(|health| {
                call.decide_for(
                    team.as_ref(),
                    Action::Read(Compartment::SupportPlan),
                    Entry {
                        addressed_to: None,
                        health_goal: health,
                    },
                )
            })
            .find(|d| d.is_allowed())
            .unwrap_or_else(|| {
                call.decide_for(
                    team.as_ref(),
                    Action::Read(Compartment::SupportPlan),
                    Entry::default(),
                )
            });
        if call.enforce(case_id, any).is_err() {
            return Err(plan_not_found(plan_id).into());
        }
        Ok(Response::new(
            self.render(&call, plan_id, &loaded, team.as_ref()).await?,
        ))
    }

    async fn list_reviews_due(
        &self,
        request: Request<ListReviewsDueRequest>,
    ) -> Result<Response<ListReviewsDueResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListReviewsDue::try_from(At {
            request: request.into_inner(),
            now: call.now(),
        })?;
        let (subject, agency) = (call.subject().to_owned(), call.agency().to_owned());
        // The plans of the cases the caller (or their agency) was added to; each is
        // decided on its case's team as it stands now.
        let key = match c.agency {
            true => members::agency(&agency),
            false => members::person(&subject, &agency),
        };
        let cases = members::cases_of(&self.members, key).await?;
        let candidates = self
            .directory
            .of_cases(&cases, c.after, |l| {
                l.state.is_open() && l.state.next_review.as_ref().is_some_and(|d| *d <= c.until)
            })
            .await?;
        let visible = stood_on(&call, c.size, candidates, |team| {
            if c.agency {
                team.has_agency(&agency)
            } else {
                team.is_member(&subject, &agency)
            }
        })
        .await?;
        let (reviews, next_page_token) =
            Self::page(&call, c.size, visible, |plan_id, l, _| ReviewDue {
                plan_id: plan_id.to_string(),
                case_id: l.case_id().map(|c| c.to_string()).unwrap_or_default(),
                review_date: l.state.next_review.clone().unwrap_or_default(),
                status: l.state.status as i32,
            });
        Ok(Response::new(ListReviewsDueResponse {
            reviews,
            next_page_token,
        }))
    }

    async fn list_plans(
        &self,
        request: Request<ListPlansRequest>,
    ) -> Result<Response<ListPlansResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListPlans::try_from(request.into_inner())?;
        if let Some(case_id) = c.case_id {
            // A case the caller may not see is NOT_FOUND, and recorded.
            let team = call
                .trust_teams()
                .current(case_id)
                .await
                .map_err(ApiError::from)?;
            let decision = call.decide_for(
                team.as_ref(),
                Action::Read(Compartment::SupportPlan),
                Entry::default(),
            );
            call.enforce(case_id, decision)?;
        }
        let (subject, agency) = (call.subject().to_owned(), call.agency().to_owned());
        let include = |l: &Loaded| {
            (c.include_closed || l.state.is_open())
                && match c.case_id {
                    Some(c) => l.case_id() == Some(c),
                    None => {
                        l.state.author == subject
                            || l.state.goals.values().any(|g| g.provider == agency)
                    }
                }
        };
        let visible = match c.case_id {
            Some(case_id) => {
                let candidates = self
                    .directory
                    .of_cases(&[case_id], c.after, include)
                    .await?;
                stood_on(&call, c.size, candidates, any_team).await?
            }
            None => {
                self.directory
                    .first(c.after, c.size, include, |plan_id, l| {
                        standing_on(&call, plan_id, l, &any_team)
                    })
                    .await?
            }
        };
        let (plans, next_page_token) =
            Self::page(&call, c.size, visible, |plan_id, l, sight| PlanSummary {
                plan_id: plan_id.to_string(),
                case_id: l.case_id().map(|c| c.to_string()).unwrap_or_default(),
                status: l.state.status as i32,
                // Who wrote it is content: for full readers only.
                author: if sight == Sight::Full {
                    l.state.author.clone()
                } else {
                    String::new()
                },
                created_at: l.created_at.map(timestamp),
                next_review_date: l.state.next_review.clone().unwrap_or_default(),
                goals_total: u32::try_from(l.state.goals.len()).unwrap_or(u32::MAX),
                goals_open: u32::try_from(l.state.open_goals()).unwrap_or(u32::MAX),
            });
        Ok(Response::new(ListPlansResponse {
            plans,
            next_page_token,
        }))
    }
}
