//! How an index's entries are stored: a key's entries in runs, one run to a row.
//!
//! A row of the state store per entry made a rebuild insert about as many rows as the
//! log holds events (the index of list pages at 1 000 000 events: about 1 000 000 rows,
//! a quarter of the rebuild's time in the B-tree). A write now files each key's entries
//! of a batch as one run, a row holding up to [`RUN_AT_MOST`] entries in position order:
//! a rebuild writes one row per key per batch.
//!
//! Invariant kept by every write: the runs of one key never overlap (each run's entries
//! lie between its `first` and `last`, and no other run of that key has an entry in
//! between). A write whose run overlaps stored runs (another instance filed the same
//! stretch of the log, with other batch bounds) merges them and writes the union again,
//! cut into runs of at most [`RUN_AT_MOST`]; so runs sorted by `last` are sorted by
//! `first` too, and a find reads them in order and stops once it has enough.

use caseline_eventlog::{Error, Position, StreamName, Uuid};

use crate::index::IndexEntry;

/// The most entries in one run (about 26 bytes each, plus the stream names): a find
/// reads whole runs, so it reads at most about a run's worth past what it returns at
/// each end; and merging runs written by two instances never grows a row past it.
pub(crate) const RUN_AT_MOST: usize = 1024;

/// The encoding's version, its first byte.
const ENCODING: u8 = 1;

/// A key's entries in one row: sorted by position, no position twice, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) key: Uuid,
    pub(crate) entries: Vec<IndexEntry>,
}

impl Run {
    pub(crate) fn first(&self) -> Position {
        self.entries[0].position
    }

    pub(crate) fn last(&self) -> Position {
        self.entries[self.entries.len() - 1].position
    }

    /// The run's entries, as stored.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut streams: Vec<&StreamName> = Vec::new();
        let mut indexes = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let at = match streams.iter().position(|s| **s == e.stream) {
                Some(at) => at,
                None => {
                    streams.push(&e.stream);
                    streams.len() - 1
                }
            };
            indexes.push(u16::try_from(at).map_err(|_| too_many("streams"))?);
        }
        let mut out = Vec::with_capacity(3 + self.entries.len() * 26 + streams.len() * 32);
        out.push(ENCODING);
        out.extend_from_slice(
            &u16::try_from(streams.len())
                .map_err(|_| too_many("streams"))?
                .to_be_bytes(),
        );
        for s in streams {
            let name = s.as_str().as_bytes();
            out.extend_from_slice(
                &u16::try_from(name.len())
                    .map_err(|_| too_many("stream name bytes"))?
                    .to_be_bytes(),
            );
            out.extend_from_slice(name);
        }
        out.extend_from_slice(
            &u32::try_from(self.entries.len())
                .map_err(|_| too_many("entries"))?
                .to_be_bytes(),
        );
        for (e, stream) in self.entries.iter().zip(indexes) {
            out.extend_from_slice(&e.position.to_be_bytes());
            out.extend_from_slice(&stream.to_be_bytes());
            out.extend_from_slice(&e.version.to_be_bytes());
        }
        Ok(out)
    }

    /// The run stored under `key` as `bytes`.
    pub(crate) fn decode(key: Uuid, bytes: &[u8]) -> Result<Self, Error> {
        let mut input = Input(bytes);
        if input.take(1)? != [ENCODING] {
            return Err(corrupt("encoding"));
        }
        let count = input.u16()?;
        let mut streams = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = input.u16()?;
            let name = std::str::from_utf8(input.take(usize::from(len))?)
                .map_err(|_| corrupt("stream"))?;
            streams.push(StreamName::new(name.to_owned()).map_err(|_| corrupt("stream"))?);
        }
        let count = u32::from_be_bytes(input.array()?);
        let expected = usize::try_from(count).ok().and_then(|n| n.checked_mul(26));
        if count == 0 || expected != Some(input.0.len()) {
            return Err(corrupt("entries"));
        }
        let mut entries = Vec::with_capacity(input.0.len() / 26);
        while !input.0.is_empty() {
            let position = Position::from_be_bytes(input.array()?);
            let stream = streams
                .get(usize::from(input.u16()?))
                .ok_or_else(|| corrupt("stream"))?
                .clone();
            let version = u64::from_be_bytes(input.array()?);
            if entries
                .last()
                .is_some_and(|e: &IndexEntry| e.position >= position)
            {
                return Err(corrupt("order"));
            }
            entries.push(IndexEntry {
                key,
                position,
                stream,
                version,
            });
        }
        Ok(Self { key, entries })
    }
}

/// `entries` as one run per key (in key order), each sorted by position with each
/// position once (an event filed twice under a key is one entry).
pub(crate) fn runs(mut entries: Vec<IndexEntry>) -> Vec<Run> {
    entries.sort_unstable_by_key(|e| (e.key, e.position));
    entries.dedup_by_key(|e| (e.key, e.position));
    let mut runs: Vec<Run> = Vec::new();
    for e in entries {
        match runs.last_mut() {
            Some(run) if run.key == e.key => run.entries.push(e),
            _ => runs.push(Run {
                key: e.key,
                entries: vec![e],
            }),
        }
    }
    runs
}

/// `run` with the stored runs of its key it overlaps, as the runs to store in their
/// place: the union, in position order, cut into runs of at most [`RUN_AT_MOST`].
pub(crate) fn merged(run: Run, overlapping: Vec<Run>) -> Vec<Run> {
    if overlapping.is_empty() && run.entries.len() <= RUN_AT_MOST {
        return vec![run];
    }
    let key = run.key;
    let mut entries = run.entries;
    entries.extend(overlapping.into_iter().flat_map(|r| r.entries));
    entries.sort_unstable_by_key(|e| e.position);
    entries.dedup_by_key(|e| e.position);
    let mut runs = Vec::with_capacity(entries.len().div_ceil(RUN_AT_MOST));
    let mut entries = entries.into_iter();
    loop {
        let chunk: Vec<IndexEntry> = entries.by_ref().take(RUN_AT_MOST).collect();
        if chunk.is_empty() {
            return runs;
        }
        runs.push(Run {
            key,
            entries: chunk,
        });
    }
}

/// A position as stored in a run's `first` and `last` columns (byte order is position
/// order).
pub(crate) fn position_bytes(position: Position) -> Vec<u8> {
    position.to_be_bytes().to_vec()
}

pub(crate) fn position_from(bytes: &[u8]) -> Result<Position, Error> {
    Ok(Position::from_be_bytes(
        bytes.try_into().map_err(|_| corrupt("position"))?,
    ))
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(corrupt("length"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt {
        position: String::new(),
        reason: format!("an index run's {what} does not decode"),
    }
}

fn too_many(what: &'static str) -> Error {
    Error::TooLarge {
        field: what,
        limit: "65 535 in one index run",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: u128) -> Position {
        n.to_string().parse().expect("a position")
    }

    fn entry(key: Uuid, n: u128, stream: &str) -> IndexEntry {
        IndexEntry {
            key,
            position: at(n),
            stream: StreamName::new(stream.to_owned()).expect("a name"),
            version: u64::try_from(n % 1_000_000).expect("small") * 3,
        }
    }

    #[test]
    fn a_run_decodes_to_what_was_encoded() {
        let key = Uuid::new_v4();
        let run = Run {
            key,
            entries: vec![
                entry(key, 1, "access-global"),
                entry(key, 5, "case-1"),
                entry(key, 9, "access-global"),
                entry(key, u128::MAX, "case-2"),
            ],
        };
        let bytes = run.encode().expect("encodes");
        assert_eq!(Run::decode(key, &bytes).expect("decodes"), run);
        // Cut anywhere, with a byte more, or out of order, it is refused, never misread.
        for cut in 0..bytes.len() {
            assert!(
                Run::decode(key, &bytes[..cut]).is_err(),
                "a run cut at {cut} bytes decoded"
            );
        }
        let longer = [bytes.as_slice(), &[0]].concat();
        assert!(Run::decode(key, &longer).is_err());
        let swapped = Run {
            key,
            entries: vec![entry(key, 5, "case-1"), entry(key, 1, "case-1")],
        };
        assert!(Run::decode(key, &swapped.encode().expect("encodes")).is_err());
    }

    #[test]
    fn entries_become_one_run_per_key_in_order_each_once() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let runs = runs(vec![
            entry(b, 7, "case-1"),
            entry(a, 3, "case-1"),
            entry(a, 1, "case-1"),
            entry(b, 7, "case-1"),
        ]);
        assert_eq!(
            runs,
            vec![
                Run {
                    key: a,
                    entries: vec![entry(a, 1, "case-1"), entry(a, 3, "case-1")]
                },
                Run {
                    key: b,
                    entries: vec![entry(b, 7, "case-1")]
                },
            ]
        );
    }

    #[test]
    fn overlapping_runs_merge_into_runs_of_at_most_the_bound() {
        let key = Uuid::new_v4();
        let run = |range: std::ops::Range<u128>| Run {
            key,
            entries: range.map(|n| entry(key, n, "case-1")).collect(),
        };
        let stored = run(1..1000);
        let new = run(900..1500);
        let merged = merged(new, vec![stored]);
        let all: Vec<IndexEntry> = merged.iter().flat_map(|r| r.entries.clone()).collect();
        assert_eq!(all, run(1..1500).entries);
        assert_eq!(
            merged.iter().map(|r| r.entries.len()).collect::<Vec<_>>(),
            vec![RUN_AT_MOST, 1499 - RUN_AT_MOST]
        );
    }
}
