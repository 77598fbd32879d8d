//! Every refusal stays small whatever the request: a repeated field longer than its
//! stated maximum is one violation, an answer lists at most ten violations and counts
//! the rest, and a request at the message size limit full of unknown values costs the
//! server a small multiple of its size — real gRPC against an all-in-one server (and,
//! for memory, the `caseline` binary as a process).
#![allow(clippy::unwrap_used)]

use std::fmt::Debug;

use caseline_auth::{DevKey, Role};
use caseline_e2e::check::{expect_err, fields_of};
use caseline_e2e::processes::Process;
use caseline_e2e::requests::{contact_request, opening};
use caseline_e2e::{TestServer, User, authed, rid};
use caseline_proto::prost::Message;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::compensation_service_client::CompensationServiceClient;
use caseline_proto::v1::referral_service_client::ReferralServiceClient;
use caseline_proto::v1::{
    ChildIdentity, ListClaimsRequest, ListComplaintsRequest, ListInboxRequest, ListOutboxRequest,
    RiskLevel,
};
use tonic_types::StatusExt;

/// How many unknown values the filters below carry: what a fuzzer sent.
const UNKNOWN_VALUES: i32 = 4_874;
/// Largest encoded `google.rpc.Status` details an answer may carry: well inside the
/// 16 KiB of metadata a standard gRPC client accepts.
const MAX_DETAILS_BYTES: usize = 4_096;
/// Largest status message an answer may carry.
const MAX_MESSAGE_BYTES: usize = 512;
/// The server's largest request (tonic's default decoding limit).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Distinct values no status enum knows, so that each would be a fault of its own.
fn unknown_values() -> Vec<i32> {
    (1_000..1_000 + UNKNOWN_VALUES).collect()
}

/// Asserts `result` is an INVALID_ARGUMENT naming `fields` alone, small enough for any
/// client, and returns it.
#[track_caller]
fn small_refusal<T: Debug>(result: Result<T, Status>, fields: &[&str], what: &str) -> Status {
    let status = expect_err(result, Code::InvalidArgument, what);
    assert_eq!(fields_of(&status, what), fields, "{what}");
    assert!(
        status.details().len() <= MAX_DETAILS_BYTES,
        "{what}: details of {} bytes",
        status.details().len()
    );
    assert!(
        status.message().len() <= MAX_MESSAGE_BYTES,
        "{what}: a message of {} bytes",
        status.message().len()
    );
    status
}

/// The description of the one violation of `status`.
fn description(status: &Status) -> String {
    status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations[0]
        .description
        .clone()
}

#[tokio::test]
async fn list_complaints_with_thousands_of_unknown_statuses_is_one_small_refusal() {
    let server = TestServer::start().await;
    let officer = User::new(&server, "co-1", Role::ComplaintsOfficer, "ombuds-office");
    let mut comp = CompensationServiceClient::new(server.channel().await);
    let answer = comp
        .list_complaints(authed(
            ListComplaintsRequest {
                statuses: unknown_values(),
                ..Default::default()
            },
            &officer.token,
        ))
        .await;
    let status = small_refusal(answer, &["statuses"], "ListComplaints");
    assert!(description(&status).contains("at most"), "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn list_claims_with_thousands_of_unknown_statuses_is_one_small_refusal() {
    let server = TestServer::start().await;
    let advocate = User::new(&server, "va-1", Role::VictimAdvocate, "victim-support");
    let mut comp = CompensationServiceClient::new(server.channel().await);
    let answer = comp
        .list_claims(authed(
            ListClaimsRequest {
                statuses: unknown_values(),
                ..Default::default()
            },
            &advocate.token,
        ))
        .await;
    small_refusal(answer, &["statuses"], "ListClaims");
    server.stop().await;
}

#[tokio::test]
async fn list_inbox_with_thousands_of_unknown_statuses_is_one_small_refusal() {
    let server = TestServer::start().await;
    let police = User::new(&server, "pi-1", Role::PoliceInvestigator, "national-police");
    let mut refs = ReferralServiceClient::new(server.channel().await);
    let answer = refs
        .list_inbox(authed(
            ListInboxRequest {
                statuses: unknown_values(),
                ..Default::default()
            },
            &police.token,
        ))
        .await;
    small_refusal(answer, &["statuses"], "ListInbox");
    server.stop().await;
}

#[tokio::test]
async fn list_outbox_with_thousands_of_unknown_statuses_is_one_small_refusal() {
    let server = TestServer::start().await;
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );
    let mut refs = ReferralServiceClient::new(server.channel().await);
    let answer = refs
        .list_outbox(authed(
            ListOutboxRequest {
                mine: true,
                statuses: unknown_values(),
                ..Default::default()
            },
            &counsellor.token,
        ))
        .await;
    small_refusal(answer, &["statuses"], "ListOutbox");
    server.stop().await;
}

#[tokio::test]
async fn a_short_filter_of_unknown_values_names_the_field_once() {
    // Under the cap each value is checked, and the same fault is listed once.
    let server = TestServer::start().await;
    let officer = User::new(&server, "co-1", Role::ComplaintsOfficer, "ombuds-office");
    let mut comp = CompensationServiceClient::new(server.channel().await);
    let answer = comp
        .list_complaints(authed(
            ListComplaintsRequest {
                statuses: vec![1, 97, 98, 99],
                ..Default::default()
            },
            &officer.token,
        ))
        .await;
    small_refusal(answer, &["statuses"], "ListComplaints, four values");
    server.stop().await;
}

#[tokio::test]
async fn thousands_of_concerns_are_one_small_refusal() {
    let server = TestServer::start().await;
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );
    let mut cases = CaseServiceClient::new(server.channel().await);
    let mut contact = contact_request(rid());
    contact.concerns = unknown_values();
    let answer = cases
        .record_contact(authed(contact, &counsellor.token))
        .await;
    small_refusal(answer, &["concerns"], "RecordContact");
    let mut open = opening("Child Q-1", "", RiskLevel::Low);
    open.concerns = unknown_values();
    let answer = cases.open_case(authed(open, &counsellor.token)).await;
    small_refusal(answer, &["concerns"], "OpenCase");
    server.stop().await;
}

#[tokio::test]
async fn an_answer_lists_ten_faults_and_counts_the_rest() {
    let server = TestServer::start().await;
    let counsellor = User::new(
        &server,
        "hc-1",
        Role::HelplineCounsellor,
        "helpline-central",
    );
    let mut cases = CaseServiceClient::new(server.channel().await);
    // Thirteen fields at fault, in the order the handler checks them.
    let request = caseline_proto::v1::OpenCaseRequest {
        request_id: "x".into(),
        contact_id: "x".into(),
        pseudonym: String::new(),
        identity: Some(ChildIdentity {
            name: "a\u{0}b".into(),
            date_of_birth: "not a date".into(),
            contact_details: "a\u{0}b".into(),
        }),
        age_band: 99,
        gender: 99,
        language: "not a tag!".into(),
        region: "a\u{0}b".into(),
        source: 99,
        concerns: Vec::new(),
        initial_risk: 99,
    };
    let status = expect_err(
        cases.open_case(authed(request, &counsellor.token)).await,
        Code::InvalidArgument,
        "OpenCase with thirteen faults",
    );
    let details = status.get_error_details();
    let violations = &details.bad_request().unwrap().field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields[..10],
        [
            "request_id",
            "contact_id",
            "pseudonym",
            "identity.name",
            "identity.date_of_birth",
            "identity.contact_details",
            "age_band",
            "gender",
            "language",
            "region",
        ],
        "{status:?}"
    );
    assert_eq!(violations.len(), 11, "ten listed, one counting: {status:?}");
    assert_eq!(
        violations[10].description, "and 3 more faults not listed",
        "{status:?}"
    );
    server.stop().await;
}

/// A figure of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    let kib: usize = line
        .trim_start_matches(key)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A ListComplaints filter of one-byte unknown values, encoded at `bytes` or just under.
fn filter_of_size(bytes: usize) -> ListComplaintsRequest {
    let mut request = ListComplaintsRequest {
        statuses: vec![100; bytes],
        ..Default::default()
    };
    // Field tag and length prefix.
    while request.encoded_len() > bytes {
        let over = request.encoded_len() - bytes;
        request.statuses.truncate(request.statuses.len() - over);
    }
    request
}

#[tokio::test]
async fn a_request_at_the_size_limit_costs_the_server_a_small_multiple_of_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let args: Vec<String> = [
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_arg,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut server =
        Process::start("caseline", &args, &[("CASELINE_LOG", "warn")], dir.path()).await;
    let token = DevKey::load_or_create(&data)
        .unwrap()
        .issue(
            "co-1",
            &[Role::ComplaintsOfficer],
            "ombuds-office",
            None,
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    let mut comp = CompensationServiceClient::new(server.channel().await)
        .max_encoding_message_size(usize::MAX);

    // Warm up: the same path with a small request, so that what is measured next is
    // the cost of the large one.
    for _ in 0..3 {
        let small = comp
            .list_complaints(authed(filter_of_size(64 * 1024), &token))
            .await;
        expect_err(small, Code::InvalidArgument, "a 64 KiB filter");
    }
    let pid = server.pid();
    // Resets the peak (VmHWM) to the current RSS, so that the peak read after is the
    // request's (proc(5), clear_refs).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let rss_before = proc_status_bytes(pid, "VmRSS");

    let request = filter_of_size(MAX_REQUEST_BYTES - 64);
    let size = request.encoded_len();
    let answer = comp.list_complaints(authed(request, &token)).await;
    small_refusal(answer, &["statuses"], "a filter at the size limit");

    let rss_after = proc_status_bytes(pid, "VmRSS");
    let peak_after = proc_status_bytes(pid, "VmHWM");
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "request {:.1} MiB; RSS {:.1} MiB before, {:.1} MiB at the peak, {:.1} MiB after",
        mib(size),
        mib(rss_before),
        mib(peak_after),
        mib(rss_after)
    );
    let allowed = 8 * size;
    assert!(
        peak_after.saturating_sub(rss_before) <= allowed,
        "the server's peak RSS grew by {:.1} MiB for a request of {:.1} MiB",
        mib(peak_after.saturating_sub(rss_before)),
        mib(size)
    );
    assert!(
        rss_after.saturating_sub(rss_before) <= allowed,
        "the server's RSS grew by {:.1} MiB for a request of {:.1} MiB",
        mib(rss_after.saturating_sub(rss_before)),
        mib(size)
    );
    assert!(server.stop().await.success());
}
