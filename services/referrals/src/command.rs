//! The typed commands ReferralService's requests convert into: each request is checked
//! once, at the edge, with every bad field named, and handlers hold parsed values only.

use std::collections::HashSet;

use caseline_eventlog::{Position, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::v1::{
    AcceptReferralRequest, AcknowledgeReferralRequest, ConsentBasis, DeclineReferralRequest,
    GetReferralRequest, ListInboxRequest, ListOutboxRequest, ListOverdueReferralsRequest,
    MakeReferralRequest, RecordReferralOutcomeRequest, ReferralStatus, ReferralUrgency,
    ServiceType, WithdrawReferralRequest,
};
use caseline_server::ApiError;
use caseline_server::validate::{Check, MAX_REASON_CHARS, MAX_TEXT_CHARS, Target};

use crate::store::Owner;

/// Default and largest page of the lists.
const LIST_PAGE: (u32, u32) = (50, 500);

/// A request with the caller's agency, for the check that compares a field with it (a
/// referral goes to another agency than the caller's own).
#[derive(Clone, Debug)]
pub(crate) struct Sent<'a, R> {
    pub request: R,
    pub agency: &'a str,
}

/// A new referral.
#[derive(Debug)]
pub(crate) struct MakeReferral {
    pub request_id: Uuid,
    /// Exactly one of the case or the contact, as the request named it.
    pub owner: Owner,
    pub to_agency: String,
    pub service: ServiceType,
    pub urgency: ReferralUrgency,
    pub reason: String,
    pub consent: ConsentBasis,
    pub legal_basis: String,
    /// The request as received: its fingerprint.
    pub encoded: Vec<u8>,
}

impl TryFrom<Sent<'_, MakeReferralRequest>> for MakeReferral {
    type Error = ApiError;

    fn try_from(
        Sent { request: r, agency }: Sent<'_, MakeReferralRequest>,
    ) -> Result<Self, ApiError> {
        let encoded = r.encode_to_vec();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let case_id = check.optional_uuid("case_id", &r.case_id);
        let contact_id = check.optional_uuid("contact_id", &r.contact_id);
        if r.case_id.is_empty() == r.contact_id.is_empty() {
            check.fail("case_id", "give exactly one of case_id and contact_id");
        }
        check.id_label("to_agency", &r.to_agency);
        if r.to_agency == agency {
            check.fail("to_agency", "must be another agency than your own");
        }
        let service = known_service(&mut check, "service", r.service);
        let urgency: ReferralUrgency = check.known("urgency", r.urgency);
        check.text("reason", &r.reason, MAX_TEXT_CHARS, true);
        let consent: ConsentBasis = check.known("consent", r.consent);
        check.text("legal_basis", &r.legal_basis, MAX_REASON_CHARS, false);
        match consent {
            ConsentBasis::NotRequired if r.legal_basis.trim().is_empty() => check.fail(
                "legal_basis",
                "state the legal basis when consent is not required",
            ),
            ConsentBasis::GivenByChild | ConsentBasis::GivenByGuardian
                if !r.legal_basis.trim().is_empty() =>
            {
                check.fail("legal_basis", "only when consent is not required")
            }
            _ => {}
        }
        // Neither or both named is refused above: the nil case only stands in while a
        // fault is being reported.
        let owner = match (case_id, contact_id) {
            (Some(case_id), _) => Owner::Case(case_id),
            (None, Some(contact_id)) => Owner::Contact(contact_id),
            (None, None) => Owner::Case(Uuid::nil()),
        };
        check.done(Self {
            request_id,
            owner,
            to_agency: r.to_agency,
            service,
            urgency,
            reason: r.reason,
            consent,
            legal_basis: r.legal_basis,
            encoded,
        })
    }
}

/// The receiving agency has seen the referral.
#[derive(Debug)]
pub(crate) struct AcknowledgeReferral {
    pub target: Target,
}

impl TryFrom<AcknowledgeReferralRequest> for AcknowledgeReferral {
    type Error = ApiError;

    fn try_from(r: AcknowledgeReferralRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "referral_id",
            &r.referral_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.done(Self { target })
    }
}

/// The receiving agency takes the referral on.
#[derive(Debug)]
pub(crate) struct AcceptReferral {
    pub target: Target,
}

impl TryFrom<AcceptReferralRequest> for AcceptReferral {
    type Error = ApiError;

    fn try_from(r: AcceptReferralRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "referral_id",
            &r.referral_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.done(Self { target })
    }
}

/// The receiving agency turns the referral down.
#[derive(Debug)]
pub(crate) struct DeclineReferral {
    pub target: Target,
    pub reason: String,
    /// Another service the child should be referred to, if any.
    pub suggested_service: Option<ServiceType>,
}

impl TryFrom<DeclineReferralRequest> for DeclineReferral {
    type Error = ApiError;

    fn try_from(r: DeclineReferralRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "referral_id",
            &r.referral_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        let suggested_service = match r.suggested_service {
            0 => None,
            value => Some(known_service(&mut check, "suggested_service", value)),
        };
        check.done(Self {
            target,
            reason: r.reason,
            suggested_service,
        })
    }
}

/// What the receiving agency did.
#[derive(Debug)]
pub(crate) struct RecordReferralOutcome {
    pub target: Target,
    pub outcome: String,
}

impl TryFrom<RecordReferralOutcomeRequest> for RecordReferralOutcome {
    type Error = ApiError;

    fn try_from(r: RecordReferralOutcomeRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "referral_id",
            &r.referral_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("outcome", &r.outcome, MAX_TEXT_CHARS, true);
        check.done(Self {
            target,
            outcome: r.outcome,
        })
    }
}

/// The referring side takes the referral back.
#[derive(Debug)]
pub(crate) struct WithdrawReferral {
    pub target: Target,
    pub reason: String,
}

impl TryFrom<WithdrawReferralRequest> for WithdrawReferral {
    type Error = ApiError;

    fn try_from(r: WithdrawReferralRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target(
            "referral_id",
            &r.referral_id,
            &r.request_id,
            r.expected_version,
            &r,
        );
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(Self {
            target,
            reason: r.reason,
        })
    }
}

/// One referral, to read.
#[derive(Debug)]
pub(crate) struct GetReferral {
    pub referral_id: Uuid,
}

impl TryFrom<GetReferralRequest> for GetReferral {
    type Error = ApiError;

    fn try_from(r: GetReferralRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let referral_id = check.uuid("referral_id", &r.referral_id);
        check.done(Self { referral_id })
    }
}

/// Which page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub size: usize,
    /// Where the previous page ended (`None` for the first).
    pub after: Option<Position>,
}

fn page(check: &mut Check, size: u32, token: &str) -> Page {
    Page {
        size: check.page_size(size, LIST_PAGE),
        after: check.page_token(token),
    }
}

/// Referrals sent to the caller's agency.
#[derive(Debug)]
pub(crate) struct ListInbox {
    /// Empty: any status.
    pub statuses: HashSet<ReferralStatus>,
    pub page: Page,
}

impl TryFrom<ListInboxRequest> for ListInbox {
    type Error = ApiError;

    fn try_from(r: ListInboxRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let statuses = statuses(&mut check, "statuses", &r.statuses);
        let page = page(&mut check, r.page_size, &r.page_token);
        check.done(Self { statuses, page })
    }
}

/// Referrals the caller's agency made.
#[derive(Debug)]
pub(crate) struct ListOutbox {
    /// Only those the caller made.
    pub mine: bool,
    /// Empty: any status.
    pub statuses: HashSet<ReferralStatus>,
    pub page: Page,
}

impl TryFrom<ListOutboxRequest> for ListOutbox {
    type Error = ApiError;

    fn try_from(r: ListOutboxRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let statuses = statuses(&mut check, "statuses", &r.statuses);
        let page = page(&mut check, r.page_size, &r.page_token);
        check.done(Self {
            mine: r.mine,
            statuses,
            page,
        })
    }
}

/// Overdue referrals to or from the caller's agency.
#[derive(Debug)]
pub(crate) struct ListOverdueReferrals {
    pub page: Page,
}

impl TryFrom<ListOverdueReferralsRequest> for ListOverdueReferrals {
    type Error = ApiError;

    fn try_from(r: ListOverdueReferralsRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let page = page(&mut check, r.page_size, &r.page_token);
        check.done(Self { page })
    }
}

fn statuses(check: &mut Check, field: &str, values: &[i32]) -> HashSet<ReferralStatus> {
    check.known_set(field, values)
}

/// A known, specified service (the default stands in when it is not).
fn known_service(check: &mut Check, field: &str, value: i32) -> ServiceType {
    check.known(field, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: ApiError) -> Vec<(String, String)> {
        match e {
            ApiError::InvalidArgument(v) => {
                v.into_iter().map(|v| (v.field, v.description)).collect()
            }
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn made(case_id: &str, contact_id: &str) -> MakeReferralRequest {
        MakeReferralRequest {
            request_id: id(1).to_string(),
            case_id: case_id.to_owned(),
            contact_id: contact_id.to_owned(),
            to_agency: "health".to_owned(),
            service: ServiceType::Health as i32,
            urgency: ReferralUrgency::Routine as i32,
            reason: "needs care".to_owned(),
            consent: ConsentBasis::GivenByGuardian as i32,
            legal_basis: String::new(),
        }
    }

    fn make(request: MakeReferralRequest) -> Result<MakeReferral, ApiError> {
        MakeReferral::try_from(Sent {
            request,
            agency: "police",
        })
    }

    #[test]
    fn a_referral_belongs_to_the_one_id_named() {
        let owner = id(3);
        let request = made("", &owner.to_string());
        let encoded = request.encode_to_vec();
        let c = make(request).expect("valid");
        assert_eq!(c.owner, Owner::Contact(owner));
        assert_eq!(
            c.encoded, encoded,
            "the fingerprint is the request as received"
        );
        let c = make(made(&owner.to_string(), "")).expect("valid");
        assert_eq!(c.owner, Owner::Case(owner));
    }

    #[test]
    fn neither_or_both_ids_is_refused_naming_case_id() {
        let both = id(3).to_string();
        for request in [made("", ""), made(&both, &both)] {
            let e = make(request).expect_err("refused");
            assert_eq!(
                fields(e),
                [(
                    "case_id".to_owned(),
                    "give exactly one of case_id and contact_id".to_owned()
                )]
            );
        }
    }

    #[test]
    fn every_bad_field_is_named_in_order() {
        let mut request = made("not-a-uuid", "");
        request.to_agency = "police".to_owned();
        request.service = 0;
        request.consent = ConsentBasis::NotRequired as i32;
        let e = make(request).expect_err("refused");
        let names: Vec<_> = fields(e).into_iter().map(|(f, _)| f).collect();
        assert_eq!(names, ["case_id", "to_agency", "service", "legal_basis"]);
    }

    #[test]
    fn no_suggested_service_is_none_and_an_unknown_one_is_named() {
        let request = |suggested_service| DeclineReferralRequest {
            request_id: id(1).to_string(),
            referral_id: id(2).to_string(),
            expected_version: None,
            reason: "full".to_owned(),
            suggested_service,
        };
        let c = DeclineReferral::try_from(request(0)).expect("valid");
        assert_eq!(c.suggested_service, None);
        let e = DeclineReferral::try_from(request(9_999)).expect_err("refused");
        assert_eq!(
            fields(e),
            [(
                "suggested_service".to_owned(),
                "is not a known value".to_owned()
            )]
        );
    }
}
