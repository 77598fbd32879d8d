//! Which events a reader of the whole log wants, said so that a backend can filter in
//! its query rather than hand over every event.

use crate::{Position, RecordedEvent};

/// What [`crate::EventLog::read_of`] found: the events admitted, and the position read
/// up to (the last event looked at, admitted or not), where the next read starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOf {
    pub events: Vec<RecordedEvent>,
    pub scanned_to: Position,
}

/// The events of some stream categories, of some streams, and of some types wherever
/// they are. [`Interest::EVERYTHING`] admits every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    /// Stream categories (`case` for `case-<id>`): every event of their streams.
    pub categories: &'static [&'static str],
    /// Whole stream names (`access-global`).
    pub streams: &'static [&'static str],
    /// Event types, in any stream.
    pub types: &'static [&'static str],
    everything: bool,
}

impl Interest {
    /// Every event of the log.
    pub const EVERYTHING: Interest = Interest {
        categories: &[],
        streams: &[],
        types: &[],
        everything: true,
    };

    /// The events of `categories`, of `streams`, and of `types` in any stream.
    pub const fn of(
        categories: &'static [&'static str],
        streams: &'static [&'static str],
        types: &'static [&'static str],
    ) -> Interest {
        Interest {
            categories,
            streams,
            types,
            everything: false,
        }
    }

    pub fn is_everything(&self) -> bool {
        self.everything
    }

    pub fn admits(&self, event: &RecordedEvent) -> bool {
        if self.everything {
            return true;
        }
        let stream = event.stream.as_str();
        self.types.contains(&event.event_type.as_str())
            || self.streams.contains(&stream)
            || self.categories.iter().any(|c| {
                stream.len() > c.len()
                    && stream.starts_with(c)
                    && stream.as_bytes()[c.len()] == b'-'
            })
    }

    /// `stream` patterns for SQL `LIKE` (the categories' prefixes), escaped with `\`.
    pub(crate) fn like_patterns(&self) -> Vec<String> {
        self.categories
            .iter()
            .map(|c| {
                let escaped: String = c
                    .chars()
                    .flat_map(|ch| match ch {
                        '%' | '_' | '\\' => vec!['\\', ch],
                        _ => vec![ch],
                    })
                    .collect();
                format!("{escaped}-%")
            })
            .collect()
    }
}
