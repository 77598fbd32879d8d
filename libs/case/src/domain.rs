//! The case aggregate, pure: `decide(&state, command) -> events` and
//! `evolve(state, &event) -> state`. No I/O: sealed fields arrive sealed, ids arrive
//! made, and the rules a social worker, investigator or prosecutor would expect are
//! enforced here as [`DomainError::Precondition`] (FAILED_PRECONDITION).

use std::collections::BTreeMap;

use caseline_eventlog::Uuid;
use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    CaseOpened, CaseReopened, CasesLinked, CasesUnlinked, ClosureDecided, ClosureRequested,
    ContactAttached, JusticeMilestoneRecorded, NoteAdded, RiskAssessed, StageChanged,
    TeamMemberAdded, TeamMemberRemoved,
};
use caseline_proto::v1::{MilestoneKind, RiskLevel, Stage};

caseline_aggregate::events! {
    /// Everything that happens to a case, in its stream `case-<id>`.
    pub enum Event for CaseState {
        Opened(CaseOpened) = types::CASE_OPENED,
        ContactAttached(ContactAttached) = types::CONTACT_ATTACHED,
        MemberAdded(TeamMemberAdded) = types::TEAM_MEMBER_ADDED,
        MemberRemoved(TeamMemberRemoved) = types::TEAM_MEMBER_REMOVED,
        RiskAssessed(RiskAssessed) = types::RISK_ASSESSED,
        NoteAdded(NoteAdded) = types::NOTE_ADDED,
        Linked(CasesLinked) = types::CASES_LINKED,
        Unlinked(CasesUnlinked) = types::CASES_UNLINKED,
        StageChanged(StageChanged) = types::STAGE_CHANGED,
        ClosureRequested(ClosureRequested) = types::CLOSURE_REQUESTED,
        ClosureDecided(ClosureDecided) = types::CLOSURE_DECIDED,
        Reopened(CaseReopened) = types::CASE_REOPENED,
        MilestoneRecorded(JusticeMilestoneRecorded) = types::JUSTICE_MILESTONE_RECORDED,
    }
}

/// Who is acting (the subject at their identity provider, and their agency).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Actor {
    pub subject: String,
    pub agency: String,
}

/// An active link made from this case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub link_id: String,
    pub kind: i32,
}

/// What the rules need to know of a case.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaseState {
    /// The opening event; `None` before the case exists.
    pub opened: Option<CaseOpened>,
    pub stage: Stage,
    pub risk: RiskLevel,
    /// A risk assessment was recorded (beyond the initial risk of the opening).
    pub assessed: bool,
    /// Members by (subject, agency), with their role on the case.
    pub team: BTreeMap<(String, String), String>,
    /// A closure request waiting for a supervisor, and who asked.
    pub closure_requested_by: Option<Actor>,
    /// Active links made from this case, by the other case.
    pub links: BTreeMap<Uuid, Link>,
    /// A report milestone was recorded.
    pub reported: bool,
    pub notes: u64,
    pub milestones: u64,
}

impl CaseState {
    pub fn exists(&self) -> bool {
        self.opened.is_some()
    }

    pub fn is_member(&self, actor: &Actor) -> bool {
        self.team
            .contains_key(&(actor.subject.clone(), actor.agency.clone()))
    }
}

/// What opening a case records.
#[derive(Clone, Debug, PartialEq)]
pub struct Opening {
    pub opened: CaseOpened,
    /// The first member of the team: whoever opens the case.
    pub opener: TeamMemberAdded,
    /// The helpline contact it is opened from, copied into the case.
    pub contact: Option<ContactAttached>,
}

/// What someone asks of a case; validated, with sealed fields sealed and ids made.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Open the case; the opener becomes the first member of its team.
    Open(Box<Opening>),
    AssessRisk(RiskAssessed),
    AddMember(TeamMemberAdded),
    /// Join the team on another service's step (a referral accepted): nothing to do
    /// for someone already on it, in whatever role.
    Join(TeamMemberAdded),
    RemoveMember(TeamMemberRemoved),
    AddNote(NoteAdded),
    Link {
        /// The case linked from (this one).
        case_id: Uuid,
        other_case_id: Uuid,
        link_id: Uuid,
        kind: i32,
        reason_sealed: Vec<u8>,
    },
    Unlink {
        other_case_id: Uuid,
        reason_sealed: Vec<u8>,
    },
    ChangeStage {
        to: Stage,
        reason_sealed: Vec<u8>,
    },
    RequestClosure {
        by: Actor,
        reason_sealed: Vec<u8>,
    },
    DecideClosure {
        by: Actor,
        approve: bool,
        comment_sealed: Vec<u8>,
    },
    Reopen {
        stage: Stage,
        reason_sealed: Vec<u8>,
    },
    RecordMilestone(JusticeMilestoneRecorded),
}

/// Why a command cannot apply: no such case (`Missing`), or a rule refuses it now
/// (`Precondition`).
pub use caseline_aggregate::Refusal as DomainError;

use DomainError::Precondition;

impl caseline_aggregate::Rules for CaseState {
    type Command = Command;
    type Event = Event;

    fn decide(&self, command: Command) -> Result<Vec<Event>, DomainError> {
        decide(self, command)
    }

    fn evolve(self, event: &Event, _: &str) -> Self {
        evolve(self, event)
    }
}

/// Decides what a command does to the case: the events to append, or why not.
pub fn decide(state: &CaseState, command: Command) -> Result<Vec<Event>, DomainError> {
    if let Command::Open(opening) = command {
        if state.exists() {
            return Err(Precondition("the case already exists"));
        }
        let Opening {
            opened,
            opener,
            contact,
        } = *opening;
        let mut events = vec![Event::Opened(opened), Event::MemberAdded(opener)];
        events.extend(contact.map(Event::ContactAttached));
        return Ok(events);
    }
    if !state.exists() {
        return Err(DomainError::Missing);
    }
    let closed = state.stage == Stage::Closed;
    // A closed case takes nothing new but its reopening; a member can still be taken
    // off it (someone who left the service must lose access to closed cases too).
    if closed
        && !matches!(
            command,
            Command::Reopen { .. } | Command::Open(_) | Command::RemoveMember(_)
        )
    {
        return Err(Precondition("the case is closed: reopen it first"));
    }
    let event = match command {
        // Handled above while the case did not exist.
        Command::Open(_) => return Err(Precondition("the case already exists")),
        Command::AssessRisk(r) => Event::RiskAssessed(r),
        Command::AddMember(m) => {
            if state
                .team
                .contains_key(&(m.subject.clone(), m.agency.clone()))
            {
                return Err(Precondition("already a member of the team"));
            }
            Event::MemberAdded(m)
        }
        Command::Join(m) => {
            if state
                .team
                .contains_key(&(m.subject.clone(), m.agency.clone()))
            {
                return Ok(Vec::new());
            }
            Event::MemberAdded(m)
        }
        Command::RemoveMember(m) => {
            if !state
                .team
                .contains_key(&(m.subject.clone(), m.agency.clone()))
            {
                return Err(Precondition("not a member of the team"));
            }
            if state.team.len() == 1 {
                return Err(Precondition(
                    "the last member of the team cannot be removed: add another first",
                ));
            }
            Event::MemberRemoved(m)
        }
        Command::AddNote(n) => Event::NoteAdded(n),
        Command::Link {
            case_id,
            other_case_id,
            link_id,
            kind,
            reason_sealed,
        } => {
            if other_case_id == case_id {
                return Err(Precondition("a case cannot be linked to itself"));
            }
            if state.links.contains_key(&other_case_id) {
                return Err(Precondition("the cases are already linked"));
            }
            Event::Linked(CasesLinked {
                link_id: link_id.to_string(),
                other_case_id: other_case_id.to_string(),
                kind,
                reason_sealed,
            })
        }
        Command::Unlink {
            other_case_id,
            reason_sealed,
        } => {
            let Some(link) = state.links.get(&other_case_id) else {
                return Err(Precondition("the cases are not linked from this case"));
            };
            Event::Unlinked(CasesUnlinked {
                link_id: link.link_id.clone(),
                other_case_id: other_case_id.to_string(),
                reason_sealed,
            })
        }
        Command::ChangeStage { to, reason_sealed } => {
            if to == Stage::Closed {
                return Err(Precondition(
                    "closing needs a supervisor's approval: use RequestClosure",
                ));
            }
            if to == Stage::Unspecified {
                return Err(Precondition("a case moves into an open stage"));
            }
            if to == state.stage {
                return Err(Precondition("the case is already in that stage"));
            }
            if state.closure_requested_by.is_some() {
                return Err(Precondition(
                    "a closure request is pending: a supervisor must decide it first",
                ));
            }
            Event::StageChanged(StageChanged {
                from: state.stage as i32,
                to: to as i32,
                reason_sealed,
            })
        }
        Command::RequestClosure { by, reason_sealed } => {
            if state.closure_requested_by.is_some() {
                return Err(Precondition("a closure request is already pending"));
            }
            Event::ClosureRequested(ClosureRequested {
                reason_sealed,
                requested_by: by.subject,
                requested_by_agency: by.agency,
            })
        }
        Command::DecideClosure {
            by,
            approve,
            comment_sealed,
        } => {
            let Some(requester) = &state.closure_requested_by else {
                return Err(Precondition("no closure request is pending"));
            };
            if *requester == by {
                return Err(Precondition(
                    "a closure must be decided by a supervisor other than the one who asked",
                ));
            }
            Event::ClosureDecided(ClosureDecided {
                approved: approve,
                comment_sealed,
            })
        }
        Command::Reopen {
            stage,
            reason_sealed,
        } => {
            if !closed {
                return Err(Precondition("the case is not closed"));
            }
            if matches!(stage, Stage::Closed | Stage::Unspecified) {
                return Err(Precondition("a case reopens into an open stage"));
            }
            Event::Reopened(CaseReopened {
                stage: stage as i32,
                reason_sealed,
            })
        }
        Command::RecordMilestone(m) => {
            if m.kind != MilestoneKind::Report as i32 && !state.reported {
                return Err(Precondition(
                    "no justice milestone before the report: record the report first",
                ));
            }
            Event::MilestoneRecorded(m)
        }
    };
    Ok(vec![event])
}

/// The case after `event`.
pub fn evolve(mut state: CaseState, event: &Event) -> CaseState {
    match event {
        Event::Opened(o) => {
            state.stage = Stage::Intake;
            state.risk = RiskLevel::try_from(o.initial_risk).unwrap_or_default();
            state.opened = Some(o.clone());
        }
        Event::ContactAttached(_) => {}
        Event::MemberAdded(m) => {
            state
                .team
                .insert((m.subject.clone(), m.agency.clone()), m.role.clone());
        }
        Event::MemberRemoved(m) => {
            state.team.remove(&(m.subject.clone(), m.agency.clone()));
        }
        Event::RiskAssessed(r) => {
            state.risk = RiskLevel::try_from(r.level).unwrap_or(state.risk);
            state.assessed = true;
        }
        Event::NoteAdded(_) => state.notes += 1,
        Event::Linked(l) => {
            if let Ok(other) = Uuid::parse_str(&l.other_case_id) {
                state.links.insert(
                    other,
                    Link {
                        link_id: l.link_id.clone(),
                        kind: l.kind,
                    },
                );
            }
        }
        Event::Unlinked(l) => {
            if let Ok(other) = Uuid::parse_str(&l.other_case_id) {
                state.links.remove(&other);
            }
        }
        Event::StageChanged(s) => {
            state.stage = Stage::try_from(s.to).unwrap_or(state.stage);
        }
        Event::ClosureRequested(c) => {
            state.closure_requested_by = Some(Actor {
                subject: c.requested_by.clone(),
                agency: c.requested_by_agency.clone(),
            });
        }
        Event::ClosureDecided(d) => {
            state.closure_requested_by = None;
            if d.approved {
                state.stage = Stage::Closed;
            }
        }
        Event::Reopened(r) => {
            state.stage = Stage::try_from(r.stage).unwrap_or(Stage::Intake);
        }
        Event::MilestoneRecorded(m) => {
            state.milestones += 1;
            if m.kind == MilestoneKind::Report as i32 {
                state.reported = true;
            }
        }
    }
    state
}
