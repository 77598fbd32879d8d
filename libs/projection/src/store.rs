//! Where projections keep their checkpoints: a small mutable table beside the log (in
//! the state store, with the data keys), never in the log itself. One row per
//! projection: the position it had applied up to and its state at that position.
//!
//! Several instances of one service share a row. Every instance's state at a position is
//! the same (a projection is a function of the log up to it), so a save only ever moves
//! the row forwards: an instance that is behind never overwrites one that is ahead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use caseline_eventlog::{Error, Position, Uuid};

use crate::index::IndexEntry;
use crate::postings::{self, Run, position_bytes, position_from};
use deadpool_postgres::Pool;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// A projection's state as of `position`, encoded by the projection.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The projection's state format; a snapshot of another format is not used.
    pub format: u32,
    /// The last event applied.
    pub position: Position,
    pub state: Vec<u8>,
}

impl fmt::Debug for Snapshot {
    // The state holds sealed fields and ids: its size is enough for a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("format", &self.format)
            .field("position", &self.position)
            .field("state_bytes", &self.state.len())
            .finish()
    }
}

/// Checkpoints of named projections.
#[async_trait::async_trait]
pub trait CheckpointStore: fmt::Debug + Send + Sync + 'static {
    /// The latest snapshot saved under `name`, if any.
    async fn load(&self, name: &str) -> Result<Option<Snapshot>, Error>;
    /// Saves `snapshot` under `name` unless a snapshot at or past its position (of the
    /// same format) is already there.
    async fn save(&self, name: &str, snapshot: &Snapshot) -> Result<(), Error>;
    /// Adds `entries` to the index `name` and moves its checkpoint (an empty snapshot
    /// of `format`) to `position`, in one transaction. Entries already there are kept.
    async fn index(
        &self,
        name: &str,
        format: u32,
        position: Position,
        entries: Vec<IndexEntry>,
    ) -> Result<(), Error>;
    /// Removes every entry of the index `name`, and its checkpoint.
    async fn clear_index(&self, name: &str) -> Result<(), Error>;
    /// The entries of the index `name` under `key` after `after`, in position order: at
    /// most `limit`.
    async fn find(
        &self,
        name: &str,
        key: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error>;
}

/// Adds the entries of `run` past `after` and past the last one `found` holds. A find
/// that reads runs in several queries may meet, in a later one, a run merged meanwhile
/// with one it already read: what it already holds is not taken twice.
fn take_from(found: &mut Vec<IndexEntry>, run: Run, after: Position) {
    let past = found.last().map_or(after, |e| e.position);
    found.extend(run.entries.into_iter().filter(|e| e.position > past));
}

/// The most runs a find reads from PostgreSQL per query. It asks for one run first and
/// twice as many each query after (each run holds at least one entry it returns, and
/// may hold up to 1 024), so it reads little past what it needs whatever the runs'
/// sizes, and few queries where runs are small.
const RUNS_PER_QUERY: usize = 64;

/// Opens the checkpoint store named by `url`: `sqlite:PATH` or `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn CheckpointStore>, Error> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        Ok(Arc::new(SqliteCheckpoints::open(path).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The parser's message may quote the URL, password included.
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| invalid("state_store", "malformed postgres url"))?;
        let pool = caseline_eventlog::postgres::pool(config, 2)
            .map_err(|e| Error::Unavailable(format!("postgres pool: {e}")))?;
        Ok(Arc::new(PostgresCheckpoints::from_pool(pool).await?))
    } else {
        Err(invalid(
            "state_store",
            "unsupported url: use sqlite:PATH or postgres://…",
        ))
    }
}

fn invalid(field: &'static str, reason: &str) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.to_owned(),
    }
}

/// Positions are stored as zero-padded decimal text, so that text order is position
/// order (a `u128` fits in 39 digits).
fn position_key(position: Position) -> String {
    format!("{:0>39}", position.to_string())
}

fn parse_position(text: &str) -> Result<Position, Error> {
    text.trim_start_matches('0')
        .parse::<Position>()
        .or_else(|e| {
            if text.bytes().all(|b| b == b'0') {
                Ok(Position::START)
            } else {
                Err(e)
            }
        })
        .map_err(|_| Error::Corrupt {
            position: String::new(),
            reason: "a checkpoint's position is not a decimal".into(),
        })
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS caseline_projection_checkpoints (
    name TEXT PRIMARY KEY,
    format INTEGER NOT NULL,
    position TEXT NOT NULL,
    state BLOB NOT NULL,
    saved_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS caseline_projection_postings (
    name TEXT NOT NULL,
    key BLOB NOT NULL,
    last BLOB NOT NULL,
    first BLOB NOT NULL,
    entries BLOB NOT NULL,
    PRIMARY KEY (name, key, last)
) WITHOUT ROWID;";

/// The table of index entries before runs (one row per entry): its indexes are rebuilt
/// into runs, their checkpoints dropped with it.
const OLD_INDEX_TABLE: &str = "caseline_projection_index";

// Moves forwards only; a snapshot of a new format replaces one of an old format.
const SQLITE_SAVE: &str = "INSERT INTO caseline_projection_checkpoints \
     (name, format, position, state, saved_at) VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (name) DO UPDATE SET format = excluded.format, position = excluded.position, \
     state = excluded.state, saved_at = excluded.saved_at \
     WHERE caseline_projection_checkpoints.position < excluded.position \
        OR caseline_projection_checkpoints.format <> excluded.format";

/// Pages the state store's WAL may hold before SQLite copies them into the file
/// (SQLite's default is 1 000): a rebuild writes the indexes' tables page after page,
/// and each checkpoint copied the same B-tree pages again. The WAL stays within 10 000
/// pages of 4 KiB, 40 MiB, plus the transaction being committed.
const STATE_WAL_PAGES_AT_MOST: u32 = 10_000;

/// The state store's page cache (SQLite's default is 2 MiB): the indexes' B-trees are
/// written where their keys fall, all over the tables.
const STATE_CACHE_KIB: u32 = 16 * 1024;

/// Checkpoints in a SQLite file (the all-in-one's, in its data directory).
pub struct SqliteCheckpoints {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for SqliteCheckpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCheckpoints")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteCheckpoints {
    /// Opens (creating if needed) the file at `path` and the table in it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let conn = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> Result<Connection, Error> {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let mut conn = Connection::open(&path)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                // A rebuild's writes of index runs recompiled their lookup at every
                // key otherwise: a quarter of the index's writing.
                caseline_eventlog::sqlite::stable_plans(&conn)?;
                let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
                // Everything here is derived from the log: a power cut may lose the
                // last saves (never corrupt the file), and the next start reads that
                // much more of the log. No fsync per save, then.
                conn.execute_batch(&format!(
                    "PRAGMA synchronous=NORMAL; \
                     PRAGMA wal_autocheckpoint={STATE_WAL_PAGES_AT_MOST}; \
                     PRAGMA cache_size=-{STATE_CACHE_KIB};"
                ))?;
                conn.execute_batch(SQLITE_SCHEMA)?;
                let old_table = "SELECT count(*) FROM sqlite_master \
                                 WHERE type = 'table' AND name = ?1";
                let has_old = |c: &Connection| -> rusqlite::Result<bool> {
                    c.query_row(old_table, params![OLD_INDEX_TABLE], |r| r.get::<_, i64>(0))
                        .map(|n| n > 0)
                };
                if has_old(&conn)? {
                    // Asked again inside: another process may have migrated meanwhile.
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    if has_old(&tx)? {
                        tx.execute_batch(&format!(
                            "DELETE FROM caseline_projection_checkpoints \
                             WHERE name IN (SELECT DISTINCT name FROM {OLD_INDEX_TABLE}); \
                             DROP TABLE {OLD_INDEX_TABLE};"
                        ))?;
                    }
                    tx.commit()?;
                }
                Ok(conn)
            })
            .await
            .map_err(|e| Error::Unavailable(format!("sqlite open task failed: {e}")))??
        };
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("sqlite task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl CheckpointStore for SqliteCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<Snapshot>, Error> {
        let name = name.to_owned();
        self.with(move |conn| {
            let row: Option<(i64, String, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT format, position, state FROM caseline_projection_checkpoints \
                     WHERE name = ?1",
                )?
                .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            row.map(|(format, position, state)| {
                Ok(Snapshot {
                    format: u32::try_from(format).unwrap_or(u32::MAX),
                    position: parse_position(&position)?,
                    state,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save(&self, name: &str, snapshot: &Snapshot) -> Result<(), Error> {
        let name = name.to_owned();
        let snapshot = snapshot.clone();
        self.with(move |conn| {
            conn.prepare_cached(SQLITE_SAVE)?.execute(params![
                name,
                i64::from(snapshot.format),
                position_key(snapshot.position),
                snapshot.state,
                now_micros()
            ])?;
            Ok(())
        })
        .await
    }

    async fn index(
        &self,
        name: &str,
        format: u32,
        position: Position,
        entries: Vec<IndexEntry>,
    ) -> Result<(), Error> {
        let name = name.to_owned();
        self.with(move |conn| {
            // Immediate: two writers of one index file their runs one after the other,
            // so neither misses the other's overlapping runs.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for run in postings::runs(entries) {
                let key = run.key.as_bytes().to_vec();
                let mut stored = Vec::new();
                {
                    let mut overlapping = tx.prepare_cached(
                        "SELECT first, last, entries FROM caseline_projection_postings \
                         WHERE name = ?1 AND key = ?2 AND last >= ?3 ORDER BY last",
                    )?;
                    let mut rows =
                        overlapping.query(params![name, key, position_bytes(run.first())])?;
                    while let Some(row) = rows.next()? {
                        // Runs of a key do not overlap: by `last`, they are by `first`.
                        if position_from(&row.get::<_, Vec<u8>>(0)?)? > run.last() {
                            break;
                        }
                        stored.push((
                            row.get::<_, Vec<u8>>(1)?,
                            Run::decode(run.key, &row.get::<_, Vec<u8>>(2)?)?,
                        ));
                    }
                }
                let mut delete = tx.prepare_cached(
                    "DELETE FROM caseline_projection_postings \
                     WHERE name = ?1 AND key = ?2 AND last = ?3",
                )?;
                for (last, _) in &stored {
                    delete.execute(params![name, key, last])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO caseline_projection_postings (name, key, last, first, entries) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let stored = stored.into_iter().map(|(_, run)| run).collect();
                for run in postings::merged(run, stored) {
                    insert.execute(params![
                        name,
                        key,
                        position_bytes(run.last()),
                        position_bytes(run.first()),
                        run.encode()?
                    ])?;
                }
            }
            tx.prepare_cached(SQLITE_SAVE)?.execute(params![
                name,
                i64::from(format),
                position_key(position),
                Vec::<u8>::new(),
                now_micros()
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn clear_index(&self, name: &str) -> Result<(), Error> {
        let name = name.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM caseline_projection_postings WHERE name = ?1",
                params![name],
            )?;
            tx.execute(
                "DELETE FROM caseline_projection_checkpoints WHERE name = ?1",
                params![name],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn find(
        &self,
        name: &str,
        key: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error> {
        let name = name.to_owned();
        self.with(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT entries FROM caseline_projection_postings \
                 WHERE name = ?1 AND key = ?2 AND last > ?3 ORDER BY last",
            )?;
            let mut rows = select.query(params![
                name,
                key.as_bytes().as_slice(),
                position_bytes(after)
            ])?;
            let mut found = Vec::new();
            while found.len() < limit
                && let Some(row) = rows.next()?
            {
                take_from(
                    &mut found,
                    Run::decode(key, &row.get::<_, Vec<u8>>(0)?)?,
                    after,
                );
            }
            found.truncate(limit);
            Ok(found)
        })
        .await
    }
}

const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS caseline_projection_checkpoints (
    name text PRIMARY KEY,
    format integer NOT NULL,
    position text NOT NULL,
    state bytea NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS caseline_projection_postings (
    name text NOT NULL,
    key bytea NOT NULL,
    last bytea NOT NULL,
    first bytea NOT NULL,
    entries bytea NOT NULL,
    PRIMARY KEY (name, key, last)
);";

const POSTGRES_SAVE: &str = "INSERT INTO caseline_projection_checkpoints AS c \
     (name, format, position, state, saved_at) VALUES ($1, $2, $3, $4, now()) \
     ON CONFLICT (name) DO UPDATE SET format = excluded.format, position = excluded.position, \
     state = excluded.state, saved_at = excluded.saved_at \
     WHERE c.position < excluded.position OR c.format <> excluded.format";

/// Serialises creating the table across processes starting together.
const MIGRATION_LOCK: i64 = 0x6361_7365_6c63_6b70;

/// With an index's name, serialises the writers of one index (instances of a service):
/// each sees the runs the other filed, so runs of a key never overlap.
const INDEX_WRITE_LOCK: i32 = 0x6378_6978;

/// Checkpoints in a PostgreSQL table (separate services: beside a PostgreSQL log, or the
/// state store of a KurrentDB one).
pub struct PostgresCheckpoints {
    pool: Pool,
}

impl fmt::Debug for PostgresCheckpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCheckpoints")
            .finish_non_exhaustive()
    }
}

impl PostgresCheckpoints {
    /// Uses `pool` (its connections' `search_path` picks the schema) and creates the
    /// table if needed.
    pub async fn from_pool(pool: Pool) -> Result<Self, Error> {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(POSTGRES_SCHEMA).await?;
        let old: Option<String> = tx
            .query_one("SELECT to_regclass($1)::text", &[&OLD_INDEX_TABLE])
            .await?
            .try_get(0)?;
        if old.is_some() {
            tx.batch_execute(&format!(
                "DELETE FROM caseline_projection_checkpoints \
                 WHERE name IN (SELECT DISTINCT name FROM {OLD_INDEX_TABLE}); \
                 DROP TABLE {OLD_INDEX_TABLE};"
            ))
            .await?;
        }
        tx.commit().await?;
        drop(client);
        Ok(Self { pool })
    }
}

#[async_trait::async_trait]
impl CheckpointStore for PostgresCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<Snapshot>, Error> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT format, position, state FROM caseline_projection_checkpoints \
                 WHERE name = $1",
                &[&name],
            )
            .await?;
        row.map(|row| {
            let format: i32 = row.try_get(0)?;
            let position: String = row.try_get(1)?;
            Ok(Snapshot {
                format: u32::try_from(format).unwrap_or(u32::MAX),
                position: parse_position(&position)?,
                state: row.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn save(&self, name: &str, snapshot: &Snapshot) -> Result<(), Error> {
        let client = self.pool.get().await?;
        let format =
            i32::try_from(snapshot.format).map_err(|_| invalid("format", "must fit in 31 bits"))?;
        client
            .execute(
                POSTGRES_SAVE,
                &[
                    &name,
                    &format,
                    &position_key(snapshot.position),
                    &snapshot.state,
                ],
            )
            .await?;
        Ok(())
    }

    async fn index(
        &self,
        name: &str,
        format: u32,
        position: Position,
        entries: Vec<IndexEntry>,
    ) -> Result<(), Error> {
        let format = i32::try_from(format).map_err(|_| invalid("format", "must fit in 31 bits"))?;
        let runs = postings::runs(entries);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if !runs.is_empty() {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&INDEX_WRITE_LOCK, &name],
            )
            .await?;
            let keys: Vec<&[u8]> = runs.iter().map(|r| r.key.as_bytes().as_slice()).collect();
            let firsts: Vec<Vec<u8>> = runs.iter().map(|r| position_bytes(r.first())).collect();
            let lasts: Vec<Vec<u8>> = runs.iter().map(|r| position_bytes(r.last())).collect();
            let overlapping = tx
                .query(
                    // The runs ending within the new one's range, and the next after it
                    // if it starts within (runs do not overlap: no other can): both
                    // bounded by the primary key, however many runs come later.
                    "SELECT p.key, p.last, p.entries \
                     FROM unnest($2::bytea[], $3::bytea[], $4::bytea[]) AS n (key, first, last) \
                     JOIN LATERAL ( \
                       (SELECT key, last, first, entries FROM caseline_projection_postings \
                         WHERE name = $1 AND key = n.key AND last >= n.first AND last <= n.last) \
                       UNION ALL \
                       (SELECT key, last, first, entries FROM caseline_projection_postings \
                         WHERE name = $1 AND key = n.key AND last > n.last \
                         ORDER BY last LIMIT 1) \
                     ) AS p ON p.first <= n.last",
                    &[&name, &keys, &firsts, &lasts],
                )
                .await?;
            let mut stored: std::collections::HashMap<Uuid, Vec<Run>> = Default::default();
            let (mut gone_keys, mut gone_lasts) = (Vec::new(), Vec::new());
            for row in &overlapping {
                let key: Vec<u8> = row.try_get(0)?;
                let last: Vec<u8> = row.try_get(1)?;
                let id = Uuid::from_slice(&key).map_err(|_| Error::Corrupt {
                    position: String::new(),
                    reason: "an index run's key does not decode".into(),
                })?;
                stored
                    .entry(id)
                    .or_default()
                    .push(Run::decode(id, row.try_get(2)?)?);
                gone_keys.push(key);
                gone_lasts.push(last);
            }
            if !gone_keys.is_empty() {
                tx.execute(
                    "DELETE FROM caseline_projection_postings p \
                     USING unnest($2::bytea[], $3::bytea[]) AS g (key, last) \
                     WHERE p.name = $1 AND p.key = g.key AND p.last = g.last",
                    &[&name, &gone_keys, &gone_lasts],
                )
                .await?;
            }
            let (mut keys, mut lasts, mut firsts, mut blobs) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for run in runs {
                let overlapped = stored.remove(&run.key).unwrap_or_default();
                for run in postings::merged(run, overlapped) {
                    keys.push(run.key.as_bytes().to_vec());
                    lasts.push(position_bytes(run.last()));
                    firsts.push(position_bytes(run.first()));
                    blobs.push(run.encode()?);
                }
            }
            tx.execute(
                "INSERT INTO caseline_projection_postings (name, key, last, first, entries) \
                 SELECT $1, * FROM unnest($2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])",
                &[&name, &keys, &lasts, &firsts, &blobs],
            )
            .await?;
        }
        tx.execute(
            POSTGRES_SAVE,
            &[&name, &format, &position_key(position), &Vec::<u8>::new()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_index(&self, name: &str) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM caseline_projection_postings WHERE name = $1",
            &[&name],
        )
        .await?;
        tx.execute(
            "DELETE FROM caseline_projection_checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find(
        &self,
        name: &str,
        key: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error> {
        let client = self.pool.get().await?;
        let select = client
            .prepare_cached(
                "SELECT last, entries FROM caseline_projection_postings \
                 WHERE name = $1 AND key = $2 AND last > $3 ORDER BY last LIMIT $4",
            )
            .await?;
        let mut found = Vec::new();
        let mut past = position_bytes(after);
        let mut asked = 1;
        while found.len() < limit {
            let wanted = (limit - found.len()).min(asked);
            asked = (asked * 2).min(RUNS_PER_QUERY);
            let rows = client
                .query(
                    &select,
                    &[
                        &name,
                        &key.as_bytes().as_slice(),
                        &past,
                        &i64::try_from(wanted).unwrap_or(i64::MAX),
                    ],
                )
                .await?;
            for row in &rows {
                if found.len() >= limit {
                    break;
                }
                take_from(&mut found, Run::decode(key, row.try_get(1)?)?, after);
            }
            match rows.last() {
                Some(row) if rows.len() == wanted => past = row.try_get(0)?,
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caseline_eventlog::StreamName;

    /// An index written as a rebuild writes it, page after page of entries under keys
    /// all over the table: the WAL never holds more than its bound (plus the transaction
    /// being committed), and it goes when the store is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_state_stores_wal_stays_within_its_bound() {
        const PAGES: u64 = 150;
        const ENTRIES: u64 = 1_000;
        let dir = tempfile::tempdir().expect("a directory");
        let wal = dir.path().join("state.sqlite-wal");
        let store = SqliteCheckpoints::open(dir.path().join("state.sqlite"))
            .await
            .expect("opens");
        let stream = StreamName::new("access-global".to_owned()).expect("a name");
        let at = |n: u64| n.to_string().parse::<Position>().expect("a position");
        let mut largest = 0;
        for page in 0..PAGES {
            let entries = (0..ENTRIES)
                .map(|i| IndexEntry {
                    key: Uuid::new_v4(),
                    position: at(page * ENTRIES + i + 1),
                    stream: stream.clone(),
                    version: page * ENTRIES + i,
                })
                .collect();
            store
                .index("by-key", 1, at((page + 1) * ENTRIES), entries)
                .await
                .expect("writes");
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        // One transaction files 1 000 entries under random keys: each lands in a leaf
        // of its own, some split, so it writes up to a few pages per entry (measured:
        // about 4 MiB). Without the checkpoint the WAL would hold every transaction's
        // pages: 456 MB here, measured.
        let bound = (u64::from(STATE_WAL_PAGES_AT_MOST) + 3 * ENTRIES) * 4096;
        assert!(largest <= bound, "the WAL reached {largest} bytes");
        assert!(
            largest > 1_000 * 4096,
            "past SQLite's default bound, so the test writes enough: {largest} bytes"
        );
        drop(store);
        assert!(
            std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
            "the WAL goes with the last connection"
        );
    }

    /// The table of one row per entry, as a store before runs left it.
    const OLD_SCHEMA: &str = "CREATE TABLE caseline_projection_index (
        name TEXT NOT NULL, key BLOB NOT NULL, position BLOB NOT NULL,
        stream TEXT NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (name, key, position));";

    fn snapshot(format: u32) -> Snapshot {
        Snapshot {
            format,
            position: "42".parse().expect("a position"),
            state: b"state".to_vec(),
        }
    }

    /// What a store of one row per entry held: the index's checkpoint goes with its
    /// table (so it is rebuilt into runs), a projection's stays.
    async fn migrated(store: &dyn CheckpointStore) {
        assert_eq!(store.load("old.index").await.expect("loads"), None);
        assert_eq!(
            store.load("a.projection").await.expect("loads"),
            Some(snapshot(3))
        );
    }

    #[tokio::test]
    async fn an_index_of_rows_per_entry_is_dropped_to_be_rebuilt_in_sqlite() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("state.sqlite");
        {
            let store = SqliteCheckpoints::open(&path).await.expect("opens");
            store.save("old.index", &snapshot(1)).await.expect("saves");
            store
                .save("a.projection", &snapshot(3))
                .await
                .expect("saves");
            store
                .with(|conn| {
                    conn.execute_batch(OLD_SCHEMA)?;
                    conn.execute(
                        "INSERT INTO caseline_projection_index VALUES ('old.index', x'00', x'01', 's', 1)",
                        [],
                    )?;
                    Ok(())
                })
                .await
                .expect("the old table");
        }
        let store = SqliteCheckpoints::open(&path).await.expect("reopens");
        migrated(&store).await;
        let tables: i64 = store
            .with(|conn| {
                Ok(conn.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                    params![OLD_INDEX_TABLE],
                    |r| r.get(0),
                )?)
            })
            .await
            .expect("counts");
        assert_eq!(tables, 0, "the old table is gone");
    }

    #[tokio::test]
    async fn an_index_of_rows_per_entry_is_dropped_to_be_rebuilt_in_postgres() {
        let schema = caseline_eventlog::postgres::ScratchSchema::for_test("caseline_test").await;
        let pool = || {
            caseline_eventlog::postgres::pool(schema.config().expect("a config"), 2)
                .expect("a pool")
        };
        {
            let store = PostgresCheckpoints::from_pool(pool()).await.expect("opens");
            store.save("old.index", &snapshot(1)).await.expect("saves");
            store
                .save("a.projection", &snapshot(3))
                .await
                .expect("saves");
            let client = store.pool.get().await.expect("a connection");
            client
                .batch_execute(
                    "CREATE TABLE caseline_projection_index (name text, key bytea, \
                     position bytea, stream text, version bigint); \
                     INSERT INTO caseline_projection_index VALUES \
                     ('old.index', '\\x00', '\\x01', 's', 1);",
                )
                .await
                .expect("the old table");
        }
        let store = PostgresCheckpoints::from_pool(pool())
            .await
            .expect("reopens");
        migrated(&store).await;
        let client = store.pool.get().await.expect("a connection");
        let old: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&OLD_INDEX_TABLE])
            .await
            .expect("asks")
            .get(0);
        assert_eq!(old, None, "the old table is gone");
    }

    #[test]
    fn position_text_sorts_as_positions_do() {
        let at = |n: u128| n.to_string().parse::<Position>().expect("a position");
        let keys: Vec<String> = [0u128, 9, 10, 11, 1 << 64, u128::MAX]
            .into_iter()
            .map(|n| position_key(at(n)))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for n in [0u128, 7, 1 << 70, u128::MAX] {
            assert_eq!(parse_position(&position_key(at(n))).expect("parses"), at(n));
        }
    }
}
