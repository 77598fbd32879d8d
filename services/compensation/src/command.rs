//! The typed commands CompensationService's requests convert into: each request is
//! checked once, at the edge, every bad field named, so handlers hold parsed values.

use std::collections::HashSet;

use caseline_eventlog::{Position, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::v1::{
    AcknowledgeComplaintRequest, ClaimOutcome, ClaimScheme, ClaimStatus, Claimant,
    CloseClaimRequest, CloseComplaintRequest, ComplainantKind, ComplaintChannel, ComplaintFinding,
    ComplaintStatus, EscalateComplaintRequest, FileClaimRequest, GetClaimRequest,
    GetCompensationTotalsRequest, GetComplaintRequest, ListClaimDeadlinesRequest,
    ListClaimsRequest, ListComplaintsRequest, LodgeAppealRequest, LodgeComplaintRequest, Money,
    RecordClaimDecisionRequest, RecordClaimSubmittedRequest, RecordComplaintFindingRequest,
    RecordPaymentRequest,
};
use caseline_server::ApiError;
use caseline_server::validate::{
    At, Check, MAX_LABEL_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS, Target,
};

use crate::money::fault;

const LIST_PAGE: (u32, u32) = (50, 500);

/// Checks an amount field, naming the part at fault.
fn check_amount(check: &mut Check, field: &'static str, value: Option<&Money>) {
    if let Some((part, reason)) = fault(value) {
        check.fail(&format!("{field}{part}"), reason);
    }
}

/// A required amount, checked: a default when at fault, never used since the request
/// is then refused.
fn amount(check: &mut Check, field: &'static str, value: Option<Money>) -> Money {
    check_amount(check, field, value.as_ref());
    value.unwrap_or_default()
}

/// Text as it is kept: without surrounding space.
fn trimmed(value: &str) -> String {
    value.trim().to_owned()
}

#[derive(Debug)]
pub struct FileClaim {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub scheme: ClaimScheme,
    pub jurisdiction: String,
    pub claimant: Claimant,
    pub amount_claimed: Money,
    pub filing_deadline: String,
    pub encoded: Vec<u8>,
}

impl TryFrom<At<FileClaimRequest>> for FileClaim {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<FileClaimRequest>) -> Result<Self, ApiError> {
        let encoded = r.encode_to_vec();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let case_id = check.uuid("case_id", &r.case_id);
        let scheme = check.known("scheme", r.scheme);
        check.text("jurisdiction", &r.jurisdiction, MAX_LABEL_CHARS, true);
        let claimant = check.known("claimant", r.claimant);
        let amount_claimed = amount(&mut check, "amount_claimed", r.amount_claimed);
        let filing_deadline = check.planned_date("filing_deadline", &r.filing_deadline, true, now);
        check.done(Self {
            request_id,
            case_id,
            scheme,
            jurisdiction: trimmed(&r.jurisdiction),
            claimant,
            amount_claimed,
            filing_deadline: filing_deadline.unwrap_or_default(),
            encoded,
        })
    }
}

#[derive(Debug)]
pub struct RecordClaimSubmitted {
    pub target: Target,
    pub submitted_on: String,
    pub reference: String,
}

impl TryFrom<At<RecordClaimSubmittedRequest>> for RecordClaimSubmitted {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<RecordClaimSubmittedRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "claim_id",
            &r.claim_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let submitted_on = check.past_date("submitted_on", &r.submitted_on, now);
        check.text("reference", &r.reference, MAX_LABEL_CHARS, false);
        check.done(Self {
            target,
            submitted_on: submitted_on.unwrap_or_default(),
            reference: trimmed(&r.reference),
        })
    }
}

#[derive(Debug)]
pub struct RecordClaimDecision {
    pub target: Target,
    pub outcome: ClaimOutcome,
    /// As received: a rejection may carry none, or a zero amount.
    pub amount_awarded: Option<Money>,
    pub exceeds_claim: bool,
    pub reasons: String,
}

impl TryFrom<RecordClaimDecisionRequest> for RecordClaimDecision {
    type Error = ApiError;

    fn try_from(r: RecordClaimDecisionRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "claim_id",
            &r.claim_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let outcome: ClaimOutcome = check.known("outcome", r.outcome);
        if outcome == ClaimOutcome::Rejected {
            if r.amount_awarded
                .as_ref()
                .is_some_and(|m| m.minor_units != 0)
            {
                check.fail("amount_awarded.minor_units", "a rejection awards nothing");
            }
        } else {
            check_amount(&mut check, "amount_awarded", r.amount_awarded.as_ref());
        }
        check.text("reasons", &r.reasons, MAX_TEXT_CHARS, false);
        check.done(Self {
            target,
            outcome,
            amount_awarded: r.amount_awarded,
            exceeds_claim: r.exceeds_claim,
            reasons: trimmed(&r.reasons),
        })
    }
}

#[derive(Debug)]
pub struct LodgeAppeal {
    pub target: Target,
    pub lodged_on: String,
    pub grounds: String,
}

impl TryFrom<At<LodgeAppealRequest>> for LodgeAppeal {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<LodgeAppealRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "claim_id",
            &r.claim_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let lodged_on = check.past_date("lodged_on", &r.lodged_on, now);
        check.text("grounds", &r.grounds, MAX_TEXT_CHARS, true);
        check.done(Self {
            target,
            lodged_on: lodged_on.unwrap_or_default(),
            grounds: trimmed(&r.grounds),
        })
    }
}

#[derive(Debug)]
pub struct RecordPayment {
    pub target: Target,
    pub amount: Money,
    pub paid_on: String,
}

impl TryFrom<At<RecordPaymentRequest>> for RecordPayment {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<RecordPaymentRequest>) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "claim_id",
            &r.claim_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let amount = amount(&mut check, "amount", r.amount);
        let paid_on = check.past_date("paid_on", &r.paid_on, now);
        check.done(Self {
            target,
            amount,
            paid_on: paid_on.unwrap_or_default(),
        })
    }
}

#[derive(Debug)]
pub struct CloseClaim {
    pub target: Target,
    pub note: String,
}

impl TryFrom<CloseClaimRequest> for CloseClaim {
    type Error = ApiError;

    fn try_from(r: CloseClaimRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "claim_id",
            &r.claim_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("note", &r.note, MAX_REASON_CHARS, false);
        check.done(Self {
            target,
            note: trimmed(&r.note),
        })
    }
}

#[derive(Debug)]
pub struct GetClaim {
    pub claim_id: Uuid,
}

impl TryFrom<GetClaimRequest> for GetClaim {
    type Error = ApiError;

    fn try_from(r: GetClaimRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let claim_id = check.uuid("claim_id", &r.claim_id);
        check.done(Self { claim_id })
    }
}

#[derive(Debug)]
pub struct ListClaims {
    /// Only this case's claims, if any.
    pub case_id: Option<Uuid>,
    /// Empty: every status.
    pub statuses: HashSet<ClaimStatus>,
    pub page_size: usize,
    pub page_token: Option<Position>,
}

impl TryFrom<ListClaimsRequest> for ListClaims {
    type Error = ApiError;

    fn try_from(r: ListClaimsRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let case_id = check.optional_uuid("case_id", &r.case_id);
        let statuses = check.known_set("statuses", &r.statuses);
        let page_size = check.page_size(r.page_size, LIST_PAGE);
        let page_token = check.page_token(&r.page_token);
        check.done(Self {
            case_id,
            statuses,
            page_size,
            page_token,
        })
    }
}

#[derive(Debug)]
pub struct ListClaimDeadlines {
    /// Deadlines up to this many days from today (and every passed one).
    pub within_days: u64,
    pub page_size: usize,
    pub page_token: Option<Position>,
}

impl TryFrom<ListClaimDeadlinesRequest> for ListClaimDeadlines {
    type Error = ApiError;

    fn try_from(r: ListClaimDeadlinesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let within_days = match r.within_days {
            0 => 30,
            d if d > 3650 => {
                check.fail("within_days", "must be at most 3650");
                0
            }
            d => u64::from(d),
        };
        let page_size = check.page_size(r.page_size, LIST_PAGE);
        let page_token = check.page_token(&r.page_token);
        check.done(Self {
            within_days,
            page_size,
            page_token,
        })
    }
}

#[derive(Debug)]
pub struct GetCompensationTotals {
    pub case_id: Uuid,
}

impl TryFrom<GetCompensationTotalsRequest> for GetCompensationTotals {
    type Error = ApiError;

    fn try_from(r: GetCompensationTotalsRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        check.done(Self { case_id })
    }
}

#[derive(Debug)]
pub struct LodgeComplaint {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub about: String,
    pub channel: ComplaintChannel,
    pub complainant: ComplainantKind,
    pub description: String,
    pub encoded: Vec<u8>,
}

impl TryFrom<LodgeComplaintRequest> for LodgeComplaint {
    type Error = ApiError;

    fn try_from(r: LodgeComplaintRequest) -> Result<Self, ApiError> {
        let encoded = r.encode_to_vec();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let case_id = check.uuid("case_id", &r.case_id);
        check.text("about", &r.about, MAX_LABEL_CHARS, true);
        let channel = check.known("channel", r.channel);
        let complainant = check.known("complainant", r.complainant);
        check.text("description", &r.description, MAX_TEXT_CHARS, true);
        check.done(Self {
            request_id,
            case_id,
            about: trimmed(&r.about),
            channel,
            complainant,
            description: trimmed(&r.description),
            encoded,
        })
    }
}

#[derive(Debug)]
pub struct AcknowledgeComplaint {
    pub target: Target,
}

impl TryFrom<AcknowledgeComplaintRequest> for AcknowledgeComplaint {
    type Error = ApiError;

    fn try_from(r: AcknowledgeComplaintRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "complaint_id",
            &r.complaint_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.done(Self { target })
    }
}

#[derive(Debug)]
pub struct RecordComplaintFinding {
    pub target: Target,
    pub finding: ComplaintFinding,
    pub remedy: String,
}

impl TryFrom<RecordComplaintFindingRequest> for RecordComplaintFinding {
    type Error = ApiError;

    fn try_from(r: RecordComplaintFindingRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "complaint_id",
            &r.complaint_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        let finding: ComplaintFinding = check.known("finding", r.finding);
        check.text(
            "remedy",
            &r.remedy,
            MAX_TEXT_CHARS,
            finding != ComplaintFinding::NotUpheld,
        );
        check.done(Self {
            target,
            finding,
            remedy: trimmed(&r.remedy),
        })
    }
}

#[derive(Debug)]
pub struct EscalateComplaint {
    pub target: Target,
    pub body: String,
    pub reason: String,
}

impl TryFrom<EscalateComplaintRequest> for EscalateComplaint {
    type Error = ApiError;

    fn try_from(r: EscalateComplaintRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "complaint_id",
            &r.complaint_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("body", &r.body, MAX_LABEL_CHARS, true);
        check.text("reason", &r.reason, MAX_REASON_CHARS, false);
        check.done(Self {
            target,
            body: trimmed(&r.body),
            reason: trimmed(&r.reason),
        })
    }
}

#[derive(Debug)]
pub struct CloseComplaint {
    pub target: Target,
    pub note: String,
}

impl TryFrom<CloseComplaintRequest> for CloseComplaint {
    type Error = ApiError;

    fn try_from(r: CloseComplaintRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "complaint_id",
            &r.complaint_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("note", &r.note, MAX_REASON_CHARS, false);
        check.done(Self {
            target,
            note: trimmed(&r.note),
        })
    }
}

#[derive(Debug)]
pub struct GetComplaint {
    pub complaint_id: Uuid,
}

impl TryFrom<GetComplaintRequest> for GetComplaint {
    type Error = ApiError;

    fn try_from(r: GetComplaintRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let complaint_id = check.uuid("complaint_id", &r.complaint_id);
        check.done(Self { complaint_id })
    }
}

#[derive(Debug)]
pub struct ListComplaints {
    /// Empty: every status.
    pub statuses: HashSet<ComplaintStatus>,
    pub page_size: usize,
    pub page_token: Option<Position>,
}

impl TryFrom<ListComplaintsRequest> for ListComplaints {
    type Error = ApiError;

    fn try_from(r: ListComplaintsRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let statuses = check.known_set("statuses", &r.statuses);
        let page_size = check.page_size(r.page_size, LIST_PAGE);
        let page_token = check.page_token(&r.page_token);
        check.done(Self {
            statuses,
            page_size,
            page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;

    /// 2026-11-22T12:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_348_800)
    }

    fn fields<T: std::fmt::Debug>(result: Result<T, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_field_of_a_claim_is_named_in_the_order_checked() {
        let request = FileClaimRequest {
            scheme: 99,
            amount_claimed: Some(Money {
                currency: "XXX".into(),
                minor_units: 1,
            }),
            filing_deadline: "2026-02-30".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(FileClaim::try_from(At {
                request,
                now: now()
            })),
            [
                "request_id",
                "case_id",
                "scheme",
                "jurisdiction",
                "claimant",
                "amount_claimed.currency",
                "filing_deadline",
            ]
        );
    }

    #[test]
    fn a_command_keeps_the_request_as_received_for_its_fingerprint() {
        let request = CloseClaimRequest {
            claim_id: Uuid::from_u128(1).to_string(),
            request_id: Uuid::from_u128(2).to_string(),
            expected_version: Some(3),
            note: "  settled  ".into(),
        };
        let encoded = request.encode_to_vec();
        let c = CloseClaim::try_from(request).expect("a sound request");
        assert_eq!(c.target.encoded, encoded);
        assert_eq!(c.target.expected, Some(3));
        assert_eq!(c.note, "settled");
    }

    #[test]
    fn a_rejection_needs_no_amount_and_awards_nothing() {
        let request = |amount_awarded| RecordClaimDecisionRequest {
            claim_id: Uuid::from_u128(1).to_string(),
            request_id: Uuid::from_u128(2).to_string(),
            outcome: ClaimOutcome::Rejected as i32,
            amount_awarded,
            ..Default::default()
        };
        let c = RecordClaimDecision::try_from(request(None)).expect("no amount");
        assert_eq!(c.outcome, ClaimOutcome::Rejected);
        assert_eq!(c.amount_awarded, None);
        let awarded = Some(Money {
            currency: "EUR".into(),
            minor_units: 100,
        });
        assert_eq!(
            fields(RecordClaimDecision::try_from(request(awarded))),
            ["amount_awarded.minor_units"]
        );
    }
}
