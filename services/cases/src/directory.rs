//! The case directory: a projection of every case's summary, team and links, fed by the
//! log in global order. Lists and link queries read it; commands never do (they load
//! the case's own stream).
//!
//! It catches up with the log before every query (and may be rebuilt from nothing at
//! any time): what a caller just wrote is listed on their next call. It is checkpointed
//! (`caseline_projection`), so a restart resumes from its last snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use caseline_eventlog::{Interest, Position, RecordedEvent, Uuid};
use caseline_policy::CaseTeam;
use caseline_policy::teams::{ACCESS_CATEGORY, CASE_CATEGORY};
use caseline_proto::event_types as types;
use caseline_proto::v1::{RiskLevel, Stage};
use caseline_server::ApiError;

use caseline_aggregate::EventCodec;
use caseline_case::domain::Event;

/// What lists show of a case.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Summary {
    pub case_id: Uuid,
    pub pseudonym: String,
    pub stage: Stage,
    pub risk: RiskLevel,
    pub opened_at: SystemTime,
    /// The position of its opening: where it stands in lists.
    #[serde(with = "caseline_projection::positions")]
    pub opened_position: Position,
    pub closure_pending: bool,
    pub team: CaseTeam,
}

/// A link between two cases, as recorded in the stream of `from`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct LinkRecord {
    pub link_id: String,
    pub from: Uuid,
    pub to: Uuid,
    pub kind: i32,
    pub reason_sealed: Vec<u8>,
    pub linked_at: SystemTime,
    pub agency: String,
}

/// The directory's state, as checkpointed (the indexes are rebuilt from it on load).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "Stored")]
pub(crate) struct State {
    cases: HashMap<Uuid, Summary>,
    /// Cases by the position of their opening, for newest-first pages.
    #[serde(with = "caseline_projection::positions::keys")]
    opened: BTreeMap<Position, Uuid>,
    /// Active links by link id.
    links: HashMap<String, LinkRecord>,
    /// The openings of the cases each person is on (a member, or holding a break-glass
    /// grant), by (subject, agency): a caseworker's list reads their own cases, not
    /// every case there is.
    #[serde(skip)]
    by_person: HashMap<(String, String), BTreeSet<Position>>,
    /// The openings of the cases each agency has a member on (a supervisor's list).
    #[serde(skip)]
    by_agency: HashMap<String, BTreeSet<Position>>,
}

/// The state as checkpointed: without the indexes, which are derived.
#[derive(serde::Deserialize)]
struct Stored {
    cases: HashMap<Uuid, Summary>,
    #[serde(with = "caseline_projection::positions::keys")]
    opened: BTreeMap<Position, Uuid>,
    links: HashMap<String, LinkRecord>,
}

impl From<Stored> for State {
    fn from(stored: Stored) -> Self {
        let mut state = State {
            cases: stored.cases,
            opened: stored.opened,
            links: stored.links,
            ..State::default()
        };
        let opened: Vec<(Position, Uuid)> = state.opened.iter().map(|(p, id)| (*p, *id)).collect();
        for (position, case_id) in opened {
            if let Some(found_by) = state.cases.get(&case_id).map(|s| keys(&s.team)) {
                state.index(position, &FoundBy::default(), &found_by);
            }
        }
        state
    }
}

/// Who a team lets a list find the case by: each member and grantee (by subject and
/// agency), and each agency with a member.
type FoundBy = (BTreeSet<(String, String)>, BTreeSet<String>);

fn keys(team: &CaseTeam) -> FoundBy {
    let people = team
        .members()
        .map(|m| (m.subject.clone(), m.agency.clone()))
        .chain(
            team.grants()
                .iter()
                .map(|g| (g.subject.clone(), g.agency.clone())),
        )
        .collect();
    let agencies = team.members().map(|m| m.agency.clone()).collect();
    (people, agencies)
}

impl State {
    /// Moves the case opened at `position` from the index entries it was found by
    /// (`before`) to those it is found by now (`after`).
    fn index(&mut self, position: Position, before: &FoundBy, after: &FoundBy) {
        let (old_people, old_agencies) = before;
        let (new_people, new_agencies) = after;
        for gone in old_people.difference(new_people) {
            if let Some(set) = self.by_person.get_mut(gone) {
                set.remove(&position);
                if set.is_empty() {
                    self.by_person.remove(gone);
                }
            }
        }
        for came in new_people.difference(old_people) {
            self.by_person
                .entry(came.clone())
                .or_default()
                .insert(position);
        }
        for gone in old_agencies.difference(new_agencies) {
            if let Some(set) = self.by_agency.get_mut(gone) {
                set.remove(&position);
                if set.is_empty() {
                    self.by_agency.remove(gone);
                }
            }
        }
        for came in new_agencies.difference(old_agencies) {
            self.by_agency
                .entry(came.clone())
                .or_default()
                .insert(position);
        }
    }

    /// Applies `change` to the team of `case_id`, keeping the indexes in step.
    fn change_team(
        &mut self,
        case_id: Uuid,
        change: impl FnOnce(&mut CaseTeam) -> Result<(), caseline_eventlog::Error>,
    ) -> Result<(), ApiError> {
        let Some(summary) = self.cases.get_mut(&case_id) else {
            return Ok(());
        };
        // Who found it before and after, not two copies of the team (a rebuild
        // changes tens of thousands of teams).
        let before = keys(&summary.team);
        change(&mut summary.team)?;
        let after = keys(&summary.team);
        let position = summary.opened_position;
        self.index(position, &before, &after);
        Ok(())
    }
}

/// The case directory, as a projection a server follows.
pub(crate) type Followed = caseline_projection::Followed<State>;

#[derive(Debug)]
pub(crate) struct Directory {
    followed: Arc<Followed>,
}

/// A page of the directory, read under its lock.
pub(crate) struct View<'a> {
    state: tokio::sync::MappedMutexGuard<'a, State>,
}

impl Directory {
    pub fn new(followed: Arc<Followed>) -> Self {
        Self { followed }
    }

    /// The directory, caught up with everything the log holds now.
    pub async fn view(&self) -> Result<View<'_>, ApiError> {
        Ok(View {
            state: self.followed.view().await?,
        })
    }
}

impl View<'_> {
    /// The cases found by `subject` of `agency` (those they are on, and with
    /// `whole_agency` those their agency is on), newest first, opened before `before`
    /// (if given): at most `limit`.
    pub fn newest_first_for(
        &self,
        subject: &str,
        agency: &str,
        whole_agency: bool,
        before: Option<Position>,
        limit: usize,
    ) -> Vec<(Position, &Summary)> {
        let empty = BTreeSet::new();
        let person = self
            .state
            .by_person
            .get(&(subject.to_owned(), agency.to_owned()))
            .unwrap_or(&empty);
        let agency = match whole_agency {
            true => self.state.by_agency.get(agency).unwrap_or(&empty),
            false => &empty,
        };
        fn below(
            set: &BTreeSet<Position>,
            before: Option<Position>,
        ) -> std::collections::btree_set::Range<'_, Position> {
            match before {
                Some(p) => set.range(..p),
                None => set.range(..),
            }
        }
        let (mut a, mut b) = (
            below(person, before).rev().peekable(),
            below(agency, before).rev().peekable(),
        );
        let mut found = Vec::new();
        while found.len() < limit {
            // Merge the two, newest first, each case once.
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (Some(x), Some(y)) if x > y => a.next(),
                (Some(x), Some(y)) if x < y => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
            };
            if let Some(position) = next
                && let Some(summary) = self
                    .state
                    .opened
                    .get(position)
                    .and_then(|id| self.state.cases.get(id))
            {
                found.push((*position, summary));
            }
        }
        found
    }

    /// Active links made from or to `case_id`, oldest first.
    pub fn links_of(&self, case_id: Uuid) -> Vec<&LinkRecord> {
        let mut links: Vec<_> = self
            .state
            .links
            .values()
            .filter(|l| l.from == case_id || l.to == case_id)
            .collect();
        links.sort_by(|a, b| (a.linked_at, &a.link_id).cmp(&(b.linked_at, &b.link_id)));
        links
    }
}

/// The case events that change a summary, a team or a link: not notes, milestones or
/// reads, which are most of a case's events (a rebuild reads these only).
const CASE_TYPES_READ: [&str; 10] = [
    types::CASE_OPENED,
    types::TEAM_MEMBER_ADDED,
    types::TEAM_MEMBER_REMOVED,
    types::RISK_ASSESSED,
    types::CASES_LINKED,
    types::CASES_UNLINKED,
    types::STAGE_CHANGED,
    types::CLOSURE_REQUESTED,
    types::CLOSURE_DECIDED,
    types::CASE_REOPENED,
];

/// Those and break-glass grants (in access streams).
const READ_TYPES: [&str; 11] = {
    let mut all = [types::BREAK_GLASS_GRANTED; 11];
    let mut i = 0;
    while i < CASE_TYPES_READ.len() {
        all[i] = CASE_TYPES_READ[i];
        i += 1;
    }
    all
};

impl caseline_projection::Fold for State {
    const FORMAT: u32 = caseline_proto::snapshot_format(2);
    type Error = ApiError;
    const INTEREST: Interest = Interest::of(&[], &[], &READ_TYPES);

    fn reads(event: &RecordedEvent) -> bool {
        match caseline_projection::category_of(event) {
            Some(CASE_CATEGORY) => CASE_TYPES_READ.contains(&event.event_type.as_str()),
            Some(ACCESS_CATEGORY) => event.event_type == types::BREAK_GLASS_GRANTED,
            _ => false,
        }
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApiError> {
        let Some((category, id)) = event.stream.as_str().split_once('-') else {
            return Ok(());
        };
        if category == ACCESS_CATEGORY {
            // Break-glass grants count for lists; access records do not.
            if event.event_type == types::BREAK_GLASS_GRANTED
                && let Ok(case_id) = Uuid::parse_str(id)
            {
                self.change_team(case_id, |team| team.apply(event))?;
            }
            return Ok(());
        }
        if category != CASE_CATEGORY {
            return Ok(());
        }
        let Ok(case_id) = Uuid::parse_str(id) else {
            return Ok(());
        };
        let corrupt = || caseline_eventlog::Error::Corrupt {
            position: event.position.to_string(),
            reason: format!("{} payload does not decode", event.event_type),
        };
        let Some(decoded) = Event::decode(&event.event_type, &event.data).map_err(|_| corrupt())?
        else {
            return Ok(());
        };
        if let Event::Opened(o) = &decoded {
            self.opened.insert(event.position, case_id);
            self.cases.insert(
                case_id,
                Summary {
                    case_id,
                    pseudonym: o.pseudonym.clone(),
                    stage: Stage::Intake,
                    risk: RiskLevel::try_from(o.initial_risk).unwrap_or_default(),
                    opened_at: event.recorded_at,
                    opened_position: event.position,
                    closure_pending: false,
                    team: CaseTeam::new(),
                },
            );
        }
        if let Event::MemberAdded(_) | Event::MemberRemoved(_) = &decoded {
            return self.change_team(case_id, |team| team.apply(event));
        }
        let Some(summary) = self.cases.get_mut(&case_id) else {
            return Ok(());
        };
        match &decoded {
            Event::RiskAssessed(r) => {
                summary.risk = RiskLevel::try_from(r.level).unwrap_or(summary.risk);
            }
            Event::StageChanged(s) => {
                summary.stage = Stage::try_from(s.to).unwrap_or(summary.stage);
            }
            Event::ClosureRequested(_) => summary.closure_pending = true,
            Event::ClosureDecided(d) => {
                summary.closure_pending = false;
                if d.approved {
                    summary.stage = Stage::Closed;
                }
            }
            Event::Reopened(r) => {
                summary.stage = Stage::try_from(r.stage).unwrap_or(Stage::Intake);
            }
            Event::Linked(l) => {
                if let Ok(to) = Uuid::parse_str(&l.other_case_id) {
                    self.links.insert(
                        l.link_id.clone(),
                        LinkRecord {
                            link_id: l.link_id.clone(),
                            from: case_id,
                            to,
                            kind: l.kind,
                            reason_sealed: l.reason_sealed.clone(),
                            linked_at: event.recorded_at,
                            agency: event.metadata.agency.clone(),
                        },
                    );
                }
            }
            Event::Unlinked(l) => {
                self.links.remove(&l.link_id);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use caseline_eventlog::{Metadata, RecordedEvent, StreamName, Uuid};
    use caseline_projection::Fold;
    use caseline_proto::event_types as types;
    use caseline_proto::prost::Message;
    use caseline_proto::v1::events::{
        BreakGlassGranted, CaseOpened, TeamMemberAdded, TeamMemberRemoved,
    };

    use super::{State, View};

    /// A reproducible log of 40 cases whose teams change (people added, removed, added
    /// again; break-glass grants), as recorded events.
    fn log() -> Vec<RecordedEvent> {
        let mut events = Vec::new();
        let mut position = 0u64;
        let mut record = |stream: StreamName, version: u64, event_type: &str, data: Vec<u8>| {
            position += 1;
            RecordedEvent {
                event_id: Uuid::new_v4(),
                stream,
                version,
                position: position.to_string().parse().expect("a position"),
                event_type: event_type.to_owned(),
                data,
                metadata: Metadata::default(),
                recorded_at: std::time::SystemTime::now(),
                prev_hash: [0; 32],
                hash: [0; 32],
            }
        };
        let person = |i: u64| (format!("user-{}", i % 7), format!("agency-{}", i % 3));
        for case in 0..40u64 {
            let id = Uuid::from_u128(u128::from(case) + 1);
            let stream = StreamName::for_id("case", id).expect("a stream");
            let opened = CaseOpened {
                pseudonym: format!("CL-{case}"),
                ..CaseOpened::default()
            };
            events.push(record(
                stream.clone(),
                0,
                types::CASE_OPENED,
                opened.encode_to_vec(),
            ));
            let mut version = 0;
            for step in 0..(case % 5 + 2) {
                version += 1;
                let (subject, agency) = person(case * 3 + step);
                let event = if step % 3 == 2 {
                    let (subject, agency) = person(case * 3 + step - 1);
                    let removed = TeamMemberRemoved { subject, agency };
                    (types::TEAM_MEMBER_REMOVED, removed.encode_to_vec())
                } else {
                    let added = TeamMemberAdded {
                        subject,
                        agency,
                        role: "social_worker".into(),
                    };
                    (types::TEAM_MEMBER_ADDED, added.encode_to_vec())
                };
                events.push(record(stream.clone(), version, event.0, event.1));
            }
            if case % 6 == 0 {
                let (subject, agency) = person(case + 100);
                let grant = BreakGlassGranted {
                    subject,
                    agency,
                    role: "police_investigator".into(),
                    ..BreakGlassGranted::default()
                };
                let access = StreamName::for_id("access", id).expect("a stream");
                events.push(record(
                    access,
                    0,
                    types::BREAK_GLASS_GRANTED,
                    grant.encode_to_vec(),
                ));
            }
        }
        events
    }

    /// Every page every person and agency can list, and every case's team.
    fn listings(state: State) -> Vec<String> {
        let followed_state = tokio::sync::Mutex::new(state);
        let guard = followed_state.try_lock().expect("unlocked");
        let view = View {
            state: tokio::sync::MutexGuard::map(guard, |s| s),
        };
        let mut out = Vec::new();
        for user in 0..7 {
            for agency in 0..3 {
                for whole_agency in [false, true] {
                    let (subject, agency) = (format!("user-{user}"), format!("agency-{agency}"));
                    let mut before = None;
                    loop {
                        let page =
                            view.newest_first_for(&subject, &agency, whole_agency, before, 4);
                        out.push(format!(
                            "{subject} {agency} {whole_agency}: {:?}",
                            page.iter()
                                .map(|(p, s)| (p.to_string(), s.case_id))
                                .collect::<Vec<_>>()
                        ));
                        match page.last() {
                            Some((p, _)) if page.len() == 4 => before = Some(*p),
                            _ => break,
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_indexes_restored_from_a_checkpoint_equal_those_kept_up() {
        let mut kept = State::default();
        let events = log();
        for event in &events {
            kept.apply(event).expect("applies");
        }
        let snapshot = serde_json::to_vec(&kept).expect("encodes");
        let restored: State = serde_json::from_slice(&snapshot).expect("decodes");
        let mut rebuilt = State::default();
        for event in &events {
            rebuilt.apply(event).expect("applies");
        }
        let kept = listings(kept);
        assert!(
            kept.iter().any(|l| !l.ends_with("[]")),
            "someone lists something"
        );
        assert_eq!(listings(restored), kept);
        assert_eq!(listings(rebuilt), kept);
    }

    #[test]
    fn a_list_holds_exactly_the_cases_a_person_is_on() {
        let mut state = State::default();
        for event in &log() {
            state.apply(event).expect("applies");
        }
        for summary in state.cases.values() {
            for member in summary.team.members() {
                let key = (member.subject.clone(), member.agency.clone());
                assert!(state.by_person[&key].contains(&summary.opened_position));
            }
        }
        for (person, positions) in &state.by_person {
            for position in positions {
                let team = &state.cases[&state.opened[position]].team;
                let on = team.is_member(&person.0, &person.1)
                    || team
                        .grants()
                        .iter()
                        .any(|g| (&g.subject, &g.agency) == (&person.0, &person.1));
                assert!(on, "{person:?} is listed on a case they are not on");
            }
        }
    }
}
