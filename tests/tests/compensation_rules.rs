//! CompensationService's rules on a whole all-in-one server: field-naming refusals of
//! claims and complaints, payments never above the award, awards above the claim only
//! when the decision says so, amounts that would overflow, exact totals per currency,
//! who files and who reads claims (and what the access history records of a list),
//! filing deadlines by a clock the test moves, complaints handled by complaints
//! officers alone and invisible to the case team, and retries and stale versions —
//! real gRPC, real tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::Duration;

use caseline_auth::Role;
use caseline_e2e::check::{
    contains, expect_err, fields_of, invalid_fields, last_global_access, names, refused, shape,
};
use caseline_e2e::requests::{add_member_request, opening};
use caseline_e2e::{Calendar, Clients, TestServer, User, authed, date_in, rid};
use caseline_eventlog::{Direction, RecordedEvent, StreamName, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::{
    AcknowledgeComplaintRequest, Claim, ClaimOutcome, ClaimScheme, ClaimStatus, Claimant,
    CloseClaimRequest, CloseComplaintRequest, CompensationTotals, ComplainantKind, Complaint,
    ComplaintChannel, ComplaintFinding, ComplaintStatus, CurrencyTotals, EscalateComplaintRequest,
    FileClaimRequest, GetClaimRequest, GetCompensationTotalsRequest, GetComplaintRequest,
    GetTimelineRequest, GetTimelineResponse, ListClaimDeadlinesRequest, ListClaimsRequest,
    ListClaimsResponse, ListComplaintsRequest, ListComplaintsResponse, LodgeAppealRequest,
    LodgeComplaintRequest, Money, RecordClaimDecisionRequest, RecordClaimSubmittedRequest,
    RecordComplaintFindingRequest, RecordPaymentRequest, RemedyCommandResponse, RiskLevel,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const REFERENCE: &str = "VC/2025/0042";
const COMPLAINT_ABOUT: &str = "Child interview unit, central police station";
const COMPLAINT_TEXT: &str = "She was interviewed three times without her guardian present.";
const REMEDY: &str = "A written apology and one recorded interview with the guardian present.";
const ESCALATION_BODY: &str = "Office of the Children's Ombudsman";
const ESCALATION_REASON: &str = "The guardian asked for an independent review of the finding.";

/// Everyone a test needs. The social worker opens the case and puts the victim
/// advocate, the prosecutor and the police investigator on its team; nobody else is
/// on it.
struct Cast {
    sw: User,
    advocate: User,
    prosecutor: User,
    police: User,
    /// A supervisor of the social worker's agency (reads claims through the agency).
    supervisor: User,
    /// A victim advocate of an agency not on the team.
    far_advocate: User,
    /// Stands outside every team.
    complaints: User,
}

impl Cast {
    fn new(server: &TestServer) -> Self {
        Self {
            sw: User::new(server, "sw-1", Role::SocialWorker, "council-a"),
            advocate: User::new(server, "va-1", Role::VictimAdvocate, "victim-support-b"),
            prosecutor: User::new(server, "pro-1", Role::Prosecutor, "prosecution-d"),
            police: User::new(server, "pol-1", Role::PoliceInvestigator, "police-c"),
            supervisor: User::new(server, "sup-1", Role::Supervisor, "council-a"),
            far_advocate: User::new(server, "va-9", Role::VictimAdvocate, "victim-support-z"),
            complaints: User::new(server, "co-1", Role::ComplaintsOfficer, "complaints-office"),
        }
    }
}

fn money(minor_units: i64, currency: &str) -> Option<Money> {
    Some(Money {
        minor_units,
        currency: currency.into(),
    })
}

async fn open_case(c: &mut Clients, by: &User, pseudonym: &str) -> String {
    c.cases
        .open_case(authed(opening(pseudonym, "", RiskLevel::Medium), &by.token))
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

/// A case the social worker opened, with `members` added by the social worker.
async fn case_with(c: &mut Clients, cast: &Cast, pseudonym: &str, members: &[&User]) -> String {
    let case_id = open_case(c, &cast.sw, pseudonym).await;
    for who in members {
        add_member(c, &cast.sw, &case_id, who).await;
    }
    case_id
}

/// A case the social worker opened, with the advocate, the prosecutor and the police
/// investigator on its team.
async fn team_case(c: &mut Clients, cast: &Cast, pseudonym: &str) -> String {
    case_with(
        c,
        cast,
        pseudonym,
        &[&cast.advocate, &cast.prosecutor, &cast.police],
    )
    .await
}

async fn events_of(server: &TestServer, category: &str, id: &str) -> Vec<RecordedEvent> {
    let stream =
        StreamName::for_id(category, Uuid::parse_str(id).expect("an id")).expect("a stream name");
    server
        .log
        .read_stream(&stream, Direction::Forwards, None, 1000)
        .await
        .expect("stream read")
}

/// The events of `claim-<id>`, oldest first.
async fn claim_events(server: &TestServer, claim_id: &str) -> Vec<RecordedEvent> {
    events_of(server, "claim", claim_id).await
}

/// The events of `complaint-<id>`, oldest first.
async fn complaint_events(server: &TestServer, complaint_id: &str) -> Vec<RecordedEvent> {
    events_of(server, "complaint", complaint_id).await
}

type Answer = Result<RemedyCommandResponse, Status>;

fn claim_request(case_id: &str, minor_units: i64, currency: &str) -> FileClaimRequest {
    FileClaimRequest {
        request_id: rid(),
        case_id: case_id.into(),
        scheme: ClaimScheme::StateVictimCompensation as i32,
        jurisdiction: "Kenya".into(),
        claimant: Claimant::Guardian as i32,
        amount_claimed: money(minor_units, currency),
        filing_deadline: date_in(60),
    }
}

async fn file(c: &mut Clients, by: &User, request: FileClaimRequest) -> Answer {
    c.compensation
        .file_claim(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

/// Files a claim as `by` and returns its id.
async fn new_claim(
    c: &mut Clients,
    by: &User,
    case_id: &str,
    minor_units: i64,
    currency: &str,
) -> String {
    let filed = file(c, by, claim_request(case_id, minor_units, currency))
        .await
        .unwrap();
    assert!(!filed.id.is_empty(), "{filed:?}");
    filed.id
}

fn submit_request(claim_id: &str, on: &str) -> RecordClaimSubmittedRequest {
    RecordClaimSubmittedRequest {
        request_id: rid(),
        claim_id: claim_id.into(),
        expected_version: None,
        submitted_on: on.into(),
        reference: REFERENCE.into(),
    }
}

async fn submit(c: &mut Clients, by: &User, request: RecordClaimSubmittedRequest) -> Answer {
    c.compensation
        .record_claim_submitted(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn decision_request(
    claim_id: &str,
    outcome: ClaimOutcome,
    amount: Option<Money>,
) -> RecordClaimDecisionRequest {
    RecordClaimDecisionRequest {
        request_id: rid(),
        claim_id: claim_id.into(),
        expected_version: None,
        outcome: outcome as i32,
        amount_awarded: amount,
        exceeds_claim: false,
        reasons: "The board accepted the medical evidence.".into(),
    }
}

async fn decide(c: &mut Clients, by: &User, request: RecordClaimDecisionRequest) -> Answer {
    c.compensation
        .record_claim_decision(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn payment_request(claim_id: &str, minor_units: i64, currency: &str) -> RecordPaymentRequest {
    RecordPaymentRequest {
        request_id: rid(),
        claim_id: claim_id.into(),
        expected_version: None,
        amount: money(minor_units, currency),
        paid_on: date_in(-1),
    }
}

async fn pay(c: &mut Clients, by: &User, request: RecordPaymentRequest) -> Answer {
    c.compensation
        .record_payment(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

/// A claim the advocate filed of `claimed` in `currency` and submitted, decided
/// `outcome` with `awarded` (`exceeds` if above the claim).
async fn decided_claim(
    c: &mut Clients,
    cast: &Cast,
    case_id: &str,
    (claimed, currency): (i64, &str),
    outcome: ClaimOutcome,
    awarded: i64,
) -> String {
    let claim = new_claim(c, &cast.advocate, case_id, claimed, currency).await;
    submit(c, &cast.advocate, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();
    decide(
        c,
        &cast.advocate,
        RecordClaimDecisionRequest {
            exceeds_claim: awarded > claimed,
            ..decision_request(&claim, outcome, money(awarded, currency))
        },
    )
    .await
    .unwrap();
    claim
}

async fn get_claim(c: &mut Clients, by: &User, claim_id: &str) -> Result<Claim, Status> {
    c.compensation
        .get_claim(authed(
            GetClaimRequest {
                claim_id: claim_id.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn list_claims(
    c: &mut Clients,
    by: &User,
    request: ListClaimsRequest,
) -> Result<ListClaimsResponse, Status> {
    c.compensation
        .list_claims(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn deadlines(
    c: &mut Clients,
    by: &User,
    within_days: u32,
) -> Result<ListClaimsResponse, Status> {
    c.compensation
        .list_claim_deadlines(authed(
            ListClaimDeadlinesRequest {
                within_days,
                ..Default::default()
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn totals(c: &mut Clients, by: &User, case_id: &str) -> Result<CompensationTotals, Status> {
    c.compensation
        .get_compensation_totals(authed(
            GetCompensationTotalsRequest {
                case_id: case_id.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn claim_ids(page: &ListClaimsResponse) -> Vec<String> {
    page.claims.iter().map(|c| c.claim_id.clone()).collect()
}

fn minor(m: &Option<Money>) -> i64 {
    m.as_ref().map_or(0, |m| m.minor_units)
}

fn lodge_request(case_id: &str) -> LodgeComplaintRequest {
    LodgeComplaintRequest {
        request_id: rid(),
        case_id: case_id.into(),
        about: COMPLAINT_ABOUT.into(),
        channel: ComplaintChannel::Letter as i32,
        complainant: ComplainantKind::Guardian as i32,
        description: COMPLAINT_TEXT.into(),
    }
}

async fn lodge(c: &mut Clients, by: &User, request: LodgeComplaintRequest) -> Answer {
    c.compensation
        .lodge_complaint(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn ack_request(complaint_id: &str) -> AcknowledgeComplaintRequest {
    AcknowledgeComplaintRequest {
        request_id: rid(),
        complaint_id: complaint_id.into(),
        expected_version: None,
    }
}

async fn acknowledge(c: &mut Clients, by: &User, complaint_id: &str) -> Answer {
    c.compensation
        .acknowledge_complaint(authed(ack_request(complaint_id), &by.token))
        .await
        .map(|r| r.into_inner())
}

fn finding_request(
    complaint_id: &str,
    finding: ComplaintFinding,
    remedy: &str,
) -> RecordComplaintFindingRequest {
    RecordComplaintFindingRequest {
        request_id: rid(),
        complaint_id: complaint_id.into(),
        expected_version: None,
        finding: finding as i32,
        remedy: remedy.into(),
    }
}

async fn find(c: &mut Clients, by: &User, request: RecordComplaintFindingRequest) -> Answer {
    c.compensation
        .record_complaint_finding(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn escalation_request(complaint_id: &str, body: &str) -> EscalateComplaintRequest {
    EscalateComplaintRequest {
        request_id: rid(),
        complaint_id: complaint_id.into(),
        expected_version: None,
        body: body.into(),
        reason: ESCALATION_REASON.into(),
    }
}

async fn escalate(c: &mut Clients, by: &User, request: EscalateComplaintRequest) -> Answer {
    c.compensation
        .escalate_complaint(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

fn close_complaint_request(complaint_id: &str) -> CloseComplaintRequest {
    CloseComplaintRequest {
        request_id: rid(),
        complaint_id: complaint_id.into(),
        expected_version: None,
        note: "The guardian accepted the outcome.".into(),
    }
}

async fn close_complaint(c: &mut Clients, by: &User, complaint_id: &str) -> Answer {
    c.compensation
        .close_complaint(authed(close_complaint_request(complaint_id), &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn get_complaint(
    c: &mut Clients,
    by: &User,
    complaint_id: &str,
) -> Result<Complaint, Status> {
    c.compensation
        .get_complaint(authed(
            GetComplaintRequest {
                complaint_id: complaint_id.into(),
            },
            &by.token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn list_complaints(
    c: &mut Clients,
    by: &User,
    request: ListComplaintsRequest,
) -> Result<ListComplaintsResponse, Status> {
    c.compensation
        .list_complaints(authed(request, &by.token))
        .await
        .map(|r| r.into_inner())
}

async fn timeline(c: &mut Clients, by: &User, case_id: &str) -> GetTimelineResponse {
    c.cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id: case_id.into(),
                page_size: 1000,
                page_token: String::new(),
            },
            &by.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Asserts the newest `access-global` record is `user`'s call of `rpc`, refused at the
/// role gate.
#[track_caller]
fn assert_role_gate(
    (actor, record): (String, caseline_proto::v1::events::AccessRecorded),
    user: &User,
    rpc: &str,
) {
    assert_eq!(actor, user.sub, "{rpc}");
    assert_eq!(record.rpc, rpc, "{record:?}");
    assert_eq!(record.reason, "role_not_permitted", "{record:?}");
    assert_eq!(
        record.status_code,
        Code::PermissionDenied as i32,
        "{record:?}"
    );
}

// ---------------------------------------------------------------------------------------
// INVALID_ARGUMENT
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_claim_requests_name_the_field_and_store_nothing() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child V-1").await;
    let va = cast.advocate.clone();

    // FileClaim.
    let valid = || claim_request(&case_id, 250_000, "EUR");
    for (what, request, field) in [
        (
            "currency EURO",
            FileClaimRequest {
                amount_claimed: money(250_000, "EURO"),
                ..valid()
            },
            "amount_claimed.currency",
        ),
        (
            "currency in lower case",
            FileClaimRequest {
                amount_claimed: money(250_000, "eur"),
                ..valid()
            },
            "amount_claimed.currency",
        ),
        (
            "the testing code XXX",
            FileClaimRequest {
                amount_claimed: money(250_000, "XXX"),
                ..valid()
            },
            "amount_claimed.currency",
        ),
        (
            "no currency",
            FileClaimRequest {
                amount_claimed: money(250_000, ""),
                ..valid()
            },
            "amount_claimed.currency",
        ),
        (
            "negative minor units",
            FileClaimRequest {
                amount_claimed: money(-1, "EUR"),
                ..valid()
            },
            "amount_claimed.minor_units",
        ),
        (
            "i64::MIN minor units",
            FileClaimRequest {
                amount_claimed: money(i64::MIN, "KES"),
                ..valid()
            },
            "amount_claimed.minor_units",
        ),
        (
            "zero minor units",
            FileClaimRequest {
                amount_claimed: money(0, "EUR"),
                ..valid()
            },
            "amount_claimed.minor_units",
        ),
        (
            "no amount",
            FileClaimRequest {
                amount_claimed: None,
                ..valid()
            },
            "amount_claimed",
        ),
        (
            "unknown scheme",
            FileClaimRequest {
                scheme: 99,
                ..valid()
            },
            "scheme",
        ),
        (
            "no scheme",
            FileClaimRequest {
                scheme: ClaimScheme::Unspecified as i32,
                ..valid()
            },
            "scheme",
        ),
        (
            "unknown claimant",
            FileClaimRequest {
                claimant: 7,
                ..valid()
            },
            "claimant",
        ),
        (
            "no claimant",
            FileClaimRequest {
                claimant: Claimant::Unspecified as i32,
                ..valid()
            },
            "claimant",
        ),
        (
            "a deadline that does not exist",
            FileClaimRequest {
                filing_deadline: "2026-02-30".into(),
                ..valid()
            },
            "filing_deadline",
        ),
        (
            "a deadline in another format",
            FileClaimRequest {
                filing_deadline: "30/06/2030".into(),
                ..valid()
            },
            "filing_deadline",
        ),
        (
            "no deadline",
            FileClaimRequest {
                filing_deadline: String::new(),
                ..valid()
            },
            "filing_deadline",
        ),
        (
            "no jurisdiction",
            FileClaimRequest {
                jurisdiction: String::new(),
                ..valid()
            },
            "jurisdiction",
        ),
        (
            "a blank jurisdiction",
            FileClaimRequest {
                jurisdiction: " \t ".into(),
                ..valid()
            },
            "jurisdiction",
        ),
        (
            "a bad case_id",
            FileClaimRequest {
                case_id: "case-1".into(),
                ..valid()
            },
            "case_id",
        ),
        (
            "a bad request_id",
            FileClaimRequest {
                request_id: "again".into(),
                ..valid()
            },
            "request_id",
        ),
    ] {
        names(
            file(&mut c, &va, request).await,
            &[field],
            &format!("FileClaim: {what}"),
        );
    }
    // Every fault at once, each named.
    let all = invalid_fields(
        file(
            &mut c,
            &va,
            FileClaimRequest {
                request_id: String::new(),
                case_id: case_id.clone(),
                ..FileClaimRequest::default()
            },
        )
        .await,
        "an empty FileClaim",
    );
    for field in [
        "request_id",
        "scheme",
        "jurisdiction",
        "claimant",
        "amount_claimed",
        "filing_deadline",
    ] {
        assert!(all.iter().any(|f| f == field), "{field} in {all:?}");
    }
    let listed = list_claims(
        &mut c,
        &va,
        ListClaimsRequest {
            case_id: case_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        listed.claims.is_empty(),
        "a refused FileClaim stored {listed:?}"
    );

    // Decisions, on a submitted claim of 100.00 EUR.
    let claim = new_claim(&mut c, &va, &case_id, 10_000, "EUR").await;
    submit(&mut c, &va, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();
    names(
        submit(&mut c, &va, submit_request(&claim, &date_in(2))).await,
        &["submitted_on"],
        "RecordClaimSubmitted in the future",
    );
    let stored = claim_events(&server, &claim).await.len();
    let decision = |outcome, amount| decision_request(&claim, outcome, amount);
    for (what, request, field) in [
        (
            "PARTLY_AWARDED the whole claim",
            decision(ClaimOutcome::PartlyAwarded, money(10_000, "EUR")),
            "amount_awarded.minor_units",
        ),
        (
            "PARTLY_AWARDED more than claimed",
            RecordClaimDecisionRequest {
                exceeds_claim: true,
                ..decision(ClaimOutcome::PartlyAwarded, money(10_001, "EUR"))
            },
            "amount_awarded.minor_units",
        ),
        (
            "AWARDED above the claim without exceeds_claim",
            decision(ClaimOutcome::Awarded, money(10_001, "EUR")),
            "amount_awarded.minor_units",
        ),
        (
            "AWARDED less than claimed",
            decision(ClaimOutcome::Awarded, money(9_999, "EUR")),
            "amount_awarded.minor_units",
        ),
        (
            "REJECTED with an amount",
            decision(ClaimOutcome::Rejected, money(500, "EUR")),
            "amount_awarded.minor_units",
        ),
        (
            "REJECTED with a negative amount",
            decision(ClaimOutcome::Rejected, money(-500, "EUR")),
            "amount_awarded.minor_units",
        ),
        (
            "AWARDED without amount",
            decision(ClaimOutcome::Awarded, None),
            "amount_awarded",
        ),
        (
            "PARTLY_AWARDED nothing",
            decision(ClaimOutcome::PartlyAwarded, money(0, "EUR")),
            "amount_awarded.minor_units",
        ),
        (
            "AWARDED in an unknown currency",
            decision(ClaimOutcome::Awarded, money(10_000, "EURO")),
            "amount_awarded.currency",
        ),
        (
            "AWARDED in another currency",
            decision(ClaimOutcome::Awarded, money(10_000, "KES")),
            "amount_awarded.currency",
        ),
        (
            "no outcome",
            decision(ClaimOutcome::Unspecified, money(10_000, "EUR")),
            "outcome",
        ),
        (
            "an unknown outcome",
            RecordClaimDecisionRequest {
                outcome: 42,
                ..decision(ClaimOutcome::Awarded, money(10_000, "EUR"))
            },
            "outcome",
        ),
    ] {
        names(
            decide(&mut c, &va, request).await,
            &[field],
            &format!("RecordClaimDecision: {what}"),
        );
    }
    assert_eq!(
        claim_events(&server, &claim).await.len(),
        stored,
        "a refused decision stored something"
    );

    // Payments, on the claim awarded in full.
    decide(
        &mut c,
        &va,
        decision(ClaimOutcome::Awarded, money(10_000, "EUR")),
    )
    .await
    .unwrap();
    let stored = claim_events(&server, &claim).await.len();
    for (what, request, field) in [
        (
            "in another currency than the claim",
            payment_request(&claim, 5_000, "KES"),
            "amount.currency",
        ),
        (
            "in an unknown currency",
            payment_request(&claim, 5_000, "EURO"),
            "amount.currency",
        ),
        (
            "of nothing",
            payment_request(&claim, 0, "EUR"),
            "amount.minor_units",
        ),
        (
            "negative",
            payment_request(&claim, -5_000, "EUR"),
            "amount.minor_units",
        ),
        (
            "without amount",
            RecordPaymentRequest {
                amount: None,
                ..payment_request(&claim, 5_000, "EUR")
            },
            "amount",
        ),
        (
            "paid in the future",
            RecordPaymentRequest {
                paid_on: date_in(3),
                ..payment_request(&claim, 5_000, "EUR")
            },
            "paid_on",
        ),
        (
            "on a date that does not exist",
            RecordPaymentRequest {
                paid_on: "2025-13-01".into(),
                ..payment_request(&claim, 5_000, "EUR")
            },
            "paid_on",
        ),
        (
            "of a claim_id that is no uuid",
            payment_request("claim-1", 5_000, "EUR"),
            "claim_id",
        ),
    ] {
        names(
            pay(&mut c, &va, request).await,
            &[field],
            &format!("RecordPayment {what}"),
        );
    }
    assert_eq!(
        claim_events(&server, &claim).await.len(),
        stored,
        "a refused payment stored something"
    );

    // Lists.
    names(
        deadlines(&mut c, &va, 3651).await,
        &["within_days"],
        "ListClaimDeadlines beyond ten years",
    );
    names(
        list_claims(
            &mut c,
            &va,
            ListClaimsRequest {
                statuses: vec![77],
                ..Default::default()
            },
        )
        .await,
        &["statuses"],
        "ListClaims with an unknown status",
    );
    names(
        totals(&mut c, &va, "case-1").await,
        &["case_id"],
        "GetCompensationTotals with a bad case_id",
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_complaint_requests_name_the_field_and_store_nothing() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child V-2").await;
    let co = cast.complaints.clone();

    let valid = || lodge_request(&case_id);
    for (what, request, field) in [
        (
            "no about",
            LodgeComplaintRequest {
                about: String::new(),
                ..valid()
            },
            "about",
        ),
        (
            "a blank about",
            LodgeComplaintRequest {
                about: "  \n".into(),
                ..valid()
            },
            "about",
        ),
        (
            "no description",
            LodgeComplaintRequest {
                description: String::new(),
                ..valid()
            },
            "description",
        ),
        (
            "a blank description",
            LodgeComplaintRequest {
                description: " \t ".into(),
                ..valid()
            },
            "description",
        ),
        (
            "unknown channel",
            LodgeComplaintRequest {
                channel: 99,
                ..valid()
            },
            "channel",
        ),
        (
            "no channel",
            LodgeComplaintRequest {
                channel: ComplaintChannel::Unspecified as i32,
                ..valid()
            },
            "channel",
        ),
        (
            "unknown complainant",
            LodgeComplaintRequest {
                complainant: 12,
                ..valid()
            },
            "complainant",
        ),
        (
            "no complainant",
            LodgeComplaintRequest {
                complainant: ComplainantKind::Unspecified as i32,
                ..valid()
            },
            "complainant",
        ),
        (
            "a bad case_id",
            LodgeComplaintRequest {
                case_id: "case-1".into(),
                ..valid()
            },
            "case_id",
        ),
    ] {
        names(
            lodge(&mut c, &co, request).await,
            &[field],
            &format!("LodgeComplaint: {what}"),
        );
    }
    let listed = list_complaints(&mut c, &co, ListComplaintsRequest::default())
        .await
        .unwrap();
    assert!(
        listed.complaints.is_empty(),
        "a refused LodgeComplaint stored {listed:?}"
    );

    let complaint = lodge(&mut c, &co, valid()).await.unwrap().id;
    let stored = complaint_events(&server, &complaint).await.len();
    for (what, request, field) in [
        (
            "UPHELD without remedy",
            finding_request(&complaint, ComplaintFinding::Upheld, ""),
            "remedy",
        ),
        (
            "UPHELD with a blank remedy",
            finding_request(&complaint, ComplaintFinding::Upheld, "  "),
            "remedy",
        ),
        (
            "PARTLY_UPHELD without remedy",
            finding_request(&complaint, ComplaintFinding::PartlyUpheld, ""),
            "remedy",
        ),
        (
            "no finding",
            finding_request(&complaint, ComplaintFinding::Unspecified, REMEDY),
            "finding",
        ),
        (
            "an unknown finding",
            RecordComplaintFindingRequest {
                finding: 8,
                ..finding_request(&complaint, ComplaintFinding::Upheld, REMEDY)
            },
            "finding",
        ),
    ] {
        names(
            find(&mut c, &co, request).await,
            &[field],
            &format!("RecordComplaintFinding: {what}"),
        );
    }
    names(
        escalate(&mut c, &co, escalation_request(&complaint, " ")).await,
        &["body"],
        "EscalateComplaint without body",
    );
    names(
        acknowledge(&mut c, &co, "complaint-1").await,
        &["complaint_id"],
        "AcknowledgeComplaint with a complaint_id that is no uuid",
    );
    names(
        get_complaint(&mut c, &co, "").await,
        &["complaint_id"],
        "GetComplaint without complaint_id",
    );
    names(
        list_complaints(
            &mut c,
            &co,
            ListComplaintsRequest {
                statuses: vec![31],
                ..Default::default()
            },
        )
        .await,
        &["statuses"],
        "ListComplaints with an unknown status",
    );
    assert_eq!(
        complaint_events(&server, &complaint).await.len(),
        stored,
        "a refused complaint command stored something"
    );
    // Not upheld: no remedy needed.
    find(
        &mut c,
        &co,
        finding_request(&complaint, ComplaintFinding::NotUpheld, ""),
    )
    .await
    .unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Awards and payments
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn payments_follow_a_decision_and_never_exceed_the_award() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child P-1").await;
    let va = cast.advocate.clone();
    let claim = new_claim(&mut c, &va, &case_id, 100_000, "EUR").await;

    // Before a decision: no payment, filed or submitted.
    let s = expect_err(
        pay(&mut c, &va, payment_request(&claim, 1_000, "EUR")).await,
        Code::FailedPrecondition,
        "a payment of a filed claim",
    );
    assert!(s.message().contains("decision"), "{s:?}");
    submit(&mut c, &va, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();
    expect_err(
        pay(&mut c, &va, payment_request(&claim, 1_000, "EUR")).await,
        Code::FailedPrecondition,
        "a payment of a submitted claim",
    );
    let events = claim_events(&server, &claim).await;
    assert_eq!(events.len(), 2);
    // The scheme's reference reads back, and is sealed in the log.
    let p = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(p.status(), ClaimStatus::Submitted);
    assert_eq!(p.reference, REFERENCE);
    for e in &events {
        assert!(!contains(&e.data, REFERENCE.as_bytes()), "{e:?}");
    }

    decide(
        &mut c,
        &va,
        decision_request(&claim, ClaimOutcome::PartlyAwarded, money(60_000, "EUR")),
    )
    .await
    .unwrap();
    pay(&mut c, &va, payment_request(&claim, 25_000, "EUR"))
        .await
        .unwrap();
    let before = get_claim(&mut c, &va, &claim).await.unwrap();
    let stored = claim_events(&server, &claim).await.len();

    // One minor unit above what is outstanding.
    let s = expect_err(
        pay(&mut c, &va, payment_request(&claim, 35_001, "EUR")).await,
        Code::FailedPrecondition,
        "a payment above the outstanding award",
    );
    assert!(s.message().contains("amount"), "{s:?}");
    let s = expect_err(
        pay(&mut c, &va, payment_request(&claim, 60_000, "EUR")).await,
        Code::FailedPrecondition,
        "a payment of the whole award after a partial payment",
    );
    assert!(s.message().contains("amount"), "{s:?}");
    assert_eq!(claim_events(&server, &claim).await.len(), stored);
    let after = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(after, before, "a refused payment changed the claim");
    assert_eq!(minor(&after.amount_awarded), 60_000);
    assert_eq!(minor(&after.amount_paid), 25_000);
    assert_eq!(minor(&after.amount_outstanding), 35_000);

    // Exactly what is outstanding; then nothing more.
    let paid = pay(&mut c, &va, payment_request(&claim, 35_000, "EUR"))
        .await
        .unwrap();
    expect_err(
        pay(&mut c, &va, payment_request(&claim, 1, "EUR")).await,
        Code::FailedPrecondition,
        "a payment of a claim paid in full",
    );
    let p = get_claim(&mut c, &cast.sw, &claim).await.unwrap();
    assert_eq!(p.version, paid.version);
    assert_eq!(p.status(), ClaimStatus::Decided);
    assert_eq!(p.outcome(), ClaimOutcome::PartlyAwarded);
    assert_eq!(p.payments.len(), 2);
    assert_eq!(
        p.payments
            .iter()
            .map(|x| minor(&x.amount))
            .collect::<Vec<_>>(),
        [25_000, 35_000]
    );
    assert_eq!(p.amount_paid, money(60_000, "EUR"));
    assert_eq!(p.amount_outstanding, money(0, "EUR"));

    // A rejection awards nothing, so nothing is paid.
    let rejected = new_claim(&mut c, &va, &case_id, 5_000, "EUR").await;
    submit(&mut c, &va, submit_request(&rejected, &date_in(-1)))
        .await
        .unwrap();
    decide(
        &mut c,
        &va,
        decision_request(&rejected, ClaimOutcome::Rejected, None),
    )
    .await
    .unwrap();
    let s = expect_err(
        pay(&mut c, &va, payment_request(&rejected, 1, "EUR")).await,
        Code::FailedPrecondition,
        "a payment of a rejected claim",
    );
    assert!(s.message().contains("amount"), "{s:?}");
    let r = get_claim(&mut c, &va, &rejected).await.unwrap();
    assert_eq!(r.outcome(), ClaimOutcome::Rejected);
    assert_eq!(r.amount_awarded, money(0, "EUR"));
    assert!(r.payments.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn an_award_above_the_claim_is_accepted_when_the_decision_says_so() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child P-2").await;
    let va = cast.advocate.clone();
    let claim = new_claim(&mut c, &va, &case_id, 100_000, "KES").await;
    submit(&mut c, &va, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();

    names(
        decide(
            &mut c,
            &va,
            decision_request(&claim, ClaimOutcome::Awarded, money(150_000, "KES")),
        )
        .await,
        &["amount_awarded.minor_units"],
        "AWARDED above the claim without exceeds_claim",
    );
    let decided = decide(
        &mut c,
        &va,
        RecordClaimDecisionRequest {
            exceeds_claim: true,
            ..decision_request(&claim, ClaimOutcome::Awarded, money(150_000, "KES"))
        },
    )
    .await
    .unwrap();
    let p = get_claim(&mut c, &cast.prosecutor, &claim).await.unwrap();
    assert_eq!(p.version, decided.version);
    assert_eq!(p.status(), ClaimStatus::Decided);
    assert_eq!(p.outcome(), ClaimOutcome::Awarded);
    assert_eq!(p.amount_claimed, money(100_000, "KES"));
    assert_eq!(p.amount_awarded, money(150_000, "KES"));
    assert_eq!(p.amount_outstanding, money(150_000, "KES"));

    // The whole award is paid, above the claim; then nothing more.
    pay(&mut c, &va, payment_request(&claim, 150_000, "KES"))
        .await
        .unwrap();
    expect_err(
        pay(&mut c, &va, payment_request(&claim, 1, "KES")).await,
        Code::FailedPrecondition,
        "a payment beyond an award above the claim",
    );
    let t = totals(&mut c, &va, &case_id).await.unwrap();
    assert_eq!(
        t.totals,
        [CurrencyTotals {
            currency: "KES".into(),
            claimed: 100_000,
            awarded: 150_000,
            paid: 150_000,
            outstanding: 0,
        }]
    );
    server.stop().await;
}

#[tokio::test]
async fn amounts_of_i64_max_are_refused_rather_than_overflowed() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child O-1").await;
    let va = cast.advocate.clone();
    let claim = new_claim(&mut c, &va, &case_id, 100_000, "EUR").await;
    submit(&mut c, &va, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();

    // An award of i64::MAX on a claim of 1000.00, without exceeds_claim.
    let s = refused(
        decide(
            &mut c,
            &va,
            decision_request(&claim, ClaimOutcome::Awarded, money(i64::MAX, "EUR")),
        )
        .await,
        "AWARDED i64::MAX without exceeds_claim",
    );
    assert_eq!(
        fields_of(&s, "AWARDED i64::MAX"),
        ["amount_awarded.minor_units"]
    );
    refused(
        decide(
            &mut c,
            &va,
            decision_request(&claim, ClaimOutcome::PartlyAwarded, money(i64::MAX, "EUR")),
        )
        .await,
        "PARTLY_AWARDED i64::MAX",
    );
    decide(
        &mut c,
        &va,
        decision_request(&claim, ClaimOutcome::Awarded, money(100_000, "EUR")),
    )
    .await
    .unwrap();

    // A payment of i64::MAX: above the award.
    let s = refused(
        pay(&mut c, &va, payment_request(&claim, i64::MAX, "EUR")).await,
        "a payment of i64::MAX",
    );
    match s.code() {
        Code::InvalidArgument => {
            assert_eq!(fields_of(&s, "payment of i64::MAX"), ["amount.minor_units"]);
        }
        code => {
            assert_eq!(code, Code::FailedPrecondition, "{s:?}");
            assert!(s.message().contains("amount"), "{s:?}");
        }
    }
    // After a payment, i64::MAX more would overflow the sum: refused, not wrapped.
    pay(&mut c, &va, payment_request(&claim, 1, "EUR"))
        .await
        .unwrap();
    let stored = claim_events(&server, &claim).await.len();
    let s = refused(
        pay(&mut c, &va, payment_request(&claim, i64::MAX, "EUR")).await,
        "a payment of i64::MAX after one of 1",
    );
    assert!(
        matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition),
        "{s:?}"
    );
    if s.code() == Code::InvalidArgument {
        assert_eq!(fields_of(&s, "overflowing payment"), ["amount.minor_units"]);
    }
    assert_eq!(claim_events(&server, &claim).await.len(), stored);

    let p = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(p.amount_paid, money(1, "EUR"));
    assert_eq!(p.amount_outstanding, money(99_999, "EUR"));
    let t = totals(&mut c, &va, &case_id).await.unwrap();
    assert_eq!(
        t.totals,
        [CurrencyTotals {
            currency: "EUR".into(),
            claimed: 100_000,
            awarded: 100_000,
            paid: 1,
            outstanding: 99_999,
        }]
    );
    server.stop().await;
}

/// Amounts of i64::MAX minor units are refused where they enter — a claim, an award
/// above the claim — so that no case's totals can become uncountable.
#[tokio::test]
async fn a_claim_or_award_of_i64_max_minor_units_is_refused() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child O-2").await;
    let va = cast.advocate.clone();

    let huge = file(&mut c, &va, claim_request(&case_id, i64::MAX, "EUR")).await;
    let small = file(&mut c, &va, claim_request(&case_id, 1, "EUR")).await;
    let counted = totals(&mut c, &va, &case_id).await;
    for (what, result) in [("FileClaim i64::MAX", &huge), ("FileClaim 1", &small)] {
        if let Err(s) = result {
            assert_ne!(s.code(), Code::Internal, "{what}: {s:?}");
        }
    }
    if let Err(s) = &counted {
        assert_ne!(s.code(), Code::Internal, "totals: {s:?}");
    }
    assert!(
        huge.as_ref()
            .is_err_and(|s| s.code() == Code::InvalidArgument),
        "a claim of i64::MAX minor units was not refused: {huge:?}; \
         then a claim of 1: {small:?}; then the totals: {counted:?}"
    );
    assert_eq!(
        fields_of(huge.as_ref().unwrap_err(), "FileClaim i64::MAX"),
        ["amount_claimed.minor_units"]
    );
    assert!(counted.is_ok(), "{counted:?}");

    // An award of i64::MAX, even one the decision says exceeds the claim.
    let claim = small.unwrap().id;
    submit(&mut c, &va, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();
    let award = decide(
        &mut c,
        &va,
        RecordClaimDecisionRequest {
            exceeds_claim: true,
            ..decision_request(&claim, ClaimOutcome::Awarded, money(i64::MAX, "EUR"))
        },
    )
    .await;
    let s = refused(award, "AWARDED i64::MAX with exceeds_claim");
    assert_eq!(
        fields_of(&s, "AWARDED i64::MAX with exceeds_claim"),
        ["amount_awarded.minor_units"]
    );
    let t = totals(&mut c, &va, &case_id).await.unwrap();
    assert_eq!(
        t.totals,
        [CurrencyTotals {
            currency: "EUR".into(),
            claimed: 1,
            awarded: 0,
            paid: 0,
            outstanding: 0,
        }]
    );
    server.stop().await;
}

/// Payments racing each other: each is decided on the state it is appended to, so
/// together they never exceed the award either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_never_exceed_the_award() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child P-3").await;
    let claim = decided_claim(
        &mut c,
        &cast,
        &case_id,
        (100_000, "EUR"),
        ClaimOutcome::Awarded,
        100_000,
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let mut c = c.clone();
        let va = cast.advocate.clone();
        let claim = claim.clone();
        tasks.spawn(async move { pay(&mut c, &va, payment_request(&claim, 30_000, "EUR")).await });
    }
    let results = tasks.join_all().await;
    let paid = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(paid, 3, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        let s = r.as_ref().unwrap_err();
        assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    }
    let p = get_claim(&mut c, &cast.advocate, &claim).await.unwrap();
    assert_eq!(p.payments.len(), 3);
    assert_eq!(p.amount_paid, money(90_000, "EUR"));
    assert_eq!(p.amount_outstanding, money(10_000, "EUR"));
    server.stop().await;
}

/// An appeal reopens the decision: payments go on, the new award never falls below
/// what was paid, one appeal only; a closed claim takes nothing more.
#[tokio::test]
async fn a_decision_on_appeal_never_awards_less_than_was_paid() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child P-4").await;
    let va = cast.advocate.clone();
    let claim = decided_claim(
        &mut c,
        &cast,
        &case_id,
        (100_000, "EUR"),
        ClaimOutcome::PartlyAwarded,
        60_000,
    )
    .await;
    pay(&mut c, &va, payment_request(&claim, 40_000, "EUR"))
        .await
        .unwrap();
    let appeal = |grounds: &str| LodgeAppealRequest {
        request_id: rid(),
        claim_id: claim.clone(),
        expected_version: None,
        lodged_on: date_in(-1),
        grounds: grounds.into(),
    };
    names(
        c.compensation
            .lodge_appeal(authed(appeal(" "), &va.token))
            .await,
        &["grounds"],
        "LodgeAppeal without grounds",
    );
    c.compensation
        .lodge_appeal(authed(
            appeal("The board ignored the therapy costs."),
            &va.token,
        ))
        .await
        .unwrap();
    let p = get_claim(&mut c, &cast.sw, &claim).await.unwrap();
    assert_eq!(p.status(), ClaimStatus::Appealed);
    assert!(p.appealed);
    assert_eq!(p.appeal_grounds, "The board ignored the therapy costs.");
    // Payments of the standing award go on during the appeal.
    pay(&mut c, &va, payment_request(&claim, 10_000, "EUR"))
        .await
        .unwrap();

    let s = expect_err(
        decide(
            &mut c,
            &va,
            decision_request(&claim, ClaimOutcome::PartlyAwarded, money(49_999, "EUR")),
        )
        .await,
        Code::FailedPrecondition,
        "an award on appeal below what was paid",
    );
    assert!(s.message().contains("amount_awarded"), "{s:?}");
    expect_err(
        decide(
            &mut c,
            &va,
            decision_request(&claim, ClaimOutcome::Rejected, None),
        )
        .await,
        Code::FailedPrecondition,
        "a rejection on appeal after payments",
    );
    decide(
        &mut c,
        &va,
        decision_request(&claim, ClaimOutcome::Awarded, money(100_000, "EUR")),
    )
    .await
    .unwrap();
    let p = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(p.status(), ClaimStatus::Decided);
    assert_eq!(p.outcome(), ClaimOutcome::Awarded);
    assert_eq!(p.amount_awarded, money(100_000, "EUR"));
    assert_eq!(p.amount_paid, money(50_000, "EUR"));
    assert_eq!(p.amount_outstanding, money(50_000, "EUR"));
    expect_err(
        c.compensation
            .lodge_appeal(authed(appeal("A second appeal."), &va.token))
            .await,
        Code::FailedPrecondition,
        "a second appeal",
    );

    // Closed: nothing more.
    c.compensation
        .close_claim(authed(
            CloseClaimRequest {
                request_id: rid(),
                claim_id: claim.clone(),
                expected_version: None,
                note: "Paid in part; the family chose not to pursue the rest.".into(),
            },
            &va.token,
        ))
        .await
        .unwrap();
    let stored = claim_events(&server, &claim).await.len();
    expect_err(
        pay(&mut c, &va, payment_request(&claim, 1_000, "EUR")).await,
        Code::FailedPrecondition,
        "a payment of a closed claim",
    );
    expect_err(
        submit(&mut c, &va, submit_request(&claim, &date_in(-1))).await,
        Code::FailedPrecondition,
        "submitting a closed claim",
    );
    assert_eq!(claim_events(&server, &claim).await.len(), stored);
    let p = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(p.status(), ClaimStatus::Closed);
    assert_eq!(p.amount_outstanding, money(50_000, "EUR"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Totals
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn totals_are_exact_per_currency() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child T-1").await;
    let other_case = team_case(&mut c, &cast, "Child T-2").await;
    let va = cast.advocate.clone();

    // Nothing yet: no currency at all.
    let t = totals(&mut c, &va, &case_id).await.unwrap();
    assert_eq!(t.case_id, case_id);
    assert!(t.totals.is_empty(), "{t:?}");

    // EUR: 1234.57 claimed, partly awarded 987.65, paid 123.45 + 0.01.
    let eur1 = decided_claim(
        &mut c,
        &cast,
        &case_id,
        (123_457, "EUR"),
        ClaimOutcome::PartlyAwarded,
        98_765,
    )
    .await;
    pay(&mut c, &va, payment_request(&eur1, 12_345, "EUR"))
        .await
        .unwrap();
    pay(&mut c, &va, payment_request(&eur1, 1, "EUR"))
        .await
        .unwrap();
    // EUR: 999.99 claimed, awarded 1000.00 (above the claim), paid in full.
    let eur2 = decided_claim(
        &mut c,
        &cast,
        &case_id,
        (99_999, "EUR"),
        ClaimOutcome::Awarded,
        100_000,
    )
    .await;
    pay(&mut c, &va, payment_request(&eur2, 100_000, "EUR"))
        .await
        .unwrap();
    // KES: 5,000,000.33 claimed, awarded in full, paid 1,250,000.00.
    let kes = decided_claim(
        &mut c,
        &cast,
        &case_id,
        (500_000_033, "KES"),
        ClaimOutcome::Awarded,
        500_000_033,
    )
    .await;
    pay(&mut c, &va, payment_request(&kes, 125_000_000, "KES"))
        .await
        .unwrap();
    // Another case's claim is not counted.
    decided_claim(
        &mut c,
        &cast,
        &other_case,
        (7_777, "EUR"),
        ClaimOutcome::Awarded,
        7_777,
    )
    .await;

    let expected = vec![
        CurrencyTotals {
            currency: "EUR".into(),
            claimed: 123_457 + 99_999,
            awarded: 98_765 + 100_000,
            paid: 12_345 + 1 + 100_000,
            outstanding: 98_765 - 12_346,
        },
        CurrencyTotals {
            currency: "KES".into(),
            claimed: 500_000_033,
            awarded: 500_000_033,
            paid: 125_000_000,
            outstanding: 375_000_033,
        },
    ];
    for who in [&cast.advocate, &cast.sw, &cast.prosecutor, &cast.supervisor] {
        let t = totals(&mut c, who, &case_id).await.unwrap();
        assert_eq!(t.case_id, case_id, "{}", who.sub);
        assert_eq!(t.totals, expected, "totals as {}", who.sub);
    }
    // Each claim agrees with the totals.
    let p = get_claim(&mut c, &va, &eur1).await.unwrap();
    assert_eq!(p.amount_paid, money(12_346, "EUR"));
    assert_eq!(p.amount_outstanding, money(86_419, "EUR"));
    let p = get_claim(&mut c, &va, &kes).await.unwrap();
    assert_eq!(p.amount_outstanding, money(375_000_033, "KES"));

    // The police and a stranger see no totals.
    expect_err(
        totals(&mut c, &cast.police, &case_id).await,
        Code::PermissionDenied,
        "GetCompensationTotals by the police",
    );
    let s = expect_err(
        totals(&mut c, &cast.far_advocate, &case_id).await,
        Code::NotFound,
        "GetCompensationTotals by an advocate not on the team",
    );
    let random = Uuid::new_v4().to_string();
    let absent = expect_err(
        totals(&mut c, &cast.far_advocate, &random).await,
        Code::NotFound,
        "GetCompensationTotals of a case that does not exist",
    );
    assert_eq!(shape(&s, &case_id), shape(&absent, &random));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Who files and who reads
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn advocates_on_the_team_file_claims_and_the_table_says_who_reads_them() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child A-1").await;
    let claim = new_claim(&mut c, &cast.advocate, &case_id, 40_000, "EUR").await;
    let file_rpc = "/caseline.v1.CompensationService/FileClaim";
    let get_rpc = "/caseline.v1.CompensationService/GetClaim";

    // The police investigator on the team: the role gate, for filing and reading.
    let s = expect_err(
        file(&mut c, &cast.police, claim_request(&case_id, 1_000, "EUR")).await,
        Code::PermissionDenied,
        "FileClaim by the police investigator",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");
    assert_role_gate(last_global_access(&server).await, &cast.police, file_rpc);
    let s = expect_err(
        get_claim(&mut c, &cast.police, &claim).await,
        Code::PermissionDenied,
        "GetClaim by the police investigator",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");
    assert_role_gate(last_global_access(&server).await, &cast.police, get_rpc);
    expect_err(
        list_claims(&mut c, &cast.police, ListClaimsRequest::default()).await,
        Code::PermissionDenied,
        "ListClaims by the police investigator",
    );

    // The social worker who opened the case reads claims but files none.
    expect_err(
        file(&mut c, &cast.sw, claim_request(&case_id, 1_000, "EUR")).await,
        Code::PermissionDenied,
        "FileClaim by the social worker",
    );
    assert_role_gate(last_global_access(&server).await, &cast.sw, file_rpc);
    expect_err(
        pay(&mut c, &cast.sw, payment_request(&claim, 1_000, "EUR")).await,
        Code::PermissionDenied,
        "RecordPayment by the social worker",
    );
    let by_sw = get_claim(&mut c, &cast.sw, &claim).await.unwrap();
    assert_eq!(by_sw.claim_id, claim);
    assert_eq!(by_sw.case_id, case_id);
    assert_eq!(by_sw.status(), ClaimStatus::Filed);
    assert_eq!(by_sw.amount_claimed, money(40_000, "EUR"));
    assert_eq!(by_sw.jurisdiction, "Kenya");
    assert_eq!(by_sw.claimant(), Claimant::Guardian);
    assert_eq!(by_sw.scheme(), ClaimScheme::StateVictimCompensation);
    assert!(by_sw.amount_awarded.is_none(), "{by_sw:?}");
    // The prosecutor and the social worker's supervisor read the same.
    for who in [&cast.prosecutor, &cast.supervisor, &cast.advocate] {
        let p = get_claim(&mut c, who, &claim).await.unwrap();
        assert_eq!(p, by_sw, "GetClaim as {}", who.sub);
    }
    expect_err(
        file(
            &mut c,
            &cast.prosecutor,
            claim_request(&case_id, 1_000, "EUR"),
        )
        .await,
        Code::PermissionDenied,
        "FileClaim by the prosecutor",
    );
    // The complaints officer has no business with claims.
    expect_err(
        get_claim(&mut c, &cast.complaints, &claim).await,
        Code::PermissionDenied,
        "GetClaim by the complaints officer",
    );

    // A victim advocate of another agency: neither claim nor case exists for them.
    let random = Uuid::new_v4().to_string();
    let absent = expect_err(
        get_claim(&mut c, &cast.far_advocate, &random).await,
        Code::NotFound,
        "GetClaim of a random id",
    );
    let hidden = expect_err(
        get_claim(&mut c, &cast.far_advocate, &claim).await,
        Code::NotFound,
        "GetClaim by an advocate not on the team",
    );
    assert!(!hidden.message().contains(&case_id), "{hidden:?}");
    assert_eq!(shape(&hidden, &claim), shape(&absent, &random));
    let s = expect_err(
        pay(
            &mut c,
            &cast.far_advocate,
            payment_request(&claim, 1_000, "EUR"),
        )
        .await,
        Code::NotFound,
        "RecordPayment by an advocate not on the team",
    );
    assert!(!s.message().contains(&case_id), "{s:?}");
    let hidden = expect_err(
        file(
            &mut c,
            &cast.far_advocate,
            claim_request(&case_id, 1_000, "EUR"),
        )
        .await,
        Code::NotFound,
        "FileClaim by an advocate not on the team",
    );
    // FileClaim names the case the caller sent, exactly as for a case that does not
    // exist: the answer tells nothing about the case.
    let absent_case = Uuid::new_v4().to_string();
    let absent = expect_err(
        file(
            &mut c,
            &cast.far_advocate,
            claim_request(&absent_case, 1_000, "EUR"),
        )
        .await,
        Code::NotFound,
        "FileClaim on a case that does not exist",
    );
    assert_eq!(shape(&hidden, &case_id), shape(&absent, &absent_case));
    let theirs = list_claims(&mut c, &cast.far_advocate, ListClaimsRequest::default())
        .await
        .unwrap();
    assert!(theirs.claims.is_empty(), "{theirs:?}");

    // Nothing of the refusals was stored.
    let all = list_claims(
        &mut c,
        &cast.advocate,
        ListClaimsRequest {
            case_id: case_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(claim_ids(&all), [claim.as_str()]);
    assert_eq!(claim_events(&server, &claim).await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn list_claims_records_every_claim_and_case_it_returns() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let rpc = "/caseline.v1.CompensationService/ListClaims";
    let case1 = team_case(&mut c, &cast, "Child L-1").await;
    // The prosecutor is not on the second case.
    let case2 = case_with(&mut c, &cast, "Child L-2", &[&cast.advocate]).await;
    let a = new_claim(&mut c, &cast.advocate, &case1, 10_000, "EUR").await;
    let b = new_claim(&mut c, &cast.advocate, &case1, 20_000, "KES").await;
    let d = new_claim(&mut c, &cast.advocate, &case2, 30_000, "EUR").await;
    submit(&mut c, &cast.advocate, submit_request(&b, &date_in(-1)))
        .await
        .unwrap();

    for (who, expected) in [
        (
            &cast.advocate,
            vec![(&a, &case1), (&b, &case1), (&d, &case2)],
        ),
        (&cast.prosecutor, vec![(&a, &case1), (&b, &case1)]),
        (&cast.sw, vec![(&a, &case1), (&b, &case1), (&d, &case2)]),
        // Not on either team: through the social worker's agency, on both.
        (
            &cast.supervisor,
            vec![(&a, &case1), (&b, &case1), (&d, &case2)],
        ),
        (&cast.far_advocate, vec![]),
    ] {
        let page = list_claims(&mut c, who, ListClaimsRequest::default())
            .await
            .unwrap();
        let listed: Vec<(String, String)> = page
            .claims
            .iter()
            .map(|p| (p.claim_id.clone(), p.case_id.clone()))
            .collect();
        let wanted: Vec<(String, String)> = expected
            .iter()
            .map(|(claim, case)| ((*claim).clone(), (*case).clone()))
            .collect();
        assert_eq!(listed, wanted, "ListClaims as {}", who.sub);
        let (actor, record) = last_global_access(&server).await;
        assert_eq!(actor, who.sub);
        assert_eq!(record.rpc, rpc);
        assert_eq!(record.status_code, 0, "{record:?}");
        let recorded: HashSet<&String> = record.resource_ids.iter().collect();
        for (claim, case) in &wanted {
            assert!(recorded.contains(claim), "{claim} in {record:?}");
            assert!(recorded.contains(case), "{case} in {record:?}");
        }
        // Nothing it did not return.
        let returned: HashSet<&String> = wanted.iter().flat_map(|(x, y)| [x, y]).collect();
        assert_eq!(recorded, returned, "as {}: {record:?}", who.sub);
    }

    // By status, and a page at a time: each page's claims recorded.
    let submitted = list_claims(
        &mut c,
        &cast.advocate,
        ListClaimsRequest {
            statuses: vec![ClaimStatus::Submitted as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(claim_ids(&submitted), [b.as_str()]);
    let first = list_claims(
        &mut c,
        &cast.advocate,
        ListClaimsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(claim_ids(&first), [a.clone(), b.clone()]);
    assert!(!first.next_page_token.is_empty());
    let (_, record) = last_global_access(&server).await;
    let recorded: HashSet<&String> = record.resource_ids.iter().collect();
    assert_eq!(recorded, HashSet::from([&a, &b, &case1]), "{record:?}");
    let second = list_claims(
        &mut c,
        &cast.advocate,
        ListClaimsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(claim_ids(&second), [d.as_str()]);
    assert!(second.next_page_token.is_empty());
    let (_, record) = last_global_access(&server).await;
    let recorded: HashSet<&String> = record.resource_ids.iter().collect();
    assert_eq!(recorded, HashSet::from([&d, &case2]), "{record:?}");

    // One case's claims; a case the caller does not see is NOT_FOUND.
    let one = list_claims(
        &mut c,
        &cast.sw,
        ListClaimsRequest {
            case_id: case2.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(claim_ids(&one), [d.as_str()]);
    let s = expect_err(
        list_claims(
            &mut c,
            &cast.prosecutor,
            ListClaimsRequest {
                case_id: case2.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "ListClaims of a case the prosecutor is not on",
    );
    let random = Uuid::new_v4().to_string();
    let absent = expect_err(
        list_claims(
            &mut c,
            &cast.prosecutor,
            ListClaimsRequest {
                case_id: random.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "ListClaims of a case that does not exist",
    );
    assert_eq!(shape(&s, &case2), shape(&absent, &random));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Filing deadlines
// ---------------------------------------------------------------------------------------

/// `ListClaimDeadlines`, by the server's clock: claims not yet submitted whose filing
/// deadline falls within the next N days (default 30) — or has passed, as the proto
/// says ("passed ones included").
#[tokio::test]
async fn claim_deadlines_are_listed_by_the_servers_clock() {
    let mut calendar = Calendar::at_noon();
    let server = TestServer::start_with(calendar.clock.clockwork(Duration::from_secs(3600))).await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child D-1").await;
    let va = cast.advocate.clone();
    let due = calendar.date(20);
    let claim = file(
        &mut c,
        &va,
        FileClaimRequest {
            filing_deadline: due.clone(),
            ..claim_request(&case_id, 10_000, "EUR")
        },
    )
    .await
    .unwrap()
    .id;
    // A claim whose deadline is beyond every window but the widest.
    let far = file(
        &mut c,
        &va,
        FileClaimRequest {
            filing_deadline: calendar.date(400),
            ..claim_request(&case_id, 10_000, "EUR")
        },
    )
    .await
    .unwrap()
    .id;
    // A deadline already past is accepted.
    let passed = file(
        &mut c,
        &va,
        FileClaimRequest {
            filing_deadline: calendar.date(-1),
            ..claim_request(&case_id, 10_000, "EUR")
        },
    )
    .await
    .unwrap()
    .id;
    let listed = async |c: &mut Clients, who: &User, days: u32| -> HashSet<String> {
        claim_ids(&deadlines(c, who, days).await.unwrap())
            .into_iter()
            .collect()
    };
    let set = |ids: &[&String]| -> HashSet<String> { ids.iter().map(|s| (*s).clone()).collect() };

    let page = deadlines(&mut c, &va, 0).await.unwrap();
    assert_eq!(
        claim_ids(&page).into_iter().collect::<HashSet<_>>(),
        set(&[&claim, &passed]),
        "within the default 30 days"
    );
    let p = page.claims.iter().find(|p| p.claim_id == claim).unwrap();
    assert_eq!(p.filing_deadline, due);
    assert_eq!(p.status(), ClaimStatus::Filed);
    assert_eq!(
        listed(&mut c, &va, 10).await,
        set(&[&passed]),
        "a deadline in 20 days is not within 10"
    );
    assert_eq!(
        listed(&mut c, &va, 19).await,
        set(&[&passed]),
        "a deadline in 20 days is not within 19"
    );
    assert_eq!(
        listed(&mut c, &va, 20).await,
        set(&[&claim, &passed]),
        "a deadline in 20 days is within 20"
    );
    assert_eq!(
        listed(&mut c, &va, 3650).await,
        set(&[&claim, &far, &passed]),
        "within ten years"
    );
    // Others who read claims see the same; the police may not ask; an advocate of
    // another agency sees nothing.
    for who in [&cast.sw, &cast.prosecutor, &cast.supervisor] {
        assert_eq!(
            listed(&mut c, who, 0).await,
            set(&[&claim, &passed]),
            "as {}",
            who.sub
        );
    }
    expect_err(
        deadlines(&mut c, &cast.police, 0).await,
        Code::PermissionDenied,
        "ListClaimDeadlines by the police",
    );
    assert!(
        listed(&mut c, &cast.far_advocate, 3650).await.is_empty(),
        "an advocate not on the team sees no deadline"
    );

    // Fifteen days on, the deadline is five days away.
    calendar.advance_days(15);
    assert_eq!(
        listed(&mut c, &va, 10).await,
        set(&[&claim, &passed]),
        "a deadline in 5 days is within 10"
    );
    assert_eq!(
        listed(&mut c, &va, 4).await,
        set(&[&passed]),
        "a deadline in 5 days is not within 4"
    );

    // Submitted: no longer a deadline to meet, whatever the window.
    submit(&mut c, &va, submit_request(&claim, &calendar.date(0)))
        .await
        .unwrap();
    submit(&mut c, &va, submit_request(&passed, &calendar.date(0)))
        .await
        .unwrap();
    for days in [0, 10, 3650] {
        let now = listed(&mut c, &va, days).await;
        assert!(
            !now.contains(&claim) && !now.contains(&passed),
            "a submitted claim within {days} days: {now:?}"
        );
    }
    let p = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(p.status(), ClaimStatus::Submitted);
    assert_eq!(p.submitted_on, calendar.date(0));
    // The far deadline, 385 days away now, is within 3650 only.
    assert!(listed(&mut c, &va, 0).await.is_empty());
    assert_eq!(listed(&mut c, &va, 3650).await, set(&[&far]));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Complaints
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn only_complaints_officers_may_call_complaint_methods() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child C-1").await;
    let complaint = lodge(&mut c, &cast.complaints, lodge_request(&case_id))
        .await
        .unwrap()
        .id;
    let stored = complaint_events(&server, &complaint).await.len();
    let random = Uuid::new_v4().to_string();
    let rpc = |m: &str| format!("/caseline.v1.CompensationService/{m}");

    for who in [
        &cast.sw,
        &cast.advocate,
        &cast.police,
        &cast.prosecutor,
        &cast.supervisor,
    ] {
        let s = expect_err(
            lodge(&mut c, who, lodge_request(&case_id)).await,
            Code::PermissionDenied,
            &format!("LodgeComplaint by {}", who.sub),
        );
        assert!(!s.message().contains(&case_id), "{s:?}");
        assert_role_gate(
            last_global_access(&server).await,
            who,
            &rpc("LodgeComplaint"),
        );
        let listed = list_complaints(&mut c, who, ListComplaintsRequest::default()).await;
        expect_err(
            listed,
            Code::PermissionDenied,
            &format!("ListComplaints by {}", who.sub),
        );
        assert_role_gate(
            last_global_access(&server).await,
            who,
            &rpc("ListComplaints"),
        );
        // The same answer, whether the complaint exists or not.
        for id in [&complaint, &random] {
            let what = |m: &str| format!("{m} of {id} by {}", who.sub);
            let answers = [
                (
                    "AcknowledgeComplaint",
                    acknowledge(&mut c, who, id).await.map(|_| ()),
                ),
                (
                    "RecordComplaintFinding",
                    find(
                        &mut c,
                        who,
                        finding_request(id, ComplaintFinding::Upheld, REMEDY),
                    )
                    .await
                    .map(|_| ()),
                ),
                (
                    "EscalateComplaint",
                    escalate(&mut c, who, escalation_request(id, ESCALATION_BODY))
                        .await
                        .map(|_| ()),
                ),
                (
                    "CloseComplaint",
                    close_complaint(&mut c, who, id).await.map(|_| ()),
                ),
                (
                    "GetComplaint",
                    get_complaint(&mut c, who, id).await.map(|_| ()),
                ),
            ];
            for (method, result) in answers {
                let s = expect_err(result, Code::PermissionDenied, &what(method));
                assert_eq!(
                    s.message(),
                    "your role may not call this method",
                    "{}",
                    what(method)
                );
            }
            assert_role_gate(last_global_access(&server).await, who, &rpc("GetComplaint"));
        }
    }
    assert_eq!(complaint_events(&server, &complaint).await.len(), stored);
    let g = get_complaint(&mut c, &cast.complaints, &complaint)
        .await
        .unwrap();
    assert_eq!(g.status(), ComplaintStatus::Lodged);
    server.stop().await;
}

#[tokio::test]
async fn a_complaints_officer_handles_a_complaint_the_team_never_sees() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child C-2").await;
    let co = cast.complaints.clone();
    // A claim on the same case: the advocate and the social worker see it on the
    // timeline, so what they do not see is the complaint only.
    let claim = new_claim(&mut c, &cast.advocate, &case_id, 10_000, "EUR").await;

    // The complaints officer is on no team, and handles the complaint all the same.
    let lodged = lodge(&mut c, &co, lodge_request(&case_id)).await.unwrap();
    let complaint = lodged.id.clone();
    let acked = acknowledge(&mut c, &co, &complaint).await.unwrap();
    assert_eq!(acked.id, complaint);
    assert_eq!(acked.version, lodged.version + 1);
    find(
        &mut c,
        &co,
        finding_request(&complaint, ComplaintFinding::Upheld, REMEDY),
    )
    .await
    .unwrap();
    let escalated = escalate(&mut c, &co, escalation_request(&complaint, ESCALATION_BODY))
        .await
        .unwrap();
    assert_eq!(escalated.version, lodged.version + 3);

    let g = get_complaint(&mut c, &co, &complaint).await.unwrap();
    assert_eq!(g.complaint_id, complaint);
    assert_eq!(g.case_id, case_id);
    assert_eq!(g.about, COMPLAINT_ABOUT);
    assert_eq!(g.description, COMPLAINT_TEXT);
    assert_eq!(g.channel(), ComplaintChannel::Letter);
    assert_eq!(g.complainant(), ComplainantKind::Guardian);
    assert_eq!(g.status(), ComplaintStatus::Escalated);
    assert_eq!(g.finding(), ComplaintFinding::Upheld);
    assert_eq!(g.remedy, REMEDY);
    assert_eq!(g.escalated_to, ESCALATION_BODY);
    assert_eq!(g.escalation_reason, ESCALATION_REASON);
    assert_eq!(g.version, escalated.version);
    assert!(!g.erased);

    let all = list_complaints(&mut c, &co, ListComplaintsRequest::default())
        .await
        .unwrap();
    assert_eq!(all.complaints, std::slice::from_ref(&g));
    let (actor, record) = last_global_access(&server).await;
    assert_eq!(actor, co.sub);
    assert_eq!(
        record.rpc,
        "/caseline.v1.CompensationService/ListComplaints"
    );
    assert!(record.resource_ids.contains(&complaint), "{record:?}");
    let escalated_only = list_complaints(
        &mut c,
        &co,
        ListComplaintsRequest {
            statuses: vec![ComplaintStatus::Escalated as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(escalated_only.complaints.len(), 1);
    let lodged_only = list_complaints(
        &mut c,
        &co,
        ListComplaintsRequest {
            statuses: vec![ComplaintStatus::Lodged as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(lodged_only.complaints.is_empty(), "{lodged_only:?}");

    // The team: no complaint entry, not a byte of its text.
    let secrets = [
        COMPLAINT_TEXT,
        COMPLAINT_ABOUT,
        REMEDY,
        ESCALATION_BODY,
        ESCALATION_REASON,
        complaint.as_str(),
    ];
    for who in [&cast.sw, &cast.advocate, &cast.police, &cast.prosecutor] {
        let t = timeline(&mut c, who, &case_id).await;
        assert!(!t.entries.is_empty(), "{}", who.sub);
        for e in &t.entries {
            assert_ne!(e.compartment, "complaints", "as {}: {e:?}", who.sub);
            assert!(!e.kind.starts_with("complaint"), "as {}: {e:?}", who.sub);
        }
        let bytes = t.encode_to_vec();
        for secret in secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{}'s timeline holds {secret:?}",
                who.sub
            );
        }
        // Compensation entries are there for those whose column shows them.
        let claims_shown = t
            .entries
            .iter()
            .any(|e| e.kind == "claim_filed" && contains(&e.encode_to_vec(), claim.as_bytes()));
        let reads_claims = who.role != Role::PoliceInvestigator;
        assert_eq!(
            claims_shown, reads_claims,
            "claim on {}'s timeline",
            who.sub
        );
    }

    // Closed after the escalation.
    let closed = close_complaint(&mut c, &co, &complaint).await.unwrap();
    let g = get_complaint(&mut c, &co, &complaint).await.unwrap();
    assert_eq!(g.status(), ComplaintStatus::Closed);
    assert_eq!(g.version, closed.version);
    expect_err(
        acknowledge(&mut c, &co, &complaint).await,
        Code::FailedPrecondition,
        "acknowledging a closed complaint",
    );
    // A complaint about a case that does not exist is NOT_FOUND.
    expect_err(
        lodge(&mut c, &co, lodge_request(&Uuid::new_v4().to_string())).await,
        Code::NotFound,
        "a complaint about a case that does not exist",
    );
    expect_err(
        get_complaint(&mut c, &co, &Uuid::new_v4().to_string()).await,
        Code::NotFound,
        "GetComplaint of a random id",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_complaint_is_acknowledged_once_and_closed_after_a_finding_or_escalation() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child C-3").await;
    let co = cast.complaints.clone();
    let complaint = lodge(&mut c, &co, lodge_request(&case_id))
        .await
        .unwrap()
        .id;

    let s = expect_err(
        close_complaint(&mut c, &co, &complaint).await,
        Code::FailedPrecondition,
        "closing a lodged complaint",
    );
    assert!(s.message().contains("finding"), "{s:?}");
    acknowledge(&mut c, &co, &complaint).await.unwrap();
    let stored = complaint_events(&server, &complaint).await.len();
    expect_err(
        acknowledge(&mut c, &co, &complaint).await,
        Code::FailedPrecondition,
        "acknowledging twice",
    );
    expect_err(
        close_complaint(&mut c, &co, &complaint).await,
        Code::FailedPrecondition,
        "closing an acknowledged complaint without a finding",
    );
    assert_eq!(complaint_events(&server, &complaint).await.len(), stored);
    assert_eq!(
        get_complaint(&mut c, &co, &complaint)
            .await
            .unwrap()
            .status(),
        ComplaintStatus::Acknowledged
    );

    // A finding: then it closes; one finding only.
    find(
        &mut c,
        &co,
        finding_request(&complaint, ComplaintFinding::PartlyUpheld, REMEDY),
    )
    .await
    .unwrap();
    expect_err(
        find(
            &mut c,
            &co,
            finding_request(&complaint, ComplaintFinding::NotUpheld, ""),
        )
        .await,
        Code::FailedPrecondition,
        "a second finding",
    );
    expect_err(
        acknowledge(&mut c, &co, &complaint).await,
        Code::FailedPrecondition,
        "acknowledging after the finding",
    );
    close_complaint(&mut c, &co, &complaint).await.unwrap();
    expect_err(
        close_complaint(&mut c, &co, &complaint).await,
        Code::FailedPrecondition,
        "closing twice",
    );

    // An escalation without a finding also lets it close.
    let other = lodge(&mut c, &co, lodge_request(&case_id))
        .await
        .unwrap()
        .id;
    escalate(&mut c, &co, escalation_request(&other, ESCALATION_BODY))
        .await
        .unwrap();
    expect_err(
        escalate(&mut c, &co, escalation_request(&other, ESCALATION_BODY)).await,
        Code::FailedPrecondition,
        "escalating twice",
    );
    close_complaint(&mut c, &co, &other).await.unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Idempotency and expected_version
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retried_claim_command_answers_as_the_first_and_a_stale_version_is_aborted() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child I-1").await;
    let va = cast.advocate.clone();

    // FileClaim.
    let request = claim_request(&case_id, 80_000, "EUR");
    let first = file(&mut c, &va, request.clone()).await.unwrap();
    let again = file(&mut c, &va, request.clone()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(claim_events(&server, &first.id).await.len(), 1);
    let s = expect_err(
        file(
            &mut c,
            &va,
            FileClaimRequest {
                amount_claimed: money(80_001, "EUR"),
                ..request.clone()
            },
        )
        .await,
        Code::AlreadyExists,
        "the same request_id with another amount",
    );
    assert!(!s.message().contains("80001"), "{s:?}");
    assert_eq!(claim_events(&server, &first.id).await.len(), 1);
    let listed = list_claims(
        &mut c,
        &va,
        ListClaimsRequest {
            case_id: case_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(claim_ids(&listed), [first.id.as_str()]);
    assert_eq!(listed.claims[0].amount_claimed, money(80_000, "EUR"));
    let claim = first.id.clone();

    submit(&mut c, &va, submit_request(&claim, &date_in(-1)))
        .await
        .unwrap();
    decide(
        &mut c,
        &va,
        decision_request(&claim, ClaimOutcome::PartlyAwarded, money(50_000, "EUR")),
    )
    .await
    .unwrap();

    // RecordPayment: the whole award; a retry answers as the first, not "overpaid".
    let payment = payment_request(&claim, 50_000, "EUR");
    let paid = pay(&mut c, &va, payment.clone()).await.unwrap();
    let stored = claim_events(&server, &claim).await.len();
    let again = pay(&mut c, &va, payment.clone()).await.unwrap();
    assert_eq!(again, paid);
    assert_eq!(claim_events(&server, &claim).await.len(), stored);
    let p = get_claim(&mut c, &va, &claim).await.unwrap();
    assert_eq!(p.payments.len(), 1);
    assert_eq!(p.amount_paid, money(50_000, "EUR"));
    assert_eq!(p.version, paid.version);
    expect_err(
        pay(
            &mut c,
            &va,
            RecordPaymentRequest {
                amount: money(40_000, "EUR"),
                ..payment.clone()
            },
        )
        .await,
        Code::AlreadyExists,
        "the same payment request_id with another amount",
    );
    assert_eq!(claim_events(&server, &claim).await.len(), stored);

    // expected_version, on a second claim partly paid.
    let second = decided_claim(
        &mut c,
        &cast,
        &case_id,
        (30_000, "KES"),
        ClaimOutcome::Awarded,
        30_000,
    )
    .await;
    let v = get_claim(&mut c, &va, &second).await.unwrap().version;
    let stale = pay(
        &mut c,
        &va,
        RecordPaymentRequest {
            expected_version: Some(v - 1),
            ..payment_request(&second, 10_000, "KES")
        },
    )
    .await;
    let s = expect_err(stale, Code::Aborted, "RecordPayment at a stale version");
    assert!(s.message().contains(&v.to_string()), "{s:?}");
    let current = pay(
        &mut c,
        &va,
        RecordPaymentRequest {
            expected_version: Some(v),
            ..payment_request(&second, 10_000, "KES")
        },
    )
    .await
    .unwrap();
    assert_eq!(current.version, v + 1);
    expect_err(
        decide(
            &mut c,
            &va,
            RecordClaimDecisionRequest {
                expected_version: Some(v),
                ..decision_request(&second, ClaimOutcome::Awarded, money(30_000, "KES"))
            },
        )
        .await,
        Code::Aborted,
        "RecordClaimDecision at a stale version",
    );
    let p = get_claim(&mut c, &va, &second).await.unwrap();
    assert_eq!(p.version, current.version);
    assert_eq!(p.amount_paid, money(10_000, "KES"));
    assert_eq!(claim_events(&server, &second).await.len() as u64, v + 2);
    server.stop().await;
}

/// The description of the one violation of an INVALID_ARGUMENT naming `field` alone.
#[track_caller]
fn why_refused<T: Debug>(result: Result<T, Status>, field: &str, what: &str) -> String {
    let status = expect_err(result, Code::InvalidArgument, what);
    assert_eq!(fields_of(&status, what), [field], "{what}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    details.bad_request().unwrap().field_violations[0]
        .description
        .clone()
}

#[tokio::test]
async fn dates_outside_a_plausible_range_are_refused_saying_why() {
    let server = TestServer::start().await;
    let mut c = Clients::of(&server).await;
    let cast = Cast::new(&server);
    let case_id = team_case(&mut c, &cast, "Child V-30").await;
    let va = cast.advocate.clone();
    for (deadline, why) in [("1800-01-01", "1900"), ("2999-01-01", "years")] {
        let request = FileClaimRequest {
            filing_deadline: deadline.into(),
            ..claim_request(&case_id, 10_000, "EUR")
        };
        let description = why_refused(
            file(&mut c, &va, request).await,
            "filing_deadline",
            deadline,
        );
        assert!(description.contains(why), "{deadline}: {description:?}");
        assert!(!description.contains("YYYY"), "{deadline}: {description:?}");
    }
    let claim = new_claim(&mut c, &va, &case_id, 10_000, "EUR").await;
    let description = why_refused(
        submit(&mut c, &va, submit_request(&claim, "1800-01-01")).await,
        "submitted_on",
        "submitted in 1800",
    );
    assert!(description.contains("1900"), "{description:?}");
    server.stop().await;
}
