//! What the tests assert about a call's answer and about what the server wrote to its
//! log: refusals and the fields they name, a stream's events, the newest access record.

use std::fmt::Debug;

use caseline_eventlog::{Direction, RecordedEvent, StreamName, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::events::AccessRecorded;
use tonic_types::StatusExt;

use crate::TestServer;

/// Asserts `result` failed with `code` and returns the status.
#[track_caller]
pub fn expect_err<T: Debug>(result: Result<T, Status>, code: Code, what: &str) -> Status {
    match result {
        Ok(v) => panic!("{what}: expected {code:?}, got OK {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            s
        }
    }
}

/// The fields an INVALID_ARGUMENT names in its `google.rpc.BadRequest` details.
#[track_caller]
pub fn fields_of(status: &Status, what: &str) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .unwrap_or_else(|| panic!("{what}: no BadRequest details in {status:?}"));
    assert!(
        !bad.field_violations.is_empty(),
        "{what}: no field named: {status:?}"
    );
    bad.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// The fields named by `result`, which must be an INVALID_ARGUMENT.
#[track_caller]
pub fn invalid_fields<T: Debug>(result: Result<T, Status>, what: &str) -> Vec<String> {
    fields_of(&expect_err(result, Code::InvalidArgument, what), what)
}

/// Asserts an INVALID_ARGUMENT names exactly `fields`.
#[track_caller]
pub fn names<T: Debug>(result: Result<T, Status>, fields: &[&str], what: &str) {
    assert_eq!(invalid_fields(result, what), fields, "{what}");
}

/// Asserts `result` is a refusal, and not a fault of the server.
#[track_caller]
pub fn refused<T: Debug>(result: Result<T, Status>, what: &str) -> Status {
    let s = match result {
        Ok(v) => panic!("{what}: expected a refusal, got OK {v:?}"),
        Err(s) => s,
    };
    assert!(
        !matches!(
            s.code(),
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable
        ),
        "{what}: {s:?}"
    );
    s
}

/// A message with `id` replaced, to compare the shape of two NOT_FOUND answers.
pub fn shape(status: &Status, id: &str) -> String {
    status.message().replace(id, "<id>")
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The events of `referral-<id>` (the first 100), oldest first.
pub async fn referral_events(server: &TestServer, id: &str) -> Vec<RecordedEvent> {
    let stream = StreamName::for_id("referral", Uuid::parse_str(id).expect("a referral id"))
        .expect("referral stream");
    server
        .log
        .read_stream(&stream, Direction::Forwards, None, 100)
        .await
        .expect("referral stream read")
}

/// The newest access record of calls about no single case (`access-global`), with its
/// actor.
pub async fn last_global_access(server: &TestServer) -> (String, AccessRecorded) {
    let stream = StreamName::new("access-global").expect("access-global stream");
    let events = server
        .log
        .read_stream(&stream, Direction::Backwards, None, 1)
        .await
        .expect("access-global read");
    let event = events.first().expect("an access record");
    assert_eq!(
        event.event_type,
        caseline_proto::event_types::ACCESS_RECORDED
    );
    (
        event.metadata.actor.clone(),
        AccessRecorded::decode(event.data.as_slice()).expect("an AccessRecorded"),
    )
}
