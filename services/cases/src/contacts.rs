//! Helpline contacts, in their own streams (`contact-<id>`) until a case is opened from
//! one: then the contact is marked as leading to that case, and its content is copied
//! into the case (sealed again with the case's key) so that it is on the timeline.

use caseline_eventlog::{Direction, Error as LogError, ExpectedVersion, NewEvent, Uuid};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{ContactAttached, ContactCaseOpened, ContactRecorded};
use caseline_server::ApiError;
use caseline_trust::{Call, vault_error};
use caseline_vault::Opened;

use caseline_aggregate::{Request, reused};
use caseline_case::contact_stream;

/// Index of the claim event among a request's event ids (the case's own events use
/// the low indices).
const CLAIM_INDEX: usize = 1_000;

/// Records a contact; a retry of the same request answers as the first.
pub(crate) async fn record(
    call: &Call,
    contact_id: Uuid,
    request: &Request,
    contact: ContactRecorded,
) -> Result<(), ApiError> {
    let stream = contact_stream(contact_id)?;
    let event = NewEvent {
        event_id: request.event_id(0),
        event_type: types::CONTACT_RECORDED.to_owned(),
        data: contact.encode_to_vec(),
        metadata: call.event_metadata(None, Some(request.id)),
    };
    match call
        .log()
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
    {
        Ok(_) => Ok(()),
        // Same event id: the same request (its fingerprint made the id), sealed anew.
        Err(LogError::EventIdConflict { .. }) => Ok(()),
        Err(LogError::WrongExpectedVersion { .. }) => Err(reused()),
        Err(e) => Err(e.into()),
    }
}

/// Claims the contact for `case_id` (once; a retry of the same opening passes) and
/// returns its content sealed again for the case. Only the agency that recorded a
/// contact may open a case from it; to anyone else it does not exist.
pub(crate) async fn claim(
    call: &Call,
    contact_id: Uuid,
    case_id: Uuid,
    request: &Request,
) -> Result<ContactAttached, ApiError> {
    let stream = contact_stream(contact_id)?;
    let not_found = || ApiError::NotFound {
        kind: "contact",
        id: contact_id.to_string(),
    };
    for _ in 0..3 {
        let events = call
            .log()
            .read_stream(&stream, Direction::Forwards, Some(0), 100)
            .await?;
        let Some(first) = events.first() else {
            return Err(not_found());
        };
        if first.event_type != types::CONTACT_RECORDED || first.metadata.agency != call.agency() {
            return Err(not_found());
        }
        let recorded =
            ContactRecorded::decode(first.data.as_slice()).map_err(|_| LogError::Corrupt {
                position: first.position.to_string(),
                reason: "ContactRecorded payload does not decode".into(),
            })?;
        let claimed_by = events
            .iter()
            .filter(|e| e.event_type == types::CONTACT_CASE_OPENED)
            .find_map(|e| e.metadata.case_id);
        match claimed_by {
            Some(id) if id == case_id => {}
            Some(_) => {
                return Err(ApiError::FailedPrecondition(
                    "a case was already opened from this contact".into(),
                ));
            }
            None => {
                let last = events.last().map_or(0, |e| e.version);
                let claim = NewEvent {
                    event_id: request.event_id(CLAIM_INDEX),
                    event_type: types::CONTACT_CASE_OPENED.to_owned(),
                    data: ContactCaseOpened {
                        case_id: case_id.to_string(),
                    }
                    .encode_to_vec(),
                    metadata: call.event_metadata(Some(case_id), Some(request.id)),
                };
                match call
                    .log()
                    .append(&stream, ExpectedVersion::Exact(last), vec![claim])
                    .await
                {
                    Ok(_) => {}
                    // Another opening raced this one: look again.
                    Err(LogError::WrongExpectedVersion { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        return attach(call, contact_id, case_id, first.recorded_at, recorded).await;
    }
    Err(ApiError::Log(LogError::WrongExpectedVersion {
        stream,
        expected: ExpectedVersion::Any,
        actual: None,
    }))
}

async fn attach(
    call: &Call,
    contact_id: Uuid,
    case_id: Uuid,
    contacted_at: std::time::SystemTime,
    c: ContactRecorded,
) -> Result<ContactAttached, ApiError> {
    let reseal = |bytes: Vec<u8>| async move {
        let vault = call.vault();
        match vault
            .open_field(contact_id, &bytes)
            .await
            .map_err(vault_error)?
        {
            Opened::Plain(text) => vault
                .seal_field(case_id, text.expose())
                .await
                .map_err(vault_error),
            Opened::Erased => Ok(Vec::new()),
        }
    };
    Ok(ContactAttached {
        contact_id: contact_id.to_string(),
        channel: c.channel,
        caller_kind: c.caller_kind,
        concerns: c.concerns,
        urgency: c.urgency,
        anonymous: c.anonymous,
        summary_sealed: reseal(c.summary_sealed).await?,
        caller_name_sealed: reseal(c.caller_name_sealed).await?,
        caller_contact_sealed: reseal(c.caller_contact_sealed).await?,
        contacted_at_unix_ms: caseline_policy::teams::to_unix_ms(contacted_at),
    })
}
