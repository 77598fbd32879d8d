//! The event log on KurrentDB (formerly EventStoreDB), through the official gRPC client;
//! built only with the cargo feature `kurrentdb`.
//!
//! How the contract maps onto the server:
//! - A Caseline stream is the KurrentDB stream of the same name; an event's version is
//!   its stream revision.
//! - An event's [`Position`] is its `$all` position `(commit, prepare)`, packed as
//!   `Position::from_parts(commit, prepare)`, so positions order as `$all` does.
//! - The payload is the event's data (`application/octet-stream`). Everything else the
//!   envelope holds (metadata, recorded time, `prev_hash`, `hash`) is the event's
//!   metadata, as one JSON object tagged `"caseline": 1`, with `$correlationId` = the
//!   case id (and `$causationId` = the causation id) so that the server's
//!   `$by_correlation_id` projection links every event of a case into `$bc-<case id>`.
//!
//! Appends read the stream's head, chain the batch onto it and append at exactly that
//! revision, whatever the caller's `ExpectedVersion` (`Any` included): the hash chain
//! needs the head. A lost race reads only the events appended above the head it saw and
//! decides again. KurrentDB enforces event-id uniqueness only loosely (per stream, for
//! recent writes), so retries are recognised here: first from what this process
//! remembers of recent appends (the last [`REMEMBERED_IDS`] event ids it stored or found
//! stored, payloads as SHA-256), which answers a retry through the same process without
//! a read; otherwise by reading the stream where the retry's expected version says the
//! original went (`NoStream`, `Exact`), or, for `Any`, among the stream's events of the
//! last [`RETRY_HORIZON`] (at most [`MAX_LOOKBACK`] of them). When only part of a batch
//! is found, the rest is read where the found part puts it, so the batch is judged
//! whole. Event ids are unique within their stream, as on the other backends: an id
//! stored in another stream is no clash.
//!
//! Every call takes the client handle once, when it begins, and keeps it to the end:
//! `close` drops the log's handle, so later calls get `Closed` while an append under
//! way still reads its batch back and reports it.
//!
//! `read_all` reads `$all` with a server-side filter on Caseline's stream grammar and
//! skips anything Caseline did not write (system events, link events, other
//! applications). `$all` only shows indexed events, which the server indexes in log
//! order, so a reader never skips one. `read_case` reads `$bc-<case id>` with links
//! resolved; the projection fills it asynchronously, so a read first waits until the
//! links of the events this process appended to the case are there.
//!
//! Never logged or put in an error: event data or metadata values (only stream names,
//! case ids, event ids and positions), nor the connection URL (it may hold a password).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use ::kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadAllOptions, ReadStreamOptions,
    ResolvedEvent, StreamPosition, StreamState, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use crate::chain::{self, Head, Link};
use crate::envelope::{MAX_VERSION, from_micros, now_micros, to_micros, validate_batch};
use crate::idempotency::{StoredCopy, resolve_retry};
use crate::subscription::announce;
use crate::{
    AppendResult, Direction, Error, EventLog, ExpectedVersion, Metadata, NewEvent, Position,
    RecordedEvent, StreamName, clamp_limit,
};

/// The version of the metadata layout, stored as `"caseline"` in every event's metadata.
/// It also marks the events Caseline wrote.
const FORMAT: u32 = 1;
/// How many times an append is re-decided after losing a race before giving up.
const MAX_RACES: usize = 64;
/// How far back an `Any` append looks for a stored copy of its batch: a retry after a
/// longer pause with `Any` is stored again.
pub const RETRY_HORIZON: Duration = Duration::from_secs(15 * 60);
/// The most events an `Any` append reads back looking for a stored copy of its batch.
pub const MAX_LOOKBACK: usize = 1000;
const LOOKBACK_PAGE: usize = 100;
/// How many event ids of recent appends this process remembers (with what is stored
/// under them), so that a retry through it is decided without reading the stream. The
/// oldest remembered id is forgotten first.
pub const REMEMBERED_IDS: usize = 4096;
const READ_DEADLINE: Duration = Duration::from_secs(30);
const APPEND_DEADLINE: Duration = Duration::from_secs(10);
/// How long `read_case` waits for `$by_correlation_id` to link this process's writes.
const LINK_WAIT: Duration = Duration::from_secs(10);
/// Cases whose links this process still waits for; beyond this the list starts afresh.
const CASE_CACHE: usize = 65_536;
/// Server-side filter of `read_all`: Caseline's stream grammar (`<category>-<id>`)
/// leaves out every `$` stream (system events, projections' links and state).
const CASELINE_STREAMS: &str = "^[a-z_]+-";

/// The KurrentDB event log.
pub struct KurrentDbEventLog {
    /// `None` once closed.
    client: Mutex<Option<Client>>,
    signal: watch::Sender<Position>,
    /// Per case, the position of the last event this process appended to it whose link
    /// in `$bc-<case>` has not been seen yet.
    unlinked: Mutex<HashMap<Uuid, Position>>,
    /// What this process stored, or found stored, under recent event ids.
    recent: Mutex<Recent>,
}

impl fmt::Debug for KurrentDbEventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KurrentDbEventLog")
            .field("closed", &self.client().is_err())
            .finish_non_exhaustive()
    }
}

impl KurrentDbEventLog {
    /// Connects with a `kurrentdb://`, `esdb://`, `kurrentdb+discover://` or
    /// `esdb+discover://` URL (the client's connection string, e.g.
    /// `kurrentdb://localhost:2113?tls=false`) and checks that `$all` can be read.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let settings = settings(url)?;
        // The client's TLS is rustls on aws-lc-rs. Another part of the process may have
        // installed a provider already, which serves as well: the error is ignored.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = Client::new(settings)
            .map_err(|e| Error::Unavailable(format!("cannot create the kurrentdb client: {e}")))?;
        let log = Self {
            client: Mutex::new(Some(client)),
            signal: watch::channel(Position::START).0,
            unlinked: Mutex::new(HashMap::new()),
            recent: Mutex::new(Recent::default()),
        };
        log.head_position().await?;
        Ok(log)
    }

    /// The `$all` position of the last event stored now, by any writer (system events
    /// included), or [`Position::START`] for an empty database: a checkpoint from which
    /// to follow only what is appended from now on.
    pub async fn head_position(&self) -> Result<Position, Error> {
        let client = self.client()?;
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(1)
            .requires_leader(true)
            .deadline(READ_DEADLINE);
        let last = collect(client.read_all(&options).await, &"$all").await?;
        Ok(last
            .first()
            .and_then(|e| e.event.as_ref().or(e.link.as_ref()))
            .map_or(Position::START, |r| to_position(r.position)))
    }

    fn client(&self) -> Result<Client, Error> {
        self.client
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or(Error::Closed)
    }

    /// Up to `count` events of `stream` as the server returns them; an absent stream is
    /// empty. Backwards from `None` is from the end. `client` is the handle the calling
    /// operation took when it began, so an operation under way finishes after `close`.
    async fn read_raw(
        client: &Client,
        stream: &str,
        direction: Direction,
        from: Option<u64>,
        count: usize,
        resolve_links: bool,
    ) -> Result<Vec<ResolvedEvent>, Error> {
        let start = match (direction, from) {
            (_, Some(v)) if v <= MAX_VERSION => StreamPosition::Position(v),
            (Direction::Forwards, None) => StreamPosition::Start,
            // No version is stored beyond the largest storable one.
            (Direction::Forwards, Some(_)) => return Ok(Vec::new()),
            (Direction::Backwards, _) => StreamPosition::End,
        };
        if count == 0 {
            return Ok(Vec::new());
        }
        // `position` sets a direction of its own for Start and End: set ours after it.
        let options = ReadStreamOptions::default()
            .position(start)
            .max_count(count)
            .requires_leader(true)
            .deadline(READ_DEADLINE);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        };
        let options = if resolve_links {
            options.resolve_link_tos()
        } else {
            options
        };
        collect(client.read_stream(stream, &options).await, &stream).await
    }

    /// Events of a Caseline stream, decoded; anything Caseline did not write there is
    /// corruption.
    async fn read_events(
        client: &Client,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        count: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        Self::read_raw(client, stream.as_str(), direction, from, count, false)
            .await?
            .iter()
            .map(|resolved| {
                let record = resolved.event.as_ref().ok_or_else(|| Error::Corrupt {
                    position: format!("stream {stream}"),
                    reason: "the server returned a read without its event".into(),
                })?;
                decode(record)?.ok_or_else(|| Error::Corrupt {
                    position: to_position(record.position).to_string(),
                    reason: "event in a caseline stream was not written by caseline".into(),
                })
            })
            .collect()
    }

    /// Reads what `look` does not know yet of the stream: on the first call the head
    /// (and, for `Any`, the stream's recent past), afterwards only the events appended
    /// above the head seen last time. Stored copies of the batch are kept in `look`.
    async fn look_up(
        client: &Client,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: &[NewEvent],
        look: &mut Lookup,
    ) -> Result<(), Error> {
        if !look.read {
            look.read = true;
            Self::first_look(client, stream, expected, events, look).await
        } else {
            Self::look_above_head(client, stream, look).await
        }
    }

    /// The head; for `Any`, also the stream's recent past, newest first. A retry carries
    /// the expected version of its first try: where that put the batch, it is looked for
    /// at any age.
    async fn first_look(
        client: &Client,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: &[NewEvent],
        look: &mut Lookup,
    ) -> Result<(), Error> {
        let horizon = now_micros().saturating_sub(RETRY_HORIZON.as_micros() as i64);
        let (mut from, mut page_size, mut scanned) = (None, 1, 0);
        loop {
            let page =
                Self::read_events(client, stream, Direction::Backwards, from, page_size).await?;
            let (full, lowest) = (page.len() == page_size, page.last().map(|e| e.version));
            let mut reached_old = false;
            for event in page {
                look.head.get_or_insert(Head {
                    version: event.version,
                    hash: event.hash,
                });
                reached_old = to_micros(event.recorded_at) < horizon;
                scanned += 1;
                look.copies.keep(event);
                if reached_old {
                    break;
                }
            }
            let Some(lowest) = lowest.filter(|v| *v > 0) else {
                break;
            };
            if expected != ExpectedVersion::Any || reached_old || !full || scanned >= MAX_LOOKBACK {
                break;
            }
            from = Some(lowest - 1);
            page_size = LOOKBACK_PAGE.min(MAX_LOOKBACK - scanned);
        }

        let at = match expected {
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(v) => v.checked_add(1),
            ExpectedVersion::Any => None,
        };
        if let (Some(at), Some(h)) = (at, look.head)
            && h.version >= at
            && !look.copies.complete()
        {
            for event in
                Self::read_events(client, stream, Direction::Forwards, Some(at), events.len())
                    .await?
            {
                look.copies.keep(event);
            }
        }
        Ok(())
    }

    /// After a lost race: the events appended since the head seen last time, and the
    /// new head. What lies below that head was looked at already.
    async fn look_above_head(
        client: &Client,
        stream: &StreamName,
        look: &mut Lookup,
    ) -> Result<(), Error> {
        loop {
            let from = look.head.map_or(Some(0), |h| h.version.checked_add(1));
            let Some(from) = from else {
                return Ok(());
            };
            let page = Self::read_events(
                client,
                stream,
                Direction::Forwards,
                Some(from),
                LOOKBACK_PAGE,
            )
            .await?;
            let full = page.len() == LOOKBACK_PAGE;
            for event in page {
                if look.head.is_some_and(|h| event.version <= h.version) {
                    continue;
                }
                look.head = Some(Head {
                    version: event.version,
                    hash: event.hash,
                });
                look.copies.keep(event);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// When some of the batch's ids were found in this stream but not all (a batch
    /// reaching below the look-back, or remembered only in part), reads where the whole
    /// batch would lie if the found copy is where a faithful retry puts it, so the
    /// decision is taken on the full set.
    async fn complete_found(
        client: &Client,
        stream: &StreamName,
        events: &[NewEvent],
        copies: &mut Copies,
    ) -> Result<(), Error> {
        if copies.complete() {
            return Ok(());
        }
        let Some(start) = copies.batch_start(stream) else {
            return Ok(());
        };
        for event in Self::read_events(
            client,
            stream,
            Direction::Forwards,
            Some(start),
            events.len(),
        )
        .await?
        {
            copies.keep(event);
        }
        Ok(())
    }

    /// What this process remembers stored under the batch's event ids in `stream`.
    fn recall(&self, stream: &StreamName, events: &[NewEvent]) -> Vec<Option<StoredCopy>> {
        let recent = self.recent.lock().ok();
        events
            .iter()
            .map(|event| {
                recent
                    .as_ref()
                    .and_then(|r| r.get(stream, &event.event_id))
                    .map(|r| r.copy_for(event))
            })
            .collect()
    }

    /// Remembers what is stored under these ids, for retries through this process.
    fn remember(&self, stored: impl IntoIterator<Item = (Uuid, Remembered)>) {
        if let Ok(mut recent) = self.recent.lock() {
            for (event_id, copy) in stored {
                recent.insert(event_id, copy);
            }
        }
    }

    /// Reads the batch just appended back: its `$all` positions exist only once stored.
    async fn stored(
        &self,
        client: &Client,
        stream: &StreamName,
        events: &[NewEvent],
        links: &[Link],
    ) -> Result<AppendResult, Error> {
        let (first_version, head) = chain::span(links);
        let read = Self::read_raw(
            client,
            stream.as_str(),
            Direction::Forwards,
            Some(first_version),
            events.len(),
            false,
        )
        .await?;
        let unexpected = || {
            Error::Unavailable(format!(
                "{stream} did not read back the {} events appended at version {first_version}",
                events.len()
            ))
        };
        if read.len() != events.len() {
            return Err(unexpected());
        }
        let mut last_position = Position::START;
        let mut cases = Vec::new();
        let mut remembered = Vec::with_capacity(events.len());
        for (resolved, sent) in read.iter().zip(events) {
            let record = resolved.event.as_ref().ok_or_else(unexpected)?;
            if record.id != sent.event_id {
                return Err(unexpected());
            }
            let position = known_position(record)?;
            last_position = last_position.max(position);
            if let Some(case_id) = sent.metadata.case_id {
                cases.push((case_id, position));
            }
            remembered.push((
                sent.event_id,
                Remembered::of_sent(stream, record.revision, position, sent),
            ));
        }
        self.remember(remembered);
        self.remember_unlinked(cases);
        announce(&self.signal, last_position);
        Ok(AppendResult {
            first_version,
            last_version: head.version,
            last_position,
        })
    }

    fn remember_unlinked(&self, cases: impl IntoIterator<Item = (Uuid, Position)>) {
        let Ok(mut unlinked) = self.unlinked.lock() else {
            return;
        };
        for (case_id, position) in cases {
            if unlinked.len() >= CASE_CACHE && !unlinked.contains_key(&case_id) {
                // Links older than this many cases' writes have long been made.
                unlinked.clear();
            }
            let known = unlinked.entry(case_id).or_insert(position);
            *known = (*known).max(position);
        }
    }

    /// Waits until `$bc-<case>` links the last event this process appended to the case,
    /// so that a read shows the caller's own writes.
    async fn await_links(&self, client: &Client, case_id: Uuid, bc: &str) -> Result<(), Error> {
        let wanted = self
            .unlinked
            .lock()
            .ok()
            .and_then(|u| u.get(&case_id).copied());
        let Some(wanted) = wanted else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + LINK_WAIT;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some((_, linked)) = Self::link_at(client, bc, None).await?
                && linked >= wanted
            {
                if let Ok(mut unlinked) = self.unlinked.lock()
                    && unlinked.get(&case_id).is_some_and(|p| *p <= linked)
                {
                    unlinked.remove(&case_id);
                }
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "the $by_correlation_id projection has not linked the events appended \
                     to case {case_id} within {} s: is it running \
                     (--run-projections=All --start-standard-projections)?",
                    LINK_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The revision in `$bc-…` and the resolved event's position of the first link at or
    /// after revision `at`, or of the last link when `at` is `None`.
    async fn link_at(
        client: &Client,
        bc: &str,
        at: Option<u64>,
    ) -> Result<Option<(u64, Position)>, Error> {
        let direction = if at.is_some() {
            Direction::Forwards
        } else {
            Direction::Backwards
        };
        let page = Self::read_raw(client, bc, direction, at, 1, true).await?;
        let Some(resolved) = page.first() else {
            return Ok(None);
        };
        let Some(link) = resolved.link.as_ref().or(resolved.event.as_ref()) else {
            return Ok(None);
        };
        let original = resolved
            .event
            .as_ref()
            .ok_or_else(|| unresolved_link(bc, link.revision))?;
        Ok(Some((link.revision, known_position(original)?)))
    }

    /// The first revision of `$bc-…` whose event lies after `after`, by bisection: the
    /// projection links events in `$all` order, so positions grow with revisions.
    async fn first_after(client: &Client, bc: &str, after: Position) -> Result<Option<u64>, Error> {
        let Some((last, position)) = Self::link_at(client, bc, None).await? else {
            return Ok(None);
        };
        if position <= after {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0, last);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match Self::link_at(client, bc, Some(mid)).await? {
                Some((revision, position)) if position <= after => lo = revision.max(mid) + 1,
                _ => hi = mid,
            }
        }
        Ok(Some(lo))
    }
}

impl KurrentDbEventLog {
    /// The append itself; [`EventLog::append`] measures it.
    async fn append_now(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        validate_batch(expected, &events)?;
        if events.iter().any(|e| e.event_type.starts_with('$')) {
            return Err(Error::invalid(
                "event_type",
                "must not start with '$', which KurrentDB reserves for system events",
            ));
        }
        let client = self.client()?;
        // What this process stored under these ids itself answers most retries without
        // a read; what it does not know is looked for in the stream.
        let mut look = Lookup::new(&events, self.recall(stream, &events));
        for attempt in 0..MAX_RACES {
            if !look.copies.any() {
                Self::look_up(&client, stream, expected, &events, &mut look).await?;
            }
            Self::complete_found(&client, stream, &events, &mut look.copies).await?;
            // A retry is recognised before the expected version: it carries the version
            // it expected the first time.
            if let Some(original) = resolve_retry(stream, &events, &look.copies.slots)? {
                let found = look.copies.slots.iter().flatten();
                self.remember_unlinked(
                    found
                        .clone()
                        .filter_map(|c| c.case_id.map(|case_id| (case_id, c.position))),
                );
                self.remember(
                    events
                        .iter()
                        .zip(found)
                        .map(|(e, c)| (e.event_id, Remembered::of_copy(c))),
                );
                return Ok(original);
            }
            let head = look.head;
            let actual = head.map(|h| h.version);
            if !expected.accepts(actual) {
                return Err(Error::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual,
                });
            }
            let recorded_at = now_micros();
            let links = chain::link(stream, head, &events, recorded_at)?;
            let proposed = events
                .iter()
                .zip(&links)
                .map(|(event, link)| {
                    Ok(
                        EventData::binary(&event.event_type, event.data.clone().into())
                            .id(event.event_id)
                            .metadata(encode(event, recorded_at, link)?.into()),
                    )
                })
                .collect::<Result<Vec<_>, Error>>()?;
            // Exactly the head read, whatever `expected` was: the chain was built on it.
            let state = head.map_or(StreamState::NoStream, |h| {
                StreamState::StreamRevision(h.version)
            });
            let options = AppendToStreamOptions::default()
                .stream_state(state)
                .requires_leader(true)
                .deadline(APPEND_DEADLINE);
            match client
                .append_to_stream(stream.as_str(), &options, proposed)
                .await
            {
                Ok(_) => return self.stored(&client, stream, &events, &links).await,
                Err(::kurrentdb::Error::WrongExpectedVersion { .. }) => {
                    tracing::debug!(%stream, attempt, "append lost a race; deciding again");
                }
                Err(e) => return Err(failed(e, stream)),
            }
        }
        Err(Error::Unavailable(format!(
            "append to {stream} lost {MAX_RACES} races in a row"
        )))
    }
}

#[async_trait::async_trait]
impl EventLog for KurrentDbEventLog {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        crate::measured("kurrentdb", self.append_now(stream, expected, events)).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let client = self.client()?;
        Self::read_events(&client, stream, direction, from, clamp_limit(limit)).await
    }

    async fn read_case(
        &self,
        case_id: Uuid,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        kurrent_position(after)?;
        let client = self.client()?;
        let limit = clamp_limit(limit);
        let bc = format!("$bc-{case_id}");
        self.await_links(&client, case_id, &bc).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut revision = if after == Position::START {
            0
        } else {
            match Self::first_after(&client, &bc, after).await? {
                Some(revision) => revision,
                None => return Ok(Vec::new()),
            }
        };
        let mut out = Vec::new();
        // Only ever forwards: a projection reset could link an event a second time.
        let mut seen = after;
        loop {
            let want = limit - out.len();
            let page = Self::read_raw(
                &client,
                &bc,
                Direction::Forwards,
                Some(revision),
                want,
                true,
            )
            .await?;
            let got = page.len();
            for resolved in &page {
                let Some(link) = resolved.link.as_ref() else {
                    // Not a link: something other than the projection wrote here.
                    if let Some(event) = resolved.event.as_ref() {
                        revision = event.revision + 1;
                    }
                    continue;
                };
                revision = link.revision + 1;
                let original = resolved
                    .event
                    .as_ref()
                    .ok_or_else(|| unresolved_link(&bc, link.revision))?;
                let position = known_position(original)?;
                if position <= seen {
                    continue;
                }
                seen = position;
                if let Some(event) = decode(original)?
                    && event.metadata.case_id == Some(case_id)
                {
                    out.push(event);
                }
            }
            if out.len() >= limit || got < want {
                return Ok(out);
            }
        }
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, Error> {
        let mut from = kurrent_position(after)?;
        let client = self.client()?;
        let limit = clamp_limit(limit);
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            // The read includes the event at `from` itself, hence one more.
            let want = limit - out.len() + 1;
            let options = ReadAllOptions::default()
                .position(from.map_or(StreamPosition::Start, StreamPosition::Position))
                .forwards()
                .filter(SubscriptionFilter::on_stream_name().regex(CASELINE_STREAMS))
                .max_count(want)
                .requires_leader(true)
                .deadline(READ_DEADLINE);
            let page = collect(client.read_all(&options).await, &"$all").await?;
            for record in page.iter().filter_map(|r| r.event.as_ref()) {
                let position = to_position(record.position);
                if position <= cursor {
                    continue;
                }
                cursor = position;
                if let Some(event) = decode(record)? {
                    out.push(event);
                }
            }
            if page.len() < want {
                break;
            }
            from = kurrent_position(cursor)?;
        }
        out.truncate(limit);
        Ok(out)
    }

    fn appended(&self) -> watch::Receiver<Position> {
        self.signal.subscribe()
    }

    fn poll_interval(&self) -> Duration {
        // Other processes append to the same server; this bounds how late we see them.
        Duration::from_millis(200)
    }

    async fn close(&self) {
        // In-flight calls hold their own handle and finish; the last one drops the
        // connection.
        if let Ok(mut client) = self.client.lock() {
            client.take();
        }
    }
}

/// Client settings from a Caseline KurrentDB URL. Errors never repeat the URL: it may
/// carry a password.
fn settings(url: &str) -> Result<ClientSettings, Error> {
    if !crate::is_kurrentdb_url(url) {
        return Err(Error::invalid(
            "event_log",
            "not a kurrentdb://, esdb://, kurrentdb+discover:// or esdb+discover:// url",
        ));
    }
    url.parse()
        .map_err(|_| Error::invalid("event_log", "malformed kurrentdb url"))
}

/// Drains a read; a stream that does not exist reads as empty. `what` names what was
/// read, for errors.
async fn collect(
    read: ::kurrentdb::Result<::kurrentdb::ReadStream>,
    what: &(dyn fmt::Display + Sync),
) -> Result<Vec<ResolvedEvent>, Error> {
    let mut stream = match read {
        Ok(stream) => stream,
        Err(::kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
        Err(e) => return Err(failed(e, what)),
    };
    let mut out = Vec::new();
    loop {
        match stream.next().await {
            Ok(Some(event)) => out.push(event),
            Ok(None) | Err(::kurrentdb::Error::ResourceNotFound) => return Ok(out),
            Err(e) => return Err(failed(e, what)),
        }
    }
}

/// The crate's error for a failed call about `what` (a stream, `$all`).
fn failed(e: ::kurrentdb::Error, what: &(dyn fmt::Display + Sync)) -> Error {
    use ::kurrentdb::Error as K;
    match e {
        K::ResourceDeleted => Error::Corrupt {
            position: format!("stream {what}"),
            reason: "the stream was deleted outside the log".into(),
        },
        K::Grpc { message, .. } if message.contains("invalid position") => {
            Error::invalid("position", "not a position of this event log")
        }
        K::Grpc { message, .. } if message.contains("Maximum Append") => Error::TooLarge {
            field: "events",
            limit: "the server's maximum append size (MaxAppendSize, 1 MiB by default)",
        },
        K::AccessDenied => Error::Unavailable(format!(
            "kurrentdb denied access to {what}: the user needs to read and write its streams, \
             $all and $bc-*"
        )),
        e => Error::Unavailable(format!("kurrentdb, {what}: {e}")),
    }
}

fn unresolved_link(bc: &str, revision: u64) -> Error {
    Error::Corrupt {
        position: format!("{bc}@{revision}"),
        reason: "the linked event is missing".into(),
    }
}

fn to_position(p: ::kurrentdb::Position) -> Position {
    Position::from_parts(p.commit, p.prepare)
}

/// The `$all` position of a checkpoint; `None` for [`Position::START`]. An event's
/// prepare position never exceeds its commit position, so a position where it does was
/// made by another backend (SQLite's row ids, for one) and is refused rather than read
/// as some other point of `$all`.
fn kurrent_position(p: Position) -> Result<Option<::kurrentdb::Position>, Error> {
    let (commit, prepare) = p.parts();
    if prepare > commit {
        return Err(Error::invalid(
            "position",
            "not a position of this event log",
        ));
    }
    Ok((p != Position::START).then_some(::kurrentdb::Position { commit, prepare }))
}

/// An event's `$all` position. The server reports none (all ones) for events of legacy
/// explicit transactions, which Caseline never writes, and on stream reads before
/// EventStoreDB 22.6, which this backend does not support (docs/kurrentdb.md).
fn known_position(record: &::kurrentdb::RecordedEvent) -> Result<Position, Error> {
    if record.position.commit == u64::MAX {
        return Err(Error::Corrupt {
            position: format!("{}@{}", record.stream_id(), record.revision),
            reason: "the server reported no $all position for the event (EventStoreDB \
                     before 22.6 reports none on stream reads)"
                .into(),
        });
    }
    Ok(to_position(record.position))
}

/// The metadata of a Caseline event on KurrentDB: the whole envelope but the payload.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct StoredEnvelope {
    /// Read by the server's `$by_correlation_id` projection: links the event into
    /// `$bc-<case id>`. Written only; `case_id` is what is read back.
    #[serde(
        rename = "$correlationId",
        skip_serializing_if = "Option::is_none",
        skip_deserializing
    )]
    server_correlation: Option<Uuid>,
    /// KurrentDB's conventional causation id, for tools that show it.
    #[serde(
        rename = "$causationId",
        skip_serializing_if = "Option::is_none",
        skip_deserializing
    )]
    server_causation: Option<Uuid>,
    caseline: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case_id: Option<Uuid>,
    actor: String,
    actor_role: String,
    agency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<String>,
    /// Microseconds since the Unix epoch, by the appender's clock (the hash covers it).
    recorded_at: i64,
    prev_hash: String,
    hash: String,
}

fn encode(event: &NewEvent, recorded_at: i64, link: &Link) -> Result<Vec<u8>, Error> {
    let m = &event.metadata;
    serde_json::to_vec(&StoredEnvelope {
        server_correlation: m.case_id,
        server_causation: m.causation_id,
        caseline: FORMAT,
        case_id: m.case_id,
        actor: m.actor.clone(),
        actor_role: m.actor_role.clone(),
        agency: m.agency.clone(),
        request_id: m.request_id,
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
        traceparent: m.traceparent.clone(),
        call: m.call.clone(),
        recorded_at,
        prev_hash: hex(&link.prev_hash),
        hash: hex(&link.hash),
    })
    .map_err(|_| Error::invalid("metadata", "cannot be encoded as json"))
}

/// The parts of a stored event that decoding reads.
struct Raw<'a> {
    stream: &'a str,
    event_id: Uuid,
    revision: u64,
    position: Position,
    event_type: &'a str,
    data: &'a [u8],
    metadata: &'a [u8],
}

fn decode(record: &::kurrentdb::RecordedEvent) -> Result<Option<RecordedEvent>, Error> {
    let position = known_position(record)?;
    decode_raw(&Raw {
        stream: record.stream_id(),
        event_id: record.id,
        revision: record.revision,
        position,
        event_type: &record.event_type,
        data: &record.data,
        metadata: &record.custom_metadata,
    })
}

/// The envelope of a stored event, or `None` when Caseline did not write it (a system
/// event, another application's): no Caseline stream name, or no `caseline` tag in its
/// metadata. A tagged event that does not decode is corruption.
fn decode_raw(raw: &Raw<'_>) -> Result<Option<RecordedEvent>, Error> {
    if raw.event_type.starts_with('$') {
        return Ok(None);
    }
    let Ok(stream) = StreamName::new(raw.stream) else {
        return Ok(None);
    };
    let corrupt = |reason: &str| Error::Corrupt {
        position: raw.position.to_string(),
        reason: reason.to_owned(),
    };
    let stored: StoredEnvelope = match serde_json::from_slice(raw.metadata) {
        Ok(stored) => stored,
        Err(_) if !is_tagged(raw.metadata) => return Ok(None),
        Err(_) => return Err(corrupt("metadata is not a caseline envelope")),
    };
    if stored.caseline != FORMAT {
        return Err(corrupt("unknown caseline envelope format"));
    }
    let hash = |hex: &str| unhex(hex).ok_or_else(|| corrupt("hash is not 32 bytes of hex"));
    Ok(Some(RecordedEvent {
        event_id: raw.event_id,
        stream,
        version: raw.revision,
        position: raw.position,
        event_type: raw.event_type.to_owned(),
        data: raw.data.to_vec(),
        metadata: Metadata {
            case_id: stored.case_id,
            actor: stored.actor,
            actor_role: stored.actor_role,
            agency: stored.agency,
            request_id: stored.request_id,
            correlation_id: stored.correlation_id,
            causation_id: stored.causation_id,
            traceparent: stored.traceparent,
            call: stored.call,
        },
        recorded_at: from_micros(stored.recorded_at),
        prev_hash: hash(&stored.prev_hash)?,
        hash: hash(&stored.hash)?,
    }))
}

/// Whether metadata is a JSON object carrying the `caseline` tag.
fn is_tagged(metadata: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(metadata)
        .ok()
        .is_some_and(|v| v.get("caseline").is_some())
}

/// What is stored under each of a batch's event ids, as far as found.
struct Copies {
    index: HashMap<Uuid, usize>,
    slots: Vec<Option<StoredCopy>>,
}

impl Copies {
    fn new(events: &[NewEvent]) -> Self {
        Self {
            index: events
                .iter()
                .enumerate()
                .map(|(i, e)| (e.event_id, i))
                .collect(),
            slots: events.iter().map(|_| None).collect(),
        }
    }

    /// Keeps `event` if it is stored under one of the batch's ids.
    fn keep(&mut self, event: RecordedEvent) {
        if let Some(&i) = self.index.get(&event.event_id)
            && let Some(slot) = self.slots.get_mut(i)
        {
            *slot = Some(stored_copy(event));
        }
    }

    fn any(&self) -> bool {
        self.slots.iter().any(Option::is_some)
    }

    fn complete(&self) -> bool {
        self.slots.iter().all(Option::is_some)
    }

    /// Where in `stream` the batch starts if the first copy found there is where a
    /// faithful retry puts it: that copy's version less its index in the batch.
    fn batch_start(&self, stream: &StreamName) -> Option<u64> {
        self.slots.iter().enumerate().find_map(|(i, slot)| {
            slot.as_ref()
                .filter(|c| c.stream == stream.as_str())
                .and_then(|c| c.version.checked_sub(i as u64))
        })
    }
}

/// What one append has learnt of its stream, kept across the races it loses.
struct Lookup {
    copies: Copies,
    /// Whether the stream has been read yet.
    read: bool,
    /// The head as last read (`None`: no stream, or not read yet).
    head: Option<Head>,
}

impl Lookup {
    /// `recalled[i]`: what this process remembers stored under `events[i]`'s id.
    fn new(events: &[NewEvent], recalled: Vec<Option<StoredCopy>>) -> Self {
        let mut copies = Copies::new(events);
        for (slot, copy) in copies.slots.iter_mut().zip(recalled) {
            *slot = copy;
        }
        Self {
            copies,
            read: false,
            head: None,
        }
    }
}

/// What is stored under one event id, as far as deciding a retry needs it: the payload
/// is kept as its SHA-256 only.
#[derive(Debug, Clone, PartialEq)]
struct Remembered {
    stream: String,
    version: u64,
    event_type: String,
    data_sha256: [u8; 32],
    position: Position,
    actor: String,
    agency: String,
    case_id: Option<Uuid>,
}

impl Remembered {
    fn of_sent(stream: &StreamName, version: u64, position: Position, sent: &NewEvent) -> Self {
        Self {
            stream: stream.as_str().to_owned(),
            version,
            event_type: sent.event_type.clone(),
            data_sha256: sha256(&sent.data),
            position,
            actor: sent.metadata.actor.clone(),
            agency: sent.metadata.agency.clone(),
            case_id: sent.metadata.case_id,
        }
    }

    fn of_copy(copy: &StoredCopy) -> Self {
        Self {
            stream: copy.stream.clone(),
            version: copy.version,
            event_type: copy.event_type.clone(),
            data_sha256: sha256(&copy.data),
            position: copy.position,
            actor: copy.actor.clone(),
            agency: copy.agency.clone(),
            case_id: copy.case_id,
        }
    }

    /// The stored copy as `resolve_retry` compares it with `event` (the event under the
    /// same id in the batch): its payload is `event`'s when the digests match, and
    /// otherwise differs from it.
    fn copy_for(&self, event: &NewEvent) -> StoredCopy {
        let mut data = event.data.clone();
        if sha256(&event.data) != self.data_sha256 {
            data.push(0);
        }
        StoredCopy {
            stream: self.stream.clone(),
            version: self.version,
            event_type: self.event_type.clone(),
            data,
            position: self.position,
            actor: self.actor.clone(),
            agency: self.agency.clone(),
            case_id: self.case_id,
        }
    }
}

/// The ids this process remembers, at most [`REMEMBERED_IDS`]; the one inserted first
/// is forgotten first.
#[derive(Debug, Default)]
struct Recent {
    entries: HashMap<Uuid, Remembered>,
    order: VecDeque<Uuid>,
}

impl Recent {
    fn insert(&mut self, event_id: Uuid, copy: Remembered) {
        if self.entries.insert(event_id, copy).is_none() {
            self.order.push_back(event_id);
        }
        while self.order.len() > REMEMBERED_IDS {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }

    /// What is remembered stored under `event_id` in `stream` (event ids are unique
    /// within their stream: one stored in another stream is no clash).
    fn get(&self, stream: &StreamName, event_id: &Uuid) -> Option<&Remembered> {
        self.entries
            .get(event_id)
            .filter(|r| r.stream == stream.as_str())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn stored_copy(event: RecordedEvent) -> StoredCopy {
    StoredCopy {
        stream: event.stream.as_str().to_owned(),
        version: event.version,
        event_type: event.event_type,
        data: event.data,
        position: event.position,
        actor: event.metadata.actor,
        agency: event.metadata.agency,
        case_id: event.metadata.case_id,
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *byte = (nibble(*pair.first()?)? << 4) | nibble(*pair.get(1)?)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event(case_id: Option<Uuid>, call: Option<&str>) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "caseline.v1.events.TestHappened".into(),
            data: b"\x08\x01payload".to_vec(),
            metadata: Metadata {
                case_id,
                actor: "user-7".into(),
                actor_role: "social_worker".into(),
                agency: "children-services-north".into(),
                request_id: Some(Uuid::new_v4()),
                correlation_id: Some(Uuid::new_v4()),
                causation_id: Some(Uuid::new_v4()),
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                call: call.map(str::to_owned),
            },
        }
    }

    fn raw<'a>(stream: &'a str, event: &'a NewEvent, metadata: &'a [u8]) -> Raw<'a> {
        Raw {
            stream,
            event_id: event.event_id,
            revision: 3,
            position: Position::from_parts(4242, 4242),
            event_type: &event.event_type,
            data: &event.data,
            metadata,
        }
    }

    /// What is written comes back field for field, and still verifies against its hash.
    #[test]
    fn metadata_round_trips_through_json() {
        let stream = StreamName::new("case-6f1c2a3e-0000-4000-8000-000000000001").unwrap();
        let cases = [
            new_event(
                Some(Uuid::new_v4()),
                Some(r#"{"rpc":"/x","break_glass":false}"#),
            ),
            new_event(None, None),
            new_event(None, Some("")),
        ];
        for sent in cases {
            let recorded_at = 1_717_171_717_123_456;
            let links =
                chain::link(&stream, None, std::slice::from_ref(&sent), recorded_at).unwrap();
            let bytes = encode(&sent, recorded_at, &links[0]).unwrap();
            let got = decode_raw(&raw(stream.as_str(), &sent, &bytes))
                .unwrap()
                .expect("a caseline event");
            assert_eq!(got.event_id, sent.event_id);
            assert_eq!(got.stream, stream);
            assert_eq!(got.version, 3);
            assert_eq!(got.position, Position::from_parts(4242, 4242));
            assert_eq!(got.event_type, sent.event_type);
            assert_eq!(got.data, sent.data);
            assert_eq!(got.metadata, sent.metadata);
            assert_eq!(to_micros(got.recorded_at), recorded_at);
            assert_eq!(got.prev_hash, links[0].prev_hash);
            assert_eq!(got.hash, links[0].hash);
            // Decoded at the version it was chained at, it verifies.
            let mut at_zero = got.clone();
            at_zero.version = 0;
            assert_eq!(chain::recompute(&at_zero), at_zero.hash);
        }
    }

    /// `$correlationId` is the case id (what `$by_correlation_id` reads), and is absent
    /// when there is no case; `$causationId` follows the causation id.
    #[test]
    fn server_correlation_is_the_case_id() {
        let stream = StreamName::new("case-1").unwrap();
        let case_id = Uuid::new_v4();
        let with_case = new_event(Some(case_id), None);
        let links = chain::link(&stream, None, std::slice::from_ref(&with_case), 1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&with_case, 1, &links[0]).unwrap()).unwrap();
        assert_eq!(json["$correlationId"], case_id.to_string());
        assert_eq!(
            json["$causationId"],
            with_case.metadata.causation_id.unwrap().to_string()
        );
        assert_eq!(json["caseline"], FORMAT);

        let mut without = new_event(None, None);
        without.metadata.causation_id = None;
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&without, 1, &links[0]).unwrap()).unwrap();
        assert!(json.get("$correlationId").is_none());
        assert!(json.get("$causationId").is_none());
    }

    #[test]
    fn events_caseline_did_not_write_are_skipped_and_broken_ones_are_corrupt() {
        let sent = new_event(None, None);
        let links = chain::link(
            &StreamName::new("case-1").unwrap(),
            None,
            std::slice::from_ref(&sent),
            1,
        )
        .unwrap();
        let ours = encode(&sent, 1, &links[0]).unwrap();
        let skipped: [(&str, &[u8]); 4] = [
            ("$bc-6f1c", &ours),
            ("orders", &ours),
            ("case-1", br#"{"$correlationId":"abc"}"#),
            ("case-1", b"\x00not json"),
        ];
        for (stream, metadata) in skipped {
            assert_eq!(
                decode_raw(&raw(stream, &sent, metadata)).unwrap(),
                None,
                "{stream}"
            );
        }
        let mut system = raw("case-1", &sent, &ours);
        system.event_type = "$>";
        assert_eq!(decode_raw(&system).unwrap(), None);

        let broken: [&[u8]; 3] = [
            br#"{"caseline":1,"actor":"a"}"#,
            br#"{"caseline":2,"actor":"a","actor_role":"r","agency":"g","recorded_at":1,"prev_hash":"","hash":""}"#,
            br#"{"caseline":1,"actor":"a","actor_role":"r","agency":"g","recorded_at":1,"prev_hash":"00","hash":"00"}"#,
        ];
        for metadata in broken {
            match decode_raw(&raw("case-1", &sent, metadata)) {
                Err(Error::Corrupt { position, reason }) => {
                    assert_eq!(position, Position::from_parts(4242, 4242).to_string());
                    // Never the content.
                    assert!(!reason.contains("actor"), "{reason}");
                }
                other => panic!("expected corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn positions_convert_both_ways_in_all_order() {
        let at = |commit, prepare| ::kurrentdb::Position { commit, prepare };
        // Self-committed events (every gRPC append) sit at (p, p); events of one legacy
        // transaction share its commit position, after their prepares.
        let all = [
            at(1000, 1000),
            at(2000, 1500),
            at(2000, 1800),
            at(2001, 2001),
        ];
        for w in all.windows(2) {
            assert!(w[0] < w[1]);
            assert!(to_position(w[0]) < to_position(w[1]));
        }
        for p in all {
            assert_eq!(kurrent_position(to_position(p)).unwrap(), Some(p));
            // Through the decimal checkpoint form too.
            let text: Position = to_position(p).to_string().parse().unwrap();
            assert_eq!(text, to_position(p));
        }
        assert_eq!(kurrent_position(Position::START).unwrap(), None);
        let big = ::kurrentdb::Position {
            commit: u64::MAX - 1,
            prepare: u64::MAX - 1,
        };
        assert_eq!(kurrent_position(to_position(big)).unwrap(), Some(big));
    }

    /// A SQLite position (row id in the low half) is refused, not read as `$all`'s start.
    #[test]
    fn a_position_of_another_backend_is_refused() {
        let sqlite_row: Position = "5".parse().unwrap();
        assert!(matches!(
            kurrent_position(sqlite_row),
            Err(Error::InvalidInput {
                field: "position",
                ..
            })
        ));
    }

    #[test]
    fn connection_urls() {
        for url in [
            "kurrentdb://localhost:2113?tls=false",
            "esdb://localhost:2113?tls=false",
            "kurrentdb://admin:changeit@localhost:2113",
            "kurrentdb://node1:2113,node2:2113,node3:2113?nodePreference=leader",
            "kurrentdb+discover://cluster.example.org:2113",
            "esdb+discover://cluster.example.org:2113",
        ] {
            assert!(settings(url).is_ok(), "{url}");
        }
        let secure = settings("kurrentdb://localhost:2113").unwrap();
        assert!(secure.is_secure_mode_enabled());
        assert!(
            !settings("kurrentdb://localhost:2113?tls=false")
                .unwrap()
                .is_secure_mode_enabled()
        );

        for url in [
            "postgres://localhost/db",
            "kurrent://localhost:2113",
            "kurrentdb://",
            "kurrentdb://admin:s3cret@localhost:2113/some/path",
            "kurrentdb://localhost:2113?tls=maybe",
        ] {
            match settings(url) {
                Err(Error::InvalidInput { field, reason }) => {
                    assert_eq!(field, "event_log");
                    assert!(!reason.contains("s3cret"), "{reason}");
                }
                other => panic!("{url}: expected invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn hashes_round_trip_as_hex_and_nothing_else_decodes() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        let text = hex(&bytes);
        assert_eq!(text.len(), 64);
        assert_eq!(unhex(&text), Some(bytes));
        assert_eq!(unhex(&hex(&[0xff; 32])), Some([0xff; 32]));
        for bad in [
            String::new(),
            text[..62].to_owned(),
            format!("{text}00"),
            text.to_uppercase(),
            format!("+f{}", &text[2..]),
            format!("zz{}", &text[2..]),
        ] {
            assert_eq!(unhex(&bad), None, "{bad}");
        }
    }

    fn remembered(stream: &StreamName, first_version: u64, batch: &[NewEvent]) -> Recent {
        let mut recent = Recent::default();
        for (i, sent) in batch.iter().enumerate() {
            let version = first_version + i as u64;
            let position = Position::from_parts(1000 + version, 1000 + version);
            recent.insert(
                sent.event_id,
                Remembered::of_sent(stream, version, position, sent),
            );
        }
        recent
    }

    fn recall(recent: &Recent, stream: &StreamName, batch: &[NewEvent]) -> Vec<Option<StoredCopy>> {
        batch
            .iter()
            .map(|e| recent.get(stream, &e.event_id).map(|r| r.copy_for(e)))
            .collect()
    }

    /// A batch this process stored is answered from memory exactly as `resolve_retry`
    /// answers it from the stream: the original result for a faithful retry, a conflict
    /// for anything else reusing the ids.
    #[test]
    fn a_remembered_batch_is_decided_as_a_stored_one() {
        let stream = StreamName::new("access-global").unwrap();
        let batch = vec![new_event(None, None), new_event(Some(Uuid::new_v4()), None)];
        let recent = remembered(&stream, 5, &batch);

        let copies = recall(&recent, &stream, &batch);
        assert!(copies.iter().all(Option::is_some));
        assert_eq!(
            resolve_retry(&stream, &batch, &copies).unwrap(),
            Some(AppendResult {
                first_version: 5,
                last_version: 6,
                last_position: Position::from_parts(1006, 1006),
            })
        );
        // Round trip through a stored copy: the same answer.
        let mut again = Recent::default();
        for (e, c) in batch.iter().zip(copies.iter().flatten()) {
            again.insert(e.event_id, Remembered::of_copy(c));
        }
        assert_eq!(
            again.get(&stream, &batch[1].event_id),
            recent.get(&stream, &batch[1].event_id)
        );

        let mut changed = batch.clone();
        changed[1].data = b"different".to_vec();
        assert!(matches!(
            resolve_retry(&stream, &changed, &recall(&recent, &stream, &changed)),
            Err(Error::EventIdConflict { event_id }) if event_id == batch[1].event_id
        ));
        let mut longer = batch.clone();
        longer[0].data.push(0);
        assert!(matches!(
            resolve_retry(&stream, &longer, &recall(&recent, &stream, &longer)),
            Err(Error::EventIdConflict { event_id }) if event_id == batch[0].event_id
        ));
        // Event ids are unique within their stream: the same ids in another stream
        // are a new append.
        let elsewhere = StreamName::new("access-other").unwrap();
        assert!(matches!(
            resolve_retry(&elsewhere, &batch, &recall(&recent, &elsewhere, &batch)),
            Ok(None)
        ));
        let partial = vec![batch[1].clone(), new_event(None, None)];
        assert!(matches!(
            resolve_retry(&stream, &partial, &recall(&recent, &stream, &partial)),
            Err(Error::EventIdConflict { .. })
        ));
        // Nothing remembered: nothing decided.
        let fresh = vec![new_event(None, None)];
        assert_eq!(
            resolve_retry(&stream, &fresh, &recall(&recent, &stream, &fresh)).unwrap(),
            None
        );
    }

    #[test]
    fn remembered_ids_are_bounded_and_the_oldest_go_first() {
        let stream = StreamName::new("access-global").unwrap();
        let batch: Vec<_> = (0..REMEMBERED_IDS + 10)
            .map(|_| new_event(None, None))
            .collect();
        let mut recent = remembered(&stream, 0, &batch);
        assert_eq!(recent.entries.len(), REMEMBERED_IDS);
        assert_eq!(recent.order.len(), REMEMBERED_IDS);
        assert!(
            batch[..10]
                .iter()
                .all(|e| recent.get(&stream, &e.event_id).is_none())
        );
        assert!(
            batch[10..]
                .iter()
                .all(|e| recent.get(&stream, &e.event_id).is_some())
        );

        // Remembering an id again replaces its entry, it is not counted twice.
        let again = &batch[10];
        let copy = Remembered::of_sent(&stream, 99, Position::from_parts(7, 7), again);
        recent.insert(again.event_id, copy.clone());
        assert_eq!(recent.order.len(), REMEMBERED_IDS);
        assert_eq!(recent.get(&stream, &again.event_id), Some(&copy));
    }

    /// Where a batch starts is the first copy found in the stream less its index; copies
    /// of another stream, or below version 0, say nothing.
    #[test]
    fn a_batch_found_in_part_is_looked_for_where_it_starts() {
        let stream = StreamName::new("access-global").unwrap();
        let batch: Vec<_> = (0..4).map(|_| new_event(None, None)).collect();
        let recent = remembered(&stream, 10, &batch);
        let at = |found: &[usize], s: &StreamName| {
            let recalled = batch
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    found
                        .contains(&i)
                        .then(|| recent.get(&stream, &e.event_id).unwrap().copy_for(e))
                })
                .collect();
            let look = Lookup::new(&batch, recalled);
            assert_eq!(look.copies.any(), !found.is_empty());
            assert_eq!(look.copies.complete(), found.len() == batch.len());
            look.copies.batch_start(s)
        };
        assert_eq!(at(&[2, 3], &stream), Some(10));
        assert_eq!(at(&[3], &stream), Some(10));
        assert_eq!(at(&[], &stream), None);
        assert_eq!(at(&[1], &StreamName::new("access-other").unwrap()), None);

        let low = remembered(&stream, 0, &batch[2..]);
        let recalled = batch
            .iter()
            .map(|e| low.get(&stream, &e.event_id).map(|r| r.copy_for(e)))
            .collect();
        // The batch's third event at version 0: no faithful retry puts it there.
        assert_eq!(
            Lookup::new(&batch, recalled).copies.batch_start(&stream),
            None
        );
    }
}
