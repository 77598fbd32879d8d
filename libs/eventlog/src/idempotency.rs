//! Idempotent appends: a batch whose event ids are already stored is a retry when it
//! matches what was stored (same stream, consecutive versions, same types and payloads)
//! and gets the original result; anything else reusing those ids is a conflict. Who
//! asked (actor, agency) and for which case are part of the match: another caller
//! reusing a request id does not get the first caller's answer.

use crate::{AppendResult, Error, NewEvent, Position, StreamName};

/// What a backend found stored under one of the batch's event ids.
#[derive(Debug)]
pub(crate) struct StoredCopy {
    pub stream: String,
    pub version: u64,
    pub event_type: String,
    pub data: Vec<u8>,
    pub position: Position,
    pub actor: String,
    pub agency: String,
    pub case_id: Option<uuid::Uuid>,
}

/// Decides whether a batch is a faithful retry of one stored before. `stored[i]` is what
/// is stored under `events[i].event_id`, if anything.
pub(crate) fn resolve_retry(
    stream: &StreamName,
    events: &[NewEvent],
    stored: &[Option<StoredCopy>],
) -> Result<Option<AppendResult>, Error> {
    if stored.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut first_version = None;
    let mut last_position = Position::START;
    for (i, (event, copy)) in events.iter().zip(stored).enumerate() {
        let conflict = || Error::EventIdConflict {
            event_id: event.event_id,
        };
        let copy = copy.as_ref().ok_or_else(conflict)?;
        let first = *first_version.get_or_insert(copy.version);
        if copy.stream != stream.as_str()
            || copy.version != first + i as u64
            || copy.event_type != event.event_type
            || copy.data != event.data
            || copy.actor != event.metadata.actor
            || copy.agency != event.metadata.agency
            || copy.case_id != event.metadata.case_id
        {
            return Err(conflict());
        }
        last_position = last_position.max(copy.position);
    }
    let first_version = first_version.unwrap_or(0);
    Ok(Some(AppendResult {
        first_version,
        last_version: first_version + events.len() as u64 - 1,
        last_position,
    }))
}
