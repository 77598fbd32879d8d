//! Indexes: projections kept as rows of a table in the state store, not in memory.
//!
//! An index says, for an id (a case's, say), which events of the log name it, in the
//! log's order, so that a query reads those events and no others. [`Indexed`] follows
//! the log like [`crate::Followed`] does, but writes each batch of entries (a key's
//! entries of a batch in one row, see `postings`) together with the position it has
//! reached in one transaction of the state store: memory stays the same whatever the
//! size of the log, a restart resumes where the last batch ended, and nothing is ever
//! snapshotted whole.
//!
//! Rules (those of every projection): an index is a function of the log up to its
//! position, so any instance's rows are as good as another's (adding an entry twice
//! changes nothing); a change of what [`Keys`] extracts bumps [`Keys::FORMAT`], which
//! drops the index's rows and rebuilds it from the log.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use caseline_eventlog::{Error, EventLog, Interest, Position, RecordedEvent, StreamName, Uuid};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::Checkpointed;
use crate::feed::{Feed, Follower};
use crate::store::{CheckpointStore, Snapshot};

/// Events read per page, and written per transaction, while catching up.
const PAGE: usize = 512;

/// What an index files each event under.
pub trait Keys: Send + Sync + 'static {
    /// The format of the entries; bump it when [`Keys::keys`] changes.
    const FORMAT: u32;
    /// The events it files (a superset of those with keys): the log is asked for these
    /// only.
    const INTEREST: Interest = Interest::EVERYTHING;
    /// The ids `event` is found by; none for an event the index does not hold.
    fn keys(event: &RecordedEvent) -> Vec<Uuid>;
}

/// One event filed under one key: where it stands in the log, and where to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: Uuid,
    pub position: Position,
    pub stream: StreamName,
    pub version: u64,
}

/// An index named `name` in the state store, kept up with the log.
pub struct Indexed<K> {
    name: &'static str,
    log: Arc<dyn EventLog>,
    store: Arc<dyn CheckpointStore>,
    /// The shared read it is fed by, if any (else it reads its own events).
    feed: Option<Weak<Feed>>,
    /// Where it stands (`None` until the stored checkpoint is read).
    at: Mutex<Option<At>>,
    keys: PhantomData<fn() -> K>,
}

/// Where an index stands. Entries are written in batches: `read_to` is the last
/// position read, `filed` the last one whose entries are all written (with `pending`
/// empty and no write under way, the same), `saved` the last one saved as the index's
/// checkpoint. Pages with
/// no entry are not written (most of the log, for most indexes), so the saved one may
/// be behind; a restart then reads those pages again, which files nothing twice.
struct At {
    filed: Position,
    saved: Position,
    read_to: Position,
    /// Entries read up to `read_to` and not yet written, at most [`ENTRIES_PER_WRITE`]
    /// and one page's.
    pending: Vec<IndexEntry>,
    /// Events read since the last write.
    unsaved: u64,
    /// The write under way, if any, and the position it saves: it runs in a task of
    /// its own while the next entries are read (so at most two batches are held), and
    /// is waited for before the next write, by a find (at the head of the log), and at
    /// a save; a round of the shared read at the head collects it only once finished.
    writing: Option<(JoinHandle<Result<(), Error>>, Position)>,
    /// Events read since this process started it.
    read: u64,
    /// When it started, until its first catch-up reached the log's head.
    catching_up_since: Option<std::time::Instant>,
}

impl At {
    /// Whether no write is under way, or the one under way has ended (and awaiting it
    /// returns at once).
    fn write_finished(&self) -> bool {
        self.writing
            .as_ref()
            .is_none_or(|(write, _)| write.is_finished())
    }
}

/// How far (in events) the saved checkpoint may fall behind what was read before it is
/// saved without an entry; also the most events read before their entries are written.
const SAVE_EVERY_EVENTS: u64 = 50_000;

/// The most entries held before they are written, in one transaction (about 100 bytes
/// each): a rebuild writes its entries in few large batches, each key's entries of a
/// batch as one row, not a transaction per page, each of which changed rows all over
/// the table.
const ENTRIES_PER_WRITE: usize = 100_000;

impl<K> std::fmt::Debug for Indexed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K: Keys> Indexed<K> {
    /// An index reading its own events when queried.
    pub fn new(
        name: &'static str,
        log: Arc<dyn EventLog>,
        store: Arc<dyn CheckpointStore>,
    ) -> Arc<Self> {
        Self::with_feed(name, log, store, None)
    }

    /// An index fed by `feed`'s shared read of its log (and kept up with it in the
    /// background by [`Feed::follow`]).
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
            at: Mutex::new(None),
            keys: PhantomData,
        })
    }

    /// Files everything the log holds now; returns the last position filed.
    pub async fn catch_up(&self) -> Result<Position, Error> {
        let reached = crate::shared_catch_up(self.feed.as_ref()).await;
        let mut guard = self.at.lock().await;
        let at = self.started(&mut guard).await?;
        if reached.is_some_and(|r| at.filed >= r) {
            return Ok(at.filed);
        }
        self.read_alone(at).await
    }

    /// Waits for the write under way, if any: what it held is filed, or, if it failed,
    /// read again (from the last position filed).
    async fn written(at: &mut At) -> Result<(), Error> {
        let Some((write, position)) = at.writing.as_mut() else {
            return Ok(());
        };
        let position = *position;
        // Still held while awaited: if this call is cut off, the next one awaits it.
        let written = write
            .await
            .unwrap_or_else(|e| Err(Error::Unavailable(format!("an index write ended: {e}"))));
        at.writing = None;
        match written {
            Ok(()) => {
                at.filed = position;
                at.saved = position;
                Ok(())
            }
            Err(e) => {
                at.read_to = at.filed;
                at.pending.clear();
                at.unsaved = 0;
                Err(e)
            }
        }
    }

    /// Files everything the log holds now by its own read.
    async fn read_alone(&self, at: &mut At) -> Result<Position, Error> {
        // A write a round started and did not wait for may have failed: what it held is
        // read again below, from the last position filed, and written by this call.
        if let Err(e) = Self::written(at).await {
            tracing::warn!(index = self.name, error = %e, "an index write failed; its entries are read again");
        }
        loop {
            let read = self.log.read_of(&K::INTEREST, at.read_to, PAGE).await?;
            let at_head = read.events.len() < PAGE || read.scanned_to <= at.read_to;
            let to = at.read_to.max(read.scanned_to);
            self.take(at, &read.events, to, at_head, true).await?;
            if at_head {
                return Ok(at.filed);
            }
        }
    }

    /// Its state, with the stored checkpoint read first if it was not yet.
    async fn started<'a>(&self, guard: &'a mut Option<At>) -> Result<&'a mut At, Error> {
        if guard.is_none() {
            let position = self.start().await?;
            *guard = Some(At {
                filed: position,
                saved: position,
                read_to: position,
                pending: Vec::new(),
                unsaved: 0,
                writing: None,
                read: 0,
                catching_up_since: Some(std::time::Instant::now()),
            });
        }
        Ok(guard.as_mut().expect("set above"))
    }

    /// Takes the entries of `page` past where it stands, up to `to`, and writes what it
    /// holds when there is enough of it, when it has read [`SAVE_EVERY_EVENTS`] without
    /// writing, or at the head of the log. With `settle`, it returns once everything
    /// taken is written (a query of this index, a save). Without (a round of the shared
    /// read), it does not wait at the head: the round, and the query of another
    /// projection that ran it, goes on while the write runs. What is taken while a
    /// write runs is written by a later round at the head that finds it finished, by a
    /// find, or by the next checkpoint save, whichever comes first; it holds at most
    /// [`ENTRIES_PER_WRITE`] entries and a page, and [`SAVE_EVERY_EVENTS`] events read.
    /// Until written it is not filed: a restart reads it again.
    async fn take(
        &self,
        at: &mut At,
        page: &[RecordedEvent],
        to: Position,
        at_head: bool,
        settle: bool,
    ) -> Result<(), Error> {
        let before = at.read_to;
        at.pending.extend(
            page.iter()
                .filter(|e| e.position > before && K::INTEREST.admits(e))
                .flat_map(|event| {
                    K::keys(event).into_iter().map(|key| IndexEntry {
                        key,
                        position: event.position,
                        stream: event.stream.clone(),
                        version: event.version,
                    })
                }),
        );
        let read = page.iter().filter(|e| e.position > before).count() as u64;
        at.unsaved += read;
        at.read += read;
        at.read_to = at.read_to.max(to);
        if at.pending.len() >= ENTRIES_PER_WRITE
            || at.unsaved >= SAVE_EVERY_EVENTS
            || (at_head && !at.pending.is_empty() && (settle || at.write_finished()))
        {
            Self::written(at).await?;
            let entries = std::mem::take(&mut at.pending);
            let (store, name, position) = (Arc::clone(&self.store), self.name, at.read_to);
            // The store files each key's entries of the batch as one run (one row).
            let write =
                tokio::spawn(async move { store.index(name, K::FORMAT, position, entries).await });
            at.writing = Some((write, position));
            at.unsaved = 0;
        }
        if at_head && (settle || at.write_finished()) {
            Self::written(at).await?;
        }
        crate::measure_lag(self.name, page);
        if at.pending.is_empty() && at.writing.is_none() {
            at.filed = at.read_to;
            // Caught up once all it read is written, not while its last batch is.
            if at_head && let Some(since) = at.catching_up_since.take() {
                crate::caught_up(self.name, at.read, since);
            }
        }
        Ok(())
    }

    /// Writes what it holds, and saves the position filed as the index's checkpoint if
    /// it moved past the saved one without an entry (at a stop: the next start reads
    /// less).
    pub async fn save(&self) -> Result<bool, Error> {
        let mut guard = self.at.lock().await;
        if guard.is_none() {
            return Ok(false);
        }
        let at = self.started(&mut guard).await?;
        if at.writing.is_some() || !at.pending.is_empty() {
            let to = at.read_to;
            self.take(at, &[], to, true, true).await?;
            return Ok(true);
        }
        if at.filed <= at.saved {
            return Ok(false);
        }
        self.store
            .index(self.name, K::FORMAT, at.filed, Vec::new())
            .await?;
        at.saved = at.filed;
        Ok(true)
    }

    /// The entries under `key` after `after`, in the log's order, at most `limit`, with
    /// everything the log holds now filed first.
    pub async fn find(
        &self,
        key: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error> {
        self.catch_up().await?;
        self.store.find(self.name, key, after, limit).await
    }

    /// Where the stored index stands: its checkpoint if of this format; else its rows
    /// are dropped and it starts from the beginning of the log.
    async fn start(&self) -> Result<Position, Error> {
        match self.store.load(self.name).await? {
            Some(Snapshot {
                format, position, ..
            }) if format == K::FORMAT => {
                tracing::info!(index = self.name, %position, "index resumed from its checkpoint");
                Ok(position)
            }
            Some(Snapshot { format, .. }) => {
                tracing::info!(
                    index = self.name,
                    stored = format,
                    current = K::FORMAT,
                    "index of another format; rebuilding from the log"
                );
                self.store.clear_index(self.name).await?;
                Ok(Position::START)
            }
            None => {
                tracing::info!(index = self.name, "no index yet; building from the log");
                Ok(Position::START)
            }
        }
    }
}

#[async_trait::async_trait]
impl<K: Keys> Checkpointed for Indexed<K> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn checkpoint(&self) -> Result<bool, Error> {
        self.save().await
    }
}

#[async_trait::async_trait]
impl<K: Keys> Follower for Indexed<K> {
    async fn position(&self) -> Result<Position, Error> {
        let mut guard = self.at.lock().await;
        Ok(self.started(&mut guard).await?.read_to)
    }

    async fn feed(
        &self,
        from: Position,
        page: &[RecordedEvent],
        to: Position,
        at_head: bool,
    ) -> Result<bool, Error> {
        let mut guard = self.at.lock().await;
        let at = self.started(&mut guard).await?;
        if at.read_to < from {
            return Ok(false);
        }
        self.take(at, page, to, at_head, false).await?;
        Ok(true)
    }

    async fn catch_up_alone(&self) -> Result<(), Error> {
        let mut guard = self.at.lock().await;
        let at = self.started(&mut guard).await?;
        self.read_alone(at).await.map(drop)
    }
}
