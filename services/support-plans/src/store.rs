//! A support plan loaded from its stream (`plan-<id>`), on the shared command path.

use std::time::SystemTime;

use caseline_aggregate::{Aggregate, Refusal};
use caseline_eventlog::{RecordedEvent, Uuid};

use crate::domain::{self, Command, Event, PlanState};

/// Stream category of support plans.
pub const PLAN_CATEGORY: &str = "plan";

/// Namespace of plan ids: the `n`th plan of a case is UUIDv5(case id, n), so two
/// creations racing for a case's next plan meet on one stream and one of them wins.
const PLAN_NAMESPACE: Uuid = Uuid::from_u128(0x91a4_57c3_8b2e_4d6f_a0c1_e2f3_0415_2637);

/// The id of the `n`th plan of a case.
pub(crate) fn nth_plan_id(case_id: Uuid, n: u64) -> Uuid {
    let mut name = case_id.as_bytes().to_vec();
    name.extend_from_slice(&n.to_be_bytes());
    Uuid::new_v5(&PLAN_NAMESPACE, &name)
}

/// A plan as its stream says, with when it was made.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub state: PlanState,
    pub created_at: Option<SystemTime>,
    pub last_review_at: Option<SystemTime>,
}

impl Plan {
    /// The case the plan is for.
    pub fn case_id(&self) -> Option<Uuid> {
        self.state
            .created
            .as_ref()
            .and_then(|c| Uuid::parse_str(&c.case_id).ok())
    }
}

/// A plan loaded from its stream, with its version and the requests applied.
pub type Loaded = caseline_aggregate::Loaded<Plan>;

impl caseline_aggregate::Listed for Plan {
    // 2: lists keep the case of each.
    const FORMAT: u32 = caseline_proto::snapshot_format(2);
}

impl Aggregate for Plan {
    const CATEGORY: &'static str = PLAN_CATEGORY;
    const KIND: &'static str = "plan";
    type Command = Command;
    type Event = Event;

    fn apply(&mut self, e: &Event, event: &RecordedEvent) {
        match e {
            Event::Created(_) => self.created_at = Some(event.recorded_at),
            Event::Reviewed(_) => self.last_review_at = Some(event.recorded_at),
            _ => {}
        }
        self.state = domain::evolve(std::mem::take(&mut self.state), e, &event.metadata.actor);
    }

    fn decide(&self, command: Command) -> Result<Vec<Event>, Refusal> {
        domain::decide(&self.state, command)
    }
}
