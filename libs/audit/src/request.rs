//! The identity of a client's request: its `request_id` and a keyed fingerprint of what
//! it asked, from which the ids of the events it appends derive (UUIDv5), so that a
//! retry stores nothing new and a reused id with another payload is told apart.

use caseline_eventlog::Uuid;
use caseline_server::ApiError;

use crate::{Call, vault_error};

/// Namespace of the ids Caseline derives from requests (UUIDv5).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_1a1e_9b7e_4c1f_8a43_2d6e_0c5e_a11d);
/// One client request, as its ids derive from it.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: Uuid,
    fingerprint: [u8; 32],
}

impl Request {
    /// `request_id` of the request encoded as `message`, made by the caller of `call`,
    /// about `owner` (the case or contact). The fingerprint covers the method, the
    /// caller and the whole request, so the same id with another request (or from
    /// another caller) is told apart from a retry. It is keyed by the owner's data key:
    /// the event ids made from it are stored in the clear and must not let anyone test
    /// a guess of the sealed text (a child's name) against them, before or after the
    /// key is shredded.
    pub async fn new(
        call: &Call,
        owner: Uuid,
        request_id: Uuid,
        message: &[u8],
    ) -> Result<Self, ApiError> {
        let mut data = Vec::with_capacity(message.len() + 128);
        for part in [
            call.rpc().as_bytes(),
            call.subject().as_bytes(),
            call.agency().as_bytes(),
            message,
        ] {
            data.extend_from_slice(&(part.len() as u64).to_be_bytes());
            data.extend_from_slice(part);
        }
        let fingerprint = call
            .vault()
            .keyed_digest(owner, &data)
            .await
            .map_err(vault_error)?;
        Ok(Self {
            id: request_id,
            fingerprint,
        })
    }

    /// A request with a given fingerprint, for tests of what is done with its ids.
    #[cfg(test)]
    pub(crate) fn with_fingerprint(id: Uuid, fingerprint: [u8; 32]) -> Self {
        Self { id, fingerprint }
    }

    /// The id of the `index`th event this request appends.
    pub fn event_id(&self, index: usize) -> Uuid {
        let mut name = self.fingerprint.to_vec();
        name.extend_from_slice(b"event");
        name.extend_from_slice(&(index as u64).to_be_bytes());
        Uuid::new_v5(&ID_NAMESPACE, &name)
    }

    /// The id of what the request creates (a note, a link, a milestone).
    pub fn entry_id(&self) -> Uuid {
        let mut name = self.fingerprint.to_vec();
        name.extend_from_slice(b"entry");
        Uuid::new_v5(&ID_NAMESPACE, &name)
    }
}

/// An id for a new aggregate (case, contact) made by `call`'s caller with
/// `request_id`: a retry finds the same aggregate whatever else it changed.
pub fn new_aggregate_id(call: &Call, kind: &str, request_id: Uuid) -> Uuid {
    let name = format!(
        "{kind}\u{0}{}\u{0}{}\u{0}{request_id}",
        call.subject(),
        call.agency()
    );
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
}

/// The answer to a `request_id` already used for a different request (another payload,
/// or another caller).
pub fn reused() -> ApiError {
    ApiError::AlreadyExists("request_id was already used for a different request".into())
}
