//! The access matrix: every role × compartment × standing × read/write cell.
//!
//! The expectations come from DESIGN.md's visibility table, pasted below as text and
//! parsed here, and from the standing rules of DESIGN.md (team membership, agency
//! supervisors, break-glass, no existence leak), so a drift of `TABLE` or of `decide`
//! from the design fails a named cell.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_policy::{
    Action, BREAK_GLASS_TTL, BreakGlassRequest, Caller, CaseTeam, Compartment, Context, Entry,
    Grant, Resource, Sight, Via, decide,
};

/// DESIGN.md, "Timeline visibility", verbatim.
const DESIGN_TABLE: &str = "
| case core (opened, stage, team, risk level) | R | R | R | R | R | R | R | S | metadata |
| child identity (sealed) | R | R | R | R | R | R | R | – | – |
| helpline contacts | R W | R | S | – | – | – | R | – | metadata |
| referrals | R W | R W | R W | R | R (to them) | R | R | – | metadata |
| support plan | S | R W | S | S | R (health goals) W | S | R | – | metadata |
| investigation notes, case links | – | – | R W | R | – | – | – | – | metadata |
| justice milestones | – | R | R | R W | – | R | R | – | metadata |
| health notes | – | – | – | – | R W | – | – | – | metadata |
| compensation claims | – | R | – | R | – | R W | R | – | metadata |
| complaints | – | – | – | – | – | – | – | R W | metadata |
";

const DESIGN_COLUMNS: [Role; 9] = [
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::Prosecutor,
    Role::HealthWorker,
    Role::VictimAdvocate,
    Role::Supervisor,
    Role::ComplaintsOfficer,
    Role::Auditor,
];

const ROWS: [Compartment; 10] = [
    Compartment::CaseCore,
    Compartment::ChildIdentity,
    Compartment::HelplineContacts,
    Compartment::Referrals,
    Compartment::SupportPlan,
    Compartment::Investigation,
    Compartment::JusticeMilestones,
    Compartment::HealthNotes,
    Compartment::CompensationClaims,
    Compartment::Complaints,
];

fn design_cell(role: Role, compartment: Compartment) -> &'static str {
    let Some(col) = DESIGN_COLUMNS.iter().position(|r| *r == role) else {
        return "–";
    };
    let row = ROWS.iter().position(|c| *c == compartment).unwrap();
    let line = DESIGN_TABLE
        .lines()
        .filter(|l| l.starts_with('|'))
        .nth(row)
        .unwrap();
    line.split('|').map(str::trim).nth(col + 2).unwrap()
}

/// What DESIGN's cell says a member sees of `entry` and whether they may write it.
fn design_member(role: Role, compartment: Compartment, entry: EntryKind) -> (Sight, bool) {
    let text = design_cell(role, compartment);
    let write = text.ends_with(" W") || text == "W";
    let sight = match text.trim_end_matches(" W") {
        "R" => Sight::Full,
        "S" => Sight::Summary,
        "metadata" => Sight::Metadata,
        "–" => Sight::None,
        "R (to them)" => match entry {
            EntryKind::ToOwnAgency => Sight::Full,
            _ => Sight::None,
        },
        "R (health goals)" => match entry {
            EntryKind::HealthGoal => Sight::Full,
            _ => Sight::Summary,
        },
        other => panic!("unknown notation {other:?}"),
    };
    let scoped_out = matches!(
        (text, entry),
        ("R (to them)", e) | ("R (health goals) W", e) if !matches!((text, e), ("R (to them)", EntryKind::ToOwnAgency) | ("R (health goals) W", EntryKind::HealthGoal))
    );
    (sight, write && !scoped_out)
}

#[derive(Clone, Copy, Debug)]
enum EntryKind {
    Plain,
    ToOwnAgency,
    ToOtherAgency,
    HealthGoal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Member,
    NonMember,
    /// Not on the team, asking to break the glass now.
    BreakGlassRequest,
    /// Not on the team, holding a grant from 10 minutes ago.
    ActiveGrant,
    /// Not on the team, holding a grant from 61 minutes ago.
    ExpiredGrant,
    /// Not on the team, but a colleague of the same agency is.
    AgencyOnTeam,
}

const STANDINGS: [Standing; 6] = [
    Standing::Member,
    Standing::NonMember,
    Standing::BreakGlassRequest,
    Standing::ActiveGrant,
    Standing::ExpiredGrant,
    Standing::AgencyOnTeam,
];

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Allow(Sight, Via),
    NotFound,
    PermissionDenied,
}

const ME: &str = "user-me";
const MY_AGENCY: &str = "agency-mine";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn team_for(standing: Standing, role: Role) -> CaseTeam {
    let team = CaseTeam::new().with_member("someone-else", "agency-other", "social_worker");
    let grant = |granted_at: SystemTime| Grant {
        subject: ME.into(),
        role: role.as_str().into(),
        agency: MY_AGENCY.into(),
        purpose: "emergency_safeguarding".into(),
        reason_sealed: vec![1, 2, 3],
        granted_at,
        expires_at: granted_at + BREAK_GLASS_TTL,
    };
    match standing {
        Standing::Member => team.with_member(ME, MY_AGENCY, role.as_str()),
        Standing::NonMember | Standing::BreakGlassRequest => team,
        Standing::ActiveGrant => team.with_grant(grant(now() - Duration::from_secs(600))),
        Standing::ExpiredGrant => team.with_grant(grant(now() - Duration::from_secs(61 * 60))),
        Standing::AgencyOnTeam => team.with_member("my-colleague", MY_AGENCY, "social_worker"),
    }
}

/// DESIGN's rules, stated independently of the implementation.
fn expected(
    role: Role,
    c: Compartment,
    entry: EntryKind,
    standing: Standing,
    write: bool,
) -> Expect {
    let (sight, may_write) = design_member(role, c, entry);
    let core_visible =
        design_member(role, Compartment::CaseCore, EntryKind::Plain).0 != Sight::None;
    let outcome = |via: Via, read_only: bool| {
        if !core_visible {
            Expect::NotFound
        } else if write {
            if may_write && !read_only {
                Expect::Allow(sight, via)
            } else {
                Expect::PermissionDenied
            }
        } else if sight == Sight::None {
            Expect::PermissionDenied
        } else {
            Expect::Allow(sight, via)
        }
    };
    let breaks_glass = matches!(
        role,
        Role::PoliceInvestigator | Role::SocialWorker | Role::Supervisor
    );
    match role {
        Role::Auditor => outcome(Via::Oversight, true),
        Role::ComplaintsOfficer => outcome(Via::ComplaintsHandling, false),
        Role::DataProtectionOfficer | Role::Admin => Expect::NotFound,
        _ => match standing {
            Standing::Member => outcome(Via::Team, false),
            Standing::AgencyOnTeam if role == Role::Supervisor => {
                outcome(Via::AgencySupervisor, false)
            }
            // A write cannot open break-glass, and must not reveal that the case exists.
            Standing::BreakGlassRequest if breaks_glass && write => Expect::NotFound,
            // Nor may a read of a compartment the role cannot see.
            Standing::BreakGlassRequest if breaks_glass && sight == Sight::None => Expect::NotFound,
            Standing::BreakGlassRequest if breaks_glass => {
                outcome(Via::BreakGlass { new: true }, true)
            }
            Standing::ActiveGrant if breaks_glass => outcome(Via::BreakGlass { new: false }, true),
            _ => Expect::NotFound,
        },
    }
}

fn actual(role: Role, c: Compartment, entry: EntryKind, standing: Standing, write: bool) -> Expect {
    let team = team_for(standing, role);
    let entry = match entry {
        EntryKind::Plain => Entry::default(),
        EntryKind::ToOwnAgency => Entry {
            addressed_to: Some(MY_AGENCY),
            ..Entry::default()
        },
        EntryKind::ToOtherAgency => Entry {
            addressed_to: Some("agency-other"),
            ..Entry::default()
        },
        EntryKind::HealthGoal => Entry {
            health_goal: true,
            ..Entry::default()
        },
    };
    let request =
        BreakGlassRequest::new("emergency_safeguarding", "child missing, need contacts now")
            .unwrap();
    let context = Context {
        now: now(),
        break_glass: (standing == Standing::BreakGlassRequest).then_some(request),
    };
    let caller = Caller {
        subject: ME,
        role,
        agency: MY_AGENCY,
    };
    let action = if write {
        Action::Write(c)
    } else {
        Action::Read(c)
    };
    let d = decide(
        caller,
        action,
        Resource::Case {
            team: Some(&team),
            entry,
        },
        context,
    );
    assert_eq!(d.policy_version, caseline_policy::POLICY_VERSION);
    if d.is_allowed() {
        Expect::Allow(d.sight, d.via)
    } else if d.hides_case() {
        Expect::NotFound
    } else {
        Expect::PermissionDenied
    }
}

#[test]
fn every_cell_of_the_matrix_follows_the_design() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for role in Role::ALL {
        for c in ROWS {
            let entries: &[EntryKind] = match c {
                Compartment::Referrals => &[EntryKind::ToOwnAgency, EntryKind::ToOtherAgency],
                Compartment::SupportPlan => &[EntryKind::Plain, EntryKind::HealthGoal],
                _ => &[EntryKind::Plain],
            };
            for &entry in entries {
                for standing in STANDINGS {
                    for write in [false, true] {
                        checked += 1;
                        let want = expected(role, c, entry, standing, write);
                        let got = actual(role, c, entry, standing, write);
                        if want != got {
                            failures.push(format!(
                                "{role} {c} {entry:?} {standing:?} {}: want {want:?}, got {got:?}",
                                if write { "write" } else { "read" }
                            ));
                        }
                    }
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
    assert_eq!(checked, 11 * 12 * 6 * 2);
}

#[test]
fn an_absent_case_is_not_found_for_every_role_and_action() {
    for role in Role::ALL {
        for c in ROWS {
            for action in [Action::Read(c), Action::Write(c)] {
                let d = decide(
                    Caller {
                        subject: ME,
                        role,
                        agency: MY_AGENCY,
                    },
                    action,
                    Resource::Case {
                        team: None,
                        entry: Entry::default(),
                    },
                    Context {
                        now: now(),
                        break_glass: None,
                    },
                );
                assert!(!d.is_allowed() && d.hides_case(), "{role} {action:?}");
            }
        }
    }
}

#[test]
fn membership_is_subject_and_agency_together() {
    let team = CaseTeam::new().with_member(ME, "agency-other", "police_investigator");
    let d = decide(
        Caller {
            subject: ME,
            role: Role::PoliceInvestigator,
            agency: MY_AGENCY,
        },
        Action::Read(Compartment::CaseCore),
        Resource::Case {
            team: Some(&team),
            entry: Entry::default(),
        },
        Context {
            now: now(),
            break_glass: None,
        },
    );
    assert!(d.hides_case());
}

#[test]
fn a_member_acts_only_in_the_role_they_hold_on_the_case() {
    // Added as a health worker; the same user's token also carries prosecutor.
    let team = CaseTeam::new().with_member(ME, MY_AGENCY, "health_worker");
    let read = |role, compartment| {
        decide(
            Caller {
                subject: ME,
                role,
                agency: MY_AGENCY,
            },
            Action::Read(compartment),
            Resource::Case {
                team: Some(&team),
                entry: Entry::default(),
            },
            Context {
                now: now(),
                break_glass: None,
            },
        )
    };
    assert!(read(Role::HealthWorker, Compartment::HealthNotes).is_allowed());
    let other = read(Role::Prosecutor, Compartment::Investigation);
    assert!(!other.is_allowed() && other.hides_case(), "{other:?}");
}

#[test]
fn invoke_allows_exactly_the_listed_roles() {
    const AUDITORS: &[Role] = &[Role::Auditor];
    for role in Role::ALL {
        let d = decide(
            Caller {
                subject: ME,
                role,
                agency: MY_AGENCY,
            },
            Action::Invoke(AUDITORS),
            Resource::Global,
            Context {
                now: now(),
                break_glass: None,
            },
        );
        assert_eq!(d.is_allowed(), role == Role::Auditor, "{role}");
        assert!(!d.hides_case());
    }
}

#[test]
fn break_glass_needs_a_known_purpose_and_twenty_characters_of_reason() {
    assert_eq!(
        BreakGlassRequest::new("curiosity", "a reason that is long enough").err(),
        Some("purpose")
    );
    assert_eq!(
        BreakGlassRequest::new("investigation", "too short").err(),
        Some("reason")
    );
    assert_eq!(
        BreakGlassRequest::new("investigation", "   nineteen chars..   ").err(),
        Some("reason")
    );
    assert!(BreakGlassRequest::new("investigation", "exactly twenty chars").is_ok());
}
