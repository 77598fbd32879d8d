//! The key store on PostgreSQL (14 or later), for separate services: table
//! `caseline_case_keys` in the connection's `search_path` schema, created if missing.
//!
//! Racing first seals insert with `ON CONFLICT DO NOTHING` and read the row back in a
//! second statement: the insert waits for a concurrent inserter to commit, so the read
//! (a new snapshot under READ COMMITTED) sees the winner. A shred overwrites the key
//! with NULL; PostgreSQL keeps the old row version until vacuum and in its WAL and
//! backups, where it is still a wrapped key (useless without the master key).

use std::fmt;

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::{Error, KeyState, KeyStore, WrappedKey};

/// Connections kept by default: key store calls are rare thanks to the vault's cache.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Serialises schema creation between services starting together.
const MIGRATION_LOCK: i64 = 0x00ca_5e11_0e00_0a17;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS caseline_case_keys (
    case_id     UUID        PRIMARY KEY,
    wrapped_key BYTEA,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    shredded_at TIMESTAMPTZ,
    CONSTRAINT caseline_case_keys_shredded_has_no_key
        CHECK ((wrapped_key IS NULL) = (shredded_at IS NOT NULL))
);
CREATE OR REPLACE FUNCTION caseline_case_keys_shred_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.case_id = OLD.case_id AND NEW.created_at = OLD.created_at
            AND NEW.wrapped_key IS NULL AND OLD.shredded_at IS NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'caseline case keys change only by shredding';
END $$;
CREATE OR REPLACE TRIGGER caseline_case_keys_shred_only
    BEFORE UPDATE OR DELETE ON caseline_case_keys
    FOR EACH ROW EXECUTE FUNCTION caseline_case_keys_shred_only();
CREATE OR REPLACE TRIGGER caseline_case_keys_no_truncate
    BEFORE TRUNCATE ON caseline_case_keys
    FOR EACH STATEMENT EXECUTE FUNCTION caseline_case_keys_shred_only();
";

const SELECT: &str = "SELECT wrapped_key FROM caseline_case_keys WHERE case_id = $1";
const CREATE: &str = "INSERT INTO caseline_case_keys (case_id, wrapped_key) VALUES ($1, $2) \
     ON CONFLICT (case_id) DO NOTHING";
const SHRED: &str = "INSERT INTO caseline_case_keys AS k (case_id, wrapped_key, shredded_at) \
     VALUES ($1, NULL, now()) \
     ON CONFLICT (case_id) DO UPDATE SET wrapped_key = NULL, shredded_at = excluded.shredded_at \
     WHERE k.shredded_at IS NULL";

/// The PostgreSQL key store.
pub struct PostgresKeyStore {
    pool: Pool,
}

impl PostgresKeyStore {
    /// Connects with a `postgres://` URL and creates the table if needed.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        // The parser's message may quote the URL, password included.
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| Error::Unavailable("malformed postgres url".into()))?;
        Self::connect_with(config, DEFAULT_POOL_SIZE).await
    }

    /// Connects with a prepared configuration and a pool of `pool_size` connections.
    pub async fn connect_with(
        config: tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<Self, Error> {
        let pool = caseline_eventlog::postgres::pool(config, pool_size)
            .map_err(|e| Error::Unavailable(format!("postgres pool: {e}")))?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool (its connections' `search_path` picks the schema) and
    /// creates the table if needed.
    pub async fn from_pool(pool: Pool) -> Result<Self, Error> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn read_state(
        client: &deadpool_postgres::Object,
        case_id: Uuid,
    ) -> Result<KeyState, Error> {
        let stmt = client.prepare_cached(SELECT).await?;
        Ok(match client.query_opt(&stmt, &[&case_id]).await? {
            None => KeyState::Missing,
            Some(row) => match row.try_get::<_, Option<Vec<u8>>>(0)? {
                None => KeyState::Shredded,
                Some(bytes) => KeyState::Active(WrappedKey::new(bytes)),
            },
        })
    }
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's configuration may hold a password.
        let status = self.pool.status();
        f.debug_struct("PostgresKeyStore")
            .field("pool_size", &status.max_size)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl KeyStore for PostgresKeyStore {
    async fn get(&self, case_id: Uuid) -> Result<KeyState, Error> {
        let client = self.pool.get().await?;
        Self::read_state(&client, case_id).await
    }

    async fn create(&self, case_id: Uuid, wrapped: WrappedKey) -> Result<KeyState, Error> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(CREATE).await?;
        client
            .execute(&stmt, &[&case_id, &wrapped.as_bytes()])
            .await?;
        Self::read_state(&client, case_id).await
    }

    async fn shred(&self, case_id: Uuid) -> Result<(), Error> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(SHRED).await?;
        client.execute(&stmt, &[&case_id]).await?;
        Ok(())
    }
}
