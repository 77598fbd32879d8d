//! `bench commands`: whole commands through gRPC on the all-in-one, against the same
//! number of calls in flight to a bare tonic server.
//!
//! Each caller owns one case, opened beforehand through the API by a social worker, and
//! adds social-work notes to it back to back, each with its own `request_id`: every
//! call passes token validation, field validation, the policy, loads and decides on the
//! case, seals the note with the case's key and appends the event (fsynced) before the
//! answer. The baseline is `grpc.health.v1.Health/Check` on a tonic server with health
//! only: no trust layer, no log, no vault, same process, same machine, same run.

use std::time::Duration;

use caseline_auth::Role;
use caseline_proto::tonic;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::{
    AddNoteRequest, AgeBand, CaseSource, ConcernCategory, Gender, NoteCompartment, OpenCaseRequest,
    RiskLevel,
};
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::{
    BoxError, DevServer, ScratchDir, authed, callers, request_id, round1, round3, verdict,
};

/// The throughput of commands, as a share of the bare server's health checks.
const TARGET_RATIO: f64 = 0.35;
/// The slowest 1 % of commands, at most.
const TARGET_P99_MS: f64 = 20.0;

/// A social worker's note of realistic length (about 250 characters).
const NOTE: &str = "Home visit with the child and her mother. The child is calmer, sleeping \
    better and back at school two days a week. Safety plan reviewed: she knows whom to \
    call if the person contacts her again. Next visit in one week; school counsellor \
    informed with consent.";

#[derive(Debug, clap::Args)]
pub struct CommandsArgs {
    /// Calls in flight at once (one caller per case), over one HTTP/2 connection.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Seconds each side (baseline, commands) runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Cases the callers share (caller i writes to case i mod N), without
    /// `expected_version`, so commands contend for the same streams; default one case
    /// per caller. ABORTED answers are counted rather than ending the run: there
    /// should be none.
    #[arg(long)]
    cases: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub(super) async fn commands(args: CommandsArgs) -> Result<(), BoxError> {
    if args.in_flight == 0 || !args.seconds.is_finite() || args.seconds <= 0.0 {
        return Err("--in-flight and --seconds must be positive".into());
    }
    let case_count = args.cases.unwrap_or(args.in_flight);
    if case_count == 0 || case_count > args.in_flight {
        return Err("--cases must be between 1 and --in-flight".into());
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let dir = ScratchDir::new("bench")?;
    let server = DevServer::start(dir.path()).await?;
    let bearer = server.bearer(
        "bench-social-worker",
        Role::SocialWorker,
        "bench-social-services",
        Some("social_services"),
    )?;
    let client = CaseServiceClient::new(server.channel().await?);

    // The cases, opened through the API.
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..case_count {
        let mut client = client.clone();
        let request = authed(
            OpenCaseRequest {
                request_id: request_id(),
                pseudonym: format!("Bench child {i}"),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Undisclosed as i32,
                language: "en".into(),
                region: "Bench County".into(),
                source: CaseSource::SocialServices as i32,
                concerns: vec![ConcernCategory::Grooming as i32],
                initial_risk: RiskLevel::Medium as i32,
                ..OpenCaseRequest::default()
            },
            &bearer,
        );
        opening.spawn(async move {
            let case_id = client.open_case(request).await?.into_inner().case_id;
            Ok::<_, tonic::Status>((i, case_id))
        });
    }
    let mut cases = vec![String::new(); case_count];
    while let Some(opened) = opening.join_next().await {
        let (i, case_id) = opened??;
        cases[i] = case_id;
    }

    let (bare, bare_addr, bare_stop) = bare_server().await?;
    let health = HealthClient::new(
        Channel::from_shared(format!("http://{bare_addr}"))?
            .connect()
            .await?,
    );
    let baseline = callers(args.in_flight, duration, move |_| {
        let mut client = health.clone();
        async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(drop)
        }
    })
    .await?;
    let _ = bare_stop.send(());
    bare.await??;

    let cases = std::sync::Arc::new(cases);
    let aborted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rss_before = rss_mib();
    let counted = std::sync::Arc::clone(&aborted);
    let measured = callers(args.in_flight, duration, move |i| {
        let mut client = client.clone();
        let request = authed(
            AddNoteRequest {
                case_id: cases[i % cases.len()].clone(),
                request_id: request_id(),
                compartment: NoteCompartment::Social as i32,
                text: NOTE.into(),
                ..AddNoteRequest::default()
            },
            &bearer,
        );
        let aborted = std::sync::Arc::clone(&counted);
        async move {
            match client.add_note(request).await {
                Ok(_) => Ok(()),
                Err(s) if s.code() == tonic::Code::Aborted => {
                    aborted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
                Err(s) => Err(s),
            }
        }
    })
    .await?;
    let rss_after = rss_mib();
    server.stop().await?;
    let aborted = aborted.load(std::sync::atomic::Ordering::Relaxed);

    let ratio = measured.per_sec() / baseline.per_sec();
    let p99 = measured.percentile_ms(0.99);
    println!(
        "baseline  {:>10.0} calls/s  (Health/Check on a bare tonic server, no trust layer; p50 {:.2} ms, p99 {:.2} ms)",
        baseline.per_sec(),
        baseline.percentile_ms(0.50),
        baseline.percentile_ms(0.99),
    );
    println!(
        "commands  {:>10.0} calls/s  (AddNote: token, validation, policy, decide, sealed append; {} in flight; p50 {:.2} ms, p99 {:.2} ms)",
        measured.per_sec(),
        args.in_flight,
        measured.percentile_ms(0.50),
        p99,
    );
    println!(
        "ratio     {ratio:>10.2}            (target >= {TARGET_RATIO:.2}: {}; p99 target <= {TARGET_P99_MS:.0} ms: {})",
        verdict(ratio >= TARGET_RATIO),
        verdict(p99 <= TARGET_P99_MS),
    );
    println!(
        "cases     {case_count:>10}            ({} ABORTED of {} commands; resident memory of this process {} MiB before, {} MiB after)",
        aborted,
        measured.events + aborted,
        rss_before.map_or("?".into(), |m| format!("{m:.1}")),
        rss_after.map_or("?".into(), |m| format!("{m:.1}")),
    );
    if args.json {
        let report = serde_json::json!({
            "bench": "commands",
            "command": "caseline.v1.CaseService/AddNote",
            "in_flight": args.in_flight,
            "seconds": args.seconds,
            "calls": measured.events,
            "calls_per_sec": round1(measured.per_sec()),
            "baseline": "grpc.health.v1.Health/Check on a bare tonic server",
            "baseline_calls_per_sec": round1(baseline.per_sec()),
            "baseline_p50_ms": round3(baseline.percentile_ms(0.50)),
            "baseline_p99_ms": round3(baseline.percentile_ms(0.99)),
            "ratio": round3(ratio),
            "target_ratio": TARGET_RATIO,
            "p50_ms": round3(measured.percentile_ms(0.50)),
            "p99_ms": round3(p99),
            "target_p99_ms": TARGET_P99_MS,
            "cases": case_count,
            "aborted": aborted,
            "rss_mib_before": rss_before,
            "rss_mib_after": rss_after,
        });
        println!("{report}");
    }
    Ok(())
}

type Served = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// A tonic server with health only (reporting SERVING for the server as a whole) on a
/// free port of 127.0.0.1: the floor of a gRPC round trip on this machine.
async fn bare_server() -> Result<
    (
        Served,
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
    ),
    BoxError,
> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _reporter = reporter;
        Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await
    });
    Ok((task, addr, stop))
}

/// This process's resident memory in MiB, where `/proc` tells it.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
