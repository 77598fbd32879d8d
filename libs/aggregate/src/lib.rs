//! The one command path every Caseline service runs its commands on, and what goes with
//! it:
//!
//! - [`Aggregate`]: a state folded from its own stream (`<category>-<id>`) that decides
//!   commands into events, refusing with the domain's own [`Refusal`], never a
//!   transport status.
//! - [`Store::execute`]: load (kept between commands in a bounded cache and brought up
//!   to date from the log), idempotency by request id ([`Request`]), the version the
//!   client saw, a [`Gate`] asked on every state decided on, decide, append at the
//!   version read, and a bounded retry when another process won the race
//!   ([`turns`]).
//! - [`events!`]: the event codec (stored type, encode, decode) written once for every
//!   domain.
//! - [`Projection`] and [`page_of`]: lists of every aggregate of a category, paged.
//! - [`testing`]: given/when/then over a domain's pure rules.
#![forbid(unsafe_code)]

mod codec;
mod list;
mod loaded;
mod refusal;
mod request;
mod store;
pub mod testing;
pub mod turns;

pub use caseline_proto::prost;
pub use codec::{EventCodec, Evolves, Rules};
pub use list::{Category, Listed, Projection, page_of};
pub use loaded::{Loaded, REQUESTS_REMEMBERED, Requests};
pub use refusal::Refusal;
pub use request::{Request, aggregate_id, reused};
pub use store::{CACHED_AGGREGATES, Done, Gate, Intent, Store};

use caseline_eventlog::{Error as LogError, RecordedEvent, StreamName, Uuid};
use caseline_server::ApiError;

/// What a service's aggregate is: the category of its streams, its state folding the
/// events of its stream, and the rules deciding commands into new events.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The category of its streams (`case`, `referral`, `plan`, …).
    const CATEGORY: &'static str;
    /// What one is called in a NOT_FOUND (`case`, `referral`, `plan`, …).
    const KIND: &'static str;
    type Command: Clone + Send + Sync;
    type Event: EventCodec + Send + Sync;

    /// Applies one event of its stream, with what the log recorded of it (when, by
    /// whom).
    fn apply(&mut self, event: &Self::Event, recorded: &RecordedEvent);

    /// What `command` appends, or why not. Nothing to append is an answer too: the
    /// command changes nothing (joining a team one is already on).
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Refusal>;

    /// The stream of the aggregate `id`.
    fn stream(id: Uuid) -> Result<StreamName, ApiError> {
        Ok(StreamName::for_id(Self::CATEGORY, id)?)
    }

    /// Decodes and applies one stored event. A payload that does not decode is
    /// corruption of the log, reported rather than skipped; a type the stream does not
    /// hold changes nothing.
    fn apply_recorded(&mut self, recorded: &RecordedEvent) -> Result<(), LogError> {
        let decoded = Self::Event::decode(&recorded.event_type, &recorded.data).map_err(|_| {
            LogError::Corrupt {
                position: recorded.position.to_string(),
                reason: format!("{} payload does not decode", recorded.event_type),
            }
        })?;
        if let Some(event) = decoded {
            self.apply(&event, recorded);
        }
        Ok(())
    }
}

/// A tally: an aggregate small enough for the runtime's own tests.
#[cfg(test)]
mod fixtures {
    use caseline_proto::event_types as types;
    use caseline_proto::v1::events::NoteAdded;

    use crate::{Aggregate, Listed, Refusal};

    /// The stored type of a tally's events.
    pub const TALLIED: &str = types::NOTE_ADDED;

    crate::events! {
        pub enum TallyEvent for Tally {
            Tallied(NoteAdded) = types::NOTE_ADDED,
        }
    }

    /// Counts the events applied to it.
    #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    pub struct Tally(pub u64);

    #[derive(Clone, Debug)]
    pub enum Count {
        Add(usize),
        Nothing,
        Refuse,
    }

    impl Aggregate for Tally {
        const CATEGORY: &'static str = "tally";
        const KIND: &'static str = "tally";
        type Command = Count;
        type Event = TallyEvent;

        fn apply(&mut self, _: &TallyEvent, _: &caseline_eventlog::RecordedEvent) {
            self.0 += 1;
        }

        fn decide(&self, command: Count) -> Result<Vec<TallyEvent>, Refusal> {
            match command {
                Count::Add(n) => Ok(vec![TallyEvent::Tallied(NoteAdded::default()); n]),
                Count::Nothing => Ok(Vec::new()),
                Count::Refuse => Err(Refusal::Precondition("the tally refuses")),
            }
        }
    }

    impl Listed for Tally {
        const FORMAT: u32 = 1;
    }
}
