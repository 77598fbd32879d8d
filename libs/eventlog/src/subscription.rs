//! Catch-up subscriptions: read the log from a checkpoint, then follow it live.
//!
//! One implementation serves every backend, built on [`EventLog::read_all`] (which never
//! skips) and the backend's commit signal. Delivery is at-least-once across restarts
//! (a consumer resumes from its own checkpoint) and exactly in global order within one
//! subscription.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, EventLog, Position, RecordedEvent};

const PAGE: usize = 512;
const BUFFER: usize = 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A live feed of the log after a checkpoint. Dropping it stops the feed.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Result<RecordedEvent, Error>>,
    task: JoinHandle<()>,
}

impl Subscription {
    /// The next event in global order; waits for one to be appended. `Some(Err(_))` is
    /// final (the log was closed or holds data it cannot decode); the feed ends after it.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, Error>> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Wakes the subscriptions of this process: the log now holds events up to `position`.
/// Appends may finish out of order; the signal only moves forwards.
pub(crate) fn announce(signal: &tokio::sync::watch::Sender<Position>, position: Position) {
    signal.send_if_modified(|p| {
        let newer = position > *p;
        if newer {
            *p = position;
        }
        newer
    });
}

/// Brings a projection up to date: applies, in global order, every event stored after
/// `*after`, moving `*after` past each one applied. A projection that calls it before
/// each query answers with everything committed before the query (see
/// [`EventLog::read_all`]). An error from `apply` stops it at that event.
pub async fn catch_up<E: From<Error>>(
    log: &dyn EventLog,
    after: &mut Position,
    mut apply: impl FnMut(&RecordedEvent) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        let page = log.read_all(*after, PAGE).await?;
        for event in &page {
            apply(event)?;
            *after = event.position;
        }
        if page.len() < PAGE {
            return Ok(());
        }
    }
}

/// Follows `log` from just after `after`: first what is stored, then what is appended.
pub fn subscribe(log: Arc<dyn EventLog>, after: Position) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    let task = tokio::spawn(follow(log, after, tx));
    Subscription { rx, task }
}

async fn follow(
    log: Arc<dyn EventLog>,
    mut cursor: Position,
    tx: mpsc::Sender<Result<RecordedEvent, Error>>,
) {
    let mut signal = log.appended();
    let mut backoff = Duration::from_millis(50);
    loop {
        // Mark the signal seen before reading, so a commit during the read wakes us.
        signal.borrow_and_update();
        match log.read_all(cursor, PAGE).await {
            Ok(page) => {
                backoff = Duration::from_millis(50);
                let full = page.len() == PAGE;
                for event in page {
                    cursor = event.position;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
            }
            Err(Error::Unavailable(reason)) => {
                tracing::warn!(%reason, retry_in_ms = backoff.as_millis() as u64, "subscription read failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tx.closed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        tokio::select! {
            changed = signal.changed() => {
                if changed.is_err() {
                    // The log dropped its signal: it is closing. The next read says so.
                    tokio::time::sleep(log.poll_interval()).await;
                }
            }
            _ = tokio::time::sleep(log.poll_interval()) => {}
            _ = tx.closed() => return,
        }
    }
}
