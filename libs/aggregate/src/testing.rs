//! Given/when/then over a domain's pure rules ([`Rules`]): given the events of an
//! aggregate, when a command is decided, then exactly these events (or exactly this
//! refusal). Pure: no store, no vault, no clock. Every domain's tests use these.

use std::fmt::Debug;

use crate::{Evolves, Refusal, Rules};

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
