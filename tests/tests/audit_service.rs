//! AuditService on a whole all-in-one server: integrity, access history, break-glass
//! review, and who may call it — real gRPC, real tokens, a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use caseline_auth::Role;
use caseline_e2e::check::contains;
use caseline_e2e::{TestServer, authed, seed, ts};
use caseline_eventlog::{StreamName, Uuid};
use caseline_policy::teams::TEAM_MEMBER_ADDED;
use caseline_proto::prost::Message;
use caseline_proto::tonic::Code;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::events::BreakGlassGranted;
use caseline_proto::v1::{
    EntryKind, ListBreakGlassUsesRequest, Outcome, ReplayAccessHistoryRequest,
    VerifyIntegrityRequest, verify_integrity_request::Scope,
};
use tonic_types::StatusExt;

async fn verify(
    server: &TestServer,
    token: &str,
    scope: Scope,
) -> caseline_proto::v1::VerifyIntegrityResponse {
    let mut client = AuditServiceClient::new(server.channel().await);
    client
        .verify_integrity(authed(VerifyIntegrityRequest { scope: Some(scope) }, token))
        .await
        .unwrap()
        .into_inner()
}

async fn replay(
    server: &TestServer,
    token: &str,
    request: ReplayAccessHistoryRequest,
) -> Vec<caseline_proto::v1::AccessHistoryEntry> {
    let mut client = AuditServiceClient::new(server.channel().await);
    let mut stream = client
        .replay_access_history(authed(request, token))
        .await
        .unwrap()
        .into_inner();
    let mut entries = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        entries.push(entry);
    }
    entries
}

#[tokio::test]
async fn a_tampered_row_is_named_by_verify_integrity() {
    let server = TestServer::start().await;
    let auditor = server.token("auditor-1", Role::Auditor, "oversight-board");
    let case_id = seed::case_with_social_worker(&*server.log, "sw-1", "social-north").await;
    for _ in 0..2 {
        seed::add_member(
            &*server.log,
            case_id,
            &format!("member-{}", Uuid::new_v4()),
            "police-north",
            "police_investigator",
        )
        .await;
    }

    let before = verify(&server, &auditor, Scope::Everything(true)).await;
    assert!(before.intact, "{before:?}");
    assert!(
        before.streams_checked >= 1 && before.events_checked >= 3,
        "{before:?}"
    );

    // Someone with file access rewrites the second event of the case's stream.
    let conn = rusqlite::Connection::open(server.dir.path().join("events.sqlite")).unwrap();
    conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET data = X'0a0378797a' WHERE stream = ?1 AND version = 1",
            [format!("case-{case_id}")],
        )
        .unwrap();
    assert_eq!(changed, 1);

    for scope in [
        Scope::Everything(true),
        Scope::CaseId(case_id.to_string()),
        Scope::Stream(format!("case-{case_id}")),
    ] {
        let report = verify(&server, &auditor, scope.clone()).await;
        assert!(!report.intact, "{scope:?}");
        let broken = report.first_broken.expect("the broken link is named");
        assert_eq!(broken.stream, format!("case-{case_id}"), "{scope:?}");
        assert_eq!(broken.version, 1);
        assert_eq!(broken.kind, "hash_mismatch");
    }
    // Another case is untouched.
    let other = seed::case_with_social_worker(&*server.log, "sw-2", "social-north").await;
    assert!(
        verify(&server, &auditor, Scope::CaseId(other.to_string()))
            .await
            .intact
    );
    server.stop().await;
}

#[tokio::test]
async fn only_auditors_verify_and_replay_and_every_refusal_is_recorded() {
    let server = TestServer::start().await;
    let mut client = AuditServiceClient::new(server.channel().await);
    let social = server.token("sw-1", Role::SocialWorker, "social-north");
    let supervisor = server.token("sup-1", Role::Supervisor, "social-north");

    let no_token = client
        .verify_integrity(VerifyIntegrityRequest {
            scope: Some(Scope::Everything(true)),
        })
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
    for token in [&social, &supervisor] {
        let err = client
            .verify_integrity(authed(
                VerifyIntegrityRequest {
                    scope: Some(Scope::Everything(true)),
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let err = client
            .replay_access_history(authed(ReplayAccessHistoryRequest::default(), token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }

    let auditor = server.token("auditor-1", Role::Auditor, "oversight-board");
    let denied = replay(
        &server,
        &auditor,
        ReplayAccessHistoryRequest {
            outcome: Outcome::Denied as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(denied.len(), 5, "{denied:#?}");
    assert!(denied.iter().all(|e| e.kind == EntryKind::Access as i32));
    let anonymous = &denied[0];
    assert_eq!(anonymous.stream, "access-unauthenticated");
    assert!(denied[1..].iter().all(|e| e.stream == "access-global"));
    assert_eq!(
        (anonymous.actor.as_str(), anonymous.reason.as_str()),
        ("", "no_token")
    );
    assert_eq!(anonymous.status_code, Code::Unauthenticated as i32);
    assert_eq!(
        anonymous.action,
        "/caseline.v1.AuditService/VerifyIntegrity"
    );
    assert!(!anonymous.peer.is_empty() && !anonymous.instance.is_empty());
    assert_eq!(anonymous.trace_id.len(), 32);
    let by_social: Vec<_> = denied.iter().filter(|e| e.actor == "sw-1").collect();
    assert_eq!(by_social.len(), 2);
    assert!(by_social.iter().all(|e| e.role == "social_worker"
        && e.agency == "social-north"
        && e.reason == "role_not_permitted"
        && e.policy_version == caseline_policy::POLICY_VERSION));

    // Filters: by actor; by time (nothing before the epoch of the test, all after).
    let mine = replay(
        &server,
        &auditor,
        ReplayAccessHistoryRequest {
            actor: "sup-1".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(mine.len(), 2);
    let future = replay(
        &server,
        &auditor,
        ReplayAccessHistoryRequest {
            from: Some(ts(SystemTime::now() + Duration::from_secs(3600))),
            ..Default::default()
        },
    )
    .await;
    assert!(future.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn replaying_a_case_merges_writes_access_records_and_list_mentions() {
    let server = TestServer::start().await;
    let case_id = seed::case_with_social_worker(&*server.log, "sw-1", "social-north").await;
    let other = seed::case_with_social_worker(&*server.log, "sw-9", "social-south").await;
    seed::break_glass(
        &*server.log,
        server.trust.vault(),
        case_id,
        "pol-7",
        "police-north",
        "the child is missing tonight",
    )
    .await;
    seed::break_glass(
        &*server.log,
        server.trust.vault(),
        other,
        "pol-8",
        "police-south",
        "another child, another night",
    )
    .await;

    // A supervisor of social-north lists break-glass uses: the record names the case.
    let supervisor = server.token("sup-1", Role::Supervisor, "social-north");
    let mut client = AuditServiceClient::new(server.channel().await);
    let uses = client
        .list_break_glass_uses(authed(ListBreakGlassUsesRequest::default(), &supervisor))
        .await
        .unwrap()
        .into_inner()
        .uses;
    assert_eq!(uses.len(), 1, "only the case social-north is on: {uses:?}");
    assert_eq!(uses[0].case_id, case_id.to_string());
    assert_eq!(uses[0].reason, "the child is missing tonight");

    let auditor = server.token("auditor-1", Role::Auditor, "oversight-board");
    let history = replay(
        &server,
        &auditor,
        ReplayAccessHistoryRequest {
            case_id: case_id.to_string(),
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<i32> = history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[..3],
        [
            EntryKind::Write as i32,
            EntryKind::BreakGlass as i32,
            EntryKind::Access as i32
        ],
        "{history:#?}"
    );
    assert_eq!(history[0].action, TEAM_MEMBER_ADDED);
    assert_eq!(history[1].actor, "pol-7");
    assert_eq!(history[1].purpose, "emergency_safeguarding");
    assert_eq!(history[2].actor, "sup-1");
    assert_eq!(history[2].stream, "access-global");
    assert!(history[2].resource_ids.contains(&case_id.to_string()));
    let positions: Vec<u128> = history
        .iter()
        .map(|e| e.position.parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert!(
        history
            .iter()
            .all(|e| e.case_id == case_id.to_string() || e.stream == "access-global")
    );
    // Nothing of the other case, and no sealed text anywhere in what auditors get.
    let bytes: Vec<u8> = history.iter().flat_map(|e| e.encode_to_vec()).collect();
    assert!(!contains(&bytes, other.to_string().as_bytes()));
    assert!(!contains(&bytes, b"missing tonight"));

    // Auditors see every use, never the reason.
    let all = client
        .list_break_glass_uses(authed(ListBreakGlassUsesRequest::default(), &auditor))
        .await
        .unwrap()
        .into_inner()
        .uses;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|u| u.reason.is_empty()));
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let server = TestServer::start().await;
    let auditor = server.token("auditor-1", Role::Auditor, "oversight-board");
    let mut client = AuditServiceClient::new(server.channel().await);
    let field_of = |status: caseline_proto::tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field
            .clone()
    };
    let err = client
        .verify_integrity(authed(VerifyIntegrityRequest { scope: None }, &auditor))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "scope");
    let err = client
        .verify_integrity(authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::CaseId("nope".into())),
            },
            &auditor,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "case_id");
    let err = client
        .verify_integrity(authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::Stream("Bad Stream!".into())),
            },
            &auditor,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "stream");
    let now = SystemTime::now();
    let err = client
        .replay_access_history(authed(
            ReplayAccessHistoryRequest {
                from: Some(ts(now)),
                to: Some(ts(now - Duration::from_secs(60))),
                ..Default::default()
            },
            &auditor,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "to");
    let err = client
        .list_break_glass_uses(authed(
            ListBreakGlassUsesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &auditor,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "page_token");
    server.stop().await;
}

#[tokio::test]
async fn after_shredding_sealed_fields_read_as_erased_and_the_chains_still_verify() {
    let server = TestServer::start().await;
    let case_id = seed::case_with_social_worker(&*server.log, "sw-1", "social-north").await;
    seed::break_glass(
        &*server.log,
        server.trust.vault(),
        case_id,
        "pol-7",
        "police-north",
        "the child is missing tonight",
    )
    .await;
    let vault = server.trust.vault();
    let stored = server
        .log
        .read_stream(
            &StreamName::for_id("access", case_id).unwrap(),
            caseline_eventlog::Direction::Forwards,
            None,
            10,
        )
        .await
        .unwrap();
    let grant = BreakGlassGranted::decode(stored[0].data.as_slice()).unwrap();
    let sealed = caseline_vault::Sealed::from_bytes(grant.reason_sealed).unwrap();
    assert!(!vault.open_text(case_id, &sealed).await.unwrap().is_erased());

    vault.shred(case_id).await.unwrap();
    assert!(vault.open_text(case_id, &sealed).await.unwrap().is_erased());
    let auditor = server.token("auditor-1", Role::Auditor, "oversight-board");
    let report = verify(&server, &auditor, Scope::CaseId(case_id.to_string())).await;
    assert!(report.intact, "{report:?}");
    assert_eq!(report.events_checked, 2);

    // The supervisor's review list still shows the use; its reason reads as erased.
    let supervisor = server.token("sup-1", Role::Supervisor, "police-north");
    let mut client = AuditServiceClient::new(server.channel().await);
    let uses = client
        .list_break_glass_uses(authed(ListBreakGlassUsesRequest::default(), &supervisor))
        .await
        .unwrap()
        .into_inner()
        .uses;
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].reason, "(erased)");
    server.stop().await;
}

#[tokio::test]
async fn timestamps_outside_the_protobuf_range_and_oversized_pages_name_the_field() {
    use caseline_proto::prost_types::Timestamp;
    use caseline_proto::v1::GetTimelineAsOfRequest;
    use caseline_proto::v1::get_timeline_as_of_request::Viewer;

    let server = TestServer::start().await;
    let auditor = server.token("auditor-1", Role::Auditor, "oversight-board");
    let mut client = AuditServiceClient::new(server.channel().await);
    let field_of = |status: caseline_proto::tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations.len(), 1, "{status:?}");
        violations[0].field.clone()
    };
    let at = |seconds: i64, nanos: i32| Some(Timestamp { seconds, nanos });
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of a Timestamp.
    let (first, last) = (-62_135_596_800, 253_402_300_799);
    let outside = [
        at(10_000_000_000_000, 0),
        at(i64::MAX, 0),
        at(last + 1, 0),
        at(first - 1, 0),
        at(0, 1_000_000_000),
        at(0, -1),
    ];

    for as_of in outside {
        let err = client
            .get_timeline_as_of(authed(
                GetTimelineAsOfRequest {
                    case_id: Uuid::new_v4().to_string(),
                    as_of,
                    viewer: Some(Viewer::Role("social_worker".into())),
                    ..GetTimelineAsOfRequest::default()
                },
                &auditor,
            ))
            .await
            .unwrap_err();
        assert_eq!(field_of(err), "as_of", "as_of {as_of:?}");
    }
    for t in outside {
        for (request, field) in [
            (
                ReplayAccessHistoryRequest {
                    from: t,
                    ..Default::default()
                },
                "from",
            ),
            (
                ReplayAccessHistoryRequest {
                    to: t,
                    ..Default::default()
                },
                "to",
            ),
        ] {
            let err = client
                .replay_access_history(authed(request, &auditor))
                .await
                .unwrap_err();
            assert_eq!(field_of(err), field, "{field} {t:?}");
        }
        let err = client
            .list_break_glass_uses(authed(
                ListBreakGlassUsesRequest {
                    since: t,
                    ..Default::default()
                },
                &auditor,
            ))
            .await
            .unwrap_err();
        assert_eq!(field_of(err), "since", "since {t:?}");
    }
    // The ends of the range are instants like any other.
    let all = replay(
        &server,
        &auditor,
        ReplayAccessHistoryRequest {
            from: at(first, 0),
            to: at(last, 999_999_999),
            ..Default::default()
        },
    )
    .await;
    assert!(!all.is_empty());

    for page_size in [501, u32::MAX] {
        let err = client
            .list_break_glass_uses(authed(
                ListBreakGlassUsesRequest {
                    page_size,
                    ..Default::default()
                },
                &auditor,
            ))
            .await
            .unwrap_err();
        assert_eq!(field_of(err), "page_size", "page_size {page_size}");
    }
    client
        .list_break_glass_uses(authed(
            ListBreakGlassUsesRequest {
                page_size: 500,
                ..Default::default()
            },
            &auditor,
        ))
        .await
        .unwrap();
    server.stop().await;
}
