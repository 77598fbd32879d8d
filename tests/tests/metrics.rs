//! The metrics a running service exports, and nothing about a child in them.
//!
//! `caseline-cases` runs as a child process on its embedded SQLite log, exporting over
//! OTLP to an in-process receiver every 200 ms. A contact and a case are recorded with
//! the child's and the caller's names in their sealed fields, a note added, the case read, a case that does not
//! exist asked for, the counsellor's cases listed, and a method the service does not
//! have called with a tag of this test in its name. While the process runs, the receiver must get: the call
//! latency of `GetCase` answered OK and NOT_FOUND, the invented method counted as
//! `_OTHER` (so a client cannot add series), the appends' latency and the embedded
//! writer's group sizes, the directory projection's lag, and hits in the aggregate and
//! token caches; no attribute may carry a name, the tag or a credential.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use caseline_auth::Role;
use caseline_e2e::otlp::{OtlpReceiver, ReceivedPoint};
use caseline_e2e::processes::{CASES, Identity, Process};
use caseline_e2e::requests::{CALLER_NAME, CHILD_NAME, CONTACT_SUMMARY, contact_request, opening};
use caseline_e2e::{authed, rid};
use caseline_eventlog::Uuid;
use caseline_proto::tonic::Code;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::{
    AddNoteRequest, GetCaseRequest, ListCasesRequest, NoteCompartment, RiskLevel,
};

const HELPLINE: &str = "helpline-ke";
/// How long the first exports may take to carry everything on a loaded machine.
const EXPORT_WAIT: Duration = Duration::from_secs(30);

/// The point of `metric` whose attributes include all of `attributes`, if any.
fn point<'a>(
    points: &'a [ReceivedPoint],
    metric: &str,
    attributes: &[(&str, &str)],
) -> Option<&'a ReceivedPoint> {
    // Cumulative: the last export holds the totals.
    points
        .iter()
        .rev()
        .find(|p| p.metric == metric && attributes.iter().all(|(k, v)| p.attribute(k) == Some(*v)))
}

/// Every measure the test caused, by metric and attributes.
const EXPECTED: &[(&str, &[(&str, &str)])] = &[
    (
        "rpc.server.call.duration",
        &[
            ("rpc.system", "grpc"),
            ("rpc.service", "caseline.v1.CaseService"),
            ("rpc.method", "GetCase"),
            ("rpc.grpc.status_code", "0"),
        ],
    ),
    (
        "rpc.server.call.duration",
        &[("rpc.method", "GetCase"), ("rpc.grpc.status_code", "5")],
    ),
    (
        "rpc.server.call.duration",
        &[("rpc.method", "ListCases"), ("rpc.grpc.status_code", "0")],
    ),
    (
        "rpc.server.call.duration",
        &[("rpc.service", "_OTHER"), ("rpc.method", "_OTHER")],
    ),
    (
        "caseline.eventlog.append.duration",
        &[("backend", "sqlite"), ("outcome", "ok")],
    ),
    ("caseline.eventlog.group_commit.size", &[]),
    (
        "caseline.projection.lag",
        &[("projection", "cases.directory")],
    ),
    (
        "caseline.cache.lookups",
        &[("cache", "aggregates"), ("result", "hit")],
    ),
    (
        "caseline.cache.lookups",
        &[("cache", "tokens"), ("result", "hit")],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_service_exports_its_metrics_without_personal_data() {
    let identity = Identity::create();
    let master_key = caseline_vault::MasterKey::generate_base64().expect("a master key");
    let workdir = tempfile::tempdir().expect("a working directory");
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let log = workdir.path().join("events.db");
    let args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--event-log".into(),
        format!("sqlite:{}", log.to_str().expect("a UTF-8 temporary path")),
        "--config".into(),
        identity
            .config_file()
            .to_str()
            .expect("a UTF-8 temporary path")
            .into(),
    ];
    let env = [
        ("CASELINE_MASTER_KEY", master_key.expose()),
        ("CASELINE_LOG", "info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ];
    let mut process = Process::start(CASES.0, &args, &env, workdir.path()).await;
    let channel = process.channel().await;
    let mut cases = CaseServiceClient::new(channel.clone());
    let counsellor = identity.user("counsellor-1", Role::HelplineCounsellor, HELPLINE);
    let tag = Uuid::new_v4().simple().to_string();

    let contact_id = cases
        .record_contact(authed(contact_request(rid()), &counsellor.token))
        .await
        .unwrap()
        .into_inner()
        .contact_id;
    let case_id = cases
        .open_case(authed(
            opening("Child M-1", &contact_id, RiskLevel::High),
            &counsellor.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    cases
        .add_note(authed(
            AddNoteRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                expected_version: None,
                compartment: NoteCompartment::Helpline as i32,
                text: format!("{CHILD_NAME} called back; she is safe tonight."),
            },
            &counsellor.token,
        ))
        .await
        .unwrap();
    cases
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            &counsellor.token,
        ))
        .await
        .unwrap();
    let missing = cases
        .get_case(authed(
            GetCaseRequest {
                case_id: Uuid::new_v4().to_string(),
            },
            &counsellor.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let listed = cases
        .list_cases(authed(
            ListCasesRequest {
                mine: true,
                ..Default::default()
            },
            &counsellor.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);

    // A method the service does not have, with a tag of this test in its name.
    let invented = format!("/caseline.v1.CaseService/Invented{tag}");
    let mut raw = caseline_proto::tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let answer = raw
        .unary::<(), (), _>(
            authed((), &counsellor.token),
            invented.parse().expect("a path"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_ne!(answer.code(), Code::Ok);

    // Exported while the process runs, every 200 ms.
    let points = receiver
        .wait_for_points(
            |points| {
                EXPECTED
                    .iter()
                    .all(|(metric, attributes)| point(points, metric, attributes).is_some())
            },
            EXPORT_WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("not every expected metric arrived: {e}"));

    let ok = point(
        &points,
        "rpc.server.call.duration",
        &[("rpc.method", "GetCase"), ("rpc.grpc.status_code", "0")],
    )
    .unwrap();
    assert_eq!(ok.count, Some(1), "{ok:?}");
    assert_eq!(ok.unit, "s");
    assert!(ok.value > 0.0 && ok.value < 30.0, "{ok:?}");
    // Contact, case, note: three appends at least (the calls' access records add more).
    let appends = point(
        &points,
        "caseline.eventlog.append.duration",
        &[("backend", "sqlite"), ("outcome", "ok")],
    )
    .unwrap();
    assert!(appends.count >= Some(3), "{appends:?}");
    let groups = point(&points, "caseline.eventlog.group_commit.size", &[]).unwrap();
    assert!(
        groups.count >= Some(1) && groups.value >= 3.0,
        "group commits carried the appends: {groups:?}"
    );
    assert!(
        points.iter().all(|p| p.service_name == CASES.0),
        "{points:?}"
    );

    // No attribute names the child, the caller, the invented method or a credential.
    for p in &points {
        for text in p.texts() {
            for secret in [CHILD_NAME, CALLER_NAME, CONTACT_SUMMARY, tag.as_str()] {
                assert!(!text.contains(secret), "a metric carries {secret:?}: {p:?}");
            }
            assert!(
                !text.contains(&counsellor.token) && !text.to_lowercase().contains("bearer"),
                "a metric carries a credential: {p:?}"
            );
        }
    }

    let status = process.stop().await;
    assert!(status.success(), "{status}");
}
