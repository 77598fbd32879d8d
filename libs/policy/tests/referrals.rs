//! Referral steps: who may make, see, receive and withdraw a referral.
//!
//! The expectations are the rules of ReferralService stated independently of `decide`:
//! the receiving agency's staff (in [`REFERRAL_RECEIVERS`]) see the referral and take
//! the receiving steps, and see the referred case's summary only while it awaits their
//! decision; the referring side stands where the case's referrals compartment puts it
//! (writers make and withdraw, a supervisor of the referring agency on the team
//! withdraws); a contact's referral belongs to the counsellors (and supervisors) of the
//! agency that recorded it; break-glass reads, never acts; and whoever may not know of
//! the referral is told it does not exist.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_policy::{
    Action, BREAK_GLASS_TTL, BreakGlassRequest, Caller, CaseTeam, Context, Decision, Effect, Grant,
    REFERRAL_RECEIVERS, Reason, ReferralFacts, ReferralStep, Resource, Sight, Via, decide,
};

/// The referring agency (and, for a contact's referral, the one that recorded it).
const FROM: &str = "helpline-a";
/// The receiving agency.
const TO: &str = "police-b";
/// An agency on the team that neither made nor receives the referral.
const COUNCIL: &str = "council-c";
/// A health agency on the team.
const HOSPITAL: &str = "hospital-d";
/// An agency with nothing to do with the case.
const ELSEWHERE: &str = "elsewhere-e";

const ME: &str = "user-me";

use ReferralStep::{
    Accept, Acknowledge, Decline, Make, RecordOutcome, View, ViewReferredCase, Withdraw,
};

const RECEIVING: [ReferralStep; 4] = [Acknowledge, Accept, Decline, RecordOutcome];

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn context() -> Context<'static> {
    Context {
        now: now(),
        break_glass: None,
    }
}

fn me(role: Role, agency: &'static str) -> Caller<'static> {
    Caller {
        subject: ME,
        role,
        agency,
    }
}

/// The case's team: the counsellor who made the referral, a council social worker, a
/// hospital health worker.
fn base_team() -> CaseTeam {
    CaseTeam::new()
        .with_member("referrer", FROM, "helpline_counsellor")
        .with_member("council-sw", COUNCIL, "social_worker")
        .with_member("hospital-hw", HOSPITAL, "health_worker")
}

fn facts<'a>(team: Option<&'a CaseTeam>, to: &'a str, awaiting: bool) -> ReferralFacts<'a> {
    ReferralFacts {
        from_agency: FROM,
        to_agency: to,
        team,
        awaiting_decision: awaiting,
    }
}

fn ask(caller: Caller<'_>, step: ReferralStep, facts: ReferralFacts<'_>) -> Decision {
    ask_in(caller, step, facts, context())
}

fn ask_in(
    caller: Caller<'_>,
    step: ReferralStep,
    facts: ReferralFacts<'_>,
    context: Context<'_>,
) -> Decision {
    let d = decide(
        caller,
        Action::Referral(step),
        Resource::Referral(facts),
        context,
    );
    if !d.is_allowed() {
        assert_eq!(
            d.sight,
            Sight::None,
            "{caller:?} {step:?}: a denial shows nothing"
        );
        assert_eq!(d.via, Via::Nothing, "{caller:?} {step:?}");
    }
    d
}

/// What a test expects of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Allowed, for this reason.
    Allow(Reason),
    /// Denied as PERMISSION_DENIED (the caller may see the referral).
    Refuse,
    /// Denied as NOT_FOUND (`hides_case()`).
    Hide,
    /// Denied, however it is answered (the API hides every refused View).
    Deny,
}

fn got(d: Decision) -> Want {
    if d.is_allowed() {
        Want::Allow(d.reason)
    } else if d.hides_case() {
        Want::Hide
    } else {
        assert_eq!(d.effect, Effect::Deny);
        Want::Refuse
    }
}

/// Checks a table of (caller, facts, step, want), reporting every cell that differs.
#[track_caller]
fn check(rows: &[(Caller<'_>, ReferralFacts<'_>, ReferralStep, Want)]) {
    let mut failures = Vec::new();
    for &(caller, facts, step, want) in rows {
        let d = ask(caller, step, facts);
        let got = got(d);
        let ok = match want {
            Want::Deny => !d.is_allowed(),
            Want::Refuse => got == Want::Refuse && d.reason == Reason::WriteNotPermitted,
            w => got == w,
        };
        if !ok {
            failures.push(format!(
                "{} {} of {} → {}, awaiting {}, team {}: {step:?}: want {want:?}, got {d:?}",
                caller.role,
                caller.subject,
                caller.agency,
                facts.to_agency,
                facts.awaiting_decision,
                facts.team.is_some(),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn receivers_are_every_role_that_sits_on_a_team_and_no_other() {
    let outside: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| !REFERRAL_RECEIVERS.contains(r))
        .collect();
    assert_eq!(
        outside,
        [
            Role::ComplaintsOfficer,
            Role::Auditor,
            Role::DataProtectionOfficer,
            Role::Admin
        ]
    );
}

#[test]
fn the_receiving_agency_takes_every_receiving_step_and_sees_the_case_only_while_deciding() {
    let team = base_team();
    let mut rows = Vec::new();
    for &role in REFERRAL_RECEIVERS {
        for team in [Some(&team), None] {
            for awaiting in [true, false] {
                let f = facts(team, TO, awaiting);
                let caller = me(role, TO);
                rows.push((caller, f, View, Want::Allow(Reason::ReferralReceiver)));
                for step in RECEIVING {
                    rows.push((caller, f, step, Want::Allow(Reason::ReferralReceiver)));
                }
                let summary = if awaiting {
                    Want::Allow(Reason::ReferralReceiver)
                } else {
                    // Not on the team: after the decision the case is theirs no more.
                    Want::Hide
                };
                rows.push((caller, f, ViewReferredCase, summary));
                // The receiving side neither makes the referral nor takes it back; it
                // sees the referral, so taking it back is refused, not hidden.
                rows.push((caller, f, Make, Want::Hide));
                rows.push((caller, f, Withdraw, Want::Refuse));
            }
        }
    }
    check(&rows);

    // On what ground, and how much.
    let f = facts(Some(&team), TO, true);
    let d = ask(me(Role::Prosecutor, TO), View, f);
    assert_eq!((d.via, d.sight), (Via::ReferralReceiver, Sight::Full));
    let d = ask(me(Role::Prosecutor, TO), ViewReferredCase, f);
    assert_eq!((d.via, d.sight), (Via::ReferralReceiver, Sight::Summary));
    let d = ask(me(Role::HealthWorker, TO), Accept, f);
    assert_eq!(d.via, Via::ReferralReceiver);
}

#[test]
fn a_receiver_who_accepted_sees_the_case_as_their_role_on_the_team() {
    let team = base_team().with_member(ME, TO, "police_investigator");
    let f = facts(Some(&team), TO, false);
    let d = ask(me(Role::PoliceInvestigator, TO), ViewReferredCase, f);
    assert_eq!((d.effect, d.via), (Effect::Allow, Via::Team));
}

#[test]
fn oversight_and_administration_roles_never_see_or_touch_a_referral() {
    let team = base_team()
        .with_member(ME, TO, "auditor")
        .with_member(ME, FROM, "auditor");
    let mut rows = Vec::new();
    for role in [
        Role::Auditor,
        Role::ComplaintsOfficer,
        Role::DataProtectionOfficer,
        Role::Admin,
    ] {
        for agency in [TO, FROM, ELSEWHERE] {
            for team in [Some(&team), None] {
                for awaiting in [true, false] {
                    for step in ReferralStep::ALL {
                        rows.push((
                            me(role, agency),
                            facts(team, TO, awaiting),
                            step,
                            Want::Hide,
                        ));
                    }
                }
            }
        }
    }
    check(&rows);
    let d = ask(me(Role::Auditor, TO), View, facts(Some(&team), TO, true));
    assert_eq!(d.reason, Reason::NotOnTeam);
}

#[test]
fn the_referring_side_of_a_case_referral() {
    let writers = [
        Role::HelplineCounsellor,
        Role::SocialWorker,
        Role::PoliceInvestigator,
    ];
    let mut rows = Vec::new();
    let teams: Vec<(Role, CaseTeam)> = Role::ALL
        .into_iter()
        .map(|role| (role, base_team().with_member(ME, FROM, role.as_str())))
        .collect();
    for (role, team) in &teams {
        let (role, f) = (*role, facts(Some(team), TO, true));
        let caller = me(role, FROM);
        if writers.contains(&role) {
            for step in [Make, View, Withdraw] {
                rows.push((caller, f, step, Want::Allow(Reason::TeamMember)));
            }
            rows.push((caller, f, ViewReferredCase, Want::Allow(Reason::TeamMember)));
        }
        if matches!(role, Role::Prosecutor | Role::VictimAdvocate) {
            rows.push((caller, f, View, Want::Allow(Reason::TeamMember)));
            rows.push((caller, f, Make, Want::Refuse));
            rows.push((caller, f, Withdraw, Want::Refuse));
        }
    }

    let team = base_team();
    let f = |to| facts(Some(&team), to, true);
    // A health worker on the team sees the referrals addressed to their agency only.
    let hw = Caller {
        subject: "hospital-hw",
        role: Role::HealthWorker,
        agency: HOSPITAL,
    };
    rows.push((hw, f(TO), View, Want::Deny));
    rows.push((hw, f(HOSPITAL), View, Want::Allow(Reason::ReferralReceiver)));
    rows.push((hw, f(TO), Make, Want::Refuse));
    rows.push((hw, f(TO), Withdraw, Want::Hide));
    // Someone on no side of it: the referral does not exist for them.
    for role in [
        Role::SocialWorker,
        Role::PoliceInvestigator,
        Role::HelplineCounsellor,
        Role::Prosecutor,
        Role::Supervisor,
    ] {
        for step in ReferralStep::ALL {
            rows.push((me(role, ELSEWHERE), f(TO), step, Want::Hide));
        }
    }
    // A supervisor of the referring agency, which is on the team: sees, and withdraws.
    let sup = me(Role::Supervisor, FROM);
    rows.push((sup, f(TO), View, Want::Allow(Reason::AgencySupervisor)));
    rows.push((sup, f(TO), Withdraw, Want::Allow(Reason::AgencySupervisor)));
    rows.push((sup, f(TO), Make, Want::Refuse));
    // A member (and a supervisor) of another agency on the team sees it and may not
    // withdraw it.
    let council = Caller {
        subject: "council-sw",
        role: Role::SocialWorker,
        agency: COUNCIL,
    };
    rows.push((council, f(TO), View, Want::Allow(Reason::TeamMember)));
    rows.push((council, f(TO), Withdraw, Want::Refuse));
    let council_sup = me(Role::Supervisor, COUNCIL);
    rows.push((
        council_sup,
        f(TO),
        View,
        Want::Allow(Reason::AgencySupervisor),
    ));
    rows.push((council_sup, f(TO), Withdraw, Want::Refuse));
    check(&rows);
}

/// A supervisor of the referring agency who is on the team themselves (in the
/// supervisor role) stands at least where a supervisor of that agency who is not on it
/// stands: they may withdraw.
#[test]

fn a_supervisor_of_the_referring_agency_on_the_team_may_withdraw() {
    let team = base_team().with_member(ME, FROM, "supervisor");
    let d = ask(
        me(Role::Supervisor, FROM),
        Withdraw,
        facts(Some(&team), TO, true),
    );
    assert!(d.is_allowed(), "{d:?}");
}

#[test]
fn a_receiving_step_by_a_non_receiver_is_refused_if_they_see_the_referral_else_hidden() {
    let team = base_team().with_member(ME, FROM, "prosecutor").with_member(
        "advocate",
        COUNCIL,
        "victim_advocate",
    );
    let f = facts(Some(&team), TO, true);
    let sees = [
        Caller {
            subject: "referrer",
            role: Role::HelplineCounsellor,
            agency: FROM,
        },
        Caller {
            subject: "council-sw",
            role: Role::SocialWorker,
            agency: COUNCIL,
        },
        Caller {
            subject: "advocate",
            role: Role::VictimAdvocate,
            agency: COUNCIL,
        },
        me(Role::Prosecutor, FROM),
        me(Role::Supervisor, COUNCIL),
    ];
    let blind = [
        // On the team, but referrals to another agency are not shown to them.
        Caller {
            subject: "hospital-hw",
            role: Role::HealthWorker,
            agency: HOSPITAL,
        },
        me(Role::SocialWorker, ELSEWHERE),
        me(Role::PoliceInvestigator, ELSEWHERE),
        me(Role::Supervisor, ELSEWHERE),
    ];
    let mut rows = Vec::new();
    for step in RECEIVING {
        for caller in sees {
            assert!(ask(caller, View, f).is_allowed(), "{caller:?} sees it");
            rows.push((caller, f, step, Want::Refuse));
        }
        for caller in blind {
            assert!(!ask(caller, View, f).is_allowed(), "{caller:?} sees it not");
            rows.push((caller, f, step, Want::Hide));
        }
    }
    check(&rows);
}

#[test]
fn a_contact_referral_belongs_to_the_agency_that_recorded_the_contact() {
    let mut rows = Vec::new();
    for awaiting in [true, false] {
        let f = facts(None, TO, awaiting);
        let counsellor = me(Role::HelplineCounsellor, FROM);
        for step in [Make, View, ViewReferredCase, Withdraw] {
            rows.push((counsellor, f, step, Want::Allow(Reason::ContactAgency)));
        }
        let sup = me(Role::Supervisor, FROM);
        for step in [View, ViewReferredCase, Withdraw] {
            rows.push((sup, f, step, Want::Allow(Reason::ContactAgency)));
        }
        rows.push((sup, f, Make, Want::Refuse));
        for step in RECEIVING {
            rows.push((counsellor, f, step, Want::Refuse));
            rows.push((sup, f, step, Want::Refuse));
        }
        // Other roles of the same agency do not work its contacts.
        for role in [Role::SocialWorker, Role::PoliceInvestigator] {
            for step in ReferralStep::ALL {
                rows.push((me(role, FROM), f, step, Want::Hide));
            }
        }
        // Anyone of another agency than the receiver: hidden.
        for agency in [COUNCIL, ELSEWHERE] {
            for role in [
                Role::HelplineCounsellor,
                Role::SocialWorker,
                Role::PoliceInvestigator,
                Role::Supervisor,
            ] {
                for step in ReferralStep::ALL {
                    rows.push((me(role, agency), f, step, Want::Hide));
                }
            }
        }
    }
    check(&rows);
}

fn grant(role: Role, agency: &str, granted_at: SystemTime) -> Grant {
    Grant {
        subject: ME.into(),
        role: role.as_str().into(),
        agency: agency.into(),
        purpose: "emergency_safeguarding".into(),
        reason_sealed: vec![1, 2, 3],
        granted_at,
        expires_at: granted_at + BREAK_GLASS_TTL,
    }
}

#[test]
fn break_glass_sees_a_referral_and_never_takes_a_step() {
    let team = base_team().with_grant(grant(
        Role::PoliceInvestigator,
        ELSEWHERE,
        now() - Duration::from_secs(600),
    ));
    let investigator = me(Role::PoliceInvestigator, ELSEWHERE);
    let request =
        BreakGlassRequest::new("emergency_safeguarding", "child missing, need contacts now")
            .unwrap();
    for context in [
        context(),
        Context {
            now: now(),
            break_glass: Some(request),
        },
    ] {
        for awaiting in [true, false] {
            let f = facts(Some(&team), TO, awaiting);
            let d = ask_in(investigator, View, f, context);
            assert_eq!(
                (d.effect, d.reason, d.via),
                (
                    Effect::Allow,
                    Reason::BreakGlassActive,
                    Via::BreakGlass { new: false }
                ),
                "{context:?}"
            );
            for step in [Make, Acknowledge, Accept, Decline, RecordOutcome, Withdraw] {
                let d = ask_in(investigator, step, f, context);
                assert!(!d.is_allowed(), "{step:?} {context:?}: {d:?}");
                assert!(!matches!(d.via, Via::BreakGlass { .. }), "{step:?}");
            }
        }
    }
    // An expired grant opens nothing.
    let expired = base_team().with_grant(grant(
        Role::PoliceInvestigator,
        ELSEWHERE,
        now() - BREAK_GLASS_TTL - Duration::from_secs(1),
    ));
    let d = ask(investigator, View, facts(Some(&expired), TO, true));
    assert!(d.hides_case(), "{d:?}");
    // A grant in another role opens nothing for this one.
    let other_role = base_team().with_grant(grant(
        Role::SocialWorker,
        ELSEWHERE,
        now() - Duration::from_secs(600),
    ));
    let d = ask(investigator, View, facts(Some(&other_role), TO, true));
    assert!(d.hides_case(), "{d:?}");
}

#[test]
fn a_referral_step_on_anything_but_a_referral_is_denied() {
    for step in ReferralStep::ALL {
        let d = decide(
            me(Role::HelplineCounsellor, FROM),
            Action::Referral(step),
            Resource::Global,
            context(),
        );
        assert_eq!(d.reason, Reason::NoSuchCase, "{step:?}");
    }
}
