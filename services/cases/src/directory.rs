//! The case directory: a projection of every case's summary, team and links, fed by the
//! log in global order. Lists and link queries read it; commands never do (they load
//! the case's own stream).
//!
//! It catches up with the log before every query (and may be rebuilt from nothing at
//! any time): what a caller just wrote is listed on their next call. It is checkpointed
//! (`caseline_projection`), so a restart resumes from its last snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use caseline_eventlog::{Position, RecordedEvent, Uuid};
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

/// The directory's state, as checkpointed.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    cases: HashMap<Uuid, Summary>,
    /// Cases by the position of their opening, for newest-first pages.
    #[serde(with = "caseline_projection::positions::keys")]
    opened: BTreeMap<Position, Uuid>,
    /// Active links by link id.
    links: HashMap<String, LinkRecord>,
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
    /// Cases, newest first, opened before `before` (if given).
    pub fn newest_first(
        &self,
        before: Option<Position>,
    ) -> impl Iterator<Item = (Position, &Summary)> {
        let range = match before {
            Some(p) => self.state.opened.range(..p),
            None => self.state.opened.range(..),
        };
        range
            .rev()
            .filter_map(|(p, id)| self.state.cases.get(id).map(|s| (*p, s)))
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

impl caseline_projection::Fold for State {
    const FORMAT: u32 = caseline_proto::snapshot_format(1);
    type Error = ApiError;

    fn reads(event: &RecordedEvent) -> bool {
        match caseline_projection::category_of(event) {
            Some(CASE_CATEGORY) => true,
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
                && let Some(summary) = self.cases.get_mut(&case_id)
            {
                summary.team.apply(event)?;
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
                    closure_pending: false,
                    team: CaseTeam::new(),
                },
            );
        }
        let Some(summary) = self.cases.get_mut(&case_id) else {
            return Ok(());
        };
        match &decoded {
            Event::MemberAdded(_) | Event::MemberRemoved(_) => summary.team.apply(event)?,
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
