//! Indexes kept as tables in the state store: an index maintained page by page while the
//! log grows holds exactly what one rebuilt from the whole log holds; a restart resumes
//! from its checkpoint without filing anything twice; a new format rebuilds it. On both
//! stores (SQLite, PostgreSQL) over a real SQLite log.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use caseline_eventlog::postgres::ScratchSchema;
use caseline_eventlog::sqlite::SqliteEventLog;
use caseline_eventlog::{
    EventLog, ExpectedVersion, Interest, Metadata, NewEvent, Position, RecordedEvent, StreamName,
    Uuid,
};
use caseline_projection::{
    CheckpointStore, IndexEntry, Indexed, Keys, PostgresCheckpoints, SqliteCheckpoints,
};
use common::Named;

/// The same keys under a new format.
struct NamedV2;

impl Keys for NamedV2 {
    const FORMAT: u32 = 2;
    const INTEREST: Interest = Named::INTEREST;

    fn keys(event: &RecordedEvent) -> Vec<Uuid> {
        Named::keys(event)
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh state store of `backend` (the schema, if any, lives as long as the store).
async fn store(
    backend: Backend,
    dir: &std::path::Path,
    name: &str,
) -> (Arc<dyn CheckpointStore>, Option<ScratchSchema>) {
    match backend {
        Backend::Sqlite => (
            Arc::new(SqliteCheckpoints::open(dir.join(name)).await.unwrap()),
            None,
        ),
        Backend::Postgres => {
            let url = caseline_eventlog::postgres::test_database_url();
            let schema = ScratchSchema::create(&url, "caseline_test")
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test ({url}): {e}"));
            let pool = caseline_eventlog::postgres::pool(schema.config().unwrap(), 2).unwrap();
            let store = PostgresCheckpoints::from_pool(pool).await.unwrap();
            (Arc::new(store), Some(schema))
        }
    }
}

/// A deterministic log of list pages naming some of `ids`, between unrelated events;
/// `round` changes which.
async fn grow(log: &dyn EventLog, ids: &[Uuid], round: usize) {
    let mut pages = Vec::new();
    for i in 0..300 {
        let named: Vec<u8> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| (i * 7 + j * 3 + round).is_multiple_of(5))
            .flat_map(|(_, id)| id.as_bytes().to_vec())
            .collect();
        pages.push(event(
            if i % 4 == 0 {
                "test.Other"
            } else {
                "test.Listed"
            },
            named,
        ));
    }
    let global = StreamName::new("access-global").unwrap();
    for chunk in pages.chunks(37) {
        log.append(&global, ExpectedVersion::Any, chunk.to_vec())
            .await
            .unwrap();
        // Another stream in between, so entries are not all consecutive versions.
        let other = StreamName::for_id("case", Uuid::new_v4()).unwrap();
        log.append(
            &other,
            ExpectedVersion::Any,
            vec![event("test.Listed", ids[0].as_bytes().to_vec())],
        )
        .await
        .unwrap();
    }
}

fn event(event_type: &str, data: Vec<u8>) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.into(),
        data,
        metadata: Metadata {
            actor: "user-1".into(),
            actor_role: "auditor".into(),
            agency: "oversight".into(),
            ..Metadata::default()
        },
    }
}

/// Everything the index holds, by key.
async fn contents<K: Keys>(index: &Indexed<K>, ids: &[Uuid]) -> BTreeMap<Uuid, Vec<IndexEntry>> {
    let mut all = BTreeMap::new();
    for id in ids {
        // In pages of 7, as a reader pages through it.
        let mut entries = Vec::new();
        let mut after = Position::START;
        loop {
            let page = index.find(*id, after, 7).await.unwrap();
            entries.extend(page.iter().cloned());
            match page.last() {
                Some(last) if page.len() == 7 => after = last.position,
                _ => break,
            }
        }
        all.insert(*id, entries);
    }
    all
}

/// The events that name `id`, read from the whole log: what the index must say.
async fn expected(log: &dyn EventLog, id: Uuid) -> Vec<IndexEntry> {
    let mut found = Vec::new();
    let mut after = Position::START;
    loop {
        let page = log.read_all(after, 100).await.unwrap();
        for e in &page {
            if Named::keys(e).contains(&id) {
                found.push(IndexEntry {
                    key: id,
                    position: e.position,
                    stream: e.stream.clone(),
                    version: e.version,
                });
            }
        }
        match page.last() {
            Some(last) => after = last.position,
            None => return found,
        }
    }
}

async fn incremental_equals_rebuilt(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(dir.path().join("events.sqlite"))
            .await
            .unwrap(),
    );
    let ids: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
    let (kept, _kept_schema) = store(backend, dir.path(), "kept.sqlite").await;
    let incremental = Indexed::<Named>::new("test.named", Arc::clone(&log), Arc::clone(&kept));
    for round in 0..4 {
        grow(&*log, &ids, round).await;
        // Read between rounds: each catch-up files only what was appended since.
        incremental
            .find(ids[round], Position::START, 3)
            .await
            .unwrap();
    }
    let maintained = contents(&*incremental, &ids).await;
    for id in &ids {
        assert_eq!(maintained[id], expected(&*log, *id).await, "index of {id}");
        assert!(!maintained[id].is_empty());
    }

    let (fresh, _fresh_schema) = store(backend, dir.path(), "fresh.sqlite").await;
    let rebuilt = Indexed::<Named>::new("test.named", Arc::clone(&log), fresh);
    assert_eq!(
        contents(&*rebuilt, &ids).await,
        maintained,
        "rebuilt from the log"
    );

    // A restart over the kept store resumes at its checkpoint: nothing filed twice,
    // and what came after is filed.
    let head = incremental.catch_up().await.unwrap();
    let resumed = Indexed::<Named>::new("test.named", Arc::clone(&log), Arc::clone(&kept));
    assert_eq!(resumed.catch_up().await.unwrap(), head);
    grow(&*log, &ids, 9).await;
    let after_restart = contents(&*resumed, &ids).await;
    for id in &ids {
        assert_eq!(
            after_restart[id],
            expected(&*log, *id).await,
            "after a restart"
        );
    }

    // A new format drops the rows and rebuilds them: the same contents.
    let reformatted = Indexed::<NamedV2>::new("test.named", Arc::clone(&log), kept);
    assert_eq!(contents(&*reformatted, &ids).await, after_restart);
}

#[tokio::test]
async fn an_index_kept_up_equals_one_rebuilt_from_the_log_in_sqlite() {
    incremental_equals_rebuilt(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_index_kept_up_equals_one_rebuilt_from_the_log_in_postgres() {
    incremental_equals_rebuilt(Backend::Postgres).await;
}

/// Entries under three keys at positions `1..=count` (each position under one or two of
/// them), with the streams they would be read from.
fn scattered(keys: &[Uuid; 3], count: u128) -> Vec<IndexEntry> {
    let streams = [
        StreamName::new("access-global").unwrap(),
        StreamName::new("case-1").unwrap(),
    ];
    (1..=count)
        .flat_map(|n| {
            let named: &[Uuid] = match n % 5 {
                0 => &keys[..2],
                1 | 2 => &keys[..1],
                3 => &keys[1..2],
                _ => &keys[2..],
            };
            let stream = &streams[usize::from(n % 7 == 0)];
            named.iter().map(move |key| IndexEntry {
                key: *key,
                position: n.to_string().parse().unwrap(),
                stream: stream.clone(),
                version: u64::try_from(n).unwrap() + 10,
            })
        })
        .collect()
}

/// Writes `entries` in batches of `size` (the last batch first if `reverse`),
/// saving the position each batch reached.
async fn file(store: &dyn CheckpointStore, entries: &[IndexEntry], size: usize, reverse: bool) {
    let mut batches: Vec<&[IndexEntry]> = entries.chunks(size).collect();
    if reverse {
        batches.reverse();
    }
    for batch in batches {
        let reached = batch.iter().map(|e| e.position).max().unwrap();
        store
            .index("test.runs", 1, reached, batch.to_vec())
            .await
            .unwrap();
    }
}

/// Checks that a find of `all`'s key after its entry `from` (from the start if 0),
/// at most `limit`, returns the entries that follow it, in order.
async fn finds(store: &dyn CheckpointStore, all: &[IndexEntry], from: usize, limit: usize) {
    let key = all[0].key;
    let after = if from == 0 {
        Position::START
    } else {
        all[from - 1].position
    };
    let found = store.find("test.runs", key, after, limit).await.unwrap();
    let want: Vec<IndexEntry> = all[from..].iter().take(limit).cloned().collect();
    assert_eq!(found, want, "key {key}, after entry {from}, limit {limit}");
}

/// Several instances file the same stretch of the log with other batch bounds (one
/// behind and writing in reverse, one filing an entry at a time as at the log's head):
/// every entry is found once, in order, from any position and in pages of any size.
async fn runs_from_instances_overlap(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _schema) = store(backend, dir.path(), "runs.sqlite").await;
    let keys = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let entries = scattered(&keys, 6_000);
    // Sorted by position (as an index reads them), the keys interleaved.
    file(&*store, &entries[..4_800], 700, false).await;
    file(&*store, &entries[600..], 450, true).await;
    file(&*store, &entries[4_000..4_100], 1, false).await;
    file(&*store, &entries[5_000..], 6_000, false).await;
    for key in keys {
        let all: Vec<IndexEntry> = entries.iter().filter(|e| e.key == key).cloned().collect();
        assert!(all.len() > 1_024, "more than one run's worth under {key}");
        for limit in [1, 7, 500, 5_000] {
            for from in [0usize, 1, 333, 1_100] {
                finds(&*store, &all, from, limit).await;
            }
        }
    }
    // A key filed an entry at a time, as at the log's head: a run per entry, more than
    // a find reads in one query.
    let single = Uuid::new_v4();
    let singles: Vec<IndexEntry> = (7_001..=7_100u128)
        .map(|n| IndexEntry {
            key: single,
            position: n.to_string().parse().unwrap(),
            stream: StreamName::new("access-global").unwrap(),
            version: u64::try_from(n).unwrap(),
        })
        .collect();
    file(&*store, &singles, 1, false).await;
    for (from, limit) in [(0usize, 5_000), (0, 100), (10, 70), (10, 65), (99, 10)] {
        finds(&*store, &singles, from, limit).await;
    }
    assert!(
        store
            .find("test.runs", Uuid::new_v4(), Position::START, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.clear_index("test.runs").await.unwrap();
    assert!(
        store
            .find("test.runs", keys[0], Position::START, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn runs_filed_by_several_instances_are_found_once_in_order_in_sqlite() {
    runs_from_instances_overlap(Backend::Sqlite).await;
}

#[tokio::test]
async fn runs_filed_by_several_instances_are_found_once_in_order_in_postgres() {
    runs_from_instances_overlap(Backend::Postgres).await;
}
