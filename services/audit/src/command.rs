//! The typed requests AuditService's requests convert into: each request is checked
//! once, at the edge, a bad field named, and handlers hold parsed values only.

use std::time::SystemTime;

use caseline_auth::Role;
use caseline_eventlog::{Position, StreamName, Uuid};
use caseline_proto::prost_types::Timestamp;
use caseline_proto::v1::{
    AccessHistoryEntry, GetTimelineAsOfRequest, ListBreakGlassUsesRequest, Outcome,
    ReplayAccessHistoryRequest, VerifyIntegrityRequest, get_timeline_as_of_request,
    verify_integrity_request,
};
use caseline_server::{ApiError, Check, FieldViolation};

/// Default and largest page of the review list of break-glass use.
const BREAK_GLASS_PAGE: (u32, u32) = (50, 500);
/// Default and largest page of a timeline as of an instant.
const TIMELINE_PAGE: (u32, u32) = (500, 1000);

/// A validated replay filter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub case_id: Option<Uuid>,
    actor: Option<String>,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    outcome: Option<Outcome>,
}

impl TryFrom<ReplayAccessHistoryRequest> for Filter {
    type Error = ApiError;

    fn try_from(r: ReplayAccessHistoryRequest) -> Result<Self, ApiError> {
        let case_id = match r.case_id.as_str() {
            "" => None,
            id => Some(parse_case_id("case_id", id)?),
        };
        let from = r
            .from
            .as_ref()
            .map(|t| from_timestamp("from", t))
            .transpose()?;
        let to = r.to.as_ref().map(|t| from_timestamp("to", t)).transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(invalid("to", "must not be before from"));
        }
        let outcome = match Outcome::try_from(r.outcome) {
            Ok(Outcome::Unspecified) => None,
            Ok(o) => Some(o),
            Err(_) => return Err(invalid("outcome", "unknown outcome")),
        };
        if r.actor.len() > 256 {
            return Err(invalid("actor", "must be at most 256 bytes"));
        }
        Ok(Self {
            case_id,
            actor: (!r.actor.is_empty()).then_some(r.actor),
            from,
            to,
            outcome,
        })
    }
}

impl Filter {
    pub(crate) fn admits(&self, entry: &AccessHistoryEntry, at: SystemTime) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == entry.actor)
            && self.from.is_none_or(|from| at >= from)
            && self.to.is_none_or(|to| at < to)
            && self.outcome.is_none_or(|o| o as i32 == entry.outcome)
    }
}

/// Which hash chains to verify.
#[derive(Debug)]
pub(crate) enum VerifyIntegrity {
    /// Every stream holding events of the case.
    Case(Uuid),
    /// One stream.
    Stream(StreamName),
    /// The whole log.
    Everything,
}

impl TryFrom<VerifyIntegrityRequest> for VerifyIntegrity {
    type Error = ApiError;

    fn try_from(r: VerifyIntegrityRequest) -> Result<Self, ApiError> {
        let scope = r
            .scope
            .ok_or_else(|| invalid("scope", "name a case_id, a stream, or everything"))?;
        match scope {
            verify_integrity_request::Scope::CaseId(id) => {
                Ok(Self::Case(parse_case_id("case_id", &id)?))
            }
            verify_integrity_request::Scope::Stream(name) => StreamName::new(name)
                .map(Self::Stream)
                .map_err(|_| invalid("stream", "must be a stream name such as case-<uuid>")),
            verify_integrity_request::Scope::Everything(true) => Ok(Self::Everything),
            verify_integrity_request::Scope::Everything(false) => {
                Err(invalid("everything", "must be true when given"))
            }
        }
    }
}

/// A page of the review list of break-glass use.
#[derive(Debug)]
pub(crate) struct ListBreakGlassUses {
    /// Only uses granted at or after this instant.
    pub since: Option<SystemTime>,
    pub size: usize,
    /// Where the previous page ended.
    pub cursor: Position,
}

impl TryFrom<ListBreakGlassUsesRequest> for ListBreakGlassUses {
    type Error = ApiError;

    fn try_from(r: ListBreakGlassUsesRequest) -> Result<Self, ApiError> {
        let mut check = Check::new();
        let since = check.timestamp("since", r.since.as_ref());
        let size = check.page_size(r.page_size, BREAK_GLASS_PAGE);
        let cursor = check.page_token(&r.page_token).unwrap_or(Position::START);
        check.done(Self {
            since,
            size,
            cursor,
        })
    }
}

/// Whose sight of the timeline is asked about.
#[derive(Debug)]
pub(crate) enum Viewer {
    /// A user as they were then.
    Identity {
        subject: String,
        agency: String,
        role: Role,
    },
    /// Any member of the team in this role.
    Role(Role),
}

/// What one viewer could see of a case's timeline at an instant: a page of it.
#[derive(Debug)]
pub(crate) struct TimelineAsOf {
    pub case_id: Uuid,
    pub as_of: SystemTime,
    pub viewer: Viewer,
    pub size: usize,
    /// Where the previous page ended.
    pub after: Position,
}

impl TryFrom<GetTimelineAsOfRequest> for TimelineAsOf {
    type Error = ApiError;

    fn try_from(r: GetTimelineAsOfRequest) -> Result<Self, ApiError> {
        // The page first, every fault of it named; then the question, its first fault.
        let mut check = Check::new();
        let size = check.page_size(r.page_size, TIMELINE_PAGE);
        let after = check.page_token(&r.page_token).unwrap_or(Position::START);
        check.done(())?;
        let case_id = parse_case_id("case_id", &r.case_id)?;
        let as_of = from_timestamp(
            "as_of",
            r.as_of
                .as_ref()
                .ok_or_else(|| invalid("as_of", "is required"))?,
        )?;
        let viewer = match r.viewer {
            None => return Err(invalid("viewer", "name an identity or a role")),
            Some(get_timeline_as_of_request::Viewer::Role(name)) => {
                Viewer::Role(role("role", &name)?)
            }
            Some(get_timeline_as_of_request::Viewer::Identity(v)) => {
                for (field, value) in [
                    ("identity.subject", &v.subject),
                    ("identity.agency", &v.agency),
                ] {
                    if value.is_empty() || value.len() > 256 {
                        return Err(invalid(field, "is required, at most 256 bytes"));
                    }
                }
                let role = role("identity.role", &v.role)?;
                Viewer::Identity {
                    subject: v.subject,
                    agency: v.agency,
                    role,
                }
            }
        };
        Ok(Self {
            case_id,
            as_of,
            viewer,
            size,
            after,
        })
    }
}

fn role(field: &str, name: &str) -> Result<Role, ApiError> {
    name.parse::<Role>()
        .map_err(|_| invalid(field, "must be a Caseline role name"))
}

fn invalid(field: &str, description: &str) -> ApiError {
    ApiError::InvalidArgument(vec![FieldViolation::new(field, description)])
}

fn parse_case_id(field: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| invalid(field, "must be a UUID"))
}

/// A request's `Timestamp`, held to the range of the type (the shared check).
fn from_timestamp(field: &str, t: &Timestamp) -> Result<SystemTime, ApiError> {
    caseline_server::validate::instant(field, t).map_err(|v| ApiError::InvalidArgument(vec![v]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn a_timelines_page_is_named_before_its_question() {
        let bad = GetTimelineAsOfRequest {
            page_size: 1_001,
            page_token: "x".to_owned(),
            ..GetTimelineAsOfRequest::default()
        };
        let e = TimelineAsOf::try_from(bad).expect_err("refused");
        assert_eq!(fields(e), ["page_size", "page_token"]);
        let e = TimelineAsOf::try_from(GetTimelineAsOfRequest::default()).expect_err("refused");
        assert_eq!(fields(e), ["case_id"]);
    }

    #[test]
    fn a_role_is_any_member_in_it() {
        let q = TimelineAsOf::try_from(GetTimelineAsOfRequest {
            case_id: Uuid::from_u128(1).to_string(),
            as_of: Some(Timestamp::default()),
            viewer: Some(get_timeline_as_of_request::Viewer::Role(
                Role::SocialWorker.as_str().to_owned(),
            )),
            ..GetTimelineAsOfRequest::default()
        })
        .expect("valid");
        assert!(matches!(q.viewer, Viewer::Role(Role::SocialWorker)));
        assert_eq!((q.size, q.after), (500, Position::START));
    }

    #[test]
    fn a_stream_to_verify_is_a_stream_name() {
        let request = |scope| VerifyIntegrityRequest { scope: Some(scope) };
        let c = VerifyIntegrity::try_from(request(verify_integrity_request::Scope::Stream(
            "case-1".to_owned(),
        )))
        .expect("valid");
        assert!(matches!(c, VerifyIntegrity::Stream(s) if s.as_str() == "case-1"));
        let e = VerifyIntegrity::try_from(request(verify_integrity_request::Scope::Stream(
            "Case 1".to_owned(),
        )))
        .expect_err("refused");
        assert_eq!(fields(e), ["stream"]);
        let e =
            VerifyIntegrity::try_from(VerifyIntegrityRequest { scope: None }).expect_err("refused");
        assert_eq!(fields(e), ["scope"]);
    }
}
