//! Replay of the access history: access records and write events, merged in log order,
//! as metadata only.

use std::collections::BTreeSet;
use std::sync::Arc;

use caseline_eventlog::{Direction, EventLog, Position, RecordedEvent, StreamName, Uuid};
use caseline_policy::teams::{ACCESS_GLOBAL_STREAM, BREAK_GLASS_GRANTED};
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

/// Streams the matching entries, oldest first. The history is read up to what the log
/// holds while the stream runs; a failure ends the stream with UNAVAILABLE.
pub(crate) fn replay(log: Arc<dyn EventLog>, filter: Filter) -> EntryStream {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let result = match filter.case_id {
            Some(case_id) => replay_case(&*log, case_id, &filter, &tx).await,
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
/// that name the case (list pages that returned it), in log order.
async fn replay_case(
    log: &dyn EventLog,
    case_id: Uuid,
    filter: &Filter,
    tx: &Sender,
) -> Result<(), caseline_eventlog::Error> {
    let id = case_id.to_string();
    let mut own = Pager::case(case_id);
    let mut listed = Pager::global();
    let mut next_own = own.next(log).await?;
    let mut next_listed = next_global_naming(log, &mut listed, &id).await?;
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
            next_listed = next_global_naming(log, &mut listed, &id).await?;
            e
        };
        if let Some(event) = event
            && !emit(tx, filter, &event).await
        {
            return Ok(());
        }
    }
}

async fn next_global_naming(
    log: &dyn EventLog,
    pager: &mut Pager,
    case_id: &str,
) -> Result<Option<RecordedEvent>, caseline_eventlog::Error> {
    while let Some(event) = pager.next(log).await? {
        if event.event_type == ACCESS_RECORDED
            && AccessRecorded::decode(event.data.as_slice())
                .is_ok_and(|r| r.resource_ids.iter().any(|r| r == case_id))
        {
            return Ok(Some(event));
        }
    }
    Ok(None)
}

/// Reads events one at a time, a page at a time: of the whole log or one case (global
/// order), or of the `access-global` stream (by version).
pub(crate) struct Pager {
    source: Source,
    buffered: std::collections::VecDeque<RecordedEvent>,
    done: bool,
}

enum Source {
    All { after: Position },
    Case { case_id: Uuid, after: Position },
    Global { next_version: u64 },
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

    fn global() -> Self {
        Self::over(Source::Global { next_version: 0 })
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
                Source::Global { next_version } => {
                    let stream = StreamName::new(ACCESS_GLOBAL_STREAM)?;
                    let page = log
                        .read_stream(&stream, Direction::Forwards, Some(*next_version), PAGE)
                        .await?;
                    if let Some(last) = page.last() {
                        *next_version = last.version + 1;
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
