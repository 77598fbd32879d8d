//! The support plan aggregate, pure: `decide(&state, command) -> events` and
//! `evolve(state, &event) -> state`. No I/O: sealed fields arrive sealed, ids and dates
//! arrive made and checked.
//!
//! `evolve` also takes the event's actor. A plan is created for a case that has a risk
//! assessment, drafted (safety plan,
//! goals across the phases, providers), submitted, approved by a supervisor who is not
//! its author (or sent back for changes), carried out (services delivered, goal
//! statuses), reviewed, and closed only when every goal is achieved or discontinued.

use std::collections::BTreeMap;

use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    GoalAdded, GoalStatusUpdated, PlanApproved, PlanChangesRequested, PlanClosed, PlanCreated,
    PlanReviewed, PlanSubmitted, ProviderAssigned, ReviewScheduled, SafetyPlanRecorded,
    ServiceDelivered,
};
use caseline_proto::v1::{GoalDomain, GoalStatus, PlanClosure, PlanStatus};

caseline_aggregate::events! {
    /// Everything that happens to a plan, in its stream `plan-<id>`.
    pub enum Event for PlanState {
        Created(PlanCreated) = types::PLAN_CREATED,
        SafetyPlan(SafetyPlanRecorded) = types::SAFETY_PLAN_RECORDED,
        GoalAdded(GoalAdded) = types::GOAL_ADDED,
        ProviderAssigned(ProviderAssigned) = types::PROVIDER_ASSIGNED,
        ServiceDelivered(ServiceDelivered) = types::SERVICE_DELIVERED,
        GoalStatus(GoalStatusUpdated) = types::GOAL_STATUS_UPDATED,
        Submitted(PlanSubmitted) = types::PLAN_SUBMITTED,
        Approved(PlanApproved) = types::PLAN_APPROVED,
        ChangesRequested(PlanChangesRequested) = types::PLAN_CHANGES_REQUESTED,
        ReviewScheduled(ReviewScheduled) = types::REVIEW_SCHEDULED,
        Reviewed(PlanReviewed) = types::PLAN_REVIEWED,
        Closed(PlanClosed) = types::PLAN_CLOSED,
    }
}

pub use caseline_timeline::is_health_goal;

/// One goal of a plan.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Goal {
    pub added: GoalAdded,
    pub status: GoalStatus,
    pub status_reason_sealed: Vec<u8>,
    pub provider: String,
    pub deliveries: Vec<ServiceDelivered>,
}

impl Goal {
    /// Achieved or discontinued.
    pub fn is_resolved(&self) -> bool {
        matches!(self.status, GoalStatus::Achieved | GoalStatus::Discontinued)
    }
}

/// A plan as its events say.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanState {
    pub created: Option<PlanCreated>,
    pub status: PlanStatus,
    /// Who created it (its author).
    pub author: String,
    pub safety_plan_sealed: Vec<u8>,
    pub goals: BTreeMap<String, Goal>,
    pub next_review: Option<String>,
    pub last_review: Option<PlanReviewed>,
    pub closure: Option<PlanClosed>,
    /// Everyone who wrote any of it: none of them may decide on it.
    pub writers: std::collections::BTreeSet<String>,
}

impl PlanState {
    pub fn exists(&self) -> bool {
        self.created.is_some()
    }

    pub fn is_open(&self) -> bool {
        self.exists() && self.status != PlanStatus::Closed
    }

    /// Goals neither achieved nor discontinued.
    pub fn open_goals(&self) -> usize {
        self.goals.values().filter(|g| !g.is_resolved()).count()
    }
}

/// What a caller asks of a plan. Plan-level commands name their author or approver;
/// dates are checked calendar dates.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Create the plan; `case_assessed`: the case has a risk assessment.
    Create {
        created: PlanCreated,
        author: String,
        case_assessed: bool,
    },
    RecordSafetyPlan(SafetyPlanRecorded),
    AddGoal(GoalAdded),
    AssignProvider {
        goal_id: String,
        provider: String,
    },
    RecordServiceDelivered {
        goal_id: String,
        provider: String,
        delivered_on: String,
        note_sealed: Vec<u8>,
    },
    UpdateGoalStatus {
        goal_id: String,
        status: GoalStatus,
        reason_sealed: Vec<u8>,
    },
    Submit,
    Approve {
        by: String,
        comment_sealed: Vec<u8>,
    },
    RequestChanges {
        by: String,
        comment_sealed: Vec<u8>,
    },
    ScheduleReview {
        review_date: String,
    },
    RecordReview(PlanReviewed),
    Close(PlanClosed),
}

/// Why a command cannot apply: no such plan (`Missing`), a field breaking a rule of
/// plans (`Invalid`, [`NO_GOAL`] among them), or a rule of the plan's life
/// (`Precondition`).
pub use caseline_aggregate::Refusal as DomainError;

/// The goal named is not a goal of this plan.
pub const NO_GOAL: DomainError = DomainError::Invalid {
    field: "goal_id",
    reason: "is not a goal of this plan",
};

impl caseline_aggregate::Rules for PlanState {
    type Command = Command;
    type Event = Event;

    fn decide(&self, command: Command) -> Result<Vec<Event>, DomainError> {
        decide(self, command)
    }

    fn evolve(self, event: &Event, actor: &str) -> Self {
        evolve(self, event, actor)
    }
}

use DomainError::{Invalid, Precondition};

const CLOSED: &str = "the plan is closed";

/// Decides what `command` does to the plan in `state`.
pub fn decide(state: &PlanState, command: Command) -> Result<Vec<Event>, DomainError> {
    if let Command::Create {
        created,
        author,
        case_assessed,
    } = command
    {
        if state.exists() {
            return Err(Precondition("the plan already exists"));
        }
        if !case_assessed {
            return Err(Precondition(
                "the case has no risk assessment: record one before planning support",
            ));
        }
        return Ok(vec![Event::Created(PlanCreated { author, ..created })]);
    }
    let Some(created) = &state.created else {
        return Err(DomainError::Missing);
    };
    if state.status == PlanStatus::Closed {
        return Err(Precondition(CLOSED));
    }
    let plan_id = created.plan_id.clone();
    let goal = |goal_id: &str| state.goals.get(goal_id).ok_or(NO_GOAL);
    let event = match command {
        Command::Create { .. } => return Err(Precondition("the plan already exists")),
        Command::RecordSafetyPlan(s) => {
            awaiting_decision(state)?;
            if s.text_sealed.is_empty() {
                return Err(Invalid {
                    field: "text",
                    reason: "is required",
                });
            }
            Event::SafetyPlan(SafetyPlanRecorded { plan_id, ..s })
        }
        Command::AddGoal(g) => {
            awaiting_decision(state)?;
            if g.goal_id.is_empty() {
                return Err(Invalid {
                    field: "goal_id",
                    reason: "is required",
                });
            }
            if state.goals.contains_key(&g.goal_id) {
                return Err(Precondition("the goal already exists"));
            }
            if GoalDomain::try_from(g.domain).unwrap_or_default() == GoalDomain::Unspecified {
                return Err(Invalid {
                    field: "domain",
                    reason: "is required",
                });
            }
            Event::GoalAdded(GoalAdded { plan_id, ..g })
        }
        Command::AssignProvider { goal_id, provider } => {
            let g = goal(&goal_id)?;
            if g.is_resolved() {
                return Err(Precondition("the goal is already achieved or discontinued"));
            }
            Event::ProviderAssigned(ProviderAssigned {
                plan_id,
                domain: g.added.domain,
                goal_id,
                provider,
            })
        }
        Command::RecordServiceDelivered {
            goal_id,
            provider,
            delivered_on,
            note_sealed,
        } => {
            let g = goal(&goal_id)?;
            if g.is_resolved() {
                return Err(Precondition("the goal is already achieved or discontinued"));
            }
            Event::ServiceDelivered(ServiceDelivered {
                plan_id,
                domain: g.added.domain,
                goal_id,
                provider,
                delivered_on,
                note_sealed,
            })
        }
        Command::UpdateGoalStatus {
            goal_id,
            status,
            reason_sealed,
        } => {
            let g = goal(&goal_id)?;
            if g.is_resolved() {
                return Err(Precondition("the goal is already achieved or discontinued"));
            }
            if status == GoalStatus::Unspecified {
                return Err(Invalid {
                    field: "status",
                    reason: "is required",
                });
            }
            if status == GoalStatus::Discontinued && reason_sealed.is_empty() {
                return Err(Invalid {
                    field: "reason",
                    reason: "a discontinued goal needs a reason",
                });
            }
            if status == g.status {
                return Err(Precondition("the goal already has this status"));
            }
            Event::GoalStatus(GoalStatusUpdated {
                plan_id,
                domain: g.added.domain,
                goal_id,
                status: status as i32,
                reason_sealed,
            })
        }
        Command::Submit => {
            if !matches!(
                state.status,
                PlanStatus::Draft | PlanStatus::ChangesRequested
            ) {
                return Err(Precondition(
                    "only a draft, or a plan sent back for changes, is submitted",
                ));
            }
            if state.goals.is_empty() {
                return Err(Precondition("add at least one goal before submitting"));
            }
            Event::Submitted(PlanSubmitted { plan_id })
        }
        Command::Approve { by, comment_sealed } => {
            decision_allowed(state, &by)?;
            Event::Approved(PlanApproved {
                plan_id,
                comment_sealed,
            })
        }
        Command::RequestChanges { by, comment_sealed } => {
            decision_allowed(state, &by)?;
            if comment_sealed.is_empty() {
                return Err(Invalid {
                    field: "comment",
                    reason: "say what must change",
                });
            }
            Event::ChangesRequested(PlanChangesRequested {
                plan_id,
                comment_sealed,
            })
        }
        Command::ScheduleReview { review_date } => Event::ReviewScheduled(ReviewScheduled {
            plan_id,
            review_date,
        }),
        Command::RecordReview(r) => {
            if r.summary_sealed.is_empty() {
                return Err(Invalid {
                    field: "summary",
                    reason: "is required",
                });
            }
            Event::Reviewed(PlanReviewed { plan_id, ..r })
        }
        Command::Close(c) => {
            if PlanClosure::try_from(c.closure).unwrap_or_default() == PlanClosure::Unspecified {
                return Err(Invalid {
                    field: "closure",
                    reason: "is required",
                });
            }
            if state.open_goals() > 0 {
                return Err(Precondition(
                    "every goal must be achieved or discontinued before the plan is closed",
                ));
            }
            Event::Closed(PlanClosed { plan_id, ..c })
        }
    };
    Ok(vec![event])
}

/// The plan itself does not change while a supervisor decides on it.
fn awaiting_decision(state: &PlanState) -> Result<(), DomainError> {
    if state.status == PlanStatus::Submitted {
        return Err(Precondition(
            "the plan awaits a decision: it changes after approval or a request for changes",
        ));
    }
    Ok(())
}

/// A supervisor decides a submitted plan, and not its author.
fn decision_allowed(state: &PlanState, by: &str) -> Result<(), DomainError> {
    if state.status != PlanStatus::Submitted {
        return Err(Precondition(
            "only a submitted plan is approved or sent back",
        ));
    }
    if state.author == by {
        return Err(Precondition("the plan's author may not decide on it"));
    }
    if state.writers.contains(by) {
        return Err(Precondition(
            "someone who wrote part of the plan may not decide on it",
        ));
    }
    Ok(())
}

/// A new safety plan or goal makes an approved plan a draft again: approval covers the
/// plan as it was submitted.
fn changed(status: PlanStatus) -> PlanStatus {
    if status == PlanStatus::Approved {
        PlanStatus::Draft
    } else {
        status
    }
}

/// Applies one event; `actor` is who wrote it (the author of a plan whose creation
/// does not name one).
pub fn evolve(mut state: PlanState, event: &Event, actor: &str) -> PlanState {
    if !matches!(
        event,
        Event::Approved(_) | Event::ChangesRequested(_) | Event::Closed(_)
    ) {
        state.writers.insert(actor.to_owned());
    }
    match event {
        Event::Created(c) => {
            state.created = Some(c.clone());
            state.status = PlanStatus::Draft;
            state.author = if c.author.is_empty() {
                actor.to_owned()
            } else {
                c.author.clone()
            };
        }
        Event::SafetyPlan(s) => {
            state.safety_plan_sealed = s.text_sealed.clone();
            state.status = changed(state.status);
        }
        Event::GoalAdded(g) => {
            state.status = changed(state.status);
            state.goals.insert(
                g.goal_id.clone(),
                Goal {
                    added: g.clone(),
                    status: GoalStatus::Planned,
                    ..Goal::default()
                },
            );
        }
        Event::ProviderAssigned(p) => {
            if let Some(g) = state.goals.get_mut(&p.goal_id) {
                g.provider = p.provider.clone();
            }
        }
        Event::ServiceDelivered(d) => {
            if let Some(g) = state.goals.get_mut(&d.goal_id) {
                g.deliveries.push(d.clone());
                if g.status == GoalStatus::Planned {
                    g.status = GoalStatus::InProgress;
                }
            }
        }
        Event::GoalStatus(s) => {
            if let Some(g) = state.goals.get_mut(&s.goal_id) {
                g.status = GoalStatus::try_from(s.status).unwrap_or(g.status);
                g.status_reason_sealed = s.reason_sealed.clone();
            }
        }
        Event::Submitted(_) => state.status = PlanStatus::Submitted,
        Event::Approved(_) => state.status = PlanStatus::Approved,
        Event::ChangesRequested(_) => state.status = PlanStatus::ChangesRequested,
        Event::ReviewScheduled(r) => state.next_review = Some(r.review_date.clone()),
        Event::Reviewed(r) => {
            state.next_review =
                (!r.next_review_date.is_empty()).then(|| r.next_review_date.clone());
            state.last_review = Some(r.clone());
        }
        Event::Closed(c) => {
            state.status = PlanStatus::Closed;
            state.closure = Some(c.clone());
            state.next_review = None;
        }
    }
    state
}
