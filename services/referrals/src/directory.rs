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

use crate::store::{Loaded, REFERRAL_CATEGORY};

#[derive(Debug, Default)]
struct State {
    after: Position,
    referrals: HashMap<Uuid, Loaded>,
    /// Referrals by the position of their making, for pages in the order made.
    made: BTreeMap<Position, Uuid>,
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
        let mut state = self.state.lock().await;
        const PAGE: usize = 1000;
        loop {
            let page = self.log.read_all(state.after, PAGE).await?;
            for event in &page {
                state.apply(event)?;
                state.after = event.position;
            }
            if page.len() < PAGE {
                return Ok(View { state });
            }
        }
    }
}

impl View<'_> {
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
