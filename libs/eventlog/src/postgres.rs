//! The shared event log on PostgreSQL (14 or later), for separate services.
//!
//! Appends take no lock beyond the row locks of their own inserts. When this process
//! knows the stream's head (or the stream is new) the batch is inserted by one atomic
//! statement, one round trip; otherwise the head and any stored copies of the batch's
//! event ids are read first, from one snapshot. The unique
//! `(stream, version)` key makes the second of two racing appends fail; it is then
//! re-decided against the new head (`WrongExpectedVersion`, or a retry for `Any`).
//!
//! Global order is `(tx, id)`: the writing transaction's id (`xid8`) and an identity.
//! A reader only returns rows of transactions older than the oldest one still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`), so a transaction that started early and
//! commits late is delivered after its peers rather than skipped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::chain::{self, Head, Link};
use crate::envelope::{MAX_VERSION, from_micros, now_micros, validate_batch};
use crate::idempotency::{StoredCopy, resolve_retry};
use crate::subscription::announce;
use crate::{
    AppendResult, Direction, Error, EventLog, ExpectedVersion, Interest, Metadata, NewEvent,
    Position, ReadOf, RecordedEvent, StreamName, clamp_limit,
};

/// Connections kept by default; enough for 64 concurrent appenders to keep the server's
/// WAL flushes shared without queueing on the pool.
pub const DEFAULT_POOL_SIZE: usize = 32;
/// How many times an `Any` append is re-decided after losing a race before giving up.
const MAX_RACES: usize = 64;
/// Stream heads remembered per process; beyond this the hint cache starts afresh.
const HEAD_CACHE: usize = 65_536;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS caseline_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY,
    tx             XID8   NOT NULL DEFAULT pg_current_xact_id(),
    event_id       UUID   NOT NULL,
    stream         TEXT   NOT NULL,
    version        BIGINT NOT NULL CHECK (version >= 0),
    event_type     TEXT   NOT NULL,
    data           BYTEA  NOT NULL,
    case_id        UUID,
    actor          TEXT   NOT NULL,
    actor_role     TEXT   NOT NULL,
    agency         TEXT   NOT NULL,
    request_id     UUID,
    correlation_id UUID,
    causation_id   UUID,
    traceparent    TEXT,
    call           TEXT,
    recorded_at    BIGINT NOT NULL,
    prev_hash      BYTEA  NOT NULL,
    hash           BYTEA  NOT NULL,
    PRIMARY KEY (tx, id),
    CONSTRAINT caseline_events_stream_version_key UNIQUE (stream, version),
    CONSTRAINT caseline_events_stream_event_id_key UNIQUE (stream, event_id)
);
CREATE INDEX IF NOT EXISTS caseline_events_by_case
    ON caseline_events (case_id, tx, id) WHERE case_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS caseline_events_of_case
    ON caseline_events (case_id, tx, id)
    WHERE case_id IS NOT NULL AND stream NOT LIKE 'access-%';
CREATE OR REPLACE FUNCTION caseline_events_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'caseline events are immutable'; END $$;
CREATE OR REPLACE TRIGGER caseline_events_no_change
    BEFORE UPDATE OR DELETE ON caseline_events
    FOR EACH ROW EXECUTE FUNCTION caseline_events_immutable();
CREATE OR REPLACE TRIGGER caseline_events_no_truncate
    BEFORE TRUNCATE ON caseline_events
    FOR EACH STATEMENT EXECUTE FUNCTION caseline_events_immutable();
";

/// Moves a table made by an earlier build from event ids unique across the log to event
/// ids unique within their stream (both constraints exist for the moment of the swap).
const GLOBAL_IDS_TO_STREAM_IDS: &str = "
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'caseline_events'::regclass
                 AND conname = 'caseline_events_event_id_key') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = 'caseline_events'::regclass
                         AND conname = 'caseline_events_stream_event_id_key') THEN
            ALTER TABLE caseline_events
                ADD CONSTRAINT caseline_events_stream_event_id_key UNIQUE (stream, event_id);
        END IF;
        ALTER TABLE caseline_events DROP CONSTRAINT caseline_events_event_id_key;
    END IF;
END $$;
";

/// Serialises schema creation between services starting together.
const MIGRATION_LOCK: i64 = 0x00ca_5e11_0e00_0001;

/// Events a filtered read ([`EventLog::read_of`]) walks in the log's order per query:
/// its cost is that of the window, however rare the events it looks for.
const SCAN_WINDOW: usize = 8_192;

/// The columns of a recorded event, in the order [`decode`] reads them. The transaction
/// id is read as text (tokio-postgres has no `xid8` type) under a name of its own: an
/// output column called `tx` would shadow the table's in `ORDER BY tx`, which would
/// then sort the text, putting `100000` before `99999`.
const COLUMNS: &str = "tx::text AS tx_text, id, event_id, stream, version, event_type, data, case_id, \
     actor, actor_role, agency, request_id, correlation_id, causation_id, traceparent, call, \
     recorded_at, prev_hash, hash";

/// The stream's head and any stored copies of the batch's event ids, in one statement so
/// both come from one snapshot. Column 0 tells the rows apart: 0 head, 1 stored copy.
const LOOKUP: &str = "\
     SELECT 0, NULL::uuid, NULL::text, version, NULL::text, NULL::bytea, NULL::text, \
            NULL::bigint, hash, NULL::text, NULL::text, NULL::uuid \
       FROM (SELECT version, hash FROM caseline_events WHERE stream = $1 \
             ORDER BY version DESC LIMIT 1) head \
     UNION ALL \
     SELECT 1, event_id, stream, version, event_type, data, tx::text, id, NULL::bytea, \
            actor, agency, case_id \
       FROM caseline_events WHERE stream = $1 AND event_id = ANY($2)";
const INSERT: &str = "INSERT INTO caseline_events (event_id, stream, version, event_type, \
     data, case_id, actor, actor_role, agency, request_id, correlation_id, causation_id, \
     traceparent, call, recorded_at, prev_hash, hash) \
     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::bytea[], \
     $6::uuid[], $7::text[], $8::text[], $9::text[], $10::uuid[], $11::uuid[], $12::uuid[], \
     $13::text[], $14::text[], $15::int8[], $16::bytea[], $17::bytea[]) \
     RETURNING version, tx::text, id";

/// The PostgreSQL event log.
#[derive(Debug)]
pub struct PostgresEventLog {
    pool: Pool,
    signal: watch::Sender<Position>,
    closed: AtomicBool,
    /// Stream heads this process last saw. Only a hint: other processes append too, and
    /// the unique keys turn a stale hint into a fresh read, never into a wrong append.
    heads: Mutex<HashMap<String, Head>>,
}

/// A connection pool as Caseline uses PostgreSQL everywhere (the log, the key store
/// beside it): at least one connection, 10 s to connect, 30 s to wait for a free one.
pub fn pool(
    config: tokio_postgres::Config,
    pool_size: usize,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(pool_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(10)))
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
}

impl PostgresEventLog {
    /// Connects with a `postgres://` URL and creates the schema if needed.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| Error::invalid("event_log", "malformed postgres url"))?;
        Self::connect_with(config, DEFAULT_POOL_SIZE).await
    }

    /// Connects with a prepared configuration and a pool of `pool_size` connections.
    pub async fn connect_with(
        config: tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<Self, Error> {
        let pool = pool(config, pool_size)
            .map_err(|e| Error::Unavailable(format!("postgres pool: {e}")))?;
        let log = Self {
            pool,
            signal: watch::channel(Position::START).0,
            closed: AtomicBool::new(false),
            heads: Mutex::new(HashMap::new()),
        };
        log.migrate().await?;
        Ok(log)
    }

    fn cached_head(&self, stream: &StreamName) -> Option<Head> {
        self.heads.lock().ok()?.get(stream.as_str()).copied()
    }

    /// Keeps the newest head seen for a stream (appends may finish out of order).
    fn remember(&self, stream: &StreamName, head: Head) {
        let Ok(mut heads) = self.heads.lock() else {
            return;
        };
        match heads.get_mut(stream.as_str()) {
            Some(known) => {
                if head.version > known.version {
                    *known = head;
                }
            }
            None => {
                if heads.len() >= HEAD_CACHE {
                    heads.clear();
                }
                heads.insert(stream.as_str().to_owned(), head);
            }
        }
    }

    /// Records a successful append: the new head, and the wake-up for subscribers.
    fn stored(&self, stream: &StreamName, result: AppendResult, head: Head) -> AppendResult {
        self.remember(stream, head);
        announce(&self.signal, result.last_position);
        result
    }

    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(SCHEMA).await?;
        // `CREATE TABLE IF NOT EXISTS` leaves a table made by an older build as it was:
        // refuse it by name rather than fail on every append and read.
        let has_call: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute \
                 WHERE attrelid = 'caseline_events'::regclass AND attname = 'call' \
                 AND NOT attisdropped)",
                &[],
            )
            .await?
            .try_get(0)?;
        if !has_call {
            // Explicitly: a rollback left to `Drop` is only sent when the connection's
            // task next runs, and until then this transaction holds the migration lock.
            tx.rollback().await?;
            return Err(Error::Unavailable(
                "table caseline_events was created by an older Caseline: it has no `call` \
                 column; this build does not migrate it"
                    .into(),
            ));
        }
        // Event ids were unique across the log in earlier builds; they are unique within
        // their stream now. The global index took a random leaf of its own for every
        // appended event, which at a million events made writes read and write back
        // index pages all over it.
        tx.batch_execute(GLOBAL_IDS_TO_STREAM_IDS).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.pool.get().await.map_err(|e| match e {
            PoolError::Closed => Error::Closed,
            e => e.into(),
        })
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, Error> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await?;
        client
            .query(&stmt, params)
            .await?
            .iter()
            .map(decode)
            .collect()
    }
}

/// How an insert ended.
enum Inserted {
    Stored(AppendResult, Head),
    /// Lost a race on a unique key (a stale head, a concurrent append, or a retry):
    /// decide again from what is stored now.
    Raced,
}

/// The stream's head and the stored copies of the batch's event ids, from one snapshot.
async fn lookup(
    client: &deadpool_postgres::Client,
    stream: &StreamName,
    events: &[NewEvent],
) -> Result<(Option<Head>, Vec<Option<StoredCopy>>), Error> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let statement = client.prepare_cached(LOOKUP).await?;
    let rows = client.query(&statement, &[&stream.as_str(), &ids]).await?;
    let mut head = None;
    let mut copies: Vec<Option<StoredCopy>> = events.iter().map(|_| None).collect();
    for row in &rows {
        if row.try_get::<_, i32>(0)? == 0 {
            head = Some(Head {
                version: row.try_get::<_, i64>(3)? as u64,
                hash: chain::stored_hash(row.try_get(8)?, format_args!("head of {stream}"))?,
            });
            continue;
        }
        let id: Uuid = row.try_get(1)?;
        if let Some(i) = ids.iter().position(|x| *x == id) {
            copies[i] = Some(StoredCopy {
                stream: row.try_get(2)?,
                version: row.try_get::<_, i64>(3)? as u64,
                event_type: row.try_get(4)?,
                data: row.try_get(5)?,
                position: position(row.try_get(6)?, row.try_get(7)?)?,
                actor: row.try_get(9)?,
                agency: row.try_get(10)?,
                case_id: row.try_get(11)?,
            });
        }
    }
    Ok((head, copies))
}

/// Inserts the batch after `head` (`None`: as the stream's first events) in one atomic
/// statement.
async fn insert(
    client: &deadpool_postgres::Client,
    stream: &StreamName,
    head: Option<Head>,
    events: &[NewEvent],
) -> Result<Inserted, Error> {
    let recorded_at = now_micros();
    let links = chain::link(stream, head, events, recorded_at)?;
    let (first_version, new_head) = chain::span(&links);
    let mut cols = InsertColumns::with_capacity(events.len());
    for (event, link) in events.iter().zip(&links) {
        cols.push(stream, event, recorded_at, link);
    }
    let statement = client.prepare_cached(INSERT).await?;
    match client.query(&statement, &cols.params()).await {
        Ok(rows) => {
            let mut last_position = Position::START;
            for row in &rows {
                last_position = last_position.max(position(row.try_get(1)?, row.try_get(2)?)?);
            }
            Ok(Inserted::Stored(
                AppendResult {
                    first_version,
                    last_version: new_head.version,
                    last_position,
                },
                new_head,
            ))
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Inserted::Raced),
        Err(e) => Err(e.into()),
    }
}

/// The batch as one array per column, for a single `INSERT … SELECT FROM UNNEST`.
struct InsertColumns<'a> {
    event_id: Vec<Uuid>,
    stream: Vec<&'a str>,
    version: Vec<i64>,
    event_type: Vec<&'a str>,
    data: Vec<&'a [u8]>,
    case_id: Vec<Option<Uuid>>,
    actor: Vec<&'a str>,
    actor_role: Vec<&'a str>,
    agency: Vec<&'a str>,
    request_id: Vec<Option<Uuid>>,
    correlation_id: Vec<Option<Uuid>>,
    causation_id: Vec<Option<Uuid>>,
    traceparent: Vec<Option<&'a str>>,
    call: Vec<Option<&'a str>>,
    recorded_at: Vec<i64>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl<'a> InsertColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            event_id: Vec::with_capacity(n),
            stream: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            case_id: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            actor_role: Vec::with_capacity(n),
            agency: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            correlation_id: Vec::with_capacity(n),
            causation_id: Vec::with_capacity(n),
            traceparent: Vec::with_capacity(n),
            call: Vec::with_capacity(n),
            recorded_at: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, stream: &'a StreamName, event: &'a NewEvent, recorded_at: i64, link: &Link) {
        let m = &event.metadata;
        self.event_id.push(event.event_id);
        self.stream.push(stream.as_str());
        self.version.push(link.version as i64);
        self.event_type.push(&event.event_type);
        self.data.push(&event.data);
        self.case_id.push(m.case_id);
        self.actor.push(&m.actor);
        self.actor_role.push(&m.actor_role);
        self.agency.push(&m.agency);
        self.request_id.push(m.request_id);
        self.correlation_id.push(m.correlation_id);
        self.causation_id.push(m.causation_id);
        self.traceparent.push(m.traceparent.as_deref());
        self.call.push(m.call.as_deref());
        self.recorded_at.push(recorded_at);
        self.prev_hash.push(link.prev_hash.to_vec());
        self.hash.push(link.hash.to_vec());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        [
            &self.event_id,
            &self.stream,
            &self.version,
            &self.event_type,
            &self.data,
            &self.case_id,
            &self.actor,
            &self.actor_role,
            &self.agency,
            &self.request_id,
            &self.correlation_id,
            &self.causation_id,
            &self.traceparent,
            &self.call,
            &self.recorded_at,
            &self.prev_hash,
            &self.hash,
        ]
    }
}

impl PostgresEventLog {
    /// The append itself; [`EventLog::append`] measures it.
    async fn append_now(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        validate_batch(expected, &events)?;
        let client = self.client().await?;

        // One round trip when the head is known here (or the stream is new): the unique
        // keys catch a stale head or a retry, which then take the full path below.
        let known = match (expected, self.cached_head(stream)) {
            (ExpectedVersion::NoStream, None) => Some(None),
            (_, Some(h)) if expected.accepts(Some(h.version)) => Some(Some(h)),
            _ => None,
        };
        if let Some(head) = known
            && let Inserted::Stored(result, head) = insert(&client, stream, head, &events).await?
        {
            return Ok(self.stored(stream, result, head));
        }

        for _ in 0..MAX_RACES {
            let (head, copies) = lookup(&client, stream, &events).await?;
            // A retry is recognised before the expected version: it carries the version
            // it expected the first time.
            if let Some(original) = resolve_retry(stream, &events, &copies)? {
                return Ok(original);
            }
            let actual = head.map(|h| h.version);
            if !expected.accepts(actual) {
                if let Some(head) = head {
                    self.remember(stream, head);
                }
                return Err(Error::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual,
                });
            }
            if let Inserted::Stored(result, head) = insert(&client, stream, head, &events).await? {
                return Ok(self.stored(stream, result, head));
            }
        }
        Err(Error::Unavailable(format!(
            "append to {stream} lost {MAX_RACES} races in a row"
        )))
    }
}

#[async_trait::async_trait]
impl EventLog for PostgresEventLog {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        crate::measured("postgres", self.append_now(stream, expected, events)).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let limit = clamp_limit(limit) as i64;
        let (sql, from) = match direction {
            Direction::Forwards => (
                format!(
                    "SELECT {COLUMNS} FROM caseline_events WHERE stream = $1 AND version >= $2 ORDER BY version ASC LIMIT $3"
                ),
                from.unwrap_or(0),
            ),
            Direction::Backwards => (
                format!(
                    "SELECT {COLUMNS} FROM caseline_events WHERE stream = $1 AND version <= $2 ORDER BY version DESC LIMIT $3"
                ),
                from.unwrap_or(MAX_VERSION),
            ),
        };
        let from = from.min(MAX_VERSION) as i64;
        self.query_events(&sql, &[&stream.as_str(), &from, &limit])
            .await
    }

    async fn find_event(
        &self,
        stream: &StreamName,
        event_id: Uuid,
    ) -> Result<Option<RecordedEvent>, Error> {
        Ok(self
            .query_events(
                &format!(
                    "SELECT {COLUMNS} FROM caseline_events WHERE event_id = $1 AND stream = $2"
                ),
                &[&event_id, &stream.as_str()],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn read_case(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let (tx, id) = sql_position(after);
        let limit = clamp_limit(limit) as i64;
        self.query_events(
            &format!(
                "SELECT {COLUMNS} FROM caseline_events \
                 WHERE case_id = $1 AND (tx, id) > ($2::text::xid8, $3) \
                 ORDER BY tx, id LIMIT $4"
            ),
            &[&case_id, &tx, &id, &limit],
        )
        .await
    }

    async fn read_case_events(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let (tx, id) = sql_position(after);
        let limit = clamp_limit(limit) as i64;
        self.query_events(
            &format!(
                "SELECT {COLUMNS} FROM caseline_events \
                 WHERE case_id = $1 AND (tx, id) > ($2::text::xid8, $3) \
                   AND case_id IS NOT NULL AND stream NOT LIKE 'access-%' \
                 ORDER BY tx, id LIMIT $4"
            ),
            &[&case_id, &tx, &id, &limit],
        )
        .await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, Error> {
        let (tx, id) = sql_position(after);
        let limit = clamp_limit(limit) as i64;
        self.query_events(
            &format!(
                "SELECT {COLUMNS} FROM caseline_events \
                 WHERE (tx, id) > ($1::text::xid8, $2) \
                   AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY tx, id LIMIT $3"
            ),
            &[&tx, &id, &limit],
        )
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
        // The head below the horizon, read first: everything visible later is past it.
        let head = {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    // Ordered by the columns, not by the text the select names `tx`
                    // (that sorts every row).
                    "SELECT e.tx::text AS head_tx, e.id FROM caseline_events e \
                     WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY e.tx DESC, e.id DESC LIMIT 1",
                )
                .await?;
            match client.query_opt(&stmt, &[]).await? {
                Some(row) => position(row.try_get(0)?, row.try_get(1)?)?,
                None => {
                    return Ok(ReadOf {
                        events: Vec::new(),
                        scanned_to: after,
                    });
                }
            }
        };
        if head <= after {
            return Ok(ReadOf {
                events: Vec::new(),
                scanned_to: after,
            });
        }
        let patterns = interest.like_patterns();
        let streams: Vec<&str> = interest.streams.to_vec();
        let types: Vec<&str> = interest.types.to_vec();
        let (head_tx, head_id) = sql_position(head);
        let window = SCAN_WINDOW as i64;
        let mut events = Vec::new();
        let mut from = after;
        // A window of the log at a time, walked in its order: the planner, finding
        // an interest's events rare, would otherwise read the whole table behind the
        // position and sort it, on every page (0.47 s a page at 1 000 000 events).
        loop {
            let (tx, id) = sql_position(from);
            let need = (limit - events.len()) as i64;
            let found = self
                .query_events(
                    &format!(
                        "SELECT {COLUMNS} FROM ( \
                           SELECT * FROM caseline_events \
                            WHERE (tx, id) > ($1::text::xid8, $2) \
                              AND (tx, id) <= ($7::text::xid8, $8) \
                            ORDER BY tx, id LIMIT $9) w \
                         WHERE stream LIKE ANY($4::text[]) OR stream = ANY($5::text[]) \
                            OR event_type = ANY($6::text[]) \
                         ORDER BY tx, id LIMIT $3"
                    ),
                    &[
                        &tx, &id, &need, &patterns, &streams, &types, &head_tx, &head_id, &window,
                    ],
                )
                .await?;
            let full = found.len() as i64 == need;
            events.extend(found);
            if full {
                let scanned_to = events.last().map_or(from, |e| e.position);
                return Ok(ReadOf { events, scanned_to });
            }
            // The window held fewer: on from its last event, or done at the head.
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT tx::text AS end_tx, id FROM ( \
                       SELECT tx, id FROM caseline_events \
                        WHERE (tx, id) > ($1::text::xid8, $2) \
                          AND (tx, id) <= ($3::text::xid8, $4) \
                        ORDER BY tx, id LIMIT $5) w \
                     ORDER BY tx DESC, id DESC LIMIT 1",
                )
                .await?;
            let end = match client
                .query_opt(&stmt, &[&tx, &id, &head_tx, &head_id, &window])
                .await?
            {
                Some(row) => position(row.try_get(0)?, row.try_get(1)?)?,
                None => head,
            };
            if end >= head {
                return Ok(ReadOf {
                    events,
                    scanned_to: head,
                });
            }
            from = end;
        }
    }

    fn appended(&self) -> watch::Receiver<Position> {
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        // Other services append to the same database; this bounds how late we see them.
        Duration::from_millis(100)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pool.close();
    }
}

/// A position as the query parameters of `(tx, id)`: the transaction id as text (cast
/// to `xid8` in the query) and the row id. The inverse of [`position`].
fn sql_position(position: Position) -> (String, i64) {
    let (tx, id) = position.parts();
    (tx.to_string(), id.min(i64::MAX as u64) as i64)
}

fn position(tx: String, id: i64) -> Result<Position, Error> {
    let tx: u64 = tx.parse().map_err(|_| Error::Corrupt {
        position: format!("{tx}/{id}"),
        reason: "transaction id is not a number".into(),
    })?;
    Ok(Position::from_parts(tx, id as u64))
}

fn decode(row: &Row) -> Result<RecordedEvent, Error> {
    let position = position(row.try_get(0)?, row.try_get(1)?)?;
    let corrupt = |reason: &str| Error::Corrupt {
        position: position.to_string(),
        reason: reason.to_owned(),
    };
    let hash = |i: usize| chain::stored_hash(row.try_get(i)?, position);
    let stream: String = row.try_get(3)?;
    Ok(RecordedEvent {
        position,
        event_id: row.try_get(2)?,
        stream: StreamName::new(stream).map_err(|_| corrupt("malformed stream name"))?,
        version: row.try_get::<_, i64>(4)? as u64,
        event_type: row.try_get(5)?,
        data: row.try_get(6)?,
        metadata: Metadata {
            case_id: row.try_get(7)?,
            actor: row.try_get(8)?,
            actor_role: row.try_get(9)?,
            agency: row.try_get(10)?,
            request_id: row.try_get(11)?,
            correlation_id: row.try_get(12)?,
            causation_id: row.try_get(13)?,
            traceparent: row.try_get(14)?,
            call: row.try_get(15)?,
        },
        recorded_at: from_micros(row.try_get(16)?),
        prev_hash: hash(17)?,
        hash: hash(18)?,
    })
}

/// A schema of its own on a PostgreSQL server, for a benchmark or a test run: created
/// with a fresh name, and dropped (with everything in it) when this is dropped, even
/// after a failure.
#[derive(Debug)]
pub struct ScratchSchema {
    server: String,
    name: String,
}

/// The PostgreSQL server the tests run against: `CASELINE_TEST_DATABASE_URL`, by default
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn test_database_url() -> String {
    std::env::var("CASELINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl ScratchSchema {
    /// A schema on the tests' server ([`test_database_url`]); panics, saying how to
    /// start a server, if PostgreSQL does not answer.
    pub async fn for_test(prefix: &str) -> Self {
        let url = test_database_url();
        Self::create(&url, prefix).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for this test and did not answer at {url}: {e}. \
                 Start one (e.g. `pg_ctlcluster 15 main start`) or point \
                 CASELINE_TEST_DATABASE_URL at a server."
            )
        })
    }

    /// Creates `<prefix>_<random>` on the server at `server_url`. The error says the
    /// server did not answer, without repeating the URL (it may hold a password).
    pub async fn create(server_url: &str, prefix: &str) -> Result<Self, Error> {
        let (admin, connection) = tokio_postgres::connect(server_url, NoTls).await?;
        let connection = tokio::spawn(connection);
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        drop(admin);
        let _ = connection.await;
        Ok(Self {
            server: server_url.to_owned(),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A configuration whose connections use the schema.
    pub fn config(&self) -> Result<tokio_postgres::Config, Error> {
        let mut config: tokio_postgres::Config = self
            .server
            .parse()
            .map_err(|_| Error::invalid("url", "malformed postgres url"))?;
        config.options(format!("-c search_path={}", self.name));
        Ok(config)
    }

    /// The server's URL with `options=-c search_path=<schema>`, for a process that is
    /// given a URL.
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.server, self.name
        )
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        // On a runtime of its own (Drop cannot await, and may run outside one).
        let (url, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(connection);
                    if let Err(e) = client
                        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                        .await
                    {
                        tracing::warn!(schema = %name, error = %e, "scratch schema not dropped");
                    }
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL server of its own, made with `initdb` in a fresh directory and started on
/// a free loopback port, whose next transaction id is set with `pg_resetwal -x`: for
/// tests of what happens when transaction ids grow past a boundary (a power of ten, say)
/// that a long-lived server crosses after some months, and a fresh one never reaches in
/// a test. Stopped (immediately) and removed when dropped.
///
/// The server's programs are looked for in `CASELINE_TEST_PG_BINDIR`, then in the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), then on `PATH`. Run as root, the
/// programs run as the `postgres` user (through `runuser`), since PostgreSQL refuses to
/// run as root.
#[derive(Debug)]
pub struct ScratchCluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    run_as: Option<&'static str>,
    port: u16,
}

impl ScratchCluster {
    /// Makes and starts a server whose next transaction id is `next_xid` (at least 3).
    /// The error says what was missing or failed, and how to provide it.
    pub fn start(next_xid: u32) -> Result<Self, String> {
        use std::os::unix::fs::MetadataExt;
        let bin = Self::bindir()?;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = std::env::temp_dir().join(format!("caseline-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).map_err(|e| format!("scratch directory: {e}"))?;
        let mut cluster = Self {
            bin,
            dir,
            run_as: root.then_some("postgres"),
            port: 0,
        };
        if root {
            // As root itself: the directory becomes the server user's.
            run_program("chown", &["postgres:", &cluster.dir_str()], None)?;
        }
        let data = cluster.data_str();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            true,
        )?;
        cluster.run(
            "pg_resetwal",
            &["-x", &next_xid.to_string(), "-D", &data],
            true,
        )?;
        // The commit log's segment holding `next_xid` must exist, whole: 32 pages of 8 KiB,
        // each covering 32 768 transactions (zeros: none of them ever ran).
        let segment = format!("{data}/pg_xact/{:04X}", next_xid / (32 * 32_768));
        cluster.run("truncate", &["-s", "262144", &segment], false)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        cluster.port = port;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            cluster.dir_str()
        );
        let log = format!("{}/server.log", cluster.dir_str());
        cluster.run(
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
            ],
            true,
        )?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    fn data_str(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn bindir() -> Result<std::path::PathBuf, String> {
        use std::path::PathBuf;
        let has_initdb = |dir: &PathBuf| dir.join("initdb").is_file();
        if let Some(dir) = std::env::var_os("CASELINE_TEST_PG_BINDIR").map(PathBuf::from) {
            return if has_initdb(&dir) {
                Ok(dir)
            } else {
                Err("CASELINE_TEST_PG_BINDIR holds no initdb".into())
            };
        }
        let newest_debian = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, bin)| has_initdb(bin))
            .max();
        if let Some((_, bin)) = newest_debian {
            return Ok(bin);
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .find(|dir| has_initdb(dir) && dir.join("pg_resetwal").is_file())
            .ok_or_else(|| {
                "the PostgreSQL server programs (initdb, pg_resetwal, pg_ctl) were not found: \
                 install them (Debian: apt-get install postgresql) or set \
                 CASELINE_TEST_PG_BINDIR to their directory"
                    .into()
            })
    }

    /// Runs `program` (from the server's directory if `server`), as `postgres` when this
    /// process is root.
    fn run(&self, program: &str, args: &[&str], server: bool) -> Result<(), String> {
        let path = if server {
            self.bin.join(program).display().to_string()
        } else {
            program.to_owned()
        };
        run_program(&path, args, self.run_as)
    }
}

/// Runs `path` with `args`, as `user` if given (through `runuser`); the error quotes
/// its output.
fn run_program(path: &str, args: &[&str], user: Option<&str>) -> Result<(), String> {
    let mut command = match user {
        Some(user) => {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", user, "--", path]);
            c
        }
        None => std::process::Command::new(path),
    };
    let output = command
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{path} did not run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{path} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data_str();
            let _ = self.run(
                "pg_ctl",
                &["-D", &data, "-m", "immediate", "-w", "stop"],
                true,
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
