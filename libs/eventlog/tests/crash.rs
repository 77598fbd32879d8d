//! Kill -9 during appends, reopen, and find every acknowledged event.
//!
//! The test re-runs its own binary as the child (selected by an environment variable):
//! the child appends batches of 1–3 events from 8 concurrent tasks and prints one line
//! per acknowledged append. The parent SIGKILLs it mid-stream, reopens the SQLite log and
//! checks that every acknowledged event is there at its version, that no batch was
//! stored in part, and that every stream's hash chain verifies.
//!
//! SIGKILL tests the process dying, not the machine: surviving power loss rests on
//! `synchronous=FULL`, which this test cannot observe.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use caseline_eventlog::sqlite::SqliteEventLog;
use caseline_eventlog::{Direction, EventLog, ExpectedVersion, Metadata, NewEvent, StreamName};
use uuid::Uuid;

const CHILD_ENV: &str = "CASELINE_CRASH_TEST_CHILD_DB";
const TEST_NAME: &str = "sigkill_during_appends_loses_no_acknowledged_event";
/// Acknowledgements to wait for before the kill.
const ACKS_BEFORE_KILL: usize = 400;

#[test]
fn sigkill_during_appends_loses_no_acknowledged_event() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        child(&db);
    }

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // "ACK <stream> <first version> <event id>…" per acknowledged append.
    let mut acked: Vec<(String, u64, Vec<Uuid>)> = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        if words.next() != Some("ACK") {
            continue;
        }
        let stream = words.next().unwrap().to_owned();
        let first: u64 = words.next().unwrap().parse().unwrap();
        let ids = words.map(|w| w.parse().unwrap()).collect();
        acked.push((stream, first, ids));
        if acked.len() == ACKS_BEFORE_KILL && !killed {
            child.kill().unwrap(); // SIGKILL on Unix
            killed = true;
        }
    }
    // Lines printed before the kill were drained above: they count as acknowledged too.
    let status = child.wait().unwrap();
    assert!(
        killed,
        "child stopped by itself after {} acks: {status}",
        acked.len()
    );
    assert!(!status.success());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = SqliteEventLog::open(&db).await.unwrap();
        let mut streams: HashMap<String, Vec<caseline_eventlog::RecordedEvent>> = HashMap::new();
        for (stream, _, _) in &acked {
            if !streams.contains_key(stream) {
                let name = StreamName::new(stream.clone()).unwrap();
                let events = log
                    .read_stream(&name, Direction::Forwards, None, 100_000)
                    .await
                    .unwrap();
                let report = log.verify_stream(&name).await.unwrap();
                assert!(report.is_intact(), "{stream}: {report:?}");
                streams.insert(stream.clone(), events);
            }
        }
        for (stream, first, ids) in &acked {
            let events = &streams[stream];
            for (i, id) in ids.iter().enumerate() {
                let version = first + i as u64;
                let stored = events
                    .get(version as usize)
                    .unwrap_or_else(|| panic!("acknowledged {stream}@{version} is missing"));
                assert_eq!(stored.event_id, *id, "{stream}@{version}");
            }
        }
        // No batch stored in part: each payload says "<batch id> <index> <size>".
        let mut batches: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for event in streams.values().flatten() {
            let text = String::from_utf8(event.data.clone()).unwrap();
            let mut parts = text.split(' ');
            let (batch, _, size) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
            let entry = batches
                .entry(batch.to_owned())
                .or_insert((0, size.parse().unwrap()));
            entry.0 += 1;
        }
        for (batch, (seen, size)) in batches {
            assert_eq!(seen, size, "batch {batch} stored in part");
        }
        log.close().await;
    });
}

/// The child: appends forever until killed, printing each acknowledgement.
fn child(db: &str) -> ! {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = Arc::new(SqliteEventLog::open(db).await.unwrap());
        let streams: Vec<StreamName> = (0..4)
            .map(|_| StreamName::for_id("case", Uuid::new_v4()).unwrap())
            .collect();
        for task in 0..8usize {
            let (log, streams) = (log.clone(), streams.clone());
            tokio::spawn(async move {
                for n in 0usize.. {
                    let stream = &streams[(task + n) % streams.len()];
                    let size = 1 + n % 3;
                    let batch = Uuid::new_v4();
                    let events: Vec<NewEvent> = (0..size)
                        .map(|i| NewEvent {
                            event_id: Uuid::new_v4(),
                            event_type: "caseline.v1.events.CrashTest".into(),
                            data: format!("{batch} {i} {size}").into_bytes(),
                            metadata: Metadata {
                                actor: "crash-test".into(),
                                actor_role: "admin".into(),
                                agency: "test".into(),
                                ..Metadata::default()
                            },
                        })
                        .collect();
                    let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
                    let r = log
                        .append(stream, ExpectedVersion::Any, events)
                        .await
                        .unwrap();
                    println!("ACK {stream} {} {}", r.first_version, ids.join(" "));
                }
            });
        }
        std::future::pending::<()>().await;
    });
    unreachable!("the child runs until killed")
}
