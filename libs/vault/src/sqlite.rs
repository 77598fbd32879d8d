//! The key store in its own SQLite file (by convention [`KEY_STORE_FILE`] next to the
//! events file), never in the event log's.
//!
//! WAL with `synchronous=FULL`: a created key is durable before anything sealed with it
//! can be appended. `secure_delete` plus a WAL checkpoint after each shred overwrite the
//! destroyed key on disk rather than leaving it in free pages or the write-ahead log.
//! Several connections (or processes) may share the file; writes take SQLite's write
//! lock (`BEGIN IMMEDIATE`) and wait for each other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use crate::{Error, KeyState, KeyStore, WrappedKey};

/// The conventional file name, in the directory of the events file.
pub const KEY_STORE_FILE: &str = "keys.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS caseline_case_keys (
    case_id     BLOB    PRIMARY KEY NOT NULL CHECK (length(case_id) = 16),
    wrapped_key BLOB,
    created_at  INTEGER NOT NULL,
    shredded_at INTEGER,
    CHECK ((wrapped_key IS NULL) = (shredded_at IS NOT NULL))
);
CREATE TRIGGER IF NOT EXISTS caseline_case_keys_no_delete
BEFORE DELETE ON caseline_case_keys
BEGIN SELECT RAISE(ABORT, 'caseline case keys change only by shredding'); END;
CREATE TRIGGER IF NOT EXISTS caseline_case_keys_shred_only
BEFORE UPDATE ON caseline_case_keys
WHEN NEW.case_id IS NOT OLD.case_id OR NEW.created_at IS NOT OLD.created_at
    OR NEW.wrapped_key IS NOT NULL OR OLD.shredded_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'caseline case keys change only by shredding'); END;
";

const SELECT: &str = "SELECT wrapped_key FROM caseline_case_keys WHERE case_id = ?1";
const CREATE: &str = "INSERT INTO caseline_case_keys (case_id, wrapped_key, created_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (case_id) DO NOTHING";
const SHRED: &str = "INSERT INTO caseline_case_keys (case_id, wrapped_key, created_at, \
     shredded_at) VALUES (?1, NULL, ?2, ?2) \
     ON CONFLICT (case_id) DO UPDATE SET wrapped_key = NULL, shredded_at = excluded.shredded_at \
     WHERE caseline_case_keys.shredded_at IS NULL";

/// The SQLite key store.
pub struct SqliteKeyStore {
    path: PathBuf,
    /// Key store calls are rare (the vault caches keys): one connection is plenty.
    conn: Arc<Mutex<Connection>>,
}

impl SqliteKeyStore {
    /// Opens (creating if needed, owner-only on unix) the key store file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let conn = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open_connection(&path))
                .await
                .map_err(|e| Error::Unavailable(format!("sqlite open task failed: {e}")))??
        };
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, off the async threads.
    async fn with<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| Error::Unavailable("sqlite connection poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("sqlite task failed: {e}")))?
    }
}

impl fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteKeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_connection(path: &Path) -> Result<Connection, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    create_private(path)
        .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", path.display())))?;
    let conn = Connection::open(path)?;
    caseline_eventlog::sqlite::stable_plans(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Unavailable(format!(
            "sqlite refused WAL mode (got {mode})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA secure_delete=ON;",
    )?;
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))?;
    Ok(conn)
}

/// Creates the file if missing, readable by its owner only (SQLite gives its WAL and
/// shared-memory files the same permissions).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn read_state(conn: &Connection, case_id: Uuid) -> Result<KeyState, Error> {
    let row: Option<Option<Vec<u8>>> = conn
        .prepare_cached(SELECT)?
        .query_row(params![case_id.as_bytes().as_slice()], |r| r.get(0))
        .optional()?;
    Ok(match row {
        None => KeyState::Missing,
        Some(None) => KeyState::Shredded,
        Some(Some(bytes)) => KeyState::Active(WrappedKey::new(bytes)),
    })
}

#[async_trait::async_trait]
impl KeyStore for SqliteKeyStore {
    async fn get(&self, case_id: Uuid) -> Result<KeyState, Error> {
        self.with(move |conn| read_state(conn, case_id)).await
    }

    async fn create(&self, case_id: Uuid, wrapped: WrappedKey) -> Result<KeyState, Error> {
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(CREATE)?.execute(params![
                case_id.as_bytes().as_slice(),
                wrapped.as_bytes(),
                now_micros()
            ])?;
            let state = read_state(&tx, case_id)?;
            tx.commit()?;
            Ok(state)
        })
        .await
    }

    async fn shred(&self, case_id: Uuid) -> Result<(), Error> {
        self.with(move |conn| {
            conn.prepare_cached(SHRED)?
                .execute(params![case_id.as_bytes().as_slice(), now_micros()])?;
            // Moves the overwritten page into the main file and empties the WAL, which
            // still held the key as it was written. Best effort: a reader elsewhere may
            // hold the WAL; a later checkpoint finishes the job.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "wal checkpoint after shredding failed");
            }
            Ok(())
        })
        .await
    }
}
