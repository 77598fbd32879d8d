//! Claims (`claim-<id>`) and complaints (`complaint-<id>`) loaded from their streams,
//! on the shared command path. Each knows its case from its events' metadata.

use caseline_audit::aggregate::Aggregate;
use caseline_eventlog::{Error as LogError, RecordedEvent, StreamName, Uuid};
use caseline_server::{ApiError, FieldViolation};

use crate::domain::{
    ClaimCommand, ClaimEvent, ClaimState, ComplaintCommand, ComplaintEvent, ComplaintState,
    DomainError, decide_claim, decide_complaint, evolve_claim, evolve_complaint,
};

pub const CLAIM_CATEGORY: &str = "claim";
pub const COMPLAINT_CATEGORY: &str = "complaint";

pub(crate) fn stream(category: &str, id: Uuid) -> Result<StreamName, ApiError> {
    Ok(StreamName::for_id(category, id)?)
}

fn corrupt(event: &RecordedEvent) -> LogError {
    LogError::Corrupt {
        position: event.position.to_string(),
        reason: format!("{} payload does not decode", event.event_type),
    }
}

fn refusal(e: DomainError, kind: &'static str, id: Uuid) -> ApiError {
    match e {
        DomainError::Missing => ApiError::NotFound {
            kind,
            id: id.to_string(),
        },
        DomainError::Invalid { field, reason } => {
            ApiError::InvalidArgument(vec![FieldViolation::new(field, reason)])
        }
        DomainError::Precondition(why) => ApiError::FailedPrecondition(why.to_owned()),
    }
}

/// A claim, with its case.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub state: ClaimState,
    pub case_id: Option<Uuid>,
}

pub type LoadedClaim = caseline_audit::aggregate::Loaded<Claim>;

impl caseline_audit::aggregate::Listed for Claim {
    const CATEGORY: &'static str = CLAIM_CATEGORY;
    const FORMAT: u32 = caseline_proto::snapshot_format(1);
}

impl Aggregate for Claim {
    type Command = ClaimCommand;
    type Event = ClaimEvent;

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        if let Some(e) =
            ClaimEvent::decode(&event.event_type, &event.data).map_err(|_| corrupt(event))?
        {
            if matches!(e, ClaimEvent::Filed(_)) {
                self.case_id = event.metadata.case_id;
            }
            self.state = evolve_claim(std::mem::take(&mut self.state), &e);
        }
        Ok(())
    }

    fn decide(&self, id: Uuid, command: ClaimCommand) -> Result<Vec<ClaimEvent>, ApiError> {
        decide_claim(&self.state, command).map_err(|e| refusal(e, "claim", id))
    }

    fn encode(event: &ClaimEvent) -> (&'static str, Vec<u8>) {
        (event.event_type(), event.encode())
    }
}

/// A complaint, with its case.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Complaint {
    pub state: ComplaintState,
    pub case_id: Option<Uuid>,
}

pub type LoadedComplaint = caseline_audit::aggregate::Loaded<Complaint>;

impl caseline_audit::aggregate::Listed for Complaint {
    const CATEGORY: &'static str = COMPLAINT_CATEGORY;
    const FORMAT: u32 = caseline_proto::snapshot_format(1);
}

impl Aggregate for Complaint {
    type Command = ComplaintCommand;
    type Event = ComplaintEvent;

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        if let Some(e) =
            ComplaintEvent::decode(&event.event_type, &event.data).map_err(|_| corrupt(event))?
        {
            if matches!(e, ComplaintEvent::Lodged(_)) {
                self.case_id = event.metadata.case_id;
            }
            self.state = evolve_complaint(std::mem::take(&mut self.state), &e);
        }
        Ok(())
    }

    fn decide(&self, id: Uuid, command: ComplaintCommand) -> Result<Vec<ComplaintEvent>, ApiError> {
        decide_complaint(&self.state, command).map_err(|e| refusal(e, "complaint", id))
    }

    fn encode(event: &ComplaintEvent) -> (&'static str, Vec<u8>) {
        (event.event_type(), event.encode())
    }
}
