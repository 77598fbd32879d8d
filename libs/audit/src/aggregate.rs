//! The command path every service shares: an aggregate folded from its own stream, and
//! a command run on it that is idempotent by `request_id`, checked against
//! `expected_version`, authorised again on the very state it is decided on, and appended
//! at the version read (deciding again when another command won the race).

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use caseline_eventlog::{
    Direction, Error as LogError, EventLog, ExpectedVersion, MAX_BATCH_EVENTS, NewEvent, Position,
    RecordedEvent, StreamName, Uuid,
};
use caseline_projection::{Fold, Followed};
use caseline_server::ApiError;

use caseline_policy::{Action, Entry};

use crate::Call;
use crate::request::{Request, reused};
use crate::turns::{Retry, turn};

/// What a service's aggregate is: its state folds the events of its stream, and it
/// decides commands into new events.
pub trait Aggregate: Default + Clone + Send + Sync {
    type Command: Clone + Send + Sync;
    type Event: Send + Sync;
    /// Applies one stored event of its stream. A payload that does not decode is
    /// corruption of the log, reported rather than skipped.
    fn apply(&mut self, event: &RecordedEvent) -> Result<(), LogError>;
    /// What `command` appends to the aggregate `id`, or the refusal (as the answer's
    /// status: FAILED_PRECONDITION for a rule, INVALID_ARGUMENT for a field).
    fn decide(&self, id: Uuid, command: Self::Command) -> Result<Vec<Self::Event>, ApiError>;
    /// The stored type and payload of one of its events.
    fn encode(event: &Self::Event) -> (&'static str, Vec<u8>);
}

/// What must hold for a command to be appended: asked on every state it is decided
/// on, so a caller who lost their standing meanwhile never writes.
pub trait Gate<A>: Sync {
    fn check(
        &self,
        call: &Call,
        id: Uuid,
        loaded: &Loaded<A>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

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

/// Bits of the filter of every request a stream has applied (1 KiB): about 2 % of
/// requests never seen are taken for seen at 1 000 requests, a third at 3 000.
const SEEN_BITS: usize = 8192;
/// Bits set per request.
const SEEN_HASHES: u64 = 4;

/// The requests a stream has applied: the last [`REQUESTS_REMEMBERED`] in memory, and a
/// fixed-size filter of all of them (a Bloom filter: a request it says was never seen
/// was not; one it says may have been is looked up in the log). Memory stays the same
/// however long the stream grows, and a command asks the log only about a request it
/// may have seen, so a new request on a long stream seldom costs a lookup. A request id
/// reused for a different request is ALREADY_EXISTS while the first is among the last
/// [`REQUESTS_REMEMBERED`]; further back it is taken for a new request.
#[derive(Clone, Debug)]
pub struct Requests {
    recent: HashMap<Uuid, Applied>,
    order: VecDeque<Uuid>,
    /// Allocated with the first request recorded.
    seen: Option<Box<[u64; SEEN_BITS / 64]>>,
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
            seen: None,
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

    /// The filter's bits for `id` (double hashing of the id's two halves).
    fn bits(id: Uuid) -> impl Iterator<Item = usize> {
        let (high, low) = id.as_u64_pair();
        (0..SEEN_HASHES)
            .map(move |i| (low.wrapping_add(i.wrapping_mul(high | 1)) % SEEN_BITS as u64) as usize)
    }

    fn may_have_seen(&self, id: Uuid) -> bool {
        self.seen
            .as_ref()
            .is_some_and(|seen| Self::bits(id).all(|b| seen[b / 64] & (1 << (b % 64)) != 0))
    }

    /// Notes the request behind the next event of the stream, if it has one.
    pub fn record(&mut self, event: &RecordedEvent) {
        let Some(request_id) = event.metadata.request_id else {
            return;
        };
        let seen = self
            .seen
            .get_or_insert_with(|| Box::new([0; SEEN_BITS / 64]));
        for b in Self::bits(request_id) {
            seen[b / 64] |= 1 << (b % 64);
        }
        match self.recent.entry(request_id) {
            Slot::Occupied(mut applied) => applied.get_mut().last_version = event.version,
            Slot::Vacant(slot) => {
                slot.insert(Applied {
                    first_event_id: event.event_id,
                    last_version: event.version,
                });
                self.order.push_back(request_id);
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
        self.aggregate.apply(event)?;
        self.version = Some(event.version);
        Arc::make_mut(&mut self.requests).record(event);
        Ok(())
    }

    /// Applies the next event of the stream to the aggregate only, remembering no
    /// request: for projections, which never answer requests (if asked, it asks the
    /// log).
    pub fn fold(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        self.aggregate.apply(event)?;
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

    /// The aggregate as `stream` says now.
    pub async fn load(log: &dyn EventLog, stream: &StreamName) -> Result<Self, ApiError> {
        let mut loaded = Self::default();
        loaded.follow(log, stream).await?;
        Ok(loaded)
    }
}

/// A command on one aggregate, as a request made it.
#[derive(Debug)]
pub struct Intent<'a> {
    /// The aggregate's id and stream.
    pub id: Uuid,
    pub stream: StreamName,
    pub request: &'a Request,
    /// The version the client last saw, if it said.
    pub expected: Option<u64>,
    /// The child's case the events belong to (their metadata).
    pub case_id: Option<Uuid>,
}

/// Runs `command` for `intent.request`: a retry gets its first answer; `expected` must
/// still stand (else ABORTED with the current version); `gate` is asked on every state
/// decided on; the events are appended at the version read, in the stream's turn
/// ([`crate::turns`]), so a conflicting command that landed meanwhile (from another
/// process) makes this one decide again on the new state. `first`, if given, is the
/// state the caller was authorised on, brought up to date for the first attempt.
/// Returns the stream's version after the command.
pub async fn execute<A: Aggregate>(
    log: &dyn EventLog,
    call: &Call,
    intent: Intent<'_>,
    first: Option<Loaded<A>>,
    command: A::Command,
    gate: &impl Gate<A>,
) -> Result<u64, ApiError> {
    let Intent {
        id,
        stream,
        request,
        expected,
        case_id,
    } = intent;
    let turn = turn(&stream).await;
    let mut first = first;
    let mut retry = Retry::new();
    loop {
        let loaded = match first.take() {
            Some(loaded) if turn.still_current(loaded.version) => loaded,
            // Commands before this one in the turn moved the stream on.
            Some(mut loaded) => {
                loaded.follow(log, &stream).await?;
                loaded
            }
            None => Loaded::<A>::load(log, &stream).await?,
        };
        if let Some(version) = loaded.answered(log, &stream, request).await? {
            return Ok(version);
        }
        gate.check(call, id, &loaded).await?;
        if let Some(v) = expected
            && loaded.version != Some(v)
        {
            return Err(ApiError::Log(LogError::WrongExpectedVersion {
                stream,
                expected: ExpectedVersion::Exact(v),
                actual: loaded.version,
            }));
        }
        let events = loaded.aggregate.decide(id, command.clone())?;
        let metadata = call.event_metadata(case_id, Some(request.id));
        let new: Vec<NewEvent> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (event_type, data) = A::encode(e);
                NewEvent {
                    event_id: request.event_id(i),
                    event_type: event_type.to_owned(),
                    data,
                    metadata: metadata.clone(),
                }
            })
            .collect();
        let at = loaded
            .version
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        match log.append(&stream, at, new).await {
            Ok(result) => {
                turn.appended(result.last_version);
                return Ok(result.last_version);
            }
            Err(LogError::WrongExpectedVersion { .. })
                if expected.is_none() && retry.again().await =>
            {
                continue;
            }
            Err(LogError::WrongExpectedVersion { actual, .. }) => {
                return Err(ApiError::Log(LogError::WrongExpectedVersion {
                    stream,
                    expected: expected.map_or(at, ExpectedVersion::Exact),
                    actual,
                }));
            }
            Err(LogError::EventIdConflict { .. }) => {
                // The same request raced itself (a client retry while the first attempt
                // was in flight): the stored one is the answer.
                let loaded = Loaded::<A>::load(log, &stream).await?;
                return loaded
                    .answered(log, &stream, request)
                    .await?
                    .ok_or_else(reused);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The usual gate of a command on a case's aggregate (a plan, a claim, a complaint):
/// `action` on the case, decided with its team as the log says now and recorded on the
/// case's access history. A case the caller may not see makes the aggregate NOT_FOUND
/// under its own id, never naming the case.
#[derive(Clone, Copy, Debug)]
pub struct CaseGate {
    pub case_id: Uuid,
    pub action: Action,
    /// Facts of the entry the command touches (a health goal).
    pub health_goal: bool,
    /// What the aggregate is called in a NOT_FOUND (`plan`, `claim`, `complaint`).
    pub kind: &'static str,
}

impl CaseGate {
    /// Decides and records; `id` is the aggregate's id (`None` while creating it, when a
    /// hidden case is NOT_FOUND as the case the caller named).
    pub async fn admit(&self, call: &Call, id: Option<Uuid>) -> Result<(), ApiError> {
        let team = call.trust_teams().current(self.case_id).await?;
        let decision = call.decide_for(
            team.as_ref(),
            self.action,
            Entry {
                addressed_to: None,
                health_goal: self.health_goal,
            },
        );
        match (call.enforce(self.case_id, decision), id) {
            (Err(ApiError::NotFound { .. }), Some(id)) => Err(ApiError::NotFound {
                kind: self.kind,
                id: id.to_string(),
            }),
            (result, _) => result,
        }
    }
}

impl<A: Aggregate> Gate<A> for CaseGate {
    async fn check(&self, call: &Call, id: Uuid, _: &Loaded<A>) -> Result<(), ApiError> {
        self.admit(call, Some(id)).await
    }
}

/// An aggregate that lists are made of: the category of its streams, and the format of
/// its state in projections' checkpoints (bump it when the state changes).
pub trait Listed: Aggregate + serde::Serialize + serde::de::DeserializeOwned + 'static {
    const CATEGORY: &'static str;
    const FORMAT: u32;
}

/// Every aggregate of one stream category, in the order each began.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "A: Listed")]
pub struct Category<A> {
    items: HashMap<Uuid, Loaded<A>>,
    /// By the position of each one's first event.
    #[serde(with = "caseline_projection::positions::keys")]
    order: BTreeMap<Position, Uuid>,
}

impl<A> std::fmt::Debug for Category<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Category")
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl<A> Default for Category<A> {
    fn default() -> Self {
        Self {
            items: HashMap::new(),
            order: BTreeMap::new(),
        }
    }
}

impl<A: Listed> Fold for Category<A> {
    const FORMAT: u32 = A::FORMAT;
    type Error = ApiError;

    fn reads(event: &RecordedEvent) -> bool {
        caseline_projection::category_of(event) == Some(A::CATEGORY)
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApiError> {
        let Some(id) = event
            .stream
            .as_str()
            .split_once('-')
            .and_then(|(_, id)| Uuid::parse_str(id).ok())
        else {
            return Ok(());
        };
        let item = self.items.entry(id).or_default();
        if item.version.is_some_and(|v| event.version <= v) {
            // Delivered again (catch-up is at-least-once): applied already.
            return Ok(());
        }
        if item.version.is_none() {
            self.order.insert(event.position, id);
        }
        item.fold(event)?;
        Ok(())
    }
}

/// Every aggregate of one stream category, followed from the log in global order, for
/// lists. Commands never read it (they load their own stream). It catches up before
/// every query, so what a caller just wrote is listed on their next call.
#[derive(Debug)]
pub struct Projection<A> {
    followed: Arc<Followed<Category<A>>>,
}

impl<A: Listed> Projection<A> {
    /// Lists over `followed` (see `caseline_host::Host::projection`).
    pub fn new(followed: Arc<Followed<Category<A>>>) -> Self {
        Self { followed }
    }

    /// The aggregates begun after `after` that `include` admits, oldest first, each with
    /// the position that pages them.
    pub async fn select(
        &self,
        after: Option<Position>,
        include: impl Fn(&Loaded<A>) -> bool,
    ) -> Result<Vec<(Position, Uuid, Loaded<A>)>, ApiError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let state = self.followed.view().await?;
        let from = after.map_or(Unbounded, Excluded);
        Ok(state
            .order
            .range((from, Unbounded))
            .filter_map(|(p, id)| state.items.get(id).map(|l| (*p, *id, l)))
            .filter(|(_, _, l)| include(l))
            .map(|(p, id, l)| (p, id, l.clone()))
            .collect())
    }
}

/// A list's page from the items the caller may see, in order, each with the position
/// that pages it: at most `size` of them, and the next page's token when more follow
/// (empty on the last page). Gather `size + 1` visible items at most: the one past the
/// page only says that there is a next page.
pub fn page_of<T>(visible: Vec<(Position, T)>, size: usize) -> (Vec<T>, String) {
    let more = visible.len() > size;
    let mut items: Vec<_> = visible.into_iter().take(size).collect();
    let next = match items.last() {
        Some((position, _)) if more => position.to_string(),
        _ => String::new(),
    };
    (items.drain(..).map(|(_, item)| item).collect(), next)
}

#[cfg(test)]
mod tests {
    use caseline_eventlog::{Metadata, Position, RecordedEvent, StreamName, Uuid};
    use caseline_projection::Fold;

    use super::{Aggregate, ApiError, Category, Listed, LogError, page_of};

    /// Counts the events applied to it.
    #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    struct Tally(u64);

    impl Aggregate for Tally {
        type Command = ();
        type Event = ();
        fn apply(&mut self, _: &RecordedEvent) -> Result<(), LogError> {
            self.0 += 1;
            Ok(())
        }
        fn decide(&self, _: Uuid, _: ()) -> Result<Vec<()>, ApiError> {
            Ok(Vec::new())
        }
        fn encode(_: &()) -> (&'static str, Vec<u8>) {
            ("caseline.v1.events.Tallied", Vec::new())
        }
    }

    impl Listed for Tally {
        const CATEGORY: &'static str = "tally";
        const FORMAT: u32 = 1;
    }

    #[test]
    fn an_event_delivered_twice_is_applied_once() {
        let id = Uuid::new_v4();
        let event = |version: u64, position: &str| RecordedEvent {
            event_id: Uuid::new_v4(),
            stream: StreamName::for_id("tally", id).expect("a stream name"),
            version,
            position: position.parse().expect("a position"),
            event_type: "caseline.v1.events.Tallied".into(),
            data: Vec::new(),
            metadata: Metadata::default(),
            recorded_at: std::time::SystemTime::now(),
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let mut category = Category::<Tally>::default();
        for e in [event(0, "1"), event(1, "2"), event(1, "2"), event(0, "1")] {
            category.apply(&e).expect("applies");
        }
        let item = &category.items[&id];
        assert_eq!((item.aggregate.0, item.version), (2, Some(1)));
        assert_eq!(category.order.len(), 1);
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
                    event_type: "caseline.v1.events.Tallied".into(),
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

    #[test]
    fn a_page_says_whether_more_follow() {
        let at = |n: &str| n.parse::<Position>().expect("a position");
        let items = |n: usize| (1..=n).map(|i| (at(&i.to_string()), i)).collect::<Vec<_>>();
        assert_eq!(page_of(items(3), 2), (vec![1, 2], at("2").to_string()));
        assert_eq!(page_of(items(2), 2), (vec![1, 2], String::new()));
        assert_eq!(page_of(items(0), 2), (vec![], String::new()));
    }
}
