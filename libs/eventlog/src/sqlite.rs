//! The embedded event log: one SQLite file in WAL mode.
//!
//! Durability: `synchronous=FULL`, so an acknowledged append survives power loss.
//! Throughput: one writer thread owns the only write connection. It takes every append
//! waiting in its channel, applies them in one `BEGIN IMMEDIATE` transaction (each under
//! its own savepoint, so one refused append does not disturb the others) and commits
//! once: concurrent appenders share one fsync (group commit). Readers use their own
//! connections, which WAL lets run beside the writer.
//!
//! The `events` table refuses UPDATE and DELETE through triggers; global position is an
//! `AUTOINCREMENT` key, so it is never reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::chain::{self, Head};
use crate::envelope::{MAX_VERSION, from_micros, now_micros, validate_batch};
use crate::idempotency::{StoredCopy, resolve_retry};
use crate::subscription::announce;
use crate::{
    AppendResult, Direction, Error, EventLog, ExpectedVersion, Interest, Metadata, NewEvent,
    Position, ReadOf, RecordedEvent, StreamName, clamp_limit,
};

/// Most appends committed in one transaction.
const MAX_GROUP: usize = 512;
/// Under concurrent load, how long the writer waits for appenders that were just
/// answered to come back before it commits: sharing an fsync (about a millisecond) is
/// worth far more than this wait. It stops earlier once as many appends are waiting as
/// were committed last time, or the queue stays quiet for [`QUIET`].
const LINGER: Duration = Duration::from_micros(400);
const QUIET: Duration = Duration::from_micros(60);
/// Read-only connections at most: reads beyond these wait for one. Two cores gain
/// nothing from more, and each connection holds a page cache of its own.
pub const MAX_READERS: usize = 8;
/// Each read-only connection's page cache, in KiB (SQLite's own default size, stated so
/// the readers' memory is bounded: [`MAX_READERS`] × this). The operating system's file
/// cache serves the rest.
const READER_CACHE_KIB: usize = 2048;
/// Stream heads remembered by the writer; beyond this the cache starts afresh.
const HEAD_CACHE: usize = 65_536;
/// WAL pages after which the writer copies the WAL into the database and starts it
/// again (SQLite's default is 1 000). Fewer, larger checkpoints take 0.61 to 0.70–0.75 ×
/// the raw baseline under 64 appenders; the WAL stays within 10 000 pages of 4 KiB,
/// 40 MiB, plus the group being committed.
const WAL_PAGES_AT_MOST: u32 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB    NOT NULL,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 0),
    event_type     TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    case_id        BLOB,
    actor          TEXT    NOT NULL,
    actor_role     TEXT    NOT NULL,
    agency         TEXT    NOT NULL,
    request_id     BLOB,
    correlation_id BLOB,
    causation_id   BLOB,
    traceparent    TEXT,
    call           TEXT,
    recorded_at    INTEGER NOT NULL,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS events_by_case ON events (case_id, position) WHERE case_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_of_case ON events (case_id, position)
    WHERE case_id IS NOT NULL AND stream NOT LIKE 'access-%';
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'caseline events are immutable'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'caseline events are immutable'); END;
";

const COLUMNS: &str = "position, event_id, stream, version, event_type, data, case_id, actor, \
     actor_role, agency, request_id, correlation_id, causation_id, traceparent, call, \
     recorded_at, prev_hash, hash";

const INSERT: &str = "INSERT INTO events (event_id, stream, version, event_type, data, \
     case_id, actor, actor_role, agency, request_id, correlation_id, causation_id, \
     traceparent, call, recorded_at, prev_hash, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// The embedded SQLite event log.
#[derive(Debug)]
pub struct SqliteEventLog {
    writer: std_mpsc::Sender<WriterCommand>,
    readers: Arc<ReaderPool>,
    appended: watch::Receiver<Position>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct AppendRequest {
    stream: StreamName,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<AppendResult, Error>>,
}

enum WriterCommand {
    Append(AppendRequest),
    Shutdown,
}

impl std::fmt::Debug for WriterCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Append(_) => "Append",
            Self::Shutdown => "Shutdown",
        })
    }
}

impl SqliteEventLog {
    /// Opens (creating if needed) the log in the file at `path`. One process at a time:
    /// a second open of the same file while the first is live is refused.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (writer, rx) = std_mpsc::channel();
        let (signal_tx, appended) = watch::channel(Position::START);
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("caseline-sqlite-writer".into())
            .spawn(move || match Writer::open(&thread_path) {
                Ok(writer) => {
                    let _ = ready_tx.send(Ok(()));
                    writer.run(rx, signal_tx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Unavailable(format!("cannot start sqlite writer: {e}")))?;
        ready_rx
            .await
            .map_err(|_| Error::Unavailable("sqlite writer stopped while opening".into()))??;
        Ok(Self {
            writer,
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
                closed: AtomicBool::new(false),
            }),
            appended,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The append itself, handed to the writer; [`EventLog::append`] measures it.
    async fn append_now(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        validate_batch(expected, &events)?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        self.writer
            .send(WriterCommand::Append(request))
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        if self.readers.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let pool = Arc::clone(&self.readers);
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with(f)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("sqlite reader task failed: {e}")))?
    }
}

/// The only write connection, owned by the writer thread.
struct Writer {
    conn: Connection,
    /// Stream heads as this writer committed them. The lock file keeps other processes
    /// out, so they are exact unless something bypassed it; `apply` treats a surprise
    /// against them as a stale head and decides again from storage.
    heads: HashMap<String, Head>,
    /// Event ids are unique across the whole log, not only within each stream: a log
    /// made by an earlier build, whose table keeps that index (SQLite cannot drop a
    /// column's constraint). A retry is then looked up by id alone.
    global_ids: bool,
    /// Held for the writer's lifetime; the OS releases it if the process dies.
    _lock: std::fs::File,
}

/// What deciding one append came to.
enum Outcome {
    Applied(Applied),
    /// The remembered head was not the stored one: decide again from storage.
    StaleHead,
}

/// How one append in a group ended.
enum Applied {
    /// Stored; the stream's new head.
    Stored(AppendResult, Head),
    /// A retry of an append stored before: nothing stored now.
    Retry(AppendResult),
}

impl Writer {
    fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::Unavailable(format!("cannot open the log's lock file: {e}")))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => Error::Unavailable(format!(
                "event log {} is in use by another process",
                path.display()
            )),
            std::fs::TryLockError::Error(e) => {
                Error::Unavailable(format!("cannot lock the event log: {e}"))
            }
        })?;

        let conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Unavailable(format!(
                "sqlite refused WAL mode (got {mode})"
            )));
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; \
             PRAGMA wal_autocheckpoint={WAL_PAGES_AT_MOST};"
        ))?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))?;
        check_schema(&conn, path)?;
        stable_plans(&conn)?;
        let global_ids: bool = conn.query_row(GLOBAL_IDS, [], |r| r.get(0))?;
        if !global_ids {
            // Not beside an earlier build's index of ids across the log, which already
            // finds a stream's ids: a second index would only slow every append.
            conn.execute_batch(
                "CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream_event_id \
                 ON events (stream, event_id);",
            )?;
        }
        Ok(Self {
            conn,
            heads: HashMap::new(),
            global_ids,
            _lock: lock,
        })
    }

    fn run(mut self, rx: std_mpsc::Receiver<WriterCommand>, signal: watch::Sender<Position>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut last_group = 0;
        let mut shutdown = false;
        while !shutdown {
            let Ok(first) = rx.recv() else { break };
            let take = |command, group: &mut Vec<AppendRequest>| match command {
                WriterCommand::Append(req) => {
                    group.push(req);
                    true
                }
                WriterCommand::Shutdown => false,
            };
            shutdown = !take(first, &mut group);
            while !shutdown && group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(command) => shutdown = !take(command, &mut group),
                    Err(_) => break,
                }
            }
            // Concurrent load: let the appenders answered last round rejoin this group,
            // and go as soon as they have.
            if last_group > 1 {
                let deadline = Instant::now() + LINGER;
                while !shutdown && group.len() < last_group.min(MAX_GROUP) {
                    let wait = QUIET.min(deadline.saturating_duration_since(Instant::now()));
                    match rx.recv_timeout(wait) {
                        Ok(command) => shutdown = !take(command, &mut group),
                        Err(_) => break,
                    }
                }
            }
            last_group = group.len();
            if group.is_empty() {
                continue;
            }
            let started = Instant::now();
            let results = self.commit_group(&group);
            caseline_telemetry::metrics::group_committed(group.len());
            tracing::debug!(
                appends = group.len(),
                micros = started.elapsed().as_micros() as u64,
                "group committed"
            );
            let last = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|r| r.last_position)
                .max();
            for (req, result) in group.drain(..).zip(results) {
                let _ = req.reply.send(result);
            }
            if let Some(last) = last {
                announce(&signal, last);
            }
        }
        // Appends that raced with close still get an answer.
        drop(signal);
        while let Ok(command) = rx.try_recv() {
            if let WriterCommand::Append(req) = command {
                let _ = req.reply.send(Err(Error::Closed));
            }
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "closing sqlite writer connection failed");
        }
    }

    fn exec(&self, sql: &str) -> Result<(), Error> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// Applies a group of appends in one transaction; each gets its own result. Every
    /// append runs under a savepoint, so one refused append leaves the others intact.
    fn commit_group(&mut self, group: &[AppendRequest]) -> Vec<Result<AppendResult, Error>> {
        let fail_all = |e: Error| -> Vec<Result<AppendResult, Error>> {
            let reason = e.to_string();
            group
                .iter()
                .map(|_| Err(Error::Unavailable(reason.clone())))
                .collect()
        };
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            return fail_all(e);
        }
        let mut new_heads: HashMap<&str, Head> = HashMap::new();
        let mut results = Vec::with_capacity(group.len());
        for req in group {
            let stream = req.stream.as_str();
            let mut attempt = self.in_savepoint(|w| w.apply(req, &new_heads));
            if matches!(attempt, Ok(Ok(Outcome::StaleHead))) {
                // Decide again from the stored head, which is exact inside this transaction.
                self.heads.remove(stream);
                attempt = self.in_savepoint(|w| w.apply(req, &new_heads));
            }
            let outcome = match attempt {
                Ok(outcome) if !self.conn.is_autocommit() => outcome,
                // The savepoint machinery failed, or SQLite rolled the whole transaction
                // back (I/O error, disk full): the appends before this one may be gone
                // or half kept, so none of the group may be committed or acknowledged.
                _ => {
                    let _ = self.exec("ROLLBACK");
                    self.heads.clear();
                    return fail_all(Error::Unavailable(
                        "sqlite transaction failed; nothing of this group was stored".into(),
                    ));
                }
            };
            results.push(match outcome {
                Ok(Outcome::Applied(Applied::Stored(r, head))) => {
                    new_heads.insert(stream, head);
                    Ok(r)
                }
                Ok(Outcome::Applied(Applied::Retry(r))) => Ok(r),
                Ok(Outcome::StaleHead) => Err(Error::Unavailable(format!(
                    "stream {stream} changed outside this writer"
                ))),
                Err(e) => {
                    self.heads.remove(stream);
                    Err(e)
                }
            });
        }
        if let Err(e) = self.exec("COMMIT") {
            let _ = self.exec("ROLLBACK");
            self.heads.clear();
            return fail_all(e);
        }
        if self.heads.len() + new_heads.len() > HEAD_CACHE {
            self.heads.clear();
        }
        for (stream, head) in new_heads {
            self.heads.insert(stream.to_owned(), head);
        }
        results
    }

    /// Runs `f` under the `append` savepoint: kept if it stored something, undone
    /// otherwise. The outer error is the savepoint machinery itself failing.
    fn in_savepoint(
        &self,
        f: impl FnOnce(&Self) -> Result<Outcome, Error>,
    ) -> Result<Result<Outcome, Error>, Error> {
        self.exec("SAVEPOINT append")?;
        let outcome = f(self);
        if !matches!(outcome, Ok(Outcome::Applied(_))) {
            self.exec("ROLLBACK TO append")?;
        }
        self.exec("RELEASE append")?;
        Ok(outcome)
    }

    /// One append inside the group's transaction. `pending` holds heads written earlier
    /// in this transaction (exact); `self.heads` those of earlier commits (exact unless
    /// something bypassed the lock, which is why a surprise there means `StaleHead`).
    fn apply(&self, req: &AppendRequest, pending: &HashMap<&str, Head>) -> Result<Outcome, Error> {
        let stream = req.stream.as_str();
        let (head, exact) = match (pending.get(stream), self.heads.get(stream)) {
            (Some(head), _) => (Some(*head), true),
            (None, Some(head)) => (Some(*head), false),
            (None, None) => (self.read_head(stream)?, true),
        };
        let actual = head.map(|h| h.version);
        if !req.expected.accepts(actual) {
            // A retry of a stored append arrives with the version it expected then.
            if let Some(original) = self.find_retry(req)? {
                return Ok(Outcome::Applied(Applied::Retry(original)));
            }
            if !exact {
                return Ok(Outcome::StaleHead);
            }
            return Err(Error::WrongExpectedVersion {
                stream: req.stream.clone(),
                expected: req.expected,
                actual,
            });
        }
        match self.insert(req, head) {
            Ok(stored) => Ok(Outcome::Applied(stored)),
            Err(InsertError::Log(e)) => Err(e),
            Err(InsertError::Duplicate) => match self.find_retry(req)? {
                Some(original) => Ok(Outcome::Applied(Applied::Retry(original))),
                // Only (stream, version) can clash then: the head was not the stored one.
                None => Ok(Outcome::StaleHead),
            },
        }
    }

    fn read_head(&self, stream: &str) -> Result<Option<Head>, Error> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT version, hash FROM events WHERE stream = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(version, hash)| {
            Ok(Head {
                version: version as u64,
                hash: chain::stored_hash(hash, format_args!("head of {stream}"))?,
            })
        })
        .transpose()
    }

    fn insert(&self, req: &AppendRequest, head: Option<Head>) -> Result<Applied, InsertError> {
        let recorded_at = now_micros();
        let links = chain::link(&req.stream, head, &req.events, recorded_at)?;
        let mut insert = self.conn.prepare_cached(INSERT).map_err(Error::from)?;
        let mut last_position = Position::START;
        for (event, link) in req.events.iter().zip(&links) {
            let m = &event.metadata;
            insert
                .execute(params![
                    event.event_id.as_bytes().as_slice(),
                    req.stream.as_str(),
                    link.version as i64,
                    event.event_type,
                    event.data,
                    m.case_id.as_ref().map(|u| u.as_bytes().as_slice()),
                    m.actor,
                    m.actor_role,
                    m.agency,
                    m.request_id.as_ref().map(|u| u.as_bytes().as_slice()),
                    m.correlation_id.as_ref().map(|u| u.as_bytes().as_slice()),
                    m.causation_id.as_ref().map(|u| u.as_bytes().as_slice()),
                    m.traceparent,
                    m.call,
                    recorded_at,
                    link.prev_hash.as_slice(),
                    link.hash.as_slice(),
                ])
                .map_err(InsertError::from)?;
            last_position = Position::from_parts(0, self.conn.last_insert_rowid() as u64);
        }
        let (first, new_head) = chain::span(&links);
        Ok(Applied::Stored(
            AppendResult {
                first_version: first,
                last_version: new_head.version,
                last_position,
            },
            new_head,
        ))
    }

    /// If the batch's event ids are already stored, the original result (a retry), or a
    /// conflict when they are stored for something else.
    fn find_retry(&self, req: &AppendRequest) -> Result<Option<AppendResult>, Error> {
        const ANYWHERE: &str = "SELECT stream, version, event_type, data, position, actor, \
             agency, case_id FROM events WHERE event_id = ?1";
        const IN_STREAM: &str = "SELECT stream, version, event_type, data, position, actor, \
             agency, case_id FROM events WHERE event_id = ?1 AND stream = ?2";
        let mut lookup =
            self.conn
                .prepare_cached(if self.global_ids { ANYWHERE } else { IN_STREAM })?;
        let mut stored = Vec::with_capacity(req.events.len());
        for event in &req.events {
            let id = event.event_id.as_bytes().as_slice();
            let found = if self.global_ids {
                lookup.query_row(params![id], stored_copy)
            } else {
                lookup.query_row(params![id, req.stream.as_str()], stored_copy)
            };
            stored.push(found.optional()?);
        }
        resolve_retry(&req.stream, &req.events, &stored)
    }
}

/// A stored event as a retry is compared with it (the columns of `find_retry`).
fn stored_copy(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCopy> {
    let case_id: Option<Vec<u8>> = r.get(7)?;
    Ok(StoredCopy {
        stream: r.get(0)?,
        version: r.get::<_, i64>(1)? as u64,
        event_type: r.get(2)?,
        data: r.get(3)?,
        position: Position::from_parts(0, r.get::<_, i64>(4)? as u64),
        actor: r.get(5)?,
        agency: r.get(6)?,
        case_id: case_id.and_then(|b| Uuid::from_slice(&b).ok()),
    })
}

/// Whether the events table has a unique index of event ids alone (made by an earlier
/// build, as the column's own constraint).
const GLOBAL_IDS: &str = "SELECT EXISTS (SELECT 1 FROM pragma_index_list('events') AS i \
     WHERE i.\"unique\" AND (SELECT group_concat(name) FROM pragma_index_info(i.name)) \
     = 'event_id')";

/// `CREATE TABLE IF NOT EXISTS` leaves a table made by an older build as it was: refuse
/// it by name rather than fail on every append and read.
fn check_schema(conn: &Connection, path: &Path) -> Result<(), Error> {
    let has_call: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'call')",
        [],
        |r| r.get(0),
    )?;
    if has_call {
        Ok(())
    } else {
        Err(Error::Unavailable(format!(
            "event log {} was created by an older Caseline: its events table has no \
             `call` column; this build does not migrate it",
            path.display()
        )))
    }
}

/// An insert either clashed with a stored row (a retry, or a conflict to explain) or
/// failed for another reason.
enum InsertError {
    Duplicate,
    Log(Error),
}

impl From<Error> for InsertError {
    fn from(e: Error) -> Self {
        Self::Log(e)
    }
}

impl From<rusqlite::Error> for InsertError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Self::Duplicate
            }
            _ => Self::Log(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl EventLog for SqliteEventLog {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        crate::measured("sqlite", self.append_now(stream, expected, events)).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let stream = stream.as_str().to_owned();
        let limit = clamp_limit(limit) as i64;
        self.read(move |conn| {
            let (sql, from) = match direction {
                Direction::Forwards => (
                    format!("SELECT {COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version ASC LIMIT ?3"),
                    from.unwrap_or(0),
                ),
                Direction::Backwards => (
                    format!("SELECT {COLUMNS} FROM events WHERE stream = ?1 AND version <= ?2 ORDER BY version DESC LIMIT ?3"),
                    from.unwrap_or(MAX_VERSION),
                ),
            };
            let from = from.min(MAX_VERSION) as i64;
            collect(conn, &sql, params![stream, from, limit])
        })
        .await
    }

    async fn find_event(
        &self,
        stream: &StreamName,
        event_id: Uuid,
    ) -> Result<Option<RecordedEvent>, Error> {
        let stream = stream.as_str().to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE event_id = ?1 AND stream = ?2");
            Ok(
                collect(conn, &sql, params![event_id.as_bytes().as_slice(), stream])?
                    .into_iter()
                    .next(),
            )
        })
        .await
    }

    async fn read_case(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let limit = clamp_limit(limit) as i64;
        let after = sqlite_position(after)?;
        self.read(move |conn| {
            collect(
                conn,
                &format!("SELECT {COLUMNS} FROM events WHERE case_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3"),
                params![case_id.as_bytes().as_slice(), after, limit],
            )
        })
        .await
    }

    async fn read_case_events(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let limit = clamp_limit(limit) as i64;
        let after = sqlite_position(after)?;
        self.read(move |conn| {
            // The condition repeats the partial index's, so SQLite uses it.
            collect(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM events INDEXED BY events_of_case \
                     WHERE case_id = ?1 AND position > ?2 \
                       AND case_id IS NOT NULL AND stream NOT LIKE 'access-%' \
                     ORDER BY position LIMIT ?3"
                ),
                params![case_id.as_bytes().as_slice(), after, limit],
            )
        })
        .await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, Error> {
        let limit = clamp_limit(limit) as i64;
        let after = sqlite_position(after)?;
        self.read(move |conn| {
            collect(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
                ),
                params![after, limit],
            )
        })
        .await
    }

    async fn read_of(
        &self,
        interest: &Interest,
        after: Position,
        limit: usize,
    ) -> Result<ReadOf, Error> {
        let limit = clamp_limit(limit);
        if interest.is_everything() {
            let events = self.read_all(after, limit).await?;
            let scanned_to = events.last().map_or(after, |e| e.position);
            return Ok(ReadOf { events, scanned_to });
        }
        let mut values = vec![
            Value::Integer(sqlite_position(after)?),
            Value::Integer(limit as i64),
            // The head, read first: what is committed after it waits for the next read.
            Value::Null,
        ];
        // `+column` keeps SQLite on the range of positions: through the stream index it
        // would read every event of `access-global` ever written to find the new ones.
        let mut conditions = Vec::new();
        for pattern in interest.like_patterns() {
            values.push(Value::Text(pattern));
            conditions.push(format!("+stream LIKE ?{} ESCAPE '\\'", values.len()));
        }
        for stream in interest.streams {
            values.push(Value::Text((*stream).to_owned()));
            conditions.push(format!("+stream = ?{}", values.len()));
        }
        for event_type in interest.types {
            values.push(Value::Text((*event_type).to_owned()));
            conditions.push(format!("+event_type = ?{}", values.len()));
        }
        if conditions.is_empty() {
            conditions.push("0".to_owned());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE position > ?1 AND position <= ?3 AND ({}) \
             ORDER BY position LIMIT ?2",
            conditions.join(" OR ")
        );
        self.read(move |conn| {
            let head: i64 = conn
                .prepare_cached("SELECT coalesce(max(position), 0) FROM events")?
                .query_row([], |r| r.get(0))?;
            values[2] = Value::Integer(head);
            let events = collect(conn, &sql, rusqlite::params_from_iter(values))?;
            let scanned_to = match events.last() {
                Some(last) if events.len() == limit => last.position,
                _ => Position::from_parts(0, head as u64).max(after),
            };
            Ok(ReadOf { events, scanned_to })
        })
        .await
    }

    fn appended(&self) -> watch::Receiver<Position> {
        self.appended.clone()
    }

    fn poll_interval(&self) -> Duration {
        // Only this process writes; the commit signal is enough. The poll is a backstop.
        Duration::from_secs(1)
    }

    async fn close(&self) {
        self.readers.closed.store(true, Ordering::Release);
        self.readers.permits.close();
        let _ = self.writer.send(WriterCommand::Shutdown);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.clear();
        }
    }
}

/// SQLite positions are row ids in the low half; a position from another backend is
/// refused rather than read as "after everything" (a subscriber would wait forever).
fn sqlite_position(p: Position) -> Result<i64, Error> {
    match p.parts() {
        (0, low) => Ok(i64::try_from(low).unwrap_or(i64::MAX)),
        _ => Err(Error::invalid(
            "position",
            "not a position of this event log",
        )),
    }
}

/// One plan per statement whatever its bound values. The bundled SQLite is built with
/// STAT4, which otherwise recompiles a cached statement whenever a value compared
/// with an indexed column changes (every read here binds a position or a version):
/// that recompiling was a fifth of a busy server's CPU. Every SQLite connection a
/// Caseline server opens sets it (the state store's and the key store's too).
pub fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn collect(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        events.push(decode(row)?);
    }
    Ok(events)
}

fn decode(row: &Row<'_>) -> Result<RecordedEvent, Error> {
    let position: i64 = row.get(0)?;
    let corrupt = |reason: &str| Error::Corrupt {
        position: position.to_string(),
        reason: reason.to_owned(),
    };
    let uuid = |i: usize| -> Result<Option<Uuid>, Error> {
        let bytes: Option<Vec<u8>> = row.get(i)?;
        bytes
            .map(|b| Uuid::from_slice(&b).map_err(|_| corrupt("malformed uuid")))
            .transpose()
    };
    let hash = |i: usize| chain::stored_hash(row.get(i)?, position);
    let stream: String = row.get(2)?;
    Ok(RecordedEvent {
        position: Position::from_parts(0, position as u64),
        event_id: uuid(1)?.ok_or_else(|| corrupt("missing event id"))?,
        stream: StreamName::new(stream).map_err(|_| corrupt("malformed stream name"))?,
        version: row.get::<_, i64>(3)? as u64,
        event_type: row.get(4)?,
        data: row.get(5)?,
        metadata: Metadata {
            case_id: uuid(6)?,
            actor: row.get(7)?,
            actor_role: row.get(8)?,
            agency: row.get(9)?,
            request_id: uuid(10)?,
            correlation_id: uuid(11)?,
            causation_id: uuid(12)?,
            traceparent: row.get(13)?,
            call: row.get(14)?,
        },
        recorded_at: from_micros(row.get(15)?),
        prev_hash: hash(16)?,
        hash: hash(17)?,
    })
}

/// Read-only connections, opened on demand and kept for reuse: never more than
/// [`MAX_READERS`], since a read holds one of as many permits while it runs.
#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
    closed: AtomicBool,
}

impl ReaderPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                // Readers never write, even by mistake.
                conn.execute_batch(&format!(
                    "PRAGMA query_only=ON; PRAGMA busy_timeout=5000; \
                     PRAGMA cache_size=-{READER_CACHE_KIB};"
                ))?;
                stable_plans(&conn)?;
                conn
            }
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{MAX_READERS, SqliteEventLog, WAL_PAGES_AT_MOST};
    use crate::{Direction, EventLog, ExpectedVersion, Metadata, NewEvent, StreamName};

    /// However many reads run at once, the log keeps at most [`MAX_READERS`]
    /// connections (each with its page cache).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_a_bounded_pool_of_connections() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(
            SqliteEventLog::open(dir.path().join("events.sqlite"))
                .await
                .expect("opens"),
        );
        let stream = StreamName::for_id("case", uuid::Uuid::new_v4()).expect("a name");
        let event = NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: "caseline.v1.events.TestHappened".into(),
            data: vec![1],
            metadata: Metadata {
                actor: "u".into(),
                actor_role: "r".into(),
                agency: "a".into(),
                ..Metadata::default()
            },
        };
        log.append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("appends");
        let reads: Vec<_> = (0..64)
            .map(|_| {
                let (log, stream) = (Arc::clone(&log), stream.clone());
                tokio::spawn(async move {
                    log.read_stream(&stream, Direction::Forwards, None, 10)
                        .await
                        .map(|e| e.len())
                })
            })
            .collect();
        for read in reads {
            assert_eq!(read.await.expect("joins").expect("reads"), 1);
        }
        let kept = log.readers.idle.lock().expect("the pool").len();
        assert!((1..=MAX_READERS).contains(&kept), "{kept} connections kept");
        log.close().await;
    }

    /// While 96 MiB of events are appended, the WAL never grows past its bound of
    /// [`WAL_PAGES_AT_MOST`] pages (and one group's worth more); it is gone once the log
    /// is closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_within_its_bound_and_goes_at_close() {
        const APPENDERS: usize = 32;
        const EACH: usize = 3_000;
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("events.sqlite");
        let wal = dir.path().join("events.sqlite-wal");
        let log = Arc::new(SqliteEventLog::open(&path).await.expect("opens"));
        let appenders: Vec<_> = (0..APPENDERS)
            .map(|_| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let stream = StreamName::for_id("case", uuid::Uuid::new_v4()).expect("a name");
                    for version in 0..EACH {
                        let event = NewEvent {
                            event_id: uuid::Uuid::new_v4(),
                            event_type: "caseline.v1.events.TestHappened".into(),
                            data: vec![7; 1024],
                            metadata: Metadata {
                                actor: "u".into(),
                                actor_role: "r".into(),
                                agency: "a".into(),
                                ..Metadata::default()
                            },
                        };
                        let expected = match version {
                            0 => ExpectedVersion::NoStream,
                            v => ExpectedVersion::Exact(v as u64 - 1),
                        };
                        log.append(&stream, expected, vec![event])
                            .await
                            .expect("appends");
                    }
                })
            })
            .collect();
        let mut largest = 0;
        let mut appended = log.appended();
        let mut running = appenders;
        while !running.is_empty() {
            // After each commit the writer announces; the WAL is measured then.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), appended.changed()).await;
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            running.retain(|a| !a.is_finished());
        }
        let written = (APPENDERS * EACH * 1024) as u64;
        // A group is at most one event per appender here: a few pages each.
        let bound = (u64::from(WAL_PAGES_AT_MOST) + 8 * APPENDERS as u64) * 4096;
        assert!(
            largest > 0 && largest <= bound && largest < written / 2,
            "the WAL reached {largest} bytes (bound {bound}) for {written} bytes of events"
        );
        log.close().await;
        assert!(
            std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
            "the WAL outlived the log"
        );
    }
}
