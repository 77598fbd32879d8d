//! Projections (read models) that follow the event log from a checkpoint.
//!
//! A projection is a [`Fold`] of the log in global order. [`Followed`] keeps one in
//! memory, catches it up with the log before every query (so a caller's own writes are
//! on their next list) and in the background, and saves it now and then as a
//! [`Snapshot`] in a [`CheckpointStore`] beside the log. After a restart it starts from
//! the latest snapshot and reads only what the log holds after it: never the whole log
//! again, unless the snapshot is missing or of another format. The projections and
//! indexes of one process are fed by one [`Feed`]: one read of the log for all of them,
//! not one each (a rebuild from nothing reads the log once).
//!
//! Rules:
//! - a projection is a function of the log up to its position: any instance's snapshot
//!   at a position is as good as another's, and the log stays the only truth;
//! - the snapshot holds what the log holds (sealed fields stay sealed), so erasing a
//!   child's key erases their data in snapshots too;
//! - a state whose shape or meaning changes bumps [`Fold::FORMAT`]: an old snapshot is
//!   then ignored and the projection rebuilt from the log. States that keep protobuf
//!   messages use `caseline_proto::snapshot_format`, which changes with every proto;
//! - a snapshot belongs to the log it was built from: restore the state store and the
//!   log together, or drop the `caseline_projection_checkpoints` table to rebuild;
//! - each event applied runs in a span joined to the trace that wrote it (the
//!   `traceparent` in its metadata), so a projection's work in another service shows in
//!   the writer's trace; events older than a quarter of an hour (a rebuild) get no span.
#![forbid(unsafe_code)]

mod feed;
mod index;
pub mod positions;
mod postings;
mod store;

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use caseline_eventlog::{EventLog, Interest, Position, RecordedEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub use feed::Feed;
pub use index::{IndexEntry, Indexed, Keys};
pub use store::{CheckpointStore, PostgresCheckpoints, Snapshot, SqliteCheckpoints, open};

/// A read model built by applying the log's events in global order.
pub trait Fold: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The format of the state's snapshots; bump it when the state changes shape or
    /// meaning.
    const FORMAT: u32;
    type Error: From<caseline_eventlog::Error> + Send;
    /// The events it is fed (a superset of what [`Fold::reads`] admits): the log is
    /// asked for these only, so that a rebuild reads its own events, not the whole log.
    const INTEREST: Interest = Interest::EVERYTHING;
    /// Applies one event of its categories. An error stops the catch-up at that event
    /// (nothing after it is applied until it succeeds).
    /// Whether it reads `event` (by its stream's category and its type; see
    /// [`category_of`]); other events are skipped without a span.
    fn reads(event: &RecordedEvent) -> bool;
    fn apply(&mut self, event: &RecordedEvent) -> Result<(), Self::Error>;
}

/// How many events are read per page while catching up.
const PAGE: usize = 512;

/// Events a projection may read without applying any before its position is saved
/// anyway (a snapshot of an unchanged state, so that a restart starts past them).
pub const RESAVE_AFTER_EVENTS: u64 = 100_000;

/// The most of its time a followed projection spends saving checkpoints: one that took
/// 200 ms to save waits at least 4 s before the next.
pub const CHECKPOINT_SHARE: f64 = 0.05;

/// A [`Fold`] kept up with the log and checkpointed under a name.
pub struct Followed<S> {
    name: &'static str,
    log: Arc<dyn EventLog>,
    store: Arc<dyn CheckpointStore>,
    /// The shared read it is fed by, if any (else it reads its own events).
    feed: Option<Weak<Feed>>,
    inner: Mutex<Inner<S>>,
}

impl<S> std::fmt::Debug for Followed<S> {
    // The state holds sealed fields and ids: the name is enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

struct Inner<S> {
    /// Whether the snapshot (if any) was loaded.
    started: bool,
    /// The last event applied (or skipped).
    after: Position,
    /// The position of the last snapshot saved or loaded.
    saved: Position,
    /// Events read since that snapshot, and whether any of them changed the state.
    read_since_saved: u64,
    changed_since_saved: bool,
    /// Events read since the start (the snapshot's position on a restart).
    read: u64,
    /// When it started, until its first catch-up reached the log's head.
    catching_up_since: Option<std::time::Instant>,
    state: S,
}

impl<S: Fold> Followed<S> {
    /// A projection named `name` (unique within the state store) over `log`, reading
    /// its own events when queried.
    pub fn new(
        name: &'static str,
        log: Arc<dyn EventLog>,
        store: Arc<dyn CheckpointStore>,
    ) -> Arc<Self> {
        Self::with_feed(name, log, store, None)
    }

    /// A projection named `name` fed by `feed`'s shared read of its log (and kept up
    /// with it in the background by [`Feed::follow`]).
    pub fn fed_by(
        name: &'static str,
        feed: &Arc<Feed>,
        store: Arc<dyn CheckpointStore>,
    ) -> Arc<Self> {
        feed.adopt(|log, feed| Self::with_feed(name, log, store, Some(feed)))
    }

    fn with_feed(
        name: &'static str,
        log: Arc<dyn EventLog>,
        store: Arc<dyn CheckpointStore>,
        feed: Option<Weak<Feed>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            log,
            store,
            feed,
            inner: Mutex::new(Inner {
                started: false,
                after: Position::START,
                saved: Position::START,
                read_since_saved: 0,
                changed_since_saved: false,
                read: 0,
                catching_up_since: None,
                state: S::default(),
            }),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The state, caught up with everything the log holds now. Queries hold it while
    /// they read; the lock keeps every event applied once and in order. Copy out what
    /// a query needs and let the guard go before any other catch-up: a fed
    /// projection's catch-up is a round of the shared read, which takes each
    /// follower's lock in turn (this one's too).
    pub async fn view(&self) -> Result<MappedMutexGuard<'_, S>, S::Error> {
        let reached = shared_catch_up(self.feed.as_ref()).await;
        let mut inner = self.inner.lock().await;
        // Unless the shared read brought it there, it reads its own events (and meets
        // whatever stopped it, for the caller to see).
        if !(inner.started && reached.is_some_and(|r| inner.after >= r)) {
            self.catch_up(&mut inner).await?;
        }
        Ok(MutexGuard::map(inner, |i| &mut i.state))
    }

    /// Where it stands: the last position applied, and how many events it read from the
    /// log since this process started it (after its snapshot, if it had one).
    pub async fn progress(&self) -> (Position, u64) {
        let inner = self.inner.lock().await;
        (inner.after, inner.read)
    }

    /// Saves a snapshot if an event it reads was applied since the last one, or if it
    /// has read past [`RESAVE_AFTER_EVENTS`] events it does not read (so that a restart
    /// need not read them again). Returns whether it saved.
    pub async fn checkpoint(&self) -> Result<bool, caseline_eventlog::Error> {
        let (position, state) = {
            let inner = self.inner.lock().await;
            if !inner.started
                || inner.after == inner.saved
                || !(inner.changed_since_saved || inner.read_since_saved >= RESAVE_AFTER_EVENTS)
            {
                return Ok(false);
            }
            let state = serde_json::to_vec(&inner.state).map_err(|e| {
                caseline_eventlog::Error::Unavailable(format!(
                    "projection {} does not encode ({:?})",
                    self.name,
                    e.classify()
                ))
            })?;
            (inner.after, state)
        };
        let snapshot = Snapshot {
            format: S::FORMAT,
            position,
            state,
        };
        self.store.save(self.name, &snapshot).await?;
        let mut inner = self.inner.lock().await;
        if position > inner.saved {
            inner.saved = position;
            // What was read after the encoding is still unsaved; counted as changed.
            inner.changed_since_saved = inner.after > position;
            inner.read_since_saved = 0;
        }
        tracing::debug!(projection = self.name, %position, "checkpoint saved");
        Ok(true)
    }

    /// What a failed catch-up says where the caller cannot see the fold's own error
    /// (its text may quote what the event holds).
    fn stopped(&self, inner: &Inner<S>) -> caseline_eventlog::Error {
        caseline_eventlog::Error::Unavailable(format!(
            "projection {} stopped at an event after {}",
            self.name, inner.after
        ))
    }

    async fn catch_up(&self, inner: &mut Inner<S>) -> Result<(), S::Error> {
        if !inner.started {
            self.start(inner).await?;
        }
        loop {
            let read = self.log.read_of(&S::INTEREST, inner.after, PAGE).await?;
            let page = read.events;
            let traced_since = traced_since();
            for event in &page {
                self.apply(inner, event, traced_since)?;
            }
            // Past the events it does not read, too.
            inner.after = inner.after.max(read.scanned_to);
            measure_lag(self.name, &page);
            if page.len() < PAGE {
                if let Some(since) = inner.catching_up_since.take() {
                    caught_up(self.name, inner.read, since);
                }
                return Ok(());
            }
        }
    }

    /// Applies `event` if it reads it (in a span joined to the writer's trace, if it was
    /// recorded at `traced_since` or later), and moves past it.
    fn apply(
        &self,
        inner: &mut Inner<S>,
        event: &RecordedEvent,
        traced_since: SystemTime,
    ) -> Result<(), S::Error> {
        if S::reads(event) {
            if event.recorded_at >= traced_since {
                let span = tracing::info_span!(
                    "projection.apply",
                    projection = self.name,
                    event_type = %event.event_type,
                    position = %event.position,
                );
                if let Some(traceparent) = &event.metadata.traceparent {
                    caseline_telemetry::join_trace(&span, traceparent);
                }
                span.in_scope(|| inner.state.apply(event))?;
            } else {
                inner.state.apply(event)?;
            }
            inner.changed_since_saved = true;
        }
        inner.after = event.position;
        inner.read += 1;
        inner.read_since_saved += 1;
        Ok(())
    }

    /// Loads the latest snapshot, if there is a usable one.
    async fn start(&self, inner: &mut Inner<S>) -> Result<(), S::Error> {
        match self.store.load(self.name).await? {
            Some(snapshot) if snapshot.format == S::FORMAT => {
                match serde_json::from_slice::<S>(&snapshot.state) {
                    Ok(state) => {
                        inner.state = state;
                        inner.after = snapshot.position;
                        inner.saved = snapshot.position;
                        tracing::info!(
                            projection = self.name,
                            position = %snapshot.position,
                            "projection resumed from its checkpoint"
                        );
                    }
                    // Not the error's text: it may quote a value of the state.
                    Err(e) => tracing::warn!(
                        projection = self.name,
                        category = ?e.classify(),
                        line = e.line(),
                        column = e.column(),
                        "checkpoint does not decode; rebuilding from the log"
                    ),
                }
            }
            Some(snapshot) => tracing::info!(
                projection = self.name,
                stored = snapshot.format,
                current = S::FORMAT,
                "checkpoint of another format; rebuilding from the log"
            ),
            None => tracing::info!(
                projection = self.name,
                "no checkpoint; building from the log"
            ),
        }
        inner.started = true;
        inner.catching_up_since = Some(std::time::Instant::now());
        Ok(())
    }
}

/// Says that a projection or index started by this process reached the log's head:
/// how many events it read to get there and how long it took (a rebuild's progress).
fn caught_up(name: &'static str, events: u64, since: std::time::Instant) {
    tracing::info!(
        projection = name,
        events,
        seconds = since.elapsed().as_secs_f64(),
        "caught up with the log"
    );
}

/// Events older than this are applied without a span: a rebuild from the log would
/// otherwise add a span to every trace ever recorded.
const TRACED_FOR: Duration = Duration::from_secs(15 * 60);

/// The oldest an event may be recorded and be applied in a span: [`TRACED_FOR`] ago,
/// read by each projection once per page rather than once per event (a rebuild's ten
/// million clock reads). An event stamped ahead of this clock is recent too.
fn traced_since() -> SystemTime {
    SystemTime::now()
        .checked_sub(TRACED_FOR)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Records how long ago the newest event of a page read by `projection` was appended:
/// how far the projection's answers trailed the log (a rebuild shows as the age of what
/// it read). A clock behind the event's stamp counts as no lag.
fn measure_lag(projection: &'static str, page: &[RecordedEvent]) {
    if let Some(newest) = page.last() {
        let lag = std::time::SystemTime::now()
            .duration_since(newest.recorded_at)
            .unwrap_or_default();
        caseline_telemetry::metrics::projection_lag(projection, lag);
    }
}

/// The category of `event`'s stream (`case`, `referral`, …).
pub fn category_of(event: &RecordedEvent) -> Option<&str> {
    event
        .stream
        .as_str()
        .split_once('-')
        .map(|(category, _)| category)
}

/// Something a server saves on a graceful stop.
#[async_trait::async_trait]
pub trait Checkpointed: std::fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;
    async fn checkpoint(&self) -> Result<bool, caseline_eventlog::Error>;
}

#[async_trait::async_trait]
impl<S: Fold> Checkpointed for Followed<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn checkpoint(&self) -> Result<bool, caseline_eventlog::Error> {
        Followed::checkpoint(self).await
    }
}

#[async_trait::async_trait]
impl<S: Fold> feed::Follower for Followed<S> {
    async fn position(&self) -> Result<Position, caseline_eventlog::Error> {
        let mut inner = self.inner.lock().await;
        if !inner.started && self.start(&mut inner).await.is_err() {
            return Err(caseline_eventlog::Error::Unavailable(format!(
                "projection {} does not load its checkpoint",
                self.name
            )));
        }
        Ok(inner.after)
    }

    async fn feed(
        &self,
        from: Position,
        page: &[RecordedEvent],
        to: Position,
        at_head: bool,
    ) -> Result<bool, caseline_eventlog::Error> {
        let mut inner = self.inner.lock().await;
        if !inner.started || inner.after < from {
            return Ok(false);
        }
        let before = inner.after;
        let traced_since = traced_since();
        for event in page.iter().filter(|e| e.position > before) {
            if self.apply(&mut inner, event, traced_since).is_err() {
                return Err(self.stopped(&inner));
            }
        }
        inner.after = inner.after.max(to);
        measure_lag(self.name, page);
        if at_head && let Some(since) = inner.catching_up_since.take() {
            caught_up(self.name, inner.read, since);
        }
        Ok(true)
    }

    async fn catch_up_alone(&self) -> Result<(), caseline_eventlog::Error> {
        let mut inner = self.inner.lock().await;
        match self.catch_up(&mut inner).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.stopped(&inner)),
        }
    }
}

/// A round of `feed`'s shared read, if there is one: the position it reached. A failed
/// round is logged and reported as none (the follower then reads its own events).
async fn shared_catch_up(feed: Option<&Weak<Feed>>) -> Option<Position> {
    let feed = feed?.upgrade()?;
    match feed.catch_up().await {
        Ok(reached) => reached,
        Err(e) => {
            tracing::warn!(error = %e, "projections' shared read failed");
            None
        }
    }
}
