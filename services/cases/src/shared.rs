//! What other Caseline services read of a case and do to it, through the log: the
//! case's state as its own stream says, and joining its team when a referral is
//! accepted, and helpline contacts. Always the case's own rules ([`domain::decide`]),
//! never a copy.

use caseline_audit::turns::{Retry, turn};
use caseline_eventlog::{
    Direction, Error as LogError, EventLog, ExpectedVersion, Metadata, NewEvent, Uuid,
};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{ContactRecorded, RiskAssessed, TeamMemberAdded};
use caseline_server::ApiError;

use crate::contacts::contact_stream;
use crate::domain::{self, CaseState, Command, DomainError, Event};
use crate::store::case_stream;

/// The case as its stream says now, with its version (`None`: no such case).
pub async fn read_case(
    log: &dyn EventLog,
    case_id: Uuid,
) -> Result<(CaseState, Option<u64>), ApiError> {
    let stream = case_stream(case_id)?;
    let mut state = CaseState::default();
    let mut version = None;
    const PAGE: usize = 1000;
    loop {
        let from = version.map_or(0, |v: u64| v + 1);
        let page = log
            .read_stream(&stream, Direction::Forwards, Some(from), PAGE)
            .await?;
        for event in &page {
            let decoded =
                Event::decode(&event.event_type, &event.data).map_err(|_| LogError::Corrupt {
                    position: event.position.to_string(),
                    reason: format!("{} payload does not decode", event.event_type),
                })?;
            if let Some(e) = decoded {
                state = domain::evolve(state, &e);
            }
            version = Some(event.version);
        }
        if page.len() < PAGE {
            return Ok((state, version));
        }
    }
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
/// the event `event_id`: a retry with the same id appends nothing, even if the member
/// was taken off the team since. `metadata` says who caused it (and why, through its
/// causation id).
pub async fn join_team(
    log: &dyn EventLog,
    case_id: Uuid,
    member: TeamMemberAdded,
    event_id: Uuid,
    metadata: Metadata,
) -> Result<Joined, ApiError> {
    let key = (member.subject.clone(), member.agency.clone());
    let done = run_on_case(
        log,
        case_id,
        |state| state.team.contains_key(&key),
        Command::AddMember(member),
        event_id,
        metadata,
    )
    .await?;
    Ok(if done {
        Joined::Added
    } else {
        Joined::AlreadyMember
    })
}

/// Records a risk assessment made elsewhere (a support plan's review) on the case,
/// under the case's rules (not on a closed case), as the event `event_id` (a retry
/// appends nothing).
pub async fn assess_risk(
    log: &dyn EventLog,
    case_id: Uuid,
    assessment: RiskAssessed,
    event_id: Uuid,
    metadata: Metadata,
) -> Result<(), ApiError> {
    run_on_case(
        log,
        case_id,
        |_| false,
        Command::AssessRisk(assessment),
        event_id,
        metadata,
    )
    .await
    .map(|_| ())
}

/// Runs `command` on the case as the event `event_id`, in the case stream's turn
/// ([`caseline_audit::turns`]), at the version read (deciding again if another process
/// landed a command first), unless `already` says the case has what it
/// would bring. True if it was appended (now or by an earlier try with the same id).
async fn run_on_case(
    log: &dyn EventLog,
    case_id: Uuid,
    already: impl Fn(&CaseState) -> bool,
    command: Command,
    event_id: Uuid,
    metadata: Metadata,
) -> Result<bool, ApiError> {
    let stream = case_stream(case_id)?;
    let _turn = turn(&stream).await;
    let mut retry = Retry::new();
    loop {
        let (state, version) = read_case(log, case_id).await?;
        if already(&state) {
            return Ok(false);
        }
        let events = domain::decide(&state, command.clone()).map_err(|e| match e {
            DomainError::NoCase => ApiError::NotFound {
                kind: "case",
                id: case_id.to_string(),
            },
            DomainError::Precondition(why) => ApiError::FailedPrecondition(why.to_owned()),
        })?;
        let new = events
            .iter()
            .enumerate()
            .map(|(i, e)| NewEvent {
                // The given id for the first event, ids derived from it for any other.
                event_id: if i == 0 {
                    event_id
                } else {
                    Uuid::new_v5(&event_id, &(i as u64).to_be_bytes())
                },
                event_type: e.event_type().to_owned(),
                data: e.encode(),
                metadata: metadata.clone(),
            })
            .collect();
        let at = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        match log.append(&stream, at, new).await {
            Ok(_) => return Ok(true),
            Err(LogError::WrongExpectedVersion { .. }) if retry.again().await => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A helpline contact, as its stream says.
#[derive(Clone, Debug)]
pub struct Contact {
    /// The agency that recorded it (the only one to which it exists).
    pub agency: String,
    pub recorded: ContactRecorded,
    pub recorded_at: std::time::SystemTime,
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
