//! A client's request as the command path knows it ([`caseline_aggregate::Request`]):
//! its id, and a fingerprint of what it asked keyed by the data key of whom it is
//! about.

use caseline_aggregate::{Request, aggregate_id};
use caseline_eventlog::Uuid;
use caseline_server::ApiError;

use crate::{Call, vault_error};

impl Call {
    /// The request `request_id` of the message `message`, made by this call's caller,
    /// about `owner` (the case or contact). The fingerprint covers the method, the caller
    /// and the whole request, so the same id with another request (or from another caller)
    /// is told apart from a retry. It is keyed by the owner's data key: the event ids made
    /// from it are stored in the clear and must not let anyone test a guess of the sealed
    /// text (a child's name) against them, before or after the key is shredded.
    pub async fn request(
        &self,
        owner: Uuid,
        request_id: Uuid,
        message: &[u8],
    ) -> Result<Request, ApiError> {
        let mut data = Vec::with_capacity(message.len() + 128);
        for part in [
            self.rpc().as_bytes(),
            self.subject().as_bytes(),
            self.agency().as_bytes(),
            message,
        ] {
            data.extend_from_slice(&(part.len() as u64).to_be_bytes());
            data.extend_from_slice(part);
        }
        let fingerprint = self
            .vault()
            .keyed_digest(owner, &data)
            .await
            .map_err(vault_error)?;
        Ok(Request::with_fingerprint(request_id, fingerprint))
    }
}

/// An id for a new aggregate (case, contact) made by `call`'s caller with
/// `request_id`: a retry finds the same aggregate whatever else it changed.
pub fn new_aggregate_id(call: &Call, kind: &str, request_id: Uuid) -> Uuid {
    aggregate_id(kind, call.subject(), call.agency(), request_id)
}
