//! `bench timeline`: one team member reading a whole 500-event case, call after call.
//!
//! The case is built through the API: a police investigator opens it and adds a social
//! worker, a prosecutor and a helpline counsellor to the team, then the four add notes
//! in their own compartments (investigation, social, legal, helpline), four at a time,
//! until the case holds the number of events asked for. The investigator then reads the
//! whole timeline in one page, sequentially: token, policy, the events read, each
//! entry's visibility decided and its sealed fields opened where the investigator may
//! see them in full, and the access record appended (fsynced) before the answer.
//!
//! The baseline is `EventLog::read_case_events` of the same events in the same process
//! (no gRPC, no policy, no decryption, no access record). A `Health/Check` round trip on
//! the same connection is measured too, as the floor of any gRPC call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use caseline_auth::Role;
use caseline_eventlog::{Position, Uuid};
use caseline_proto::tonic::{self, Code};
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::{
    AddNoteRequest, AddTeamMemberRequest, AgeBand, CaseSource, ConcernCategory, Gender,
    GetTimelineRequest, NoteCompartment, OpenCaseRequest, RiskLevel,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::{
    BoxError, DevServer, ScratchDir, Throughput, authed, request_id, round1, round3, verdict,
};

const TARGET_P50_MS: f64 = 3.0;
const TARGET_P99_MS: f64 = 10.0;
/// One page holds the whole case.
const PAGE_SIZE: u32 = 1000;
/// Calls of each kind made before measuring (connections, caches).
const WARM_UP: usize = 5;

#[derive(Debug, clap::Args)]
pub struct TimelineArgs {
    /// Events in the case (at least 10, at most 1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(10..=1000))]
    events: u32,
    /// Timeline reads measured (and as many baseline reads and health checks).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// A member of the bench case's team.
struct Member {
    subject: &'static str,
    agency: &'static str,
    role: Role,
    compartment: NoteCompartment,
    note: &'static str,
}

const TEAM: [Member; 4] = [
    Member {
        subject: "bench-investigator",
        agency: "bench-police",
        role: Role::PoliceInvestigator,
        compartment: NoteCompartment::Investigation,
        note: "Checked the platform's answer to the preservation request: login history \
               for the account covers the period the child described. Requested subscriber \
               data through the liaison officer.",
    },
    Member {
        subject: "bench-social-worker",
        agency: "bench-social-services",
        role: Role::SocialWorker,
        compartment: NoteCompartment::Social,
        note: "Phone call with the child's mother: the child is attending school again and \
               has an appointment with the therapist on Thursday. No new contact from the \
               account reported.",
    },
    Member {
        subject: "bench-prosecutor",
        agency: "bench-prosecution",
        role: Role::Prosecutor,
        compartment: NoteCompartment::Legal,
        note: "Reviewed the evidence summary with the investigator. A recorded interview \
               will be arranged so that the child need not testify in person; \
               intermediary requested.",
    },
    Member {
        subject: "bench-counsellor",
        agency: "bench-helpline",
        role: Role::HelplineCounsellor,
        compartment: NoteCompartment::Helpline,
        note: "The child called back on the chat to ask what happens next. Explained the \
               steps in plain words and reminded her that none of this is her fault.",
    },
];

pub(super) async fn timeline(args: TimelineArgs) -> Result<(), BoxError> {
    let events = args.events as usize;
    let iterations = args.iterations as usize;
    let dir = ScratchDir::new("bench")?;
    let server = DevServer::start(dir.path()).await?;
    let channel = server.channel().await?;
    let bearers = TEAM
        .iter()
        .map(|m| server.bearer(m.subject, m.role, m.agency, None))
        .collect::<Result<Vec<_>, _>>()?;

    let seeding = Instant::now();
    let case_id = seed(&channel, &bearers, events).await?;
    let seeded_in = seeding.elapsed();
    let log = Arc::clone(server.log());
    let case_uuid = Uuid::parse_str(&case_id)?;
    let stored = log
        .read_case_events(case_uuid, Position::START, PAGE_SIZE as usize)
        .await?
        .len();
    if stored != events {
        return Err(format!("the case holds {stored} events, not {events}").into());
    }

    // The baseline: the same events, straight from the log.
    let mut raw = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let t = Instant::now();
        let read = log
            .read_case_events(case_uuid, Position::START, PAGE_SIZE as usize)
            .await?;
        let took = t.elapsed();
        if read.len() != events {
            return Err("the raw read returned a different number of events".into());
        }
        if i >= WARM_UP {
            raw.push(took.as_micros() as u64);
        }
    }
    let baseline = Throughput::sequential(raw);

    let mut health = HealthClient::new(channel.clone());
    let mut checks = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let t = Instant::now();
        health
            .check(HealthCheckRequest {
                service: "caseline.v1.CaseService".into(),
            })
            .await?;
        if i >= WARM_UP {
            checks.push(t.elapsed().as_micros() as u64);
        }
    }
    let health = Throughput::sequential(checks);

    // The investigator reads the whole case, one call after another.
    let mut client = CaseServiceClient::new(channel);
    let reader = &bearers[0];
    let mut reads = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let request = authed(
            GetTimelineRequest {
                case_id: case_id.clone(),
                page_size: PAGE_SIZE,
                page_token: String::new(),
            },
            reader,
        );
        let t = Instant::now();
        let page = client.get_timeline(request).await?.into_inner();
        let took = t.elapsed();
        if page.entries.len() != events || !page.next_page_token.is_empty() {
            return Err(format!(
                "the timeline showed {} entries of {events}",
                page.entries.len()
            )
            .into());
        }
        if i >= WARM_UP {
            reads.push(took.as_micros() as u64);
        }
    }
    let measured = Throughput::sequential(reads);
    server.stop().await?;

    let (p50, p99) = (measured.percentile_ms(0.50), measured.percentile_ms(0.99));
    let ratio = measured.per_sec() / baseline.per_sec();
    println!(
        "case      {events} events, seeded through the API in {:.2} s (notes by 4 roles in 4 compartments)",
        seeded_in.as_secs_f64()
    );
    println!(
        "baseline  {:>10.0} reads/s  (EventLog::read_case_events of the same {events} events, in-process, no gRPC; p50 {:.2} ms, p99 {:.2} ms)",
        baseline.per_sec(),
        baseline.percentile_ms(0.50),
        baseline.percentile_ms(0.99),
    );
    println!(
        "health    {:>10.0} calls/s  (Health/Check round trip on the same connection; p50 {:.2} ms, p99 {:.2} ms)",
        health.per_sec(),
        health.percentile_ms(0.50),
        health.percentile_ms(0.99),
    );
    println!(
        "timeline  {:>10.0} calls/s  (GetTimeline of all {events} entries by a team member, one caller, access record included; p50 {p50:.2} ms, p99 {p99:.2} ms)",
        measured.per_sec(),
    );
    println!(
        "ratio     {ratio:>10.2}            (p50 target <= {TARGET_P50_MS:.0} ms: {}; p99 target <= {TARGET_P99_MS:.0} ms: {})",
        verdict(p50 <= TARGET_P50_MS),
        verdict(p99 <= TARGET_P99_MS),
    );
    if args.json {
        let report = serde_json::json!({
            "bench": "timeline",
            "events": events,
            "entries": events,
            "page_size": PAGE_SIZE,
            "iterations": iterations,
            "seed_seconds": round3(seeded_in.as_secs_f64()),
            "calls_per_sec": round1(measured.per_sec()),
            "baseline": "EventLog::read_case_events of the same events, in-process, no gRPC",
            "baseline_calls_per_sec": round1(baseline.per_sec()),
            "baseline_p50_ms": round3(baseline.percentile_ms(0.50)),
            "baseline_p99_ms": round3(baseline.percentile_ms(0.99)),
            "health_check_p50_ms": round3(health.percentile_ms(0.50)),
            "health_check_p99_ms": round3(health.percentile_ms(0.99)),
            "ratio": round3(ratio),
            "p50_ms": round3(p50),
            "p99_ms": round3(p99),
            "target_p50_ms": TARGET_P50_MS,
            "target_p99_ms": TARGET_P99_MS,
        });
        println!("{report}");
    }
    Ok(())
}

/// Opens the bench case and fills it, through the API, to exactly `events` events.
async fn seed(
    channel: &Channel,
    bearers: &[MetadataValue<Ascii>],
    events: usize,
) -> Result<String, BoxError> {
    let mut client = CaseServiceClient::new(channel.clone());
    let opened = client
        .open_case(authed(
            OpenCaseRequest {
                request_id: request_id(),
                pseudonym: "Bench child T-1".into(),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Girl as i32,
                language: "en".into(),
                region: "Bench County".into(),
                source: CaseSource::Police as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                initial_risk: RiskLevel::High as i32,
                ..OpenCaseRequest::default()
            },
            &bearers[0],
        ))
        .await?
        .into_inner();
    let case_id = opened.case_id;
    let mut version = opened.version;
    for member in &TEAM[1..] {
        version = client
            .add_team_member(authed(
                AddTeamMemberRequest {
                    case_id: case_id.clone(),
                    request_id: request_id(),
                    subject: member.subject.into(),
                    agency: member.agency.into(),
                    role: member.role.as_str().into(),
                    ..AddTeamMemberRequest::default()
                },
                &bearers[0],
            ))
            .await?
            .into_inner()
            .version;
    }
    // Versions count from 0.
    let so_far = version as usize + 1;
    let Some(notes) = events.checked_sub(so_far) else {
        return Err(format!("--events must be at least {so_far}").into());
    };

    // One writer per member; each note retried (same request id) when another writer's
    // note landed first on the case.
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for (w, bearer) in bearers.iter().enumerate() {
        let (mut client, bearer, next, case_id) = (
            client.clone(),
            bearer.clone(),
            Arc::clone(&next),
            case_id.clone(),
        );
        writers.spawn(async move {
            let member = &TEAM[w];
            while next.fetch_add(1, Ordering::Relaxed) < notes {
                let note = AddNoteRequest {
                    case_id: case_id.clone(),
                    request_id: request_id(),
                    compartment: member.compartment as i32,
                    text: member.note.into(),
                    ..AddNoteRequest::default()
                };
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match client.add_note(authed(note.clone(), &bearer)).await {
                        Ok(_) => break,
                        Err(s) if s.code() == Code::Aborted && attempts < 50 => {
                            tokio::time::sleep(Duration::from_millis(attempts)).await;
                        }
                        Err(s) => return Err(s),
                    }
                }
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    Ok(case_id)
}
