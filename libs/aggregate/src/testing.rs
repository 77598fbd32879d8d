//! Given/when/then over a domain's pure rules ([`Rules`]): given the events of an
//! aggregate, when a command is decided, then exactly these events (or exactly this
//! refusal). Pure: no store, no vault, no clock. Every domain's tests use these.

use std::fmt::Debug;

use crate::{EventCodec, Evolves, Refusal, Rules};

/// Who appended the events of [`given`] and [`then_state`].
pub const ACTOR: &str = "author";

/// The state after `events`, folded from nothing, appended by [`ACTOR`].
pub fn given<E>(events: &[E]) -> E::State
where
    E: Evolves,
    E::State: Rules<Event = E>,
{
    given_by(ACTOR, events)
}

/// The state after `events`, folded from nothing, appended by `actor`.
pub fn given_by<E>(actor: &str, events: &[E]) -> E::State
where
    E: Evolves,
    E::State: Rules<Event = E>,
{
    then_state_by(actor, E::State::default(), events)
}

/// What `command` does to `state`.
pub fn when<S: Rules>(state: &S, command: S::Command) -> Result<Vec<S::Event>, Refusal> {
    state.decide(command)
}

/// The state after `events` are applied to `state` by [`ACTOR`].
pub fn then_state<S: Rules>(state: S, events: &[S::Event]) -> S {
    then_state_by(ACTOR, state, events)
}

/// The state after `events` are applied to `state` by `actor`.
pub fn then_state_by<S: Rules>(actor: &str, state: S, events: &[S::Event]) -> S {
    events
        .iter()
        .fold(state, |state, event| state.evolve(event, actor))
}

/// The refusal of a rule, as [`when`] answers it.
pub fn refused<E>(rule: &'static str) -> Result<Vec<E>, Refusal> {
    Err(Refusal::Precondition(rule))
}

/// The refusal of a command on an aggregate that does not exist.
pub fn missing<E>() -> Result<Vec<E>, Refusal> {
    Err(Refusal::Missing)
}

/// Asserts that `result` is an `Invalid` refusal naming `field`.
#[track_caller]
pub fn assert_invalid<E: Debug>(result: Result<Vec<E>, Refusal>, field: &str) {
    match result {
        Err(Refusal::Invalid { field: named, .. }) => assert_eq!(named, field),
        other => panic!("expected Invalid {{ field: {field:?}, .. }}, got {other:?}"),
    }
}

/// Asserts that `events`, one of each variant, are stored as the names given: each
/// under its payload's full name, each encoded to something that decodes back to it,
/// and bytes that are not a payload refused as corrupt for every type.
#[track_caller]
pub fn assert_stored_as<E>(events: &[(E, &str)])
where
    E: EventCodec + Debug + PartialEq,
{
    assert_eq!(events.len(), E::TYPES.len(), "one of each variant");
    for (event, name) in events {
        assert_eq!(event.event_type(), *name, "{event:?}");
        assert!(
            E::TYPES.contains(name),
            "{name} is not a type of the stream"
        );
        let bytes = event.encode();
        assert!(!bytes.is_empty(), "{event:?}");
        match E::decode(event.event_type(), &bytes) {
            Ok(Some(decoded)) => assert_eq!(&decoded, event),
            other => panic!("{event:?} decoded to {other:?}"),
        }
        // A truncated varint, and a length-delimited field longer than the data.
        for garbage in [&b"\xff\xff\xff"[..], &b"\x0a\x7fabc"[..]] {
            assert!(
                E::decode(name, garbage).is_err(),
                "{name} {garbage:?} decoded"
            );
        }
    }
}

/// Asserts that none of `types` is held by a stream of `E`: a payload stored under one
/// of them decodes to nothing.
#[track_caller]
pub fn assert_holds_none<E: EventCodec + Debug>(types: &[&str]) {
    for event_type in types {
        match E::decode(event_type, b"\x0a\x03abc") {
            Ok(None) => {}
            other => panic!("{event_type:?} decoded to {other:?}"),
        }
    }
}
