//! The typed commands SupportPlanService's requests convert into: each request checked
//! once at the edge, every bad field named, so a handler holds parsed values only.

use std::time::SystemTime;

use caseline_eventlog::{Position, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::v1::{
    AddGoalRequest, ApprovePlanRequest, AssignProviderRequest, ClosePlanRequest, CreatePlanRequest,
    GetPlanRequest, GoalDomain, GoalStatus, ListPlansRequest, ListReviewsDueRequest, PlanClosure,
    PlanPhase, RecordReviewRequest, RecordSafetyPlanRequest, RecordServiceDeliveredRequest,
    RequestPlanChangesRequest, RiskLevel, ScheduleReviewRequest, SubmitPlanForApprovalRequest,
    UpdateGoalStatusRequest,
};
use caseline_server::ApiError;
use caseline_server::validate::{At, Check, MAX_REASON_CHARS, MAX_TEXT_CHARS, Target, date_of};

/// Default and largest page of the lists.
const LIST_PAGE: (u32, u32) = (50, 500);

/// A new plan for a case.
pub struct CreatePlan {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub encoded: Vec<u8>,
}

impl TryFrom<CreatePlanRequest> for CreatePlan {
    type Error = ApiError;

    fn try_from(r: CreatePlanRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let case_id = check.uuid("case_id", &r.case_id);
        check.done(Self {
            request_id,
            case_id,
            encoded: r.encode_to_vec(),
        })
    }
}

pub struct RecordSafetyPlan {
    pub target: Target,
    pub text: String,
}

impl TryFrom<RecordSafetyPlanRequest> for RecordSafetyPlan {
    type Error = ApiError;

    fn try_from(r: RecordSafetyPlanRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        check.text("text", &r.text, MAX_TEXT_CHARS, true);
        check.done(Self {
            target,
            text: r.text,
        })
    }
}

pub struct AddGoal {
    pub target: Target,
    pub domain: GoalDomain,
    pub phase: PlanPhase,
    pub description: String,
    pub target_date: String,
}

impl TryFrom<At<AddGoalRequest>> for AddGoal {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<AddGoalRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        let domain = check.known("domain", r.domain);
        let phase = check.known("phase", r.phase);
        check.text("description", &r.description, MAX_TEXT_CHARS, true);
        let target_date = check.planned_date("target_date", &r.target_date, true, now);
        check.done(Self {
            target,
            domain,
            phase,
            description: r.description,
            // Required: absent only when refused.
            target_date: target_date.unwrap_or_default(),
        })
    }
}

pub struct AssignProvider {
    pub target: Target,
    pub goal_id: Uuid,
    pub provider: String,
}

impl TryFrom<AssignProviderRequest> for AssignProvider {
    type Error = ApiError;

    fn try_from(r: AssignProviderRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        let goal_id = check.uuid("goal_id", &r.goal_id);
        check.id_label("provider", &r.provider);
        check.done(Self {
            target,
            goal_id,
            provider: r.provider,
        })
    }
}

pub struct RecordServiceDelivered {
    pub target: Target,
    pub goal_id: Uuid,
    pub provider: String,
    pub delivered_on: String,
    pub note: String,
}

impl TryFrom<At<RecordServiceDeliveredRequest>> for RecordServiceDelivered {
    type Error = ApiError;

    fn try_from(
        At { request: r, now }: At<RecordServiceDeliveredRequest>,
    ) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        let goal_id = check.uuid("goal_id", &r.goal_id);
        check.id_label("provider", &r.provider);
        let delivered_on = check.past_date("delivered_on", &r.delivered_on, now);
        check.text("note", &r.note, MAX_TEXT_CHARS, false);
        check.done(Self {
            target,
            goal_id,
            provider: r.provider,
            // Required: absent only when refused.
            delivered_on: delivered_on.unwrap_or_default(),
            note: r.note,
        })
    }
}

pub struct UpdateGoalStatus {
    pub target: Target,
    pub goal_id: Uuid,
    pub status: GoalStatus,
    pub reason: String,
}

impl TryFrom<UpdateGoalStatusRequest> for UpdateGoalStatus {
    type Error = ApiError;

    fn try_from(r: UpdateGoalStatusRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        let goal_id = check.uuid("goal_id", &r.goal_id);
        let status: GoalStatus = check.known("status", r.status);
        check.text(
            "reason",
            &r.reason,
            MAX_REASON_CHARS,
            status == GoalStatus::Discontinued,
        );
        check.done(Self {
            target,
            goal_id,
            status,
            reason: r.reason,
        })
    }
}

pub struct SubmitPlanForApproval {
    pub target: Target,
}

impl TryFrom<SubmitPlanForApprovalRequest> for SubmitPlanForApproval {
    type Error = ApiError;

    fn try_from(r: SubmitPlanForApprovalRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        check.done(Self { target })
    }
}

/// A supervisor's decision on a submitted plan: approval (a comment optional) or a
/// request for changes (saying what must change).
pub struct Decision {
    pub target: Target,
    pub approve: bool,
    pub comment: String,
}

impl Decision {
    fn of(
        mut check: Check,
        target: Target,
        comment: String,
        approve: bool,
    ) -> Result<Self, ApiError> {
        check.text("comment", &comment, MAX_REASON_CHARS, !approve);
        check.done(Self {
            target,
            approve,
            comment,
        })
    }
}

impl TryFrom<ApprovePlanRequest> for Decision {
    type Error = ApiError;

    fn try_from(r: ApprovePlanRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        Self::of(check, target, r.comment, true)
    }
}

impl TryFrom<RequestPlanChangesRequest> for Decision {
    type Error = ApiError;

    fn try_from(r: RequestPlanChangesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        Self::of(check, target, r.comment, false)
    }
}

pub struct ScheduleReview {
    pub target: Target,
    pub review_date: String,
}

impl TryFrom<At<ScheduleReviewRequest>> for ScheduleReview {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<ScheduleReviewRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        let review_date = check.planned_date("review_date", &r.review_date, true, now);
        check.done(Self {
            target,
            // Required: absent only when refused.
            review_date: review_date.unwrap_or_default(),
        })
    }
}

impl ScheduleReview {
    /// The review date must not have passed. Asked once a retry has been ruled out, so
    /// that a review scheduled for a day that has since passed is answered, when
    /// retried, as it was the first time.
    pub fn still_ahead(&self, now: SystemTime) -> Result<(), ApiError> {
        let mut check = Check::new();
        if self.review_date < date_of(now) {
            check.fail("review_date", "must not be in the past");
        }
        check.done(())
    }
}

pub struct RecordReview {
    pub target: Target,
    pub summary: String,
    pub risk_level: RiskLevel,
    /// `None`: no next review set.
    pub next_review_date: Option<String>,
}

impl TryFrom<At<RecordReviewRequest>> for RecordReview {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<RecordReviewRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        check.text("summary", &r.summary, MAX_TEXT_CHARS, true);
        let risk_level = check.known("risk_level", r.risk_level);
        let next_review_date =
            check.planned_date("next_review_date", &r.next_review_date, false, now);
        check.done(Self {
            target,
            summary: r.summary,
            risk_level,
            next_review_date,
        })
    }
}

impl RecordReview {
    /// The next review, if set, must be after today. Asked once a retry has been ruled
    /// out, as [`ScheduleReview::still_ahead`].
    pub fn next_still_ahead(&self, now: SystemTime) -> Result<(), ApiError> {
        let mut check = Check::new();
        if let Some(next) = &self.next_review_date
            && *next <= date_of(now)
        {
            check.fail("next_review_date", "must be after today");
        }
        check.done(())
    }
}

pub struct ClosePlan {
    pub target: Target,
    pub closure: PlanClosure,
    pub note: String,
}

impl TryFrom<ClosePlanRequest> for ClosePlan {
    type Error = ApiError;

    fn try_from(r: ClosePlanRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("plan_id", &r.plan_id, &r.request_id, r.expected_version, &r);
        let closure = check.known("closure", r.closure);
        check.text("note", &r.note, MAX_REASON_CHARS, false);
        check.done(Self {
            target,
            closure,
            note: r.note,
        })
    }
}

pub struct GetPlan {
    pub plan_id: Uuid,
}

impl TryFrom<GetPlanRequest> for GetPlan {
    type Error = ApiError;

    fn try_from(r: GetPlanRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let plan_id = check.uuid("plan_id", &r.plan_id);
        check.done(Self { plan_id })
    }
}

/// Plans with a review due, on the caller's cases or (`agency`) their agency's.
pub struct ListReviewsDue {
    /// Reviews due on or before this date: today (UTC) unless the request names one.
    pub until: String,
    pub agency: bool,
    pub size: usize,
    pub after: Option<Position>,
}

impl TryFrom<At<ListReviewsDueRequest>> for ListReviewsDue {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<ListReviewsDueRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let until = check
            .date("on_or_before", &r.on_or_before, false)
            .unwrap_or_else(|| date_of(now));
        let size = check.page_size(r.page_size, LIST_PAGE);
        let after = check.page_token(&r.page_token);
        check.done(Self {
            until,
            agency: r.agency,
            size,
            after,
        })
    }
}

/// Plans of one case, or (no case) those the caller wrote or their agency provides for.
pub struct ListPlans {
    pub case_id: Option<Uuid>,
    pub include_closed: bool,
    pub size: usize,
    pub after: Option<Position>,
}

impl TryFrom<ListPlansRequest> for ListPlans {
    type Error = ApiError;

    fn try_from(r: ListPlansRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let case_id = check.optional_uuid("case_id", &r.case_id);
        let size = check.page_size(r.page_size, LIST_PAGE);
        let after = check.page_token(&r.page_token);
        check.done(Self {
            case_id,
            include_closed: r.include_closed,
            size,
            after,
        })
    }
}
