//! The case: its aggregate, and the rules every service applies to a case through the
//! one command path ([`caseline_aggregate::Store::execute`]), never a copy: reading it,
//! joining its team when a referral is accepted, recording a risk assessed elsewhere;
//! and reading the helpline contact a case or referral was made from.
#![forbid(unsafe_code)]

pub mod domain;
pub mod members;

use std::time::SystemTime;

use caseline_aggregate::{Aggregate, Done, Intent, Refusal, Request, Store};
use caseline_eventlog::{
    Direction, Error as LogError, EventLog, Metadata, RecordedEvent, StreamName, Uuid,
};
use caseline_policy::CaseTeam;
use caseline_policy::teams::CASE_CATEGORY;
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{ContactRecorded, RiskAssessed, TeamMemberAdded};
use caseline_server::ApiError;

use crate::domain::{CaseState, Command, Event};

/// Stream category of helpline contacts (`contact-<id>`).
pub const CONTACT_CATEGORY: &str = "contact";

/// A case as its stream says, with when and by which agency it was opened.
#[derive(Clone, Debug, Default)]
pub struct Case {
    pub state: CaseState,
    pub opened_at: Option<SystemTime>,
    pub opened_by_agency: String,
}

/// A case loaded from its stream, with its version and the requests applied.
pub type Loaded = caseline_aggregate::Loaded<Case>;

impl Case {
    /// The team as the policy sees it.
    pub fn team(&self) -> CaseTeam {
        self.state
            .team
            .iter()
            .fold(CaseTeam::new(), |team, ((subject, agency), role)| {
                team.with_member(subject, agency, role)
            })
    }
}

impl Aggregate for Case {
    const CATEGORY: &'static str = CASE_CATEGORY;
    const KIND: &'static str = "case";
    type Command = Command;
    type Event = Event;

    fn apply(&mut self, event: &Event, recorded: &RecordedEvent) {
        if matches!(event, Event::Opened(_)) {
            self.opened_at = Some(recorded.recorded_at);
            self.opened_by_agency = recorded.metadata.agency.clone();
        }
        self.state = domain::evolve(std::mem::take(&mut self.state), event);
    }

    fn decide(&self, command: Command) -> Result<Vec<Event>, Refusal> {
        domain::decide(&self.state, command)
    }
}

/// The stream of the helpline contact `contact_id`.
pub fn contact_stream(contact_id: Uuid) -> Result<StreamName, ApiError> {
    Ok(StreamName::for_id(CONTACT_CATEGORY, contact_id)?)
}

/// What [`join_team`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// The member was added by this call, or by an earlier try of the same join.
    Added,
    /// They were on the team already (in whatever role): nothing was appended.
    AlreadyMember,
}

/// Adds `member` to the case's team under the case's rules (not on a closed case), as
/// the system's request `cause` (the id of the event that caused it): a retry with the
/// same cause appends nothing, even if the member was taken off the team since.
/// `metadata` says who caused it (and why, through its causation id).
pub async fn join_team(
    cases: &Store<Case>,
    case_id: Uuid,
    member: TeamMemberAdded,
    cause: Uuid,
    metadata: Metadata,
) -> Result<Joined, ApiError> {
    let done = on_behalf(cases, case_id, Command::Join(member), cause, metadata).await?;
    Ok(if done.changed {
        Joined::Added
    } else {
        Joined::AlreadyMember
    })
}

/// Records a risk assessment made elsewhere (a support plan's review) on the case,
/// under the case's rules (not on a closed case), as the system's request `cause` (a
/// retry appends nothing).
pub async fn assess_risk(
    cases: &Store<Case>,
    case_id: Uuid,
    assessment: RiskAssessed,
    cause: Uuid,
    metadata: Metadata,
) -> Result<(), ApiError> {
    on_behalf(
        cases,
        case_id,
        Command::AssessRisk(assessment),
        cause,
        metadata,
    )
    .await
    .map(|_| ())
}

/// Runs `command` on the case on another service's behalf, through the one command
/// path, as the system's request `cause`. The caller was authorised for the step that
/// causes it.
async fn on_behalf(
    cases: &Store<Case>,
    case_id: Uuid,
    command: Command,
    cause: Uuid,
    metadata: Metadata,
) -> Result<Done, ApiError> {
    let request = Request::system(cause);
    cases
        .execute(
            Intent {
                id: case_id,
                request: &request,
                expected: None,
                metadata,
            },
            None,
            command,
            &(),
        )
        .await
}

/// A helpline contact, as its stream says.
#[derive(Clone, Debug)]
pub struct Contact {
    /// The agency that recorded it (the only one to which it exists).
    pub agency: String,
    pub recorded: ContactRecorded,
    pub recorded_at: SystemTime,
    /// The case opened from it, if any.
    pub case_id: Option<Uuid>,
}

/// The contact `contact_id`, or `None` if there is none.
pub async fn read_contact(
    log: &dyn EventLog,
    contact_id: Uuid,
) -> Result<Option<Contact>, ApiError> {
    let stream = contact_stream(contact_id)?;
    let events = log
        .read_stream(&stream, Direction::Forwards, Some(0), 100)
        .await?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    if first.event_type != types::CONTACT_RECORDED {
        return Ok(None);
    }
    let recorded =
        ContactRecorded::decode(first.data.as_slice()).map_err(|_| LogError::Corrupt {
            position: first.position.to_string(),
            reason: "ContactRecorded payload does not decode".into(),
        })?;
    let case_id = events
        .iter()
        .filter(|e| e.event_type == types::CONTACT_CASE_OPENED)
        .find_map(|e| e.metadata.case_id);
    Ok(Some(Contact {
        agency: first.metadata.agency.clone(),
        recorded,
        recorded_at: first.recorded_at,
        case_id,
    }))
}
