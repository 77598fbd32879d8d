//! The plan directory: every plan's state, fed by the log in global order, for the
//! review-due list and the plan lists. Commands never read it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use caseline_eventlog::{EventLog, Position, RecordedEvent, Uuid};
use caseline_server::ApiError;

use crate::store::{Loaded, PLAN_CATEGORY};

#[derive(Debug, Default)]
struct State {
    after: Position,
    plans: HashMap<Uuid, Loaded>,
    /// Plans by the position of their creation.
    created: BTreeMap<Position, Uuid>,
}

#[derive(Debug)]
pub(crate) struct Directory {
    log: Arc<dyn EventLog>,
    state: tokio::sync::Mutex<State>,
}

impl Directory {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Plans created after `after` that `include` admits, in the order created, caught
    /// up with everything the log holds now.
    pub async fn select(
        &self,
        after: Option<Position>,
        include: impl Fn(&Loaded) -> bool,
    ) -> Result<Vec<(Position, Uuid, Loaded)>, ApiError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        let mut at = state.after;
        let caught_up =
            caseline_eventlog::catch_up(self.log.as_ref(), &mut at, |e| state.apply(e)).await;
        state.after = at;
        caught_up?;
        let from = after.map_or(Unbounded, Excluded);
        Ok(state
            .created
            .range((from, Unbounded))
            .filter_map(|(p, id)| state.plans.get(id).map(|l| (*p, *id, l)))
            .filter(|(_, _, l)| include(l))
            .map(|(p, id, l)| (p, id, l.clone()))
            .collect())
    }
}

impl State {
    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApiError> {
        let Some((category, id)) = event.stream.as_str().split_once('-') else {
            return Ok(());
        };
        if category != PLAN_CATEGORY {
            return Ok(());
        }
        let Ok(plan_id) = Uuid::parse_str(id) else {
            return Ok(());
        };
        let plan = self.plans.entry(plan_id).or_default();
        let existed = plan.state.exists();
        plan.apply(event)?;
        if !existed && plan.state.exists() {
            self.created.insert(event.position, plan_id);
        }
        Ok(())
    }
}
