//! Caseline's one immutable event log.
//!
//! Every state change in Caseline is an event appended here; read models are
//! projections rebuilt from it. This crate owns the contract ([`EventLog`]), the
//! envelope, the per-stream hash chain, catch-up subscriptions, and the backends:
//! [`sqlite::SqliteEventLog`] (embedded, the default),
//! [`postgres::PostgresEventLog`] (shared by separate services) and, with the cargo
//! feature `kurrentdb`, `kurrentdb::KurrentDbEventLog` (KurrentDB / EventStoreDB).
//!
//! Rules every backend keeps:
//! - nothing stored is ever updated or deleted;
//! - an append is atomic for its batch and checks the expected version;
//! - appending event ids that are already stored in the stream returns the original
//!   result and stores nothing (event ids are unique within their stream: a log-wide
//!   index of them cost every append a random page of it at a million events);
//! - global order is total, and a reader following it never skips a committed event.
#![forbid(unsafe_code)]

mod chain;
mod envelope;
mod error;
mod idempotency;
mod interest;
#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;
pub mod postgres;
pub mod sqlite;
mod subscription;

use std::sync::Arc;
use std::time::Duration;

pub use chain::{BrokenKind, BrokenLink, GENESIS, VerifyReport};
pub use envelope::{
    AppendResult, Direction, ExpectedVersion, MAX_BATCH_EVENTS, MAX_CALL_CONTEXT_BYTES,
    MAX_EVENT_BYTES, Metadata, NewEvent, Position, RecordedEvent, StreamName,
};
pub use error::Error;
pub use interest::{Interest, ReadOf};
pub use subscription::{Subscription, catch_up, subscribe};
use tokio::sync::watch;
pub use uuid::Uuid;

/// Largest page any read returns; larger limits are clamped to it.
pub const MAX_READ_EVENTS: usize = 10_000;

/// The event log contract of DESIGN.md, implemented by every backend.
#[async_trait::async_trait]
pub trait EventLog: std::fmt::Debug + Send + Sync + 'static {
    /// Appends `events` to `stream` atomically if the stream is at `expected`.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error>;

    /// Up to `limit` events of one stream. Forwards from version `from` (default: the
    /// first) upwards, or backwards from `from` (default: the last) downwards. An absent
    /// stream reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error>;

    /// Up to `limit` events of one child's case, across all its streams, in global
    /// order, after `after`: everything committed now, the caller's own writes included.
    /// Pages are for reading a settled history; a consumer that must never miss an event
    /// of a case while others write follows [`subscribe`] instead, because on PostgreSQL
    /// a transaction that began earlier may still commit below the last position read.
    async fn read_case(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error>;

    /// [`EventLog::read_case`] without the case's access stream (`access-<id>`: access
    /// records and break-glass grants), which grows with every read of the case: what
    /// happened to the child, not who looked. Backends index this; the default filters.
    /// Like `read_case` it shows the caller's own writes at once; so on PostgreSQL a
    /// page read while another stream of the case is being written may end past an
    /// event that commits a moment later below it (the `read_all` guard against that
    /// would hold back every read while any transaction of the cluster is open).
    async fn read_case_events(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let mut after = after;
        let mut out = Vec::new();
        loop {
            let page = self.read_case(case_id, after, limit).await?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            after = last.position;
            let full = page.len() >= clamp_limit(limit);
            out.extend(page.into_iter().filter(|e| !is_access_stream(&e.stream)));
            if out.len() >= limit || !full {
                out.truncate(clamp_limit(limit));
                return Ok(out);
            }
        }
    }

    /// Up to `limit` events of the whole log in global order after `after`. Never skips:
    /// an event not returned now has a position greater than every position returned.
    /// It may therefore lag a commit while an older transaction is still running
    /// (PostgreSQL); readers that need their own writes use `read_stream`/`read_case`.
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, Error>;

    /// Up to `limit` events that `interest` admits after `after`, in global order, with
    /// the guarantee of [`EventLog::read_all`], and how far the log was looked through:
    /// a projection catching up reads only its own events (a case directory need not
    /// read every access record) and moves past the others. Fewer than `limit` events
    /// means the end of what the log holds now. This default reads pages of the whole
    /// log; SQLite and PostgreSQL filter in the query.
    async fn read_of(
        &self,
        interest: &Interest,
        after: Position,
        limit: usize,
    ) -> Result<ReadOf, Error> {
        let limit = clamp_limit(limit);
        let mut events = Vec::new();
        let mut scanned_to = after;
        loop {
            let page = self.read_all(scanned_to, limit).await?;
            let full = page.len() == limit;
            for event in page {
                if events.len() == limit {
                    return Ok(ReadOf { events, scanned_to });
                }
                scanned_to = event.position;
                if interest.admits(&event) {
                    events.push(event);
                }
            }
            if events.len() == limit || !full {
                return Ok(ReadOf { events, scanned_to });
            }
        }
    }

    /// Changes whenever this process commits an append; subscriptions wake on it.
    fn appended(&self) -> watch::Receiver<Position>;

    /// How often a live subscription re-reads when nothing in this process appended:
    /// the delay before it sees another process's writes.
    fn poll_interval(&self) -> Duration;

    /// Closes the log: pending appends finish, later calls get [`Error::Closed`].
    async fn close(&self);

    /// The event `event_id` of `stream`, if it is stored there: how a command recognises
    /// a retry of a request older than the ones it remembers (event ids derive from the
    /// request). This default reads the stream backwards (time grows with the stream);
    /// SQLite and PostgreSQL answer from the unique index of event ids by stream.
    async fn find_event(
        &self,
        stream: &StreamName,
        event_id: Uuid,
    ) -> Result<Option<RecordedEvent>, Error> {
        const PAGE: usize = 1000;
        let mut from = None;
        loop {
            let page = self
                .read_stream(stream, Direction::Backwards, from, PAGE)
                .await?;
            if let Some(found) = page.iter().find(|e| e.event_id == event_id) {
                return Ok(Some(found.clone()));
            }
            match page.last() {
                Some(last) if page.len() == PAGE && last.version > 0 => {
                    from = Some(last.version - 1)
                }
                _ => return Ok(None),
            }
        }
    }

    /// The version of the stream's last event, or `None` if it does not exist.
    async fn stream_version(&self, stream: &StreamName) -> Result<Option<u64>, Error> {
        let last = self
            .read_stream(stream, Direction::Backwards, None, 1)
            .await?;
        Ok(last.first().map(|e| e.version))
    }

    /// Recomputes the stream's hash chain and reports the first broken link.
    async fn verify_stream(&self, stream: &StreamName) -> Result<VerifyReport, Error> {
        const PAGE: usize = 1000;
        let mut verifier = chain::ChainVerifier::new();
        let mut from = 0;
        loop {
            let page = self
                .read_stream(stream, Direction::Forwards, Some(from), PAGE)
                .await?;
            for event in &page {
                if !verifier.check(event) {
                    return Ok(verifier.report);
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => from = last.version + 1,
                _ => return Ok(verifier.report),
            }
        }
    }
}

/// Opens the event log named by `url`: `sqlite:PATH`, `postgres://…` /
/// `postgresql://…`, or (feature `kurrentdb`) `kurrentdb://…` / `esdb://…` and their
/// `+discover` forms.
pub async fn open(url: &str) -> Result<Arc<dyn EventLog>, Error> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        Ok(Arc::new(sqlite::SqliteEventLog::open(path).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresEventLog::connect(url).await?))
    } else if is_kurrentdb_url(url) {
        open_kurrentdb(url).await
    } else {
        Err(Error::invalid(
            "event_log",
            "unsupported url: use sqlite:PATH, postgres://… or kurrentdb://…",
        ))
    }
}

/// KurrentDB connection strings: `kurrentdb://`, `esdb://` and their `+discover` forms
/// (a cluster found through DNS).
pub(crate) fn is_kurrentdb_url(url: &str) -> bool {
    [
        "kurrentdb://",
        "esdb://",
        "kurrentdb+discover://",
        "esdb+discover://",
    ]
    .iter()
    .any(|scheme| url.starts_with(scheme))
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: &str) -> Result<Arc<dyn EventLog>, Error> {
    Ok(Arc::new(
        crate::kurrentdb::KurrentDbEventLog::connect(url).await?,
    ))
}

#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(_url: &str) -> Result<Arc<dyn EventLog>, Error> {
    Err(Error::invalid(
        "event_log",
        "a kurrentdb url needs the KurrentDB backend, but caseline-eventlog was built \
         without the kurrentdb feature (build with `--features caseline-eventlog/kurrentdb`)",
    ))
}

/// Streams of the `access` category hold access records and break-glass grants.
pub(crate) fn is_access_stream(stream: &StreamName) -> bool {
    stream.as_str().starts_with("access-")
}

pub(crate) fn clamp_limit(limit: usize) -> usize {
    limit.min(MAX_READ_EVENTS)
}

/// Runs a backend's `append` and records its latency as the caller waits for it, and
/// how it ended, under `backend`.
pub(crate) async fn measured(
    backend: &'static str,
    append: impl std::future::Future<Output = Result<AppendResult, Error>>,
) -> Result<AppendResult, Error> {
    let started = std::time::Instant::now();
    let result = append.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(Error::WrongExpectedVersion { .. }) => "conflict",
        Err(Error::InvalidInput { .. } | Error::TooLarge { .. }) => "invalid",
        Err(Error::EventIdConflict { .. }) => "id_conflict",
        Err(Error::Unavailable(_) | Error::Corrupt { .. } | Error::Closed) => "error",
    };
    caseline_telemetry::metrics::append_answered(backend, outcome, started.elapsed());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KurrentDB url is dispatched to that backend, or refused by name when it is not
    /// built; neither repeats the url (it may carry a password).
    #[tokio::test]
    async fn kurrentdb_urls_reach_their_backend() {
        for url in [
            "kurrentdb://admin:s3cret@",
            "esdb://admin:s3cret@",
            "kurrentdb+discover://admin:s3cret@",
            "esdb+discover://admin:s3cret@",
        ] {
            match open(url).await {
                Err(Error::InvalidInput { field, reason }) => {
                    assert_eq!(field, "event_log");
                    if cfg!(feature = "kurrentdb") {
                        assert_eq!(reason, "malformed kurrentdb url");
                    } else {
                        assert!(
                            reason.contains("built without the kurrentdb feature"),
                            "{reason}"
                        );
                    }
                    assert!(!reason.contains("s3cret"), "{reason}");
                }
                other => panic!("{url}: expected the url refused, got {other:?}"),
            }
        }
    }
}
