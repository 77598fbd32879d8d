//! Each child's timeline: every event of a case, across all services' streams, shown in
//! full, as a summary or not at all, as the visibility table says.
//!
//! This crate knows, for every event type on a timeline, which compartment of the
//! visibility table it belongs to ([`Item::compartment`]) and how it reads at each
//! [`Sight`] ([`Item::render`]). It decides nothing: callers ask
//! `caseline_policy::decide` for the sight of each entry and pass it in. Events that are
//! not part of what happened to the child (access records, break-glass grants,
//! bookkeeping of contacts) have no [`Item`]; [`NOT_ON_TIMELINES`] names each, with why.
//!
//! - `Full`: everything, sealed fields opened (`erased` when the case's key is gone);
//!   the child's identity only when the caller may see it ([`Render::identity`]).
//! - `Summary`: that the entry exists, its kind, time, agency and compartment.
//! - `Metadata` (auditors): the summary plus who wrote it; never content.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use caseline_eventlog::{RecordedEvent, Uuid};
pub use caseline_policy::teams::from_unix_ms;
use caseline_policy::{Compartment, Entry, Sight};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::prost_types::Timestamp;
use caseline_proto::v1::events::{
    AppealLodged, ClaimClosed, ClaimDecided, ClaimFiled, ClaimSubmitted, ComplaintAcknowledged,
    ComplaintClosed, ComplaintEscalated, ComplaintFindingRecorded, ComplaintLodged,
    PaymentRecorded,
};
use caseline_proto::v1::events::{
    CaseOpened, CaseReopened, CasesLinked, CasesUnlinked, ClosureDecided, ClosureRequested,
    ContactAttached, JusticeMilestoneRecorded, NoteAdded, ReferralAccepted, ReferralAcknowledged,
    ReferralAttached, ReferralDeclined, ReferralEscalated, ReferralMade, ReferralOutcomeRecorded,
    ReferralWithdrawn, RiskAssessed, StageChanged, TeamMemberAdded, TeamMemberRemoved,
};
use caseline_proto::v1::events::{
    GoalAdded, GoalStatusUpdated, PlanApproved, PlanChangesRequested, PlanClosed, PlanCreated,
    PlanReviewed, PlanSubmitted, ProviderAssigned, ReviewScheduled, SafetyPlanRecorded,
    ServiceDelivered,
};
use caseline_proto::v1::{
    CaseOpenedView, ChildIdentity, ClosureView, ContactView, LinkView, MilestoneView,
    NoteCompartment, NoteView, PlanView, ReferralView, RemedyView, RiskAssessmentView, Stage,
    StageView, TeamChangeView, TimelineEntry, Visibility, closure_view, plan_view, referral_view,
    remedy_view, timeline_entry,
};
use caseline_vault::{Opened, Vault};

/// The event types of Caseline that are on no timeline, each with why. Every other event
/// type of the protos (`caseline.v1.events`) has an [`Item`]: a test enumerates them all,
/// so that a new event type is either shown on timelines or listed here with its reason,
/// and never left out of every child's timeline without anyone deciding so.
pub const NOT_ON_TIMELINES: &[(&str, &str)] = &[
    (
        types::CONTACT_RECORDED,
        "a helpline contact on its own stream, sealed with the contact's key: a case opened \
         from it gets the contact as `ContactAttached`, sealed again with the case's key",
    ),
    (
        types::CONTACT_CASE_OPENED,
        "the contact's claim by the case opened from it: `CaseOpened` and `ContactAttached` \
         tell that on the case's timeline",
    ),
    (
        types::ACCESS_RECORDED,
        "a call that read, was refused or failed: the case's access history, the audit of \
         its timeline rather than part of it",
    ),
    (
        types::BREAK_GLASS_GRANTED,
        "emergency access for someone outside the team: access history, reviewed by \
         supervisors and auditors, not something that happened to the child",
    ),
];

/// The payload of an event that belongs on a timeline, decoded.
#[derive(Clone, Debug)]
pub enum Payload {
    Contact(ContactAttached),
    Opened(CaseOpened),
    Risk(RiskAssessed),
    MemberAdded(TeamMemberAdded),
    MemberRemoved(TeamMemberRemoved),
    Note(NoteAdded),
    Linked(CasesLinked),
    Unlinked(CasesUnlinked),
    Stage(StageChanged),
    ClosureRequested(ClosureRequested),
    ClosureDecided(ClosureDecided),
    Reopened(CaseReopened),
    Milestone(JusticeMilestoneRecorded),
    ReferralMade(ReferralMade),
    ReferralAcknowledged(ReferralAcknowledged),
    ReferralAccepted(ReferralAccepted),
    ReferralDeclined(ReferralDeclined),
    ReferralOutcome(ReferralOutcomeRecorded),
    ReferralWithdrawn(ReferralWithdrawn),
    ReferralEscalated(ReferralEscalated),
    ReferralAttached(ReferralAttached),
    PlanCreated(PlanCreated),
    SafetyPlan(SafetyPlanRecorded),
    GoalAdded(GoalAdded),
    ProviderAssigned(ProviderAssigned),
    ServiceDelivered(ServiceDelivered),
    GoalStatus(GoalStatusUpdated),
    PlanSubmitted(PlanSubmitted),
    PlanApproved(PlanApproved),
    PlanChangesRequested(PlanChangesRequested),
    ReviewScheduled(ReviewScheduled),
    PlanReviewed(PlanReviewed),
    PlanClosed(PlanClosed),
    ClaimFiled(ClaimFiled),
    ClaimSubmitted(ClaimSubmitted),
    ClaimDecided(ClaimDecided),
    AppealLodged(AppealLodged),
    PaymentRecorded(PaymentRecorded),
    ClaimClosed(ClaimClosed),
    ComplaintLodged(ComplaintLodged),
    ComplaintAcknowledged(ComplaintAcknowledged),
    ComplaintFinding(ComplaintFindingRecorded),
    ComplaintEscalated(ComplaintEscalated),
    ComplaintClosed(ComplaintClosed),
}

/// One event of a case's timeline.
#[derive(Clone, Debug)]
pub struct Item<'e> {
    pub event: &'e RecordedEvent,
    pub payload: Payload,
}

/// What rendering needs besides the event.
#[derive(Clone, Copy, Debug)]
pub struct Render<'a> {
    pub vault: &'a Vault,
    /// The case the timeline is of (sealed fields open only under it).
    pub case_id: Uuid,
    /// The caller may see the child's identity.
    pub identity: bool,
    /// Other cases the caller may see: a link shows the other case's id only then.
    pub visible_cases: &'a HashSet<Uuid>,
    /// The caller may see helpline contacts: the id of the contact a case was opened
    /// from is shown only then.
    pub contacts: bool,
}

fn decode<M: Message + Default>(event: &RecordedEvent) -> Result<M, caseline_eventlog::Error> {
    M::decode(event.data.as_slice()).map_err(|_| corrupt(event, "payload does not decode"))
}

fn corrupt(event: &RecordedEvent, reason: &str) -> caseline_eventlog::Error {
    caseline_eventlog::Error::Corrupt {
        position: event.position.to_string(),
        reason: format!("{}: {reason}", event.event_type),
    }
}

impl<'e> Item<'e> {
    /// The timeline item of `event`, or `None` if the event is not shown on timelines:
    /// one of [`NOT_ON_TIMELINES`], or a type this build does not know (so that an event
    /// a newer build wrote leaves the rest of the timeline readable). A payload that does
    /// not decode is corruption, reported rather than skipped.
    pub fn of(event: &'e RecordedEvent) -> Result<Option<Self>, caseline_eventlog::Error> {
        let payload = match event.event_type.as_str() {
            types::CONTACT_ATTACHED => Payload::Contact(decode(event)?),
            types::CASE_OPENED => Payload::Opened(decode(event)?),
            types::RISK_ASSESSED => Payload::Risk(decode(event)?),
            types::TEAM_MEMBER_ADDED => Payload::MemberAdded(decode(event)?),
            types::TEAM_MEMBER_REMOVED => Payload::MemberRemoved(decode(event)?),
            types::NOTE_ADDED => {
                let note: NoteAdded = decode(event)?;
                if note_compartment(note.compartment).is_none() {
                    return Err(corrupt(event, "unknown note compartment"));
                }
                Payload::Note(note)
            }
            types::CASES_LINKED => Payload::Linked(decode(event)?),
            types::CASES_UNLINKED => Payload::Unlinked(decode(event)?),
            types::STAGE_CHANGED => Payload::Stage(decode(event)?),
            types::CLOSURE_REQUESTED => Payload::ClosureRequested(decode(event)?),
            types::CLOSURE_DECIDED => Payload::ClosureDecided(decode(event)?),
            types::CASE_REOPENED => Payload::Reopened(decode(event)?),
            types::JUSTICE_MILESTONE_RECORDED => Payload::Milestone(decode(event)?),
            types::REFERRAL_MADE => Payload::ReferralMade(decode(event)?),
            types::REFERRAL_ACKNOWLEDGED => Payload::ReferralAcknowledged(decode(event)?),
            types::REFERRAL_ACCEPTED => Payload::ReferralAccepted(decode(event)?),
            types::REFERRAL_DECLINED => Payload::ReferralDeclined(decode(event)?),
            types::REFERRAL_OUTCOME_RECORDED => Payload::ReferralOutcome(decode(event)?),
            types::REFERRAL_WITHDRAWN => Payload::ReferralWithdrawn(decode(event)?),
            types::REFERRAL_ESCALATED => Payload::ReferralEscalated(decode(event)?),
            types::REFERRAL_ATTACHED => Payload::ReferralAttached(decode(event)?),
            types::PLAN_CREATED => Payload::PlanCreated(decode(event)?),
            types::SAFETY_PLAN_RECORDED => Payload::SafetyPlan(decode(event)?),
            types::GOAL_ADDED => Payload::GoalAdded(decode(event)?),
            types::PROVIDER_ASSIGNED => Payload::ProviderAssigned(decode(event)?),
            types::SERVICE_DELIVERED => Payload::ServiceDelivered(decode(event)?),
            types::GOAL_STATUS_UPDATED => Payload::GoalStatus(decode(event)?),
            types::PLAN_SUBMITTED => Payload::PlanSubmitted(decode(event)?),
            types::PLAN_APPROVED => Payload::PlanApproved(decode(event)?),
            types::PLAN_CHANGES_REQUESTED => Payload::PlanChangesRequested(decode(event)?),
            types::REVIEW_SCHEDULED => Payload::ReviewScheduled(decode(event)?),
            types::PLAN_REVIEWED => Payload::PlanReviewed(decode(event)?),
            types::PLAN_CLOSED => Payload::PlanClosed(decode(event)?),
            types::CLAIM_FILED => Payload::ClaimFiled(decode(event)?),
            types::CLAIM_SUBMITTED => Payload::ClaimSubmitted(decode(event)?),
            types::CLAIM_DECIDED => Payload::ClaimDecided(decode(event)?),
            types::APPEAL_LODGED => Payload::AppealLodged(decode(event)?),
            types::PAYMENT_RECORDED => Payload::PaymentRecorded(decode(event)?),
            types::CLAIM_CLOSED => Payload::ClaimClosed(decode(event)?),
            types::COMPLAINT_LODGED => Payload::ComplaintLodged(decode(event)?),
            types::COMPLAINT_ACKNOWLEDGED => Payload::ComplaintAcknowledged(decode(event)?),
            types::COMPLAINT_FINDING_RECORDED => Payload::ComplaintFinding(decode(event)?),
            types::COMPLAINT_ESCALATED => Payload::ComplaintEscalated(decode(event)?),
            types::COMPLAINT_CLOSED => Payload::ComplaintClosed(decode(event)?),
            // `NOT_ON_TIMELINES`, and types that are none of ours.
            _ => return Ok(None),
        };
        Ok(Some(Self { event, payload }))
    }

    /// What happened, as a short code.
    pub fn kind(&self) -> &'static str {
        match &self.payload {
            Payload::Contact(_) => "contact_attached",
            Payload::Opened(_) => "case_opened",
            Payload::Risk(_) => "risk_assessed",
            Payload::MemberAdded(_) => "team_member_added",
            Payload::MemberRemoved(_) => "team_member_removed",
            Payload::Note(_) => "note_added",
            Payload::Linked(_) => "cases_linked",
            Payload::Unlinked(_) => "cases_unlinked",
            Payload::Stage(_) => "stage_changed",
            Payload::ClosureRequested(_) => "closure_requested",
            Payload::ClosureDecided(_) => "closure_decided",
            Payload::Reopened(_) => "case_reopened",
            Payload::Milestone(_) => "justice_milestone_recorded",
            Payload::ReferralMade(_) => "referral_made",
            Payload::ReferralAcknowledged(_) => "referral_acknowledged",
            Payload::ReferralAccepted(_) => "referral_accepted",
            Payload::ReferralDeclined(_) => "referral_declined",
            Payload::ReferralOutcome(_) => "referral_outcome_recorded",
            Payload::ReferralWithdrawn(_) => "referral_withdrawn",
            Payload::ReferralEscalated(_) => "referral_escalated",
            Payload::ReferralAttached(_) => "referral_attached",
            Payload::PlanCreated(_) => "plan_created",
            Payload::SafetyPlan(_) => "safety_plan_recorded",
            Payload::GoalAdded(_) => "goal_added",
            Payload::ProviderAssigned(_) => "provider_assigned",
            Payload::ServiceDelivered(_) => "service_delivered",
            Payload::GoalStatus(_) => "goal_status_updated",
            Payload::PlanSubmitted(_) => "plan_submitted",
            Payload::PlanApproved(_) => "plan_approved",
            Payload::PlanChangesRequested(_) => "plan_changes_requested",
            Payload::ReviewScheduled(_) => "review_scheduled",
            Payload::PlanReviewed(_) => "plan_reviewed",
            Payload::PlanClosed(_) => "plan_closed",
            Payload::ClaimFiled(_) => "claim_filed",
            Payload::ClaimSubmitted(_) => "claim_submitted",
            Payload::ClaimDecided(_) => "claim_decided",
            Payload::AppealLodged(_) => "appeal_lodged",
            Payload::PaymentRecorded(_) => "payment_recorded",
            Payload::ClaimClosed(_) => "claim_closed",
            Payload::ComplaintLodged(_) => "complaint_lodged",
            Payload::ComplaintAcknowledged(_) => "complaint_acknowledged",
            Payload::ComplaintFinding(_) => "complaint_finding_recorded",
            Payload::ComplaintEscalated(_) => "complaint_escalated",
            Payload::ComplaintClosed(_) => "complaint_closed",
        }
    }

    /// The compartment of the visibility table the entry belongs to.
    pub fn compartment(&self) -> Compartment {
        match &self.payload {
            Payload::Contact(_) => Compartment::HelplineContacts,
            Payload::Opened(_)
            | Payload::Risk(_)
            | Payload::MemberAdded(_)
            | Payload::MemberRemoved(_)
            | Payload::Stage(_)
            | Payload::ClosureRequested(_)
            | Payload::ClosureDecided(_)
            | Payload::Reopened(_) => Compartment::CaseCore,
            // `Item::of` refused unknown compartments.
            Payload::Note(n) => note_compartment(n.compartment).unwrap_or(Compartment::HealthNotes),
            Payload::Linked(_) | Payload::Unlinked(_) => Compartment::Investigation,
            Payload::Milestone(_) => Compartment::JusticeMilestones,
            Payload::ReferralMade(_)
            | Payload::ReferralAcknowledged(_)
            | Payload::ReferralAccepted(_)
            | Payload::ReferralDeclined(_)
            | Payload::ReferralOutcome(_)
            | Payload::ReferralWithdrawn(_)
            | Payload::ReferralEscalated(_)
            | Payload::ReferralAttached(_) => Compartment::Referrals,
            Payload::ClaimFiled(_)
            | Payload::ClaimSubmitted(_)
            | Payload::ClaimDecided(_)
            | Payload::AppealLodged(_)
            | Payload::PaymentRecorded(_)
            | Payload::ClaimClosed(_) => Compartment::CompensationClaims,
            Payload::ComplaintLodged(_)
            | Payload::ComplaintAcknowledged(_)
            | Payload::ComplaintFinding(_)
            | Payload::ComplaintEscalated(_)
            | Payload::ComplaintClosed(_) => Compartment::Complaints,
            Payload::PlanCreated(_)
            | Payload::SafetyPlan(_)
            | Payload::GoalAdded(_)
            | Payload::ProviderAssigned(_)
            | Payload::ServiceDelivered(_)
            | Payload::GoalStatus(_)
            | Payload::PlanSubmitted(_)
            | Payload::PlanApproved(_)
            | Payload::PlanChangesRequested(_)
            | Payload::ReviewScheduled(_)
            | Payload::PlanReviewed(_)
            | Payload::PlanClosed(_) => Compartment::SupportPlan,
        }
    }

    /// The referral an entry is about, with its two agencies.
    fn referral(&self) -> Option<(&str, &str, &str)> {
        let r = match &self.payload {
            Payload::ReferralMade(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralAcknowledged(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralAccepted(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralDeclined(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralOutcome(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralWithdrawn(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralEscalated(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            Payload::ReferralAttached(r) => (&r.referral_id, &r.from_agency, &r.to_agency),
            _ => return None,
        };
        Some((r.0.as_str(), r.1.as_str(), r.2.as_str()))
    }

    /// Facts about the entry that scoped cells of the table depend on: the agency a
    /// referral is addressed to.
    pub fn entry(&self) -> Entry<'_> {
        let goal_domain = match &self.payload {
            Payload::GoalAdded(g) => Some(g.domain),
            Payload::ProviderAssigned(g) => Some(g.domain),
            Payload::ServiceDelivered(g) => Some(g.domain),
            Payload::GoalStatus(g) => Some(g.domain),
            _ => None,
        };
        Entry {
            addressed_to: self.referral().map(|(_, _, to)| to),
            health_goal: goal_domain.is_some_and(is_health_goal),
        }
    }

    /// The other case of a link entry.
    pub fn other_case(&self) -> Option<Uuid> {
        match &self.payload {
            Payload::Linked(l) => Uuid::parse_str(&l.other_case_id).ok(),
            Payload::Unlinked(l) => Uuid::parse_str(&l.other_case_id).ok(),
            _ => None,
        }
    }

    /// The entry as seen with `sight`. `Sight::None` entries must not be rendered at
    /// all; asked anyway, they come out as metadata-free summaries.
    pub async fn render(
        &self,
        sight: Sight,
        ctx: &Render<'_>,
    ) -> Result<TimelineEntry, caseline_vault::Error> {
        let event = self.event;
        let mut entry = TimelineEntry {
            event_id: event.event_id.to_string(),
            position: event.position.to_string(),
            recorded_at: Some(timestamp(event.recorded_at)),
            kind: self.kind().to_owned(),
            compartment: self.compartment().as_str().to_owned(),
            agency: event.metadata.agency.clone(),
            visibility: Visibility::Summary as i32,
            ..TimelineEntry::default()
        };
        match sight {
            Sight::None | Sight::Summary => {}
            Sight::Metadata => {
                entry.visibility = Visibility::Metadata as i32;
                entry.actor = event.metadata.actor.clone();
                entry.actor_role = event.metadata.actor_role.clone();
            }
            Sight::Full => {
                entry.visibility = Visibility::Full as i32;
                entry.actor = event.metadata.actor.clone();
                entry.actor_role = event.metadata.actor_role.clone();
                entry.detail = Some(self.detail(ctx).await?);
            }
        }
        Ok(entry)
    }

    async fn detail(
        &self,
        ctx: &Render<'_>,
    ) -> Result<timeline_entry::Detail, caseline_vault::Error> {
        use timeline_entry::Detail;
        let mut o = Opener::new(ctx);
        Ok(match &self.payload {
            Payload::Contact(c) => {
                let summary = o.text(&c.summary_sealed).await?;
                let caller_name = o.text(&c.caller_name_sealed).await?;
                let caller_contact = o.text(&c.caller_contact_sealed).await?;
                Detail::Contact(ContactView {
                    contact_id: c.contact_id.clone(),
                    channel: c.channel,
                    caller_kind: c.caller_kind,
                    concerns: c.concerns.clone(),
                    urgency: c.urgency,
                    anonymous: c.anonymous,
                    summary,
                    caller_name,
                    caller_contact,
                    contacted_at: Some(timestamp(from_unix_ms(c.contacted_at_unix_ms))),
                    erased: o.erased,
                })
            }
            Payload::Opened(c) => {
                let identity = if ctx.identity {
                    Some(ChildIdentity {
                        name: o.text(&c.name_sealed).await?,
                        date_of_birth: o.text(&c.date_of_birth_sealed).await?,
                        contact_details: o.text(&c.contact_details_sealed).await?,
                    })
                } else {
                    None
                };
                Detail::CaseOpened(CaseOpenedView {
                    pseudonym: c.pseudonym.clone(),
                    identity,
                    age_band: c.age_band,
                    gender: c.gender,
                    language: c.language.clone(),
                    region: o.text(&c.region_sealed).await?,
                    source: c.source,
                    concerns: c.concerns.clone(),
                    initial_risk: c.initial_risk,
                    contact_id: if ctx.contacts {
                        c.contact_id.clone()
                    } else {
                        String::new()
                    },
                    erased: o.erased,
                })
            }
            Payload::Risk(r) => Detail::RiskAssessment(RiskAssessmentView {
                level: r.level,
                factors: o.text(&r.factors_sealed).await?,
                immediate_actions: o.text(&r.immediate_actions_sealed).await?,
                erased: o.erased,
            }),
            Payload::MemberAdded(m) => Detail::TeamChange(TeamChangeView {
                added: true,
                subject: m.subject.clone(),
                agency: m.agency.clone(),
                role: m.role.clone(),
            }),
            Payload::MemberRemoved(m) => Detail::TeamChange(TeamChangeView {
                added: false,
                subject: m.subject.clone(),
                agency: m.agency.clone(),
                role: String::new(),
            }),
            Payload::Note(n) => Detail::Note(NoteView {
                note_id: n.note_id.clone(),
                compartment: n.compartment,
                text: o.text(&n.text_sealed).await?,
                erased: o.erased,
            }),
            Payload::Linked(l) => {
                let (other_case_id, other_case_visible) = self.other(ctx);
                Detail::Link(LinkView {
                    linked: true,
                    link_id: l.link_id.clone(),
                    other_case_id,
                    other_case_visible,
                    kind: l.kind,
                    reason: o.text(&l.reason_sealed).await?,
                    erased: o.erased,
                })
            }
            Payload::Unlinked(l) => {
                let (other_case_id, other_case_visible) = self.other(ctx);
                Detail::Link(LinkView {
                    linked: false,
                    link_id: l.link_id.clone(),
                    other_case_id,
                    other_case_visible,
                    kind: 0,
                    reason: o.text(&l.reason_sealed).await?,
                    erased: o.erased,
                })
            }
            Payload::Stage(s) => Detail::Stage(StageView {
                from: s.from,
                to: s.to,
                reason: o.text(&s.reason_sealed).await?,
                erased: o.erased,
            }),
            Payload::Reopened(r) => Detail::Stage(StageView {
                from: Stage::Closed as i32,
                to: r.stage,
                reason: o.text(&r.reason_sealed).await?,
                erased: o.erased,
            }),
            Payload::ClosureRequested(c) => Detail::Closure(ClosureView {
                step: closure_view::Step::Requested as i32,
                text: o.text(&c.reason_sealed).await?,
                erased: o.erased,
            }),
            Payload::ClosureDecided(c) => Detail::Closure(ClosureView {
                step: if c.approved {
                    closure_view::Step::Approved
                } else {
                    closure_view::Step::Rejected
                } as i32,
                text: o.text(&c.comment_sealed).await?,
                erased: o.erased,
            }),
            Payload::Milestone(m) => Detail::Milestone(MilestoneView {
                milestone_id: m.milestone_id.clone(),
                kind: m.kind,
                occurred_at: Some(timestamp(from_unix_ms(m.occurred_at_unix_ms))),
                description: o.text(&m.description_sealed).await?,
                child_informed: m.child_informed,
                child_informed_at: m
                    .child_informed
                    .then(|| timestamp(from_unix_ms(m.child_informed_at_unix_ms))),
                erased: o.erased,
            }),
            Payload::ReferralMade(_)
            | Payload::ReferralAcknowledged(_)
            | Payload::ReferralAccepted(_)
            | Payload::ReferralDeclined(_)
            | Payload::ReferralOutcome(_)
            | Payload::ReferralWithdrawn(_)
            | Payload::ReferralEscalated(_)
            | Payload::ReferralAttached(_) => Detail::Referral(self.referral_view(&mut o).await?),
            Payload::ClaimFiled(_)
            | Payload::ClaimSubmitted(_)
            | Payload::ClaimDecided(_)
            | Payload::AppealLodged(_)
            | Payload::PaymentRecorded(_)
            | Payload::ClaimClosed(_)
            | Payload::ComplaintLodged(_)
            | Payload::ComplaintAcknowledged(_)
            | Payload::ComplaintFinding(_)
            | Payload::ComplaintEscalated(_)
            | Payload::ComplaintClosed(_) => Detail::Remedy(self.remedy_view(&mut o).await?),
            _ => Detail::Plan(self.plan_view(&mut o).await?),
        })
    }

    async fn remedy_view(&self, o: &mut Opener<'_>) -> Result<RemedyView, caseline_vault::Error> {
        use remedy_view::Step;
        let mut v = RemedyView::default();
        let step = match &self.payload {
            Payload::ClaimFiled(c) => {
                v.id = c.claim_id.clone();
                v.scheme = c.scheme;
                v.amount = c.amount_claimed.clone();
                v.date = c.filing_deadline.clone();
                Step::ClaimFiled
            }
            Payload::ClaimSubmitted(c) => {
                v.id = c.claim_id.clone();
                v.date = c.submitted_on.clone();
                Step::ClaimSubmitted
            }
            Payload::ClaimDecided(c) => {
                v.id = c.claim_id.clone();
                v.outcome = c.outcome;
                v.amount = c.amount_awarded.clone();
                v.text = o.text(&c.reasons_sealed).await?;
                Step::ClaimDecided
            }
            Payload::AppealLodged(c) => {
                v.id = c.claim_id.clone();
                v.date = c.lodged_on.clone();
                v.text = o.text(&c.grounds_sealed).await?;
                Step::AppealLodged
            }
            Payload::PaymentRecorded(c) => {
                v.id = c.claim_id.clone();
                v.amount = c.amount.clone();
                v.date = c.paid_on.clone();
                Step::PaymentRecorded
            }
            Payload::ClaimClosed(c) => {
                v.id = c.claim_id.clone();
                v.text = o.text(&c.note_sealed).await?;
                Step::ClaimClosed
            }
            Payload::ComplaintLodged(c) => {
                v.id = c.complaint_id.clone();
                v.about = c.about.clone();
                v.text = o.text(&c.description_sealed).await?;
                Step::ComplaintLodged
            }
            Payload::ComplaintAcknowledged(c) => {
                v.id = c.complaint_id.clone();
                Step::ComplaintAcknowledged
            }
            Payload::ComplaintFinding(c) => {
                v.id = c.complaint_id.clone();
                v.finding = c.finding;
                v.text = o.text(&c.remedy_sealed).await?;
                Step::ComplaintFinding
            }
            Payload::ComplaintEscalated(c) => {
                v.id = c.complaint_id.clone();
                v.body = c.body.clone();
                v.text = o.text(&c.reason_sealed).await?;
                Step::ComplaintEscalated
            }
            Payload::ComplaintClosed(c) => {
                v.id = c.complaint_id.clone();
                v.text = o.text(&c.note_sealed).await?;
                Step::ComplaintClosed
            }
            _ => Step::Unspecified,
        };
        v.step = step as i32;
        v.erased = o.erased;
        Ok(v)
    }

    async fn plan_view(&self, o: &mut Opener<'_>) -> Result<PlanView, caseline_vault::Error> {
        use plan_view::Step;
        let mut v = PlanView::default();
        let step = match &self.payload {
            Payload::PlanCreated(p) => {
                v.plan_id = p.plan_id.clone();
                Step::Created
            }
            Payload::SafetyPlan(p) => {
                v.plan_id = p.plan_id.clone();
                v.text = o.text(&p.text_sealed).await?;
                Step::SafetyPlan
            }
            Payload::GoalAdded(g) => {
                (v.plan_id, v.goal_id, v.domain) = (g.plan_id.clone(), g.goal_id.clone(), g.domain);
                v.phase = g.phase;
                v.date = g.target_date.clone();
                v.text = o.text(&g.description_sealed).await?;
                Step::GoalAdded
            }
            Payload::ProviderAssigned(g) => {
                (v.plan_id, v.goal_id, v.domain) = (g.plan_id.clone(), g.goal_id.clone(), g.domain);
                v.provider = g.provider.clone();
                Step::ProviderAssigned
            }
            Payload::ServiceDelivered(g) => {
                (v.plan_id, v.goal_id, v.domain) = (g.plan_id.clone(), g.goal_id.clone(), g.domain);
                v.provider = g.provider.clone();
                v.date = g.delivered_on.clone();
                v.text = o.text(&g.note_sealed).await?;
                Step::ServiceDelivered
            }
            Payload::GoalStatus(g) => {
                (v.plan_id, v.goal_id, v.domain) = (g.plan_id.clone(), g.goal_id.clone(), g.domain);
                v.goal_status = g.status;
                v.text = o.text(&g.reason_sealed).await?;
                Step::GoalStatus
            }
            Payload::PlanSubmitted(p) => {
                v.plan_id = p.plan_id.clone();
                Step::Submitted
            }
            Payload::PlanApproved(p) => {
                v.plan_id = p.plan_id.clone();
                v.text = o.text(&p.comment_sealed).await?;
                Step::Approved
            }
            Payload::PlanChangesRequested(p) => {
                v.plan_id = p.plan_id.clone();
                v.text = o.text(&p.comment_sealed).await?;
                Step::ChangesRequested
            }
            Payload::ReviewScheduled(p) => {
                v.plan_id = p.plan_id.clone();
                v.date = p.review_date.clone();
                Step::ReviewScheduled
            }
            Payload::PlanReviewed(p) => {
                v.plan_id = p.plan_id.clone();
                v.text = o.text(&p.summary_sealed).await?;
                v.risk_level = p.risk_level;
                v.date = p.next_review_date.clone();
                Step::Reviewed
            }
            Payload::PlanClosed(p) => {
                v.plan_id = p.plan_id.clone();
                v.closure = p.closure;
                v.text = o.text(&p.note_sealed).await?;
                Step::Closed
            }
            _ => Step::Unspecified,
        };
        v.step = step as i32;
        v.erased = o.erased;
        Ok(v)
    }

    async fn referral_view(
        &self,
        o: &mut Opener<'_>,
    ) -> Result<ReferralView, caseline_vault::Error> {
        use referral_view::Step;
        let (referral_id, from, to) = self.referral().unwrap_or_default();
        let mut view = ReferralView {
            referral_id: referral_id.to_owned(),
            from_agency: from.to_owned(),
            to_agency: to.to_owned(),
            ..ReferralView::default()
        };
        let step = match &self.payload {
            Payload::ReferralMade(r) => {
                view.service = r.service;
                view.urgency = r.urgency;
                view.due_by = Some(timestamp(from_unix_ms(r.due_by_unix_ms)));
                view.consent = r.consent;
                view.legal_basis = o.text(&r.legal_basis_sealed).await?;
                view.text = o.text(&r.reason_sealed).await?;
                Step::Made
            }
            Payload::ReferralAcknowledged(_) => Step::Acknowledged,
            Payload::ReferralAccepted(r) => {
                view.accepted_by = r.subject.clone();
                view.accepted_role = r.role.clone();
                Step::Accepted
            }
            Payload::ReferralDeclined(r) => {
                view.text = o.text(&r.reason_sealed).await?;
                view.suggested_service = r.suggested_service;
                Step::Declined
            }
            Payload::ReferralOutcome(r) => {
                view.text = o.text(&r.outcome_sealed).await?;
                Step::Outcome
            }
            Payload::ReferralWithdrawn(r) => {
                view.text = o.text(&r.reason_sealed).await?;
                Step::Withdrawn
            }
            Payload::ReferralEscalated(r) => {
                view.escalation = r.cause;
                view.due_by = Some(timestamp(from_unix_ms(r.due_by_unix_ms)));
                Step::Escalated
            }
            Payload::ReferralAttached(r) => {
                view.service = r.service;
                view.urgency = r.urgency;
                view.due_by = Some(timestamp(from_unix_ms(r.due_by_unix_ms)));
                view.consent = r.consent;
                view.legal_basis = o.text(&r.legal_basis_sealed).await?;
                view.text = o.text(&r.reason_sealed).await?;
                view.status = r.status;
                view.accepted_by = r.accepted_by.clone();
                view.accepted_role = r.accepted_role.clone();
                view.suggested_service = r.suggested_service;
                view.escalation = r.escalation;
                view.outcome = o.text(&r.outcome_sealed).await?;
                view.decline_reason = o.text(&r.decline_reason_sealed).await?;
                view.withdraw_reason = o.text(&r.withdraw_reason_sealed).await?;
                Step::Attached
            }
            _ => Step::Unspecified,
        };
        view.step = step as i32;
        view.erased = o.erased;
        Ok(view)
    }

    fn other(&self, ctx: &Render<'_>) -> (String, bool) {
        match self.other_case() {
            Some(id) if ctx.visible_cases.contains(&id) => (id.to_string(), true),
            _ => (String::new(), false),
        }
    }
}

/// Opens the sealed fields of one entry, remembering whether any was erased.
struct Opener<'a> {
    ctx: &'a Render<'a>,
    erased: bool,
}

impl<'a> Opener<'a> {
    fn new(ctx: &'a Render<'a>) -> Self {
        Self { ctx, erased: false }
    }

    /// The text of a sealed field: empty when there was none, or when it was erased.
    async fn text(&mut self, bytes: &[u8]) -> Result<String, caseline_vault::Error> {
        match self.ctx.vault.open_field(self.ctx.case_id, bytes).await? {
            Opened::Plain(text) => Ok(text.expose().to_owned()),
            Opened::Erased => {
                self.erased = true;
                Ok(String::new())
            }
        }
    }
}

/// A support-plan goal in a health domain (medical, therapy): health workers read and
/// update it.
pub fn is_health_goal(domain: i32) -> bool {
    matches!(
        caseline_proto::v1::GoalDomain::try_from(domain),
        Ok(caseline_proto::v1::GoalDomain::Medical | caseline_proto::v1::GoalDomain::Therapy)
    )
}

/// The table's compartment for a note's compartment, if the value is known.
pub fn note_compartment(value: i32) -> Option<Compartment> {
    Some(match NoteCompartment::try_from(value).ok()? {
        NoteCompartment::Unspecified => return None,
        NoteCompartment::Helpline => Compartment::HelplineContacts,
        NoteCompartment::Social => Compartment::SupportPlan,
        NoteCompartment::Investigation => Compartment::Investigation,
        NoteCompartment::Legal => Compartment::JusticeMilestones,
        NoteCompartment::Health => Compartment::HealthNotes,
    })
}

/// An instant as a protobuf `Timestamp` (instants before 1970 as the epoch).
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}
