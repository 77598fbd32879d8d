//! Access records: the `AccessRecorded` events of reads and of refused or failed calls.

use caseline_eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamName, Uuid};
use caseline_policy::teams::{
    ACCESS_CATEGORY, ACCESS_GLOBAL_STREAM, ACCESS_UNAUTHENTICATED_STREAM,
};
use caseline_policy::{Decision, Via};
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{AccessOutcome, AccessRecorded};

use crate::trace::TraceContext;

/// The event type of access records.
pub const ACCESS_RECORDED: &str = "caseline.v1.events.AccessRecorded";

/// Everything an access record says, gathered while the call runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct AccessFacts {
    pub rpc: String,
    pub actor: String,
    pub role: String,
    pub agency: String,
    pub status_code: i32,
    /// Refused by authentication or policy (as opposed to failed).
    pub denied: bool,
    pub reason: String,
    pub resource_ids: Vec<String>,
    pub purpose: String,
    pub policy_version: String,
    pub trace: TraceContext,
    pub peer: String,
    pub instance: String,
    pub unauthenticated: bool,
}

/// Appends one access record: to `access-<case>` for a case, to
/// `access-unauthenticated` when no one was authenticated, else to `access-global`.
pub(crate) async fn append_access(
    log: &dyn EventLog,
    facts: &AccessFacts,
    case: Option<(Uuid, Decision)>,
) -> Result<(), caseline_eventlog::Error> {
    let (stream, case_id) = match case {
        Some((id, _)) => (StreamName::for_id(ACCESS_CATEGORY, id)?, Some(id)),
        None if facts.actor.is_empty() => (StreamName::new(ACCESS_UNAUTHENTICATED_STREAM)?, None),
        None => (StreamName::new(ACCESS_GLOBAL_STREAM)?, None),
    };
    let denied = facts.denied || case.is_some_and(|(_, d)| !d.is_allowed());
    let outcome = if denied {
        AccessOutcome::Denied
    } else if facts.status_code == 0 {
        AccessOutcome::Allowed
    } else {
        AccessOutcome::Error
    };
    let reason = match case {
        Some((_, d)) => d.reason.as_str().to_owned(),
        None => facts.reason.clone(),
    };
    let payload = AccessRecorded {
        rpc: facts.rpc.clone(),
        outcome: outcome as i32,
        status_code: facts.status_code,
        reason,
        case_id: case_id.map(|id| id.to_string()).unwrap_or_default(),
        resource_ids: facts.resource_ids.clone(),
        purpose: facts.purpose.clone(),
        break_glass: case.is_some_and(|(_, d)| matches!(d.via, Via::BreakGlass { .. })),
        policy_version: case.map_or_else(
            || facts.policy_version.clone(),
            |(_, d)| d.policy_version.to_owned(),
        ),
        trace_id: facts.trace.trace_id.clone(),
        peer: facts.peer.clone(),
        instance: facts.instance.clone(),
        unauthenticated: facts.unauthenticated,
    };
    let event = NewEvent {
        // Time-ordered: the log's index of ids by stream then takes each record at the
        // end of its stream's range (`access-global` grows by every list call), not on
        // a random leaf of it, read and written again at every commit.
        event_id: Uuid::now_v7(),
        event_type: ACCESS_RECORDED.to_owned(),
        data: payload.encode_to_vec(),
        metadata: Metadata {
            case_id,
            actor: facts.actor.clone(),
            actor_role: facts.role.clone(),
            agency: facts.agency.clone(),
            request_id: None,
            correlation_id: None,
            causation_id: None,
            traceparent: Some(facts.trace.traceparent.clone()),
            // The record's payload already holds the call's context.
            call: None,
        },
    };
    log.append(&stream, ExpectedVersion::Any, vec![event])
        .await?;
    Ok(())
}
