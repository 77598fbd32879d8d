//! Loading a referral from its stream and running a command on it: idempotent by
//! `request_id`, checked against `expected_version`, appended at the version read.

use std::time::SystemTime;

use caseline_aggregate::{Aggregate, Gate, Refusal, Request, Store};
use caseline_eventlog::{Error as LogError, ExpectedVersion, RecordedEvent, Uuid};
use caseline_proto::v1::events::{ReferralDeclined, ReferralOutcomeRecorded, ReferralWithdrawn};
use caseline_server::ApiError;
use caseline_trust::Call;

use crate::access::Authorise;
use crate::domain::{self, Command, Event, ReferralState};

/// Stream category of referrals (`referral-<id>`).
pub const REFERRAL_CATEGORY: &str = "referral";

/// When each step happened.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Times {
    pub made: Option<SystemTime>,
    pub acknowledged: Option<SystemTime>,
    pub accepted: Option<SystemTime>,
    pub declined: Option<SystemTime>,
    pub completed: Option<SystemTime>,
    pub withdrawn: Option<SystemTime>,
    pub escalated: Option<SystemTime>,
}

/// A referral as its stream says, with what reads show of it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Referral {
    pub state: ReferralState,
    /// Who made it.
    pub made_by: String,
    pub times: Times,
    pub declined: Option<ReferralDeclined>,
    pub outcome: Option<ReferralOutcomeRecorded>,
    pub withdrawn: Option<ReferralWithdrawn>,
}

/// A referral loaded from its stream, with its version and the requests applied.
pub type Loaded = caseline_aggregate::Loaded<Referral>;

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

impl Referral {
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
}

impl Aggregate for Referral {
    const CATEGORY: &'static str = REFERRAL_CATEGORY;
    const KIND: &'static str = "referral";
    type Command = Command;
    type Event = Event;

    fn apply(&mut self, e: &Event, event: &RecordedEvent) {
        let at = Some(event.recorded_at);
        match e {
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
        self.state = domain::evolve(std::mem::take(&mut self.state), e);
    }

    fn decide(&self, command: Command) -> Result<Vec<Event>, Refusal> {
        domain::decide(&self.state, command)
    }
}

/// What a command on a referral is.
pub(crate) struct Intent<'a> {
    pub referral_id: Uuid,
    pub request: &'a Request,
    pub expected: Option<u64>,
    /// The case (or contact) the referral belongs to, for the events' metadata.
    pub owner: Owner,
}

/// Runs the command `build` makes for `intent.request` through the one command path
/// ([`Store::build_and_execute`]: a retry gets its first answer before `build` is
/// asked): `authorise` is asked on every state decided on, and a referral
/// that moved onto its case since the command was sealed under its contact's key is
/// ABORTED (nothing stored; a retry seals anew). Returns the referral's version after
/// the command.
pub(crate) async fn execute(
    store: &Store<Referral>,
    call: &Call,
    intent: Intent<'_>,
    first: Option<Loaded>,
    build: impl AsyncFnOnce() -> Result<Command, ApiError>,
    authorise: Authorise<'_>,
) -> Result<u64, ApiError> {
    let Intent {
        referral_id,
        request,
        expected,
        owner,
    } = intent;
    let done = store
        .build_and_execute(
            caseline_aggregate::Intent {
                id: referral_id,
                request,
                expected,
                metadata: call.event_metadata(owner.case_id(), None),
            },
            first,
            build,
            &OwnedBy {
                call,
                authorise,
                owner,
            },
        )
        .await?;
    Ok(done.version)
}

/// The gate of a command on a referral: the caller's standing, on a referral that
/// still belongs where the command's text was sealed for.
struct OwnedBy<'a> {
    call: &'a Call,
    authorise: Authorise<'a>,
    owner: Owner,
}

impl Gate<Referral> for OwnedBy<'_> {
    async fn check(&self, id: Uuid, loaded: &Loaded) -> Result<(), ApiError> {
        self.authorise.check(self.call, id, loaded).await?;
        if loaded.state.exists() && loaded.owner() != Some(self.owner) {
            return Err(ApiError::Log(LogError::WrongExpectedVersion {
                stream: Referral::stream(id)?,
                expected: ExpectedVersion::Any,
                actual: loaded.version,
            }));
        }
        Ok(())
    }
}
