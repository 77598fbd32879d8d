//! `bench scale`: one log grown to each size asked (10 000, 100 000, 1 000 000 events
//! by default), and at each size the same measures of the all-in-one run as its own
//! process, as an operator runs it:
//!
//! - **rebuild**: the projections' checkpoints are removed and the server started; the
//!   time until its lists (cases, inbox, reviews due) have all answered once is the
//!   rebuild, in log events per second, next to a raw read of the whole log by this
//!   process right before (`EventLog::read_all`, pages of 512); [`REBUILD_ROUNDS`]
//!   rounds of both, and the median of the rounds' ratios;
//! - **checkpoint**: the time the server takes to stop (it saves every projection's
//!   checkpoint on the way) and the checkpoints' size;
//! - **start**: from starting the process to the first answered `ListCases`, resuming
//!   from those checkpoints;
//! - **reads**, one caller, call after call (p50, p99): `GetTimeline` of a 500-event
//!   case, `ReplayAccessHistory` of one case (the same entries at every size),
//!   `ListCases` first page by a caseworker on one case and by one on 500, `ListInbox`
//!   first page of an agency with 100 referrals, `ListReviewsDue` first page;
//! - **writes**: 16 callers adding notes to their own cases (events per second), the
//!   process's RSS sampled meanwhile (its peak), and RSS idle after.
//!
//! With two sizes or more, the reads and writes are also measured alternated: a fresh
//! log of the first size is grown beside the largest, both are served, and the reads
//! and writes go to one, then the other, [`ROUNDS`] rounds each. The ratio of their
//! medians is each read and write target's figure, since one size's measure and the
//! next are minutes apart and the machine may drift in between (writes at 10 000 events
//! varied 1.8 × between runs on the build machine, reads 1.4 ×).
//!
//! Each size prints one JSON object; then the growth of every measure from the first
//! size to the last, with the targets judged there (issue: at 1 000 000 events, start at
//! most 5 s, RSS at most 256 MiB, rebuild at least 0.5 × the raw read); and last the
//! alternated measure, whose verdict is the read and write targets' (reads at most 1.5 ×
//! their time at 10 000, writes at least 0.8 ×; the growth's ratios of those, one size
//! after the other, are shown but not judged).

mod generate;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caseline_auth::{DevKey, Role};
use caseline_eventlog::{EventLog, Position, Uuid};
use caseline_host::{Clockwork, Host, HostArgs};
use caseline_proto::tonic;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::compensation_service_client::CompensationServiceClient;
use caseline_proto::v1::referral_service_client::ReferralServiceClient;
use caseline_proto::v1::support_plan_service_client::SupportPlanServiceClient;
use caseline_proto::v1::{
    AddNoteRequest, GetTimelineRequest, ListBreakGlassUsesRequest, ListCasesRequest,
    ListClaimsRequest, ListComplaintsRequest, ListInboxRequest, ListReviewsDueRequest,
    NoteCompartment, ReplayAccessHistoryRequest,
};
use serde_json::{Value, json};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use self::generate::{Actor, Generator, Probes};
use super::{BoxError, ScratchDir, Throughput, authed, request_id, round1, round3, verdict};

/// Reads measured per measure and size (after a few unmeasured ones).
const WARM_UP: usize = 3;
/// Writers adding notes during the write measure.
const WRITERS: usize = 16;
const RSS_TARGET_MIB: f64 = 256.0;
const START_TARGET_S: f64 = 5.0;
const READ_GROWTH_TARGET: f64 = 1.5;
const WRITE_GROWTH_TARGET: f64 = 0.8;
const REBUILD_TARGET: f64 = 0.5;

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Sizes of the log (events) at which to measure, ascending, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [10_000u64, 100_000, 1_000_000]
    )]
    sizes: Vec<u64>,
    /// A PostgreSQL server to grow the log on (in a schema of its own, dropped after),
    /// instead of SQLite in a scratch directory.
    #[arg(long)]
    postgres: Option<String>,
    /// Another `caseline` binary (an earlier build, say) measured too, at each size on
    /// the same log right after this one, as a baseline of the same run.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Reads measured per measure and size.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Seconds the write measure runs.
    #[arg(long, default_value_t = 5.0)]
    write_seconds: f64,
    /// Print one JSON object per size and one of the growth as the last lines.
    #[arg(long)]
    json: bool,
    /// The log filter of the servers measured (`CASELINE_LOG`), whose log then goes to
    /// this one's standard error: `info` shows each projection's rebuild, say. They log
    /// errors only, to nowhere, by default.
    #[arg(long)]
    server_log: Option<String>,
    /// Keep the log grown (its directory is printed) instead of removing it: to
    /// profile a server on it by hand. SQLite only.
    #[arg(long, conflicts_with = "postgres")]
    keep: bool,
}

pub(super) async fn scale(args: ScaleArgs) -> Result<(), BoxError> {
    if args.sizes.is_empty() || args.sizes.windows(2).any(|w| w[0] >= w[1]) || args.sizes[0] < 5_000
    {
        return Err("--sizes must ascend, from at least 5000 events".into());
    }
    if !args.write_seconds.is_finite() || args.write_seconds <= 0.0 {
        return Err("--write-seconds must be positive".into());
    }
    let dir = ScratchDir::new("scale")?;
    let schema = scratch_schema(args.postgres.as_deref()).await?;
    let this = std::env::current_exe()?;
    let setup = Setup {
        dir: dir.path().to_path_buf(),
        event_log: schema.as_ref().map(|s| s.url()),
        iterations: args.iterations as usize,
        write_seconds: args.write_seconds,
        server_log: args.server_log.clone(),
    };
    let backend = if schema.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "bench scale: {backend} log grown to {:?} events; {} reads per measure",
        args.sizes, args.iterations
    );

    let host = setup.open().await?;
    let mut generator = Generator::new(Arc::clone(host.log()), host.trust().vault().clone());
    let probes = generator.probes().await?;
    let mut head = Position::START;
    count_after(&**host.log(), &mut head).await?;
    host.log().close().await;
    drop(host);

    // Events written by the servers measured (their reads' access records, the notes of
    // the write measure): they count towards the next size.
    let mut by_others = 0u64;
    let mut reports = Vec::new();
    for &size in &args.sizes {
        let host = setup.open().await?;
        let log = Arc::clone(host.log());
        by_others += count_after(&*log, &mut head).await?;
        generator.set_log(Arc::clone(&log));
        let grown = Instant::now();
        generator.grow_to(size, by_others).await?;
        let grown_in = grown.elapsed();
        // The whole log's size, and its head for the next size.
        head = Position::START;
        let events = count_after(&*log, &mut head).await?;
        by_others = events.saturating_sub(generator.written);
        log.close().await;
        drop(host);

        let binaries =
            std::iter::once(("this", &this)).chain(args.baseline.iter().map(|b| ("baseline", b)));
        for (i, (name, binary)) in binaries.enumerate() {
            let mut report = setup.measure(binary, &probes, events, grown_in).await?;
            report["binary"] = json!(name);
            if args.json {
                println!("{report}");
            } else {
                print_size(&report);
            }
            if reports.len() <= i {
                reports.push(Vec::new());
            }
            reports[i].push(report);
        }
    }
    for (name, reports) in ["this", "baseline"].iter().zip(&reports) {
        let mut growth = growth(reports);
        growth["binary"] = json!(name);
        if args.json {
            println!("{growth}");
        } else {
            print_growth(&growth);
        }
    }
    // Last, so that a failure here loses none of the measures above (nor a kept log).
    if let [first, .., _] = args.sizes.as_slice() {
        match alternated(&setup, &this, &probes, *first, args.postgres.as_deref()).await {
            Ok(alternated) if args.json => println!("{alternated}"),
            Ok(alternated) => print_alternated(&alternated),
            Err(e) => eprintln!("the alternated measure failed: {e}"),
        }
    }
    drop(schema);
    if args.keep {
        println!("the log is kept in {}", dir.path().display());
        std::mem::forget(dir);
    }
    Ok(())
}

/// The `authorization` value of `actor`, with a token of `key` valid for an hour.
fn bearer_of(key: &DevKey, actor: &Actor) -> Result<MetadataValue<Ascii>, BoxError> {
    let token = key.issue(
        &actor.subject,
        &[actor.role],
        &actor.agency,
        None,
        Duration::from_secs(3600),
    )?;
    Ok(format!("Bearer {token}").parse()?)
}

/// A schema of its own on the PostgreSQL server at `url`, if one is given (dropped
/// with it).
async fn scratch_schema(
    url: Option<&str>,
) -> Result<Option<caseline_eventlog::postgres::ScratchSchema>, BoxError> {
    Ok(match url {
        Some(url) => {
            Some(caseline_eventlog::postgres::ScratchSchema::create(url, "caseline_scale").await?)
        }
        None => None,
    })
}

/// Rounds of the alternated measure, at each log.
const ROUNDS: usize = 5;

/// Rebuilds measured per size, each right after a raw read of the log by this process:
/// the median of the rounds' ratios is the rebuild target's figure, since a raw read
/// minutes before a rebuild (as it was measured first) varied with the machine's drift.
const REBUILD_ROUNDS: usize = 3;

/// Reads and writes to the largest log and to a fresh one of the first size, in turns
/// (fresh, large, then large, fresh, and so on; `this` binary), so that the machine's
/// drift between one size's measures and another's (writes at 10 000 events varied
/// 1.8 × between runs) falls on both alike. The ratio of the medians over the rounds is
/// each read and write target's figure. The large log's server resumes from its
/// checkpoints; the fresh one builds its projections at its first start, before its
/// unmeasured warm-up calls answer. The large log's writers' cases hold the notes of
/// the measures before; the fresh log's are short. Each round's notes count towards
/// its log's size (reported).
async fn alternated(
    large: &Setup,
    binary: &Path,
    probes: &Probes,
    size: u64,
    postgres: Option<&str>,
) -> Result<Value, BoxError> {
    let dir = ScratchDir::new("scale-fresh")?;
    let schema = scratch_schema(postgres).await?;
    let fresh = Setup {
        dir: dir.path().to_path_buf(),
        event_log: schema.as_ref().map(|s| s.url()),
        iterations: large.iterations,
        write_seconds: large.write_seconds,
        server_log: large.server_log.clone(),
    };
    let fresh_probes = {
        let host = fresh.open().await?;
        let mut generator = Generator::new(Arc::clone(host.log()), host.trust().vault().clone());
        let probes = generator.probes().await?;
        generator.grow_to(size, 0).await?;
        host.log().close().await;
        probes
    };
    let seconds = (large.write_seconds / 2.0).max(1.0);
    let mut sides = Vec::new();
    for (setup, probes) in [(&fresh, &fresh_probes), (large, probes)] {
        let callers = Callers::of(setup, probes)?;
        let server = Server::start(setup, binary).await?;
        let channel = server.channel().await?;
        // Unmeasured: the first calls load the cases read and written.
        callers.reads(&channel, probes, 1).await?;
        write_load(&channel, &callers.writers, 0.5).await?;
        sides.push(Side {
            setup,
            server,
            channel,
            callers,
            probes,
            reads: vec![Vec::new(); READS.len()],
            writes: Vec::new(),
        });
    }
    for round in 0..ROUNDS {
        // Each log goes first in every other round, so neither gains by its place.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let side = &mut sides[i];
            let reads = side
                .callers
                .reads(&side.channel, side.probes, large.iterations)
                .await?;
            for (p50s, read) in side.reads.iter_mut().zip(&reads) {
                p50s.push(read.percentile_ms(0.5));
            }
            let writes = write_load(&side.channel, &side.callers.writers, seconds).await?;
            side.writes.push(writes.per_sec());
        }
    }
    let mut report = json!({
        "bench": "scale-alternated",
        "rounds": ROUNDS,
        "reads_per_round": large.iterations,
        "write_seconds_per_round": seconds,
        "fresh_events": size,
    });
    let mut medians = Vec::new();
    for (side, name) in sides.into_iter().zip(["fresh", "large"]) {
        side.server.stop()?;
        let events = {
            let host = side.setup.open().await?;
            let mut head = Position::START;
            let events = count_after(&**host.log(), &mut head).await?;
            host.log().close().await;
            events
        };
        let mut rounds = serde_json::Map::new();
        let mut of_side = Vec::new();
        for (read, p50s) in READS.iter().zip(&side.reads) {
            of_side.push(median(p50s));
            let p50s: Vec<_> = p50s.iter().map(|t| round3(*t)).collect();
            rounds.insert(format!("{read}.p50_ms"), json!(p50s));
        }
        let writes: Vec<_> = side.writes.iter().map(|r| round1(*r)).collect();
        rounds.insert("writes_per_sec".into(), json!(writes));
        of_side.push(median(&side.writes));
        report[name] = json!({ "rounds": rounds, "events_after": events });
        medians.push(of_side);
    }
    let mut ratios = serde_json::Map::new();
    let mut met = true;
    let measures = READS
        .iter()
        .map(|r| format!("{r}.p50_ms"))
        .chain(["writes_per_sec".to_owned()]);
    for (i, measure) in measures.enumerate() {
        let (fresh, large) = (medians[0][i], medians[1][i]);
        let ratio = large / fresh;
        met &= if i < READS.len() {
            ratio <= READ_GROWTH_TARGET
        } else {
            ratio >= WRITE_GROWTH_TARGET
        };
        ratios.insert(
            measure,
            json!({ "fresh": round3(fresh), "large": round3(large), "ratio": round3(ratio) }),
        );
    }
    report["medians"] = Value::Object(ratios);
    report["targets"] = json!(verdict(met));
    drop(schema);
    Ok(report)
}

/// One log served during the alternated measure, and its measures by round.
struct Side<'a> {
    setup: &'a Setup,
    server: Server,
    channel: Channel,
    callers: Callers,
    probes: &'a Probes,
    /// Each read's p50 (ms) by round, in the order of [`READS`].
    reads: Vec<Vec<f64>>,
    writes: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn print_alternated(r: &Value) {
    println!(
        "\nalternated with a fresh log of {} events ({} rounds of {} reads of each and {} s of writes, this binary):",
        r["fresh_events"], r["rounds"], r["reads_per_round"], r["write_seconds_per_round"]
    );
    if let Some(medians) = r["medians"].as_object() {
        for (measure, m) in medians {
            println!(
                "  {measure:<32} fresh {}, large {}: {} x",
                m["fresh"], m["large"], m["ratio"]
            );
        }
    }
    println!(
        "  (reads: medians of each round's p50, large / fresh, target <= {READ_GROWTH_TARGET}; \
         writes: events/s, target >= {WRITE_GROWTH_TARGET}): targets {}",
        r["targets"].as_str().unwrap_or_default()
    );
    for side in ["fresh", "large"] {
        println!("  {side:<6} by round: {}", r[side]["rounds"]);
    }
}

/// Where the log lives and how long to measure.
struct Setup {
    dir: PathBuf,
    event_log: Option<String>,
    iterations: usize,
    write_seconds: f64,
    server_log: Option<String>,
}

impl Setup {
    fn host_args(&self) -> HostArgs {
        let mut args = HostArgs::dev("127.0.0.1:0".parse().expect("an address"), self.dir.clone());
        args.event_log = self.event_log.clone();
        args
    }

    /// The log and vault as the server opens them, for the generator.
    async fn open(&self) -> Result<Host, BoxError> {
        Host::open("caseline", &self.host_args(), Clockwork::default()).await
    }

    async fn measure(
        &self,
        binary: &Path,
        probes: &Probes,
        events: u64,
        grown_in: Duration,
    ) -> Result<Value, BoxError> {
        let callers = Callers::of(self, probes)?;
        let Callers {
            one,
            caseload,
            inbox,
            audit,
            advocate,
            complaints,
            ..
        } = &callers;

        // The rebuild, in rounds: a raw read of the log by this process, then no
        // checkpoints and a server start, with one call that reads each projection and
        // index (each catches up with the whole log before it answers).
        let mut rounds = Vec::new();
        let mut rebuilt: Option<Server> = None;
        for _ in 0..REBUILD_ROUNDS {
            if let Some(server) = rebuilt.take() {
                server.stop()?;
            }
            let (events, raw_per_sec) = {
                let host = self.open().await?;
                let read = raw_read(&**host.log()).await;
                host.log().close().await;
                read?
            };
            self.remove_checkpoints().await?;
            let started = Instant::now();
            let server = Server::start(self, binary).await?;
            let channel = server.channel().await?;
            let calls = tokio::try_join!(
                answered(started, list_cases(&channel, caseload)),
                answered(started, list_inbox(&channel, inbox)),
                answered(started, reviews_due(&channel, caseload)),
                answered(
                    started,
                    replay(&channel, audit, probes.history_case, probes.history_until)
                ),
                answered(started, list_claims(&channel, advocate)),
                answered(started, list_complaints(&channel, complaints)),
                answered(started, break_glass_uses(&channel, audit)),
            )?;
            let rebuild_s = started.elapsed().as_secs_f64();
            let rebuild_per_sec = events as f64 / rebuild_s.max(1e-9);
            rounds.push(json!({
                "raw_read_events_per_sec": round1(raw_per_sec),
                "rebuild_s": round3(rebuild_s),
                "rebuild_events_per_sec": round1(rebuild_per_sec),
                "rebuild_to_raw_read": round3(rebuild_per_sec / raw_per_sec.max(1e-9)),
                "answered_s": {
                    "list_cases": calls.0, "list_inbox": calls.1, "list_reviews_due": calls.2,
                    "replay_access_history": calls.3, "list_claims": calls.4,
                    "list_complaints": calls.5, "list_break_glass_uses": calls.6,
                },
            }));
            rebuilt = Some(server);
        }
        let server = rebuilt.ok_or("no rebuild was measured")?;
        // The round whose ratio is the median, reported whole so that its figures
        // multiply out.
        let judged = {
            let ratio = |r: &Value| r["rebuild_to_raw_read"].as_f64().unwrap_or(f64::NAN);
            let mut by_ratio: Vec<&Value> = rounds.iter().collect();
            by_ratio.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
            by_ratio[by_ratio.len() / 2].clone()
        };
        let stopping = Instant::now();
        server.stop()?;
        let stop_s = stopping.elapsed().as_secs_f64();
        let checkpoint_bytes = self.checkpoint_bytes().await?;

        // Start from the checkpoints, then the reads, the writes, and idle.
        let started = Instant::now();
        let server = Server::start(self, binary).await?;
        let channel = server.channel().await?;
        list_cases(&channel, one).await?;
        let start_s = started.elapsed().as_secs_f64();

        let reads = callers.reads(&channel, probes, self.iterations).await?;
        let counts = callers.counts(&channel, probes).await?;

        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (pid, sampling) = (server.pid(), Arc::clone(&sampling));
            tokio::spawn(async move {
                let mut peak = 0.0f64;
                while sampling.load(Ordering::Relaxed) {
                    peak = peak.max(rss_mib(pid));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            })
        };
        let writes = write_load(&channel, &callers.writers, self.write_seconds).await?;
        sampling.store(false, Ordering::Relaxed);
        let rss_writing = sampler.await?;
        let rss_idle = rss_mib(server.pid());
        server.stop()?;

        let mut report = json!({
            "bench": "scale",
            "backend": if self.event_log.is_some() { "postgres" } else { "sqlite" },
            "events": events,
            "grown_in_s": round1(grown_in.as_secs_f64()),
            "start_to_first_answer_s": round3(start_s),
            "rss_idle_mib": round1(rss_idle),
            "rss_writing_mib": round1(rss_writing),
            "writes_per_sec": round1(writes.per_sec()),
            "write_p99_ms": round3(writes.percentile_ms(0.99)),
            "rebuild_s": judged["rebuild_s"],
            "rebuild_events_per_sec": judged["rebuild_events_per_sec"],
            "raw_read_events_per_sec": judged["raw_read_events_per_sec"],
            "rebuild_to_raw_read": judged["rebuild_to_raw_read"],
            "rebuild_rounds": rounds,
            "stop_with_checkpoints_s": round3(stop_s),
            "checkpoint_bytes": checkpoint_bytes.iter().map(|(_, n)| n).sum::<i64>(),
            "checkpoint_bytes_by_projection": checkpoint_bytes.into_iter().map(|(k, n)| (k, json!(n))).collect::<serde_json::Map<_, _>>(),
            "answers": counts,
        });
        for (name, read) in READS.iter().zip(&reads) {
            report[*name] = json!({
                "p50_ms": round3(read.percentile_ms(0.5)),
                "p99_ms": round3(read.percentile_ms(0.99)),
            });
        }
        Ok(report)
    }

    /// Removes every projection's checkpoint, so that the next start rebuilds them.
    async fn remove_checkpoints(&self) -> Result<(), BoxError> {
        match &self.event_log {
            None => {
                for suffix in ["", "-wal", "-shm"] {
                    let path = self.dir.join(format!("checkpoints.sqlite{suffix}"));
                    if path.exists() {
                        std::fs::remove_file(path)?;
                    }
                }
            }
            Some(url) => {
                let client = pg(url).await?;
                for table in [
                    "caseline_projection_checkpoints",
                    "caseline_projection_postings",
                    // An earlier build's, measured as a baseline.
                    "caseline_projection_index",
                ] {
                    // Absent before the first start (42P01: no such table).
                    client
                        .batch_execute(&format!("DELETE FROM {table}"))
                        .await
                        .or_else(|e| {
                            if e.code().is_some_and(|c| c.code() == "42P01") {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })?;
                }
            }
        }
        Ok(())
    }

    /// The size of each projection's checkpoint.
    async fn checkpoint_bytes(&self) -> Result<Vec<(String, i64)>, BoxError> {
        const SIZES: &str = "SELECT name, length(state) FROM caseline_projection_checkpoints \
                             ORDER BY name";
        match &self.event_log {
            None => {
                let conn = rusqlite::Connection::open(self.dir.join("checkpoints.sqlite"))?;
                let mut select = conn.prepare(SIZES)?;
                let rows = select.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Some(url) => {
                let client = pg(url).await?;
                let rows = client.query(SIZES, &[]).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, i64::from(r.try_get::<_, i32>(1)?))))
                    .collect()
            }
        }
    }
}

/// The read measures, in the order [`Callers::reads`] measures them.
const READS: [&str; 6] = [
    "get_timeline_500",
    "replay_access_history",
    "list_cases_one_case",
    "list_cases_500_cases",
    "list_inbox",
    "list_reviews_due",
];

/// The `authorization` values of the probes' callers, with tokens of the log's key.
struct Callers {
    one: MetadataValue<Ascii>,
    caseload: MetadataValue<Ascii>,
    inbox: MetadataValue<Ascii>,
    reader: MetadataValue<Ascii>,
    audit: MetadataValue<Ascii>,
    /// Read only by the rebuild (claims, complaints).
    advocate: MetadataValue<Ascii>,
    complaints: MetadataValue<Ascii>,
    /// Each writer's, with its case.
    writers: Vec<(MetadataValue<Ascii>, Uuid)>,
}

impl Callers {
    fn of(setup: &Setup, probes: &Probes) -> Result<Self, BoxError> {
        let key = DevKey::load_or_create(&setup.dir)?;
        let bearer = |a: &Actor| bearer_of(&key, a);
        let auditor = Actor::new("bench-auditor", Role::Auditor, "bench-oversight");
        Ok(Self {
            one: bearer(&probes.one_case_worker)?,
            caseload: bearer(&probes.caseload_worker)?,
            inbox: bearer(&probes.inbox_reader)?,
            reader: bearer(&probes.timeline_reader)?,
            audit: bearer(&auditor)?,
            advocate: bearer(&Actor::new(
                "bench-advocate",
                Role::VictimAdvocate,
                "bench-advocacy",
            ))?,
            complaints: bearer(&Actor::new(
                "bench-complaints",
                Role::ComplaintsOfficer,
                "bench-oversight",
            ))?,
            writers: probes
                .writers
                .iter()
                .map(|(a, case)| Ok((bearer(a)?, *case)))
                .collect::<Result<_, BoxError>>()?,
        })
    }

    /// `n` calls of each read, one after the other (the order of [`READS`]).
    async fn reads(
        &self,
        channel: &Channel,
        probes: &Probes,
        n: usize,
    ) -> Result<Vec<Throughput>, BoxError> {
        Ok(vec![
            timed(n, || {
                get_timeline(channel, &self.reader, probes.timeline_case)
            })
            .await?,
            timed(n, || {
                replay(
                    channel,
                    &self.audit,
                    probes.history_case,
                    probes.history_until,
                )
            })
            .await?,
            timed(n, || list_cases(channel, &self.one)).await?,
            timed(n, || list_cases(channel, &self.caseload)).await?,
            timed(n, || list_inbox(channel, &self.inbox)).await?,
            timed(n, || reviews_due(channel, &self.caseload)).await?,
        ])
    }

    /// What each read answered (entries, cases, referrals, reviews).
    async fn counts(&self, channel: &Channel, probes: &Probes) -> Result<Value, BoxError> {
        Ok(json!({
            "timeline_entries": get_timeline(channel, &self.reader, probes.timeline_case).await?,
            "replay_entries": replay(channel, &self.audit, probes.history_case, probes.history_until).await?,
            "list_one_case": list_cases(channel, &self.one).await?,
            "list_500_cases": list_cases(channel, &self.caseload).await?,
            "inbox": list_inbox(channel, &self.inbox).await?,
            "reviews_due": reviews_due(channel, &self.caseload).await?,
        }))
    }
}

async fn pg(url: &str) -> Result<tokio_postgres::Client, BoxError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `caseline serve --dev` as a child process.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    async fn start(setup: &Setup, binary: &Path) -> Result<Self, BoxError> {
        let mut command = std::process::Command::new(binary);
        command
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&setup.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        match &setup.server_log {
            Some(filter) => command.env("CASELINE_LOG", filter).stderr(Stdio::inherit()),
            None => command.env("CASELINE_LOG", "error").stderr(Stdio::null()),
        };
        if let Some(url) = &setup.event_log {
            command.arg("--event-log").arg(url);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let addr = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned));
            // Keep reading, so the server never writes to a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            addr
        })
        .await?
        .ok_or("the server stopped before listening")?;
        Ok(Self { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn channel(&self) -> Result<Channel, BoxError> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?)
    }

    /// SIGTERM, and waits for the exit (the checkpoints are saved on the way).
    fn stop(mut self) -> Result<(), BoxError> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err("kill -TERM failed".into());
        }
        let exit = self.child.wait()?;
        if !exit.success() {
            return Err(format!("the server exited with {exit}").into());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set of `pid`, MiB (0 when it cannot be read).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// When `call` was answered, in seconds after `started`.
async fn answered(
    started: Instant,
    call: impl std::future::Future<Output = Result<usize, BoxError>>,
) -> Result<f64, BoxError> {
    call.await?;
    Ok(round3(started.elapsed().as_secs_f64()))
}

/// Reads the whole log: how many events, and how many per second.
async fn raw_read(log: &dyn EventLog) -> Result<(u64, f64), BoxError> {
    let started = Instant::now();
    let mut after = Position::START;
    let events = count_after(log, &mut after).await?;
    let per_sec = events as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok((events, per_sec))
}

/// Counts the events after `head`, moving it to the last.
async fn count_after(log: &dyn EventLog, head: &mut Position) -> Result<u64, BoxError> {
    let mut n = 0;
    loop {
        let page = log.read_all(*head, 512).await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) => *head = last.position,
            None => return Ok(n),
        }
        if page.len() < 512 {
            return Ok(n);
        }
    }
}

/// `n` calls of `call`, after [`WARM_UP`] unmeasured ones.
async fn timed<F, Fut>(n: usize, call: F) -> Result<Throughput, BoxError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, BoxError>>,
{
    let mut latencies = Vec::with_capacity(n);
    for i in 0..WARM_UP + n {
        let t = Instant::now();
        call().await?;
        if i >= WARM_UP {
            latencies.push(t.elapsed().as_micros() as u64);
        }
    }
    Ok(Throughput::sequential(latencies))
}

async fn get_timeline(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    case_id: Uuid,
) -> Result<usize, BoxError> {
    let request = GetTimelineRequest {
        case_id: case_id.to_string(),
        page_size: 1000,
        page_token: String::new(),
    };
    let response = CaseServiceClient::new(channel.clone())
        .get_timeline(authed(request, bearer))
        .await?;
    Ok(response.into_inner().entries.len())
}

async fn replay(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    case_id: Uuid,
    until: std::time::SystemTime,
) -> Result<usize, BoxError> {
    let request = ReplayAccessHistoryRequest {
        case_id: case_id.to_string(),
        to: Some(caseline_proto::prost_types::Timestamp::from(until)),
        ..ReplayAccessHistoryRequest::default()
    };
    let mut stream = AuditServiceClient::new(channel.clone())
        .replay_access_history(authed(request, bearer))
        .await?
        .into_inner();
    let mut n = 0;
    while stream.message().await?.is_some() {
        n += 1;
    }
    Ok(n)
}

async fn list_cases(channel: &Channel, bearer: &MetadataValue<Ascii>) -> Result<usize, BoxError> {
    let request = ListCasesRequest {
        mine: true,
        page_size: 50,
        ..ListCasesRequest::default()
    };
    let response = CaseServiceClient::new(channel.clone())
        .list_cases(authed(request, bearer))
        .await?;
    Ok(response.into_inner().cases.len())
}

async fn list_inbox(channel: &Channel, bearer: &MetadataValue<Ascii>) -> Result<usize, BoxError> {
    let request = ListInboxRequest {
        page_size: 50,
        ..ListInboxRequest::default()
    };
    let response = ReferralServiceClient::new(channel.clone())
        .list_inbox(authed(request, bearer))
        .await?;
    Ok(response.into_inner().referrals.len())
}

async fn reviews_due(channel: &Channel, bearer: &MetadataValue<Ascii>) -> Result<usize, BoxError> {
    let request = ListReviewsDueRequest {
        page_size: 50,
        ..ListReviewsDueRequest::default()
    };
    let response = SupportPlanServiceClient::new(channel.clone())
        .list_reviews_due(authed(request, bearer))
        .await?;
    Ok(response.into_inner().reviews.len())
}

/// Claims the caller may see, first page: reads the claims projection.
async fn list_claims(channel: &Channel, bearer: &MetadataValue<Ascii>) -> Result<usize, BoxError> {
    let request = ListClaimsRequest {
        page_size: 50,
        ..ListClaimsRequest::default()
    };
    let response = CompensationServiceClient::new(channel.clone())
        .list_claims(authed(request, bearer))
        .await?;
    Ok(response.into_inner().claims.len())
}

/// Complaints, first page: reads the complaints projection.
async fn list_complaints(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
) -> Result<usize, BoxError> {
    let request = ListComplaintsRequest {
        page_size: 50,
        ..ListComplaintsRequest::default()
    };
    let response = CompensationServiceClient::new(channel.clone())
        .list_complaints(authed(request, bearer))
        .await?;
    Ok(response.into_inner().complaints.len())
}

/// Break-glass uses, first page: reads the break-glass projection.
async fn break_glass_uses(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
) -> Result<usize, BoxError> {
    let request = ListBreakGlassUsesRequest {
        page_size: 50,
        ..ListBreakGlassUsesRequest::default()
    };
    let response = AuditServiceClient::new(channel.clone())
        .list_break_glass_uses(authed(request, bearer))
        .await?;
    Ok(response.into_inner().uses.len())
}

/// Each writer adds notes to its own case, back to back, for `seconds`.
async fn write_load(
    channel: &Channel,
    writers: &[(MetadataValue<Ascii>, Uuid)],
    seconds: f64,
) -> Result<Throughput, BoxError> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks = writers
        .iter()
        .take(WRITERS)
        .map(|(bearer, case_id)| {
            let (mut client, bearer, case_id) = (
                CaseServiceClient::new(channel.clone()),
                bearer.clone(),
                case_id.to_string(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let request = AddNoteRequest {
                        case_id: case_id.clone(),
                        request_id: request_id(),
                        expected_version: None,
                        compartment: NoteCompartment::Social as i32,
                        text: generate::NOTE.to_owned(),
                    };
                    let t = Instant::now();
                    client.add_note(authed(request, &bearer)).await?;
                    latencies.push(t.elapsed().as_micros() as u64);
                }
                Ok::<_, tonic::Status>(latencies)
            })
        })
        .collect();
    Throughput::gather(started, tasks).await
}

/// The measures compared, by JSON path: their growth is shown, not judged (the read
/// and write targets are judged alternated, by [`alternated`]: one size after the other,
/// they drift with the machine).
const COMPARED: [&str; 10] = [
    "get_timeline_500.p50_ms",
    "replay_access_history.p50_ms",
    "list_cases_one_case.p50_ms",
    "list_cases_500_cases.p50_ms",
    "list_inbox.p50_ms",
    "list_reviews_due.p50_ms",
    "writes_per_sec",
    "start_to_first_answer_s",
    "rss_writing_mib",
    "checkpoint_bytes",
];

fn at(report: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(report, |v, key| &v[key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Every compared measure's ratio, last size to first, with the absolute targets of the
/// last size (start, RSS, rebuild) judged.
fn growth(reports: &[Value]) -> Value {
    let (Some(first), Some(last)) = (reports.first(), reports.last()) else {
        return json!({});
    };
    let ratios: serde_json::Map<_, _> = COMPARED
        .iter()
        .map(|path| {
            (
                path.to_string(),
                json!(round3(at(last, path) / at(first, path))),
            )
        })
        .collect();
    let start = at(last, "start_to_first_answer_s");
    let rss = at(last, "rss_writing_mib").max(at(last, "rss_idle_mib"));
    let rebuild = at(last, "rebuild_to_raw_read");
    let met = start <= START_TARGET_S && rss <= RSS_TARGET_MIB && rebuild >= REBUILD_TARGET;
    json!({
        "bench": "scale-growth",
        "from_events": first["events"],
        "to_events": last["events"],
        "ratios": ratios,
        "start_to_first_answer_s": start,
        "rss_peak_mib": rss,
        "rebuild_to_raw_read": rebuild,
        "targets": verdict(met),
    })
}

fn print_size(r: &Value) {
    let pair = |path: &str| {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            at(r, &format!("{path}.p50_ms")),
            at(r, &format!("{path}.p99_ms"))
        )
    };
    println!(
        "\n{} events ({}, {} binary; grown in {} s)",
        r["events"], r["backend"], r["binary"], r["grown_in_s"]
    );
    println!(
        "  start to first answer      {} s",
        r["start_to_first_answer_s"]
    );
    println!(
        "  RSS idle / writing         {} / {} MiB",
        r["rss_idle_mib"], r["rss_writing_mib"]
    );
    println!(
        "  writes (16 writers)        {} events/s",
        r["writes_per_sec"]
    );
    println!("  GetTimeline (500 events)   {}", pair("get_timeline_500"));
    println!(
        "  ReplayAccessHistory        {}",
        pair("replay_access_history")
    );
    println!(
        "  ListCases, on one case     {}",
        pair("list_cases_one_case")
    );
    println!(
        "  ListCases, on 500 cases    {}",
        pair("list_cases_500_cases")
    );
    println!("  ListInbox                  {}", pair("list_inbox"));
    println!("  ListReviewsDue             {}", pair("list_reviews_due"));
    println!(
        "  rebuild (median round of {REBUILD_ROUNDS}) {} s, {} events/s = {} x a raw read ({} events/s)",
        r["rebuild_s"],
        r["rebuild_events_per_sec"],
        r["rebuild_to_raw_read"],
        r["raw_read_events_per_sec"]
    );
    if let Some(rounds) = r["rebuild_rounds"].as_array() {
        for round in rounds {
            println!(
                "    a round: raw read {} events/s, rebuild {} s = {} x; answered at (s) {}",
                round["raw_read_events_per_sec"],
                round["rebuild_s"],
                round["rebuild_to_raw_read"],
                round["answered_s"]
            );
        }
    }
    println!(
        "  stop with checkpoints      {} s, {} bytes",
        r["stop_with_checkpoints_s"], r["checkpoint_bytes"]
    );
    println!("  answers                    {}", r["answers"]);
}

fn print_growth(g: &Value) {
    println!(
        "\ngrowth from {} to {} events ({} binary; reads and writes are judged by the alternated measure, with two sizes or more):",
        g["from_events"], g["to_events"], g["binary"]
    );
    if let Some(ratios) = g["ratios"].as_object() {
        for (path, ratio) in ratios {
            println!("  {path:<32} {ratio} x");
        }
    }
    println!(
        "  start {} s, RSS peak {} MiB, rebuild {} x raw read: targets {}",
        g["start_to_first_answer_s"], g["rss_peak_mib"], g["rebuild_to_raw_read"], g["targets"]
    );
}
