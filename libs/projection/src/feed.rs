//! One read of the log for every projection and index of a process.
//!
//! Each follower could read its own events (`EventLog::read_of`), but then a rebuild
//! scans the log once per follower: eight times for the all-in-one, most of a rebuild's
//! time. A [`Feed`] reads the log once, page after page from where the furthest-behind
//! follower stands, and hands each page to every follower, which applies the events it
//! reads past its own position: each follower in a task of its own, a few pages behind
//! the read at most.
//!
//! A follower whose events fail to apply leaves the shared read (so that it does not
//! make every round read again from where it stopped) and catches up alone, by its own
//! read, in the background and on its next query; once it has, it is fed again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use caseline_eventlog::{Error, EventLog, Position, RecordedEvent};
use tokio::task::JoinHandle;

use crate::{CHECKPOINT_SHARE, Checkpointed};

/// Events read per page.
const PAGE: usize = 512;

/// Pages a follower may be behind the read (each is shared by every follower).
const QUEUED: usize = 4;

/// A page for a follower: the events after a position, up to another, and whether it
/// was the last the log held.
type Page = (Position, Arc<Vec<RecordedEvent>>, Position, bool);

/// A projection or index fed by a [`Feed`].
#[async_trait::async_trait]
pub(crate) trait Follower: Checkpointed {
    /// The last position it applied (its checkpoint is loaded on the first call).
    async fn position(&self) -> Result<Position, Error>;
    /// Applies what it reads of `page`: the log's events after `from`, up to `to`
    /// (`at_head`: the last the log held when read). Returns whether it now stands at
    /// `to`; not if it stood before `from` (it has events to read first, alone).
    async fn feed(
        &self,
        from: Position,
        page: &[RecordedEvent],
        to: Position,
        at_head: bool,
    ) -> Result<bool, Error>;
    /// Catches up by its own read.
    async fn catch_up_alone(&self) -> Result<(), Error>;
}

/// Followers of one log that read it together.
pub struct Feed {
    log: Arc<dyn EventLog>,
    followers: Mutex<Vec<Arc<dyn Follower>>>,
    /// One round at a time; holds the names of the followers that left the shared read.
    round: tokio::sync::Mutex<HashSet<&'static str>>,
    /// Whether rounds may run: not before every follower is added (a follower added
    /// after a round would read the whole log again in a round of its own).
    open: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("followers", &self.followers().len())
            .finish_non_exhaustive()
    }
}

impl Feed {
    pub fn new(log: Arc<dyn EventLog>) -> Arc<Self> {
        Arc::new(Self {
            log,
            followers: Mutex::new(Vec::new()),
            round: tokio::sync::Mutex::new(HashSet::new()),
            open: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Lets rounds run, once every follower is added ([`Feed::follow`] does): until
    /// then a query waits for it.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Makes a follower fed by this feed (`make` gets the log and the feed to keep)
    /// and adds it to the shared read.
    pub(crate) fn adopt<T: Follower + 'static>(
        self: &Arc<Self>,
        make: impl FnOnce(Arc<dyn EventLog>, Weak<Feed>) -> Arc<T>,
    ) -> Arc<T> {
        let follower = make(Arc::clone(&self.log), Arc::downgrade(self));
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&follower) as Arc<dyn Follower>);
        follower
    }

    fn followers(&self) -> Vec<Arc<dyn Follower>> {
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Feeds every follower what the log holds now; returns the position the round
    /// reached (every follower that has not left the shared read stands there), or
    /// `None` if no follower is in it.
    pub async fn catch_up(&self) -> Result<Option<Position>, Error> {
        // The sender lives as long as the feed: waiting cannot fail.
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        let mut left = self.round.lock().await;
        let followers = self.followers();
        let mut from: Option<Position> = None;
        for follower in &followers {
            if left.contains(follower.name()) {
                continue;
            }
            match follower.position().await {
                Ok(position) => from = Some(from.map_or(position, |f| f.min(position))),
                Err(e) => {
                    tracing::warn!(projection = follower.name(), error = %e, "projection does not start");
                    left.insert(follower.name());
                }
            }
        }
        let Some(mut from) = from else {
            return Ok(None);
        };
        let first = self.log.read_all(from, PAGE).await?;
        if first.is_empty() {
            // Every follower in the shared read stands at the head.
            return Ok(Some(from));
        }
        let mut first = Some(first);
        // Each follower takes the pages in a task of its own, up to `QUEUED` pages
        // behind the read: the followers work side by side and the slowest one sets
        // the pace, with a bounded number of pages held.
        let mut queues = Vec::new();
        let mut feeding = tokio::task::JoinSet::new();
        for (i, follower) in followers.iter().enumerate() {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Page>(QUEUED);
            let follower = Arc::clone(follower);
            feeding.spawn(async move {
                let mut fed = Ok(false);
                while let Some((from, page, to, at_head)) = rx.recv().await {
                    fed = follower.feed(from, &page, to, at_head).await;
                    if !matches!(fed, Ok(true)) {
                        break;
                    }
                }
                (i, fed)
            });
            queues.push(tx);
        }
        let read = async {
            loop {
                let page = match first.take() {
                    Some(page) => Arc::new(page),
                    None => Arc::new(self.log.read_all(from, PAGE).await?),
                };
                let to = page.last().map_or(from, |e| e.position);
                let at_head = page.len() < PAGE;
                for queue in &queues {
                    // A follower that stopped takes no more: nothing to do here.
                    let _ = queue.send((from, Arc::clone(&page), to, at_head)).await;
                }
                from = to;
                if at_head {
                    return Ok::<_, Error>(to);
                }
            }
        };
        let reached = read.await;
        drop(queues);
        while let Some(done) = feeding.join_next().await {
            let (i, fed) =
                done.map_err(|e| Error::Unavailable(format!("a projection's task ended: {e}")))?;
            let name = followers[i].name();
            match fed {
                Ok(true) => {
                    left.remove(name);
                }
                Ok(false) => {}
                Err(e) => {
                    if left.insert(name) {
                        tracing::warn!(projection = name, error = %e, "projection stopped; it catches up alone");
                    }
                }
            }
        }
        reached.map(Some)
    }

    /// Follows the log in the background: a round when this process appends, or every
    /// `poll` for other processes' appends; then the followers that left the shared read
    /// catch up alone, and each follower saves its checkpoint at most every
    /// `save_every`, and never more often than keeps saving within [`CHECKPOINT_SHARE`]
    /// of the time. Call it once every follower is added: it opens the feed. Stop it by
    /// aborting the handle; save the checkpoints after.
    pub fn follow(self: &Arc<Self>, poll: Duration, save_every: Duration) -> JoinHandle<()> {
        self.open();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut appended = this.log.appended();
            // Per follower (they are only ever added): the last save, and the wait.
            let mut saves: Vec<(tokio::time::Instant, Duration)> = Vec::new();
            loop {
                if let Err(e) = this.catch_up().await {
                    tracing::warn!(error = %e, "projections' catch-up failed");
                }
                let left = this.round.lock().await.clone();
                let followers = this.followers();
                for follower in followers.iter().filter(|f| left.contains(f.name())) {
                    if let Err(e) = follower.catch_up_alone().await {
                        tracing::warn!(projection = follower.name(), error = %e, "projection catch-up failed");
                    }
                }
                saves.resize(followers.len(), (tokio::time::Instant::now(), save_every));
                for (follower, (last_save, save_after)) in followers.iter().zip(&mut saves) {
                    if last_save.elapsed() < *save_after {
                        continue;
                    }
                    let saving = tokio::time::Instant::now();
                    if let Err(e) = follower.checkpoint().await {
                        tracing::warn!(projection = follower.name(), error = %e, "checkpoint not saved");
                    }
                    *last_save = tokio::time::Instant::now();
                    *save_after = save_every.max(saving.elapsed().mul_f64(1.0 / CHECKPOINT_SHARE));
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
}
