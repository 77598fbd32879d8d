//! An aggregate as its stream says, with the requests applied to it: the most recent
//! in memory, the rest asked of the log.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::Arc;

use caseline_eventlog::{
    Direction, Error as LogError, EventLog, MAX_BATCH_EVENTS, RecordedEvent, StreamName, Uuid,
};
use caseline_server::ApiError;

use crate::Aggregate;
use crate::request::{Request, reused};

/// Requests remembered per aggregate in memory: the most recent ones. A retry of an
/// older request is found in the log ([`EventLog::find_event`] of its first event, an
/// index), so it gets the same answer either way; memory per aggregate stays bounded
/// however long its stream grows.
pub const REQUESTS_REMEMBERED: usize = 32;

/// A request already applied to the stream.
#[derive(Clone, Copy, Debug)]
struct Applied {
    first_event_id: Uuid,
    last_version: u64,
}

/// Bits of the first stage of the filter of every request a stream has applied (1 KiB);
/// each next stage has twice the bits of the one before.
const SEEN_BITS: usize = 8192;
/// Stages at most: 1 + 2 + 4 + 8 KiB = 15 KiB, for 12 286 requests.
const SEEN_STAGES: usize = 4;
/// Bits per request a stage takes before the next is opened: with 4 bits set per
/// request, a full stage takes about 1.2 % of requests never seen for seen, so the four
/// full stages about 5 %.
const SEEN_BITS_PER_REQUEST: usize = 10;
/// Bits set per request.
const SEEN_HASHES: u64 = 4;

/// The requests a stream has applied: the last [`REQUESTS_REMEMBERED`] in memory, and a
/// filter of all of them (a scalable Bloom filter: a request it says was never seen was
/// not; one it says may have been is looked up in the log). The filter grows with the
/// stream in stages, each twice the last, up to [`SEEN_STAGES`] (15 KiB): at most about
/// 5 % of new requests are taken for seen up to 12 286 requests on the stream, then
/// more as the last stage fills: 15 % at 20 000. A fixed 1 KiB filter took 2 % at 1 000
/// requests, a third at 3 000 and 80 % at 6 000, each a lookup in the log's index of
/// event ids. Memory stays within that bound however long the stream grows, and a
/// command asks the log only about a request it may have seen, so a new request on a
/// long stream seldom costs a lookup. A request id reused for a different request is
/// ALREADY_EXISTS while the first is among the last [`REQUESTS_REMEMBERED`]; further
/// back it is taken for a new request.
#[derive(Clone, Debug)]
pub struct Requests {
    recent: HashMap<Uuid, Applied>,
    order: VecDeque<Uuid>,
    /// The filter's stages, the first allocated with the first request recorded.
    seen: Vec<Box<[u64]>>,
    /// Requests added to the last stage.
    in_last_stage: usize,
    /// Requests left out of `recent`: older ones are only in the filter.
    forgotten: bool,
    /// Whether every request of the stream up to its version went through `record`.
    /// Not so for a state restored from a checkpoint or folded by a projection: about
    /// those, every question goes to the log.
    complete: bool,
}

impl Default for Requests {
    /// The requests of an empty stream, tracked from its first event.
    fn default() -> Self {
        Self {
            recent: HashMap::new(),
            order: VecDeque::new(),
            seen: Vec::new(),
            in_last_stage: 0,
            forgotten: false,
            complete: true,
        }
    }
}

impl Requests {
    /// Requests not tracked: every question about one goes to the log.
    pub fn unknown() -> Self {
        Self {
            complete: false,
            ..Self::default()
        }
    }

    /// The bits for `id` in a stage of `words` (double hashing of the id's two halves).
    fn bits(id: Uuid, words: usize) -> impl Iterator<Item = usize> {
        let (high, low) = id.as_u64_pair();
        let bits = (words * 64) as u64;
        (0..SEEN_HASHES).map(move |i| (low.wrapping_add(i.wrapping_mul(high | 1)) % bits) as usize)
    }

    fn may_have_seen(&self, id: Uuid) -> bool {
        self.seen
            .iter()
            .any(|stage| Self::bits(id, stage.len()).all(|b| stage[b / 64] & (1 << (b % 64)) != 0))
    }

    /// Adds a request to the filter's last stage, opening a stage when it is full.
    fn see(&mut self, id: Uuid) {
        let full = self
            .seen
            .last()
            .is_none_or(|stage| self.in_last_stage >= stage.len() * 64 / SEEN_BITS_PER_REQUEST);
        if full && self.seen.len() < SEEN_STAGES {
            let words = (SEEN_BITS / 64) << self.seen.len();
            self.seen.push(vec![0; words].into_boxed_slice());
            self.in_last_stage = 0;
        }
        if let Some(stage) = self.seen.last_mut() {
            for b in Self::bits(id, stage.len()) {
                stage[b / 64] |= 1 << (b % 64);
            }
            self.in_last_stage += 1;
        }
    }

    /// Bytes the filter holds (at most 15 KiB).
    #[cfg(test)]
    fn filter_bytes(&self) -> usize {
        self.seen.iter().map(|stage| stage.len() * 8).sum()
    }

    /// Notes the request behind the next event of the stream, if it has one.
    pub fn record(&mut self, event: &RecordedEvent) {
        let Some(request_id) = event.metadata.request_id else {
            return;
        };
        match self.recent.entry(request_id) {
            // A request's further events (it was added to the filter with its first).
            Slot::Occupied(mut applied) => applied.get_mut().last_version = event.version,
            Slot::Vacant(slot) => {
                slot.insert(Applied {
                    first_event_id: event.event_id,
                    last_version: event.version,
                });
                self.order.push_back(request_id);
                self.see(request_id);
                if self.order.len() > REQUESTS_REMEMBERED
                    && let Some(oldest) = self.order.pop_front()
                {
                    self.recent.remove(&oldest);
                    self.forgotten = true;
                }
            }
        }
    }

    /// What `stream` already answered `request`: the version after it if it was
    /// applied, ALREADY_EXISTS if its id was used there for a different request, `None`
    /// if it has not seen it.
    pub async fn answered(
        &self,
        log: &dyn EventLog,
        stream: &StreamName,
        request: &Request,
    ) -> Result<Option<u64>, ApiError> {
        match self.recent.get(&request.id) {
            Some(a) if a.first_event_id == request.event_id(0) => Ok(Some(a.last_version)),
            Some(_) => Err(reused()),
            None if self.complete && !self.forgotten => Ok(None),
            None if self.complete && !self.may_have_seen(request.id) => Ok(None),
            None => Self::from_log(log, stream, request).await,
        }
    }

    /// What the log says `stream` answered `request`. A retry carries the same request,
    /// so its first event has the same id. (A request id reused for another request this
    /// far back is taken for a new request: its events' ids differ, so nothing is mixed
    /// up.)
    async fn from_log(
        log: &dyn EventLog,
        stream: &StreamName,
        request: &Request,
    ) -> Result<Option<u64>, ApiError> {
        let Some(first) = log.find_event(stream, request.event_id(0)).await? else {
            return Ok(None);
        };
        // A request appends one batch: consecutive versions, with the ids it derives in
        // order, at most MAX_BATCH_EVENTS of them.
        let rest = log
            .read_stream(
                stream,
                Direction::Forwards,
                Some(first.version + 1),
                MAX_BATCH_EVENTS,
            )
            .await?;
        let more = rest
            .iter()
            .zip(1..)
            .take_while(|(e, i)| e.event_id == request.event_id(*i))
            .count();
        Ok(Some(first.version + more as u64))
    }
}

/// One shared value for every state whose requests are not tracked.
fn unknown_requests() -> Arc<Requests> {
    static UNKNOWN: std::sync::LazyLock<Arc<Requests>> =
        std::sync::LazyLock::new(|| Arc::new(Requests::unknown()));
    Arc::clone(&UNKNOWN)
}

/// Events read per page when folding a stream.
const PAGE: usize = 1000;

/// An aggregate as its stream says, up to `version`, with the requests applied to it.
/// Derefs to the aggregate.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Loaded<A> {
    pub aggregate: A,
    /// `None`: the stream holds nothing.
    pub version: Option<u64>,
    /// Shared with copies, so handing out a snapshot does not copy it. Not kept in
    /// projections' checkpoints, nor by lists at all: lists never answer requests
    /// (commands load their stream); restored or folded, it asks the log.
    #[serde(skip, default = "unknown_requests")]
    requests: Arc<Requests>,
}

impl<A> Deref for Loaded<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.aggregate
    }
}

impl<A: Aggregate> Loaded<A> {
    /// Applies the next event of the stream.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        self.aggregate.apply_recorded(event)?;
        self.version = Some(event.version);
        Arc::make_mut(&mut self.requests).record(event);
        Ok(())
    }

    /// Applies the next event of the stream to the aggregate only, remembering no
    /// request: for projections, which never answer requests (if asked, it asks the
    /// log).
    pub fn fold(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        self.aggregate.apply_recorded(event)?;
        self.version = Some(event.version);
        if self.requests.complete {
            self.requests = unknown_requests();
        }
        Ok(())
    }

    /// What `stream` already answered `request` (see [`Requests::answered`]).
    pub async fn answered(
        &self,
        log: &dyn EventLog,
        stream: &StreamName,
        request: &Request,
    ) -> Result<Option<u64>, ApiError> {
        self.requests.answered(log, stream, request).await
    }

    /// Brings it up to date with what `stream` holds after its version.
    pub async fn follow(
        &mut self,
        log: &dyn EventLog,
        stream: &StreamName,
    ) -> Result<(), ApiError> {
        loop {
            let from = self.version.map_or(0, |v| v + 1);
            let page = log
                .read_stream(stream, Direction::Forwards, Some(from), PAGE)
                .await?;
            for event in &page {
                self.apply(event)?;
            }
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// The aggregate as `stream` says now, uncached (commands load through
    /// [`crate::Store::load`]).
    #[cfg(test)]
    pub(crate) async fn load(log: &dyn EventLog, stream: &StreamName) -> Result<Self, ApiError> {
        let mut loaded = Self::default();
        loaded.follow(log, stream).await?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use caseline_eventlog::{Metadata, StreamName, Uuid};

    use super::ApiError;

    /// A long stream's filter of requests grows in stages to its bound: a new request
    /// is taken for seen (and looked up in the log) at most about 5 % of the time up to
    /// 12 286 requests, about 15 % at 20 000, never a request it holds; past the bound it
    /// stays at 15 KiB. (The fixed 1 KiB filter before it took nearly every new request
    /// for seen at 12 286.)
    #[test]
    fn the_filter_of_requests_grows_with_the_stream_within_its_bound() {
        use super::Requests;

        let stream = StreamName::for_id("tally", Uuid::new_v4()).expect("a name");
        let mut requests = Requests::default();
        let mut version = 0;
        let mut record = |requests: &mut Requests, n: usize| {
            let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
            for id in &ids {
                // Two events of one request are one request to the filter.
                for _ in 0..2 {
                    requests.record(&caseline_eventlog::RecordedEvent {
                        event_id: Uuid::new_v4(),
                        stream: stream.clone(),
                        version,
                        position: "1".parse().expect("a position"),
                        event_type: crate::fixtures::TALLIED.into(),
                        data: Vec::new(),
                        metadata: Metadata {
                            request_id: Some(*id),
                            ..Metadata::default()
                        },
                        recorded_at: std::time::SystemTime::now(),
                        prev_hash: [0; 32],
                        hash: [0; 32],
                    });
                    version += 1;
                }
            }
            ids
        };
        let taken_for_seen = |requests: &Requests| {
            (0..10_000)
                .filter(|_| requests.may_have_seen(Uuid::new_v4()))
                .count()
        };
        let mut held = record(&mut requests, 800);
        assert_eq!(
            requests.filter_bytes(),
            1024,
            "one stage for a short stream"
        );
        held.extend(record(&mut requests, 12_286 - 800));
        assert_eq!(requests.filter_bytes(), 15 * 1024);
        let at_bound = taken_for_seen(&requests);
        assert!(at_bound < 700, "{at_bound} of 10 000 at 12 286 requests");
        held.extend(record(&mut requests, 20_000 - 12_286));
        let past = taken_for_seen(&requests);
        assert!(past < 2_000, "{past} of 10 000 at 20 000 requests");
        assert!(held.iter().all(|id| requests.may_have_seen(*id)));
        record(&mut requests, 30_000);
        assert_eq!(requests.filter_bytes(), 15 * 1024, "bounded");
    }

    /// A stream of 100 requests (the 50th of two events): a retry of any of them gets
    /// the version after it, from memory for the last 32 and from the log for older
    /// ones; a request id of the last 32 reused for another request is ALREADY_EXISTS;
    /// a new request is new. A state whose requests were not tracked (folded by a list) asks
    /// the log and answers the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_of_old_requests_get_their_first_answer() {
        use caseline_eventlog::sqlite::SqliteEventLog;
        use caseline_eventlog::{EventLog, ExpectedVersion, NewEvent};

        use super::{Loaded, REQUESTS_REMEMBERED};
        use crate::fixtures::Tally;
        use crate::request::Request;

        let dir = tempfile::tempdir().expect("a directory");
        let log = SqliteEventLog::open(dir.path().join("events.sqlite"))
            .await
            .expect("opens");
        let stream = StreamName::for_id("tally", Uuid::new_v4()).expect("a name");
        let requests: Vec<Request> = (0..100u8)
            .map(|i| Request::with_fingerprint(Uuid::new_v4(), [i; 32]))
            .collect();
        let mut after = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let events = (0..if i == 50 { 2 } else { 1 })
                .map(|n| NewEvent {
                    event_id: request.event_id(n),
                    event_type: crate::fixtures::TALLIED.into(),
                    data: Vec::new(),
                    metadata: Metadata {
                        actor: "u".into(),
                        actor_role: "r".into(),
                        agency: "a".into(),
                        request_id: Some(request.id),
                        ..Metadata::default()
                    },
                })
                .collect();
            let result = log
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .expect("appends");
            after.push(result.last_version);
        }
        let loaded = Loaded::<Tally>::load(&log, &stream).await.expect("loads");
        assert_eq!(loaded.requests.recent.len(), REQUESTS_REMEMBERED);
        let mut folded = Loaded::<Tally>::default();
        for e in log
            .read_stream(&stream, caseline_eventlog::Direction::Forwards, None, 1000)
            .await
            .expect("reads")
        {
            folded.fold(&e).expect("folds");
        }
        for state in [&loaded, &folded] {
            for (request, version) in requests.iter().zip(&after) {
                assert_eq!(
                    state
                        .answered(&log, &stream, request)
                        .await
                        .expect("answers"),
                    Some(*version)
                );
            }
            // An id reused this far back is taken for a new request (its events get
            // ids of their own).
            let reused_long_ago = Request::with_fingerprint(requests[3].id, [200; 32]);
            assert_eq!(
                state
                    .answered(&log, &stream, &reused_long_ago)
                    .await
                    .expect("answers"),
                None
            );
            let new = Request::with_fingerprint(Uuid::new_v4(), [201; 32]);
            assert_eq!(
                state.answered(&log, &stream, &new).await.expect("answers"),
                None
            );
        }
        // Among the last ones remembered, a reused id is ALREADY_EXISTS.
        let reused = Request::with_fingerprint(requests[99].id, [202; 32]);
        assert!(matches!(
            loaded.answered(&log, &stream, &reused).await,
            Err(ApiError::AlreadyExists(_))
        ));
        log.close().await;
    }
}
