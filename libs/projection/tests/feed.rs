//! One read of the log for several followers: a rebuild through a [`Feed`] reads each
//! event of the log once, whatever the number of projections and indexes it feeds, and
//! builds what each would have built alone; a follower whose events fail to apply
//! leaves the shared read without holding the others back, and rejoins once it has
//! caught up alone. Over a real SQLite log and state store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use caseline_eventlog::sqlite::SqliteEventLog;
use caseline_eventlog::{
    AppendResult, Direction, Error, EventLog, ExpectedVersion, Interest, Metadata, NewEvent,
    Position, ReadOf, RecordedEvent, StreamName, Uuid,
};
use caseline_projection::{
    CheckpointStore, Feed, Fold, Followed, IndexEntry, Indexed, Snapshot, SqliteCheckpoints,
};
use common::Named;

/// A SQLite log that counts the events its readers were given by `read_all` and
/// `read_of` (what a rebuild costs).
#[derive(Debug)]
struct Counted {
    log: SqliteEventLog,
    events_read: AtomicU64,
}

impl Counted {
    fn read(&self) -> u64 {
        self.events_read.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl EventLog for Counted {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        self.log.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.log.read_stream(stream, direction, from, limit).await
    }

    async fn read_case(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        self.log.read_case(case_id, after, limit).await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, Error> {
        let page = self.log.read_all(after, limit).await?;
        self.events_read
            .fetch_add(page.len() as u64, Ordering::Relaxed);
        Ok(page)
    }

    async fn read_of(
        &self,
        interest: &Interest,
        after: Position,
        limit: usize,
    ) -> Result<ReadOf, Error> {
        let read = self.log.read_of(interest, after, limit).await?;
        self.events_read
            .fetch_add(read.events.len() as u64, Ordering::Relaxed);
        Ok(read)
    }

    fn appended(&self) -> tokio::sync::watch::Receiver<Position> {
        self.log.appended()
    }

    fn poll_interval(&self) -> Duration {
        self.log.poll_interval()
    }

    async fn close(&self) {
        self.log.close().await;
    }
}

/// While set, [`Counts`] refuses `test.Bad` events (a projection stuck on an event).
static REFUSE_BAD: AtomicBool = AtomicBool::new(false);

/// Counts the events of each stream of one category.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counts<const CASES: bool> {
    per_stream: BTreeMap<String, u64>,
}

impl<const CASES: bool> Fold for Counts<CASES> {
    const FORMAT: u32 = 1;
    type Error = Error;
    const INTEREST: Interest = if CASES {
        Interest::of(&["case"], &[], &[])
    } else {
        Interest::of(&["plan"], &[], &[])
    };

    fn reads(event: &RecordedEvent) -> bool {
        caseline_projection::category_of(event) == Some(if CASES { "case" } else { "plan" })
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), Error> {
        if event.event_type == "test.Bad" && REFUSE_BAD.load(Ordering::SeqCst) {
            return Err(Error::Corrupt {
                position: event.position.to_string(),
                reason: "refused".into(),
            });
        }
        *self
            .per_stream
            .entry(event.stream.as_str().to_owned())
            .or_default() += 1;
        Ok(())
    }
}

fn event(event_type: &str, data: Vec<u8>) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.into(),
        data,
        metadata: Metadata {
            actor: "user-1".into(),
            actor_role: "social_worker".into(),
            agency: "children-services".into(),
            ..Metadata::default()
        },
    }
}

/// A log of `rounds` × (cases, plans, list pages naming some of `ids`): more events
/// than a page of the shared read, interleaved.
async fn grow(log: &dyn EventLog, ids: &[Uuid], rounds: usize) -> u64 {
    let mut appended = 0;
    for round in 0..rounds {
        let case = StreamName::for_id("case", ids[round % ids.len()]).unwrap();
        let plan = StreamName::for_id("plan", Uuid::new_v4()).unwrap();
        let global = StreamName::new("access-global").unwrap();
        let named: Vec<u8> = ids
            .iter()
            .skip(round % 3)
            .step_by(2)
            .flat_map(|id| id.as_bytes().to_vec())
            .collect();
        for (stream, events) in [
            (case, (0..7).map(|_| event("test.Noted", vec![1])).collect()),
            (
                plan,
                (0..3).map(|_| event("test.Planned", vec![2])).collect(),
            ),
            (
                global,
                (0..2)
                    .map(|_| event("test.Listed", named.clone()))
                    .collect::<Vec<_>>(),
            ),
        ] {
            appended += events.len() as u64;
            log.append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
        }
    }
    appended
}

struct World {
    dir: tempfile::TempDir,
    log: Arc<Counted>,
    ids: Vec<Uuid>,
}

async fn world(rounds: usize) -> (World, u64) {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Counted {
        log: SqliteEventLog::open(dir.path().join("events.sqlite"))
            .await
            .unwrap(),
        events_read: AtomicU64::new(0),
    });
    let ids: Vec<Uuid> = (0..9).map(|_| Uuid::new_v4()).collect();
    let n = grow(&*log, &ids, rounds).await;
    (World { dir, log, ids }, n)
}

async fn store(w: &World, name: &str) -> Arc<dyn CheckpointStore> {
    Arc::new(
        SqliteCheckpoints::open(w.dir.path().join(name))
            .await
            .unwrap(),
    )
}

async fn entries(index: &Indexed<Named>, ids: &[Uuid]) -> Vec<Vec<Position>> {
    let mut all = Vec::new();
    for id in ids {
        let found = index.find(*id, Position::START, 10_000).await.unwrap();
        all.push(found.iter().map(|e| e.position).collect());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_through_a_feed_reads_each_event_once_and_builds_what_each_builds_alone() {
    let (w, n) = world(300).await;
    assert!(n > 3_000, "several pages of the shared read");
    let log: Arc<dyn EventLog> = Arc::clone(&w.log) as Arc<dyn EventLog>;

    let feed = Feed::new(Arc::clone(&log));
    let fed_store = store(&w, "fed.sqlite").await;
    let cases = Followed::<Counts<true>>::fed_by("cases", &feed, Arc::clone(&fed_store));
    let plans = Followed::<Counts<false>>::fed_by("plans", &feed, Arc::clone(&fed_store));
    let named = Indexed::<Named>::fed_by("named", &feed, fed_store);
    feed.open();
    let before = w.log.read();
    let reached = feed.catch_up().await.unwrap().expect("a round ran");
    assert_eq!(
        w.log.read() - before,
        n,
        "three followers rebuilt by reading the log once"
    );
    assert_eq!(cases.progress().await.0, reached);
    assert_eq!(plans.progress().await.0, reached);

    // Queries now cost no more reading than the (empty) rest of the log.
    let before = w.log.read();
    let fed_cases = cases.view().await.unwrap().per_stream.clone();
    let fed_plans = plans.view().await.unwrap().per_stream.clone();
    let fed_entries = entries(&named, &w.ids).await;
    assert_eq!(w.log.read(), before, "nothing read again");

    // The same as each built alone, by its own read.
    let alone_store = store(&w, "alone.sqlite").await;
    let alone_cases =
        Followed::<Counts<true>>::new("cases", Arc::clone(&log), Arc::clone(&alone_store));
    let alone_plans =
        Followed::<Counts<false>>::new("plans", Arc::clone(&log), Arc::clone(&alone_store));
    let alone_named = Indexed::<Named>::new("named", Arc::clone(&log), alone_store);
    assert_eq!(fed_cases, alone_cases.view().await.unwrap().per_stream);
    assert_eq!(fed_plans, alone_plans.view().await.unwrap().per_stream);
    assert_eq!(fed_entries, entries(&alone_named, &w.ids).await);
    assert_eq!(fed_cases.values().sum::<u64>(), 300 * 7);
    assert!(fed_entries.iter().all(|e| !e.is_empty()));

    // What is appended later reaches every follower through the next query's round.
    grow(&*log, &w.ids, 5).await;
    assert_eq!(
        cases.view().await.unwrap().per_stream.values().sum::<u64>(),
        305 * 7
    );
    assert_eq!(
        plans.view().await.unwrap().per_stream.values().sum::<u64>(),
        305 * 3
    );
    assert_eq!(
        entries(&named, &w.ids).await,
        entries(&alone_named, &w.ids).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_fails_leaves_the_shared_read_and_rejoins_once_caught_up() {
    let (w, _) = world(60).await;
    let log: Arc<dyn EventLog> = Arc::clone(&w.log) as Arc<dyn EventLog>;
    // One event the cases projection refuses, in the middle of the log.
    REFUSE_BAD.store(true, Ordering::SeqCst);
    let case = StreamName::for_id("case", w.ids[0]).unwrap();
    log.append(&case, ExpectedVersion::Any, vec![event("test.Bad", vec![])])
        .await
        .unwrap();
    grow(&*log, &w.ids, 60).await;

    let feed = Feed::new(Arc::clone(&log));
    let state = store(&w, "state.sqlite").await;
    let cases = Followed::<Counts<true>>::fed_by("cases", &feed, Arc::clone(&state));
    let plans = Followed::<Counts<false>>::fed_by("plans", &feed, state);
    feed.open();
    let reached = feed.catch_up().await.unwrap().expect("a round ran");
    assert_eq!(
        plans.progress().await.0,
        reached,
        "the others reach the head"
    );
    let (stuck_at, _) = cases.progress().await;
    assert!(stuck_at < reached, "it stops before the event it refuses");
    assert!(
        matches!(cases.view().await, Err(Error::Corrupt { .. })),
        "its queries see what stops it"
    );

    // Later rounds read from where the others stand, not from where it stopped.
    grow(&*log, &w.ids, 1).await;
    let before = w.log.read();
    let reached = feed.catch_up().await.unwrap().expect("a round ran");
    assert_eq!(w.log.read() - before, 12, "only what was appended");
    assert_eq!(plans.progress().await.0, reached);
    assert_eq!(cases.progress().await.0, stuck_at);

    // Once the event applies, it catches up alone, then is fed again.
    REFUSE_BAD.store(false, Ordering::SeqCst);
    assert_eq!(
        cases.view().await.unwrap().per_stream.values().sum::<u64>(),
        121 * 7 + 1
    );
    grow(&*log, &w.ids, 1).await;
    let reached = feed.catch_up().await.unwrap().expect("a round ran");
    assert_eq!(cases.progress().await.0, reached, "fed again");
}

/// A SQLite state store whose index writes wait until it is opened (a write that takes
/// its time: a commit of runs all over a large table).
#[derive(Debug)]
struct Gated {
    store: SqliteCheckpoints,
    open: tokio::sync::watch::Sender<bool>,
    writes: AtomicU64,
    /// While set, the next index write fails (and clears it).
    fail_next: AtomicBool,
}

#[async_trait::async_trait]
impl CheckpointStore for Gated {
    async fn load(&self, name: &str) -> Result<Option<Snapshot>, Error> {
        self.store.load(name).await
    }

    async fn save(&self, name: &str, snapshot: &Snapshot) -> Result<(), Error> {
        self.store.save(name, snapshot).await
    }

    async fn index(
        &self,
        name: &str,
        format: u32,
        position: Position,
        entries: Vec<IndexEntry>,
    ) -> Result<(), Error> {
        // The sender lives as long as the store: waiting cannot fail.
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(Error::Unavailable("the state store failed a write".into()));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.index(name, format, position, entries).await
    }

    async fn clear_index(&self, name: &str) -> Result<(), Error> {
        self.store.clear_index(name).await
    }

    async fn find(
        &self,
        name: &str,
        key: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error> {
        self.store.find(name, key, after, limit).await
    }
}

/// A log of 20 rounds, and a cases projection and the index of named ids fed by one
/// read of it, over a [`Gated`] state store (open), built once: what the index held
/// then is `built`.
struct OverGate {
    w: World,
    log: Arc<dyn EventLog>,
    gated: Arc<Gated>,
    /// Bind it: the followers hold it weakly, and without it they read alone.
    feed: Arc<Feed>,
    cases: Arc<Followed<Counts<true>>>,
    named: Arc<Indexed<Named>>,
    built: Vec<Vec<Position>>,
}

async fn over_gate() -> OverGate {
    let (w, _) = world(20).await;
    let log: Arc<dyn EventLog> = Arc::clone(&w.log) as Arc<dyn EventLog>;
    let gated = Arc::new(Gated {
        store: SqliteCheckpoints::open(w.dir.path().join("state.sqlite"))
            .await
            .unwrap(),
        open: tokio::sync::watch::Sender::new(true),
        writes: AtomicU64::new(0),
        fail_next: AtomicBool::new(false),
    });
    let state = Arc::clone(&gated) as Arc<dyn CheckpointStore>;
    let feed = Feed::new(Arc::clone(&log));
    let cases = Followed::<Counts<true>>::fed_by("cases", &feed, Arc::clone(&state));
    let named = Indexed::<Named>::fed_by("named", &feed, state);
    feed.open();
    let built = entries(&named, &w.ids).await;
    OverGate {
        w,
        log,
        gated,
        feed,
        cases,
        named,
        built,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_at_the_head_does_not_wait_for_an_index_write_and_a_find_of_it_does() {
    let OverGate {
        w,
        log,
        gated,
        feed: _feed,
        cases,
        named,
        built,
    } = over_gate().await;
    assert!(built.iter().all(|e| !e.is_empty()));

    // List pages recorded while the state store is slow to write: a query of another
    // projection (its round of the shared read) answers without waiting for the index.
    gated.open.send_replace(false);
    grow(&*log, &w.ids, 3).await;
    let writes = gated.writes.load(Ordering::SeqCst);
    let answered = tokio::time::timeout(Duration::from_secs(30), cases.view())
        .await
        .expect("the round waited for the index's write")
        .unwrap()
        .per_stream
        .values()
        .sum::<u64>();
    assert_eq!(answered, 23 * 7);
    assert_eq!(gated.writes.load(Ordering::SeqCst), writes, "still held");

    // A find of the index waits for the write and sees every page recorded, as one
    // rebuilt from the log does.
    let finding = {
        let (named, ids) = (Arc::clone(&named), w.ids.clone());
        tokio::spawn(async move { entries(&named, &ids).await })
    };
    gated.open.send_replace(true);
    let found = finding.await.unwrap();
    assert!(gated.writes.load(Ordering::SeqCst) > writes);
    let alone = Indexed::<Named>::new("named", Arc::clone(&log), store(&w, "alone.sqlite").await);
    assert_eq!(found, entries(&alone, &w.ids).await);
    assert!(
        found
            .iter()
            .zip(&built)
            .all(|(now, then)| now.len() > then.len()),
        "the pages recorded meanwhile are found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_write_that_fails_unawaited_is_read_again_by_the_next_find() {
    let g = over_gate().await;

    // A round starts the write of the new pages' entries, which fails; nobody waits.
    g.gated.fail_next.store(true, Ordering::SeqCst);
    grow(&*g.log, &g.w.ids, 3).await;
    drop(g.cases.view().await.unwrap());

    // The next find reads those pages again and finds what a rebuilt index finds.
    let found = entries(&g.named, &g.w.ids).await;
    assert!(
        !g.gated.fail_next.load(Ordering::SeqCst),
        "the write failed"
    );
    let alone = Indexed::<Named>::new(
        "named",
        Arc::clone(&g.log),
        store(&g.w, "alone.sqlite").await,
    );
    assert_eq!(found, entries(&alone, &g.w.ids).await);
}
