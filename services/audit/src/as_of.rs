//! `GetTimelineAsOf`: what one identity (or a team member in a role) could see of a
//! case's timeline at an instant, under the rules then in force. Metadata only.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use caseline_eventlog::{Direction, RecordedEvent, StreamName};
use caseline_policy::teams::{ACCESS_CATEGORY, CASE_CATEGORY};
use caseline_policy::{
    Action, Caller, CaseTeam, Compartment, Context, Entry, POLICY_VERSION, Resource, Sight, decide,
    knows_policy_version,
};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::v1::events::AccessRecorded;
use caseline_proto::v1::{GetTimelineAsOfResponse, Visibility};
use caseline_server::ApiError;
use caseline_timeline::{Item, Render};
use caseline_trust::{ACCESS_RECORDED, Call, CallContext, vault_error};

use crate::command::{TimelineAsOf, Viewer};

/// Stands for "any member in this role" when the question names a role, not a person.
const ROLE_VIEWER: &str = "\u{0}any member in this role";

/// The rules in force when `event` was recorded, as the record itself says.
fn policy_version_of(event: &RecordedEvent) -> Option<String> {
    if event.event_type == ACCESS_RECORDED {
        let r = AccessRecorded::decode(event.data.as_slice()).ok()?;
        return (!r.policy_version.is_empty()).then_some(r.policy_version);
    }
    let call = event
        .metadata
        .call
        .as_deref()
        .and_then(CallContext::from_json)?;
    (!call.policy_version.is_empty()).then_some(call.policy_version)
}

/// How far past the instant the log is read: events are in log order, and their clock
/// times may disagree by a little between writers.
const CLOCK_SLACK: Duration = Duration::from_secs(60);

/// What a stream of the case says up to the instant: it is read in order, events after
/// the instant are left out, and the reading stops once the log is past it.
async fn follow_until(
    call: &Call,
    stream: &StreamName,
    as_of: SystemTime,
    mut each: impl FnMut(&RecordedEvent) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut from = 0;
    loop {
        let page = call
            .log()
            .read_stream(stream, Direction::Forwards, Some(from), 1000)
            .await?;
        for event in &page {
            if event.recorded_at > as_of + CLOCK_SLACK {
                return Ok(());
            }
            if event.recorded_at <= as_of {
                each(event)?;
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => from = last.version + 1,
            _ => return Ok(()),
        }
    }
}

pub(crate) async fn timeline_as_of(
    call: &Call,
    q: TimelineAsOf,
) -> Result<GetTimelineAsOfResponse, ApiError> {
    let (size, after) = (q.size, q.after);
    call.concerns(q.case_id);

    // The team, the grants and the rules on record at the instant, from the case's own
    // stream and its access stream (read no further than the instant).
    let mut team = CaseTeam::new();
    let mut existed = false;
    let mut policy: Option<(SystemTime, String)> = None;
    let mut note_policy = |event: &RecordedEvent| {
        if let Some(v) = policy_version_of(event)
            && policy
                .as_ref()
                .is_none_or(|(at, _)| *at <= event.recorded_at)
        {
            policy = Some((event.recorded_at, v));
        }
    };
    let case_stream = StreamName::for_id(CASE_CATEGORY, q.case_id)?;
    follow_until(call, &case_stream, q.as_of, |event| {
        team.apply(event)?;
        existed |= event.event_type == types::CASE_OPENED;
        note_policy(event);
        Ok(())
    })
    .await?;
    let access_stream = StreamName::for_id(ACCESS_CATEGORY, q.case_id)?;
    follow_until(call, &access_stream, q.as_of, |event| {
        if event.event_type == types::BREAK_GLASS_GRANTED {
            team.apply(event)?;
        }
        note_policy(event);
        Ok(())
    })
    .await?;
    let policy_version = policy.map_or_else(|| POLICY_VERSION.to_owned(), |(_, v)| v);
    if !knows_policy_version(&policy_version) {
        return Err(ApiError::FailedPrecondition(format!(
            "the rules in force then (policy version {policy_version}) are not known to this server"
        )));
    }
    // A role names no one: a member in it joins the team, under the placeholder name.
    let caller = match &q.viewer {
        Viewer::Identity {
            subject,
            agency,
            role,
        } => Caller {
            subject,
            role: *role,
            agency,
        },
        Viewer::Role(role) => {
            team = team.with_member(ROLE_VIEWER, ROLE_VIEWER, role.as_str());
            Caller {
                subject: ROLE_VIEWER,
                role: *role,
                agency: ROLE_VIEWER,
            }
        }
    };
    let team = existed.then_some(team);
    let context = Context {
        now: q.as_of,
        break_glass: None,
    };
    let decide_read = |compartment, entry: Entry<'_>| {
        decide(
            caller,
            Action::Read(compartment),
            Resource::Case {
                team: team.as_ref(),
                entry,
            },
            context,
        )
    };
    let opening = decide_read(Compartment::CaseCore, Entry::default());
    let none = HashSet::new();
    let ctx = Render {
        vault: call.vault(),
        case_id: q.case_id,
        identity: false,
        visible_cases: &none,
        contacts: false,
    };
    let mut response = GetTimelineAsOfResponse {
        policy_version,
        case_existed: existed,
        could_open: opening.is_allowed(),
        reason: opening.reason.as_str().to_owned(),
        ..GetTimelineAsOfResponse::default()
    };
    let events = call.log().read_case_events(q.case_id, after, size).await?;
    for event in &events {
        if event.recorded_at > q.as_of + CLOCK_SLACK {
            // The log is past the instant: this is the last page.
            return Ok(response);
        }
        if event.recorded_at > q.as_of {
            continue;
        }
        let Some(item) = Item::of(event)? else {
            continue;
        };
        let sight = if opening.is_allowed() {
            decide_read(item.compartment(), item.entry()).sight
        } else {
            Sight::None
        };
        if sight == Sight::None {
            response.hidden_entries += 1;
            continue;
        }
        // Metadata only: the auditor never receives content.
        let mut entry = item
            .render(Sight::Metadata, &ctx)
            .await
            .map_err(vault_error)?;
        entry.visibility = match sight {
            Sight::Full => Visibility::Full,
            Sight::Summary => Visibility::Summary,
            Sight::Metadata | Sight::None => Visibility::Metadata,
        } as i32;
        response.entries.push(entry);
    }
    if events.len() == size
        && let Some(last) = events.last()
    {
        response.next_page_token = last.position.to_string();
    }
    Ok(response)
}
