//! ReferralService's rules on a whole all-in-one server: field-naming refusals,
//! NOT_FOUND for referrals and cases the caller may not see, PERMISSION_DENIED for
//! steps the caller may see but not take, the referral's life (FAILED_PRECONDITION),
//! idempotency, concurrency and `expected_version`, a contact's referral, lists that
//! record every id they return, paging, withdrawal and decline — real gRPC, real
//! tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use caseline_auth::Role;
use caseline_e2e::check::{
    expect_err, invalid_fields, last_global_access, names, referral_events, shape,
};
use caseline_e2e::requests::{add_member_request, contact_request, opening};
use caseline_e2e::{Clients, TestClock, TestServer, User, authed, rid};
use caseline_eventlog::Uuid;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::events::AccessRecorded;
use caseline_proto::v1::{
    AcceptReferralRequest, AcknowledgeReferralRequest, Case, ConcernCategory, ConsentBasis,
    ContactChannel, DecideClosureRequest, DeclineReferralRequest, GetCaseRequest,
    GetReferralRequest, ListInboxRequest, ListOutboxRequest, ListOverdueReferralsRequest,
    ListReferralsResponse, MakeReferralRequest, RecordReferralOutcomeRequest, Referral,
    ReferralCommandResponse, ReferralStatus, ReferralUrgency, RequestClosureRequest, RiskLevel,
    ServiceType, Stage, WithdrawReferralRequest,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const REASON: &str = "An adult she met online is pressuring her to meet this week.";
const LEGAL_BASIS: &str = "Children Act 2022, s. 17: duty to report a child at risk";

async fn record_contact(c: &mut Clients, by: &User) -> String {
    c.cases
        .record_contact(authed(contact_request(rid()), &by.token))
        .await
        .unwrap()
        .into_inner()
        .contact_id
}

/// Opens a case (from `contact_id`, if not empty) and returns its id.
async fn open_case(c: &mut Clients, by: &User, pseudonym: &str, contact_id: &str) -> String {
    c.cases
        .open_case(authed(
            opening(pseudonym, contact_id, RiskLevel::High),
            &by.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id
}

async fn add_member(c: &mut Clients, by: &User, case_id: &str, who: &User) {
    c.cases
        .add_team_member(authed(add_member_request(case_id, who), &by.token))
        .await
        .unwrap();
}

async fn get_case(c: &mut Clients, by: &User, case_id: &str) -> Case {
    c.cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.into(),
            },
            &by.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// A valid referral of the case to `to`, with the child's consent.
fn referral(case_id: &str, to: &User) -> MakeReferralRequest {
    MakeReferralRequest {
        request_id: rid(),
        case_id: case_id.into(),
        contact_id: String::new(),
        to_agency: to.agency.clone(),
        service: ServiceType::Police as i32,
        urgency: ReferralUrgency::Urgent as i32,
        reason: REASON.into(),
        consent: ConsentBasis::GivenByChild as i32,
        legal_basis: String::new(),
    }
}

type Answer = Result<ReferralCommandResponse, Status>;

async fn make(c: &mut Clients, by: &User, request: MakeReferralRequest) -> Answer {
    c.referrals
        .make_referral(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

/// Makes a referral of the case to `to`'s agency and returns its id.
async fn refer(c: &mut Clients, by: &User, case_id: &str, to: &User) -> String {
    make(c, by, referral(case_id, to))
        .await
        .unwrap()
        .referral_id
}

async fn acknowledge(c: &mut Clients, by: &User, id: &str, expected: Option<u64>) -> Answer {
    c.referrals
        .acknowledge_referral(authed(
            AcknowledgeReferralRequest {
                request_id: rid(),
                referral_id: id.into(),
                expected_version: expected,
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn accept(c: &mut Clients, by: &User, id: &str) -> Answer {
    c.referrals
        .accept_referral(authed(
            AcceptReferralRequest {
                request_id: rid(),
                referral_id: id.into(),
                expected_version: None,
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn decline_request(id: &str, reason: &str, suggested: ServiceType) -> DeclineReferralRequest {
    DeclineReferralRequest {
        request_id: rid(),
        referral_id: id.into(),
        expected_version: None,
        reason: reason.into(),
        suggested_service: suggested as i32,
    }
}

async fn decline(c: &mut Clients, by: &User, request: DeclineReferralRequest) -> Answer {
    c.referrals
        .decline_referral(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn outcome(c: &mut Clients, by: &User, id: &str, text: &str) -> Answer {
    c.referrals
        .record_referral_outcome(authed(
            RecordReferralOutcomeRequest {
                request_id: rid(),
                referral_id: id.into(),
                expected_version: None,
                outcome: text.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn withdraw(c: &mut Clients, by: &User, id: &str, reason: &str) -> Answer {
    c.referrals
        .withdraw_referral(authed(
            WithdrawReferralRequest {
                request_id: rid(),
                referral_id: id.into(),
                expected_version: None,
                reason: reason.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn get(c: &mut Clients, by: &User, id: &str) -> Result<Referral, Status> {
    c.referrals
        .get_referral(authed(
            GetReferralRequest {
                referral_id: id.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn inbox(
    c: &mut Clients,
    by: &User,
    request: ListInboxRequest,
) -> Result<ListReferralsResponse, Status> {
    c.referrals
        .list_inbox(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn outbox(
    c: &mut Clients,
    by: &User,
    request: ListOutboxRequest,
) -> Result<ListReferralsResponse, Status> {
    c.referrals
        .list_outbox(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn overdue(
    c: &mut Clients,
    by: &User,
    request: ListOverdueReferralsRequest,
) -> Result<ListReferralsResponse, Status> {
    c.referrals
        .list_overdue_referrals(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn ids(page: &ListReferralsResponse) -> Vec<String> {
    page.referrals
        .iter()
        .map(|r| r.referral_id.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------
// INVALID_ARGUMENT
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_name_the_field_and_store_nothing() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-a");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-b");
    let case_id = open_case(&mut c, &hc, "Child R-1", "").await;
    let contact_id = record_contact(&mut c, &hc).await;
    let valid = || referral(&case_id, &police);

    let empty = invalid_fields(
        make(&mut c, &hc, MakeReferralRequest::default()).await,
        "empty MakeReferral",
    );
    for field in [
        "request_id",
        "case_id",
        "to_agency",
        "service",
        "urgency",
        "reason",
        "consent",
    ] {
        assert!(empty.iter().any(|f| f == field), "{field} in {empty:?}");
    }
    let cases: Vec<(&str, MakeReferralRequest, &str)> = vec![
        (
            "both case_id and contact_id",
            MakeReferralRequest {
                contact_id: contact_id.clone(),
                ..valid()
            },
            "case_id",
        ),
        (
            "case_id not a uuid",
            MakeReferralRequest {
                case_id: "case-1".into(),
                ..valid()
            },
            "case_id",
        ),
        (
            "contact_id not a uuid",
            MakeReferralRequest {
                case_id: String::new(),
                contact_id: "not-a-uuid".into(),
                ..valid()
            },
            "contact_id",
        ),
        (
            "request_id not a uuid",
            MakeReferralRequest {
                request_id: "again".into(),
                ..valid()
            },
            "request_id",
        ),
        (
            "to one's own agency",
            MakeReferralRequest {
                to_agency: hc.agency.clone(),
                ..valid()
            },
            "to_agency",
        ),
        (
            "unknown service",
            MakeReferralRequest {
                service: 99,
                ..valid()
            },
            "service",
        ),
        (
            "unknown urgency",
            MakeReferralRequest {
                urgency: 42,
                ..valid()
            },
            "urgency",
        ),
        (
            "unknown consent",
            MakeReferralRequest {
                consent: 7,
                ..valid()
            },
            "consent",
        ),
        (
            "consent not required, no legal basis",
            MakeReferralRequest {
                consent: ConsentBasis::NotRequired as i32,
                legal_basis: "   ".into(),
                ..valid()
            },
            "legal_basis",
        ),
        (
            "consent given by the child, and a legal basis",
            MakeReferralRequest {
                legal_basis: LEGAL_BASIS.into(),
                ..valid()
            },
            "legal_basis",
        ),
        (
            "consent given by a guardian, and a legal basis",
            MakeReferralRequest {
                consent: ConsentBasis::GivenByGuardian as i32,
                legal_basis: LEGAL_BASIS.into(),
                ..valid()
            },
            "legal_basis",
        ),
        (
            "no reason",
            MakeReferralRequest {
                reason: " \n ".into(),
                ..valid()
            },
            "reason",
        ),
    ];
    for (what, request, field) in cases {
        names(make(&mut c, &hc, request).await, &[field], what);
    }

    // The steps on an existing referral.
    let id = refer(&mut c, &hc, &case_id, &police).await;
    names(
        decline(
            &mut c,
            &police,
            decline_request(&id, "", ServiceType::Unspecified),
        )
        .await,
        &["reason"],
        "DeclineReferral without reason",
    );
    names(
        decline(
            &mut c,
            &police,
            DeclineReferralRequest {
                suggested_service: 77,
                ..decline_request(&id, "not ours", ServiceType::Unspecified)
            },
        )
        .await,
        &["suggested_service"],
        "DeclineReferral with an unknown suggested service",
    );
    names(
        outcome(&mut c, &police, &id, "").await,
        &["outcome"],
        "RecordReferralOutcome without outcome",
    );
    names(
        withdraw(&mut c, &hc, &id, "\t").await,
        &["reason"],
        "WithdrawReferral without reason",
    );
    names(
        acknowledge(&mut c, &police, "not-a-uuid", None).await,
        &["referral_id"],
        "AcknowledgeReferral with a bad id",
    );
    names(
        accept(&mut c, &police, "").await,
        &["referral_id"],
        "AcceptReferral without an id",
    );
    names(
        get(&mut c, &police, "x").await,
        &["referral_id"],
        "GetReferral with a bad id",
    );

    // The lists.
    names(
        inbox(
            &mut c,
            &police,
            ListInboxRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        )
        .await,
        &["page_token"],
        "ListInbox bad page_token",
    );
    names(
        inbox(
            &mut c,
            &police,
            ListInboxRequest {
                page_size: 501,
                ..Default::default()
            },
        )
        .await,
        &["page_size"],
        "ListInbox page_size 501",
    );
    names(
        inbox(
            &mut c,
            &police,
            ListInboxRequest {
                statuses: vec![ReferralStatus::Made as i32, 99],
                ..Default::default()
            },
        )
        .await,
        &["statuses"],
        "ListInbox unknown status",
    );
    names(
        outbox(
            &mut c,
            &hc,
            ListOutboxRequest {
                page_token: "-1".into(),
                ..Default::default()
            },
        )
        .await,
        &["page_token"],
        "ListOutbox bad page_token",
    );
    names(
        outbox(
            &mut c,
            &hc,
            ListOutboxRequest {
                page_size: 1000,
                ..Default::default()
            },
        )
        .await,
        &["page_size"],
        "ListOutbox page_size 1000",
    );
    names(
        overdue(
            &mut c,
            &hc,
            ListOverdueReferralsRequest {
                page_size: 0,
                page_token: "abc".into(),
            },
        )
        .await,
        &["page_token"],
        "ListOverdueReferrals bad page_token",
    );
    names(
        overdue(
            &mut c,
            &hc,
            ListOverdueReferralsRequest {
                page_size: 501,
                page_token: String::new(),
            },
        )
        .await,
        &["page_size"],
        "ListOverdueReferrals page_size 501",
    );
    // Page size 500 is the largest allowed.
    inbox(
        &mut c,
        &police,
        ListInboxRequest {
            page_size: 500,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Nothing but the one referral's making was stored.
    let events = referral_events(&server, &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// NOT_FOUND and PERMISSION_DENIED
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_referral_or_case_the_caller_may_not_see_is_not_found() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-a");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-b");
    let outsider = User::new(&server, "sw-9", Role::SocialWorker, "council-c");
    let health = User::new(&server, "hw-1", Role::HealthWorker, "hospital-d");
    let case_id = open_case(&mut c, &hc, "Child N-1", "").await;
    add_member(&mut c, &hc, &case_id, &health).await;
    let id = refer(&mut c, &hc, &case_id, &police).await;

    // A referral that does not exist.
    let random = Uuid::new_v4().to_string();
    let absent = expect_err(
        get(&mut c, &hc, &random).await,
        Code::NotFound,
        "GetReferral of a random id",
    );
    assert!(absent.message().contains(&random), "{absent:?}");

    // A social worker of a third agency: no standing, told exactly the same.
    let hidden = expect_err(
        get(&mut c, &outsider, &id).await,
        Code::NotFound,
        "GetReferral by an outsider",
    );
    assert!(!hidden.message().contains(&case_id), "{hidden:?}");
    assert_eq!(shape(&hidden, &id), shape(&absent, &random));
    for (what, result) in [
        ("accept", accept(&mut c, &outsider, &id).await),
        (
            "withdraw",
            withdraw(&mut c, &outsider, &id, "not ours").await,
        ),
        (
            "acknowledge",
            acknowledge(&mut c, &outsider, &id, None).await,
        ),
    ] {
        let s = expect_err(result, Code::NotFound, what);
        assert!(!s.message().contains(&case_id), "{what}: {s:?}");
    }
    // …and may not refer the child of a case they are not on.
    expect_err(
        make(&mut c, &outsider, referral(&case_id, &police)).await,
        Code::NotFound,
        "MakeReferral on a case the caller is not on",
    );

    // A health worker on the team sees referrals to their agency only.
    let s = expect_err(
        get(&mut c, &health, &id).await,
        Code::NotFound,
        "GetReferral by a health worker member, to the police",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");
    assert_eq!(shape(&s, &id), shape(&absent, &random));
    let to_hospital = refer(&mut c, &hc, &case_id, &health).await;
    let seen = get(&mut c, &health, &to_hospital).await.unwrap();
    assert_eq!(seen.case_id, case_id);
    assert_eq!(seen.reason, REASON);

    // The receiver sees it, with the case's summary but never the child's identity.
    let r = get(&mut c, &police, &id).await.unwrap();
    assert_eq!(r.case_id, case_id);
    assert_eq!(r.status(), ReferralStatus::Made);
    let summary = r.referred_case.expect("the case's summary while deciding");
    assert_eq!(summary.pseudonym, "Child N-1");
    server.stop().await;
}

/// Nobody may refer the child of a case that does not exist: the answer is NOT_FOUND,
/// as for a case the caller is not on, and nothing is stored.
#[tokio::test]

async fn make_referral_on_a_case_that_does_not_exist_is_not_found() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-f");
    let sw = User::new(&server, "sw-1", Role::SocialWorker, "council-f");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-f");
    let nowhere = Uuid::new_v4().to_string();
    expect_err(
        make(&mut c, &sw, referral(&nowhere, &police)).await,
        Code::NotFound,
        "social worker, absent case",
    );
    let answer = make(&mut c, &hc, referral(&nowhere, &police)).await;
    if let Ok(made) = &answer {
        let events = referral_events(&server, &made.referral_id).await;
        panic!(
            "a referral of an absent case was stored ({} event(s)): {made:?}",
            events.len()
        );
    }
    expect_err(answer, Code::NotFound, "helpline counsellor, absent case");
    server.stop().await;
}

#[tokio::test]
async fn a_prosecutor_on_the_case_sees_a_referral_to_the_police_but_may_not_accept_it() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-g");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-g");
    let prosecutor = User::new(&server, "pr-1", Role::Prosecutor, "prosecution-g");
    let case_id = open_case(&mut c, &hc, "Child P-1", "").await;
    add_member(&mut c, &hc, &case_id, &prosecutor).await;
    let id = refer(&mut c, &hc, &case_id, &police).await;

    let r = get(&mut c, &prosecutor, &id).await.unwrap();
    assert_eq!(r.to_agency, police.agency);
    expect_err(
        accept(&mut c, &prosecutor, &id).await,
        Code::PermissionDenied,
        "prosecutor accepting a referral to the police",
    );
    expect_err(
        acknowledge(&mut c, &prosecutor, &id, None).await,
        Code::PermissionDenied,
        "prosecutor acknowledging a referral to the police",
    );
    expect_err(
        decline(
            &mut c,
            &prosecutor,
            decline_request(&id, "not for them", ServiceType::Unspecified),
        )
        .await,
        Code::PermissionDenied,
        "prosecutor declining a referral to the police",
    );
    // Nor may they make or withdraw one (a prosecutor does not write referrals).
    expect_err(
        withdraw(&mut c, &prosecutor, &id, "no").await,
        Code::PermissionDenied,
        "prosecutor withdrawing",
    );
    expect_err(
        make(&mut c, &prosecutor, referral(&case_id, &police)).await,
        Code::PermissionDenied,
        "prosecutor making a referral",
    );
    assert_eq!(referral_events(&server, &id).await.len(), 1);
    assert_eq!(
        get(&mut c, &police, &id).await.unwrap().status(),
        ReferralStatus::Made
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// FAILED_PRECONDITION
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_referrals_life_answers_failed_precondition() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-h");
    let pol1 = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-h");
    let pol2 = User::new(&server, "pol-2", Role::PoliceInvestigator, "police-h");
    let case_id = open_case(&mut c, &hc, "Child F-1", "").await;

    // Withdrawn: nothing more to decide.
    let withdrawn = refer(&mut c, &hc, &case_id, &pol1).await;
    withdraw(&mut c, &hc, &withdrawn, "the family moved abroad")
        .await
        .unwrap();
    expect_err(
        accept(&mut c, &pol1, &withdrawn).await,
        Code::FailedPrecondition,
        "accept a withdrawn referral",
    );
    expect_err(
        withdraw(&mut c, &hc, &withdrawn, "again").await,
        Code::FailedPrecondition,
        "withdraw twice",
    );

    // Declined.
    let declined = refer(&mut c, &hc, &case_id, &pol1).await;
    decline(
        &mut c,
        &pol1,
        decline_request(&declined, "no offence disclosed", ServiceType::Unspecified),
    )
    .await
    .unwrap();
    expect_err(
        accept(&mut c, &pol2, &declined).await,
        Code::FailedPrecondition,
        "accept a declined referral",
    );
    expect_err(
        withdraw(&mut c, &hc, &declined, "too late").await,
        Code::FailedPrecondition,
        "withdraw a declined referral",
    );

    // Accepted once, by one receiver.
    let accepted = refer(&mut c, &hc, &case_id, &pol1).await;
    acknowledge(&mut c, &pol1, &accepted, None).await.unwrap();
    expect_err(
        acknowledge(&mut c, &pol2, &accepted, None).await,
        Code::FailedPrecondition,
        "acknowledge twice",
    );
    accept(&mut c, &pol1, &accepted).await.unwrap();
    let status = expect_err(
        accept(&mut c, &pol2, &accepted).await,
        Code::FailedPrecondition,
        "accept twice",
    );
    assert!(status.message().contains("accepted"), "{status:?}");
    let r = get(&mut c, &hc, &accepted).await.unwrap();
    assert_eq!(r.accepted_by, pol1.sub);

    // An outcome follows acceptance, once.
    let fresh = refer(&mut c, &hc, &case_id, &pol1).await;
    expect_err(
        outcome(&mut c, &pol1, &fresh, "statement taken").await,
        Code::FailedPrecondition,
        "outcome before acceptance",
    );
    outcome(&mut c, &pol1, &accepted, "statement taken")
        .await
        .unwrap();
    expect_err(
        outcome(&mut c, &pol1, &accepted, "statement taken again").await,
        Code::FailedPrecondition,
        "outcome twice",
    );
    expect_err(
        withdraw(&mut c, &hc, &accepted, "too late").await,
        Code::FailedPrecondition,
        "withdraw a completed referral",
    );
    assert_eq!(
        get(&mut c, &hc, &accepted).await.unwrap().status(),
        ReferralStatus::Completed
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Idempotency, concurrency, expected_version
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retry_answers_as_the_first_and_stores_nothing_new() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-i");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-i");
    let case_id = open_case(&mut c, &hc, "Child I-1", "").await;

    let request = referral(&case_id, &police);
    let first = make(&mut c, &hc, request.clone()).await.unwrap();
    let again = make(&mut c, &hc, request.clone()).await.unwrap();
    assert_eq!(first, again);
    assert!(first.due_by.is_some());
    let events = referral_events(&server, &first.referral_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].event_type,
        caseline_proto::event_types::REFERRAL_MADE
    );

    let status = expect_err(
        make(
            &mut c,
            &hc,
            MakeReferralRequest {
                reason: "another reason altogether".into(),
                ..request.clone()
            },
        )
        .await,
        Code::AlreadyExists,
        "same request_id, other reason",
    );
    assert!(!status.message().contains(REASON), "{status:?}");
    assert_eq!(referral_events(&server, &first.referral_id).await.len(), 1);

    // An acceptance retried: the same version, one member added.
    let accept_request = AcceptReferralRequest {
        request_id: rid(),
        referral_id: first.referral_id.clone(),
        expected_version: None,
    };
    let mut versions = Vec::new();
    for _ in 0..2 {
        versions.push(
            c.referrals
                .accept_referral(authed(accept_request.clone(), &police.token))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    assert_eq!(versions[0], versions[1]);
    assert_eq!(referral_events(&server, &first.referral_id).await.len(), 2);
    let case = get_case(&mut c, &hc, &case_id).await;
    assert_eq!(
        case.team.iter().filter(|m| m.subject == police.sub).count(),
        1,
        "{:?}",
        case.team
    );

    // Retried after the case was closed, the acceptance is answered as the first time:
    // the closure came after it, and a new acceptance is refused.
    let other = refer(&mut c, &hc, &case_id, &police).await;
    let asks = User::new(&server, "sup-i-1", Role::Supervisor, "helpline-i");
    let decides = User::new(&server, "sup-i-2", Role::Supervisor, "helpline-i");
    c.cases
        .request_closure(authed(
            RequestClosureRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                expected_version: None,
                reason: "the child is safe and supported".into(),
            },
            &asks.token,
        ))
        .await
        .unwrap();
    c.cases
        .decide_closure(authed(
            DecideClosureRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                expected_version: None,
                approve: true,
                comment: String::new(),
            },
            &decides.token,
        ))
        .await
        .unwrap();
    assert_eq!(get_case(&mut c, &hc, &case_id).await.stage(), Stage::Closed);
    let late = c
        .referrals
        .accept_referral(authed(accept_request.clone(), &police.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late, versions[0]);
    assert_eq!(referral_events(&server, &first.referral_id).await.len(), 2);
    let refused = expect_err(
        accept(&mut c, &police, &other).await,
        Code::FailedPrecondition,
        "accepting on a closed case",
    );
    assert!(refused.message().contains("closed"), "{refused:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_eight_concurrent_acceptances_exactly_one_applies() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-j");
    let investigators: Vec<User> = (0..8)
        .map(|i| {
            User::new(
                &server,
                &format!("pol-{i}"),
                Role::PoliceInvestigator,
                "police-j",
            )
        })
        .collect();
    let case_id = open_case(&mut c, &hc, "Child J-1", "").await;
    let id = refer(&mut c, &hc, &case_id, &investigators[0]).await;

    let mut tasks = tokio::task::JoinSet::new();
    for who in investigators.clone() {
        let mut c = c.clone();
        let id = id.clone();
        tasks.spawn(async move {
            let answer = accept(&mut c, &who, &id).await;
            (who.sub, answer)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(sub, _)| sub)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, r) in &results {
        if let Err(s) = r {
            assert!(
                matches!(s.code(), Code::FailedPrecondition | Code::Aborted),
                "{s:?}"
            );
        }
    }
    let r = get(&mut c, &hc, &id).await.unwrap();
    assert_eq!(r.status(), ReferralStatus::Accepted);
    assert_eq!(&r.accepted_by, winners[0]);
    assert_eq!(referral_events(&server, &id).await.len(), 2);

    let case = get_case(&mut c, &hc, &case_id).await;
    let joined: Vec<&str> = case
        .team
        .iter()
        .filter(|m| m.agency == "police-j")
        .map(|m| m.subject.as_str())
        .collect();
    assert_eq!(joined, [winners[0].as_str()], "{:?}", case.team);
    let member = case.team.iter().find(|m| &m.subject == winners[0]).unwrap();
    assert_eq!(member.role, "police_investigator");
    server.stop().await;
}

#[tokio::test]
async fn a_stale_expected_version_is_aborted() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-k");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-k");
    let case_id = open_case(&mut c, &hc, "Child K-1", "").await;
    let made = make(&mut c, &hc, referral(&case_id, &police))
        .await
        .unwrap();
    let seen = made.version;
    assert_eq!(
        get(&mut c, &police, &made.referral_id)
            .await
            .unwrap()
            .version,
        seen
    );

    let acked = acknowledge(&mut c, &police, &made.referral_id, Some(seen))
        .await
        .unwrap();
    assert_eq!(acked.version, seen + 1);
    expect_err(
        acknowledge(&mut c, &police, &made.referral_id, Some(seen)).await,
        Code::Aborted,
        "acknowledge at a stale version",
    );
    expect_err(
        acknowledge(&mut c, &police, &made.referral_id, Some(seen + 7)).await,
        Code::Aborted,
        "acknowledge at a version not reached",
    );
    let stale_accept = c
        .referrals
        .accept_referral(authed(
            AcceptReferralRequest {
                request_id: rid(),
                referral_id: made.referral_id.clone(),
                expected_version: Some(seen),
            },
            &police.token,
        ))
        .await;
    expect_err(stale_accept, Code::Aborted, "accept at a stale version");
    let r = get(&mut c, &police, &made.referral_id).await.unwrap();
    assert_eq!(r.status(), ReferralStatus::Acknowledged);
    assert_eq!(r.version, acked.version);
    assert_eq!(referral_events(&server, &made.referral_id).await.len(), 2);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// A contact's referral
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_contact_referral_closes_its_loop_without_a_case() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-l");
    let other_hc = User::new(&server, "hc-2", Role::HelplineCounsellor, "helpline-z");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-l");
    let contact_id = record_contact(&mut c, &hc).await;
    let request = MakeReferralRequest {
        case_id: String::new(),
        contact_id: contact_id.clone(),
        consent: ConsentBasis::NotRequired as i32,
        legal_basis: LEGAL_BASIS.into(),
        urgency: ReferralUrgency::Emergency as i32,
        ..referral("", &police)
    };
    let made = make(&mut c, &hc, request.clone()).await.unwrap();
    let id = made.referral_id.clone();

    // The police see it in their inbox: the contact's summary, never the contact's id.
    let page = inbox(&mut c, &police, ListInboxRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(&page), [id.as_str()]);
    let seen = &page.referrals[0];
    assert!(seen.contact_id.is_empty(), "{seen:?}");
    assert!(seen.case_id.is_empty(), "{seen:?}");
    assert!(seen.referred_case.is_none(), "{seen:?}");
    let contact = seen
        .referred_contact
        .as_ref()
        .expect("the contact's summary");
    assert_eq!(contact.channel(), ContactChannel::Phone);
    assert_eq!(contact.concerns, [ConcernCategory::Grooming as i32]);
    assert_eq!(seen.from_agency, hc.agency);
    assert_eq!(seen.reason, REASON);
    assert_eq!(seen.legal_basis, LEGAL_BASIS);
    assert_eq!(seen.consent(), ConsentBasis::NotRequired);

    // The counsellor sees the contact it came from.
    let theirs = get(&mut c, &hc, &id).await.unwrap();
    assert_eq!(theirs.contact_id, contact_id);
    assert_eq!(theirs.referred_by, hc.sub);

    // Another helpline's counsellor: neither the referral nor the contact exists.
    expect_err(
        get(&mut c, &other_hc, &id).await,
        Code::NotFound,
        "another helpline's GetReferral",
    );
    expect_err(
        make(
            &mut c,
            &other_hc,
            MakeReferralRequest {
                request_id: rid(),
                ..request.clone()
            },
        )
        .await,
        Code::NotFound,
        "MakeReferral from another agency's contact",
    );

    // The police accept (no team to join) and record what they did.
    acknowledge(&mut c, &police, &id, None).await.unwrap();
    accept(&mut c, &police, &id).await.unwrap();
    outcome(
        &mut c,
        &police,
        &id,
        "Officers spoke with the family the same day.",
    )
    .await
    .unwrap();
    let page = outbox(&mut c, &hc, ListOutboxRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(&page), [id.as_str()]);
    let done = &page.referrals[0];
    assert_eq!(done.status(), ReferralStatus::Completed);
    assert_eq!(done.outcome, "Officers spoke with the family the same day.");
    assert_eq!(done.accepted_by, police.sub);
    assert_eq!(done.contact_id, contact_id);
    assert!(done.completed_at.is_some());
    assert!(
        outbox(&mut c, &other_hc, ListOutboxRequest::default())
            .await
            .unwrap()
            .referrals
            .is_empty()
    );

    // Once a case is opened from the contact, referrals are made from the case.
    let case_id = open_case(&mut c, &hc, "Child L-1", &contact_id).await;
    assert!(!case_id.is_empty());
    expect_err(
        make(
            &mut c,
            &hc,
            MakeReferralRequest {
                request_id: rid(),
                ..request
            },
        )
        .await,
        Code::FailedPrecondition,
        "MakeReferral from a contact a case was opened from",
    );
    refer(&mut c, &hc, &case_id, &police).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------

/// Asserts the newest `access-global` record is `user`'s call of `rpc` and names every
/// referral of `page` and its case.
#[track_caller]
fn assert_recorded(
    (actor, record): (String, AccessRecorded),
    user: &User,
    rpc: &str,
    page: &ListReferralsResponse,
) {
    assert_eq!(actor, user.sub, "{rpc}");
    assert_eq!(record.rpc, rpc);
    assert_eq!(record.status_code, 0, "{record:?}");
    assert!(!page.referrals.is_empty(), "{rpc}: nothing listed");
    let recorded: HashSet<&String> = record.resource_ids.iter().collect();
    for r in &page.referrals {
        assert!(recorded.contains(&r.referral_id), "{rpc}: {record:?}");
        if !r.case_id.is_empty() {
            assert!(recorded.contains(&r.case_id), "{rpc}: {record:?}");
        }
    }
}

#[tokio::test]
async fn every_list_records_the_ids_it_returns() {
    let clock = TestClock::default();
    let server = TestServer::start_with(clock.clockwork(Duration::from_secs(3600))).await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-m");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-m");
    let case_a = open_case(&mut c, &hc, "Child M-1", "").await;
    let case_b = open_case(&mut c, &hc, "Child M-2", "").await;
    let ra = refer(&mut c, &hc, &case_a, &police).await;
    let rb = refer(&mut c, &hc, &case_b, &police).await;

    let page = inbox(&mut c, &police, ListInboxRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(&page), [ra.clone(), rb.clone()]);
    assert_recorded(
        last_global_access(&server).await,
        &police,
        "/caseline.v1.ReferralService/ListInbox",
        &page,
    );
    let page = outbox(&mut c, &hc, ListOutboxRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(&page), [ra.clone(), rb.clone()]);
    assert_recorded(
        last_global_access(&server).await,
        &hc,
        "/caseline.v1.ReferralService/ListOutbox",
        &page,
    );
    let mine = outbox(
        &mut c,
        &hc,
        ListOutboxRequest {
            mine: true,
            statuses: vec![ReferralStatus::Made as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&mine), [ra.clone(), rb.clone()]);

    // Nothing is overdue yet; past 72 hours both urgent referrals are.
    assert!(
        overdue(&mut c, &police, ListOverdueReferralsRequest::default())
            .await
            .unwrap()
            .referrals
            .is_empty()
    );
    clock.advance(Duration::from_secs(72 * 3600 + 60));
    for user in [&police, &hc] {
        let page = overdue(&mut c, user, ListOverdueReferralsRequest::default())
            .await
            .unwrap();
        assert_eq!(ids(&page), [ra.clone(), rb.clone()]);
        assert!(page.referrals.iter().all(|r| r.overdue));
        assert_recorded(
            last_global_access(&server).await,
            user,
            "/caseline.v1.ReferralService/ListOverdueReferrals",
            &page,
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_inbox_pages_oldest_first() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-n");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-n");
    let case_id = open_case(&mut c, &hc, "Child Q-1", "").await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(refer(&mut c, &hc, &case_id, &police).await);
    }
    let first = inbox(
        &mut c,
        &police,
        ListInboxRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&first), made[..2]);
    assert!(!first.next_page_token.is_empty());
    let second = inbox(
        &mut c,
        &police,
        ListInboxRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&second), made[2..]);
    assert!(second.next_page_token.is_empty(), "{second:?}");
    let (_, record) = last_global_access(&server).await;
    assert_eq!(record.resource_ids, [made[2].clone(), case_id.clone()]);

    // A status filter.
    accept(&mut c, &police, &made[1]).await.unwrap();
    let accepted = inbox(
        &mut c,
        &police,
        ListInboxRequest {
            statuses: vec![ReferralStatus::Accepted as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&accepted), [made[1].clone()]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Withdraw and decline
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_referrer_withdraws_and_the_receiver_sees_why() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-o");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-o");
    let case_id = open_case(&mut c, &hc, "Child W-1", "").await;
    let id = refer(&mut c, &hc, &case_id, &police).await;

    // The receiver cannot take it back; they see it, so PERMISSION_DENIED.
    let refused = withdraw(&mut c, &police, &id, "we do not want it").await;
    let status = refused.expect_err("a receiver may not withdraw");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(!status.message().contains(&case_id), "{status:?}");

    withdraw(&mut c, &hc, &id, "the child is safe with relatives")
        .await
        .unwrap();
    let r = get(&mut c, &police, &id).await.unwrap();
    assert_eq!(r.status(), ReferralStatus::Withdrawn);
    assert_eq!(r.withdraw_reason, "the child is safe with relatives");
    assert!(r.withdrawn_at.is_some());
    // No longer awaiting their decision: no case summary for the receiver.
    assert!(r.referred_case.is_none(), "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_decline_tells_the_referrer_why_and_what_else() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-p");
    let council = User::new(&server, "sw-1", Role::SocialWorker, "council-p");
    let case_id = open_case(&mut c, &hc, "Child D-1", "").await;
    let id = make(
        &mut c,
        &hc,
        MakeReferralRequest {
            service: ServiceType::ChildProtection as i32,
            ..referral(&case_id, &council)
        },
    )
    .await
    .unwrap()
    .referral_id;
    decline(
        &mut c,
        &council,
        decline_request(&id, "outside our district", ServiceType::Shelter),
    )
    .await
    .unwrap();
    let r = get(&mut c, &hc, &id).await.unwrap();
    assert_eq!(r.status(), ReferralStatus::Declined);
    assert_eq!(r.decline_reason, "outside our district");
    assert_eq!(r.suggested_service(), ServiceType::Shelter);
    assert!(r.declined_at.is_some());
    assert_eq!(r.service(), ServiceType::ChildProtection);
    // The council declined: nobody of theirs joined the team.
    let case = get_case(&mut c, &hc, &case_id).await;
    assert!(
        case.team.iter().all(|m| m.agency != council.agency),
        "{:?}",
        case.team
    );
    server.stop().await;
}

/// The code docs/security.md's referral table gives complaints officers.
fn documented_code_for_complaints_officers() -> Code {
    let guide = include_str!("../../docs/security.md");
    let section = guide
        .split("### Referrals:")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("the guide's section on referrals");
    let row = section
        .lines()
        .find(|l| l.starts_with('|') && l.contains("complaints officers"))
        .expect("a row of the referral table naming complaints officers");
    match (row.contains("PERMISSION_DENIED"), row.contains("NOT_FOUND")) {
        (true, false) => Code::PermissionDenied,
        (false, true) => Code::NotFound,
        _ => panic!("the row does not name one code: {row}"),
    }
}

/// Complaints officers stand outside every team and have no business with referrals:
/// they get what the security guide says, the same for a referral that exists and one
/// that does not, and never the case it is about.
#[tokio::test]
async fn a_complaints_officer_is_answered_as_the_security_guide_says_whatever_the_referral() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let hc = User::new(&server, "hc-1", Role::HelplineCounsellor, "helpline-a");
    let police = User::new(&server, "pol-1", Role::PoliceInvestigator, "police-b");
    let officer = User::new(
        &server,
        "co-1",
        Role::ComplaintsOfficer,
        "complaints-office",
    );
    let case_id = open_case(&mut c, &hc, "Child N-7", "").await;
    let id = refer(&mut c, &hc, &case_id, &police).await;
    let random = Uuid::new_v4().to_string();
    let documented = documented_code_for_complaints_officers();

    let existing = expect_err(
        get(&mut c, &officer, &id).await,
        documented,
        "GetReferral of a referral by a complaints officer",
    );
    let absent = expect_err(
        get(&mut c, &officer, &random).await,
        documented,
        "GetReferral of a random id by a complaints officer",
    );
    assert_eq!(shape(&existing, &id), shape(&absent, &random));
    assert!(!existing.message().contains(&case_id), "{existing:?}");
    for (what, referral_id) in [("a referral", &id), ("a random id", &random)] {
        let s = expect_err(
            accept(&mut c, &officer, referral_id).await,
            documented,
            &format!("AcceptReferral of {what} by a complaints officer"),
        );
        assert!(!s.message().contains(&case_id), "{s:?}");
    }
    server.stop().await;
}
