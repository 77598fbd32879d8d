//! The five services as five processes (the binaries `caseline-cases`,
//! `caseline-referrals`, `caseline-support-plans`, `caseline-compensation` and
//! `caseline-audit`) sharing one PostgreSQL event log and state store, with a configured
//! token issuer (no `--dev`), each called at its own address. A helpline contact → a
//! case → a referral to the police, accepted (the investigator then reads the case from
//! the cases process) → the referrals process stopped with SIGTERM and started again,
//! losing and duplicating nothing → a support plan → a compensation claim → the
//! referral's outcome on the restarted process → each role's timeline → the access
//! history and the log's integrity, from the audit process.
//!
//! Needs the binaries built (`cargo build --workspace --bins`; `cargo test --workspace`
//! builds them) and PostgreSQL (`CASELINE_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_e2e::processes::{
    AUDIT, CASES, COMPENSATION, Deployment, Process, REFERRALS, SUPPORT_PLANS,
};
use caseline_e2e::requests::{add_member_request, contact_request, opening};
use caseline_e2e::{User, authed, rid};
use caseline_eventlog::{Direction, EventLog, Position, RecordedEvent, StreamName, Uuid};
use caseline_proto::event_types as types;
use caseline_proto::tonic::transport::Channel;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::compensation_service_client::CompensationServiceClient;
use caseline_proto::v1::referral_service_client::ReferralServiceClient;
use caseline_proto::v1::support_plan_service_client::SupportPlanServiceClient;
use caseline_proto::v1::timeline_entry::Detail;
use caseline_proto::v1::{
    AcceptReferralRequest, AccessHistoryEntry, AddGoalRequest, ClaimScheme, ClaimStatus, Claimant,
    ConsentBasis, CreatePlanRequest, EntryKind, FileClaimRequest, GetCaseRequest, GetClaimRequest,
    GetPlanRequest, GetReferralRequest, GetTimelineRequest, GoalDomain, GoalStatus,
    ListCasesRequest, ListClaimsRequest, ListInboxRequest, ListOutboxRequest, ListPlansRequest,
    MakeReferralRequest, Money, Outcome, PlanPhase, PlanStatus, RecordReferralOutcomeRequest,
    RecordRiskAssessmentRequest, Referral, ReferralStatus, ReferralUrgency,
    ReplayAccessHistoryRequest, RiskLevel, ServiceType, TimelineEntry, VerifyIntegrityRequest,
    Visibility, plan_view, referral_view, remedy_view, verify_integrity_request::Scope,
};
use caseline_server::validate::date_of;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const HELPLINE: &str = "helpline-ke";
const SOCIAL: &str = "county-social";
const POLICE: &str = "police-dcu";
const ADVOCACY: &str = "victim-support";
const OVERSIGHT: &str = "oversight-board";

const REASON: &str = "An adult she met online is pressing her for images; he knows her school.";
const GOAL: &str = "Weekly sessions with a trauma-informed counsellor.";
const OUTCOME: &str = "Officers visited the home; the devices were secured for forensics.";

/// How long a projection of another process may take to show an append: it should be
/// at once (queries catch up first), but PostgreSQL only lets a subscriber read events
/// older than the oldest transaction running on the whole server, which other tests
/// share.
const CATCH_UP: Duration = Duration::from_secs(30);

/// How long the restarted referrals process may take to log its projection's start.
const RESUME: Duration = Duration::from_secs(30);

fn grpc_method(service: &str, method: &str) -> String {
    format!("/{service}/{method}")
}

/// Polls `attempt` until `done` holds of its answer, or panics after [`CATCH_UP`].
async fn eventually<T: std::fmt::Debug, F, Fut>(
    what: &str,
    mut attempt: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let answer = attempt().await;
        if done(&answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not caught up within {CATCH_UP:?}: {answer:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Health reports the process and its own service SERVING, and knows no other
/// service; and another service's RPC is UNIMPLEMENTED there.
async fn assert_serves_only(process: &Process, own: &str, token: &str) {
    let channel = process.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", own] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: health of {service:?}: {e:?}", process.name()))
            .into_inner()
            .status();
        assert_eq!(
            status,
            ServingStatus::Serving,
            "{}: health of {service:?}",
            process.name()
        );
    }
    for other in caseline_proto::SERVICE_NAMES
        .into_iter()
        .filter(|s| *s != own)
    {
        let unknown = health
            .check(HealthCheckRequest {
                service: other.to_owned(),
            })
            .await
            .expect_err("another service has no health here");
        assert_eq!(
            unknown.code(),
            Code::NotFound,
            "{}: health of {other}: {unknown:?}",
            process.name()
        );
    }
    // One RPC of another service, with a valid token.
    let foreign: Result<(), Status> = if own == CASES.1 {
        ReferralServiceClient::new(channel)
            .list_inbox(authed(ListInboxRequest::default(), token))
            .await
            .map(drop)
    } else {
        CaseServiceClient::new(channel)
            .list_cases(authed(ListCasesRequest::default(), token))
            .await
            .map(drop)
    };
    let err = foreign.expect_err("another service's RPC");
    assert_eq!(
        err.code(),
        Code::Unimplemented,
        "{}: another service's RPC: {err:?}",
        process.name()
    );
}

async fn timeline(
    cases: &mut CaseServiceClient<Channel>,
    who: &User,
    case_id: &str,
) -> Vec<TimelineEntry> {
    let response = cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id: case_id.to_owned(),
                page_size: 1000,
                ..Default::default()
            },
            &who.token,
        ))
        .await
        .unwrap_or_else(|e| panic!("timeline of {}: {e:?}", who.sub))
        .into_inner();
    assert!(response.next_page_token.is_empty(), "one page");
    response.entries
}

/// The kinds and visibilities of the entries of one compartment, in order.
fn steps(entries: &[TimelineEntry], compartment: &str) -> Vec<(String, Visibility)> {
    entries
        .iter()
        .filter(|e| e.compartment == compartment)
        .map(|e| (e.kind.clone(), e.visibility()))
        .collect()
}

fn step(kind: &str, visibility: Visibility) -> (String, Visibility) {
    (kind.to_owned(), visibility)
}

fn entry<'a>(entries: &'a [TimelineEntry], kind: &str) -> &'a TimelineEntry {
    entries
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} entry in {entries:#?}"))
}

async fn referral_stream(log: &dyn EventLog, referral_id: &str) -> Vec<RecordedEvent> {
    let stream = StreamName::for_id("referral", Uuid::parse_str(referral_id).unwrap()).unwrap();
    log.read_stream(&stream, Direction::Forwards, None, 100)
        .await
        .unwrap()
}

async fn get_referral(
    referrals: &mut ReferralServiceClient<Channel>,
    who: &User,
    referral_id: &str,
) -> Referral {
    referrals
        .get_referral(authed(
            GetReferralRequest {
                referral_id: referral_id.to_owned(),
            },
            &who.token,
        ))
        .await
        .unwrap_or_else(|e| panic!("GetReferral by {}: {e:?}", who.sub))
        .into_inner()
}

async fn inbox(mut referrals: ReferralServiceClient<Channel>, who: &User) -> Vec<Referral> {
    referrals
        .list_inbox(authed(ListInboxRequest::default(), &who.token))
        .await
        .unwrap()
        .into_inner()
        .referrals
}

async fn outbox(mut referrals: ReferralServiceClient<Channel>, who: &User) -> Vec<Referral> {
    referrals
        .list_outbox(authed(ListOutboxRequest::default(), &who.token))
        .await
        .unwrap()
        .into_inner()
        .referrals
}

fn ids(referrals: &[Referral]) -> Vec<&str> {
    referrals.iter().map(|r| r.referral_id.as_str()).collect()
}

fn access<'a>(history: &'a [AccessHistoryEntry], action: &str) -> Vec<&'a AccessHistoryEntry> {
    history
        .iter()
        .filter(|e| e.kind == EntryKind::Access as i32 && e.action == action)
        .collect()
}

fn writes(history: &[AccessHistoryEntry], event_type: &str) -> usize {
    history
        .iter()
        .filter(|e| e.kind == EntryKind::Write as i32 && e.action == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_on_one_postgres_log_carry_a_child_from_contact_to_claim() {
    let deployment = Deployment::create().await;
    let id = &deployment.identity;
    let counsellor = id.user("counsellor-1", Role::HelplineCounsellor, HELPLINE);
    let social = id.user("sw-2", Role::SocialWorker, SOCIAL);
    let investigator = id.user("inv-3", Role::PoliceInvestigator, POLICE);
    let advocate = id.user("adv-4", Role::VictimAdvocate, ADVOCACY);
    let auditor = id.user("auditor-5", Role::Auditor, OVERSIGHT);

    // Five pods starting at once on an empty schema (each migrates it under a lock).
    let (cases_p, mut referrals_p, plans_p, compensation_p, audit_p) = tokio::join!(
        deployment.start(CASES.0),
        deployment.start(REFERRALS.0),
        deployment.start(SUPPORT_PLANS.0),
        deployment.start(COMPENSATION.0),
        deployment.start(AUDIT.0),
    );
    let all = [&cases_p, &referrals_p, &plans_p, &compensation_p, &audit_p];
    let addrs: BTreeSet<_> = all.iter().map(|p| p.addr()).collect();
    assert_eq!(addrs.len(), 5, "each service at its own address");
    for (process, (_, service)) in
        all.iter()
            .zip([CASES, REFERRALS, SUPPORT_PLANS, COMPENSATION, AUDIT])
    {
        assert_serves_only(process, service, &social.token).await;
    }
    // The log and the state store are PostgreSQL, and nothing came from a dev identity.
    for process in all {
        let log = process.log();
        assert!(
            log.contains("event log open") && log.contains("postgres"),
            "{}: {log}",
            process.name()
        );
        assert!(
            !log.contains("DEVELOPMENT MODE"),
            "{}: {log}",
            process.name()
        );
    }

    let mut cases = CaseServiceClient::new(cases_p.channel().await);
    let mut referrals = ReferralServiceClient::new(referrals_p.channel().await);
    let mut plans = SupportPlanServiceClient::new(plans_p.channel().await);
    let mut compensation = CompensationServiceClient::new(compensation_p.channel().await);
    let mut audit = AuditServiceClient::new(audit_p.channel().await);
    // The test's own view of the shared log, to count what was stored.
    let log = caseline_eventlog::open(&deployment.schema.url)
        .await
        .unwrap();

    // A helpline contact, a case opened from it, a social worker on the team, risk.
    let contact_id = cases
        .record_contact(authed(contact_request(rid()), &counsellor.token))
        .await
        .unwrap()
        .into_inner()
        .contact_id;
    let case_id = cases
        .open_case(authed(
            opening("Child S-7", &contact_id, RiskLevel::High),
            &counsellor.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    cases
        .add_team_member(authed(
            add_member_request(&case_id, &social),
            &counsellor.token,
        ))
        .await
        .unwrap();
    cases
        .record_risk_assessment(authed(
            RecordRiskAssessmentRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                level: RiskLevel::High as i32,
                factors: "The adult knows where she studies.".into(),
                immediate_actions: "Safety plan agreed with the aunt.".into(),
                expected_version: None,
            },
            &social.token,
        ))
        .await
        .unwrap();

    // The counsellor refers the child to the police, on the referrals process.
    let make = MakeReferralRequest {
        request_id: rid(),
        case_id: case_id.clone(),
        contact_id: String::new(),
        to_agency: POLICE.into(),
        service: ServiceType::Police as i32,
        urgency: ReferralUrgency::Urgent as i32,
        reason: REASON.into(),
        consent: ConsentBasis::GivenByGuardian as i32,
        legal_basis: String::new(),
    };
    let made = referrals
        .make_referral(authed(make.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    let referral_id = made.referral_id.clone();

    // The police see it in their inbox with the case's core summary (written by the
    // cases process), but not the case itself.
    let waiting = eventually(
        "the police inbox",
        || inbox(referrals.clone(), &investigator),
        |r| ids(r) == [referral_id.as_str()] && r[0].referred_case.is_some(),
    )
    .await;
    assert_eq!(waiting[0].status(), ReferralStatus::Made);
    assert_eq!(waiting[0].reason, REASON);
    assert_eq!(waiting[0].from_agency, HELPLINE);
    let summary = waiting[0].referred_case.as_ref().unwrap();
    assert_eq!(summary.pseudonym, "Child S-7");
    assert_eq!(summary.risk_level(), RiskLevel::High);
    let hidden = cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator.token,
        ))
        .await
        .expect_err("not on the team yet");
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");

    // The investigator accepts on the referrals process, and so joins the team: the
    // cases process now shows them the case.
    referrals
        .accept_referral(authed(
            AcceptReferralRequest {
                request_id: rid(),
                referral_id: referral_id.clone(),
                expected_version: None,
            },
            &investigator.token,
        ))
        .await
        .unwrap();
    let case = cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.case_id, case_id);
    assert_eq!(case.visibility(), Visibility::Full);
    // Helpline contacts are a summary to the police: not even the contact's id.
    assert_eq!(case.contact_id, "");
    assert_eq!(
        case.identity.as_ref().map(|i| i.name.as_str()),
        Some(caseline_e2e::requests::CHILD_NAME)
    );
    let team: Vec<(&str, &str, &str)> = case
        .team
        .iter()
        .map(|m| (m.subject.as_str(), m.agency.as_str(), m.role.as_str()))
        .collect();
    assert!(
        team.contains(&("inv-3", POLICE, "police_investigator")),
        "{team:?}"
    );
    assert!(
        team.contains(&("sw-2", SOCIAL, "social_worker")),
        "{team:?}"
    );

    // What the referrals process says before it stops.
    let accepted = get_referral(&mut referrals, &counsellor, &referral_id).await;
    assert_eq!(accepted.status(), ReferralStatus::Accepted);
    assert_eq!(accepted.accepted_by, "inv-3");
    let inbox_before = eventually(
        "the inbox after acceptance",
        || inbox(referrals.clone(), &investigator),
        |r| r.len() == 1 && r[0].status() == ReferralStatus::Accepted,
    )
    .await;
    let outbox_before = eventually(
        "the outbox after acceptance",
        || outbox(referrals.clone(), &counsellor),
        |r| r.len() == 1 && r[0].status() == ReferralStatus::Accepted,
    )
    .await;
    assert_eq!(ids(&outbox_before), [referral_id.as_str()]);
    let stored_before = referral_stream(&*log, &referral_id).await;
    let stored_types: Vec<&str> = stored_before
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        stored_types,
        [types::REFERRAL_MADE, types::REFERRAL_ACCEPTED]
    );
    assert!(
        referrals_p
            .log()
            .lines()
            .any(|l| l.contains("no checkpoint; building from the log")
                && l.contains("referrals.directory")),
        "the first run built its directory from the log:\n{}",
        referrals_p.log()
    );

    // SIGTERM: a graceful stop (its projections save their checkpoints), exit 0.
    let first_pid = referrals_p.pid();
    let status = referrals_p.stop().await;
    assert!(
        status.success(),
        "caseline-referrals exited with {status}:\n{}",
        referrals_p.stopped_log()
    );
    assert_eq!(status.code(), Some(0));
    let last_words = referrals_p.stopped_log();
    assert!(
        last_words.contains("shutdown signal received") && last_words.contains("stopped"),
        "{last_words}"
    );
    assert!(!last_words.contains("checkpoint not saved"), "{last_words}");
    // The other services keep serving meanwhile.
    cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &investigator.token,
        ))
        .await
        .unwrap();

    // Started again with the same arguments: a new process, a new port.
    referrals_p.restart().await;
    assert_ne!(referrals_p.pid(), first_pid);
    let resumed = referrals_p
        .wait_for_line(
            "that its directory resumed from its checkpoint",
            RESUME,
            |l| {
                l.contains("referrals.directory")
                    && (l.contains("projection resumed from its checkpoint")
                        || l.contains("no checkpoint"))
            },
        )
        .await;
    assert!(
        resumed.contains("projection resumed from its checkpoint"),
        "the restarted process rebuilt instead of resuming: {resumed}\n{}",
        referrals_p.log()
    );
    let mut referrals = ReferralServiceClient::new(referrals_p.channel().await);
    assert_serves_only(&referrals_p, REFERRALS.1, &social.token).await;

    // Nothing lost, nothing duplicated: the same referral once, in the same state.
    let inbox_after = inbox(referrals.clone(), &investigator).await;
    assert_eq!(inbox_after, inbox_before);
    assert_eq!(outbox(referrals.clone(), &counsellor).await, outbox_before);
    assert_eq!(
        get_referral(&mut referrals, &counsellor, &referral_id).await,
        accepted
    );
    // A retried MakeReferral (the client never saw the first answer) stores nothing new.
    let retried = referrals
        .make_referral(authed(make.clone(), &counsellor.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, made, "the first answer again");
    let stored_after = referral_stream(&*log, &referral_id).await;
    assert_eq!(
        stored_after.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        stored_before.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        "the retry stored nothing"
    );
    assert_eq!(
        ids(&outbox(referrals.clone(), &counsellor).await),
        [referral_id.as_str()]
    );
    // The same request id with another payload is refused.
    let reused = referrals
        .make_referral(authed(
            MakeReferralRequest {
                reason: "Another reason altogether, for the same request id.".into(),
                ..make.clone()
            },
            &counsellor.token,
        ))
        .await
        .expect_err("a reused request id");
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");

    // The social worker's support plan, on the support-plans process.
    let plan_id = plans
        .create_plan(authed(
            CreatePlanRequest {
                request_id: rid(),
                case_id: case_id.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .plan_id;
    let goal_id = plans
        .add_goal(authed(
            AddGoalRequest {
                request_id: rid(),
                plan_id: plan_id.clone(),
                expected_version: None,
                domain: GoalDomain::Therapy as i32,
                phase: PlanPhase::Investigation as i32,
                description: GOAL.into(),
                target_date: date_of(SystemTime::now() + Duration::from_secs(30 * 86_400)),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .goal_id;
    let plan = plans
        .get_plan(authed(
            GetPlanRequest {
                plan_id: plan_id.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.case_id, case_id);
    assert_eq!(plan.status(), PlanStatus::Draft);
    assert_eq!(plan.goals.len(), 1);
    assert_eq!(plan.goals[0].goal_id, goal_id);
    assert_eq!(plan.goals[0].description, GOAL);
    assert_eq!(plan.goals[0].status(), GoalStatus::Planned);
    let listed = eventually(
        "the case's plans",
        || {
            let mut plans = plans.clone();
            let (case_id, token) = (case_id.clone(), social.token.clone());
            async move {
                plans
                    .list_plans(authed(
                        ListPlansRequest {
                            case_id,
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .plans
            }
        },
        |p| p.len() == 1,
    )
    .await;
    assert_eq!(listed[0].plan_id, plan_id);

    // A victim advocate joins the team (cases process) and files a claim (compensation
    // process), which knows of the membership only through the log.
    cases
        .add_team_member(authed(
            add_member_request(&case_id, &advocate),
            &social.token,
        ))
        .await
        .unwrap();
    let claimed = Some(Money {
        minor_units: 250_000,
        currency: "KES".into(),
    });
    let claim_id = compensation
        .file_claim(authed(
            FileClaimRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                scheme: ClaimScheme::StateVictimCompensation as i32,
                jurisdiction: "Kenya".into(),
                claimant: Claimant::Guardian as i32,
                amount_claimed: claimed.clone(),
                filing_deadline: date_of(SystemTime::now() + Duration::from_secs(90 * 86_400)),
            },
            &advocate.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let claim = compensation
        .get_claim(authed(
            GetClaimRequest {
                claim_id: claim_id.clone(),
            },
            &advocate.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (claim.case_id.as_str(), claim.status()),
        (case_id.as_str(), ClaimStatus::Filed)
    );
    assert_eq!(claim.amount_claimed, claimed);
    let claims = eventually(
        "the case's claims",
        || {
            let mut compensation = compensation.clone();
            let (case_id, token) = (case_id.clone(), social.token.clone());
            async move {
                compensation
                    .list_claims(authed(
                        ListClaimsRequest {
                            case_id,
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .claims
            }
        },
        |c| c.len() == 1,
    )
    .await;
    assert_eq!(claims[0].claim_id, claim_id);

    // The loop closes on the restarted referrals process; the referrer sees the outcome.
    referrals
        .record_referral_outcome(authed(
            RecordReferralOutcomeRequest {
                request_id: rid(),
                referral_id: referral_id.clone(),
                expected_version: None,
                outcome: OUTCOME.into(),
            },
            &investigator.token,
        ))
        .await
        .unwrap();
    let completed = get_referral(&mut referrals, &counsellor, &referral_id).await;
    assert_eq!(completed.status(), ReferralStatus::Completed);
    assert_eq!(completed.outcome, OUTCOME);
    assert_eq!(completed.version, accepted.version + 1);
    let outbox_done = eventually(
        "the outbox after the outcome",
        || outbox(referrals.clone(), &counsellor),
        |r| r.len() == 1 && r[0].status() == ReferralStatus::Completed,
    )
    .await;
    assert_eq!(ids(&outbox_done), [referral_id.as_str()]);

    // Each role's timeline, from the cases process: every service's entries, once each,
    // as the role may see them.
    use Visibility::{Full, Summary};
    let referral_steps = |v: Visibility| {
        vec![
            step("referral_made", v),
            step("referral_accepted", v),
            step("referral_outcome_recorded", v),
        ]
    };
    let plan_steps = |v: Visibility| vec![step("plan_created", v), step("goal_added", v)];

    let by_counsellor = timeline(&mut cases, &counsellor, &case_id).await;
    assert_eq!(steps(&by_counsellor, "referrals"), referral_steps(Full));
    assert_eq!(steps(&by_counsellor, "support_plan"), plan_steps(Summary));
    assert_eq!(steps(&by_counsellor, "compensation_claims"), []);
    match &entry(&by_counsellor, "referral_outcome_recorded").detail {
        Some(Detail::Referral(r)) => {
            assert_eq!(r.step(), referral_view::Step::Outcome);
            assert_eq!(
                (r.referral_id.as_str(), r.text.as_str()),
                (referral_id.as_str(), OUTCOME)
            );
        }
        other => panic!("the outcome's detail: {other:?}"),
    }
    assert!(
        entry(&by_counsellor, "goal_added").detail.is_none(),
        "a summary has no content"
    );

    let by_social = timeline(&mut cases, &social, &case_id).await;
    assert_eq!(steps(&by_social, "referrals"), referral_steps(Full));
    assert_eq!(steps(&by_social, "support_plan"), plan_steps(Full));
    assert_eq!(
        steps(&by_social, "compensation_claims"),
        [step("claim_filed", Full)]
    );
    match &entry(&by_social, "goal_added").detail {
        Some(Detail::Plan(p)) => {
            assert_eq!(p.step(), plan_view::Step::GoalAdded);
            assert_eq!(
                (p.plan_id.as_str(), p.goal_id.as_str()),
                (plan_id.as_str(), goal_id.as_str())
            );
            assert_eq!(p.text, GOAL);
        }
        other => panic!("the goal's detail: {other:?}"),
    }

    let by_investigator = timeline(&mut cases, &investigator, &case_id).await;
    assert_eq!(steps(&by_investigator, "referrals"), referral_steps(Full));
    assert_eq!(steps(&by_investigator, "support_plan"), plan_steps(Summary));
    assert_eq!(steps(&by_investigator, "compensation_claims"), []);
    assert!(by_investigator.iter().any(|e| matches!(
        &e.detail,
        Some(Detail::TeamChange(t)) if t.added && t.subject == "inv-3"
    )));
    match &entry(&by_investigator, "referral_made").detail {
        Some(Detail::Referral(r)) => assert_eq!(r.text, REASON),
        other => panic!("the referral's detail: {other:?}"),
    }

    let by_advocate = timeline(&mut cases, &advocate, &case_id).await;
    assert_eq!(steps(&by_advocate, "referrals"), referral_steps(Full));
    assert_eq!(steps(&by_advocate, "support_plan"), plan_steps(Summary));
    assert_eq!(
        steps(&by_advocate, "compensation_claims"),
        [step("claim_filed", Full)]
    );
    match &entry(&by_advocate, "claim_filed").detail {
        Some(Detail::Remedy(c)) => {
            assert_eq!(c.step(), remedy_view::Step::ClaimFiled);
            assert_eq!(c.id, claim_id);
            assert_eq!(c.amount, claimed);
        }
        other => panic!("the claim's detail: {other:?}"),
    }

    // The auditor replays the case's history on the audit process: the reads just made,
    // each recorded by the process that served it, and each write once.
    let mut stream = audit
        .replay_access_history(authed(
            ReplayAccessHistoryRequest {
                case_id: case_id.clone(),
                ..Default::default()
            },
            &auditor.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut history = Vec::new();
    while let Some(e) = stream.message().await.unwrap() {
        history.push(e);
    }
    let timeline_reads = access(&history, &grpc_method(CASES.1, "GetTimeline"));
    let readers: BTreeSet<&str> = timeline_reads.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        readers,
        BTreeSet::from(["adv-4", "counsellor-1", "inv-3", "sw-2"]),
        "{history:#?}"
    );
    for read in &timeline_reads {
        assert_eq!(read.case_id, case_id);
        assert_eq!(read.outcome(), Outcome::Allowed);
        assert!(read.instance.starts_with("caseline-cases@"), "{read:?}");
    }
    let case_reads = access(&history, &grpc_method(CASES.1, "GetCase"));
    // Refused before the acceptance (recorded, though the caller saw NOT_FOUND), then
    // allowed.
    let by_investigator: Vec<Outcome> = case_reads
        .iter()
        .filter(|e| e.actor == "inv-3")
        .map(|e| e.outcome())
        .collect();
    assert_eq!(
        by_investigator.first(),
        Some(&Outcome::Denied),
        "{case_reads:#?}"
    );
    assert!(
        by_investigator[1..].iter().all(|o| *o == Outcome::Allowed) && by_investigator.len() >= 2,
        "{case_reads:#?}"
    );
    let referral_reads = access(&history, &grpc_method(REFERRALS.1, "GetReferral"));
    let referral_instances: BTreeSet<&str> =
        referral_reads.iter().map(|e| e.instance.as_str()).collect();
    assert_eq!(
        referral_instances.len(),
        2,
        "one per run of the referrals process: {referral_reads:#?}"
    );
    assert!(
        referral_instances
            .iter()
            .all(|i| i.starts_with("caseline-referrals@"))
    );
    for (rpc, instance) in [
        (
            grpc_method(SUPPORT_PLANS.1, "GetPlan"),
            "caseline-support-plans@",
        ),
        (
            grpc_method(COMPENSATION.1, "GetClaim"),
            "caseline-compensation@",
        ),
    ] {
        let reads = access(&history, &rpc);
        assert!(!reads.is_empty(), "no {rpc} in {history:#?}");
        assert!(
            reads.iter().all(|e| e.instance.starts_with(instance)),
            "{reads:#?}"
        );
    }
    for (event_type, times) in [
        (types::CASE_OPENED, 1),
        (types::REFERRAL_MADE, 1),
        (types::REFERRAL_ACCEPTED, 1),
        (types::REFERRAL_OUTCOME_RECORDED, 1),
        (types::PLAN_CREATED, 1),
        (types::GOAL_ADDED, 1),
        (types::CLAIM_FILED, 1),
        // The counsellor (who opened it), the social worker, the investigator (by
        // accepting), the advocate.
        (types::TEAM_MEMBER_ADDED, 4),
    ] {
        assert_eq!(
            writes(&history, event_type),
            times,
            "{event_type} in {history:#?}"
        );
    }
    let positions: Vec<u128> = history
        .iter()
        .map(|e| e.position.parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let text = format!("{history:?}");
    for sealed in [REASON, GOAL, OUTCOME, caseline_e2e::requests::CHILD_NAME] {
        assert!(!text.contains(sealed), "auditors never see sealed content");
    }

    // The log is intact: the case's streams, and the whole of it.
    let of_case = audit
        .verify_integrity(authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::CaseId(case_id.clone())),
            },
            &auditor.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(of_case.intact, "{of_case:?}");
    assert!(of_case.first_broken.is_none());
    // case, contact, referral, plan, claim (and the case's access records).
    assert!(of_case.streams_checked >= 5, "{of_case:?}");
    let domain_events = log
        .read_case_events(Uuid::parse_str(&case_id).unwrap(), Position::START, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.stream.as_str().starts_with("access-"))
        .count() as u64;
    assert!(
        domain_events >= 10,
        "{domain_events} events of the case's own streams"
    );
    assert!(of_case.events_checked >= domain_events, "{of_case:?}");
    let everything = audit
        .verify_integrity(authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::Everything(true)),
            },
            &auditor.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(everything.intact, "{everything:?}");
    assert!(
        everything.events_checked >= of_case.events_checked,
        "{everything:?}"
    );

    // Every process stops gracefully on SIGTERM.
    drop((cases, referrals, plans, compensation, audit));
    log.close().await;
    let mut processes = [cases_p, referrals_p, plans_p, compensation_p, audit_p];
    for process in &mut processes {
        let status = process.stop().await;
        assert_eq!(
            status.code(),
            Some(0),
            "{} exited with {status}:\n{}",
            process.name(),
            process.stopped_log()
        );
    }
}
