//! Caseline's access policy: who may see and do what on a child's case.
//!
//! The rules live in one place as data ([`table`]) and one pure function ([`decide`])
//! applies them; nothing else in the code base grants access. The case-team projection
//! ([`teams`]) feeds `decide` the facts it needs (members, agencies, break-glass grants)
//! from the event log.
//!
//! Rules (DESIGN.md, Identity and access):
//! - access to a case requires membership of its team (subject *and* agency, acting in
//!   the role held on the case), or being a
//!   supervisor of an agency on the team, or break-glass;
//! - compartments decide what each role sees ([`table::TABLE`]);
//! - break-glass (police investigators, social workers, supervisors) needs a purpose code
//!   and a reason of at least 20 characters, grants read access for one hour, and is
//!   recorded before any data leaves;
//! - a caller who may not see a case is told it does not exist ([`Decision::hides_case`]).
#![forbid(unsafe_code)]

mod decide;
pub mod table;
pub mod teams;

pub use decide::{
    Action, BREAK_GLASS_MIN_REASON_CHARS, BREAK_GLASS_TTL, BreakGlassRequest, CASE_OPENERS, Caller,
    Context, Decision, Effect, Entry, Operation, REFERRAL_RECEIVERS, Reason, ReferralFacts,
    ReferralStep, Resource, Via, decide, render_operations_markdown,
};
pub use table::{Compartment, Sight};
pub use teams::{CaseTeam, CaseTeams, Grant, Member};

/// The version of the rules in force, recorded with every decision so an auditor can
/// tell which rules applied. Change it whenever [`table::TABLE`] or [`decide`] changes
/// meaning.
pub const POLICY_VERSION: &str = "2026-11-22.3";

/// Every version of the rules this build can apply, oldest first, with what changed.
/// The timeline visibility (reads) is the same in all of them, so an auditor's question
/// about what someone could see under any of them is answered by [`decide`].
pub const POLICY_VERSIONS: &[(&str, &str)] = &[
    (
        "2026-11-22.1",
        "visibility table, team membership, agency supervisors, break-glass",
    ),
    (
        "2026-11-22.2",
        "adds who may change a case (risk, team, stage, closure, reopening)",
    ),
    (
        "2026-11-22.3",
        "adds referrals (the receiving agency's staff, the referring side) and support-plan approval",
    ),
];

/// True if this build knows the rules of `version`.
pub fn knows_policy_version(version: &str) -> bool {
    POLICY_VERSIONS.iter().any(|(v, _)| *v == version)
}

/// Purpose-of-use codes a caller may declare (`x-caseline-purpose`); break-glass needs one.
pub const PURPOSES: &[&str] = &[
    "emergency_safeguarding",
    "child_protection",
    "investigation",
    "prosecution",
    "care_and_support",
    "health_care",
    "compensation",
    "complaint_handling",
    "supervision",
    "audit",
];

/// True if `code` is one of [`PURPOSES`].
pub fn is_purpose(code: &str) -> bool {
    PURPOSES.contains(&code)
}
