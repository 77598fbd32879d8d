//! Claims (`claim-<id>`) and complaints (`complaint-<id>`) loaded from their streams,
//! on the shared command path. Each knows its case from its events' metadata.

use caseline_aggregate::{Aggregate, Refusal};
use caseline_eventlog::{RecordedEvent, Uuid};

use crate::domain::{
    ClaimCommand, ClaimEvent, ClaimState, ComplaintCommand, ComplaintEvent, ComplaintState,
    decide_claim, decide_complaint, evolve_claim, evolve_complaint,
};

pub const CLAIM_CATEGORY: &str = "claim";
pub const COMPLAINT_CATEGORY: &str = "complaint";

/// A claim, with its case.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub state: ClaimState,
    pub case_id: Option<Uuid>,
}

pub type LoadedClaim = caseline_aggregate::Loaded<Claim>;

impl caseline_aggregate::Listed for Claim {
    // 2: lists keep the case of each.
    const FORMAT: u32 = caseline_proto::snapshot_format(2);
}

impl Aggregate for Claim {
    const CATEGORY: &'static str = CLAIM_CATEGORY;
    const KIND: &'static str = "claim";
    type Command = ClaimCommand;
    type Event = ClaimEvent;

    fn apply(&mut self, e: &ClaimEvent, event: &RecordedEvent) {
        if matches!(e, ClaimEvent::Filed(_)) {
            self.case_id = event.metadata.case_id;
        }
        self.state = evolve_claim(std::mem::take(&mut self.state), e);
    }

    fn decide(&self, command: ClaimCommand) -> Result<Vec<ClaimEvent>, Refusal> {
        decide_claim(&self.state, command)
    }
}

/// A complaint, with its case.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Complaint {
    pub state: ComplaintState,
    pub case_id: Option<Uuid>,
}

pub type LoadedComplaint = caseline_aggregate::Loaded<Complaint>;

impl caseline_aggregate::Listed for Complaint {
    // 2: lists keep the case of each.
    const FORMAT: u32 = caseline_proto::snapshot_format(2);
}

impl Aggregate for Complaint {
    const CATEGORY: &'static str = COMPLAINT_CATEGORY;
    const KIND: &'static str = "complaint";
    type Command = ComplaintCommand;
    type Event = ComplaintEvent;

    fn apply(&mut self, e: &ComplaintEvent, event: &RecordedEvent) {
        if matches!(e, ComplaintEvent::Lodged(_)) {
            self.case_id = event.metadata.case_id;
        }
        self.state = evolve_complaint(std::mem::take(&mut self.state), e);
    }

    fn decide(&self, command: ComplaintCommand) -> Result<Vec<ComplaintEvent>, Refusal> {
        decide_complaint(&self.state, command)
    }
}
