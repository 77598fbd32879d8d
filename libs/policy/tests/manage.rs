//! Changes to the case itself: every operation × role × standing.
//!
//! The expectations are the rules stated independently of `decide`: an operation is
//! open only to the case's team (subject and agency) and to supervisors of an agency on
//! it, in the roles the operation names; break-glass never opens it; auditors and
//! complaints officers, who see every case, change none; and whoever may not know the
//! case exists is told it does not.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_policy::{
    Action, BREAK_GLASS_TTL, BreakGlassRequest, CASE_OPENERS, Caller, CaseTeam, Context, Effect,
    Entry, Grant, Operation, POLICY_VERSION, POLICY_VERSIONS, Reason, Resource, Via, decide,
    knows_policy_version,
};

const ME: &str = "user-me";
const MY_AGENCY: &str = "agency-mine";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// On the team: this subject of this agency.
    Member,
    /// Not on the team, and no one of the caller's agency is.
    NonMember,
    /// Not on the team, but a colleague of the same agency is (supervisors stand on it).
    AgencyOnTeam,
    /// Not on the team, holding a break-glass grant in the same role from 10 minutes ago.
    ActiveGrant,
    /// Not on the team, asking to break the glass with this call.
    BreakGlassRequest,
    /// There is no such case.
    AbsentCase,
}

const STANDINGS: [Standing; 6] = [
    Standing::Member,
    Standing::NonMember,
    Standing::AgencyOnTeam,
    Standing::ActiveGrant,
    Standing::BreakGlassRequest,
    Standing::AbsentCase,
];

fn team_for(standing: Standing, role: Role) -> Option<CaseTeam> {
    let team = CaseTeam::new().with_member("someone-else", "agency-other", "social_worker");
    let granted_at = now() - Duration::from_secs(600);
    let grant = Grant {
        subject: ME.into(),
        role: role.as_str().into(),
        agency: MY_AGENCY.into(),
        purpose: "emergency_safeguarding".into(),
        reason_sealed: vec![1, 2, 3],
        granted_at,
        expires_at: granted_at + BREAK_GLASS_TTL,
    };
    match standing {
        Standing::Member => Some(team.with_member(ME, MY_AGENCY, role.as_str())),
        Standing::NonMember | Standing::BreakGlassRequest => Some(team),
        Standing::AgencyOnTeam => {
            Some(team.with_member("my-colleague", MY_AGENCY, "social_worker"))
        }
        Standing::ActiveGrant => Some(team.with_grant(grant)),
        Standing::AbsentCase => None,
    }
}

fn context_for(standing: Standing) -> Context<'static> {
    let request =
        BreakGlassRequest::new("emergency_safeguarding", "child missing, need contacts now")
            .unwrap();
    Context {
        now: now(),
        break_glass: (standing == Standing::BreakGlassRequest).then_some(request),
    }
}

fn caller(role: Role) -> Caller<'static> {
    Caller {
        subject: ME,
        role,
        agency: MY_AGENCY,
    }
}

/// The rules, stated independently of the implementation: the effect, the reason and,
/// when allowed, on what ground.
fn expected(operation: Operation, role: Role, standing: Standing) -> (Effect, Reason, Via) {
    let deny = |reason| (Effect::Deny, reason, Via::Nothing);
    let allowed_role = match operation {
        Operation::RecordRiskAssessment => matches!(
            role,
            Role::HelplineCounsellor
                | Role::SocialWorker
                | Role::PoliceInvestigator
                | Role::HealthWorker
                | Role::Supervisor
        ),
        Operation::ManageTeam => matches!(
            role,
            Role::HelplineCounsellor
                | Role::SocialWorker
                | Role::PoliceInvestigator
                | Role::Prosecutor
                | Role::Supervisor
        ),
        Operation::ChangeStage => matches!(
            role,
            Role::SocialWorker | Role::PoliceInvestigator | Role::Prosecutor | Role::Supervisor
        ),
        Operation::RequestClosure | Operation::Reopen => {
            matches!(role, Role::SocialWorker | Role::Supervisor)
        }
        Operation::DecideClosure | Operation::DecidePlan => role == Role::Supervisor,
    };
    let breaks_glass = matches!(
        role,
        Role::PoliceInvestigator | Role::SocialWorker | Role::Supervisor
    );
    if standing == Standing::AbsentCase {
        return deny(Reason::NoSuchCase);
    }
    match role {
        // They see every case, and change none.
        Role::Auditor | Role::ComplaintsOfficer => deny(Reason::WriteNotPermitted),
        // They see no case at all, even if someone put them on a team.
        Role::DataProtectionOfficer | Role::Admin => deny(Reason::NotOnTeam),
        _ => match standing {
            Standing::Member if allowed_role => (Effect::Allow, Reason::TeamMember, Via::Team),
            Standing::Member => deny(Reason::WriteNotPermitted),
            Standing::AgencyOnTeam if role == Role::Supervisor => {
                assert!(allowed_role, "supervisors may do every operation");
                (
                    Effect::Allow,
                    Reason::AgencySupervisor,
                    Via::AgencySupervisor,
                )
            }
            Standing::ActiveGrant if breaks_glass => deny(Reason::BreakGlassIsReadOnly),
            // A request to break the glass never opens a change, nor reveals the case.
            _ => deny(Reason::NotOnTeam),
        },
    }
}

#[test]
fn every_operation_role_and_standing_follows_the_rules() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for operation in Operation::ALL {
        for role in Role::ALL {
            for standing in STANDINGS {
                checked += 1;
                let team = team_for(standing, role);
                let d = decide(
                    caller(role),
                    Action::Manage(operation),
                    Resource::Case {
                        team: team.as_ref(),
                        entry: Entry::default(),
                    },
                    context_for(standing),
                );
                assert_eq!(d.policy_version, POLICY_VERSION);
                let want = expected(operation, role, standing);
                let got = (d.effect, d.reason, d.via);
                if want != got {
                    failures.push(format!(
                        "{} {role} {standing:?}: want {want:?}, got {got:?}",
                        operation.as_str()
                    ));
                }
                // Only a team member, a supervisor of an agency on it, may change a case;
                // a denial hides the case exactly when the caller may not know of it.
                let hidden = matches!(want.1, Reason::NotOnTeam | Reason::NoSuchCase);
                if d.hides_case() != hidden {
                    failures.push(format!(
                        "{} {role} {standing:?}: hides_case {}",
                        operation.as_str(),
                        d.hides_case()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 7 * 11 * 6);
}

#[test]
fn the_roles_of_each_operation_are_allowed_to_members_and_no_others() {
    for operation in Operation::ALL {
        for role in Role::ALL {
            // A member in the role they act in (members act in their role on the case).
            let team = CaseTeam::new().with_member(ME, MY_AGENCY, role.as_str());
            let d = decide(
                caller(role),
                Action::Manage(operation),
                Resource::Case {
                    team: Some(&team),
                    entry: Entry::default(),
                },
                context_for(Standing::Member),
            );
            assert_eq!(
                d.is_allowed(),
                operation.roles().contains(&role),
                "{} {role}",
                operation.as_str()
            );
        }
    }
}

#[test]
fn a_member_holding_a_grant_or_asking_for_one_changes_the_case_as_a_member() {
    for operation in Operation::ALL {
        for &role in operation.roles() {
            let granted_at = now() - Duration::from_secs(600);
            let team = CaseTeam::new()
                .with_member(ME, MY_AGENCY, role.as_str())
                .with_grant(Grant {
                    subject: ME.into(),
                    role: role.as_str().into(),
                    agency: MY_AGENCY.into(),
                    purpose: "emergency_safeguarding".into(),
                    reason_sealed: vec![1],
                    granted_at,
                    expires_at: granted_at + BREAK_GLASS_TTL,
                });
            let d = decide(
                caller(role),
                Action::Manage(operation),
                Resource::Case {
                    team: Some(&team),
                    entry: Entry::default(),
                },
                context_for(Standing::BreakGlassRequest),
            );
            assert_eq!(
                (d.effect, d.reason, d.via),
                (Effect::Allow, Reason::TeamMember, Via::Team),
                "{} {role}",
                operation.as_str()
            );
        }
    }
}

#[test]
fn manage_outside_a_case_is_denied() {
    for operation in Operation::ALL {
        for role in Role::ALL {
            let d = decide(
                caller(role),
                Action::Manage(operation),
                Resource::Global,
                context_for(Standing::BreakGlassRequest),
            );
            assert!(!d.is_allowed(), "{} {role}", operation.as_str());
            assert_eq!(d.reason, Reason::NoSuchCase);
        }
    }
}

#[test]
fn case_openers_are_the_roles_that_take_a_first_report() {
    assert_eq!(
        CASE_OPENERS,
        &[
            Role::HelplineCounsellor,
            Role::SocialWorker,
            Role::PoliceInvestigator,
            Role::HealthWorker,
        ]
    );
}

#[test]
fn the_policy_in_force_is_the_newest_known_version() {
    assert_eq!(
        POLICY_VERSIONS.last().map(|(v, _)| *v),
        Some(POLICY_VERSION)
    );
    assert!(knows_policy_version(POLICY_VERSION));
    for (version, what) in POLICY_VERSIONS {
        assert!(knows_policy_version(version));
        assert!(!what.is_empty(), "{version}");
    }
    assert!(knows_policy_version("2026-11-22.1"));
    assert!(!knows_policy_version("2026-11-22.99"));
    assert!(!knows_policy_version(""));
    // Each listed once.
    for (i, (version, _)) in POLICY_VERSIONS.iter().enumerate() {
        assert!(
            POLICY_VERSIONS[..i].iter().all(|(v, _)| v != version),
            "{version} listed twice"
        );
    }
}
