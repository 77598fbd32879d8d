//! The per-stream hash chain: `hash = SHA-256(prev_hash ‖ canonical envelope bytes)`.
//!
//! The canonical bytes cover everything an event says: id, stream, version, type,
//! payload, every metadata field and the recorded time. They do not cover the global
//! position, which each backend assigns its own way (and KurrentDB only after the
//! write). Every field is length-prefixed, so no two envelopes share an encoding.

use sha2::{Digest, Sha256};

use crate::envelope::to_micros;
use crate::{Metadata, RecordedEvent};

/// The `prev_hash` of a stream's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// Domain separator: a change of encoding gets a new tag, so two encodings can never be
/// confused. v2 added `metadata.call`; v1 was never deployed, so nothing verifies it.
const TAG: &[u8] = b"caseline.envelope.v2";

/// The fields hashed for one event, borrowed from wherever they live.
pub(crate) struct Canonical<'a> {
    pub event_id: uuid::Uuid,
    pub stream: &'a str,
    pub version: u64,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub metadata: &'a Metadata,
    pub recorded_at_micros: i64,
}

impl Canonical<'_> {
    pub(crate) fn hash(&self, prev_hash: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prev_hash);
        field(&mut h, TAG);
        field(&mut h, self.event_id.as_bytes());
        field(&mut h, self.stream.as_bytes());
        field(&mut h, &self.version.to_be_bytes());
        field(&mut h, self.event_type.as_bytes());
        field(&mut h, self.data);
        let m = self.metadata;
        optional(&mut h, m.case_id.as_ref().map(|u| u.as_bytes().as_slice()));
        field(&mut h, m.actor.as_bytes());
        field(&mut h, m.actor_role.as_bytes());
        field(&mut h, m.agency.as_bytes());
        optional(
            &mut h,
            m.request_id.as_ref().map(|u| u.as_bytes().as_slice()),
        );
        optional(
            &mut h,
            m.correlation_id.as_ref().map(|u| u.as_bytes().as_slice()),
        );
        optional(
            &mut h,
            m.causation_id.as_ref().map(|u| u.as_bytes().as_slice()),
        );
        optional(&mut h, m.traceparent.as_deref().map(str::as_bytes));
        optional(&mut h, m.call.as_deref().map(str::as_bytes));
        field(&mut h, &self.recorded_at_micros.to_be_bytes());
        h.finalize().into()
    }
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn optional(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            field(h, b);
        }
    }
}

/// The head of a stream: its last version and that event's hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub version: u64,
    pub hash: [u8; 32],
}

/// One event of a batch, placed in its stream: what a backend stores beside it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    pub version: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Versions and hashes for `events` appended after `head` (`None`: a new stream), all
/// recorded at `recorded_at_micros`. The last link is the stream's new head.
pub(crate) fn link(
    stream: &crate::StreamName,
    head: Option<Head>,
    events: &[crate::NewEvent],
    recorded_at_micros: i64,
) -> Result<Vec<Link>, crate::Error> {
    if events.is_empty() {
        return Err(crate::Error::invalid("events", "must not be empty"));
    }
    let first_version = head.map_or(0, |h| h.version + 1);
    if first_version + events.len() as u64 - 1 > crate::envelope::MAX_VERSION {
        return Err(crate::Error::invalid(
            "events",
            "stream would exceed the largest version",
        ));
    }
    let mut prev_hash = head.map_or(GENESIS, |h| h.hash);
    let mut links = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let version = first_version + i as u64;
        let hash = Canonical {
            event_id: event.event_id,
            stream: stream.as_str(),
            version,
            event_type: &event.event_type,
            data: &event.data,
            metadata: &event.metadata,
            recorded_at_micros,
        }
        .hash(&prev_hash);
        links.push(Link {
            version,
            prev_hash,
            hash,
        });
        prev_hash = hash;
    }
    Ok(links)
}

/// The first version of a non-empty batch's links, and the stream's head after it.
pub(crate) fn span(links: &[Link]) -> (u64, Head) {
    let first = links.first().map_or(0, |l| l.version);
    let head = links.last().map_or(
        Head {
            version: first,
            hash: GENESIS,
        },
        |l| Head {
            version: l.version,
            hash: l.hash,
        },
    );
    (first, head)
}

/// A hash as read back from storage: exactly 32 bytes, or the row is corrupt. `at` names
/// where it was read (a position or a stream head), never the event's content.
pub(crate) fn stored_hash(
    bytes: Vec<u8>,
    at: impl std::fmt::Display,
) -> Result<[u8; 32], crate::Error> {
    bytes.try_into().map_err(|_| crate::Error::Corrupt {
        position: at.to_string(),
        reason: "hash is not 32 bytes".into(),
    })
}

/// Recomputes the hash a recorded event should have, given its stored `prev_hash`.
pub(crate) fn recompute(event: &RecordedEvent) -> [u8; 32] {
    Canonical {
        event_id: event.event_id,
        stream: event.stream.as_str(),
        version: event.version,
        event_type: &event.event_type,
        data: &event.data,
        metadata: &event.metadata,
        recorded_at_micros: to_micros(event.recorded_at),
    }
    .hash(&event.prev_hash)
}

/// What `verify_stream` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub events_checked: u64,
    /// The first broken link, or `None` when the whole chain holds.
    pub first_broken: Option<BrokenLink>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    pub version: u64,
    pub event_id: uuid::Uuid,
    pub kind: BrokenKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenKind {
    /// The event's content no longer matches its stored hash.
    HashMismatch,
    /// The event's `prev_hash` is not the previous event's hash.
    PrevHashMismatch,
    /// A version is missing or out of place (an event was deleted or renumbered).
    VersionGap,
}

impl std::fmt::Display for BrokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HashMismatch => "content does not match its hash",
            Self::PrevHashMismatch => "prev_hash does not match the previous event",
            Self::VersionGap => "version missing or out of place",
        })
    }
}

/// Walks a stream's events in version order, page by page, checking every link.
#[derive(Debug)]
pub(crate) struct ChainVerifier {
    next_version: u64,
    prev_hash: [u8; 32],
    pub(crate) report: VerifyReport,
}

impl ChainVerifier {
    pub(crate) fn new() -> Self {
        Self {
            next_version: 0,
            prev_hash: GENESIS,
            report: VerifyReport {
                events_checked: 0,
                first_broken: None,
            },
        }
    }

    /// Checks one event; returns false once a broken link has been found.
    pub(crate) fn check(&mut self, event: &RecordedEvent) -> bool {
        let kind = if event.version != self.next_version {
            Some(BrokenKind::VersionGap)
        } else if event.prev_hash != self.prev_hash {
            Some(BrokenKind::PrevHashMismatch)
        } else if recompute(event) != event.hash {
            Some(BrokenKind::HashMismatch)
        } else {
            None
        };
        self.report.events_checked += 1;
        if let Some(kind) = kind {
            self.report.first_broken = Some(BrokenLink {
                version: self.next_version.min(event.version),
                event_id: event.event_id,
                kind,
            });
            return false;
        }
        self.next_version += 1;
        self.prev_hash = event.hash;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_with_call(call: Option<&str>) -> [u8; 32] {
        let metadata = Metadata {
            actor: "user-7".into(),
            actor_role: "social_worker".into(),
            agency: "children-services-north".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            call: call.map(str::to_owned),
            ..Metadata::default()
        };
        Canonical {
            event_id: uuid::Uuid::from_u128(7),
            stream: "case-1",
            version: 0,
            event_type: "caseline.v1.events.TestHappened",
            data: b"x",
            metadata: &metadata,
            recorded_at_micros: 1,
        }
        .hash(&GENESIS)
    }

    /// Absent, empty and any two different call contexts hash apart.
    #[test]
    fn call_is_covered_by_the_hash() {
        let hashes = [
            hash_with_call(None),
            hash_with_call(Some("")),
            hash_with_call(Some(r#"{"break_glass":false}"#)),
            hash_with_call(Some(r#"{"break_glass":true}"#)),
        ];
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(hashes[2], hash_with_call(Some(r#"{"break_glass":false}"#)));
    }
}
