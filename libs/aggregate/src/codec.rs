//! How a stream's events are stored, written once for every domain: each event is one
//! protobuf message stored under its full name ([`caseline_proto::event_types`]).

use crate::Refusal;

/// A stream's events as stored. Implemented by [`events!`](crate::events).
pub trait EventCodec: Sized {
    /// Every stored type a stream of these events holds.
    const TYPES: &'static [&'static str];
    /// The stored event type: the payload's full protobuf name.
    fn event_type(&self) -> &'static str;
    /// The stored payload.
    fn encode(&self) -> Vec<u8>;
    /// The event stored as `event_type` with payload `data`; `None` for a type this
    /// stream does not hold.
    fn decode(event_type: &str, data: &[u8]) -> Result<Option<Self>, crate::prost::DecodeError>;
}

/// The pure rules of a domain, on its state: decide a command, evolve by an event.
/// What [`crate::testing`] runs given/when/then on.
pub trait Rules: Default + Sized {
    type Command;
    type Event: Evolves<State = Self>;
    /// What `command` appends, or why not.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Refusal>;
    /// The state after `event`, appended by `actor`.
    fn evolve(self, event: &Self::Event, actor: &str) -> Self;
}

/// The state a stream of these events folds into (so that a test given events knows
/// which rules they are of).
pub trait Evolves {
    type State;
}

/// Declares a stream's events, one variant a protobuf message, with their codec
/// ([`EventCodec`]) and the state they fold into ([`Evolves`]):
///
/// ```text
/// events! {
///     /// Everything that happens to a plan.
///     pub enum Event for PlanState {
///         Created(PlanCreated) = types::PLAN_CREATED,
///         Closed(PlanClosed) = types::PLAN_CLOSED,
///     }
/// }
/// ```
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident for $state:ty {
            $($variant:ident($payload:ty) = $code:path),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        $vis enum $name {
            $($variant($payload),)*
        }

        impl $crate::EventCodec for $name {
            const TYPES: &'static [&'static str] = &[$($code),*];

            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $code,)*
                }
            }

            fn encode(&self) -> Vec<u8> {
                match self {
                    $(Self::$variant(e) => $crate::prost::Message::encode_to_vec(e),)*
                }
            }

            fn decode(
                event_type: &str,
                data: &[u8],
            ) -> Result<Option<Self>, $crate::prost::DecodeError> {
                Ok(Some(match event_type {
                    $($code => Self::$variant($crate::prost::Message::decode(data)?),)*
                    _ => return Ok(None),
                }))
            }
        }

        impl $crate::Evolves for $name {
            type State = $state;
        }
    };
}
