//! The identity of a request: its `request_id` and a keyed fingerprint of what it asked,
//! from which the ids of the events it appends derive (UUIDv5), so that a retry stores
//! nothing new and a reused id with another payload is told apart.

use caseline_eventlog::Uuid;
use caseline_server::ApiError;

/// Namespace of the ids Caseline derives from requests (UUIDv5).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_1a1e_9b7e_4c1f_8a43_2d6e_0c5e_a11d);
/// Namespace of the fingerprints of the system's own requests.
const SYSTEM_NAMESPACE: Uuid = Uuid::from_u128(0x0b6e_51c2_7d4f_4a3e_9c1d_2e5f_6a7b_8c9d);

/// One request, as its ids derive from it.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: Uuid,
    fingerprint: [u8; 32],
}

impl Request {
    /// A client's request `id` with the keyed `fingerprint` of what it asked (made by
    /// the trust layer: the method, the caller and the whole request, keyed by the data
    /// key of the case or contact it is about).
    pub fn with_fingerprint(id: Uuid, fingerprint: [u8; 32]) -> Self {
        Self { id, fingerprint }
    }

    /// A request the system makes itself (joining a team when a referral is accepted,
    /// moving a referral onto its case), named by an id derived from what caused it: the
    /// same cause makes the same request, so doing it again appends nothing.
    pub fn system(id: Uuid) -> Self {
        let mut fingerprint = [0; 32];
        fingerprint[..16].copy_from_slice(id.as_bytes());
        fingerprint[16..]
            .copy_from_slice(Uuid::new_v5(&SYSTEM_NAMESPACE, id.as_bytes()).as_bytes());
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

/// An id for a new aggregate of `kind` (case, contact, referral, claim) made by
/// `subject` of `agency` with `request_id`: a retry finds the same aggregate whatever
/// else it changed.
pub fn aggregate_id(kind: &str, subject: &str, agency: &str, request_id: Uuid) -> Uuid {
    let name = format!("{kind}\u{0}{subject}\u{0}{agency}\u{0}{request_id}");
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
}

/// The answer to a `request_id` already used for a different request (another payload,
/// or another caller).
pub fn reused() -> ApiError {
    ApiError::AlreadyExists("request_id was already used for a different request".into())
}
