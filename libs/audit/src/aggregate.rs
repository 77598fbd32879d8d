//! The command path every service shares: an aggregate folded from its own stream, and
//! a command run on it that is idempotent by `request_id`, checked against
//! `expected_version`, authorised again on the very state it is decided on, and appended
//! at the version read (deciding again when another command won the race).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use caseline_eventlog::{
    Direction, Error as LogError, EventLog, ExpectedVersion, NewEvent, Position, RecordedEvent,
    StreamName, Uuid,
};
use caseline_projection::{Fold, Followed};
use caseline_server::ApiError;

use caseline_policy::{Action, Entry};

use crate::Call;
use crate::request::{Request, reused};

/// How often a command without `expected_version` is decided again after another
/// command on the same stream won the race.
const RACE_RETRIES: usize = 8;

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

/// A request already applied to the stream.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Applied {
    first_event_id: Uuid,
    last_version: u64,
}

/// An aggregate as its stream says, up to `version`, with the requests applied to it.
/// Derefs to the aggregate.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Loaded<A> {
    pub aggregate: A,
    /// `None`: the stream holds nothing.
    pub version: Option<u64>,
    /// Shared with copies, so handing out a snapshot does not copy one entry per
    /// request the stream has seen. Not kept in projections' checkpoints: lists never
    /// answer requests (commands load their stream).
    #[serde(skip)]
    requests: Arc<HashMap<Uuid, Applied>>,
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
        if let Some(request_id) = event.metadata.request_id {
            Arc::make_mut(&mut self.requests)
                .entry(request_id)
                .and_modify(|a| a.last_version = event.version)
                .or_insert(Applied {
                    first_event_id: event.event_id,
                    last_version: event.version,
                });
        }
        self.version = Some(event.version);
        Ok(())
    }

    /// What the stream already answered `request`: the version after it if it was
    /// applied, ALREADY_EXISTS if its id was used here for a different request, `None`
    /// if it has not seen it.
    pub fn answered(&self, request: &Request) -> Result<Option<u64>, ApiError> {
        match self.requests.get(&request.id) {
            None => Ok(None),
            Some(a) if a.first_event_id == request.event_id(0) => Ok(Some(a.last_version)),
            Some(_) => Err(reused()),
        }
    }

    /// Brings it up to date with what `stream` holds after its version.
    pub async fn follow(
        &mut self,
        log: &dyn EventLog,
        stream: &StreamName,
    ) -> Result<(), ApiError> {
        const PAGE: usize = 1000;
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
/// decided on; the events are appended at the version read, so a conflicting command
/// that landed meanwhile makes this one decide again on the new state. `first`, if
/// given, is the state the caller was authorised on, used for the first attempt.
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
    let mut first = first;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = match first.take() {
            Some(loaded) => loaded,
            None => Loaded::<A>::load(log, &stream).await?,
        };
        if let Some(version) = loaded.answered(request)? {
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
            Ok(result) => return Ok(result.last_version),
            Err(LogError::WrongExpectedVersion { .. })
                if expected.is_none() && attempt < RACE_RETRIES =>
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
                return loaded.answered(request)?.ok_or_else(reused);
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
        item.apply(event)?;
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

    #[test]
    fn a_page_says_whether_more_follow() {
        let at = |n: &str| n.parse::<Position>().expect("a position");
        let items = |n: usize| (1..=n).map(|i| (at(&i.to_string()), i)).collect::<Vec<_>>();
        assert_eq!(page_of(items(3), 2), (vec![1, 2], at("2").to_string()));
        assert_eq!(page_of(items(2), 2), (vec![1, 2], String::new()));
        assert_eq!(page_of(items(0), 2), (vec![], String::new()));
    }
}
