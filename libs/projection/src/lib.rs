//! Projections (read models) that follow the event log from a checkpoint.
//!
//! A projection is a [`Fold`] of the log in global order. [`Followed`] keeps one in
//! memory, catches it up with the log before every query (so a caller's own writes are
//! on their next list) and in the background, and saves it now and then as a
//! [`Snapshot`] in a [`CheckpointStore`] beside the log. After a restart it starts from
//! the latest snapshot and reads only what the log holds after it: never the whole log
//! again, unless the snapshot is missing or of another format.
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

mod index;
pub mod positions;
mod store;

use std::sync::Arc;
use std::time::Duration;

use caseline_eventlog::{EventLog, Interest, Position, RecordedEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio::task::JoinHandle;

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
    state: S,
}

impl<S: Fold> Followed<S> {
    /// A projection named `name` (unique within the state store) over `log`.
    pub fn new(
        name: &'static str,
        log: Arc<dyn EventLog>,
        store: Arc<dyn CheckpointStore>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            log,
            store,
            inner: Mutex::new(Inner {
                started: false,
                after: Position::START,
                saved: Position::START,
                read_since_saved: 0,
                changed_since_saved: false,
                read: 0,
                state: S::default(),
            }),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The state, caught up with everything the log holds now. Queries hold it while
    /// they read; the lock keeps every event applied once and in order.
    pub async fn view(&self) -> Result<MappedMutexGuard<'_, S>, S::Error> {
        let mut inner = self.inner.lock().await;
        self.catch_up(&mut inner).await?;
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

    /// Follows the log in the background: catches up when this process appends, or
    /// every `poll` for other processes' appends, and saves a checkpoint when something
    /// changed, at most every `save_every`, and never more often than keeps saving
    /// within [`CHECKPOINT_SHARE`] of the time (a large state takes a while to encode and
    /// write; it is saved less often rather than slowing everything down). Stop it by
    /// aborting the handle; call [`Followed::checkpoint`] after, to save the latest state.
    pub fn follow(self: &Arc<Self>, poll: Duration, save_every: Duration) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut appended = this.log.appended();
            let mut last_save = tokio::time::Instant::now();
            let mut save_after = save_every;
            loop {
                if let Err(e) = this.refresh().await {
                    tracing::warn!(projection = this.name, error = %e, "projection catch-up failed");
                }
                if last_save.elapsed() >= save_after {
                    let saving = tokio::time::Instant::now();
                    if let Err(e) = this.checkpoint().await {
                        tracing::warn!(projection = this.name, error = %e, "checkpoint not saved");
                    }
                    last_save = tokio::time::Instant::now();
                    save_after = save_every.max(saving.elapsed().mul_f64(1.0 / CHECKPOINT_SHARE));
                }
                tokio::select! {
                    changed = appended.changed() => {
                        if changed.is_err() {
                            // The log is closing.
                            return;
                        }
                    }
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        })
    }

    async fn refresh(&self) -> Result<(), caseline_eventlog::Error> {
        let mut inner = self.inner.lock().await;
        match self.catch_up(&mut inner).await {
            Ok(()) => Ok(()),
            Err(_) => Err(caseline_eventlog::Error::Unavailable(format!(
                "projection {} stopped at an event after {}",
                self.name, inner.after
            ))),
        }
    }

    async fn catch_up(&self, inner: &mut Inner<S>) -> Result<(), S::Error> {
        if !inner.started {
            self.start(inner).await?;
        }
        loop {
            let read = self.log.read_of(&S::INTEREST, inner.after, PAGE).await?;
            let page = read.events;
            for event in &page {
                if S::reads(event) {
                    if is_recent(event) {
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
            }
            // Past the events it does not read, too.
            inner.after = inner.after.max(read.scanned_to);
            measure_lag(self.name, &page);
            if page.len() < PAGE {
                return Ok(());
            }
        }
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
        Ok(())
    }
}

/// Events older than this are applied without a span: a rebuild from the log would
/// otherwise add a span to every trace ever recorded.
const TRACED_FOR: Duration = Duration::from_secs(15 * 60);

fn is_recent(event: &RecordedEvent) -> bool {
    // An event stamped ahead of this clock is recent too.
    match std::time::SystemTime::now().duration_since(event.recorded_at) {
        Ok(age) => age <= TRACED_FOR,
        Err(_) => true,
    }
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
