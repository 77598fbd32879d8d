//! Loading a referral from its stream and running a command on it: idempotent by
//! `request_id`, checked against `expected_version`, appended at the version read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use caseline_audit::Call;
use caseline_audit::request::{Request, reused};
use caseline_eventlog::{
    Direction, Error as LogError, EventLog, ExpectedVersion, NewEvent, RecordedEvent, StreamName,
    Uuid,
};
use caseline_proto::v1::events::{ReferralDeclined, ReferralOutcomeRecorded, ReferralWithdrawn};
use caseline_server::ApiError;

use crate::access::Authorise;
use crate::domain::{self, Command, DomainError, Event, ReferralState};

/// Stream category of referrals (`referral-<id>`).
pub const REFERRAL_CATEGORY: &str = "referral";
/// How often a command without `expected_version` is decided again after another
/// command on the same referral won the race.
const RACE_RETRIES: usize = 8;

pub(crate) fn referral_stream(referral_id: Uuid) -> Result<StreamName, ApiError> {
    Ok(StreamName::for_id(REFERRAL_CATEGORY, referral_id)?)
}

/// A request already applied to the referral.
#[derive(Clone, Copy, Debug)]
struct Applied {
    first_event_id: Uuid,
    last_version: u64,
}

/// When each step happened.
#[derive(Clone, Debug, Default)]
pub struct Times {
    pub made: Option<SystemTime>,
    pub acknowledged: Option<SystemTime>,
    pub accepted: Option<SystemTime>,
    pub declined: Option<SystemTime>,
    pub completed: Option<SystemTime>,
    pub withdrawn: Option<SystemTime>,
    pub escalated: Option<SystemTime>,
}

/// A referral as its stream says, up to `version`, with what reads show of it.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub state: ReferralState,
    pub version: Option<u64>,
    /// Who made it.
    pub made_by: String,
    pub times: Times,
    pub declined: Option<ReferralDeclined>,
    pub outcome: Option<ReferralOutcomeRecorded>,
    pub withdrawn: Option<ReferralWithdrawn>,
    requests: HashMap<Uuid, Applied>,
}

/// Where a referral belongs: its case, or the helpline contact it was made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Case(Uuid),
    Contact(Uuid),
}

impl Owner {
    /// The id whose data key seals the referral's text and whose access history
    /// records calls about it.
    pub fn id(self) -> Uuid {
        match self {
            Owner::Case(id) | Owner::Contact(id) => id,
        }
    }

    pub fn case_id(self) -> Option<Uuid> {
        match self {
            Owner::Case(id) => Some(id),
            Owner::Contact(_) => None,
        }
    }
}

impl Loaded {
    /// The case or contact it is about (`None` before it exists).
    pub fn owner(&self) -> Option<Owner> {
        let made = self.state.made.as_ref()?;
        if let Ok(id) = Uuid::parse_str(&made.case_id) {
            Some(Owner::Case(id))
        } else {
            Uuid::parse_str(&made.contact_id).ok().map(Owner::Contact)
        }
    }

    /// The id the referral was made about (its contact, if made from one; else its
    /// case), whose key fingerprints its requests: it stays the same when the referral
    /// moves onto a case, so a retry across that move is still recognised.
    pub fn origin(&self) -> Option<Uuid> {
        let made = self.state.made.as_ref()?;
        Uuid::parse_str(&made.contact_id)
            .or_else(|_| Uuid::parse_str(&made.case_id))
            .ok()
    }

    /// What the referral already answered `request`: its first answer if it was
    /// applied, ALREADY_EXISTS if its id was used here for a different request.
    pub fn answered(&self, request: &Request) -> Result<Option<u64>, ApiError> {
        match self.requests.get(&request.id) {
            None => Ok(None),
            Some(a) if a.first_event_id == request.event_id(0) => Ok(Some(a.last_version)),
            Some(_) => Err(reused()),
        }
    }

    /// Applies one event of the referral's stream.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        let decoded =
            Event::decode(&event.event_type, &event.data).map_err(|_| LogError::Corrupt {
                position: event.position.to_string(),
                reason: format!("{} payload does not decode", event.event_type),
            })?;
        if let Some(e) = decoded {
            let at = Some(event.recorded_at);
            match &e {
                Event::Made(_) => {
                    self.made_by = event.metadata.actor.clone();
                    self.times.made = at;
                }
                Event::Acknowledged(_) => self.times.acknowledged = at,
                Event::Accepted(_) => self.times.accepted = at,
                Event::Declined(d) => {
                    self.times.declined = at;
                    self.declined = Some(d.clone());
                }
                Event::OutcomeRecorded(o) => {
                    self.times.completed = at;
                    self.outcome = Some(o.clone());
                }
                Event::Withdrawn(w) => {
                    self.times.withdrawn = at;
                    self.withdrawn = Some(w.clone());
                }
                Event::Escalated(_) => self.times.escalated = at,
                Event::Attached(a) => {
                    // From now on the case's key opens the referral.
                    if let Some(d) = &mut self.declined {
                        d.reason_sealed = a.decline_reason_sealed.clone();
                    }
                    if let Some(o) = &mut self.outcome {
                        o.outcome_sealed = a.outcome_sealed.clone();
                    }
                    if let Some(w) = &mut self.withdrawn {
                        w.reason_sealed = a.withdraw_reason_sealed.clone();
                    }
                }
            }
            self.state = domain::evolve(std::mem::take(&mut self.state), &e);
        }
        if let Some(request_id) = event.metadata.request_id {
            self.requests
                .entry(request_id)
                .and_modify(|a| a.last_version = event.version)
                .or_insert(Applied {
                    first_event_id: event.event_id,
                    last_version: event.version,
                });
        }
        self.version = Some(event.version);
        Ok(())
    }
}

/// Reads referrals from the log.
#[derive(Debug)]
pub(crate) struct ReferralStore {
    log: Arc<dyn EventLog>,
}

/// What a command on a referral is.
pub(crate) struct Intent<'a> {
    pub referral_id: Uuid,
    pub request: &'a Request,
    pub expected: Option<u64>,
    /// The case (or contact) the referral belongs to, for the events' metadata.
    pub owner: Owner,
}

impl ReferralStore {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self { log }
    }

    /// The referral as the log says now (`version` `None`: no such referral).
    pub async fn load(&self, referral_id: Uuid) -> Result<Loaded, ApiError> {
        let stream = referral_stream(referral_id)?;
        let mut loaded = Loaded::default();
        const PAGE: usize = 1000;
        loop {
            let from = loaded.version.map_or(0, |v| v + 1);
            let page = self
                .log
                .read_stream(&stream, Direction::Forwards, Some(from), PAGE)
                .await?;
            for event in &page {
                loaded.apply(event)?;
            }
            if page.len() < PAGE {
                return Ok(loaded);
            }
        }
    }

    /// Runs `command` for `request`: a retry gets its first answer; `expected` must
    /// still stand; the events are appended at the version read, so a conflicting
    /// command that landed meanwhile makes this one decide again on the new state (or,
    /// with `expected`, answer ABORTED). `authorise` is asked on every state decided
    /// on, so a caller who lost their standing meanwhile never writes. `first`, if
    /// given, is the state the caller was authorised on, used for the first attempt.
    /// Returns the referral's version after the command.
    pub async fn execute(
        &self,
        call: &Call,
        intent: Intent<'_>,
        first: Option<Loaded>,
        command: Command,
        authorise: Authorise<'_>,
    ) -> Result<u64, ApiError> {
        let Intent {
            referral_id,
            request,
            expected,
            owner,
        } = intent;
        let stream = referral_stream(referral_id)?;
        let mut first = first;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = match first.take() {
                Some(loaded) => loaded,
                None => self.load(referral_id).await?,
            };
            if let Some(version) = loaded.answered(request)? {
                return Ok(version);
            }
            authorise.check(call, referral_id, &loaded).await?;
            if loaded.state.exists() && loaded.owner() != Some(owner) {
                // Moved onto its case since the command was sealed under the contact's
                // key: nothing is stored; a retry of the same request seals anew.
                return Err(ApiError::Log(LogError::WrongExpectedVersion {
                    stream,
                    expected: expected.map_or(ExpectedVersion::Any, ExpectedVersion::Exact),
                    actual: loaded.version,
                }));
            }
            if let Some(v) = expected
                && loaded.version != Some(v)
            {
                return Err(ApiError::Log(LogError::WrongExpectedVersion {
                    stream,
                    expected: ExpectedVersion::Exact(v),
                    actual: loaded.version,
                }));
            }
            let events = domain::decide(&loaded.state, command.clone())
                .map_err(|e| domain_error(e, referral_id))?;
            let metadata = call.event_metadata(owner.case_id(), Some(request.id));
            let new: Vec<NewEvent> = events
                .iter()
                .enumerate()
                .map(|(i, e)| NewEvent {
                    event_id: request.event_id(i),
                    event_type: e.event_type().to_owned(),
                    data: e.encode(),
                    metadata: metadata.clone(),
                })
                .collect();
            let at = loaded
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(&stream, at, new).await {
                Ok(result) => return Ok(result.last_version),
                Err(LogError::WrongExpectedVersion { .. })
                    if expected.is_none() && attempt < RACE_RETRIES =>
                {
                    continue;
                }
                Err(LogError::WrongExpectedVersion { actual, .. }) => {
                    return Err(ApiError::Log(LogError::WrongExpectedVersion {
                        stream,
                        expected: expected.map_or(at, ExpectedVersion::Exact),
                        actual,
                    }));
                }
                Err(LogError::EventIdConflict { .. }) => {
                    // The same request raced itself: the stored one is the answer.
                    let loaded = self.load(referral_id).await?;
                    return loaded.answered(request)?.ok_or_else(reused);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The status a domain refusal answers with.
pub(crate) fn domain_error(e: DomainError, referral_id: Uuid) -> ApiError {
    match e {
        DomainError::NoReferral => ApiError::NotFound {
            kind: "referral",
            id: referral_id.to_string(),
        },
        DomainError::Invalid { field, reason } => {
            ApiError::InvalidArgument(vec![caseline_server::FieldViolation::new(field, reason)])
        }
        DomainError::Precondition(why) => ApiError::FailedPrecondition(why.to_owned()),
    }
}
