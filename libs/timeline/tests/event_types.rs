//! Every event type of the protos is decided on: shown on timelines or listed in
//! `NOT_ON_TIMELINES` with why. The types come from the compiled descriptor set, so an
//! event added to `proto/caseline/v1/events` without either fails here.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use caseline_eventlog::{Metadata, Position, RecordedEvent, StreamName, Uuid};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::prost_types::FileDescriptorSet;
use caseline_proto::v1::NoteCompartment;
use caseline_proto::v1::events::NoteAdded;
use caseline_timeline::{Item, NOT_ON_TIMELINES};

const EVENTS_PACKAGE: &str = "caseline.v1.events";

/// The full name of every message of `caseline.v1.events`: the event types.
fn event_types_of_the_protos() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(caseline_proto::FILE_DESCRIPTOR_SET).unwrap();
    let all: BTreeSet<String> = set
        .file
        .iter()
        .filter(|f| f.package() == EVENTS_PACKAGE)
        .flat_map(|f| &f.message_type)
        .map(|m| format!("{EVENTS_PACKAGE}.{}", m.name()))
        .collect();
    // The package is where we think it is.
    assert!(all.contains(types::CASE_OPENED), "{all:?}");
    all
}

/// The smallest payload of `event_type` that is not corrupt: the empty message, but for
/// a note, which must name its compartment.
fn minimal_payload(event_type: &str) -> Vec<u8> {
    match event_type {
        types::NOTE_ADDED => NoteAdded {
            compartment: NoteCompartment::Health as i32,
            ..NoteAdded::default()
        }
        .encode_to_vec(),
        _ => Vec::new(),
    }
}

fn recorded(event_type: &str) -> RecordedEvent {
    let case_id = Uuid::new_v4();
    RecordedEvent {
        event_id: Uuid::new_v4(),
        stream: StreamName::for_id("case", case_id).unwrap(),
        version: 0,
        position: "7".parse::<Position>().unwrap(),
        event_type: event_type.to_owned(),
        data: minimal_payload(event_type),
        metadata: Metadata {
            case_id: Some(case_id),
            ..Metadata::default()
        },
        recorded_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

#[test]
fn every_event_type_of_the_protos_is_on_timelines_or_listed_as_not() {
    let all = event_types_of_the_protos();
    let listed: BTreeMap<&str, &str> = NOT_ON_TIMELINES.iter().copied().collect();
    assert_eq!(listed.len(), NOT_ON_TIMELINES.len(), "listed twice");

    let mut shown = BTreeMap::new();
    let mut undecided = Vec::new();
    let mut both = Vec::new();
    for event_type in &all {
        let event = recorded(event_type);
        let item = Item::of(&event)
            .unwrap_or_else(|e| panic!("{event_type}: a minimal payload is refused: {e}"));
        match (item, listed.contains_key(event_type.as_str())) {
            (Some(item), false) => {
                shown.insert(event_type.as_str(), item.kind());
            }
            (None, true) => {}
            (Some(_), true) => both.push(event_type.as_str()),
            (None, false) => undecided.push(event_type.as_str()),
        }
    }
    assert!(
        undecided.is_empty(),
        "event types on no timeline and not in NOT_ON_TIMELINES: {undecided:?}"
    );
    assert!(
        both.is_empty(),
        "event types on timelines and also in NOT_ON_TIMELINES: {both:?}"
    );

    // The list names real event types, each with a reason.
    for (event_type, why) in NOT_ON_TIMELINES {
        assert!(
            all.contains(*event_type),
            "NOT_ON_TIMELINES names {event_type}, which is no event type of the protos"
        );
        assert!(!why.trim().is_empty(), "{event_type} has no reason");
    }

    // Each type shown reads as its own kind (no arm decodes one type as another's).
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    for (event_type, kind) in &shown {
        if let Some(other) = kinds.insert(kind, event_type) {
            panic!("{event_type} and {other} are both shown as {kind}");
        }
    }
    assert_eq!(shown.len() + listed.len(), all.len());
}
