//! Loads as the product lives them: many people writing to the same few cases at once,
//! from one process and from two, and a long write load on a server process whose
//! memory is watched.
//!
//! Commands here carry no `expected_version`: the API promises that such a command
//! applies to the version the server read, so losing a race to another writer must
//! never reach the caller as ABORTED.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use caseline_auth::Role;
use caseline_e2e::processes::{CASES, Deployment, Process};
use caseline_e2e::requests::opening;
use caseline_e2e::{TestServer, authed, rid};
use caseline_eventlog::{EventLog, StreamName, Uuid};
use caseline_proto::tonic::transport::Channel;
use caseline_proto::tonic::{Code, Status};
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::{AddNoteRequest, NoteCompartment, RiskLevel};

const SOCIAL: &str = "county-social";
const NOTE: &str = "Home visit with the child and her mother; safety plan reviewed, next visit \
    in one week, school counsellor informed with consent.";

/// How the notes of one load were answered.
#[derive(Debug, Default)]
struct Answers {
    ok: usize,
    aborted: usize,
    /// Any other refusal, kept whole for the failure message (a few at most).
    other: Vec<Status>,
}

impl Answers {
    /// Every one of `notes` applied: none ABORTED, none refused.
    fn assert_all_applied(&self, notes: usize) {
        assert_eq!(self.aborted, 0, "notes answered ABORTED: {self:?}");
        assert!(self.other.is_empty(), "notes refused: {:?}", self.other);
        assert_eq!(self.ok, notes);
    }

    fn add(&mut self, other: Answers) {
        self.ok += other.ok;
        self.aborted += other.aborted;
        self.other.extend(other.other.into_iter().take(5));
    }
}

/// `writers` concurrent writers, writer `w` adding `per_writer` notes, one after the
/// other, to `cases[w % cases.len()]` through `channels[w % channels.len()]`.
async fn add_notes(
    channels: &[Channel],
    token: &str,
    cases: &[String],
    writers: usize,
    per_writer: usize,
) -> Answers {
    let cases = Arc::new(cases.to_vec());
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let mut client = CaseServiceClient::new(channels[w % channels.len()].clone());
            let (cases, token) = (Arc::clone(&cases), token.to_owned());
            tokio::spawn(async move {
                let mut answers = Answers::default();
                for _ in 0..per_writer {
                    let request = AddNoteRequest {
                        case_id: cases[w % cases.len()].clone(),
                        request_id: rid(),
                        compartment: NoteCompartment::Social as i32,
                        text: NOTE.into(),
                        ..AddNoteRequest::default()
                    };
                    match client.add_note(authed(request, &token)).await {
                        Ok(_) => answers.ok += 1,
                        Err(s) if s.code() == Code::Aborted => answers.aborted += 1,
                        Err(s) => answers.other.push(s),
                    }
                }
                answers
            })
        })
        .collect();
    let mut all = Answers::default();
    for task in tasks {
        all.add(task.await.unwrap());
    }
    all
}

async fn open_cases(channel: Channel, token: &str, n: usize) -> Vec<String> {
    let mut client = CaseServiceClient::new(channel);
    let mut cases = Vec::new();
    for i in 0..n {
        let request = opening(&format!("Child L{i}"), "", RiskLevel::Medium);
        cases.push(
            client
                .open_case(authed(request, token))
                .await
                .unwrap()
                .into_inner()
                .case_id,
        );
    }
    cases
}

/// The number of notes each case's own stream holds.
async fn notes_per_case(log: &dyn EventLog, cases: &[String]) -> Vec<usize> {
    let mut counts = Vec::new();
    for case in cases {
        let stream = StreamName::for_id("case", Uuid::parse_str(case).unwrap()).unwrap();
        let mut notes = 0;
        let mut from = 0;
        loop {
            let page = log
                .read_stream(
                    &stream,
                    caseline_eventlog::Direction::Forwards,
                    Some(from),
                    1000,
                )
                .await
                .unwrap();
            notes += page
                .iter()
                .filter(|e| e.event_type == caseline_proto::event_types::NOTE_ADDED)
                .count();
            match page.last() {
                Some(last) if page.len() == 1000 => from = last.version + 1,
                _ => break,
            }
        }
        counts.push(notes);
    }
    counts
}

/// 64 writers on 4 cases of one server: every note applied, none ABORTED, and no turn
/// left behind once the load is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_on_shared_cases_are_never_aborted() {
    const WRITERS: usize = 64;
    const PER_WRITER: usize = 40;
    let server = TestServer::start().await;
    let token = server.token("sw-load", Role::SocialWorker, SOCIAL);
    let channel = server.channel().await;
    let cases = open_cases(channel.clone(), &token, 4).await;

    let answers = add_notes(&[channel], &token, &cases, WRITERS, PER_WRITER).await;
    answers.assert_all_applied(WRITERS * PER_WRITER);
    let per_case = WRITERS / cases.len() * PER_WRITER;
    assert_eq!(
        notes_per_case(&*server.log, &cases).await,
        vec![per_case; cases.len()],
        "every note stored once"
    );
    assert_eq!(
        caseline_aggregate::turns::streams_in_turn(),
        0,
        "every turn is handed back"
    );
    server.stop().await;
}

/// Two CaseService processes over one PostgreSQL log, 48 writers on 2 cases through
/// both: the processes race on every note, and each race is decided again, never
/// answered ABORTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_raced_by_two_processes_are_never_aborted() {
    const WRITERS: usize = 48;
    const PER_WRITER: usize = 15;
    let deployment = Deployment::create().await;
    let first = deployment.start(CASES.0).await;
    let second = deployment.start(CASES.0).await;
    let worker = deployment
        .identity
        .user("sw-race", Role::SocialWorker, SOCIAL);
    let channels = [first.channel().await, second.channel().await];
    let cases = open_cases(channels[0].clone(), &worker.token, 2).await;

    let answers = add_notes(&channels, &worker.token, &cases, WRITERS, PER_WRITER).await;
    answers.assert_all_applied(WRITERS * PER_WRITER);
    let log = caseline_eventlog::open(&deployment.schema.url)
        .await
        .unwrap();
    let per_case = WRITERS / cases.len() * PER_WRITER;
    assert_eq!(
        notes_per_case(&*log, &cases).await,
        vec![per_case; cases.len()],
        "every note stored once"
    );
    log.close().await;
}

/// The server's resident memory, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A server process takes a long write load on a few cases (every note a new request
/// the cases must remember for retries, every command a few reads of the log): once
/// warm, its memory stops growing. Before the caches and the log's readers were
/// bounded, rounds of 6 000 notes took it from 48 to 54 MiB and on; after, it stays
/// within half a MiB of where the second round left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stops_growing_under_a_long_write_load() {
    const WRITERS: usize = 64;
    const ROUND: usize = 5_000;
    const ROUNDS: usize = 5;
    /// What later rounds may add in all: the allocator's and SQLite's own slack.
    const SLACK_KIB: u64 = 2 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let server = Process::start(
        "caseline",
        &[
            "serve".into(),
            "--dev".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data,
        ],
        &[("CASELINE_LOG", "warn")],
        dir.path(),
    )
    .await;
    let key = caseline_auth::DevKey::load_or_create(dir.path()).unwrap();
    let token = key
        .issue(
            "sw-long",
            &[Role::SocialWorker],
            SOCIAL,
            None,
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    let channel = server.channel().await;
    let cases = open_cases(channel.clone(), &token, 4).await;

    let mut rss = Vec::new();
    for _ in 0..ROUNDS {
        let answers = add_notes(
            std::slice::from_ref(&channel),
            &token,
            &cases,
            WRITERS,
            ROUND / WRITERS,
        )
        .await;
        assert_eq!(answers.ok, ROUND / WRITERS * WRITERS, "{answers:?}");
        rss.push(rss_kib(server.pid()));
    }
    eprintln!("resident memory after each round of {ROUND} notes (KiB): {rss:?}");
    // The first rounds warm the caches, SQLite's page cache and the allocator's pools.
    let warm = rss[1];
    let last = rss[ROUNDS - 1];
    assert!(
        last <= warm + SLACK_KIB,
        "memory kept growing after warming up: {rss:?} KiB (allowed {SLACK_KIB} KiB over {warm})"
    );
}
