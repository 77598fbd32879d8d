//! The referral directory: every referral's state, fed by the log in global order, for
//! inboxes, outboxes, the overdue list and the escalation process. Commands never read
//! it (they load the referral's own stream).
//!
//! It catches up with the log before every query (and may be rebuilt from nothing at
//! any time): what a caller just wrote is listed on their next call. It is checkpointed
//! (`caseline_projection`), so a restart resumes from its last snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use caseline_eventlog::{Interest, Position, RecordedEvent, Uuid};
use caseline_server::ApiError;

use caseline_proto::event_types as types;

use caseline_case::CONTACT_CATEGORY;

use crate::store::{Loaded, Owner, REFERRAL_CATEGORY};

/// The directory's state, as checkpointed.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "Stored")]
pub(crate) struct State {
    referrals: HashMap<Uuid, Loaded>,
    /// Referrals by the position of their making, for pages in the order made.
    #[serde(with = "caseline_projection::positions::keys")]
    made: BTreeMap<Position, Uuid>,
    /// Helpline contacts a case was opened from, with the case.
    claimed: HashMap<Uuid, Uuid>,
    /// The makings of the referrals each agency made or received: an agency's inbox,
    /// outbox and overdue list read its own referrals, not every referral there is.
    /// Derived (rebuilt on load, not checkpointed).
    #[serde(skip)]
    by_agency: HashMap<String, BTreeSet<Position>>,
}

/// The state as checkpointed: without the index, which is derived.
#[derive(serde::Deserialize)]
struct Stored {
    referrals: HashMap<Uuid, Loaded>,
    #[serde(with = "caseline_projection::positions::keys")]
    made: BTreeMap<Position, Uuid>,
    claimed: HashMap<Uuid, Uuid>,
}

impl From<Stored> for State {
    fn from(stored: Stored) -> Self {
        let mut state = State {
            referrals: stored.referrals,
            made: stored.made,
            claimed: stored.claimed,
            by_agency: HashMap::new(),
        };
        let made: Vec<(Position, Uuid)> = state.made.iter().map(|(p, id)| (*p, *id)).collect();
        for (position, id) in made {
            state.index(position, id);
        }
        state
    }
}

impl State {
    /// Files the referral made at `position` under the agencies that made and
    /// received it (they never change once made).
    fn index(&mut self, position: Position, referral_id: Uuid) {
        let Some(made) = self
            .referrals
            .get(&referral_id)
            .and_then(|r| r.state.made.as_ref())
        else {
            return;
        };
        for agency in [&made.from_agency, &made.to_agency] {
            self.by_agency
                .entry(agency.clone())
                .or_default()
                .insert(position);
        }
    }
}

/// The referral directory, as a projection a server follows (shared by the handlers
/// and the escalation process).
pub(crate) type Followed = caseline_projection::Followed<State>;

#[derive(Clone, Debug)]
pub(crate) struct Directory {
    followed: Arc<Followed>,
}

/// The directory, read under its lock.
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
    /// Referrals made from a contact a case was opened from, not attached to it yet,
    /// with that case.
    pub fn unattached(&self) -> Vec<(Uuid, Uuid)> {
        self.in_order(None)
            .filter_map(|(_, id, r)| match r.owner() {
                Some(Owner::Contact(contact)) => {
                    self.state.claimed.get(&contact).map(|case| (id, *case))
                }
                _ => None,
            })
            .collect()
    }

    /// Referrals made after `after` (if given), in the order they were made.
    /// The referrals `agency` made or received, made after `after` (if given), in
    /// order: at most `limit`.
    pub fn of_agency(
        &self,
        agency: &str,
        after: Option<Position>,
        limit: usize,
    ) -> Vec<(Position, Uuid, &Loaded)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let Some(set) = self.state.by_agency.get(agency) else {
            return Vec::new();
        };
        let from = after.map_or(Unbounded, Excluded);
        set.range((from, Unbounded))
            .filter_map(|p| {
                let id = self.state.made.get(p)?;
                self.state.referrals.get(id).map(|r| (*p, *id, r))
            })
            .take(limit)
            .collect()
    }

    pub fn in_order(
        &self,
        after: Option<Position>,
    ) -> impl Iterator<Item = (Position, Uuid, &Loaded)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.state
            .made
            .range((from, Unbounded))
            .filter_map(|(p, id)| self.state.referrals.get(id).map(|r| (*p, *id, r)))
    }
}

impl caseline_projection::Fold for State {
    const FORMAT: u32 = caseline_proto::snapshot_format(1);
    type Error = ApiError;
    const INTEREST: Interest =
        Interest::of(&[REFERRAL_CATEGORY], &[], &[types::CONTACT_CASE_OPENED]);

    fn reads(event: &RecordedEvent) -> bool {
        match caseline_projection::category_of(event) {
            Some(REFERRAL_CATEGORY) => true,
            Some(CONTACT_CATEGORY) => event.event_type == types::CONTACT_CASE_OPENED,
            _ => false,
        }
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApiError> {
        let Some((category, id)) = event.stream.as_str().split_once('-') else {
            return Ok(());
        };
        if category == CONTACT_CATEGORY {
            if event.event_type == types::CONTACT_CASE_OPENED
                && let (Ok(contact_id), Some(case_id)) =
                    (Uuid::parse_str(id), event.metadata.case_id)
            {
                self.claimed.insert(contact_id, case_id);
            }
            return Ok(());
        }
        if category != REFERRAL_CATEGORY {
            return Ok(());
        }
        let Ok(referral_id) = Uuid::parse_str(id) else {
            return Ok(());
        };
        let referral = self.referrals.entry(referral_id).or_default();
        let existed = referral.state.exists();
        referral.fold(event)?;
        if !existed && referral.state.exists() {
            self.made.insert(event.position, referral_id);
            self.index(event.position, referral_id);
        }
        Ok(())
    }
}
