//! Checkpointed projections: a restart resumes from the snapshot and reads only what the
//! log holds after it; snapshots only move forwards; a snapshot of another format, or
//! one that does not decode, is ignored and the projection rebuilt from the log. Each
//! test runs on both checkpoint stores (SQLite, PostgreSQL) over a real SQLite log.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use caseline_eventlog::sqlite::SqliteEventLog;
use caseline_eventlog::{
    Error, EventLog, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StreamName, Uuid,
};
use caseline_projection::{CheckpointStore, Fold, Followed, Snapshot, SqliteCheckpoints};

/// Counts the events of each `case-` stream and remembers the order they began in.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counts {
    per_case: BTreeMap<Uuid, u64>,
    #[serde(with = "caseline_projection::positions::keys")]
    began: BTreeMap<Position, Uuid>,
}

impl Fold for Counts {
    const FORMAT: u32 = 1;
    type Error = Error;

    fn reads(event: &RecordedEvent) -> bool {
        caseline_projection::category_of(event) == Some("case")
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), Error> {
        let id = event.metadata.case_id.ok_or_else(|| Error::Corrupt {
            position: event.position.to_string(),
            reason: "no case id".into(),
        })?;
        let n = self.per_case.entry(id).or_default();
        if *n == 0 {
            self.began.insert(event.position, id);
        }
        *n += 1;
        Ok(())
    }
}

/// The same state under a new format.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CountsV2(Counts);

impl Fold for CountsV2 {
    const FORMAT: u32 = 2;
    type Error = Error;

    fn reads(event: &RecordedEvent) -> bool {
        Counts::reads(event)
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), Error> {
        self.0.apply(event)
    }
}

struct World {
    _dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    store: Arc<dyn CheckpointStore>,
    _pg: Option<pg::Schema>,
}

#[derive(Clone, Copy, Debug)]
enum Store {
    Sqlite,
    Postgres,
}

async fn world(store: Store) -> World {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteEventLog::open(dir.path().join("events.sqlite"))
            .await
            .unwrap(),
    );
    let (store, pg): (Arc<dyn CheckpointStore>, _) = match store {
        Store::Sqlite => (
            Arc::new(
                SqliteCheckpoints::open(dir.path().join("checkpoints.sqlite"))
                    .await
                    .unwrap(),
            ),
            None,
        ),
        Store::Postgres => {
            let schema = pg::Schema::new().await;
            (Arc::new(schema.store().await), Some(schema))
        }
    };
    World {
        _dir: dir,
        log,
        store,
        _pg: pg,
    }
}

/// Appends `n` events to the stream of `case_id` and one to an unrelated stream.
async fn append(log: &dyn EventLog, case_id: Uuid, n: usize) {
    let stream = StreamName::for_id("case", case_id).unwrap();
    let events = (0..n)
        .map(|i| NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "caseline.v1.events.TestHappened".into(),
            data: vec![u8::try_from(i % 256).unwrap()],
            metadata: Metadata {
                case_id: Some(case_id),
                actor: "user-1".into(),
                actor_role: "social_worker".into(),
                agency: "children-services".into(),
                ..Metadata::default()
            },
        })
        .collect();
    log.append(&stream, ExpectedVersion::Any, events)
        .await
        .unwrap();
    let other = StreamName::for_id("plan", Uuid::new_v4()).unwrap();
    let event = NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "caseline.v1.events.TestHappened".into(),
        data: vec![],
        metadata: Metadata {
            case_id: Some(case_id),
            actor: "user-1".into(),
            actor_role: "social_worker".into(),
            agency: "children-services".into(),
            ..Metadata::default()
        },
    };
    log.append(&other, ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();
}

async fn snapshot_of(w: &World) -> Counts {
    let p = Followed::<Counts>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    let view = p.view().await.unwrap();
    Counts {
        per_case: view.per_case.clone(),
        began: view.began.clone(),
    }
}

async fn a_restart_reads_only_what_came_after_the_checkpoint(store: Store) {
    let w = world(store).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(w.log.as_ref(), a, 30).await;
    append(w.log.as_ref(), b, 20).await;

    let first = Followed::<Counts>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    assert_eq!(first.view().await.unwrap().per_case[&a], 30);
    let (position, read) = first.progress().await;
    assert_eq!(read, 52, "the first start reads the whole log");
    assert!(
        first.checkpoint().await.unwrap(),
        "a changed projection saves"
    );
    assert!(
        !first.checkpoint().await.unwrap(),
        "nothing new: nothing to save"
    );
    // Events of another category move its position, not its state: no new snapshot
    // (a busy log would otherwise have every projection re-encoded every few seconds).
    let plan = StreamName::for_id("plan", Uuid::new_v4()).unwrap();
    let unrelated = NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "caseline.v1.events.TestHappened".into(),
        data: vec![],
        metadata: Metadata {
            case_id: Some(b),
            actor: "user-1".into(),
            actor_role: "social_worker".into(),
            agency: "children-services".into(),
            ..Metadata::default()
        },
    };
    w.log
        .append(&plan, ExpectedVersion::NoStream, vec![unrelated])
        .await
        .unwrap();
    drop(first.view().await.unwrap());
    assert!(
        !first.checkpoint().await.unwrap(),
        "only events it does not read: nothing to save"
    );
    let saved = w.store.load("counts").await.unwrap().expect("a snapshot");
    assert_eq!((saved.format, saved.position), (1, position));
    drop(first);

    append(w.log.as_ref(), a, 5).await;
    let second = Followed::<Counts>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    {
        let view = second.view().await.unwrap();
        assert_eq!(view.per_case[&a], 35);
        assert_eq!(view.per_case[&b], 20);
        assert_eq!(
            view.began.values().copied().collect::<Vec<_>>(),
            vec![a, b],
            "order kept across the snapshot"
        );
    }
    assert_eq!(
        second.progress().await.1,
        7,
        "after a restart only the events past the checkpoint are read"
    );

    // The same state as a projection rebuilt from nothing.
    let rebuilt = Followed::<Counts>::new("other", Arc::clone(&w.log), Arc::clone(&w.store));
    let fresh = rebuilt.view().await.unwrap();
    let resumed = second.view().await.unwrap();
    assert_eq!(fresh.per_case, resumed.per_case);
    assert_eq!(fresh.began, resumed.began);
}

async fn a_checkpoint_only_moves_forwards(store: Store) {
    let w = world(store).await;
    let at = |n: u128| n.to_string().parse::<Position>().unwrap();
    let snap = |n: u128, state: &[u8]| Snapshot {
        format: 1,
        position: at(n),
        state: state.to_vec(),
    };
    assert_eq!(w.store.load("p").await.unwrap(), None);
    w.store.save("p", &snap(10, b"ten")).await.unwrap();
    w.store.save("p", &snap(9, b"nine")).await.unwrap();
    w.store.save("p", &snap(10, b"again")).await.unwrap();
    assert_eq!(w.store.load("p").await.unwrap(), Some(snap(10, b"ten")));
    w.store.save("p", &snap(11, b"eleven")).await.unwrap();
    assert_eq!(w.store.load("p").await.unwrap(), Some(snap(11, b"eleven")));
    // Positions compare as numbers, not as text.
    w.store.save("p", &snap(100, b"hundred")).await.unwrap();
    assert_eq!(
        w.store.load("p").await.unwrap(),
        Some(snap(100, b"hundred"))
    );
    w.store.save("q", &snap(1, b"one")).await.unwrap();
    assert_eq!(w.store.load("q").await.unwrap(), Some(snap(1, b"one")));
    assert_eq!(
        w.store.load("p").await.unwrap(),
        Some(snap(100, b"hundred"))
    );
}

async fn another_format_or_a_broken_snapshot_is_rebuilt(store: Store) {
    let w = world(store).await;
    let a = Uuid::new_v4();
    append(w.log.as_ref(), a, 4).await;
    let expected = snapshot_of(&w).await;

    let v1 = Followed::<Counts>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    drop(v1.view().await.unwrap());
    v1.checkpoint().await.unwrap();

    let v2 = Followed::<CountsV2>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    assert_eq!(v2.view().await.unwrap().0, expected);
    assert_eq!(v2.progress().await.1, 5, "a format-1 snapshot is not used");
    assert!(v2.checkpoint().await.unwrap());
    assert_eq!(w.store.load("counts").await.unwrap().unwrap().format, 2);

    let (position, _) = v2.progress().await;
    let broken = Snapshot {
        format: 2,
        position: format!("{}", position_after(position)).parse().unwrap(),
        state: b"{not json".to_vec(),
    };
    w.store.save("counts", &broken).await.unwrap();
    let again = Followed::<CountsV2>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    assert_eq!(again.view().await.unwrap().0, expected);
    assert_eq!(
        again.progress().await.1,
        5,
        "an undecodable snapshot is not used"
    );
}

fn position_after(p: Position) -> u128 {
    p.to_string().parse::<u128>().unwrap() + 1
}

async fn an_event_that_fails_is_not_skipped(store: Store) {
    let w = world(store).await;
    let a = Uuid::new_v4();
    append(w.log.as_ref(), a, 2).await;
    // A case event without a case id: Counts refuses it.
    let stream = StreamName::for_id("case", Uuid::new_v4()).unwrap();
    let bad = NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "caseline.v1.events.TestHappened".into(),
        data: vec![],
        metadata: Metadata {
            actor: "user-1".into(),
            actor_role: "admin".into(),
            agency: "ops".into(),
            ..Metadata::default()
        },
    };
    w.log
        .append(&stream, ExpectedVersion::NoStream, vec![bad])
        .await
        .unwrap();
    append(w.log.as_ref(), a, 1).await;
    let p = Followed::<Counts>::new("counts", Arc::clone(&w.log), Arc::clone(&w.store));
    for _ in 0..2 {
        assert!(matches!(p.view().await, Err(Error::Corrupt { .. })));
    }
    // It stopped just before the failing event, and saves only up to there.
    let (position, read) = p.progress().await;
    assert_eq!(read, 3);
    assert!(p.checkpoint().await.unwrap());
    assert_eq!(
        w.store.load("counts").await.unwrap().unwrap().position,
        position
    );
}

macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Store::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Store::Postgres).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_restart_reads_only_what_came_after_the_checkpoint,
    a_checkpoint_only_moves_forwards,
    another_format_or_a_broken_snapshot_is_rebuilt,
    an_event_that_fails_is_not_skipped,
);

mod pg {
    use caseline_eventlog::postgres::ScratchSchema;
    use caseline_projection::PostgresCheckpoints;

    /// A schema of its own on the test server, dropped at the end.
    pub struct Schema(ScratchSchema);

    impl Schema {
        pub async fn new() -> Self {
            let url = std::env::var("CASELINE_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            Self(
                ScratchSchema::create(&url, "caseline_test")
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is needed for these tests and did not answer at {url}: \
                             {e}. Start one (e.g. `pg_ctlcluster 15 main start`) or point \
                             CASELINE_TEST_DATABASE_URL at a server."
                        )
                    }),
            )
        }

        pub async fn store(&self) -> PostgresCheckpoints {
            let pool = caseline_eventlog::postgres::pool(self.0.config().unwrap(), 2).unwrap();
            PostgresCheckpoints::from_pool(pool).await.unwrap()
        }
    }
}
