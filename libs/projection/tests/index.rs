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
