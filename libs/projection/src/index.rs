//! Indexes: projections kept as rows of a table in the state store, not in memory.
//!
//! An index says, for an id (a case's, say), which events of the log name it, in the
//! log's order, so that a query reads those events and no others. [`Indexed`] follows
//! the log like [`crate::Followed`] does, but writes each page of entries together with
//! the position it has reached in one transaction of the state store: memory stays the
//! same whatever the size of the log, a restart resumes where the last page ended, and
//! nothing is ever snapshotted whole.
//!
//! Rules (those of every projection): an index is a function of the log up to its
//! position, so any instance's rows are as good as another's (adding an entry twice
//! changes nothing); a change of what [`Keys`] extracts bumps [`Keys::FORMAT`], which
//! drops the index's rows and rebuilds it from the log.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use caseline_eventlog::{Error, EventLog, Interest, Position, RecordedEvent, StreamName, Uuid};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::Checkpointed;
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
    /// Where it stands (`None` until the stored checkpoint is read).
    at: Mutex<Option<At>>,
    keys: PhantomData<fn() -> K>,
}

/// The last position filed, and the last one saved as the index's checkpoint: pages
/// with no entry are not written (most of the log, for most indexes), so the saved one
/// may be behind; a restart then reads those pages again, which files nothing twice.
#[derive(Clone, Copy)]
struct At {
    filed: Position,
    saved: Position,
}

/// How far (in events) the saved checkpoint may fall behind what was read before it is
/// saved without an entry.
const SAVE_EVERY_EVENTS: u64 = 50_000;

impl<K> std::fmt::Debug for Indexed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K: Keys> Indexed<K> {
    pub fn new(
        name: &'static str,
        log: Arc<dyn EventLog>,
        store: Arc<dyn CheckpointStore>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            log,
            store,
            at: Mutex::new(None),
            keys: PhantomData,
        })
    }

    /// Files everything the log holds now; returns the last position filed.
    pub async fn catch_up(&self) -> Result<Position, Error> {
        let mut guard = self.at.lock().await;
        let mut at = match *guard {
            Some(at) => at,
            None => {
                let position = self.start().await?;
                At {
                    filed: position,
                    saved: position,
                }
            }
        };
        *guard = Some(at);
        let mut unsaved = 0u64;
        loop {
            let read = self.log.read_of(&K::INTEREST, at.filed, PAGE).await?;
            let page = read.events;
            if read.scanned_to <= at.filed {
                break;
            }
            let entries: Vec<IndexEntry> = page
                .iter()
                .flat_map(|event| {
                    K::keys(event).into_iter().map(|key| IndexEntry {
                        key,
                        position: event.position,
                        stream: event.stream.clone(),
                        version: event.version,
                    })
                })
                .collect();
            unsaved += page.len() as u64;
            at.filed = read.scanned_to;
            if !entries.is_empty() || unsaved >= SAVE_EVERY_EVENTS {
                self.store
                    .index(self.name, K::FORMAT, at.filed, entries)
                    .await?;
                at.saved = at.filed;
                unsaved = 0;
            }
            crate::measure_lag(self.name, &page);
            *guard = Some(at);
            if page.len() < PAGE {
                break;
            }
        }
        Ok(at.filed)
    }

    /// Saves the position filed as the index's checkpoint, if it moved past the saved
    /// one without an entry (at a stop: the next start reads less).
    pub async fn save(&self) -> Result<bool, Error> {
        let mut guard = self.at.lock().await;
        let Some(at) = guard.as_mut().filter(|at| at.filed > at.saved) else {
            return Ok(false);
        };
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

    /// Follows the log in the background: files what this process appends as it is
    /// appended, and other processes' appends every `poll`. Stop it by aborting the
    /// handle (every entry filed is already saved; [`Indexed::save`] saves how far it
    /// read past the last).
    pub fn follow(self: &Arc<Self>, poll: Duration) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut appended = this.log.appended();
            loop {
                if let Err(e) = this.catch_up().await {
                    tracing::warn!(index = this.name, error = %e, "index catch-up failed");
                }
                tokio::select! {
                    changed = appended.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        })
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
