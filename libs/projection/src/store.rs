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

use caseline_eventlog::{Error, Position, StreamName, Uuid};

use crate::index::IndexEntry;
use deadpool_postgres::Pool;
use rusqlite::{Connection, OptionalExtension, params};

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

/// An entry as read back from a row.
fn entry(key: &[u8], position: &[u8], stream: String, version: i64) -> Result<IndexEntry, Error> {
    let corrupt = |reason: &str| Error::Corrupt {
        position: String::new(),
        reason: format!("an index entry's {reason} does not decode"),
    };
    Ok(IndexEntry {
        key: Uuid::from_slice(key).map_err(|_| corrupt("key"))?,
        position: Position::from_be_bytes(position.try_into().map_err(|_| corrupt("position"))?),
        stream: StreamName::new(stream).map_err(|_| corrupt("stream"))?,
        version: u64::try_from(version).map_err(|_| corrupt("version"))?,
    })
}

fn version_column(version: u64) -> Result<i64, Error> {
    i64::try_from(version).map_err(|_| invalid("version", "must fit in 63 bits"))
}

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
CREATE TABLE IF NOT EXISTS caseline_projection_index (
    name TEXT NOT NULL,
    key BLOB NOT NULL,
    position BLOB NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, key, position)
) WITHOUT ROWID;";

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
                let conn = Connection::open(&path)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
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
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO caseline_projection_index \
                     (name, key, position, stream, version) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for e in &entries {
                    insert.execute(params![
                        name,
                        e.key.as_bytes().as_slice(),
                        e.position.to_be_bytes().as_slice(),
                        e.stream.as_str(),
                        version_column(e.version)?
                    ])?;
                }
                tx.prepare_cached(SQLITE_SAVE)?.execute(params![
                    name,
                    i64::from(format),
                    position_key(position),
                    Vec::<u8>::new(),
                    now_micros()
                ])?;
            }
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
                "DELETE FROM caseline_projection_index WHERE name = ?1",
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT position, stream, version FROM caseline_projection_index \
                 WHERE name = ?1 AND key = ?2 AND position > ?3 ORDER BY position LIMIT ?4",
            )?;
            let rows = select.query_map(
                params![
                    name,
                    key.as_bytes().as_slice(),
                    after.to_be_bytes().as_slice(),
                    limit
                ],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )?;
            rows.map(|row| {
                let (position, stream, version) = row?;
                entry(key.as_bytes(), &position, stream, version)
            })
            .collect()
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
CREATE TABLE IF NOT EXISTS caseline_projection_index (
    name text NOT NULL,
    key bytea NOT NULL,
    position bytea NOT NULL,
    stream text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (name, key, position)
);";

const POSTGRES_SAVE: &str = "INSERT INTO caseline_projection_checkpoints AS c \
     (name, format, position, state, saved_at) VALUES ($1, $2, $3, $4, now()) \
     ON CONFLICT (name) DO UPDATE SET format = excluded.format, position = excluded.position, \
     state = excluded.state, saved_at = excluded.saved_at \
     WHERE c.position < excluded.position OR c.format <> excluded.format";

/// Serialises creating the table across processes starting together.
const MIGRATION_LOCK: i64 = 0x6361_7365_6c63_6b70;

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
        let mut keys = Vec::with_capacity(entries.len());
        let mut positions = Vec::with_capacity(entries.len());
        let mut streams = Vec::with_capacity(entries.len());
        let mut versions = Vec::with_capacity(entries.len());
        for e in &entries {
            keys.push(e.key.as_bytes().to_vec());
            positions.push(e.position.to_be_bytes().to_vec());
            streams.push(e.stream.as_str().to_owned());
            versions.push(version_column(e.version)?);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if !entries.is_empty() {
            tx.execute(
                "INSERT INTO caseline_projection_index (name, key, position, stream, version) \
                 SELECT $1, * FROM unnest($2::bytea[], $3::bytea[], $4::text[], $5::bigint[]) \
                 ON CONFLICT DO NOTHING",
                &[&name, &keys, &positions, &streams, &versions],
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
            "DELETE FROM caseline_projection_index WHERE name = $1",
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT position, stream, version FROM caseline_projection_index \
                 WHERE name = $1 AND key = $2 AND position > $3 ORDER BY position LIMIT $4",
                &[
                    &name,
                    &key.as_bytes().as_slice(),
                    &after.to_be_bytes().as_slice(),
                    &limit,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let position: Vec<u8> = row.try_get(0)?;
                entry(key.as_bytes(), &position, row.try_get(1)?, row.try_get(2)?)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
