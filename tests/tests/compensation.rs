//! Compensation and complaints across services, on a whole all-in-one server: a claim
//! filed → submitted → partly awarded → two payments → the outstanding balance exact →
//! closed; a complaint about the police lodged for the child, invisible to the
//! investigator on the case, handled and escalated by a complaints officer. Real gRPC,
//! real tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use caseline_auth::Role;
use caseline_e2e::requests::{add_member_request, opening};
use caseline_e2e::{TestServer, User, authed, rid};
use caseline_proto::tonic::Code;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::compensation_service_client::CompensationServiceClient;
use caseline_proto::v1::{
    AcknowledgeComplaintRequest, ClaimOutcome, ClaimScheme, ClaimStatus, Claimant,
    CloseClaimRequest, ComplainantKind, ComplaintChannel, ComplaintFinding, ComplaintStatus,
    EscalateComplaintRequest, FileClaimRequest, GetClaimRequest, GetCompensationTotalsRequest,
    GetComplaintRequest, GetTimelineRequest, ListComplaintsRequest, LodgeComplaintRequest, Money,
    RecordClaimDecisionRequest, RecordClaimSubmittedRequest, RecordComplaintFindingRequest,
    RecordPaymentRequest, RiskLevel,
};
use caseline_server::validate::date_of;

const COMPLAINT: &str = "The officer who took her statement mocked her in front of her mother.";

fn eur(minor_units: i64) -> Option<Money> {
    Some(Money {
        minor_units,
        currency: "EUR".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_paid_in_parts_and_a_complaint_is_handled_outside_the_team() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut cases = CaseServiceClient::new(channel.clone());
    let mut comp = CompensationServiceClient::new(channel);
    let social = User::new(&server, "sw-1", Role::SocialWorker, "county-social");
    let advocate = User::new(&server, "adv-2", Role::VictimAdvocate, "victim-support");
    let police = User::new(&server, "inv-3", Role::PoliceInvestigator, "police-north");
    let officer = User::new(
        &server,
        "co-4",
        Role::ComplaintsOfficer,
        "complaints-office",
    );
    let today = date_of(SystemTime::now());

    let case_id = cases
        .open_case(authed(
            opening("Child C-5", "", RiskLevel::High),
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    for member in [&advocate, &police] {
        cases
            .add_team_member(authed(add_member_request(&case_id, member), &social.token))
            .await
            .unwrap();
    }

    // The claim: 5 000.00 EUR claimed, 3 200.00 awarded, paid in two parts.
    let claim_id = comp
        .file_claim(authed(
            FileClaimRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                scheme: ClaimScheme::StateVictimCompensation as i32,
                jurisdiction: "Ireland".into(),
                claimant: Claimant::Guardian as i32,
                amount_claimed: eur(500_000),
                filing_deadline: date_of(
                    SystemTime::now() + std::time::Duration::from_secs(90 * 86_400),
                ),
            },
            &advocate.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    comp.record_claim_submitted(authed(
        RecordClaimSubmittedRequest {
            request_id: rid(),
            claim_id: claim_id.clone(),
            submitted_on: today.clone(),
            reference: "CICT-2026-0042".into(),
            ..RecordClaimSubmittedRequest::default()
        },
        &advocate.token,
    ))
    .await
    .unwrap();
    comp.record_claim_decision(authed(
        RecordClaimDecisionRequest {
            request_id: rid(),
            claim_id: claim_id.clone(),
            outcome: ClaimOutcome::PartlyAwarded as i32,
            amount_awarded: eur(320_000),
            reasons: "Loss of earnings not established.".into(),
            ..RecordClaimDecisionRequest::default()
        },
        &advocate.token,
    ))
    .await
    .unwrap();
    for part in [120_000, 150_000] {
        comp.record_payment(authed(
            RecordPaymentRequest {
                request_id: rid(),
                claim_id: claim_id.clone(),
                amount: eur(part),
                paid_on: today.clone(),
                ..RecordPaymentRequest::default()
            },
            &advocate.token,
        ))
        .await
        .unwrap();
    }
    // Overpaying is refused, naming the amount; nothing is stored.
    let over = comp
        .record_payment(authed(
            RecordPaymentRequest {
                request_id: rid(),
                claim_id: claim_id.clone(),
                amount: eur(50_001),
                paid_on: today.clone(),
                ..RecordPaymentRequest::default()
            },
            &advocate.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition, "{over:?}");
    assert!(over.message().contains("amount"), "{over:?}");

    let claim = comp
        .get_claim(authed(
            GetClaimRequest {
                claim_id: claim_id.clone(),
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claim.payments.len(), 2);
    assert_eq!(claim.amount_paid, eur(270_000));
    assert_eq!(claim.amount_outstanding, eur(50_000));
    assert_eq!(claim.reasons, "Loss of earnings not established.");
    let totals = comp
        .get_compensation_totals(authed(
            GetCompensationTotalsRequest {
                case_id: case_id.clone(),
            },
            &advocate.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .totals;
    assert_eq!(totals.len(), 1);
    let t = &totals[0];
    assert_eq!(
        (
            t.currency.as_str(),
            t.claimed,
            t.awarded,
            t.paid,
            t.outstanding
        ),
        ("EUR", 500_000, 320_000, 270_000, 50_000)
    );
    comp.close_claim(authed(
        CloseClaimRequest {
            request_id: rid(),
            claim_id: claim_id.clone(),
            note: "The rest is to be paid by the scheme next year.".into(),
            ..CloseClaimRequest::default()
        },
        &advocate.token,
    ))
    .await
    .unwrap();
    let closed = comp
        .get_claim(authed(GetClaimRequest { claim_id }, &advocate.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.status(), ClaimStatus::Closed);
    // The police do not see claims at all.
    let hidden = comp
        .get_compensation_totals(authed(
            GetCompensationTotalsRequest {
                case_id: case_id.clone(),
            },
            &police.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::PermissionDenied, "{hidden:?}");

    // A complaint about the police, lodged for the child by a complaints officer who is
    // not on the team.
    let complaint_id = comp
        .lodge_complaint(authed(
            LodgeComplaintRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                about: "police-north".into(),
                channel: ComplaintChannel::Phone as i32,
                complainant: ComplainantKind::Guardian as i32,
                description: COMPLAINT.into(),
            },
            &officer.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    comp.acknowledge_complaint(authed(
        AcknowledgeComplaintRequest {
            request_id: rid(),
            complaint_id: complaint_id.clone(),
            expected_version: None,
        },
        &officer.token,
    ))
    .await
    .unwrap();
    comp.record_complaint_finding(authed(
        RecordComplaintFindingRequest {
            request_id: rid(),
            complaint_id: complaint_id.clone(),
            finding: ComplaintFinding::Upheld as i32,
            remedy: "Written apology; the officer is retrained.".into(),
            ..RecordComplaintFindingRequest::default()
        },
        &officer.token,
    ))
    .await
    .unwrap();
    comp.escalate_complaint(authed(
        EscalateComplaintRequest {
            request_id: rid(),
            complaint_id: complaint_id.clone(),
            body: "Police Ombudsman".into(),
            reason: "The family asks for an independent review.".into(),
            ..EscalateComplaintRequest::default()
        },
        &officer.token,
    ))
    .await
    .unwrap();
    let complaint = comp
        .get_complaint(authed(
            GetComplaintRequest {
                complaint_id: complaint_id.clone(),
            },
            &officer.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(complaint.status(), ComplaintStatus::Escalated);
    assert_eq!(complaint.description, COMPLAINT);
    assert_eq!(complaint.escalated_to, "Police Ombudsman");
    let listed = comp
        .list_complaints(authed(ListComplaintsRequest::default(), &officer.token))
        .await
        .unwrap()
        .into_inner()
        .complaints;
    assert!(listed.iter().any(|c| c.complaint_id == complaint_id));

    // The investigator on the case sees neither the complaint nor that it exists.
    let refused = comp
        .get_complaint(authed(
            GetComplaintRequest {
                complaint_id: complaint_id.clone(),
            },
            &police.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    for member in [&police, &social, &advocate] {
        let timeline = cases
            .get_timeline(authed(
                GetTimelineRequest {
                    case_id: case_id.clone(),
                    ..GetTimelineRequest::default()
                },
                &member.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            timeline
                .entries
                .iter()
                .all(|e| e.compartment != "complaints"),
            "{:?} sees a complaint",
            member.role
        );
        assert!(!format!("{timeline:?}").contains("mocked her"));
    }
    // The social worker sees the claim's steps; the investigator does not.
    let of = |entries: &[caseline_proto::v1::TimelineEntry]| {
        entries
            .iter()
            .filter(|e| e.compartment == "compensation_claims")
            .count()
    };
    let social_view = cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id: case_id.clone(),
                ..GetTimelineRequest::default()
            },
            &social.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        of(&social_view),
        6,
        "filed, submitted, decided, two payments, closed"
    );
    let police_view = cases
        .get_timeline(authed(
            GetTimelineRequest {
                case_id,
                ..GetTimelineRequest::default()
            },
            &police.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(of(&police_view), 0);
    server.stop().await;
}
