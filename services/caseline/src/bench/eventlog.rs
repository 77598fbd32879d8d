//! `bench eventlog`: N concurrent appenders, each appending one event per call to its
//! own stream with the version it last wrote (as services do), for a fixed time. The
//! baselines do the same storage work with none of the log's rules:
//! - SQLite: raw rusqlite inserting 100 rows per transaction into a table of the same
//!   shape, `synchronous=FULL`, WAL, the rows spread over as many streams and cases as
//!   there are appenders (the same index pages the log touches);
//! - PostgreSQL: 8 connections each inserting one row per transaction into a copy of the
//!   events table (same columns and indexes, no triggers).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caseline_eventlog::postgres::{PostgresEventLog, ScratchSchema};
use caseline_eventlog::sqlite::SqliteEventLog;
use caseline_eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamName};
use uuid::Uuid;

use super::{BoxError, ScratchDir, Throughput, round1, round3};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, clap::Args)]
pub struct EventlogArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Concurrent appenders, one event per append.
    #[arg(long, default_value_t = 64)]
    appenders: usize,
    /// Seconds each side (baseline, log) runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// PostgreSQL server for `--backend postgres`; a fresh schema is created and dropped.
    #[arg(
        long,
        env = "CASELINE_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub(super) async fn eventlog(args: EventlogArgs) -> Result<(), BoxError> {
    if args.appenders == 0 || !args.seconds.is_finite() || args.seconds <= 0.0 {
        return Err("--appenders and --seconds must be positive".into());
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let (backend, target, baseline_desc, baseline, measured) = match args.backend {
        Backend::Sqlite => {
            let dir = ScratchDir::new("bench")?;
            let path = dir.path().join("baseline.sqlite");
            let streams = args.appenders;
            let baseline =
                tokio::task::spawn_blocking(move || sqlite_baseline(&path, streams, duration))
                    .await??;
            let log = Arc::new(SqliteEventLog::open(dir.path().join("events.sqlite")).await?);
            let measured = appenders(log.clone(), args.appenders, duration).await?;
            log.close().await;
            (
                "sqlite",
                0.8,
                "raw rusqlite, 100 events per transaction over the same streams, synchronous=FULL",
                baseline,
                measured,
            )
        }
        Backend::Postgres => {
            // A fresh schema, dropped afterwards (also on an error).
            let schema = ScratchSchema::create(&args.database_url, "caseline_bench")
                .await
                .map_err(|e| format!("cannot use PostgreSQL at {}: {e}", args.database_url))?;
            let log = Arc::new(
                PostgresEventLog::connect_with(
                    schema.config()?,
                    caseline_eventlog::postgres::DEFAULT_POOL_SIZE,
                )
                .await?,
            );
            let baseline = pg_baseline(&schema, duration).await?;
            let measured = appenders(log.clone(), args.appenders, duration).await?;
            log.close().await;
            drop(schema);
            (
                "postgres",
                1.0,
                "8 connections, one row per transaction",
                baseline,
                measured,
            )
        }
    };
    let ratio = measured.per_sec() / baseline.per_sec();
    println!("backend   {backend}");
    println!(
        "baseline  {:>10.0} events/s  ({baseline_desc})",
        baseline.per_sec()
    );
    println!(
        "caseline  {:>10.0} events/s  ({} appenders x 1 event per append; p50 {:.2} ms, p99 {:.2} ms)",
        measured.per_sec(),
        args.appenders,
        measured.percentile_ms(0.50),
        measured.percentile_ms(0.99),
    );
    println!(
        "ratio     {ratio:>10.2}            (target >= {target:.2}: {})",
        if ratio >= target { "met" } else { "NOT met" }
    );
    if args.json {
        let report = serde_json::json!({
            "bench": "eventlog",
            "backend": backend,
            "appenders": args.appenders,
            "seconds": args.seconds,
            "events": measured.events,
            "events_per_sec": round1(measured.per_sec()),
            "baseline": baseline_desc,
            "baseline_events_per_sec": round1(baseline.per_sec()),
            "ratio": round3(ratio),
            "target_ratio": target,
            "p50_ms": round3(measured.percentile_ms(0.50)),
            "p99_ms": round3(measured.percentile_ms(0.99)),
        });
        println!("{report}");
    }
    Ok(())
}

/// A realistic event: a ~200-byte payload and full metadata.
fn bench_event(case_id: Uuid) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "caseline.v1.events.NoteAdded".into(),
        data: vec![0x5a; 200],
        metadata: Metadata {
            case_id: Some(case_id),
            actor: "bench-user".into(),
            actor_role: "social_worker".into(),
            agency: "bench-agency".into(),
            request_id: Some(Uuid::new_v4()),
            correlation_id: Some(Uuid::new_v4()),
            causation_id: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            call: None,
        },
    }
}

async fn appenders(
    log: Arc<dyn EventLog>,
    count: usize,
    duration: Duration,
) -> Result<Throughput, BoxError> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move {
                let case_id = Uuid::new_v4();
                let stream = StreamName::for_id("case", case_id)?;
                let mut expected = ExpectedVersion::NoStream;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = log
                        .append(&stream, expected, vec![bench_event(case_id)])
                        .await?;
                    latencies.push(t.elapsed().as_micros() as u64);
                    expected = ExpectedVersion::Exact(r.last_version);
                }
                Ok::<_, caseline_eventlog::Error>(latencies)
            })
        })
        .collect();
    Throughput::gather(start, tasks).await
}

fn sqlite_baseline(
    path: &Path,
    streams: usize,
    duration: Duration,
) -> Result<Throughput, BoxError> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE events (
            position INTEGER PRIMARY KEY AUTOINCREMENT, event_id BLOB NOT NULL,
            stream TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL,
            data BLOB NOT NULL, case_id BLOB, actor TEXT NOT NULL, actor_role TEXT NOT NULL,
            agency TEXT NOT NULL, request_id BLOB, correlation_id BLOB, causation_id BLOB,
            traceparent TEXT, recorded_at INTEGER NOT NULL, prev_hash BLOB NOT NULL,
            hash BLOB NOT NULL, UNIQUE (stream, version), UNIQUE (stream, event_id));
         CREATE INDEX events_by_case ON events (case_id, position) WHERE case_id IS NOT NULL;",
    )?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut events = 0u64;
    // (stream, case, next version) per simulated appender.
    let mut targets: Vec<(String, Uuid, i64)> = (0..streams)
        .map(|_| {
            let case_id = Uuid::new_v4();
            (format!("case-{case_id}"), case_id, 0)
        })
        .collect();
    let mut next = 0;
    while Instant::now() < deadline {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (event_id, stream, version, event_type, data, case_id, \
                 actor, actor_role, agency, request_id, correlation_id, causation_id, \
                 traceparent, recorded_at, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for _ in 0..100 {
                let (stream, case_id, version) = &mut targets[next % streams];
                next += 1;
                let e = bench_event(*case_id);
                let m = &e.metadata;
                insert.execute(rusqlite::params![
                    e.event_id.as_bytes().as_slice(),
                    stream.as_str(),
                    *version,
                    e.event_type,
                    e.data,
                    case_id.as_bytes().as_slice(),
                    m.actor,
                    m.actor_role,
                    m.agency,
                    m.request_id.map(|u| u.as_bytes().to_vec()),
                    m.correlation_id.map(|u| u.as_bytes().to_vec()),
                    None::<Vec<u8>>,
                    m.traceparent,
                    0i64,
                    [0u8; 32].as_slice(),
                    [1u8; 32].as_slice(),
                ])?;
                *version += 1;
            }
        }
        tx.commit()?;
        events += 100;
    }
    Ok(Throughput {
        events,
        elapsed: start.elapsed(),
        latencies_us: Vec::new(),
    })
}

async fn pg_baseline(scratch: &ScratchSchema, duration: Duration) -> Result<Throughput, BoxError> {
    const CLIENTS: usize = 8;
    let (admin, conn) = scratch.config()?.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE TABLE bench_baseline (LIKE caseline_events INCLUDING ALL)")
        .await?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, conn) = scratch.config()?.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare(
                    "INSERT INTO bench_baseline (event_id, stream, version, event_type, data, \
                     case_id, actor, actor_role, agency, request_id, correlation_id, \
                     traceparent, recorded_at, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .await?;
            let stream = format!("case-{}", Uuid::new_v4());
            let case_id = Uuid::new_v4();
            let mut version = 0i64;
            while Instant::now() < deadline {
                let e = bench_event(case_id);
                let m = &e.metadata;
                client
                    .execute(
                        &insert,
                        &[
                            &e.event_id,
                            &stream,
                            &version,
                            &e.event_type,
                            &e.data,
                            &m.case_id,
                            &m.actor,
                            &m.actor_role,
                            &m.agency,
                            &m.request_id,
                            &m.correlation_id,
                            &m.traceparent,
                            &0i64,
                            &vec![0u8; 32],
                            &vec![1u8; 32],
                        ],
                    )
                    .await?;
                version += 1;
            }
            Ok::<_, tokio_postgres::Error>(version as u64)
        }));
    }
    let mut events = 0;
    for task in tasks {
        events += task.await??;
    }
    Ok(Throughput {
        events,
        elapsed: start.elapsed(),
        latencies_us: Vec::new(),
    })
}
