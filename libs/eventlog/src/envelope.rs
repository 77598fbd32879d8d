//! The envelope of every recorded event and the values that address the log.
//!
//! These types validate on construction, so a backend never sees an empty stream name,
//! an oversize event or an expected version it cannot store.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::Error;

/// Largest event accepted: payload, type and metadata together.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Largest number of events in one append.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Longest stream name, in bytes.
pub const MAX_STREAM_NAME_BYTES: usize = 200;
/// Longest event type or metadata string, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest call context ([`Metadata::call`]), in bytes.
pub const MAX_CALL_CONTEXT_BYTES: usize = 1024;

/// The name of a stream: `<category>-<id>`, e.g. `case-6f1c…` or `access-global`.
///
/// The category is lowercase ASCII letters and `_`; the id is ASCII letters, digits and
/// `-`. Names starting with `$` are reserved for the storage engine (KurrentDB's system
/// streams), which this grammar excludes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    /// Validates `name` as a stream name.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let invalid = |reason: &str| Error::invalid("stream", reason);
        if name.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if name.len() > MAX_STREAM_NAME_BYTES {
            return Err(invalid("must be at most 200 bytes"));
        }
        let Some((category, id)) = name.split_once('-') else {
            return Err(invalid("must be <category>-<id>"));
        };
        if category.is_empty()
            || !category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(invalid("category must be lowercase letters or '_'"));
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid("id must be letters, digits or '-'"));
        }
        Ok(Self(name))
    }

    /// `<category>-<uuid>` (hyphenated, lowercase).
    pub fn for_id(category: &str, id: Uuid) -> Result<Self, Error> {
        Self::new(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamName({})", self.0)
    }
}

/// What the appender believes about the stream before its append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's state.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version (0-based).
    Exact(u64),
}

impl ExpectedVersion {
    /// Wire form used by the API: `-2` any, `-1` no stream, `n >= 0` exact.
    pub const WIRE_ANY: i64 = -2;
    pub const WIRE_NO_STREAM: i64 = -1;

    /// Parses the wire form; any other negative value is refused.
    pub fn from_wire(value: i64) -> Result<Self, Error> {
        match value {
            Self::WIRE_ANY => Ok(Self::Any),
            Self::WIRE_NO_STREAM => Ok(Self::NoStream),
            v if v >= 0 => Ok(Self::Exact(v as u64)),
            _ => Err(Error::invalid(
                "expected_version",
                "must be -2 (any), -1 (no stream) or a version >= 0",
            )),
        }
    }

    /// Whether a stream whose last version is `actual` (`None`: no stream) satisfies this.
    pub fn accepts(self, actual: Option<u64>) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual.is_none(),
            Self::Exact(v) => actual == Some(v),
        }
    }

    pub(crate) fn validate(self) -> Result<(), Error> {
        match self {
            Self::Exact(v) if v > MAX_VERSION => Err(Error::invalid(
                "expected_version",
                "exceeds the largest storable version",
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// Versions are stored as signed 64-bit integers by every backend.
pub(crate) const MAX_VERSION: u64 = i64::MAX as u64;

/// An opaque, totally ordered checkpoint in the global order of the log.
///
/// Backends pack their own ordering key into it (SQLite: the row id; PostgreSQL: the
/// writing transaction's id and the row id). [`Position::START`] is before every event.
/// Its decimal form ([`fmt::Display`] / [`std::str::FromStr`]) is what checkpoints store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(u128);

impl Position {
    pub const START: Position = Position(0);

    pub(crate) fn from_parts(high: u64, low: u64) -> Self {
        Self((u128::from(high) << 64) | u128::from(low))
    }

    pub(crate) fn parts(self) -> (u64, u64) {
        ((self.0 >> 64) as u64, self.0 as u64)
    }

    /// Sixteen bytes whose byte order is the positions' order (for an index column).
    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_be_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Position {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        s.parse::<u128>()
            .map(Self)
            .map_err(|_| Error::invalid("position", "must be a decimal checkpoint"))
    }
}

/// Who did what, why and in which trace: stored with every event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The child's case this event belongs to. Required on domain events; absent only
    /// where no case exists (an anonymous, unlinked helpline contact; `access-global`).
    pub case_id: Option<Uuid>,
    /// The token's `sub`.
    pub actor: String,
    pub actor_role: String,
    pub agency: String,
    pub request_id: Option<Uuid>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// W3C trace context of the request that caused the event.
    pub traceparent: Option<String>,
    /// How the call that caused the event was made, for the access history: a JSON
    /// object written by the trust layer (rpc, peer, instance, purpose, break_glass,
    /// policy_version). Covered by the hash like every other field.
    pub call: Option<String>,
}

/// An event proposed for appending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique forever; a retried append with the same ids stores nothing new.
    pub event_id: Uuid,
    /// The payload's protobuf full name, e.g. `caseline.v1.events.CaseOpened`.
    pub event_type: String,
    /// The payload, protobuf-encoded.
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

impl NewEvent {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.event_id.is_nil() {
            return Err(Error::invalid("event_id", "must not be nil"));
        }
        if self.event_type.is_empty() {
            return Err(Error::invalid("event_type", "must not be empty"));
        }
        let m = &self.metadata;
        for (field, value, limit) in [
            ("event_type", self.event_type.as_str(), MAX_LABEL_BYTES),
            ("metadata.actor", m.actor.as_str(), MAX_LABEL_BYTES),
            (
                "metadata.actor_role",
                m.actor_role.as_str(),
                MAX_LABEL_BYTES,
            ),
            ("metadata.agency", m.agency.as_str(), MAX_LABEL_BYTES),
            (
                "metadata.traceparent",
                m.traceparent.as_deref().unwrap_or(""),
                MAX_LABEL_BYTES,
            ),
            (
                "metadata.call",
                m.call.as_deref().unwrap_or(""),
                MAX_CALL_CONTEXT_BYTES,
            ),
        ] {
            if value.len() > limit {
                return Err(Error::invalid(
                    field,
                    format!("must be at most {limit} bytes"),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(Error::invalid(field, "must not contain control characters"));
            }
        }
        if self.encoded_len() > MAX_EVENT_BYTES {
            return Err(Error::TooLarge {
                field: "data",
                limit: "1 MiB per event",
            });
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        let m = &self.metadata;
        self.data.len()
            + self.event_type.len()
            + m.actor.len()
            + m.actor_role.len()
            + m.agency.len()
            + m.traceparent.as_ref().map_or(0, String::len)
            + m.call.as_ref().map_or(0, String::len)
            + 4 * 16
    }
}

/// Checks a whole batch before a backend touches storage.
pub(crate) fn validate_batch(expected: ExpectedVersion, events: &[NewEvent]) -> Result<(), Error> {
    expected.validate()?;
    if events.is_empty() {
        return Err(Error::invalid("events", "must not be empty"));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(Error::TooLarge {
            field: "events",
            limit: "1000 events per append",
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for event in events {
        event.validate()?;
        if !seen.insert(event.event_id) {
            return Err(Error::invalid("event_id", "repeated within one append"));
        }
    }
    Ok(())
}

/// An event as stored: the envelope of DESIGN.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream: StreamName,
    /// 0-based within the stream.
    pub version: u64,
    pub position: Position,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Metadata,
    /// Server clock at append, microsecond precision.
    pub recorded_at: SystemTime,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// What a successful append reports, and what an idempotent retry reports again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub first_version: u64,
    /// The stream's version after the append: the next `ExpectedVersion::Exact`.
    pub last_version: u64,
    pub last_position: Position,
}

/// Direction of [`crate::EventLog::read_stream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// Microseconds since the Unix epoch: the precision every backend stores.
pub(crate) fn to_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_micros(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// The server clock, truncated to what is stored so the hash covers the stored value.
pub(crate) fn now_micros() -> i64 {
    to_micros(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_call(call: Option<String>) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "caseline.v1.events.TestHappened".into(),
            data: b"x".to_vec(),
            metadata: Metadata {
                actor: "user-7".into(),
                actor_role: "social_worker".into(),
                agency: "children-services-north".into(),
                call,
                ..Metadata::default()
            },
        }
    }

    #[test]
    fn call_context_is_bounded_and_free_of_control_characters() {
        let at_limit = format!(
            "{{\"rpc\":\"{}\"}}",
            "a".repeat(MAX_CALL_CONTEXT_BYTES - 10)
        );
        assert_eq!(at_limit.len(), MAX_CALL_CONTEXT_BYTES);
        assert!(with_call(Some(at_limit.clone())).validate().is_ok());
        assert!(with_call(None).validate().is_ok());

        let over = format!("{at_limit} ");
        let refused = [
            (over, "must be at most 1024 bytes"),
            (
                "{\"rpc\":\"a\nb\"}".to_owned(),
                "must not contain control characters",
            ),
            (
                "{\"peer\":\"\u{7f}\"}".to_owned(),
                "must not contain control characters",
            ),
        ];
        for (call, want) in refused {
            match with_call(Some(call.clone())).validate() {
                Err(Error::InvalidInput { field, reason }) => {
                    assert_eq!(
                        (field, reason.as_str()),
                        ("metadata.call", want),
                        "{call:?}"
                    );
                }
                other => panic!("{call:?}: expected metadata.call refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn call_context_counts_towards_the_event_size() {
        let mut e = with_call(None);
        e.data = vec![0; MAX_EVENT_BYTES - (e.encoded_len() - e.data.len())];
        assert_eq!(e.encoded_len(), MAX_EVENT_BYTES);
        assert!(e.validate().is_ok());
        e.metadata.call = Some("{}".into());
        assert!(matches!(
            e.validate(),
            Err(Error::TooLarge { field: "data", .. })
        ));
    }
}
