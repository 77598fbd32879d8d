//! Replay of the access history: access records and write events, merged in log order,
//! as metadata only.

use std::collections::BTreeSet;
use std::sync::Arc;

use caseline_eventlog::{Direction, EventLog, Interest, Position, RecordedEvent, StreamName, Uuid};
use caseline_policy::teams::{ACCESS_GLOBAL_STREAM, BREAK_GLASS_GRANTED};
use caseline_projection::{IndexEntry, Indexed, Keys};
use caseline_proto::prost::Message;
use caseline_proto::tonic::Status;
use caseline_proto::v1::events::{AccessOutcome, AccessRecorded, BreakGlassGranted};
use caseline_proto::v1::{AccessHistoryEntry, EntryKind, Outcome};
use caseline_server::ApiError;
use caseline_trust::{ACCESS_RECORDED, CallContext};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::command::Filter;
use crate::{EntryStream, to_timestamp};

const PAGE: usize = 500;

/// The index of list pages: each access record in `access-global` (a list call's)
/// filed under every id it returned, so that a case's history finds the pages that
/// showed it without reading every list call ever recorded.
#[derive(Debug)]
pub struct Listed;

impl Keys for Listed {
    const FORMAT: u32 = 1;
    const INTEREST: Interest = Interest::of(&[], &[ACCESS_GLOBAL_STREAM], &[]);

    fn keys(event: &RecordedEvent) -> Vec<Uuid> {
        if event.event_type != ACCESS_RECORDED || event.stream.as_str() != ACCESS_GLOBAL_STREAM {
            return Vec::new();
        }
        let Ok(record) = AccessRecorded::decode(event.data.as_slice()) else {
            return Vec::new();
        };
        let mut ids: Vec<Uuid> = record
            .resource_ids
            .iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Streams the matching entries, oldest first. The history is read up to what the log
/// holds while the stream runs; a failure ends the stream with UNAVAILABLE.
pub(crate) fn replay(
    log: Arc<dyn EventLog>,
    listed: Arc<Indexed<Listed>>,
    filter: Filter,
) -> EntryStream {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let result = match filter.case_id {
            Some(case_id) => replay_case(&*log, &listed, case_id, &filter, &tx).await,
            None => replay_all(&*log, &filter, &tx).await,
        };
        if let Err(e) = result {
            let _ = tx.send(Err(Status::from(ApiError::from(e)))).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

type Sender = mpsc::Sender<Result<AccessHistoryEntry, Status>>;

async fn emit(tx: &Sender, filter: &Filter, event: &RecordedEvent) -> bool {
    let Some(entry) = entry_of(event) else {
        return true;
    };
    if !filter.admits(&entry, event.recorded_at) {
        return true;
    }
    // A closed channel means the auditor went away: stop reading.
    tx.send(Ok(entry)).await.is_ok()
}

async fn replay_all(
    log: &dyn EventLog,
    filter: &Filter,
    tx: &Sender,
) -> Result<(), caseline_eventlog::Error> {
    let mut events = Pager::all_after(Position::START);
    while let Some(event) = events.next(log).await? {
        if !emit(tx, filter, &event).await {
            return Ok(());
        }
    }
    Ok(())
}

/// The case's own events and access records, merged with the `access-global` records
/// that name the case (list pages that returned it, found through the index), in log
/// order.
async fn replay_case(
    log: &dyn EventLog,
    index: &Indexed<Listed>,
    case_id: Uuid,
    filter: &Filter,
    tx: &Sender,
) -> Result<(), caseline_eventlog::Error> {
    let mut own = Pager::case(case_id);
    let mut listed = ListedPager::new(case_id);
    let mut next_own = own.next(log).await?;
    let mut next_listed = listed.next(log, index).await?;
    loop {
        let take_own = match (&next_own, &next_listed) {
            (None, None) => return Ok(()),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a.position <= b.position,
        };
        let event = if take_own {
            let e = next_own.take();
            next_own = own.next(log).await?;
            e
        } else {
            let e = next_listed.take();
            next_listed = listed.next(log, index).await?;
            e
        };
        if let Some(event) = event
            && !emit(tx, filter, &event).await
        {
            return Ok(());
        }
    }
}

/// The list pages that returned one case, through the index, one at a time: each page
/// of entries is read from the log a run of consecutive versions at a time.
struct ListedPager {
    case_id: Uuid,
    after: Position,
    buffered: std::collections::VecDeque<RecordedEvent>,
    done: bool,
}

impl ListedPager {
    fn new(case_id: Uuid) -> Self {
        Self {
            case_id,
            after: Position::START,
            buffered: Default::default(),
            done: false,
        }
    }

    async fn next(
        &mut self,
        log: &dyn EventLog,
        index: &Indexed<Listed>,
    ) -> Result<Option<RecordedEvent>, caseline_eventlog::Error> {
        while self.buffered.is_empty() && !self.done {
            let entries = index.find(self.case_id, self.after, PAGE).await?;
            self.done = entries.len() < PAGE;
            let Some(last) = entries.last() else {
                break;
            };
            self.after = last.position;
            for run in runs(&entries) {
                let first = &run[0];
                let events = log
                    .read_stream(
                        &first.stream,
                        Direction::Forwards,
                        Some(first.version),
                        run.len(),
                    )
                    .await?;
                // Only what the index named: a stream read past a gap is not.
                self.buffered.extend(
                    events
                        .into_iter()
                        .filter(|e| run.iter().any(|entry| entry.position == e.position)),
                );
            }
        }
        Ok(self.buffered.pop_front())
    }
}

/// `entries` cut into runs of consecutive versions of one stream.
fn runs(entries: &[IndexEntry]) -> Vec<&[IndexEntry]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        let continues = i < entries.len()
            && entries[i].stream == entries[i - 1].stream
            && entries[i].version == entries[i - 1].version + 1;
        if !continues {
            runs.push(&entries[start..i]);
            start = i;
        }
    }
    runs
}

/// Reads events one at a time, a page at a time: of the whole log or one case, in the
/// global order.
pub(crate) struct Pager {
    source: Source,
    buffered: std::collections::VecDeque<RecordedEvent>,
    done: bool,
}

enum Source {
    All { after: Position },
    Case { case_id: Uuid, after: Position },
}

impl Pager {
    fn over(source: Source) -> Self {
        Self {
            source,
            buffered: Default::default(),
            done: false,
        }
    }

    /// The whole log after `after`, as it stands while it is read.
    pub(crate) fn all_after(after: Position) -> Self {
        Self::over(Source::All { after })
    }

    fn case(case_id: Uuid) -> Self {
        Self::over(Source::Case {
            case_id,
            after: Position::START,
        })
    }

    pub(crate) async fn next(
        &mut self,
        log: &dyn EventLog,
    ) -> Result<Option<RecordedEvent>, caseline_eventlog::Error> {
        if self.buffered.is_empty() && !self.done {
            let page = match &mut self.source {
                Source::All { after } => {
                    let page = log.read_all(*after, PAGE).await?;
                    if let Some(last) = page.last() {
                        *after = last.position;
                    }
                    page
                }
                Source::Case { case_id, after } => {
                    let page = log.read_case(*case_id, *after, PAGE).await?;
                    if let Some(last) = page.last() {
                        *after = last.position;
                    }
                    page
                }
            };
            self.done = page.len() < PAGE;
            self.buffered.extend(page);
        }
        Ok(self.buffered.pop_front())
    }
}

/// The history entry an event stands for: metadata only, never a domain payload.
fn entry_of(event: &RecordedEvent) -> Option<AccessHistoryEntry> {
    let m = &event.metadata;
    let mut entry = AccessHistoryEntry {
        recorded_at: Some(to_timestamp(event.recorded_at)),
        position: event.position.to_string(),
        stream: event.stream.as_str().to_owned(),
        version: event.version,
        actor: m.actor.clone(),
        role: m.actor_role.clone(),
        agency: m.agency.clone(),
        case_id: m.case_id.map(|id| id.to_string()).unwrap_or_default(),
        trace_id: m
            .traceparent
            .as_deref()
            .and_then(|tp| tp.split('-').nth(1))
            .unwrap_or_default()
            .to_owned(),
        request_id: m.request_id.map(|id| id.to_string()).unwrap_or_default(),
        ..AccessHistoryEntry::default()
    };
    match event.event_type.as_str() {
        ACCESS_RECORDED => {
            let r = AccessRecorded::decode(event.data.as_slice()).ok()?;
            entry.kind = EntryKind::Access as i32;
            entry.action = r.rpc;
            entry.resource_ids = r.resource_ids;
            entry.outcome = match AccessOutcome::try_from(r.outcome) {
                Ok(AccessOutcome::Allowed) => Outcome::Allowed,
                Ok(AccessOutcome::Denied) => Outcome::Denied,
                _ => Outcome::Error,
            } as i32;
            entry.status_code = r.status_code;
            entry.reason = r.reason;
            entry.purpose = r.purpose;
            entry.break_glass = r.break_glass;
            entry.policy_version = r.policy_version;
            entry.peer = r.peer;
            entry.instance = r.instance;
        }
        BREAK_GLASS_GRANTED => {
            // The reason is sealed and stays so: auditors see that, by whom, and why code.
            let g = BreakGlassGranted::decode(event.data.as_slice()).ok()?;
            entry.kind = EntryKind::BreakGlass as i32;
            entry.action = event.event_type.clone();
            entry.outcome = Outcome::Allowed as i32;
            entry.purpose = g.purpose;
            entry.break_glass = true;
        }
        other => {
            entry.kind = EntryKind::Write as i32;
            entry.action = other.to_owned();
            entry.outcome = Outcome::Allowed as i32;
            if let Some(call) = m.call.as_deref().and_then(CallContext::from_json) {
                entry.peer = call.peer;
                entry.instance = call.instance;
                entry.purpose = call.purpose;
                entry.break_glass = call.break_glass;
                entry.policy_version = call.policy_version;
            }
        }
    }
    Some(entry)
}

/// Every stream holding events of the case.
pub(crate) async fn streams_of_case(
    log: &dyn EventLog,
    case_id: Uuid,
) -> Result<Vec<StreamName>, ApiError> {
    let mut streams = distinct_streams(log, Pager::case(case_id)).await?;
    // The case's own stream and its access history, even if the rows no longer say
    // which case they belong to.
    streams.insert(format!("case-{case_id}"));
    streams.insert(format!("access-{case_id}"));
    into_names(streams)
}

/// Every stream of the log.
pub(crate) async fn all_streams(log: &dyn EventLog) -> Result<Vec<StreamName>, ApiError> {
    into_names(distinct_streams(log, Pager::all_after(Position::START)).await?)
}

async fn distinct_streams(
    log: &dyn EventLog,
    mut events: Pager,
) -> Result<BTreeSet<String>, ApiError> {
    let mut streams = BTreeSet::new();
    while let Some(event) = events.next(log).await? {
        streams.insert(event.stream.as_str().to_owned());
    }
    Ok(streams)
}

fn into_names(streams: BTreeSet<String>) -> Result<Vec<StreamName>, ApiError> {
    streams
        .into_iter()
        .map(|s| StreamName::new(s).map_err(ApiError::from))
        .collect()
}
