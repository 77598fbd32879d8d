//! The event log contract, written once and run against every backend.
//!
//! Each test body in `suite` takes a [`Harness`]; `conformance_tests!` instantiates the
//! bodies for a backend. SQLite and PostgreSQL always run (PostgreSQL from
//! `CASELINE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! a missing server fails the tests with instructions, never skips them). KurrentDB runs
//! with the cargo feature `kurrentdb`, against `CASELINE_TEST_KURRENTDB_URL` (unset: the
//! tests fail with instructions).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use caseline_eventlog::{
    AppendResult, BrokenKind, Direction, Error, EventLog, ExpectedVersion, GENESIS, Interest,
    MAX_CALL_CONTEXT_BYTES, MAX_EVENT_BYTES, Metadata, NewEvent, Position, RecordedEvent,
    StreamName, catch_up, subscribe,
};
use uuid::Uuid;

/// What the suite needs from a backend beyond the [`EventLog`] contract.
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    fn log(&self) -> Arc<dyn EventLog>;
    /// Closes the log and opens it again on the same storage.
    async fn reopen(&mut self);
    /// Alters the stored payload of one event behind the log's back (raw SQL).
    async fn tamper(&self, stream: &StreamName, version: u64);
    /// Sets the stored `call` column of one event behind the log's back (raw SQL),
    /// leaving every other column as it was.
    async fn tamper_call(&self, stream: &StreamName, version: u64, call: Option<&str>);
}

/// A call context as the trust layer writes it.
pub const CALL: &str = r#"{"rpc":"/caseline.v1.CaseService/AddNote","peer":"203.0.113.7:51234","instance":"caseline-1","purpose":"casework","break_glass":false,"policy_version":"2024-06-01"}"#;

pub fn stream(category: &str) -> StreamName {
    StreamName::for_id(category, Uuid::new_v4()).unwrap()
}

pub fn event(case_id: Option<Uuid>, data: &[u8]) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "caseline.v1.events.TestHappened".into(),
        data: data.to_vec(),
        metadata: Metadata {
            case_id,
            actor: "user-7".into(),
            actor_role: "social_worker".into(),
            agency: "children-services-north".into(),
            request_id: Some(Uuid::new_v4()),
            correlation_id: Some(Uuid::new_v4()),
            causation_id: Some(Uuid::new_v4()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            call: Some(CALL.into()),
        },
    }
}

fn timeout<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(30), f)
}

/// The whole log once `expect` events are visible through `read_all`, which may lag
/// behind commits while other transactions are in flight (PostgreSQL), but never skips.
async fn all_events(log: &dyn EventLog, expect: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut out = Vec::new();
        let mut after = Position::START;
        loop {
            let page = log.read_all(after, 100).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            out.extend(page);
        }
        if out.len() >= expect || tokio::time::Instant::now() > deadline {
            assert_eq!(out.len(), expect, "events visible through read_all");
            return out;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Appends one event and returns the stream's version after it.
async fn append_at(log: &dyn EventLog, s: &StreamName, expected: ExpectedVersion) -> u64 {
    log.append(s, expected, vec![event(None, b"x")])
        .await
        .unwrap()
        .last_version
}

fn assert_wrong_version(result: Result<AppendResult, Error>, want_actual: Option<u64>) {
    match result {
        Err(Error::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, want_actual),
        other => panic!("expected WrongExpectedVersion(actual {want_actual:?}), got {other:?}"),
    }
}

fn assert_invalid(result: Result<impl std::fmt::Debug, Error>, want_field: &str) {
    match result {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, want_field),
        other => panic!("expected InvalidInput({want_field}), got {other:?}"),
    }
}

pub mod suite {
    use super::*;

    pub async fn round_trip_of_every_envelope_field(h: &mut dyn Harness) {
        let log = h.log();
        let case = Uuid::new_v4();
        let s = stream("case");
        let full = event(Some(case), b"\x08\x01payload");
        let mut bare = event(None, b"");
        bare.metadata = Metadata {
            actor: "helpline-3".into(),
            actor_role: "helpline_counsellor".into(),
            agency: "childline".into(),
            ..Metadata::default()
        };
        let before = SystemTime::now() - Duration::from_millis(1);
        let r = log
            .append(
                &s,
                ExpectedVersion::NoStream,
                vec![full.clone(), bare.clone()],
            )
            .await
            .unwrap();
        let after = SystemTime::now() + Duration::from_millis(1);
        assert_eq!((r.first_version, r.last_version), (0, 1));

        let read = log
            .read_stream(&s, Direction::Forwards, None, 10)
            .await
            .unwrap();
        assert_eq!(read.len(), 2);
        for (i, (got, sent)) in read.iter().zip([&full, &bare]).enumerate() {
            assert_eq!(got.event_id, sent.event_id);
            assert_eq!(got.stream, s);
            assert_eq!(got.version, i as u64);
            assert_eq!(got.event_type, sent.event_type);
            assert_eq!(got.data, sent.data);
            assert_eq!(got.metadata, sent.metadata);
            assert!(got.recorded_at >= before && got.recorded_at <= after);
        }
        // `call` comes back byte for byte, and absent stays absent.
        assert_eq!(read[0].metadata.call.as_deref(), Some(CALL));
        assert_eq!(read[1].metadata.call, None);
        assert_eq!(read[0].prev_hash, GENESIS);
        assert_eq!(read[1].prev_hash, read[0].hash);
        assert_ne!(read[0].hash, read[1].hash);
        assert!(read[0].position > Position::START && read[0].position < read[1].position);
        assert_eq!(read[1].position, r.last_position);

        // The same envelope through every read path.
        assert_eq!(
            log.read_case(case, Position::START, 10).await.unwrap(),
            read[..1]
        );
        let all = all_events(&*log, 2).await;
        assert_eq!(
            all.iter()
                .filter(|e| e.stream == s)
                .cloned()
                .collect::<Vec<_>>(),
            read
        );
        let text: Position = read[1].position.to_string().parse().unwrap();
        assert_eq!(text, read[1].position);
        assert!(log.verify_stream(&s).await.unwrap().is_intact());
    }

    pub async fn each_expected_version_case(h: &mut dyn Harness) {
        let log = h.log();
        let s = stream("case");
        let one = || vec![event(None, b"x")];

        assert_wrong_version(log.append(&s, ExpectedVersion::Exact(0), one()).await, None);
        assert_eq!(log.stream_version(&s).await.unwrap(), None);
        let r = log
            .append(&s, ExpectedVersion::NoStream, one())
            .await
            .unwrap();
        assert_eq!(r.last_version, 0);
        assert_wrong_version(
            log.append(&s, ExpectedVersion::NoStream, one()).await,
            Some(0),
        );
        let r = log
            .append(&s, ExpectedVersion::Exact(0), one())
            .await
            .unwrap();
        assert_eq!(r.last_version, 1);
        assert_wrong_version(
            log.append(&s, ExpectedVersion::Exact(0), one()).await,
            Some(1),
        );
        assert_wrong_version(
            log.append(&s, ExpectedVersion::Exact(7), one()).await,
            Some(1),
        );
        let r = log.append(&s, ExpectedVersion::Any, one()).await.unwrap();
        assert_eq!((r.first_version, r.last_version), (2, 2));
        let fresh = stream("case");
        let r = log
            .append(&fresh, ExpectedVersion::Any, one())
            .await
            .unwrap();
        assert_eq!(r.last_version, 0);
        assert_eq!(log.stream_version(&s).await.unwrap(), Some(2));

        // The error says what was expected and what is, for a retry to use.
        match log.append(&s, ExpectedVersion::Exact(1), one()).await {
            Err(e @ Error::WrongExpectedVersion { .. }) => {
                assert!(e.is_retryable());
                assert_eq!(
                    e.to_string(),
                    format!("wrong expected version on stream {s}: expected 1, actual 2")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            log.read_stream(&s, Direction::Forwards, None, 100)
                .await
                .unwrap()
                .len(),
            3
        );
    }

    /// 32 appenders race for each version: exactly one wins each round, the others are
    /// told the version that now stands, and the stream has no gap.
    pub async fn concurrent_appenders_one_success_per_version(h: &mut dyn Harness) {
        const APPENDERS: usize = 32;
        const ROUNDS: u64 = 8;
        let log = h.log();
        let s = stream("case");
        let mut winners = Vec::new();
        for round in 0..ROUNDS {
            let expected = match round {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v - 1),
            };
            let barrier = Arc::new(tokio::sync::Barrier::new(APPENDERS));
            let tasks: Vec<_> = (0..APPENDERS)
                .map(|_| {
                    let (log, s, barrier) = (log.clone(), s.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let e = event(None, b"race");
                        let id = e.event_id;
                        barrier.wait().await;
                        (id, log.append(&s, expected, vec![e]).await)
                    })
                })
                .collect();
            let mut won = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    (id, Ok(r)) => {
                        assert_eq!(r.last_version, round);
                        won.push(id);
                    }
                    (_, result) => assert_wrong_version(result, Some(round)),
                }
            }
            assert_eq!(won.len(), 1, "round {round}: exactly one appender must win");
            winners.extend(won);
        }
        let stored = log
            .read_stream(&s, Direction::Forwards, None, 100)
            .await
            .unwrap();
        assert_eq!(
            stored.iter().map(|e| e.version).collect::<Vec<_>>(),
            (0..ROUNDS).collect::<Vec<_>>()
        );
        assert_eq!(
            stored.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            winners
        );
        assert!(log.verify_stream(&s).await.unwrap().is_intact());

        // And with `Any`, every one of 32 concurrent appends lands, each once.
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|_| {
                let (log, s) = (log.clone(), s.clone());
                tokio::spawn(async move {
                    log.append(&s, ExpectedVersion::Any, vec![event(None, b"any")])
                        .await
                })
            })
            .collect();
        let mut versions = HashSet::new();
        for task in tasks {
            assert!(versions.insert(task.await.unwrap().unwrap().last_version));
        }
        assert_eq!(versions, (ROUNDS..ROUNDS + APPENDERS as u64).collect());
        assert!(log.verify_stream(&s).await.unwrap().is_intact());
    }

    pub async fn idempotent_retry_stores_nothing_new(h: &mut dyn Harness) {
        let log = h.log();
        let s = stream("referral");
        let batch = vec![event(None, b"a"), event(None, b"b")];
        let first = log
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        let stored_before = all_events(&*log, 2).await.len();

        // A retry (even with the expected version of the first try) returns the original.
        let again = log
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert_eq!(again, first);
        let again = log
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(all_events(&*log, stored_before).await.len(), stored_before);

        // Reusing the ids for anything else is a conflict and stores nothing.
        let mut changed = batch.clone();
        changed[1].data = b"different".to_vec();
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, changed).await,
            Err(Error::EventIdConflict { event_id }) if event_id == batch[1].event_id
        ));
        let mut other_actor = batch.clone();
        other_actor[0].metadata.actor = "someone-else".into();
        other_actor[1].metadata.actor = "someone-else".into();
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, other_actor).await,
            Err(Error::EventIdConflict { .. })
        ));
        let partial = vec![batch[1].clone(), event(None, b"c")];
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, partial).await,
            Err(Error::EventIdConflict { .. })
        ));
        assert_eq!(
            log.read_stream(&s, Direction::Forwards, None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(all_events(&*log, stored_before).await.len(), stored_before);
        // Event ids are unique within their stream: the same batch in another stream is
        // an append of its own there, and its retry is answered from that stream.
        let elsewhere = stream("referral");
        let there = log
            .append(&elsewhere, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert_eq!((there.first_version, there.last_version), (0, 1));
        let again_there = log
            .append(&elsewhere, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert_eq!(again_there, there);
        assert_eq!(log.stream_version(&s).await.unwrap(), Some(1));
    }

    pub async fn a_batch_is_all_or_nothing(h: &mut dyn Harness) {
        let log = h.log();
        let s = stream("plan");
        let stored = log
            .append(&s, ExpectedVersion::NoStream, vec![event(None, b"first")])
            .await
            .unwrap();
        let taken = log
            .read_stream(&s, Direction::Forwards, None, 1)
            .await
            .unwrap()[0]
            .event_id;

        // The last event of the batch reuses an id stored in the stream: none of the
        // batch is stored.
        let mut clash = event(None, b"clash");
        clash.event_id = taken;
        let batch = vec![event(None, b"1"), event(None, b"2"), clash];
        let before = log.stream_version(&s).await.unwrap();
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, batch).await,
            Err(Error::EventIdConflict { .. })
        ));
        assert_eq!(log.stream_version(&s).await.unwrap(), before);

        // An oversize last event: nothing stored.
        let mut big = event(None, b"");
        big.data = vec![0u8; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, vec![event(None, b"ok"), big])
                .await,
            Err(Error::TooLarge { field: "data", .. })
        ));
        // A stale expected version: nothing of the batch stored.
        assert_wrong_version(
            log.append(
                &s,
                ExpectedVersion::NoStream,
                vec![event(None, b"1"), event(None, b"2")],
            )
            .await,
            Some(0),
        );
        assert_eq!(
            log.stream_version(&s).await.unwrap(),
            Some(stored.last_version)
        );
        assert_eq!(all_events(&*log, 1).await.len(), 1);
    }

    pub async fn read_case_events_leaves_out_access_records(h: &mut dyn Harness) {
        let log = h.log();
        let case = Uuid::new_v4();
        let access = StreamName::for_id("access", case).unwrap();
        let domain = [stream("case"), stream("referral")];
        let mut expected = Vec::new();
        for round in 0..6 {
            // Many access records between the case's own events, as reads make them.
            for _ in 0..3 {
                let e = event(Some(case), b"read");
                log.append(&access, ExpectedVersion::Any, vec![e])
                    .await
                    .unwrap();
            }
            let e = event(Some(case), format!("{round}").as_bytes());
            expected.push(e.event_id);
            log.append(&domain[round % 2], ExpectedVersion::Any, vec![e])
                .await
                .unwrap();
            // Another case's events stay out.
            let other = event(Some(Uuid::new_v4()), b"other");
            log.append(&domain[0], ExpectedVersion::Any, vec![other])
                .await
                .unwrap();
        }
        let got = log
            .read_case_events(case, Position::START, 1000)
            .await
            .unwrap();
        assert_eq!(got.iter().map(|e| e.event_id).collect::<Vec<_>>(), expected);
        // Pages by position give the same sequence.
        let mut paged = Vec::new();
        let mut after = Position::START;
        loop {
            let page = log.read_case_events(case, after, 4).await.unwrap();
            let Some(last) = page.last() else { break };
            assert!(page.len() <= 4);
            after = last.position;
            paged.extend(page.into_iter().map(|e| e.event_id));
        }
        assert_eq!(paged, expected);
        // read_case still holds everything.
        assert_eq!(
            log.read_case(case, Position::START, 1000)
                .await
                .unwrap()
                .len(),
            expected.len() + 18
        );
    }

    pub async fn read_case_spans_streams_in_global_order(h: &mut dyn Harness) {
        let log = h.log();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let streams = [
            stream("case"),
            stream("referral"),
            stream("plan"),
            stream("access"),
        ];
        let mut expected_a = Vec::new();
        for round in 0..5 {
            for (i, s) in streams.iter().enumerate() {
                let case = if (round + i) % 3 == 0 { b } else { a };
                let e = event(Some(case), format!("{round}-{i}").as_bytes());
                if case == a {
                    expected_a.push(e.event_id);
                }
                log.append(s, ExpectedVersion::Any, vec![e]).await.unwrap();
            }
        }
        let got = log.read_case(a, Position::START, 1000).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            expected_a
        );
        assert!(got.windows(2).all(|w| w[0].position < w[1].position));
        assert!(got.iter().all(|e| e.metadata.case_id == Some(a)));

        // Paging by position gives the same sequence.
        let mut paged = Vec::new();
        let mut after = Position::START;
        loop {
            let page = log.read_case(a, after, 4).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            paged.extend(page);
        }
        assert_eq!(paged, got);
        assert!(
            log.read_case(Uuid::new_v4(), Position::START, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn read_stream_both_directions(h: &mut dyn Harness) {
        let log = h.log();
        let s = stream("claim");
        for i in 0..10u8 {
            log.append(&s, ExpectedVersion::Any, vec![event(None, &[i])])
                .await
                .unwrap();
        }
        let versions =
            |events: Vec<RecordedEvent>| events.iter().map(|e| e.version).collect::<Vec<_>>();
        let read = |d, from, limit| {
            let (log, s) = (log.clone(), s.clone());
            async move { versions(log.read_stream(&s, d, from, limit).await.unwrap()) }
        };
        assert_eq!(read(Direction::Forwards, None, 3).await, vec![0, 1, 2]);
        assert_eq!(
            read(Direction::Forwards, Some(3), 4).await,
            vec![3, 4, 5, 6]
        );
        assert_eq!(read(Direction::Forwards, Some(8), 100).await, vec![8, 9]);
        assert_eq!(
            read(Direction::Forwards, Some(10), 100).await,
            Vec::<u64>::new()
        );
        assert_eq!(read(Direction::Backwards, None, 3).await, vec![9, 8, 7]);
        assert_eq!(
            read(Direction::Backwards, Some(2), 100).await,
            vec![2, 1, 0]
        );
        assert_eq!(read(Direction::Backwards, Some(u64::MAX), 1).await, vec![9]);
        let absent = stream("claim");
        assert!(
            log.read_stream(&absent, Direction::Forwards, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(log.stream_version(&absent).await.unwrap(), None);
    }

    pub async fn read_all_pages_in_one_total_order(h: &mut dyn Harness) {
        let log = h.log();
        for i in 0..30u8 {
            let s = stream(if i % 2 == 0 { "case" } else { "contact" });
            log.append(&s, ExpectedVersion::NoStream, vec![event(None, &[i])])
                .await
                .unwrap();
        }
        let whole = all_events(&*log, 30).await;
        assert!(whole.windows(2).all(|w| w[0].position < w[1].position));
        assert_eq!(all_events(&*log, 30).await, whole);
        let tail = log.read_all(whole[9].position, 1000).await.unwrap();
        assert_eq!(tail, whole[10..]);
        assert!(
            log.read_all(whole[29].position, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// `read_of` returns exactly the events its interest admits (stream categories as
    /// whole prefixes, whole stream names, event types anywhere), in the global order,
    /// page after page; LIKE's wildcards in a category are plain characters.
    pub async fn read_of_reads_only_what_is_asked(h: &mut dyn Harness) {
        let log = h.log();
        let global = StreamName::new("access-global").unwrap();
        for i in 0..40u8 {
            let s = match i % 4 {
                0 => stream("case"),
                1 => stream("contact"),
                2 => stream("access"),
                _ => global.clone(),
            };
            let mut e = event(None, &[i]);
            if i % 5 == 0 {
                e.event_type = "caseline.v1.events.TestGranted".into();
            }
            log.append(&s, ExpectedVersion::Any, vec![e]).await.unwrap();
        }
        let whole = all_events(&*log, 40).await;
        const ASKED: Interest = Interest::of(
            &["case"],
            &["access-global"],
            &["caseline.v1.events.TestGranted"],
        );
        let expected: Vec<RecordedEvent> =
            whole.iter().filter(|e| ASKED.admits(e)).cloned().collect();
        assert!(
            expected.len() > 10 && expected.len() < 40,
            "{}",
            expected.len()
        );
        let mut read = Vec::new();
        let mut after = Position::START;
        loop {
            let page = log.read_of(&ASKED, after, 3).await.unwrap();
            read.extend(page.events.iter().cloned());
            assert!(page.scanned_to >= after);
            after = page.scanned_to;
            if page.events.len() < 3 {
                // The end: looked through to the last event, admitted or not.
                assert_eq!(page.scanned_to, whole[39].position);
                break;
            }
            assert_eq!(page.scanned_to, page.events[2].position);
        }
        assert_eq!(read, expected);
        // Nothing new: nothing read, and the position stays.
        let again = log.read_of(&ASKED, after, 3).await.unwrap();
        assert!(again.events.is_empty());
        assert_eq!(again.scanned_to, after);
        for nothing in [
            Interest::of(&["cas"], &[], &[]),
            Interest::of(&["ca_e"], &[], &[]),
            Interest::of(&["%"], &[], &[]),
            Interest::of(&[], &["access-glob"], &[]),
            Interest::of(&[], &[], &[]),
        ] {
            let got = log.read_of(&nothing, Position::START, 100).await.unwrap();
            assert!(
                got.events.is_empty(),
                "{nothing:?} admitted {}",
                got.events.len()
            );
            assert_eq!(got.scanned_to, whole[39].position);
        }
        assert_eq!(
            log.read_of(&Interest::EVERYTHING, Position::START, 1000)
                .await
                .unwrap()
                .events,
            whole
        );
    }

    /// Events of an interest that are rare in a long log (8 among 20 000, the last one
    /// at the very end) are all found, in order, whether read a few at a time or in one
    /// call that must look through the whole log; and the read says it looked to the end.
    pub async fn read_of_finds_rare_events_in_a_long_log(h: &mut dyn Harness) {
        const BATCHES: usize = 40;
        const EACH: usize = 500;
        let log = h.log();
        let global = StreamName::new("access-global").unwrap();
        for b in 0..BATCHES {
            let batch = (0..EACH).map(|i| event(None, &[(i % 251) as u8])).collect();
            log.append(&global, ExpectedVersion::Any, batch)
                .await
                .unwrap();
            if b % 5 == 4 {
                log.append(
                    &stream("case"),
                    ExpectedVersion::Any,
                    vec![event(None, &[1])],
                )
                .await
                .unwrap();
            }
        }
        let total = BATCHES * EACH + BATCHES / 5;
        let whole = all_events(&*log, total).await;
        const RARE: Interest = Interest::of(&["case"], &[], &[]);
        let expected: Vec<RecordedEvent> =
            whole.iter().filter(|e| RARE.admits(e)).cloned().collect();
        assert_eq!(expected.len(), BATCHES / 5);
        assert_eq!(expected.last(), whole.last(), "the last one ends the log");

        let mut read = Vec::new();
        let mut after = Position::START;
        loop {
            let page = log.read_of(&RARE, after, 3).await.unwrap();
            read.extend(page.events.iter().cloned());
            assert!(page.scanned_to >= after);
            after = page.scanned_to;
            if page.events.len() < 3 {
                break;
            }
        }
        assert_eq!(read, expected);
        assert_eq!(after, whole[total - 1].position);

        let at_once = log.read_of(&RARE, Position::START, 100).await.unwrap();
        assert_eq!(at_once.events, expected);
        assert_eq!(at_once.scanned_to, whole[total - 1].position);
        // Nothing of it before the first batch ends: looked through the whole log.
        let nothing = log
            .read_of(&Interest::of(&["contact"], &[], &[]), Position::START, 100)
            .await
            .unwrap();
        assert!(nothing.events.is_empty());
        assert_eq!(nothing.scanned_to, whole[total - 1].position);
    }

    /// A subscriber started before and during heavy writing sees every event exactly once,
    /// in the one global order that `read_all` reports.
    pub async fn subscriber_sees_every_event_once_in_order(h: &mut dyn Harness) {
        const WRITERS: usize = 8;
        const PER_WRITER: usize = 25;
        let log = h.log();
        for i in 0..20u8 {
            log.append(
                &stream("case"),
                ExpectedVersion::Any,
                vec![event(None, &[i])],
            )
            .await
            .unwrap();
        }
        let mut sub = subscribe(log.clone(), Position::START);
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    // One stream per writer, new in every run (servers outlive runs).
                    let shared = stream("case");
                    for i in 0..PER_WRITER {
                        let target = if i % 2 == 0 {
                            shared.clone()
                        } else {
                            stream("referral")
                        };
                        let batch = (0..1 + i % 3).map(|_| event(None, b"live")).collect();
                        log.append(&target, ExpectedVersion::Any, batch)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let written = 20 + WRITERS * (0..PER_WRITER).map(|i| 1 + i % 3).sum::<usize>();
        let stored = all_events(&*log, written).await;
        let mut seen = Vec::with_capacity(stored.len());
        while seen.len() < stored.len() {
            let e = timeout(sub.next())
                .await
                .expect("subscriber stalled")
                .unwrap()
                .unwrap();
            seen.push(e);
        }
        assert_eq!(
            seen.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            stored.iter().map(|e| e.event_id).collect::<Vec<_>>()
        );
        let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), seen.len(), "no event delivered twice");

        // Live: one more append arrives; a subscription from a checkpoint starts after it.
        let extra = event(None, b"after");
        log.append(&stream("case"), ExpectedVersion::Any, vec![extra.clone()])
            .await
            .unwrap();
        let e = timeout(sub.next())
            .await
            .expect("live event not delivered")
            .unwrap()
            .unwrap();
        assert_eq!(e.event_id, extra.event_id);
        let mut resumed = subscribe(log.clone(), stored[stored.len() - 1].position);
        let e = timeout(resumed.next())
            .await
            .expect("resume stalled")
            .unwrap()
            .unwrap();
        assert_eq!(e.event_id, extra.event_id);
    }

    pub async fn reopen_keeps_everything(h: &mut dyn Harness) {
        let s = stream("case");
        let case = Uuid::new_v4();
        let log = h.log();
        for i in 0..5u8 {
            log.append(&s, ExpectedVersion::Any, vec![event(Some(case), &[i])])
                .await
                .unwrap();
        }
        let before = all_events(&*log, 5).await;
        drop(log);
        h.reopen().await;
        let log = h.log();
        assert_eq!(all_events(&*log, 5).await, before);
        let r = log
            .append(
                &s,
                ExpectedVersion::Exact(4),
                vec![event(Some(case), b"more")],
            )
            .await
            .unwrap();
        assert_eq!(r.last_version, 5);
        assert!(r.last_position > before[before.len() - 1].position);
        assert!(log.verify_stream(&s).await.unwrap().is_intact());
        assert_eq!(
            log.read_case(case, Position::START, 100)
                .await
                .unwrap()
                .len(),
            6
        );
    }

    pub async fn tampered_row_is_reported(h: &mut dyn Harness) {
        let log = h.log();
        let (s, untouched) = (stream("case"), stream("case"));
        for i in 0..5u8 {
            log.append(&s, ExpectedVersion::Any, vec![event(None, &[i])])
                .await
                .unwrap();
            log.append(&untouched, ExpectedVersion::Any, vec![event(None, &[i])])
                .await
                .unwrap();
        }
        assert!(log.verify_stream(&s).await.unwrap().is_intact());
        h.tamper(&s, 2).await;
        let report = log.verify_stream(&s).await.unwrap();
        let broken = report.first_broken.expect("tampering must be detected");
        assert_eq!(broken.version, 2);
        assert_eq!(broken.kind, BrokenKind::HashMismatch);
        assert_eq!(report.events_checked, 3);
        let ok = log.verify_stream(&untouched).await.unwrap();
        assert!(ok.is_intact());
        assert_eq!(ok.events_checked, 5);
    }

    /// `call` is covered by the hash: changing, erasing or adding it in storage alone
    /// (nothing else about the row changes) breaks the chain at that event.
    pub async fn tampered_call_is_reported(h: &mut dyn Harness) {
        let log = h.log();
        let forged = CALL.replace(r#""break_glass":false"#, r#""break_glass":true"#);
        let mut without_call = event(None, b"0");
        without_call.metadata.call = None;
        let cases = [
            ("changed", Some(forged.as_str()), vec![event(None, b"0")]),
            ("erased", None, vec![event(None, b"0")]),
            ("added", Some(CALL), vec![without_call]),
        ];
        for (what, tampered, first) in cases {
            let s = stream("case");
            let mut batch = first;
            batch.extend((1..4u8).map(|i| event(None, &[i])));
            log.append(&s, ExpectedVersion::NoStream, batch)
                .await
                .unwrap();
            assert!(log.verify_stream(&s).await.unwrap().is_intact(), "{what}");
            h.tamper_call(&s, 0, tampered).await;
            let read = log
                .read_stream(&s, Direction::Forwards, Some(0), 1)
                .await
                .unwrap();
            assert_eq!(read[0].metadata.call.as_deref(), tampered, "{what}");
            let report = log.verify_stream(&s).await.unwrap();
            let broken = report
                .first_broken
                .unwrap_or_else(|| panic!("{what} call must be detected"));
            assert_eq!(broken.version, 0, "{what}");
            assert_eq!(broken.kind, BrokenKind::HashMismatch, "{what}");
            assert_eq!(report.events_checked, 1, "{what}");
        }

        // Later in a stream too: the events before it still verify.
        let s = stream("case");
        for i in 0..4u8 {
            log.append(&s, ExpectedVersion::Any, vec![event(None, &[i])])
                .await
                .unwrap();
        }
        h.tamper_call(&s, 2, Some(&forged)).await;
        let report = log.verify_stream(&s).await.unwrap();
        let broken = report.first_broken.expect("tampering must be detected");
        assert_eq!((broken.version, broken.kind), (2, BrokenKind::HashMismatch));
        assert_eq!(report.events_checked, 3);
    }

    pub async fn bad_input_is_typed_and_stores_nothing(h: &mut dyn Harness) {
        let log = h.log();
        assert_invalid(StreamName::new(""), "stream");
        assert_invalid(StreamName::new("case"), "stream");
        assert_invalid(StreamName::new("$all-x"), "stream");
        assert_invalid(StreamName::new("case-a b"), "stream");
        assert_invalid(
            StreamName::new(format!("case-{}", "a".repeat(300))),
            "stream",
        );
        assert_invalid(ExpectedVersion::from_wire(-3), "expected_version");
        assert_eq!(
            ExpectedVersion::from_wire(-1).unwrap(),
            ExpectedVersion::NoStream
        );
        assert_eq!(
            ExpectedVersion::from_wire(4).unwrap(),
            ExpectedVersion::Exact(4)
        );

        let s = stream("case");
        let mut big = event(None, b"");
        big.data = vec![7u8; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, vec![big]).await,
            Err(Error::TooLarge { field: "data", .. })
        ));
        let many = (0..1001).map(|_| event(None, b"x")).collect();
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, many).await,
            Err(Error::TooLarge {
                field: "events",
                ..
            })
        ));
        let mut nul = event(None, b"x");
        nul.metadata.actor = "user\0-7".into();
        assert_invalid(
            log.append(&s, ExpectedVersion::Any, vec![nul]).await,
            "metadata.actor",
        );
        let mut long_call = event(None, b"x");
        long_call.metadata.call = Some("x".repeat(MAX_CALL_CONTEXT_BYTES + 1));
        assert_invalid(
            log.append(&s, ExpectedVersion::Any, vec![long_call]).await,
            "metadata.call",
        );
        let mut control_call = event(None, b"x");
        control_call.metadata.call = Some("{\"rpc\":\"a\nb\"}".into());
        assert_invalid(
            log.append(&s, ExpectedVersion::Any, vec![control_call])
                .await,
            "metadata.call",
        );
        assert_invalid(
            log.append(
                &s,
                ExpectedVersion::Exact(u64::MAX),
                vec![event(None, b"x")],
            )
            .await,
            "expected_version",
        );
        assert_invalid(log.append(&s, ExpectedVersion::Any, vec![]).await, "events");
        let mut nil = event(None, b"x");
        nil.event_id = Uuid::nil();
        assert_invalid(
            log.append(&s, ExpectedVersion::Any, vec![nil]).await,
            "event_id",
        );
        let twice = event(None, b"x");
        assert_invalid(
            log.append(&s, ExpectedVersion::Any, vec![twice.clone(), twice])
                .await,
            "event_id",
        );
        let mut untyped = event(None, b"x");
        untyped.event_type.clear();
        assert_invalid(
            log.append(&s, ExpectedVersion::Any, vec![untyped]).await,
            "event_type",
        );
        assert_eq!(log.stream_version(&s).await.unwrap(), None);
        assert!(all_events(&*log, 0).await.is_empty());
    }

    pub async fn closed_log_refuses_calls(h: &mut dyn Harness) {
        let log = h.log();
        let s = stream("case");
        log.append(&s, ExpectedVersion::Any, vec![event(None, b"x")])
            .await
            .unwrap();
        log.close().await;
        assert!(matches!(
            log.append(&s, ExpectedVersion::Any, vec![event(None, b"y")])
                .await,
            Err(Error::Closed)
        ));
        assert!(matches!(
            log.read_all(Position::START, 10).await,
            Err(Error::Closed)
        ));
        h.reopen().await;
        assert_eq!(h.log().stream_version(&s).await.unwrap(), Some(0));
    }

    /// An event is found by its id, in its stream only.
    pub async fn find_event_finds_a_stored_event_in_its_stream(h: &mut dyn Harness) {
        let log = h.log();
        let s = stream("case");
        let other = stream("case");
        let batch = vec![
            event(None, b"before"),
            event(None, b"one"),
            event(None, b"two"),
        ];
        let wanted = batch[1].event_id;
        log.append(&s, ExpectedVersion::NoStream, batch)
            .await
            .unwrap();
        log.append(&other, ExpectedVersion::NoStream, vec![event(None, b"x")])
            .await
            .unwrap();
        let found = log.find_event(&s, wanted).await.unwrap().expect("found");
        assert_eq!((found.event_id, found.version), (wanted, 1));
        assert!(log.find_event(&other, wanted).await.unwrap().is_none());
        assert!(log.find_event(&s, Uuid::new_v4()).await.unwrap().is_none());
    }

    /// Every read returns every event once, in the order appended, on a log whose
    /// ordering key changes width (a power of ten) while this runs: whole log, per case,
    /// per case without access records, per stream both ways, each paged with small
    /// pages, and a subscription started before and one resumed in the middle. Appends
    /// `appends` times in sequence (so append order is global order) and returns what
    /// it appended, in order, for the caller to check that the boundary was crossed.
    pub async fn every_read_in_order_across(
        log: Arc<dyn EventLog>,
        appends: usize,
    ) -> Vec<RecordedEvent> {
        let cases: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let mut sub = subscribe(log.clone(), Position::START);
        let mut streams: Vec<StreamName> = Vec::new();
        let mut appended: Vec<Uuid> = Vec::new();
        for i in 0..appends {
            let case = cases[i % cases.len()];
            let (s, case_id, batch) = match i % 5 {
                0 => (StreamName::for_id("access", case).unwrap(), Some(case), 1),
                1 => (stream("contact"), None, 1),
                2 => (stream("referral"), Some(case), 2),
                _ => (StreamName::for_id("case", case).unwrap(), Some(case), 1),
            };
            let events: Vec<NewEvent> = (0..batch).map(|_| event(case_id, &[i as u8])).collect();
            appended.extend(events.iter().map(|e| e.event_id));
            log.append(&s, ExpectedVersion::Any, events).await.unwrap();
            if !streams.contains(&s) {
                streams.push(s);
            }
        }
        let ids = |events: &[RecordedEvent]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();
        let whole = all_events(&*log, appended.len()).await;
        assert_eq!(
            ids(&whole),
            appended,
            "read_all: every event once, in order"
        );

        for size in [1, 3, 64] {
            let mut paged = Vec::new();
            let mut after = Position::START;
            loop {
                let page = log.read_all(after, size).await.unwrap();
                let Some(last) = page.last() else { break };
                after = last.position;
                paged.extend(page);
            }
            assert_eq!(ids(&paged), appended, "read_all in pages of {size}");
            assert!(paged.windows(2).all(|w| w[0].position < w[1].position));
        }
        let mut caught = Vec::new();
        let mut after = Position::START;
        catch_up::<Error>(&*log, &mut after, |e| {
            caught.push(e.event_id);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(caught, appended, "catch_up");

        for case in &cases {
            let of_case: Vec<Uuid> = ids(&whole
                .iter()
                .filter(|e| e.metadata.case_id == Some(*case))
                .cloned()
                .collect::<Vec<_>>());
            let without_access: Vec<Uuid> = whole
                .iter()
                .filter(|e| {
                    e.metadata.case_id == Some(*case) && !e.stream.as_str().starts_with("access-")
                })
                .map(|e| e.event_id)
                .collect();
            for (events, want) in [(false, &of_case), (true, &without_access)] {
                let mut paged = Vec::new();
                let mut after = Position::START;
                loop {
                    let page = if events {
                        log.read_case_events(*case, after, 2).await.unwrap()
                    } else {
                        log.read_case(*case, after, 2).await.unwrap()
                    };
                    let Some(last) = page.last() else { break };
                    after = last.position;
                    paged.extend(page);
                }
                assert_eq!(
                    &ids(&paged),
                    want,
                    "read_case (without access: {events}) in pages of 2"
                );
            }
        }

        for s in &streams {
            let want: Vec<Uuid> = whole
                .iter()
                .filter(|e| &e.stream == s)
                .map(|e| e.event_id)
                .collect();
            let mut forwards = Vec::new();
            let mut from = 0;
            loop {
                let page = log
                    .read_stream(s, Direction::Forwards, Some(from), 2)
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                from = last.version + 1;
                forwards.extend(page);
            }
            assert_eq!(ids(&forwards), want, "read_stream forwards of {s}");
            let mut backwards = Vec::new();
            let mut from = None;
            loop {
                let page = log
                    .read_stream(s, Direction::Backwards, from, 2)
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                let done = last.version == 0;
                from = last.version.checked_sub(1);
                backwards.extend(page);
                if done {
                    break;
                }
            }
            backwards.reverse();
            assert_eq!(ids(&backwards), want, "read_stream backwards of {s}");
        }

        let mut live = Vec::new();
        while live.len() < appended.len() {
            let e = timeout(sub.next())
                .await
                .expect("subscriber stalled")
                .unwrap()
                .unwrap();
            live.push(e.event_id);
        }
        assert_eq!(
            live, appended,
            "a subscription from the start, live while appending"
        );
        let middle = appended.len() / 2;
        let mut resumed = subscribe(log.clone(), whole[middle - 1].position);
        let mut tail = Vec::new();
        while tail.len() < appended.len() - middle {
            let e = timeout(resumed.next())
                .await
                .expect("resumed subscriber stalled")
                .unwrap()
                .unwrap();
            tail.push(e.event_id);
        }
        assert_eq!(
            tail,
            appended[middle..],
            "a subscription resumed in the middle"
        );
        whole
    }
}

macro_rules! conformance_tests {
    ($harness:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let mut harness = $harness;
                $crate::suite::$test(&mut harness).await;
            }
        )*
    };
}

macro_rules! common_suite {
    ($harness:expr) => {
        conformance_tests!($harness;
            round_trip_of_every_envelope_field,
            each_expected_version_case,
            concurrent_appenders_one_success_per_version,
            idempotent_retry_stores_nothing_new,
            a_batch_is_all_or_nothing,
            read_case_spans_streams_in_global_order,
            read_case_events_leaves_out_access_records,
            read_stream_both_directions,
            read_all_pages_in_one_total_order,
            read_of_reads_only_what_is_asked,
            read_of_finds_rare_events_in_a_long_log,
            subscriber_sees_every_event_once_in_order,
            reopen_keeps_everything,
            tampered_row_is_reported,
            tampered_call_is_reported,
            bad_input_is_typed_and_stores_nothing,
            closed_log_refuses_calls,
            find_event_finds_a_stored_event_in_its_stream,
        );
    };
}

mod sqlite {
    use std::sync::Arc;

    use caseline_eventlog::sqlite::SqliteEventLog;
    use caseline_eventlog::{EventLog, ExpectedVersion, StreamName};

    pub struct SqliteHarness {
        dir: tempfile::TempDir,
        log: Arc<SqliteEventLog>,
    }

    impl SqliteHarness {
        pub async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let log = Arc::new(
                SqliteEventLog::open(dir.path().join("events.sqlite"))
                    .await
                    .unwrap(),
            );
            Self { dir, log }
        }
    }

    #[async_trait::async_trait]
    impl super::Harness for SqliteHarness {
        fn log(&self) -> Arc<dyn EventLog> {
            self.log.clone()
        }

        async fn reopen(&mut self) {
            self.log.close().await;
            self.log = Arc::new(
                SqliteEventLog::open(self.dir.path().join("events.sqlite"))
                    .await
                    .unwrap(),
            );
        }

        async fn tamper(&self, stream: &StreamName, version: u64) {
            let conn = rusqlite::Connection::open(self.dir.path().join("events.sqlite")).unwrap();
            conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
            let n = conn
                .execute(
                    "UPDATE events SET data = X'00' WHERE stream = ?1 AND version = ?2",
                    rusqlite::params![stream.as_str(), version as i64],
                )
                .unwrap();
            assert_eq!(n, 1);
        }

        async fn tamper_call(&self, stream: &StreamName, version: u64, call: Option<&str>) {
            let conn = rusqlite::Connection::open(self.dir.path().join("events.sqlite")).unwrap();
            conn.execute_batch("DROP TRIGGER IF EXISTS events_no_update")
                .unwrap();
            let n = conn
                .execute(
                    "UPDATE events SET call = ?3 WHERE stream = ?1 AND version = ?2",
                    rusqlite::params![stream.as_str(), version as i64, call],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
    }

    /// The events table as earlier builds made it (event ids unique across the log), with
    /// `call`'s column definition or without it.
    fn earlier_table(path: &std::path::Path, call: &str) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE events (
                    position INTEGER PRIMARY KEY AUTOINCREMENT, event_id BLOB NOT NULL UNIQUE,
                    stream TEXT NOT NULL, version INTEGER NOT NULL CHECK (version >= 0),
                    event_type TEXT NOT NULL, data BLOB NOT NULL, case_id BLOB,
                    actor TEXT NOT NULL, actor_role TEXT NOT NULL, agency TEXT NOT NULL,
                    request_id BLOB, correlation_id BLOB, causation_id BLOB, traceparent TEXT,
                    {call} recorded_at INTEGER NOT NULL, prev_hash BLOB NOT NULL,
                    hash BLOB NOT NULL, UNIQUE (stream, version));"
            ))
            .unwrap();
    }

    /// A file made before `call` existed is refused by name when opened, not failed on
    /// every append later.
    #[tokio::test]
    async fn a_log_without_the_call_column_is_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        earlier_table(&path, "");
        match SqliteEventLog::open(&path).await {
            Err(caseline_eventlog::Error::Unavailable(reason)) => {
                assert!(reason.contains("no `call` column"), "{reason}")
            }
            other => panic!("expected the old schema to be refused, got {other:?}"),
        }
    }

    /// Event ids are unique within their stream: an id stored in one stream may be used
    /// in another. A log made by an earlier build, whose table keeps its index of event
    /// ids across the log, still opens without a second index, and a batch reusing an id
    /// of another stream is refused there as before (not taken for a stale head and
    /// tried again for ever).
    #[tokio::test]
    async fn event_ids_are_unique_per_stream_and_an_earlier_logs_index_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let new = SqliteEventLog::open(dir.path().join("new.sqlite"))
            .await
            .unwrap();
        let path = dir.path().join("earlier.sqlite");
        earlier_table(&path, "call TEXT,");
        let earlier = SqliteEventLog::open(&path).await.unwrap();
        for (log, refused_elsewhere) in [(&new, false), (&earlier, true)] {
            let (one, other) = (super::stream("case"), super::stream("plan"));
            let first = super::event(None, b"first");
            log.append(&one, ExpectedVersion::NoStream, vec![first.clone()])
                .await
                .unwrap();
            let mut reused = super::event(None, b"elsewhere");
            reused.event_id = first.event_id;
            let appended = log
                .append(&other, ExpectedVersion::NoStream, vec![reused])
                .await;
            if refused_elsewhere {
                assert!(
                    matches!(
                        appended,
                        Err(caseline_eventlog::Error::EventIdConflict { .. })
                    ),
                    "{appended:?}"
                );
                assert_eq!(log.stream_version(&other).await.unwrap(), None);
            } else {
                assert_eq!(appended.unwrap().last_version, 0);
            }
            // A retry in the stream is the first append's answer, on both.
            let again = log
                .append(&one, ExpectedVersion::NoStream, vec![first])
                .await
                .unwrap();
            assert_eq!(again.last_version, 0);
            assert_eq!(log.stream_version(&one).await.unwrap(), Some(0));
            log.close().await;
        }
        // The earlier log is not given a second index of ids, which every append would
        // pay for.
        for (file, by_stream) in [("new.sqlite", true), ("earlier.sqlite", false)] {
            let has: bool = rusqlite::Connection::open(dir.path().join(file))
                .unwrap()
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master \
                     WHERE name = 'events_by_stream_event_id')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(has, by_stream, "{file}");
        }
    }

    #[tokio::test]
    async fn the_log_refuses_update_and_delete() {
        let h = SqliteHarness::new().await;
        h.log
            .append(
                &super::stream("case"),
                caseline_eventlog::ExpectedVersion::Any,
                vec![super::event(None, b"x")],
            )
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(h.dir.path().join("events.sqlite")).unwrap();
        for sql in ["UPDATE events SET data = X'01'", "DELETE FROM events"] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("immutable"), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_a_live_log() {
        let h = SqliteHarness::new().await;
        let second = SqliteEventLog::open(h.dir.path().join("events.sqlite")).await;
        match second {
            Err(caseline_eventlog::Error::Unavailable(reason)) => {
                assert!(reason.contains("in use"), "{reason}")
            }
            other => panic!("expected the log to be refused, got {other:?}"),
        }
        h.log.close().await;
        SqliteEventLog::open(h.dir.path().join("events.sqlite"))
            .await
            .expect("free again once closed");
    }

    /// Something bypassed the lock and appended behind the writer's back: the writer's
    /// remembered head is stale. It must decide from storage, not fail from then on.
    #[tokio::test]
    async fn a_stale_remembered_head_is_corrected_from_storage() {
        let h = SqliteHarness::new().await;
        let log: Arc<dyn EventLog> = h.log.clone();
        let s = super::stream("case");
        let e = || vec![super::event(None, b"x")];
        log.append(&s, ExpectedVersion::NoStream, e())
            .await
            .unwrap();

        let raw = rusqlite::Connection::open(h.dir.path().join("events.sqlite")).unwrap();
        raw.execute(
            "INSERT INTO events (event_id, stream, version, event_type, data, actor, actor_role, \
             agency, recorded_at, prev_hash, hash) \
             VALUES (?1, ?2, 1, 'caseline.v1.events.TestHappened', X'00', 'u', 'r', 'a', 0, ?3, ?3)",
            rusqlite::params![uuid::Uuid::new_v4().as_bytes().as_slice(), s.as_str(), [0u8; 32].as_slice()],
        )
        .unwrap();

        assert_eq!(super::append_at(&*log, &s, ExpectedVersion::Any).await, 2);
        super::assert_wrong_version(
            log.append(&s, ExpectedVersion::Exact(1), e()).await,
            Some(2),
        );
        assert_eq!(
            super::append_at(&*log, &s, ExpectedVersion::Exact(2)).await,
            3
        );
    }

    #[tokio::test]
    async fn a_position_of_another_backend_is_refused() {
        let h = SqliteHarness::new().await;
        let foreign: caseline_eventlog::Position = "18446744073709551616".parse().unwrap();
        assert!(matches!(
            h.log.read_all(foreign, 10).await,
            Err(caseline_eventlog::Error::InvalidInput {
                field: "position",
                ..
            })
        ));
    }

    /// Positions that change width (999 999 → 1 000 000) while a reader follows them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_read_in_order_across_a_power_of_ten() {
        let mut h = SqliteHarness::new().await;
        h.log.close().await;
        let raw = rusqlite::Connection::open(h.dir.path().join("events.sqlite")).unwrap();
        raw.execute(
            "INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('events', 999900)",
            [],
        )
        .unwrap();
        drop(raw);
        super::Harness::reopen(&mut h).await;
        let events = super::suite::every_read_in_order_across(super::Harness::log(&h), 160).await;
        let (first, last) = (&events[0].position, &events[events.len() - 1].position);
        assert!(
            first.to_string().len() < last.to_string().len(),
            "the test must cross a power of ten: {first} .. {last}"
        );
    }

    common_suite!(SqliteHarness::new().await);
}

mod postgres {
    use std::sync::Arc;

    use caseline_eventlog::postgres::{PostgresEventLog, ScratchSchema, test_database_url};
    use caseline_eventlog::{EventLog, ExpectedVersion, Position, StreamName, subscribe};
    use tokio_postgres::NoTls;

    /// One schema per test in the database of `CASELINE_TEST_DATABASE_URL`.
    pub struct PgHarness {
        admin: tokio_postgres::Client,
        log: Arc<PostgresEventLog>,
        /// Dropped last: the schema goes with everything in it.
        schema: ScratchSchema,
    }

    impl PgHarness {
        pub async fn new() -> Self {
            let schema = ScratchSchema::for_test("caseline_test").await;
            let (admin, conn) = tokio_postgres::connect(&test_database_url(), NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let log = Arc::new(Self::open(&schema).await);
            Self { admin, log, schema }
        }

        async fn open(schema: &ScratchSchema) -> PostgresEventLog {
            PostgresEventLog::connect_with(schema.config().unwrap(), 16)
                .await
                .unwrap()
        }
    }

    #[async_trait::async_trait]
    impl super::Harness for PgHarness {
        fn log(&self) -> Arc<dyn EventLog> {
            self.log.clone()
        }

        async fn reopen(&mut self) {
            self.log.close().await;
            self.log = Arc::new(Self::open(&self.schema).await);
        }

        async fn tamper(&self, stream: &StreamName, version: u64) {
            let s = self.schema.name();
            self.admin
                .batch_execute(&format!(
                    "ALTER TABLE {s}.caseline_events DISABLE TRIGGER caseline_events_no_change"
                ))
                .await
                .unwrap();
            let n = self
                .admin
                .execute(
                    &format!("UPDATE {s}.caseline_events SET data = '\\x00' WHERE stream = $1 AND version = $2"),
                    &[&stream.as_str(), &(version as i64)],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }

        async fn tamper_call(&self, stream: &StreamName, version: u64, call: Option<&str>) {
            let s = self.schema.name();
            self.admin
                .batch_execute(&format!(
                    "ALTER TABLE {s}.caseline_events DISABLE TRIGGER caseline_events_no_change"
                ))
                .await
                .unwrap();
            let n = self
                .admin
                .execute(
                    &format!(
                        "UPDATE {s}.caseline_events SET call = $3 WHERE stream = $1 AND version = $2"
                    ),
                    &[&stream.as_str(), &(version as i64), &call],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
    }

    common_suite!(PgHarness::new().await);

    /// Transaction ids that change width (999 999 → 1 000 000) while the log is written
    /// and read: a server of its own, made with its next transaction id just below.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_read_in_order_across_a_power_of_ten_in_transaction_ids() {
        let cluster = caseline_eventlog::postgres::ScratchCluster::start(999_900)
            .unwrap_or_else(|e| panic!("a scratch PostgreSQL server is needed: {e}"));
        let log: Arc<dyn EventLog> = Arc::new(
            PostgresEventLog::connect(&cluster.url())
                .await
                .expect("the scratch server answers"),
        );
        super::suite::every_read_in_order_across(log.clone(), 200).await;
        let (admin, conn) = tokio_postgres::connect(&cluster.url(), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = admin
            .query_one(
                "SELECT min(tx)::text, max(tx)::text FROM caseline_events",
                &[],
            )
            .await
            .unwrap();
        let (min, max): (String, String) = (row.get(0), row.get(1));
        assert!(
            min.len() < max.len(),
            "the test must cross a power of ten in transaction ids: {min} .. {max}"
        );
        log.close().await;
    }

    /// A table made before `call` existed is refused by name when connecting, not failed
    /// on every append later.
    #[tokio::test]
    async fn a_table_without_the_call_column_is_refused_on_connect() {
        let h = PgHarness::new().await;
        h.log.close().await;
        h.admin
            .batch_execute(&format!(
                "ALTER TABLE {}.caseline_events DROP COLUMN call",
                h.schema.name()
            ))
            .await
            .unwrap();
        match PostgresEventLog::connect_with(h.schema.config().unwrap(), 2).await {
            Err(caseline_eventlog::Error::Unavailable(reason)) => {
                assert!(reason.contains("no `call` column"), "{reason}")
            }
            other => panic!("expected the old schema to be refused, got {other:?}"),
        }
    }

    /// A table made by an earlier build, whose event ids are unique across the log, has
    /// them unique within their stream once connected to, and keeps its events.
    #[tokio::test]
    async fn an_earlier_tables_index_of_event_ids_is_moved_to_one_by_stream() {
        let h = PgHarness::new().await;
        let first = super::event(None, b"first");
        h.log
            .append(
                &super::stream("case"),
                ExpectedVersion::NoStream,
                vec![first.clone()],
            )
            .await
            .unwrap();
        h.log.close().await;
        let schema = h.schema.name();
        h.admin
            .batch_execute(&format!(
                "ALTER TABLE {schema}.caseline_events
                     DROP CONSTRAINT caseline_events_stream_event_id_key,
                     ADD CONSTRAINT caseline_events_event_id_key UNIQUE (event_id)"
            ))
            .await
            .unwrap();
        let log = PostgresEventLog::connect_with(h.schema.config().unwrap(), 2)
            .await
            .unwrap();
        let constraints: Vec<String> = h
            .admin
            .query(
                "SELECT conname::text FROM pg_constraint
                  WHERE conrelid = $1::text::regclass AND contype = 'u' ORDER BY conname",
                &[&format!("{schema}.caseline_events")],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            constraints,
            [
                "caseline_events_stream_event_id_key",
                "caseline_events_stream_version_key"
            ]
        );
        // The id may now be used in another stream; the stored event is still there.
        let mut reused = super::event(None, b"elsewhere");
        reused.event_id = first.event_id;
        log.append(
            &super::stream("plan"),
            ExpectedVersion::NoStream,
            vec![reused],
        )
        .await
        .unwrap();
        assert_eq!(super::all_events(&log, 2).await.len(), 2);
        log.close().await;
    }

    /// A writer whose transaction began first but commits last must still be delivered:
    /// ordering by row id alone would have moved the cursor past it for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transaction_held_open_while_later_ones_commit_is_delivered() {
        let h = PgHarness::new().await;
        let log: Arc<dyn EventLog> = h.log.clone();
        let mut sub = subscribe(log.clone(), Position::START);

        // Another writer opens its transaction and inserts, but does not commit yet.
        let (mut slow, conn) = tokio_postgres::connect(&test_database_url(), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let slow_tx = slow.transaction().await.unwrap();
        let held_id = uuid::Uuid::new_v4();
        slow_tx
            .execute(
                &format!(
                    "INSERT INTO {}.caseline_events (event_id, stream, version, event_type, data, \
                     actor, actor_role, agency, recorded_at, prev_hash, hash) \
                     VALUES ($1, 'case-held', 0, 'caseline.v1.events.TestHappened', '\\x01', \
                     'u', 'social_worker', 'a', 0, $2, $2)",
                    h.schema.name()
                ),
                &[&held_id, &vec![0u8; 32]],
            )
            .await
            .unwrap();

        // Later transactions commit meanwhile.
        let mut later = Vec::new();
        for i in 0..20u8 {
            let e = super::event(None, &[i]);
            later.push(e.event_id);
            log.append(&super::stream("case"), ExpectedVersion::Any, vec![e])
                .await
                .unwrap();
        }
        // While the early transaction is open, nothing after it is handed out.
        assert!(log.read_all(Position::START, 100).await.unwrap().is_empty());

        slow_tx.commit().await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 21 {
            let e = super::timeout(sub.next())
                .await
                .expect("subscriber stalled")
                .unwrap()
                .unwrap();
            seen.push(e);
        }
        assert_eq!(
            seen[0].event_id, held_id,
            "the early transaction comes first"
        );
        assert_eq!(
            seen[1..].iter().map(|e| e.event_id).collect::<Vec<_>>(),
            later
        );
        assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    }

    /// Two services share one database: each one's remembered stream heads go stale
    /// when the other appends. A stale head must cost a re-read, never a wrong append,
    /// a false conflict or a broken chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_appending_to_one_stream_stay_consistent() {
        let h = PgHarness::new().await;
        let a: Arc<dyn EventLog> = h.log.clone();
        let b: Arc<dyn EventLog> = Arc::new(PgHarness::open(&h.schema).await);
        let s = super::stream("case");
        let e = || vec![super::event(None, b"x")];

        assert_eq!(
            super::append_at(&*a, &s, ExpectedVersion::NoStream).await,
            0
        );
        assert_eq!(
            super::append_at(&*b, &s, ExpectedVersion::Exact(0)).await,
            1
        );
        // `a` still remembers version 0: its stale expectation is refused with the truth.
        super::assert_wrong_version(a.append(&s, ExpectedVersion::Exact(0), e()).await, Some(1));
        // …and the right expectation succeeds although `a` remembered another head.
        assert_eq!(
            super::append_at(&*b, &s, ExpectedVersion::Exact(1)).await,
            2
        );
        assert_eq!(
            super::append_at(&*a, &s, ExpectedVersion::Exact(2)).await,
            3
        );
        assert_eq!(super::append_at(&*a, &s, ExpectedVersion::Any).await, 4);
        assert_eq!(super::append_at(&*b, &s, ExpectedVersion::Any).await, 5);

        // A retry through the other process returns the original result.
        let batch = e();
        let first = a
            .append(&s, ExpectedVersion::Exact(5), batch.clone())
            .await
            .unwrap();
        assert_eq!(
            b.append(&s, ExpectedVersion::Exact(5), batch)
                .await
                .unwrap(),
            first
        );

        let report = b.verify_stream(&s).await.unwrap();
        assert!(report.is_intact());
        assert_eq!(report.events_checked, 7);
    }

    #[tokio::test]
    async fn the_log_refuses_update_delete_and_truncate() {
        let h = PgHarness::new().await;
        h.log
            .append(
                &super::stream("case"),
                ExpectedVersion::Any,
                vec![super::event(None, b"x")],
            )
            .await
            .unwrap();
        let s = h.schema.name();
        for sql in [
            format!("UPDATE {s}.caseline_events SET data = '\\x01'"),
            format!("DELETE FROM {s}.caseline_events"),
            format!("TRUNCATE {s}.caseline_events"),
        ] {
            let err = h.admin.batch_execute(&sql).await.unwrap_err();
            let msg = err
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_default();
            assert!(msg.contains("immutable"), "{sql}: {msg}");
        }
    }
}

#[cfg(feature = "kurrentdb")]
mod kurrentdb {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use caseline_eventlog::kurrentdb::KurrentDbEventLog;
    use caseline_eventlog::{
        AppendResult, Direction, Error, EventLog, ExpectedVersion, MAX_EVENT_BYTES, NewEvent,
        Position, RecordedEvent, StreamName,
    };
    use tokio::sync::watch;
    use uuid::Uuid;

    const HOW_TO: &str = "These tests need a KurrentDB server with its standard projections \
        running. Start one with `docker run --rm -p 2113:2113 \
        docker.kurrent.io/kurrent-latest/kurrentdb:latest --insecure --run-projections=All \
        --start-standard-projections --max-append-size=16767216` and run them with \
        CASELINE_TEST_KURRENTDB_URL=kurrentdb://localhost:2113?tls=false";

    pub fn url() -> String {
        std::env::var("CASELINE_TEST_KURRENTDB_URL")
            .unwrap_or_else(|_| panic!("CASELINE_TEST_KURRENTDB_URL is not set.\n{HOW_TO}"))
    }

    async fn connect(url: &str) -> KurrentDbEventLog {
        KurrentDbEventLog::connect(url).await.unwrap_or_else(|e| {
            panic!("KurrentDB did not answer at CASELINE_TEST_KURRENTDB_URL ({e})\n{HOW_TO}")
        })
    }

    /// The log as one test sees it. A KurrentDB server outlives test runs and serves
    /// every test of a run at once, and the suite counts `read_all` over the whole log:
    /// so `read_all` here starts where the log ended when the harness was made, and
    /// shows only the streams this harness appended to. Everything else passes through.
    #[derive(Debug)]
    struct Scoped {
        inner: Arc<KurrentDbEventLog>,
        own: Arc<Mutex<HashSet<StreamName>>>,
        start: Position,
    }

    #[async_trait::async_trait]
    impl EventLog for Scoped {
        async fn append(
            &self,
            stream: &StreamName,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> Result<AppendResult, Error> {
            self.own.lock().unwrap().insert(stream.clone());
            self.inner.append(stream, expected, events).await
        }

        async fn read_stream(
            &self,
            stream: &StreamName,
            direction: Direction,
            from: Option<u64>,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, Error> {
            self.inner.read_stream(stream, direction, from, limit).await
        }

        async fn read_case(
            &self,
            case_id: Uuid,
            after: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, Error> {
            self.inner.read_case(case_id, after, limit).await
        }

        async fn read_case_events(
            &self,
            case_id: Uuid,
            after: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, Error> {
            self.inner.read_case_events(case_id, after, limit).await
        }

        async fn read_all(
            &self,
            after: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, Error> {
            const PAGE: usize = 1000;
            let mut cursor = if after == Position::START {
                self.start
            } else {
                after
            };
            let mut out = Vec::new();
            while out.len() < limit {
                let page = self.inner.read_all(cursor, PAGE).await?;
                let full = page.len() == PAGE;
                let Some(last) = page.last() else { break };
                cursor = last.position;
                {
                    let own = self.own.lock().unwrap();
                    out.extend(page.into_iter().filter(|e| own.contains(&e.stream)));
                }
                if !full {
                    break;
                }
            }
            out.truncate(limit);
            Ok(out)
        }

        fn appended(&self) -> watch::Receiver<Position> {
            self.inner.appended()
        }

        fn poll_interval(&self) -> Duration {
            self.inner.poll_interval()
        }

        async fn close(&self) {
            self.inner.close().await;
        }
    }

    /// A log on the server of `CASELINE_TEST_KURRENTDB_URL`. Every stream name the suite
    /// makes holds a new UUID, so runs and tests never share a stream.
    pub struct KurrentHarness {
        url: String,
        own: Arc<Mutex<HashSet<StreamName>>>,
        start: Position,
        log: Arc<KurrentDbEventLog>,
    }

    impl KurrentHarness {
        pub async fn new() -> Self {
            let url = url();
            let log = Arc::new(connect(&url).await);
            let start = log.head_position().await.unwrap();
            Self {
                url,
                own: Arc::default(),
                start,
                log,
            }
        }
    }

    #[async_trait::async_trait]
    impl super::Harness for KurrentHarness {
        fn log(&self) -> Arc<dyn EventLog> {
            Arc::new(Scoped {
                inner: self.log.clone(),
                own: self.own.clone(),
                start: self.start,
            })
        }

        async fn reopen(&mut self) {
            self.log.close().await;
            self.log = Arc::new(connect(&self.url).await);
        }

        async fn tamper(&self, _stream: &StreamName, _version: u64) {
            panic!("KurrentDB cannot rewrite a stored event; no tampering test runs on it")
        }

        async fn tamper_call(&self, _stream: &StreamName, _version: u64, _call: Option<&str>) {
            panic!("KurrentDB cannot rewrite a stored event; no tampering test runs on it")
        }
    }

    // `tampered_row_is_reported` and `tampered_call_is_reported` are left out: they
    // rewrite a stored event behind the log's back, and KurrentDB cannot rewrite a stored
    // event (no update, no delete short of the whole stream). The hash chain still
    // covers every event; `verify_stream` runs in the tests below.
    conformance_tests!(KurrentHarness::new().await;
        round_trip_of_every_envelope_field,
        each_expected_version_case,
        concurrent_appenders_one_success_per_version,
        idempotent_retry_stores_nothing_new,
        a_batch_is_all_or_nothing,
        read_case_spans_streams_in_global_order,
        read_case_events_leaves_out_access_records,
        read_stream_both_directions,
        read_all_pages_in_one_total_order,
        subscriber_sees_every_event_once_in_order,
        reopen_keeps_everything,
        bad_input_is_typed_and_stores_nothing,
        closed_log_refuses_calls,
        find_event_finds_a_stored_event_in_its_stream,
    );

    #[tokio::test]
    async fn a_position_of_another_backend_is_refused() {
        let h = KurrentHarness::new().await;
        // A SQLite position: a row id in the low half.
        let foreign: Position = "5".parse().unwrap();
        assert!(matches!(
            h.log.read_all(foreign, 10).await,
            Err(Error::InvalidInput {
                field: "position",
                ..
            })
        ));
        assert!(matches!(
            h.log.read_case(Uuid::new_v4(), foreign, 10).await,
            Err(Error::InvalidInput {
                field: "position",
                ..
            })
        ));
    }

    /// Two services share one server: each reads the head before it appends, so neither
    /// needs to know what the other wrote, a retry through either returns the original
    /// and the chain stays whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_appending_to_one_stream_stay_consistent() {
        let h = KurrentHarness::new().await;
        let a: Arc<dyn EventLog> = h.log.clone();
        let b: Arc<dyn EventLog> = Arc::new(connect(&h.url).await);
        let s = super::stream("case");
        let e = || vec![super::event(None, b"x")];

        assert_eq!(
            super::append_at(&*a, &s, ExpectedVersion::NoStream).await,
            0
        );
        assert_eq!(
            super::append_at(&*b, &s, ExpectedVersion::Exact(0)).await,
            1
        );
        super::assert_wrong_version(a.append(&s, ExpectedVersion::Exact(0), e()).await, Some(1));
        assert_eq!(super::append_at(&*a, &s, ExpectedVersion::Any).await, 2);
        assert_eq!(super::append_at(&*b, &s, ExpectedVersion::Any).await, 3);

        let batch = e();
        let first = a
            .append(&s, ExpectedVersion::Exact(3), batch.clone())
            .await
            .unwrap();
        assert_eq!(
            b.append(&s, ExpectedVersion::Exact(3), batch.clone())
                .await
                .unwrap(),
            first
        );
        assert_eq!(
            b.append(&s, ExpectedVersion::Any, batch).await.unwrap(),
            first
        );

        let report = b.verify_stream(&s).await.unwrap();
        assert!(report.is_intact());
        assert_eq!(report.events_checked, 5);
    }

    /// `read_case` shows what another process appended once the server's projection has
    /// linked it, in global order with this process's own writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_case_merges_the_writes_of_two_processes() {
        let h = KurrentHarness::new().await;
        let a: Arc<dyn EventLog> = h.log.clone();
        let b: Arc<dyn EventLog> = Arc::new(connect(&h.url).await);
        let case = Uuid::new_v4();
        let mut expected = Vec::new();
        for (i, log) in [&a, &b, &a, &b].into_iter().enumerate() {
            let e = super::event(Some(case), &[i as u8]);
            expected.push(e.event_id);
            log.append(&super::stream("referral"), ExpectedVersion::Any, vec![e])
                .await
                .unwrap();
        }
        // `a` waits for its own writes; `b`'s last one came after, so poll for it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = a.read_case(case, Position::START, 10).await.unwrap();
            if got.len() == expected.len() || tokio::time::Instant::now() > deadline {
                assert_eq!(got.iter().map(|e| e.event_id).collect::<Vec<_>>(), expected);
                assert!(got.windows(2).all(|w| w[0].position < w[1].position));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The largest event the contract accepts is stored. KurrentDB's default
    /// `MaxAppendSize` (1 MiB for the whole append, metadata included) is smaller: this
    /// needs the server started as docs/kurrentdb.md says (`--max-append-size`).
    #[tokio::test]
    async fn an_event_of_the_largest_accepted_size_is_stored() {
        let h = KurrentHarness::new().await;
        let s = super::stream("case");
        let mut big = super::event(Some(Uuid::new_v4()), b"");
        // What counts towards `MAX_EVENT_BYTES` besides the payload: the type, the
        // metadata strings and four UUIDs (as `NewEvent::validate` counts them).
        let m = &big.metadata;
        let rest = big.event_type.len()
            + m.actor.len()
            + m.actor_role.len()
            + m.agency.len()
            + m.traceparent.as_ref().map_or(0, String::len)
            + m.call.as_ref().map_or(0, String::len)
            + 4 * 16;
        big.data = (0..MAX_EVENT_BYTES - rest)
            .map(|i| (i % 251) as u8)
            .collect();

        // One byte more is refused before it reaches the server: `big` is at the limit.
        let mut over = big.clone();
        over.event_id = Uuid::new_v4();
        over.data.push(0);
        assert!(matches!(
            h.log.append(&s, ExpectedVersion::Any, vec![over]).await,
            Err(Error::TooLarge { field: "data", .. })
        ));

        let stored = h
            .log
            .append(&s, ExpectedVersion::NoStream, vec![big.clone()])
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "an event of MAX_EVENT_BYTES was refused ({e}): start KurrentDB with \
                     --max-append-size as docs/kurrentdb.md says"
                )
            });
        assert_eq!((stored.first_version, stored.last_version), (0, 0));
        let read = h
            .log
            .read_stream(&s, Direction::Forwards, None, 10)
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].event_id, big.event_id);
        assert!(read[0].data == big.data, "the payload came back changed");
        assert_eq!(read[0].metadata, big.metadata);
        assert!(h.log.verify_stream(&s).await.unwrap().is_intact());
        // A retry is answered with the original.
        assert_eq!(
            h.log
                .append(&s, ExpectedVersion::NoStream, vec![big])
                .await
                .unwrap(),
            stored
        );
    }

    /// `read_all` of the raw backend in pages of 1, 2 and 3 events, from the start of
    /// `$all` and from the middle of this test's writes: the pages chain with no gap and
    /// no repeat. The raw log holds other runs' and tests' events too; this test's own
    /// are told apart by their stream prefix.
    #[tokio::test]
    async fn raw_read_all_pages_chain_with_small_limits() {
        let h = KurrentHarness::new().await;
        let log = &*h.log;
        let prefix = format!("paging-{}-", Uuid::new_v4());
        let streams: Vec<StreamName> = (0..3)
            .map(|i| StreamName::new(format!("{prefix}{i}")).unwrap())
            .collect();
        let mut ours = Vec::new();
        let mut last = Position::START;
        for i in 0..7 {
            let batch = if i == 3 {
                vec![super::event(None, b"a"), super::event(None, b"b")]
            } else {
                vec![super::event(None, &[i as u8])]
            };
            ours.extend(batch.iter().map(|e| e.event_id));
            last = log
                .append(&streams[i % 3], ExpectedVersion::Any, batch)
                .await
                .unwrap()
                .last_position;
        }
        let own = |events: &[(Position, Uuid, String)]| {
            events
                .iter()
                .filter(|(_, _, stream)| stream.starts_with(&prefix))
                .map(|(_, id, _)| *id)
                .collect::<Vec<_>>()
        };

        // Everything from the harness's start to this test's last event, in large pages.
        let reference = walk(log, h.start, 1000, last).await;
        assert_eq!(own(&reference), ours);
        let mid = reference
            .iter()
            .find(|(_, id, _)| *id == ours[3])
            .unwrap()
            .0;
        let after_mid: Vec<_> = reference
            .iter()
            .filter(|(p, _, _)| *p > mid)
            .cloned()
            .collect();
        for limit in [1, 2, 3] {
            assert_eq!(
                walk(log, h.start, limit, last).await,
                reference,
                "pages of {limit} from the harness's start"
            );
            let from_mid = walk(log, mid, limit, last).await;
            assert_eq!(from_mid, after_mid, "pages of {limit} from the middle");
            assert_eq!(own(&from_mid), ours[4..]);
        }

        // From the very start of `$all`: small pages chain into what one read shows.
        let first: Vec<_> = log
            .read_all(Position::START, 12)
            .await
            .unwrap()
            .iter()
            .map(key)
            .collect();
        assert!(first.len() >= ours.len().min(12));
        for limit in [1, 2, 3] {
            let mut got = Vec::new();
            let mut after = Position::START;
            while got.len() < first.len() {
                let page = log.read_all(after, limit).await.unwrap();
                assert!(
                    !page.is_empty() && page.len() <= limit,
                    "a page of {} for limit {limit}",
                    page.len()
                );
                after = page.last().unwrap().position;
                got.extend(page.iter().map(key));
            }
            got.truncate(first.len());
            assert_eq!(got, first, "pages of {limit} from Position::START");
        }
    }

    fn key(e: &RecordedEvent) -> (Position, Uuid, String) {
        (e.position, e.event_id, e.stream.as_str().to_owned())
    }

    /// The events of `$all` after `after` up to `until`, read in pages of `limit`. Every
    /// page holds at most `limit` events, each after the one before, the first after the
    /// position the page was asked from.
    async fn walk(
        log: &KurrentDbEventLog,
        after: Position,
        limit: usize,
        until: Position,
    ) -> Vec<(Position, Uuid, String)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut out = Vec::new();
        let mut cursor = after;
        while cursor < until {
            let page = log.read_all(cursor, limit).await.unwrap();
            assert!(
                page.len() <= limit,
                "a page of {} for limit {limit}",
                page.len()
            );
            if page.is_empty() {
                // Everything up to `until` is stored; give the index a moment.
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "read_all after {cursor} ends before {until}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            for e in &page {
                assert!(e.position > cursor, "{} not after {cursor}", e.position);
                cursor = e.position;
                out.push(key(e));
            }
        }
        out.retain(|(p, _, _)| *p <= until);
        out
    }
}
