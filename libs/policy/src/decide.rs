//! The one decision function. Pure: everything it needs is passed in.

use std::time::{Duration, SystemTime};

use caseline_auth::Role;

use crate::POLICY_VERSION;
use crate::table::{Compartment, Scope, Sight, cell_for};
use crate::teams::CaseTeam;

/// How long a break-glass grant lasts.
pub const BREAK_GLASS_TTL: Duration = Duration::from_secs(60 * 60);
/// The shortest acceptable break-glass reason, in characters.
pub const BREAK_GLASS_MIN_REASON_CHARS: usize = 20;

/// Roles that may open a case they are not on in an emergency.
const BREAK_GLASS_ROLES: [Role; 3] = [
    Role::PoliceInvestigator,
    Role::SocialWorker,
    Role::Supervisor,
];

/// The caller, acting in one role.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub subject: &'a str,
    pub role: Role,
    pub agency: &'a str,
}

/// What the caller wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// See entries of a compartment of a case.
    Read(Compartment),
    /// Add to a compartment of a case.
    Write(Compartment),
    /// Call an operation that is not about one case, open to the listed roles.
    Invoke(&'static [Role]),
    /// Change the case itself (risk, team, stage, closure): see [`Operation`].
    Manage(Operation),
    /// A step of a referral's life, on [`Resource::Referral`]: see [`ReferralStep`].
    Referral(ReferralStep),
}

/// What a caller does with one referral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReferralStep {
    /// Make it: from a case, a member who writes referrals; from a helpline contact
    /// (no case yet), a counsellor of the agency that recorded it.
    Make,
    /// See the referral itself.
    View,
    /// See the core summary of the case (or contact) it is about (never the identity).
    ViewReferredCase,
    /// The receiving agency's steps.
    Acknowledge,
    Accept,
    Decline,
    RecordOutcome,
    /// The referring side takes it back.
    Withdraw,
}

impl ReferralStep {
    pub const ALL: [ReferralStep; 8] = [
        ReferralStep::Make,
        ReferralStep::View,
        ReferralStep::ViewReferredCase,
        ReferralStep::Acknowledge,
        ReferralStep::Accept,
        ReferralStep::Decline,
        ReferralStep::RecordOutcome,
        ReferralStep::Withdraw,
    ];

    /// A step only the receiving agency takes.
    pub fn is_receiving(self) -> bool {
        matches!(
            self,
            ReferralStep::Acknowledge
                | ReferralStep::Accept
                | ReferralStep::Decline
                | ReferralStep::RecordOutcome
        )
    }
}

/// Roles whose staff of a receiving agency handle referrals addressed to it (every
/// role that may sit on a case's team).
pub const REFERRAL_RECEIVERS: &[Role] = &[
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::Prosecutor,
    Role::HealthWorker,
    Role::VictimAdvocate,
    Role::Supervisor,
];

/// What the policy knows of one referral.
#[derive(Clone, Copy, Debug)]
pub struct ReferralFacts<'a> {
    /// The agency that made it (for a contact's referral: the agency that recorded
    /// the contact).
    pub from_agency: &'a str,
    pub to_agency: &'a str,
    /// The team of the case it is about; `None` for a helpline contact's referral.
    pub team: Option<&'a CaseTeam>,
    /// It awaits the receiving agency's decision (made or acknowledged).
    pub awaiting_decision: bool,
}

/// A change to the case core, which the visibility table lets no one write: these
/// operations are open to the case's team (and supervisors of an agency on it) in the
/// roles [`Operation::roles`] names, never through break-glass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    RecordRiskAssessment,
    /// Add or remove a team member.
    ManageTeam,
    /// Move an open case between intake, investigation, prosecution and aftercare.
    ChangeStage,
    RequestClosure,
    /// Approve or reject a closure request.
    DecideClosure,
    Reopen,
    /// Approve a submitted support plan, or send it back for changes.
    DecidePlan,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::RecordRiskAssessment,
        Operation::ManageTeam,
        Operation::ChangeStage,
        Operation::RequestClosure,
        Operation::DecideClosure,
        Operation::Reopen,
        Operation::DecidePlan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::RecordRiskAssessment => "record_risk_assessment",
            Operation::ManageTeam => "manage_team",
            Operation::ChangeStage => "change_stage",
            Operation::RequestClosure => "request_closure",
            Operation::DecideClosure => "decide_closure",
            Operation::Reopen => "reopen",
            Operation::DecidePlan => "decide_plan",
        }
    }

    /// The roles that may do it, as a member of the team (or supervisor of an agency
    /// on it).
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Operation::RecordRiskAssessment => &[
                HelplineCounsellor,
                SocialWorker,
                PoliceInvestigator,
                HealthWorker,
                Supervisor,
            ],
            Operation::ManageTeam => &[
                HelplineCounsellor,
                SocialWorker,
                PoliceInvestigator,
                Prosecutor,
                Supervisor,
            ],
            Operation::ChangeStage => &[SocialWorker, PoliceInvestigator, Prosecutor, Supervisor],
            Operation::RequestClosure | Operation::Reopen => &[SocialWorker, Supervisor],
            Operation::DecideClosure | Operation::DecidePlan => &[Supervisor],
        }
    }
}

/// Who may do each [`Operation`], as a Markdown table for documentation: one row per
/// operation, one column per role of [`crate::table::COLUMNS`]; `W` if the role may do
/// it (as a team member, or a supervisor of an agency on the team), `–` if not.
pub fn render_operations_markdown() -> String {
    use crate::table::COLUMNS;
    let mut out = String::from("| operation |");
    for role in COLUMNS {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(COLUMNS.len()));
    out.push('\n');
    for operation in Operation::ALL {
        out.push_str(&format!("| {} |", operation.as_str()));
        for role in COLUMNS {
            let cell = if operation.roles().contains(&role) {
                "W"
            } else {
                "–"
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

/// Roles that may open a new case (and become the first member of its team).
pub const CASE_OPENERS: &[Role] = &[
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::HealthWorker,
];

/// What the action is on.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    /// Nothing case-specific (e.g. verifying the log's integrity).
    Global,
    /// One case; `team` is `None` when no such case exists.
    Case {
        team: Option<&'a CaseTeam>,
        entry: Entry<'a>,
    },
    /// One referral (for [`Action::Referral`]).
    Referral(ReferralFacts<'a>),
}

/// Facts about the particular entry that scoped cells depend on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry<'a> {
    /// The agency a referral is addressed to.
    pub addressed_to: Option<&'a str>,
    /// A support-plan entry about a health goal (medical, therapy).
    pub health_goal: bool,
}

/// A caller's request to break the glass, already validated.
#[derive(Clone, Copy, Debug)]
pub struct BreakGlassRequest<'a> {
    purpose: &'a str,
}

impl<'a> BreakGlassRequest<'a> {
    /// A request with a known purpose code and a reason of at least
    /// [`BREAK_GLASS_MIN_REASON_CHARS`] characters (not counting surrounding space), or
    /// else the name of what is wrong: `"purpose"` or `"reason"`.
    pub fn new(purpose: &'a str, reason: &str) -> Result<Self, &'static str> {
        if !crate::is_purpose(purpose) {
            return Err("purpose");
        }
        if reason.trim().chars().count() < BREAK_GLASS_MIN_REASON_CHARS {
            return Err("reason");
        }
        Ok(Self { purpose })
    }

    pub fn purpose(&self) -> &'a str {
        self.purpose
    }
}

/// Circumstances of the call.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub now: SystemTime,
    pub break_glass: Option<BreakGlassRequest<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// On what ground access was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Not an allowance.
    Nothing,
    /// The role may call this operation.
    Role,
    /// A member of the case's team.
    Team,
    /// A supervisor of an agency on the team.
    AgencySupervisor,
    /// Break-glass; `new` when this call opens it (the grant must be recorded before
    /// any data leaves).
    BreakGlass { new: bool },
    /// Auditors: metadata of every case.
    Oversight,
    /// Complaints officers: complaints of every case, independent of the team.
    ComplaintsHandling,
    /// Staff of the agency a referral is addressed to.
    ReferralReceiver,
    /// The agency that made a referral from a helpline contact.
    ContactAgency,
}

/// Why, as a machine code recorded in the access history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    RolePermitted,
    RoleNotPermitted,
    TeamMember,
    AgencySupervisor,
    BreakGlassOpened,
    BreakGlassActive,
    BreakGlassIsReadOnly,
    Oversight,
    ComplaintsHandling,
    ReferralReceiver,
    ContactAgency,
    NoSuchCase,
    NotOnTeam,
    CompartmentNotVisible,
    WriteNotPermitted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RolePermitted => "role_permitted",
            Reason::RoleNotPermitted => "role_not_permitted",
            Reason::TeamMember => "team_member",
            Reason::AgencySupervisor => "agency_supervisor",
            Reason::BreakGlassOpened => "break_glass_opened",
            Reason::BreakGlassActive => "break_glass_active",
            Reason::BreakGlassIsReadOnly => "break_glass_is_read_only",
            Reason::Oversight => "oversight",
            Reason::ComplaintsHandling => "complaints_handling",
            Reason::ReferralReceiver => "referral_receiver",
            Reason::ContactAgency => "contact_agency",
            Reason::NoSuchCase => "no_such_case",
            Reason::NotOnTeam => "not_on_team",
            Reason::CompartmentNotVisible => "compartment_not_visible",
            Reason::WriteNotPermitted => "write_not_permitted",
        }
    }
}

/// The outcome of [`decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub reason: Reason,
    pub policy_version: &'static str,
    /// For reads: how much of the entries the caller sees. `Sight::None` when denied.
    pub sight: Sight,
    pub via: Via,
}

impl Decision {
    fn allow(reason: Reason, via: Via, sight: Sight) -> Self {
        Self {
            effect: Effect::Allow,
            reason,
            policy_version: POLICY_VERSION,
            sight,
            via,
        }
    }

    /// A denial for `reason` under the rules in force.
    pub fn deny(reason: Reason) -> Self {
        Self {
            effect: Effect::Deny,
            reason,
            policy_version: POLICY_VERSION,
            sight: Sight::None,
            via: Via::Nothing,
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// A denial that must look exactly like an absent case (NOT_FOUND): the caller may
    /// not know the case exists. Other denials are PERMISSION_DENIED.
    pub fn hides_case(&self) -> bool {
        matches!(self.reason, Reason::NoSuchCase | Reason::NotOnTeam)
    }
}

/// Decides whether `caller` may do `action` on `resource`.
pub fn decide(
    caller: Caller<'_>,
    action: Action,
    resource: Resource<'_>,
    context: Context<'_>,
) -> Decision {
    match (action, resource) {
        (Action::Invoke(roles), _) => {
            if roles.contains(&caller.role) {
                Decision::allow(Reason::RolePermitted, Via::Role, Sight::None)
            } else {
                Decision::deny(Reason::RoleNotPermitted)
            }
        }
        (Action::Referral(step), Resource::Referral(referral)) => {
            referral_access(caller, step, referral, context)
        }
        (Action::Referral(_), _) => Decision::deny(Reason::NoSuchCase),
        (
            Action::Read(_) | Action::Write(_) | Action::Manage(_),
            Resource::Global | Resource::Referral(_),
        ) => {
            // A compartment outside any case: a mistake of the caller's code, never a
            // reason to allow.
            Decision::deny(Reason::NoSuchCase)
        }
        (
            Action::Read(compartment) | Action::Write(compartment),
            Resource::Case { team, entry },
        ) => {
            let Some(team) = team else {
                return Decision::deny(Reason::NoSuchCase);
            };
            let write = matches!(action, Action::Write(_));
            case_access(caller, compartment, write, team, entry, context)
        }
        (Action::Manage(operation), Resource::Case { team, .. }) => {
            let Some(team) = team else {
                return Decision::deny(Reason::NoSuchCase);
            };
            let core = case_access(
                caller,
                Compartment::CaseCore,
                false,
                team,
                Entry::default(),
                Context {
                    break_glass: None,
                    ..context
                },
            );
            match core.via {
                // Break-glass and oversight read; they never change a case.
                Via::BreakGlass { .. } => Decision::deny(Reason::BreakGlassIsReadOnly),
                Via::Team | Via::AgencySupervisor if operation.roles().contains(&caller.role) => {
                    core
                }
                Via::Nothing => core,
                _ => Decision::deny(Reason::WriteNotPermitted),
            }
        }
    }
}

/// A referral's steps. The receiving agency's staff (in [`REFERRAL_RECEIVERS`]) see
/// the referral, and the case's core summary while it awaits their decision, and take
/// the receiving steps; everyone else stands where the case's referrals compartment
/// puts them (the referring side writes, so makes and withdraws, and a supervisor of
/// the referring agency on the team may withdraw). A contact's referral belongs to the
/// agency that recorded the contact. Break-glass never takes a step.
fn referral_access(
    caller: Caller<'_>,
    step: ReferralStep,
    r: ReferralFacts<'_>,
    context: Context<'_>,
) -> Decision {
    if matches!(
        caller.role,
        Role::Auditor | Role::ComplaintsOfficer | Role::DataProtectionOfficer | Role::Admin
    ) {
        // Auditors see referrals as metadata on timelines; complaints officers do not
        // see them at all.
        return Decision::deny(Reason::NotOnTeam);
    }
    let receiver = step != ReferralStep::Make
        && caller.agency == r.to_agency
        && REFERRAL_RECEIVERS.contains(&caller.role);
    if receiver {
        match step {
            ReferralStep::View => {
                return Decision::allow(
                    Reason::ReferralReceiver,
                    Via::ReferralReceiver,
                    Sight::Full,
                );
            }
            ReferralStep::ViewReferredCase if r.awaiting_decision => {
                return Decision::allow(
                    Reason::ReferralReceiver,
                    Via::ReferralReceiver,
                    Sight::Summary,
                );
            }
            s if s.is_receiving() => {
                return Decision::allow(
                    Reason::ReferralReceiver,
                    Via::ReferralReceiver,
                    Sight::Full,
                );
            }
            // Withdrawing is the referring side's; the receiver sees the referral, so
            // the refusal does not hide it.
            ReferralStep::Withdraw => return Decision::deny(Reason::WriteNotPermitted),
            // Seeing the case after the decision, or making one: as anyone else.
            _ => {}
        }
    }
    let Some(team) = r.team else {
        // A contact's referral: the agency that recorded the contact, in the roles
        // that work its contacts.
        let contact_agency = caller.agency == r.from_agency
            && matches!(caller.role, Role::HelplineCounsellor | Role::Supervisor);
        return match step {
            _ if !contact_agency => Decision::deny(Reason::NotOnTeam),
            ReferralStep::Make if caller.role != Role::HelplineCounsellor => {
                Decision::deny(Reason::WriteNotPermitted)
            }
            s if s.is_receiving() => Decision::deny(Reason::WriteNotPermitted),
            ReferralStep::View | ReferralStep::ViewReferredCase => {
                Decision::allow(Reason::ContactAgency, Via::ContactAgency, Sight::Full)
            }
            _ => Decision::allow(Reason::ContactAgency, Via::ContactAgency, Sight::None),
        };
    };
    let entry = Entry {
        addressed_to: Some(r.to_agency),
        health_goal: false,
    };
    // No break-glass for a step that changes anything.
    let quiet = Context {
        break_glass: None,
        ..context
    };
    match step {
        ReferralStep::View => {
            case_access(caller, Compartment::Referrals, false, team, entry, context)
        }
        ReferralStep::ViewReferredCase => {
            case_access(caller, Compartment::CaseCore, false, team, entry, context)
        }
        ReferralStep::Make => case_access(caller, Compartment::Referrals, true, team, entry, quiet),
        ReferralStep::Withdraw => {
            if caller.agency != r.from_agency {
                return deny_unless_visible(caller, team, entry, quiet);
            }
            let write = case_access(caller, Compartment::Referrals, true, team, entry, quiet);
            if write.is_allowed() {
                return write;
            }
            // A supervisor of the referring agency, on the team or standing by agency.
            let read = case_access(caller, Compartment::Referrals, false, team, entry, quiet);
            if caller.role == Role::Supervisor
                && matches!(read.via, Via::AgencySupervisor | Via::Team)
            {
                return read;
            }
            write
        }
        _ => deny_unless_visible(caller, team, entry, quiet),
    }
}

/// A step the caller may not take: PERMISSION_DENIED if they may see the referral,
/// else hidden (NOT_FOUND).
fn deny_unless_visible(
    caller: Caller<'_>,
    team: &CaseTeam,
    entry: Entry<'_>,
    context: Context<'_>,
) -> Decision {
    let read = case_access(caller, Compartment::Referrals, false, team, entry, context);
    if read.is_allowed() {
        Decision::deny(Reason::WriteNotPermitted)
    } else if read.hides_case() {
        read
    } else {
        Decision::deny(Reason::NotOnTeam)
    }
}

fn case_access(
    caller: Caller<'_>,
    compartment: Compartment,
    write: bool,
    team: &CaseTeam,
    entry: Entry<'_>,
    context: Context<'_>,
) -> Decision {
    let cell = cell_for(caller.role, compartment);
    let in_scope = match cell.scope {
        Scope::All => true,
        Scope::AddressedToOwnAgency => entry.addressed_to == Some(caller.agency),
        Scope::HealthGoals => entry.health_goal,
    };
    let sight = if in_scope { cell.read } else { cell.otherwise };
    let may_write = cell.write && in_scope;

    // Who stands where, independently of the compartment.
    let (via, reason) = match caller.role {
        Role::Auditor => (Via::Oversight, Reason::Oversight),
        Role::ComplaintsOfficer => (Via::ComplaintsHandling, Reason::ComplaintsHandling),
        Role::DataProtectionOfficer | Role::Admin => return Decision::deny(Reason::NotOnTeam),
        // A member acts on the case in the role they hold on it: the same user acting
        // in another role their token carries stands where that role stands.
        _ if team.member_role(caller.subject, caller.agency) == Some(caller.role.as_str()) => {
            (Via::Team, Reason::TeamMember)
        }
        Role::Supervisor if team.has_agency(caller.agency) => {
            (Via::AgencySupervisor, Reason::AgencySupervisor)
        }
        role if BREAK_GLASS_ROLES.contains(&role) => {
            if team.has_active_grant(
                caller.subject,
                caller.agency,
                caller.role.as_str(),
                context.now,
            ) {
                (Via::BreakGlass { new: false }, Reason::BreakGlassActive)
            } else if context.break_glass.is_some() {
                (Via::BreakGlass { new: true }, Reason::BreakGlassOpened)
            } else {
                return Decision::deny(Reason::NotOnTeam);
            }
        }
        _ => return Decision::deny(Reason::NotOnTeam),
    };

    // Complaints officers stand outside the team: if their column shows nothing of the
    // case core, the case does not exist for them. The same holds for everyone: a role
    // that sees nothing of the case core may not learn that the case exists.
    if cell_for(caller.role, Compartment::CaseCore).read == Sight::None {
        return Decision::deny(Reason::NotOnTeam);
    }

    if write {
        match via {
            // Break-glass opens reads only, so a write cannot open it: the case stays
            // hidden, or a write would tell a non-member that it exists.
            Via::BreakGlass { new: true } => return Decision::deny(Reason::NotOnTeam),
            Via::BreakGlass { new: false } => {
                return Decision::deny(Reason::BreakGlassIsReadOnly);
            }
            _ => {}
        }
        if !may_write {
            return Decision::deny(Reason::WriteNotPermitted);
        }
        return Decision::allow(reason, via, sight);
    }
    if sight == Sight::None {
        // Opening break-glass onto nothing would tell a non-member the case exists
        // without a grant to review: the case stays hidden.
        if via == (Via::BreakGlass { new: true }) {
            return Decision::deny(Reason::NotOnTeam);
        }
        return Decision::deny(Reason::CompartmentNotVisible);
    }
    Decision::allow(reason, via, sight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_guide_shows_the_operations_in_force() {
        let guide = include_str!("../../../docs/security.md");
        assert!(
            guide.contains(&render_operations_markdown()),
            "docs/security.md must hold render_operations_markdown()'s table verbatim:\n{}",
            render_operations_markdown()
        );
    }

    #[test]
    fn the_operations_table_has_a_row_per_operation_and_a_cell_per_column() {
        let md = render_operations_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 2 + Operation::ALL.len());
        for line in &lines {
            assert_eq!(
                line.matches('|').count(),
                2 + crate::table::COLUMNS.len(),
                "{line}"
            );
        }
        assert!(md.contains("| decide_closure | – | – | – | – | – | – | W | – | – |"));
    }
}
