//! Valid requests the tests start from (and spoil one field of): a parent's contact about
//! a child, and the opening of that child's case.

use caseline_proto::v1::{
    AddTeamMemberRequest, AgeBand, CallerKind, CaseSource, ChildIdentity, ConcernCategory,
    ContactChannel, Gender, OpenCaseRequest, RecordContactRequest, RiskLevel, Urgency,
};

/// The child's name in every case [`opening`] opens.
pub const CHILD_NAME: &str = "Jane Doe";
/// The summary of every contact [`contact_request`] records.
pub const CONTACT_SUMMARY: &str = "The aunt reports messages from an adult asking for photos.";
/// The caller named in every contact [`contact_request`] records.
pub const CALLER_NAME: &str = "Aunt May";

/// A valid RecordContact: a parent phoning about grooming, with a named caller.
pub fn contact_request(request_id: String) -> RecordContactRequest {
    RecordContactRequest {
        request_id,
        channel: ContactChannel::Phone as i32,
        caller_kind: CallerKind::Parent as i32,
        concerns: vec![ConcernCategory::Grooming as i32],
        urgency: Urgency::Urgent as i32,
        anonymous: false,
        summary: CONTACT_SUMMARY.into(),
        caller_name: CALLER_NAME.into(),
        caller_contact: "+254 700 000 000".into(),
    }
}

/// A valid opening with the child's name, from `contact_id` (empty: none).
pub fn opening(pseudonym: &str, contact_id: &str, risk: RiskLevel) -> OpenCaseRequest {
    OpenCaseRequest {
        request_id: crate::rid(),
        contact_id: contact_id.to_owned(),
        pseudonym: pseudonym.to_owned(),
        identity: Some(ChildIdentity {
            name: CHILD_NAME.into(),
            date_of_birth: "2011-04-03".into(),
            contact_details: "via the aunt".into(),
        }),
        age_band: AgeBand::AgeBand13To15 as i32,
        gender: Gender::Girl as i32,
        language: "sw-KE".into(),
        region: "North".into(),
        source: CaseSource::Helpline as i32,
        concerns: vec![ConcernCategory::Grooming as i32],
        initial_risk: risk as i32,
    }
}

/// A request to add `who` (their subject, agency and role) to the team of `case_id`.
pub fn add_member_request(case_id: &str, who: &crate::User) -> AddTeamMemberRequest {
    AddTeamMemberRequest {
        case_id: case_id.into(),
        request_id: crate::rid(),
        expected_version: None,
        subject: who.sub.clone(),
        agency: who.agency.clone(),
        role: who.role.as_str().into(),
    }
}
