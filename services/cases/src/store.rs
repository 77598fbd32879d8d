//! Loading a case from its stream and running a command on it: idempotent by
//! `request_id`, checked against `expected_version`, appended at the version read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use caseline_audit::Call;
use caseline_audit::aggregate::Requests;
pub(crate) use caseline_audit::request::{Request, new_aggregate_id, reused};
use caseline_audit::turns::{Retry, turn};
use caseline_eventlog::{
    Direction, Error as LogError, EventLog, ExpectedVersion, NewEvent, RecordedEvent, StreamName,
    Uuid,
};
use caseline_policy::teams::CASE_CATEGORY;
use caseline_policy::{Action, CaseTeam, Entry};
use caseline_server::ApiError;

use crate::domain::{self, CaseState, Command, DomainError, Event};

/// Cases whose state is kept between commands; beyond this the cache starts afresh.
const CACHE_CASES: usize = 10_000;

/// A case as its stream says, up to `version`.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub state: CaseState,
    pub version: Option<u64>,
    pub opened_at: Option<SystemTime>,
    pub opened_by_agency: String,
    /// The requests applied, the most recent in memory (the log is asked about older
    /// ones). Shared with the cached copy, so handing out a snapshot does not copy it.
    requests: Arc<Requests>,
}

impl Loaded {
    /// What the case `case_id` already answered `request`: its first answer if it was
    /// applied, ALREADY_EXISTS if its id was used here for a different request, `None`
    /// if the case has not seen it. Also for what a command does outside the case's
    /// stream before [`CaseStore::execute`] (claiming a contact, the other side of a
    /// link), which a retry must neither redo nor be refused by.
    pub async fn answered(
        &self,
        log: &dyn EventLog,
        case_id: Uuid,
        request: &Request,
    ) -> Result<Option<Done>, ApiError> {
        Ok(self
            .requests
            .answered(log, &case_stream(case_id)?, request)
            .await?
            .map(|version| Done { version }))
    }

    /// The team as the policy sees it, at this version.
    pub fn team(&self) -> CaseTeam {
        self.state
            .team
            .iter()
            .fold(CaseTeam::new(), |team, ((subject, agency), role)| {
                team.with_member(subject, agency, role)
            })
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        let decoded =
            Event::decode(&event.event_type, &event.data).map_err(|_| LogError::Corrupt {
                position: event.position.to_string(),
                reason: format!("{} payload does not decode", event.event_type),
            })?;
        if let Some(e) = decoded {
            if matches!(e, Event::Opened(_)) {
                self.opened_at = Some(event.recorded_at);
                self.opened_by_agency = event.metadata.agency.clone();
            }
            self.state = domain::evolve(std::mem::take(&mut self.state), &e);
        }
        Arc::make_mut(&mut self.requests).record(event);
        self.version = Some(event.version);
        Ok(())
    }
}

/// What a command is about: its case, its request, the version the client saw, and
/// what it does for the policy (`None` only for opening a case).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Intent<'a> {
    pub case_id: Uuid,
    pub request: &'a Request,
    pub expected: Option<u64>,
    pub action: Option<Action>,
}

/// The outcome of a command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Done {
    /// The case's version after the command.
    pub version: u64,
}

/// Cases, loaded from the log and kept with their version.
#[derive(Debug)]
pub(crate) struct CaseStore {
    log: Arc<dyn EventLog>,
    cache: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Loaded>>>>,
}

impl CaseStore {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The case as the log says now (`version` `None`: no such case).
    pub async fn load(&self, case_id: Uuid) -> Result<Loaded, ApiError> {
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_CASES && !cache.contains_key(&case_id) {
                cache.clear();
            }
            Arc::clone(cache.entry(case_id).or_default())
        };
        let mut loaded = slot.lock().await;
        let stream = case_stream(case_id)?;
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
                break;
            }
        }
        Ok(loaded.clone())
    }

    /// Runs `command` on the case for `request`, in the case stream's turn
    /// ([`caseline_audit::turns`]): a retry of a request already applied gets its first
    /// answer; `expected` (the version the client saw) must still stand; the events are
    /// appended at the version read, so a conflicting command that landed meanwhile from
    /// another process makes this one decide again on the new state (or, with
    /// `expected`, answer ABORTED).
    ///
    /// `action` (what the command does, for the policy; `None` only for opening) is
    /// decided again on the team of the very state the events are appended to, so a
    /// caller removed after their first check never writes. `first`, if given, is the
    /// state the caller was authorised on, used for the first attempt unless a command
    /// of this process appended past it meanwhile.
    pub async fn execute(
        &self,
        call: &Call,
        intent: Intent<'_>,
        first: Option<Loaded>,
        command: Command,
    ) -> Result<Done, ApiError> {
        let Intent {
            case_id,
            request,
            expected,
            action,
        } = intent;
        let stream = case_stream(case_id)?;
        let turn = turn(&stream).await;
        let mut first = first;
        let mut retry = Retry::new();
        loop {
            let loaded = match first.take() {
                Some(loaded) if turn.still_current(loaded.version) => loaded,
                // Read in the turn: commands before this one moved the case on.
                _ => self.load(case_id).await?,
            };
            if let Some(done) = loaded.answered(&*self.log, case_id, request).await? {
                return Ok(done);
            }
            if let Some(action) = action {
                let team = loaded.version.map(|_| loaded.team());
                call.enforce(
                    case_id,
                    call.decide_for(team.as_ref(), action, Entry::default()),
                )?;
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
            let events = domain::decide(&loaded.state, command.clone()).map_err(|e| match e {
                DomainError::NoCase => ApiError::NotFound {
                    kind: "case",
                    id: case_id.to_string(),
                },
                DomainError::Precondition(why) => ApiError::FailedPrecondition(why.to_owned()),
            })?;
            let metadata = call.event_metadata(Some(case_id), Some(request.id));
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
                Ok(result) => {
                    turn.appended(result.last_version);
                    return Ok(Done {
                        version: result.last_version,
                    });
                }
                Err(LogError::WrongExpectedVersion { .. })
                    if expected.is_none() && retry.again().await =>
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
                    // The same request raced itself (a client retry while the first
                    // attempt was in flight): the stored one is the answer.
                    let loaded = self.load(case_id).await?;
                    return match loaded.answered(&*self.log, case_id, request).await? {
                        Some(done) => Ok(done),
                        None => Err(reused()),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

pub(crate) fn case_stream(case_id: Uuid) -> Result<StreamName, ApiError> {
    Ok(StreamName::for_id(CASE_CATEGORY, case_id)?)
}
