//! Commands on one stream take turns, and a command that still loses a race (to another
//! process appending to the same stream) decides again for as long as its budget allows.
//!
//! A command without `expected_version` applies to the version the server read; two
//! commands racing on one stream must therefore never turn into ABORTED for the caller.
//! Within a process they cannot race at all: each holds its stream's [`Turn`] from the
//! load to the append. Between processes (several instances of a service, or a referral
//! accepted in one service joining a case another service writes) the unique version in
//! the log catches the race, and the loser decides again on the new state after a short,
//! jittered pause ([`Retry`]), until [`RACE_BUDGET`] has passed.
//!
//! Bounded: the table of turns holds one entry per stream that a command holds or waits
//! for, and an entry leaves with the last command holding or awaiting it (finished or
//! cancelled), so it never holds more entries than there are commands in flight.
//!
//! A command takes one turn at a time: whatever it does on another stream (the other
//! side of a link, a contact that became a case) it does before or after its turn, never
//! within it, so turns cannot deadlock.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use caseline_eventlog::{StreamName, Uuid};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// How long a command keeps deciding again after losing races to other processes.
pub const RACE_BUDGET: Duration = Duration::from_secs(10);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// One stream's entry: its lock, how many commands hold or wait for it, and the version
/// the last of them appended up to.
#[derive(Debug, Default)]
struct Entry {
    lock: Arc<AsyncMutex<()>>,
    interested: usize,
    appended: Option<u64>,
}

type Table = Mutex<HashMap<String, Entry>>;

/// Every process has one table: in the all-in-one, every service writing a case's
/// stream (cases, and referrals joining its team) takes the same turn.
static TURNS: LazyLock<Table> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The right to load, decide and append on one stream, in this process. Dropping it
/// hands the stream to the next command waiting.
#[derive(Debug)]
pub struct Turn {
    stream: String,
    guard: Option<OwnedMutexGuard<()>>,
}

/// Waits for `stream`'s turn.
pub async fn turn(stream: &StreamName) -> Turn {
    let slot = {
        let mut table = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        let entry = table.entry(stream.as_str().to_owned()).or_default();
        entry.interested += 1;
        Arc::clone(&entry.lock)
    };
    // Counted from here: if the wait is cancelled (the caller went away), dropping the
    // turn still gives up its interest in the stream.
    let mut turn = Turn {
        stream: stream.as_str().to_owned(),
        guard: None,
    };
    turn.guard = Some(slot.lock_owned().await);
    turn
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut table = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = table.get_mut(&self.stream) {
            entry.interested -= 1;
            if entry.interested == 0 {
                table.remove(&self.stream);
            }
        }
    }
}

impl Turn {
    /// Whether a state of the stream read at `version`, before this turn began, may
    /// still be current: no command of this process appended past it since anyone
    /// began waiting for the stream. (Another process may have: the append's version
    /// check catches that, and the command decides again.)
    pub fn still_current(&self, version: Option<u64>) -> bool {
        let table = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        table
            .get(&self.stream)
            .and_then(|entry| entry.appended)
            .is_none_or(|appended| version.is_some_and(|v| v >= appended))
    }

    /// Notes that this command appended the stream up to `version`.
    pub fn appended(&self, version: u64) {
        let mut table = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = table.get_mut(&self.stream) {
            entry.appended = Some(entry.appended.map_or(version, |v| v.max(version)));
        }
    }
}

/// Streams with a turn held or awaited now, in this process.
pub fn streams_in_turn() -> usize {
    TURNS.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Decides whether a command that lost a race tries again, and pauses before it does.
#[derive(Debug)]
pub struct Retry {
    started: Instant,
    tries: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self::new()
    }
}

impl Retry {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            tries: 0,
        }
    }

    /// After a lost race: `true` once a pause (growing from 1 ms up to 50 ms, jittered so
    /// that the losers of one race do not meet again) has passed, `false` when the budget
    /// is spent.
    pub async fn again(&mut self) -> bool {
        self.tries += 1;
        if self.started.elapsed() >= RACE_BUDGET {
            tracing::warn!(
                tries = self.tries,
                "command lost every race within its budget"
            );
            return false;
        }
        let ceiling = Duration::from_millis(1u64 << self.tries.min(6)).min(MAX_PAUSE);
        let jitter = u64::from(Uuid::new_v4().as_bytes()[0]);
        let pause = ceiling.mul_f64((jitter as f64 + 1.0) / 256.0);
        tokio::time::sleep(pause).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::turn;
    use caseline_eventlog::{StreamName, Uuid};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A command that gives up waiting (its caller went away) leaves nothing behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_wait_leaves_no_entry() {
        let stream = StreamName::for_id("case", Uuid::new_v4()).expect("a stream name");
        let held = turn(&stream).await;
        let waiting = {
            let stream = stream.clone();
            tokio::spawn(async move {
                let _turn = turn(&stream).await;
            })
        };
        // Wait until the waiter counts, then cancel it.
        while super::TURNS
            .lock()
            .expect("table")
            .get(stream.as_str())
            .is_none_or(|entry| entry.interested < 2)
        {
            tokio::task::yield_now().await;
        }
        waiting.abort();
        assert!(waiting.await.expect_err("cancelled").is_cancelled());
        drop(held);
        let table = super::TURNS.lock().expect("table");
        assert!(
            !table.contains_key(stream.as_str()),
            "the entry left with both"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_command_at_a_time_per_stream_and_the_table_empties() {
        let stream = StreamName::for_id("case", Uuid::new_v4()).expect("a stream name");
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (stream, inside, most) = (stream.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let _turn = turn(&stream).await;
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two commands held one stream"
        );
        // Other tests of this process may hold turns of their own streams, never this one.
        let table = super::TURNS.lock().expect("table");
        assert!(
            !table.contains_key(stream.as_str()),
            "the entry left with its last holder"
        );
    }
}
