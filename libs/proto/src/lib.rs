//! Caseline's public gRPC API, generated at build time from `proto/caseline/v1`.
//!
//! Servers and clients both depend on this crate alone and use the `tonic` and `prost`
//! it re-exports, so the whole workspace speaks one version of each. Prost types stay at
//! the edge: services convert them into validated domain types with `TryFrom`.
#![forbid(unsafe_code)]

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `FileDescriptorSet` of every Caseline proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/caseline_descriptor.bin"));

/// The format of a projection's snapshot in which protobuf messages are kept (see
/// `caseline_projection::Fold::FORMAT`): `version` mixed with a fingerprint of every
/// Caseline proto, so that any change to the messages makes older snapshots unusable
/// (they are rebuilt from the log) rather than read with fields missing. Fits 31 bits.
pub const fn snapshot_format(version: u32) -> u32 {
    // FNV-1a over the descriptor set, at compile time.
    let bytes = FILE_DESCRIPTOR_SET;
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    (hash ^ version.wrapping_mul(0x9e37_79b1)) & 0x7fff_ffff
}

/// Fully qualified names of the five services, in the order they are documented.
pub const SERVICE_NAMES: [&str; 5] = [
    "caseline.v1.CaseService",
    "caseline.v1.ReferralService",
    "caseline.v1.SupportPlanService",
    "caseline.v1.CompensationService",
    "caseline.v1.AuditService",
];

/// `caseline.v1`: services, requests and responses.
pub mod v1 {
    #![allow(missing_docs, clippy::all, missing_debug_implementations)]
    tonic::include_proto!("caseline.v1");

    /// `caseline.v1.events`: payloads of the events in the log. The event type is the
    /// message name.
    pub mod events {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        tonic::include_proto!("caseline.v1.events");
    }
}

/// The event types (full payload names) of the events services append.
pub mod event_types {
    pub const CONTACT_RECORDED: &str = "caseline.v1.events.ContactRecorded";
    pub const CONTACT_CASE_OPENED: &str = "caseline.v1.events.ContactCaseOpened";
    pub const CASE_OPENED: &str = "caseline.v1.events.CaseOpened";
    pub const CONTACT_ATTACHED: &str = "caseline.v1.events.ContactAttached";
    pub const RISK_ASSESSED: &str = "caseline.v1.events.RiskAssessed";
    pub const TEAM_MEMBER_ADDED: &str = "caseline.v1.events.TeamMemberAdded";
    pub const TEAM_MEMBER_REMOVED: &str = "caseline.v1.events.TeamMemberRemoved";
    pub const NOTE_ADDED: &str = "caseline.v1.events.NoteAdded";
    pub const CASES_LINKED: &str = "caseline.v1.events.CasesLinked";
    pub const CASES_UNLINKED: &str = "caseline.v1.events.CasesUnlinked";
    pub const STAGE_CHANGED: &str = "caseline.v1.events.StageChanged";
    pub const CLOSURE_REQUESTED: &str = "caseline.v1.events.ClosureRequested";
    pub const CLOSURE_DECIDED: &str = "caseline.v1.events.ClosureDecided";
    pub const CASE_REOPENED: &str = "caseline.v1.events.CaseReopened";
    pub const JUSTICE_MILESTONE_RECORDED: &str = "caseline.v1.events.JusticeMilestoneRecorded";
    pub const REFERRAL_MADE: &str = "caseline.v1.events.ReferralMade";
    pub const REFERRAL_ACKNOWLEDGED: &str = "caseline.v1.events.ReferralAcknowledged";
    pub const REFERRAL_ACCEPTED: &str = "caseline.v1.events.ReferralAccepted";
    pub const REFERRAL_DECLINED: &str = "caseline.v1.events.ReferralDeclined";
    pub const REFERRAL_OUTCOME_RECORDED: &str = "caseline.v1.events.ReferralOutcomeRecorded";
    pub const REFERRAL_WITHDRAWN: &str = "caseline.v1.events.ReferralWithdrawn";
    pub const REFERRAL_ESCALATED: &str = "caseline.v1.events.ReferralEscalated";
    pub const REFERRAL_ATTACHED: &str = "caseline.v1.events.ReferralAttached";
    pub const PLAN_CREATED: &str = "caseline.v1.events.PlanCreated";
    pub const SAFETY_PLAN_RECORDED: &str = "caseline.v1.events.SafetyPlanRecorded";
    pub const GOAL_ADDED: &str = "caseline.v1.events.GoalAdded";
    pub const PROVIDER_ASSIGNED: &str = "caseline.v1.events.ProviderAssigned";
    pub const SERVICE_DELIVERED: &str = "caseline.v1.events.ServiceDelivered";
    pub const GOAL_STATUS_UPDATED: &str = "caseline.v1.events.GoalStatusUpdated";
    pub const PLAN_SUBMITTED: &str = "caseline.v1.events.PlanSubmitted";
    pub const PLAN_APPROVED: &str = "caseline.v1.events.PlanApproved";
    pub const PLAN_CHANGES_REQUESTED: &str = "caseline.v1.events.PlanChangesRequested";
    pub const REVIEW_SCHEDULED: &str = "caseline.v1.events.ReviewScheduled";
    pub const PLAN_REVIEWED: &str = "caseline.v1.events.PlanReviewed";
    pub const PLAN_CLOSED: &str = "caseline.v1.events.PlanClosed";
    pub const CLAIM_FILED: &str = "caseline.v1.events.ClaimFiled";
    pub const CLAIM_SUBMITTED: &str = "caseline.v1.events.ClaimSubmitted";
    pub const CLAIM_DECIDED: &str = "caseline.v1.events.ClaimDecided";
    pub const APPEAL_LODGED: &str = "caseline.v1.events.AppealLodged";
    pub const PAYMENT_RECORDED: &str = "caseline.v1.events.PaymentRecorded";
    pub const CLAIM_CLOSED: &str = "caseline.v1.events.ClaimClosed";
    pub const COMPLAINT_LODGED: &str = "caseline.v1.events.ComplaintLodged";
    pub const COMPLAINT_ACKNOWLEDGED: &str = "caseline.v1.events.ComplaintAcknowledged";
    pub const COMPLAINT_FINDING_RECORDED: &str = "caseline.v1.events.ComplaintFindingRecorded";
    pub const COMPLAINT_ESCALATED: &str = "caseline.v1.events.ComplaintEscalated";
    pub const COMPLAINT_CLOSED: &str = "caseline.v1.events.ComplaintClosed";
    pub const ACCESS_RECORDED: &str = "caseline.v1.events.AccessRecorded";
    pub const BREAK_GLASS_GRANTED: &str = "caseline.v1.events.BreakGlassGranted";
}
