//! The referral directory: every referral's state, fed by the log in global order, for
//! inboxes, outboxes, the overdue list and the escalation process. Commands never read
//! it (they load the referral's own stream).
//!
//! It catches up with the log before every query (and may be rebuilt from nothing at
//! any time): what a caller just wrote is listed on their next call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use caseline_eventlog::{EventLog, Position, RecordedEvent, Uuid};
use caseline_server::ApiError;

use caseline_proto::event_types as types;

use crate::store::{Loaded, Owner, REFERRAL_CATEGORY};

/// Stream category of helpline contacts (CaseService's).
const CONTACT_CATEGORY: &str = "contact";

#[derive(Debug, Default)]
struct State {
    after: Position,
    referrals: HashMap<Uuid, Loaded>,
    /// Referrals by the position of their making, for pages in the order made.
    made: BTreeMap<Position, Uuid>,
    /// Helpline contacts a case was opened from, with the case.
    claimed: HashMap<Uuid, Uuid>,
}

#[derive(Debug)]
pub(crate) struct Directory {
    log: Arc<dyn EventLog>,
    state: tokio::sync::Mutex<State>,
}

/// The directory, read under its lock.
pub(crate) struct View<'a> {
    state: tokio::sync::MutexGuard<'a, State>,
}

impl Directory {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The directory, caught up with everything the log holds now.
    pub async fn view(&self) -> Result<View<'_>, ApiError> {
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        let mut after = state.after;
        let caught_up =
            caseline_eventlog::catch_up(self.log.as_ref(), &mut after, |e| state.apply(e)).await;
        // Up to the last event applied, even when one failed: none is applied twice.
        state.after = after;
        caught_up?;
        Ok(View { state: guard })
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

impl State {
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
        referral.apply(event)?;
        if !existed && referral.state.exists() {
            self.made.insert(event.position, referral_id);
        }
        Ok(())
    }
}
