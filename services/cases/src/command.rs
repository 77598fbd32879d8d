//! The typed commands CaseService's requests convert into: each request is checked once
//! at the edge, every bad field named, so the handlers hold parsed values only.

use std::collections::HashSet;
use std::time::SystemTime;

use caseline_auth::Role;
use caseline_eventlog::{Position, Uuid};
use caseline_policy::Compartment;
use caseline_proto::prost::Message;
use caseline_proto::v1::{
    AddNoteRequest, AddTeamMemberRequest, AgeBand, CallerKind, CaseSource, ChangeStageRequest,
    ConcernCategory, ContactChannel, DecideClosureRequest, Gender, GetCaseRequest,
    GetLinkedCasesRequest, GetTimelineRequest, LinkCasesRequest, LinkKind, ListCasesRequest,
    MilestoneKind, NoteCompartment, OpenCaseRequest, RecordContactRequest,
    RecordJusticeMilestoneRequest, RecordRiskAssessmentRequest, RemoveTeamMemberRequest,
    ReopenCaseRequest, RequestClosureRequest, RiskLevel, Stage, UnlinkCasesRequest, Urgency,
};
use caseline_server::ApiError;
use caseline_server::validate::{
    At, Check, MAX_LABEL_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS, Target,
};
use caseline_timeline::note_compartment;

/// How many concern categories there are (`ConcernCategory` without `UNSPECIFIED`).
const CONCERN_CATEGORIES: usize = 7;
/// Default and largest page of `ListCases`.
const LIST_PAGE: (u32, u32) = (50, 500);
/// Default and largest page of `GetTimeline`.
const TIMELINE_PAGE: (u32, u32) = (500, 1000);

/// Concern categories: at least one, each known, none twice.
fn concerns(check: &mut Check, field: &str, values: &[i32]) -> Vec<ConcernCategory> {
    if values.is_empty() {
        check.fail(field, "name at least one concern category");
        return Vec::new();
    }
    // More than there are categories must repeat one.
    if !check.repeated(field, values.len(), CONCERN_CATEGORIES) {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut categories = Vec::with_capacity(values.len());
    for v in values {
        categories.push(check.known(field, *v));
        if !seen.insert(*v) {
            check.fail(field, "must not repeat a category");
            break;
        }
    }
    categories
}

/// An open stage to move or reopen into.
fn open_stage(check: &mut Check, value: i32) -> Stage {
    let stage: Stage = check.known("stage", value);
    if stage == Stage::Closed {
        check.fail(
            "stage",
            "must be an open stage (closing needs RequestClosure)",
        );
    }
    stage
}

/// Roles a case's team may hold.
fn team_role(role: Role) -> bool {
    matches!(
        role,
        Role::HelplineCounsellor
            | Role::SocialWorker
            | Role::PoliceInvestigator
            | Role::Prosecutor
            | Role::HealthWorker
            | Role::VictimAdvocate
            | Role::Supervisor
    )
}

/// A filter on an enum: `None` (any) when unspecified.
fn filter<E>(check: &mut Check, field: &str, value: i32) -> Option<E>
where
    E: TryFrom<i32> + Default + PartialEq,
{
    match E::try_from(value) {
        Ok(e) if e == E::default() => None,
        Ok(e) => Some(e),
        Err(_) => {
            check.fail(field, "is not a known value");
            None
        }
    }
}

pub(crate) struct RecordContact {
    pub(crate) request_id: Uuid,
    pub(crate) channel: ContactChannel,
    pub(crate) caller_kind: CallerKind,
    pub(crate) concerns: Vec<ConcernCategory>,
    pub(crate) urgency: Urgency,
    pub(crate) anonymous: bool,
    pub(crate) summary: String,
    pub(crate) caller_name: String,
    pub(crate) caller_contact: String,
    /// The request as received, for its fingerprint.
    pub(crate) encoded: Vec<u8>,
}

impl TryFrom<RecordContactRequest> for RecordContact {
    type Error = ApiError;

    fn try_from(r: RecordContactRequest) -> Result<Self, ApiError> {
        let encoded = r.encode_to_vec();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let channel = check.known("channel", r.channel);
        let caller_kind = check.known("caller_kind", r.caller_kind);
        let concerns = concerns(&mut check, "concerns", &r.concerns);
        let urgency = check.known("urgency", r.urgency);
        check.text("summary", &r.summary, MAX_TEXT_CHARS, true);
        check.text("caller_name", &r.caller_name, MAX_LABEL_CHARS, false);
        check.text("caller_contact", &r.caller_contact, MAX_LABEL_CHARS, false);
        if r.anonymous && !(r.caller_name.is_empty() && r.caller_contact.is_empty()) {
            check.fail(
                "anonymous",
                "an anonymous contact has no caller name or contact details",
            );
        }
        check.done(Self {
            request_id,
            channel,
            caller_kind,
            concerns,
            urgency,
            anonymous: r.anonymous,
            summary: r.summary,
            caller_name: r.caller_name,
            caller_contact: r.caller_contact,
            encoded,
        })
    }
}

pub(crate) struct OpenCase {
    pub(crate) request_id: Uuid,
    pub(crate) contact_id: Option<Uuid>,
    /// Trimmed.
    pub(crate) pseudonym: String,
    pub(crate) name: String,
    pub(crate) date_of_birth: Option<String>,
    pub(crate) contact_details: String,
    pub(crate) age_band: AgeBand,
    pub(crate) gender: Gender,
    pub(crate) language: String,
    pub(crate) region: String,
    pub(crate) source: CaseSource,
    pub(crate) concerns: Vec<ConcernCategory>,
    pub(crate) initial_risk: RiskLevel,
    /// The request as received, for its fingerprint.
    pub(crate) encoded: Vec<u8>,
}

impl TryFrom<At<OpenCaseRequest>> for OpenCase {
    type Error = ApiError;

    fn try_from(At { request: r, now }: At<OpenCaseRequest>) -> Result<Self, ApiError> {
        let encoded = r.encode_to_vec();
        let mut check = Check::new();
        let request_id = check.uuid("request_id", &r.request_id);
        let contact_id = check.optional_uuid("contact_id", &r.contact_id);
        check.text("pseudonym", &r.pseudonym, 100, true);
        let identity = r.identity.unwrap_or_default();
        check.text("identity.name", &identity.name, MAX_LABEL_CHARS, false);
        let date_of_birth =
            check.date_of_birth("identity.date_of_birth", &identity.date_of_birth, now);
        check.text(
            "identity.contact_details",
            &identity.contact_details,
            MAX_LABEL_CHARS,
            false,
        );
        let age_band = check.known("age_band", r.age_band);
        let gender = check.known("gender", r.gender);
        if r.language.len() > 35
            || !r
                .language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            check.fail("language", "must be a BCP 47 tag such as en or sw-KE");
        }
        check.text("region", &r.region, MAX_LABEL_CHARS, false);
        let source = check.known("source", r.source);
        let concerns = concerns(&mut check, "concerns", &r.concerns);
        let initial_risk = check.known("initial_risk", r.initial_risk);
        check.done(Self {
            request_id,
            contact_id,
            pseudonym: r.pseudonym.trim().to_owned(),
            name: identity.name,
            date_of_birth,
            contact_details: identity.contact_details,
            age_band,
            gender,
            language: r.language,
            region: r.region,
            source,
            concerns,
            initial_risk,
            encoded,
        })
    }
}

pub(crate) struct RecordRiskAssessment {
    pub(crate) target: Target,
    pub(crate) level: RiskLevel,
    pub(crate) factors: String,
    pub(crate) immediate_actions: String,
}

impl TryFrom<RecordRiskAssessmentRequest> for RecordRiskAssessment {
    type Error = ApiError;

    fn try_from(r: RecordRiskAssessmentRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let level = check.known("level", r.level);
        check.text("factors", &r.factors, MAX_TEXT_CHARS, false);
        check.text(
            "immediate_actions",
            &r.immediate_actions,
            MAX_TEXT_CHARS,
            false,
        );
        check.done(Self {
            target,
            level,
            factors: r.factors,
            immediate_actions: r.immediate_actions,
        })
    }
}

pub(crate) struct AddTeamMember {
    pub(crate) target: Target,
    pub(crate) subject: String,
    pub(crate) agency: String,
    pub(crate) role: Role,
}

impl TryFrom<AddTeamMemberRequest> for AddTeamMember {
    type Error = ApiError;

    fn try_from(r: AddTeamMemberRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        check.id_label("subject", &r.subject);
        check.id_label("agency", &r.agency);
        // A refused role leaves a placeholder, which `done` never lets out.
        let role = match r.role.parse::<Role>() {
            Ok(role) if team_role(role) => role,
            Ok(_) => {
                check.fail(
                    "role",
                    "auditors, complaints officers, data protection officers and admins are never on a case's team",
                );
                Role::HelplineCounsellor
            }
            Err(_) => {
                check.fail("role", "must be a Caseline role name");
                Role::HelplineCounsellor
            }
        };
        check.done(Self {
            target,
            subject: r.subject,
            agency: r.agency,
            role,
        })
    }
}

pub(crate) struct RemoveTeamMember {
    pub(crate) target: Target,
    pub(crate) subject: String,
    pub(crate) agency: String,
}

impl TryFrom<RemoveTeamMemberRequest> for RemoveTeamMember {
    type Error = ApiError;

    fn try_from(r: RemoveTeamMemberRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        check.id_label("subject", &r.subject);
        check.id_label("agency", &r.agency);
        check.done(Self {
            target,
            subject: r.subject,
            agency: r.agency,
        })
    }
}

pub(crate) struct AddNote {
    pub(crate) target: Target,
    /// The compartment as the note's event names it.
    pub(crate) note: NoteCompartment,
    /// The compartment the policy decides on.
    pub(crate) compartment: Compartment,
    pub(crate) text: String,
}

impl TryFrom<AddNoteRequest> for AddNote {
    type Error = ApiError;

    fn try_from(r: AddNoteRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let note: NoteCompartment = check.known("compartment", r.compartment);
        // Every known, specified note compartment has a policy compartment; for the
        // others `known` failed, and `done` never lets the placeholder out.
        let compartment = note_compartment(note as i32).unwrap_or(Compartment::CaseCore);
        check.text("text", &r.text, MAX_TEXT_CHARS, true);
        check.done(Self {
            target,
            note,
            compartment,
            text: r.text,
        })
    }
}

pub(crate) struct LinkCases {
    pub(crate) target: Target,
    pub(crate) other: Uuid,
    pub(crate) kind: LinkKind,
    pub(crate) reason: String,
}

impl TryFrom<LinkCasesRequest> for LinkCases {
    type Error = ApiError;

    fn try_from(r: LinkCasesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let other = check.uuid("other_case_id", &r.other_case_id);
        let kind = check.known("kind", r.kind);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(Self {
            target,
            other,
            kind,
            reason: r.reason,
        })
    }
}

pub(crate) struct UnlinkCases {
    pub(crate) target: Target,
    pub(crate) other: Uuid,
    pub(crate) reason: String,
}

impl TryFrom<UnlinkCasesRequest> for UnlinkCases {
    type Error = ApiError;

    fn try_from(r: UnlinkCasesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let other = check.uuid("other_case_id", &r.other_case_id);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(Self {
            target,
            other,
            reason: r.reason,
        })
    }
}

pub(crate) struct ChangeStage {
    pub(crate) target: Target,
    pub(crate) stage: Stage,
    pub(crate) reason: String,
}

impl TryFrom<ChangeStageRequest> for ChangeStage {
    type Error = ApiError;

    fn try_from(r: ChangeStageRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let stage = open_stage(&mut check, r.stage);
        check.text("reason", &r.reason, MAX_REASON_CHARS, false);
        check.done(Self {
            target,
            stage,
            reason: r.reason,
        })
    }
}

pub(crate) struct RequestClosure {
    pub(crate) target: Target,
    pub(crate) reason: String,
}

impl TryFrom<RequestClosureRequest> for RequestClosure {
    type Error = ApiError;

    fn try_from(r: RequestClosureRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(Self {
            target,
            reason: r.reason,
        })
    }
}

pub(crate) struct DecideClosure {
    pub(crate) target: Target,
    pub(crate) approve: bool,
    pub(crate) comment: String,
}

impl TryFrom<DecideClosureRequest> for DecideClosure {
    type Error = ApiError;

    fn try_from(r: DecideClosureRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        check.text("comment", &r.comment, MAX_REASON_CHARS, !r.approve);
        check.done(Self {
            target,
            approve: r.approve,
            comment: r.comment,
        })
    }
}

pub(crate) struct ReopenCase {
    pub(crate) target: Target,
    pub(crate) stage: Stage,
    pub(crate) reason: String,
}

impl TryFrom<ReopenCaseRequest> for ReopenCase {
    type Error = ApiError;

    fn try_from(r: ReopenCaseRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let stage = open_stage(&mut check, r.stage);
        check.text("reason", &r.reason, MAX_REASON_CHARS, true);
        check.done(Self {
            target,
            stage,
            reason: r.reason,
        })
    }
}

pub(crate) struct RecordJusticeMilestone {
    pub(crate) target: Target,
    pub(crate) kind: MilestoneKind,
    pub(crate) occurred: SystemTime,
    pub(crate) description: String,
    /// When the child was informed; `None` when they were not.
    pub(crate) informed: Option<SystemTime>,
}

impl TryFrom<At<RecordJusticeMilestoneRequest>> for RecordJusticeMilestone {
    type Error = ApiError;

    fn try_from(
        At { request: r, now }: At<RecordJusticeMilestoneRequest>,
    ) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let target = check.target("case_id", &r.case_id, &r.request_id, r.expected_version, &r);
        let kind = check.known("kind", r.kind);
        let occurred = check.past("occurred_at", r.occurred_at.as_ref(), now);
        check.text("description", &r.description, MAX_TEXT_CHARS, false);
        let informed = if r.child_informed {
            Some(check.past("child_informed_at", r.child_informed_at.as_ref(), now))
        } else {
            if r.child_informed_at.is_some() {
                check.fail(
                    "child_informed_at",
                    "must be empty unless child_informed is true",
                );
            }
            None
        };
        check.done(Self {
            target,
            kind,
            occurred,
            description: r.description,
            informed,
        })
    }
}

pub(crate) struct GetCase {
    pub(crate) case_id: Uuid,
}

impl TryFrom<GetCaseRequest> for GetCase {
    type Error = ApiError;

    fn try_from(r: GetCaseRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        check.done(Self { case_id })
    }
}

pub(crate) struct ListCases {
    /// Only cases at this stage; `None`: any.
    pub(crate) stage: Option<Stage>,
    /// Only cases at this risk level; `None`: any.
    pub(crate) risk: Option<RiskLevel>,
    pub(crate) size: usize,
    /// The page starts below this position; `None` for the first page.
    pub(crate) before: Option<Position>,
    /// Only cases the caller is on the team of.
    pub(crate) mine: bool,
}

impl TryFrom<ListCasesRequest> for ListCases {
    type Error = ApiError;

    fn try_from(r: ListCasesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let stage = filter(&mut check, "stage", r.stage);
        let risk = filter(&mut check, "risk_level", r.risk_level);
        let size = check.page_size(r.page_size, LIST_PAGE);
        let before = check.page_token(&r.page_token);
        check.done(Self {
            stage,
            risk,
            size,
            before,
            mine: r.mine,
        })
    }
}

pub(crate) struct GetLinkedCases {
    pub(crate) case_id: Uuid,
}

impl TryFrom<GetLinkedCasesRequest> for GetLinkedCases {
    type Error = ApiError;

    fn try_from(r: GetLinkedCasesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        check.done(Self { case_id })
    }
}

pub(crate) struct GetTimeline {
    pub(crate) case_id: Uuid,
    pub(crate) size: usize,
    /// The page starts after this position; `None` for the first page.
    pub(crate) after: Option<Position>,
}

impl TryFrom<GetTimelineRequest> for GetTimeline {
    type Error = ApiError;

    fn try_from(r: GetTimelineRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let case_id = check.uuid("case_id", &r.case_id);
        let size = check.page_size(r.page_size, TIMELINE_PAGE);
        let after = check.page_token(&r.page_token);
        check.done(Self {
            case_id,
            size,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caseline_proto::v1::ChildIdentity;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-11-22T12:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_348_800)
    }

    fn fields<T>(converted: Result<T, ApiError>) -> Vec<String> {
        let Err(ApiError::InvalidArgument(violations)) = converted else {
            panic!("expected invalid argument");
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    /// Tests elsewhere assert lists of violations: the order is part of the answer.
    #[test]
    fn the_bad_fields_of_an_opening_are_named_in_the_order_checked() {
        let request = OpenCaseRequest {
            language: "en_GB".into(),
            identity: Some(ChildIdentity {
                date_of_birth: "2999-01-01".into(),
                ..ChildIdentity::default()
            }),
            ..OpenCaseRequest::default()
        };
        let converted = OpenCase::try_from(At {
            request,
            now: now(),
        });
        assert_eq!(
            fields(converted),
            [
                "request_id",
                "pseudonym",
                "identity.date_of_birth",
                "age_band",
                "gender",
                "language",
                "source",
                "concerns",
                "initial_risk",
            ]
        );
    }

    #[test]
    fn a_note_keeps_the_request_as_received_and_names_its_policy_compartment() {
        let request = AddNoteRequest {
            case_id: Uuid::from_u128(1).to_string(),
            request_id: Uuid::from_u128(2).to_string(),
            expected_version: Some(3),
            compartment: NoteCompartment::Health as i32,
            text: "a note".into(),
        };
        let encoded = request.encode_to_vec();
        let Ok(note) = AddNote::try_from(request) else {
            panic!("a valid note was refused");
        };
        assert_eq!(note.target.encoded, encoded);
        assert_eq!(note.target.expected, Some(3));
        assert_eq!(note.note, NoteCompartment::Health);
        assert_eq!(note.compartment, Compartment::HealthNotes);
        let unspecified = AddNoteRequest {
            compartment: 0,
            text: String::new(),
            ..AddNoteRequest::default()
        };
        assert_eq!(
            fields(AddNote::try_from(unspecified)),
            ["case_id", "request_id", "compartment", "text"]
        );
    }

    #[test]
    fn an_unspecified_list_filter_is_none_and_an_unknown_one_refused() {
        let Ok(all) = ListCases::try_from(ListCasesRequest::default()) else {
            panic!("an empty filter was refused");
        };
        assert_eq!((all.stage, all.risk, all.size), (None, None, 50));
        let unknown = ListCasesRequest {
            stage: 99,
            risk_level: 99,
            ..ListCasesRequest::default()
        };
        assert_eq!(
            fields(ListCases::try_from(unknown)),
            ["stage", "risk_level"]
        );
    }

    #[test]
    fn the_count_of_concern_categories_follows_the_proto() {
        let last = i32::try_from(CONCERN_CATEGORIES).unwrap_or(i32::MAX);
        assert!(ConcernCategory::try_from(last).is_ok());
        assert!(ConcernCategory::try_from(last + 1).is_err());
    }
}
