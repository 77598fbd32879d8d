//! The referral loop across services, on a whole all-in-one server with a clock the
//! test moves: a child's contact to the helpline → case → emergency referral to the
//! police → acknowledgement → acceptance by an investigator (who then sees the case) →
//! outcome → the counsellor sees the outcome; and a routine referral left unanswered is
//! escalated, once, by the background process after its due time. Real gRPC, real
//! tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_e2e::check::referral_events;
use caseline_e2e::{Clients, TestClock, TestServer, authed, rid};
use caseline_eventlog::Uuid;
use caseline_proto::event_types as types;
use caseline_proto::tonic::Code;
use caseline_proto::v1::timeline_entry::Detail;
use caseline_proto::v1::{
    AcceptReferralRequest, AcknowledgeReferralRequest, AgeBand, CallerKind, CaseSource,
    ChildIdentity, ConcernCategory, ConsentBasis, ContactChannel, EscalationCause, Gender,
    GetCaseRequest, GetReferralRequest, GetTimelineRequest, ListInboxRequest,
    ListOverdueReferralsRequest, MakeReferralRequest, OpenCaseRequest, RecordContactRequest,
    RecordReferralOutcomeRequest, RecordRiskAssessmentRequest, Referral, ReferralStatus,
    ReferralUrgency, RiskLevel, ServiceType, TimelineEntry, Urgency, Visibility, referral_view,
};

const CHILD_NAME: &str = "Amina Wanjiru";
const REASON: &str = "She is being pressured to send images tonight; the adult knows her school.";
const OUTCOME: &str = "Officers visited the home within three hours; devices secured.";

const HELPLINE: &str = "helpline-ke";
const POLICE: &str = "police-dcu";
const SHELTER: &str = "shelter-nairobi";

/// How often the server sweeps for overdue referrals.
const ESCALATION_EVERY: Duration = Duration::from_millis(50);

async fn timeline(c: &mut Clients, token: &str, case_id: &str) -> Vec<TimelineEntry> {
    c.cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id: case_id.to_owned(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries
}

async fn get_referral(c: &mut Clients, token: &str, referral_id: &str) -> Referral {
    c.referrals
        .get_referral(authed(
            GetReferralRequest {
                referral_id: referral_id.to_owned(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
}

fn referral_steps(entries: &[TimelineEntry]) -> Vec<(String, Visibility)> {
    entries
        .iter()
        .filter(|e| e.compartment == "referrals")
        .map(|e| (e.kind.clone(), e.visibility()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_closes_its_loop_and_an_unanswered_one_is_escalated() {
    let clock = TestClock::default();
    let server = TestServer::start_with(clock.clockwork(ESCALATION_EVERY)).await;
    let mut c = Clients::of(&server).await;
    let counsellor = server.token("counsellor-1", Role::HelplineCounsellor, HELPLINE);
    let investigator = server.token("investigator-7", Role::PoliceInvestigator, POLICE);
    let shelter_worker = server.token("shelter-3", Role::SocialWorker, SHELTER);

    // A child's contact to the helpline, and a case opened from it.
    let contact_id = c
        .cases
        .record_contact(authed(
            RecordContactRequest {
                request_id: rid(),
                channel: ContactChannel::Chat as i32,
                caller_kind: CallerKind::Child as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                urgency: Urgency::Emergency as i32,
                anonymous: false,
                summary: "An adult she met in a game threatens to share her photos.".into(),
                caller_name: "A.".into(),
                caller_contact: String::new(),
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .contact_id;
    let case_id = c
        .cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: rid(),
                contact_id,
                pseudonym: "Child K-4".into(),
                identity: Some(ChildIdentity {
                    name: CHILD_NAME.into(),
                    date_of_birth: "2012-06-01".into(),
                    contact_details: "chat only".into(),
                }),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Girl as i32,
                language: "sw-KE".into(),
                region: "Kibera".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                initial_risk: RiskLevel::High as i32,
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    c.cases
        .record_risk_assessment(authed(
            RecordRiskAssessmentRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                level: RiskLevel::ImmediateDanger as i32,
                factors: "Threat tonight; the adult knows where she studies.".into(),
                immediate_actions: "Safety plan agreed with the child.".into(),
                expected_version: None,
            },
            &counsellor,
        ))
        .await
        .unwrap();

    // An emergency referral to the police: due within 24 hours.
    let made = c
        .referrals
        .make_referral(authed(
            MakeReferralRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                contact_id: String::new(),
                to_agency: POLICE.into(),
                service: ServiceType::Police as i32,
                urgency: ReferralUrgency::Emergency as i32,
                reason: REASON.into(),
                consent: ConsentBasis::GivenByChild as i32,
                legal_basis: String::new(),
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner();
    let police_referral = made.referral_id.clone();
    let due = made.due_by.unwrap().seconds
        - (SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64);
    assert!(
        (24 * 3600 - 60..=24 * 3600).contains(&due),
        "due in {due} s"
    );

    // Before acceptance the police see the referral in their inbox, with the case's
    // core summary and never the child's identity; the case itself is hidden.
    let inbox = c
        .referrals
        .list_inbox(authed(ListInboxRequest::default(), &investigator))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.referrals.len(), 1);
    let seen = &inbox.referrals[0];
    assert_eq!(seen.referral_id, police_referral);
    assert_eq!(seen.reason, REASON);
    assert_eq!(seen.status(), ReferralStatus::Made);
    let summary = seen
        .referred_case
        .as_ref()
        .expect("the case's core summary");
    assert_eq!(summary.pseudonym, "Child K-4");
    assert_eq!(summary.risk_level(), RiskLevel::ImmediateDanger);
    assert!(!format!("{inbox:?}").contains(CHILD_NAME));
    let hidden = c
        .cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);

    // Acknowledged, then accepted: the investigator joins the team and sees the case.
    for step in ["acknowledge", "accept"] {
        let request_id = rid();
        let r = match step {
            "acknowledge" => {
                c.referrals
                    .acknowledge_referral(authed(
                        AcknowledgeReferralRequest {
                            request_id,
                            referral_id: police_referral.clone(),
                            expected_version: None,
                        },
                        &investigator,
                    ))
                    .await
            }
            _ => {
                c.referrals
                    .accept_referral(authed(
                        AcceptReferralRequest {
                            request_id,
                            referral_id: police_referral.clone(),
                            expected_version: None,
                        },
                        &investigator,
                    ))
                    .await
            }
        };
        r.unwrap_or_else(|e| panic!("{step}: {e:?}"));
    }
    let case = c
        .cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        case.team.iter().any(|m| m.subject == "investigator-7"
            && m.agency == POLICE
            && m.role == "police_investigator"),
        "{:?}",
        case.team
    );
    assert_eq!(case.identity.unwrap().name, CHILD_NAME);
    let police_view = timeline(&mut c, &investigator, &case_id).await;
    assert_eq!(
        referral_steps(&police_view),
        [
            ("referral_made".to_owned(), Visibility::Full),
            ("referral_acknowledged".to_owned(), Visibility::Full),
            ("referral_accepted".to_owned(), Visibility::Full),
        ]
    );
    // The join is on the case, caused by the acceptance.
    assert!(police_view.iter().any(|e| matches!(
        &e.detail,
        Some(Detail::TeamChange(t)) if t.added && t.subject == "investigator-7"
    )));

    // The outcome: the counsellor sees it, on the referral and on the timeline.
    c.referrals
        .record_referral_outcome(authed(
            RecordReferralOutcomeRequest {
                request_id: rid(),
                referral_id: police_referral.clone(),
                expected_version: None,
                outcome: OUTCOME.into(),
            },
            &investigator,
        ))
        .await
        .unwrap();
    let closed_loop = get_referral(&mut c, &counsellor, &police_referral).await;
    assert_eq!(closed_loop.status(), ReferralStatus::Completed);
    assert_eq!(closed_loop.outcome, OUTCOME);
    assert_eq!(closed_loop.accepted_by, "investigator-7");
    assert!(closed_loop.acknowledged_at.is_some() && closed_loop.completed_at.is_some());
    let counsellor_view = timeline(&mut c, &counsellor, &case_id).await;
    let outcome = counsellor_view
        .iter()
        .find(|e| e.kind == "referral_outcome_recorded")
        .expect("the outcome is on the counsellor's timeline");
    assert_eq!(outcome.visibility(), Visibility::Full);
    match &outcome.detail {
        Some(Detail::Referral(r)) => {
            assert_eq!(r.step(), referral_view::Step::Outcome);
            assert_eq!(r.text, OUTCOME);
            assert_eq!(r.to_agency, POLICE);
        }
        other => panic!("outcome detail: {other:?}"),
    }

    // A routine referral to a shelter, left unanswered.
    let routine = c
        .referrals
        .make_referral(authed(
            MakeReferralRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                contact_id: String::new(),
                to_agency: SHELTER.into(),
                service: ServiceType::Shelter as i32,
                urgency: ReferralUrgency::Routine as i32,
                reason: "Needs a safe place if the threats continue.".into(),
                consent: ConsentBasis::NotRequired as i32,
                legal_basis: "Children Act 2022, s. 119".into(),
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .referral_id;
    let listing = c.referrals.clone();
    let overdue = |token: String| {
        let mut referrals = listing.clone();
        async move {
            referrals
                .list_overdue_referrals(authed(ListOverdueReferralsRequest::default(), &token))
                .await
                .unwrap()
                .into_inner()
                .referrals
        }
    };
    // Nine days on: not due yet, and a sweep at that time escalated nothing.
    clock.advance(Duration::from_secs(9 * 24 * 3600));
    clock.swept().await;
    assert!(overdue(counsellor.clone()).await.is_empty());
    assert!(
        get_referral(&mut c, &counsellor, &routine)
            .await
            .escalated_at
            .is_none()
    );

    // Past ten days: overdue, and escalated by the background process.
    clock.advance(Duration::from_secs(24 * 3600 + 60));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let escalated = loop {
        let r = get_referral(&mut c, &counsellor, &routine).await;
        if r.escalated_at.is_some() {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not escalated: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(escalated.overdue);
    assert_eq!(escalated.escalation(), EscalationCause::NotAccepted);
    assert_eq!(escalated.status(), ReferralStatus::Made);
    for token in [counsellor.clone(), shelter_worker.clone()] {
        let listed: Vec<String> = overdue(token)
            .await
            .into_iter()
            .map(|r| r.referral_id)
            .collect();
        assert_eq!(
            listed,
            std::slice::from_ref(&routine),
            "both sides list it as overdue"
        );
    }
    // The completed police referral is neither overdue nor escalated.
    assert!(
        get_referral(&mut c, &counsellor, &police_referral)
            .await
            .escalated_at
            .is_none()
    );

    // Once: a later sweep adds none, still one escalation event, by the system actor.
    clock.swept().await;
    let events = referral_events(&server, &routine).await;
    let escalations: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == types::REFERRAL_ESCALATED)
        .collect();
    assert_eq!(escalations.len(), 1);
    assert_eq!(
        escalations[0].metadata.actor,
        caseline_referrals::SYSTEM_ACTOR
    );
    assert_eq!(
        escalations[0].metadata.case_id,
        Some(Uuid::parse_str(&case_id).unwrap())
    );
    let on_timeline = timeline(&mut c, &counsellor, &case_id).await;
    assert!(
        on_timeline
            .iter()
            .any(|e| e.kind == "referral_escalated" && e.visibility() == Visibility::Full)
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_made_from_a_contact_moves_onto_the_case_opened_from_it() {
    let clock = TestClock::default();
    let server = TestServer::start_with(clock.clockwork(ESCALATION_EVERY)).await;
    let mut c = Clients::of(&server).await;
    let counsellor = server.token("counsellor-2", Role::HelplineCounsellor, HELPLINE);
    let investigator = server.token("investigator-9", Role::PoliceInvestigator, POLICE);
    const BASIS: &str = "Child Protection Act, s. 12: immediate danger";

    // An anonymous child in danger: referred to the police before any case exists.
    let contact_id = c
        .cases
        .record_contact(authed(
            RecordContactRequest {
                request_id: rid(),
                channel: ContactChannel::Phone as i32,
                caller_kind: CallerKind::Child as i32,
                concerns: vec![ConcernCategory::ContactAbuse as i32],
                urgency: Urgency::Emergency as i32,
                anonymous: true,
                summary: "A boy calls from a phone box; an adult at home hurts him.".into(),
                ..RecordContactRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .contact_id;
    let make = MakeReferralRequest {
        request_id: rid(),
        case_id: String::new(),
        contact_id: contact_id.clone(),
        to_agency: POLICE.into(),
        service: ServiceType::Police as i32,
        urgency: ReferralUrgency::Emergency as i32,
        reason: REASON.into(),
        consent: ConsentBasis::NotRequired as i32,
        legal_basis: BASIS.into(),
    };
    let referral_id = c
        .referrals
        .make_referral(authed(make.clone(), &counsellor))
        .await
        .unwrap()
        .into_inner()
        .referral_id;
    let before = get_referral(&mut c, &investigator, &referral_id).await;
    assert!(before.case_id.is_empty() && before.contact_id.is_empty());
    assert!(before.referred_contact.is_some());
    c.referrals
        .accept_referral(authed(
            AcceptReferralRequest {
                request_id: rid(),
                referral_id: referral_id.clone(),
                expected_version: None,
            },
            &investigator,
        ))
        .await
        .unwrap();

    // The counsellor opens a case from the contact; the background process moves the
    // referral onto it (no one asks for the referral meanwhile).
    let case_id = c
        .cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: rid(),
                contact_id,
                pseudonym: "Child M-2".into(),
                age_band: AgeBand::AgeBand10To12 as i32,
                gender: Gender::Boy as i32,
                language: "en".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::ContactAbuse as i32],
                initial_risk: RiskLevel::ImmediateDanger as i32,
                ..OpenCaseRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = referral_events(&server, &referral_id).await;
        if let Some(attached) = events
            .iter()
            .find(|e| e.event_type == types::REFERRAL_ATTACHED)
        {
            assert_eq!(
                attached.metadata.case_id,
                Some(Uuid::parse_str(&case_id).unwrap())
            );
            assert_eq!(attached.metadata.actor, caseline_referrals::SYSTEM_ACTOR);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never attached");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A retry of the making, after the case was opened, answers as the first time.
    let retried = c
        .referrals
        .make_referral(authed(make, &counsellor))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.referral_id, referral_id);

    // The one who accepted is on the new case's team and sees it.
    let case = c
        .cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(case.team.iter().any(|m| m.subject == "investigator-9"));

    // The case's timeline shows the referral as it stood, opened with the case's key.
    let attached = timeline(&mut c, &counsellor, &case_id)
        .await
        .into_iter()
        .find(|e| e.kind == "referral_attached")
        .expect("the referral is on the case's timeline");
    assert_eq!(attached.visibility(), Visibility::Full);
    match attached.detail {
        Some(Detail::Referral(r)) => {
            assert_eq!(r.step(), referral_view::Step::Attached);
            assert_eq!(r.text, REASON);
            assert_eq!(r.legal_basis, BASIS);
            assert_eq!(r.status(), ReferralStatus::Accepted);
            assert_eq!(r.accepted_by, "investigator-9");
            assert!(!r.erased);
        }
        other => panic!("attached detail: {other:?}"),
    }

    // Later steps belong to the case.
    c.referrals
        .record_referral_outcome(authed(
            RecordReferralOutcomeRequest {
                request_id: rid(),
                referral_id: referral_id.clone(),
                expected_version: None,
                outcome: OUTCOME.into(),
            },
            &investigator,
        ))
        .await
        .unwrap();
    let after = get_referral(&mut c, &counsellor, &referral_id).await;
    assert_eq!(after.case_id, case_id);
    assert_eq!(after.reason, REASON);
    assert_eq!(after.outcome, OUTCOME);
    assert_eq!(after.status(), ReferralStatus::Completed);
    let entries = timeline(&mut c, &counsellor, &case_id).await;
    assert!(entries.iter().any(|e| matches!(
        &e.detail,
        Some(Detail::Referral(r)) if r.step() == referral_view::Step::Outcome && r.text == OUTCOME
    )));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_worker_on_the_team_sees_only_referrals_to_their_own_agency() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let counsellor = server.token("counsellor-3", Role::HelplineCounsellor, HELPLINE);
    let nurse = server.token("nurse-1", Role::HealthWorker, "clinic-east");
    let case_id = c
        .cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: rid(),
                pseudonym: "Child H-1".into(),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Girl as i32,
                language: "en".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::Grooming as i32],
                initial_risk: RiskLevel::Medium as i32,
                ..OpenCaseRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    c.cases
        .add_team_member(authed(
            caseline_proto::v1::AddTeamMemberRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                subject: "nurse-1".into(),
                agency: "clinic-east".into(),
                role: "health_worker".into(),
                expected_version: None,
            },
            &counsellor,
        ))
        .await
        .unwrap();
    for (to, service) in [
        (POLICE, ServiceType::Police),
        ("clinic-east", ServiceType::Health),
    ] {
        c.referrals
            .make_referral(authed(
                MakeReferralRequest {
                    request_id: rid(),
                    case_id: case_id.clone(),
                    contact_id: String::new(),
                    to_agency: to.into(),
                    service: service as i32,
                    urgency: ReferralUrgency::Urgent as i32,
                    reason: format!("{REASON} ({to})"),
                    consent: ConsentBasis::GivenByGuardian as i32,
                    legal_basis: String::new(),
                },
                &counsellor,
            ))
            .await
            .unwrap();
    }
    let seen = timeline(&mut c, &nurse, &case_id).await;
    let referrals: Vec<_> = seen
        .iter()
        .filter(|e| e.compartment == "referrals")
        .collect();
    assert_eq!(referrals.len(), 1, "{referrals:?}");
    match &referrals[0].detail {
        Some(Detail::Referral(r)) => assert_eq!(r.to_agency, "clinic-east"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{seen:?}").contains(&format!("({POLICE})")));
    // The counsellor sees both.
    assert_eq!(
        referral_steps(&timeline(&mut c, &counsellor, &case_id).await).len(),
        2
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_contact_referral_brings_no_one_onto_the_case() {
    let clock = TestClock::default();
    let server = TestServer::start_with(clock.clockwork(ESCALATION_EVERY)).await;
    let mut c = Clients::of(&server).await;
    let counsellor = server.token("counsellor-4", Role::HelplineCounsellor, HELPLINE);
    let investigator = server.token("investigator-4", Role::PoliceInvestigator, POLICE);
    let contact_id = c
        .cases
        .record_contact(authed(
            RecordContactRequest {
                request_id: rid(),
                channel: ContactChannel::Sms as i32,
                caller_kind: CallerKind::Parent as i32,
                concerns: vec![ConcernCategory::Grooming as i32],
                urgency: Urgency::Urgent as i32,
                anonymous: true,
                summary: "A mother worries about an adult messaging her son.".into(),
                ..RecordContactRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .contact_id;
    let referral_id = c
        .referrals
        .make_referral(authed(
            MakeReferralRequest {
                request_id: rid(),
                contact_id: contact_id.clone(),
                to_agency: POLICE.into(),
                service: ServiceType::Police as i32,
                urgency: ReferralUrgency::Urgent as i32,
                reason: REASON.into(),
                consent: ConsentBasis::GivenByGuardian as i32,
                ..MakeReferralRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .referral_id;
    c.referrals
        .accept_referral(authed(
            AcceptReferralRequest {
                request_id: rid(),
                referral_id: referral_id.clone(),
                expected_version: None,
            },
            &investigator,
        ))
        .await
        .unwrap();
    c.referrals
        .withdraw_referral(authed(
            caseline_proto::v1::WithdrawReferralRequest {
                request_id: rid(),
                referral_id: referral_id.clone(),
                expected_version: None,
                reason: "The mother went to the police station herself.".into(),
            },
            &counsellor,
        ))
        .await
        .unwrap();
    let case_id = c
        .cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: rid(),
                contact_id,
                pseudonym: "Child S-8".into(),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Boy as i32,
                language: "en".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::Grooming as i32],
                initial_risk: RiskLevel::Medium as i32,
                ..OpenCaseRequest::default()
            },
            &counsellor,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    // Asking for it attaches it at once; it stands withdrawn, with its reason.
    let attached = get_referral(&mut c, &counsellor, &referral_id).await;
    assert_eq!(attached.case_id, case_id);
    assert_eq!(attached.status(), ReferralStatus::Withdrawn);
    assert_eq!(
        attached.withdraw_reason,
        "The mother went to the police station herself."
    );
    // Once the background process has run a round since, still no one joins.
    clock.swept().await;
    let hidden = c
        .cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let view = timeline(&mut c, &counsellor, &case_id).await;
    match &view
        .iter()
        .find(|e| e.kind == "referral_attached")
        .expect("attached")
        .detail
    {
        Some(Detail::Referral(r)) => {
            assert_eq!(r.status(), ReferralStatus::Withdrawn);
            assert_eq!(
                r.withdraw_reason,
                "The mother went to the police station herself."
            );
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
}
