//! A PostgreSQL deployment whose transaction ids grow a digit (999 999 → 1 000 000)
//! while it is used, as every long-lived server's do: the log orders events by the
//! writing transaction's id, and each read must keep that order and skip nothing on
//! both sides of the boundary. A server of the test's own (`initdb`, then
//! `pg_resetwal -x` just below the boundary), with CaseService and AuditService as
//! processes over it.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use caseline_auth::Role;
use caseline_e2e::processes::{AUDIT, CASES, Deployment};
use caseline_e2e::requests::opening;
use caseline_e2e::{authed, rid};
use caseline_eventlog::postgres::ScratchCluster;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::{
    AddNoteRequest, GetTimelineRequest, ListCasesRequest, NoteCompartment,
    ReplayAccessHistoryRequest, RiskLevel, VerifyIntegrityRequest, verify_integrity_request::Scope,
};
use tokio_postgres::NoTls;

const SOCIAL: &str = "county-social";
const AUDITORS: &str = "oversight-board";
const CASES_OPENED: usize = 8;
/// Enough writes to carry the transaction ids from just below 1 000 000 past it.
const NOTES: usize = 320;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_is_whole_and_in_order_across_a_power_of_ten_in_transaction_ids() {
    let cluster = ScratchCluster::start(999_800)
        .unwrap_or_else(|e| panic!("a scratch PostgreSQL server is needed: {e}"));
    let deployment = Deployment::create_on(&cluster.url()).await;
    let mut cases_process = deployment.start(CASES.0).await;
    let audit = deployment.start(AUDIT.0).await;
    let worker = deployment
        .identity
        .user("sw-xid", Role::SocialWorker, SOCIAL);
    let auditor = deployment
        .identity
        .user("auditor-xid", Role::Auditor, AUDITORS);

    let mut cases = CaseServiceClient::new(cases_process.channel().await);
    let mut opened = Vec::new();
    for i in 0..CASES_OPENED {
        let request = opening(&format!("Child X{i}"), "", RiskLevel::Medium);
        opened.push(
            cases
                .open_case(authed(request, &worker.token))
                .await
                .unwrap()
                .into_inner()
                .case_id,
        );
    }
    // Notes one after the other, each its own transaction: the first case's timeline
    // holds events from both sides of the boundary.
    for i in 0..NOTES {
        let request = AddNoteRequest {
            case_id: opened[i % 2].clone(),
            request_id: rid(),
            compartment: NoteCompartment::Social as i32,
            text: format!("Visit {i}: the child is safe at home."),
            ..AddNoteRequest::default()
        };
        cases
            .add_note(authed(request, &worker.token))
            .await
            .unwrap();
    }

    let (admin, connection) = tokio_postgres::connect(&deployment.schema.url, NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = admin
        .query_one(
            "SELECT min(tx)::text, max(tx)::text, count(*) FROM caseline_events",
            &[],
        )
        .await
        .unwrap();
    let (min, max, stored_before): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(
        min.len() < max.len(),
        "the test must cross a power of ten in transaction ids: {min} .. {max}"
    );

    // The whole log is verified: every event in the database.
    let mut audit_client = AuditServiceClient::new(audit.channel().await);
    let verified = audit_client
        .verify_integrity(authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::Everything(true)),
            },
            &auditor.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact);
    assert_eq!(
        verified.events_checked, stored_before as u64,
        "VerifyIntegrity checked every event stored"
    );

    // The whole access history, in order, every event once.
    let stored: i64 = admin
        .query_one("SELECT count(*) FROM caseline_events", &[])
        .await
        .unwrap()
        .get(0);
    let mut replay = audit_client
        .replay_access_history(authed(
            ReplayAccessHistoryRequest::default(),
            &auditor.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut entries = Vec::new();
    while let Some(entry) = replay.message().await.unwrap() {
        entries.push(entry);
    }
    let positions: Vec<u128> = entries
        .iter()
        .map(|e| e.position.parse().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "the access history is in log order"
    );
    let keys: HashSet<_> = entries.iter().map(|e| (&e.stream, e.version)).collect();
    assert_eq!(keys.len(), entries.len(), "no entry twice");
    assert!(
        entries.len() as i64 >= stored && entries.len() as i64 <= stored + 1,
        "the whole access history: {} entries of {stored} events",
        entries.len()
    );

    // A timeline read in small pages: every entry once, in order.
    let mut timeline = Vec::new();
    let mut token = String::new();
    loop {
        let page = cases
            .get_timeline(authed(
                GetTimelineRequest {
                    case_id: opened[0].clone(),
                    page_size: 7,
                    page_token: token,
                },
                &worker.token,
            ))
            .await
            .unwrap()
            .into_inner();
        timeline.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let case_events: i64 = admin
        .query_one(
            "SELECT count(*) FROM caseline_events WHERE stream = $1",
            &[&format!("case-{}", opened[0])],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        timeline.len() as i64,
        case_events,
        "every entry of the timeline"
    );
    let ids: HashSet<_> = timeline.iter().map(|e| &e.event_id).collect();
    assert_eq!(ids.len(), timeline.len(), "no entry twice");
    let times: Vec<_> = timeline
        .iter()
        .map(|e| {
            let t = e.recorded_at.unwrap();
            (t.seconds, t.nanos)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");

    // Projections rebuilt from the log, as after deleting their checkpoints.
    cases_process.stop().await;
    admin
        .batch_execute("DELETE FROM caseline_projection_checkpoints")
        .await
        .unwrap();
    cases_process.restart().await;
    let mut cases = CaseServiceClient::new(cases_process.channel().await);
    let listed = cases
        .list_cases(authed(
            ListCasesRequest {
                page_size: 100,
                ..ListCasesRequest::default()
            },
            &worker.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let listed: HashSet<_> = listed.cases.iter().map(|c| c.case_id.clone()).collect();
    assert_eq!(
        listed,
        opened.iter().cloned().collect::<HashSet<_>>(),
        "every case listed after a rebuild"
    );
}
