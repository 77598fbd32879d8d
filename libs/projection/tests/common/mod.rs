//! What the projection tests share.

use caseline_eventlog::{Interest, RecordedEvent, Uuid};
use caseline_projection::Keys;

/// Files each `test.Listed` event under the ids its payload names (16 bytes each).
pub struct Named;

impl Keys for Named {
    const FORMAT: u32 = 1;
    // Only what it files is read: the rest of the log is passed over in the query.
    const INTEREST: Interest = Interest::of(&[], &[], &["test.Listed"]);

    fn keys(event: &RecordedEvent) -> Vec<Uuid> {
        if event.event_type != "test.Listed" {
            return Vec::new();
        }
        event
            .data
            .chunks_exact(16)
            .filter_map(|c| Uuid::from_slice(c).ok())
            .collect()
    }
}
