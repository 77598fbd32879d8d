//! Stopping `caseline serve` with calls open. SIGTERM gives the calls in flight until the
//! drain limit (`--drain-seconds` / `CASELINE_DRAIN_SECONDS`), then cuts off what is still
//! open — a `Health/Watch`, a `ReplayAccessHistory` whose client stopped reading — saves
//! the projections' checkpoints and exits 0. A short call in flight at SIGTERM still
//! completes, and then the server stops without waiting for the limit.
//!
//! The binary runs as a process, on the embedded log in a temporary directory. Each test
//! prints how long its stop took.
#![allow(clippy::unwrap_used)]

use std::process::ExitStatus;
use std::time::Duration;

use caseline_auth::{DevKey, Role};
use caseline_e2e::authed;
use caseline_e2e::processes::Process;
use caseline_proto::prost::Message;
use caseline_proto::tonic::transport::Endpoint;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::verify_integrity_request::Scope;
use caseline_proto::v1::{
    ListBreakGlassUsesRequest, ReplayAccessHistoryRequest, VerifyIntegrityRequest,
    VerifyIntegrityResponse,
};
use tokio::time::Instant;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The drain limit of the tests whose calls never end by themselves.
const DRAIN_SECONDS: u64 = 2;
/// What a stop may take after the drain limit: cutting the connections off, saving the
/// checkpoints, exiting. Generous, for a busy machine; it takes milliseconds.
const AFTER_DRAIN: Duration = Duration::from_secs(8);
/// Access records in the log before the replay: far more than the client's HTTP/2
/// flow-control window (64 KiB, the protocol's default) and the server's buffers hold.
const RECORDS: usize = 2_000;

/// How the drain limit is given.
enum Limit {
    Flag(u64),
    Variable(u64),
}

/// A `caseline serve --dev` process on a free port, and its dev key.
struct Server {
    process: Process,
    key: DevKey,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limit: Limit) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut args: Vec<String> = ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"]
            .map(str::to_owned)
            .to_vec();
        args.push(data.to_str().unwrap().to_owned());
        let mut env = vec![("CASELINE_LOG", "info".to_owned())];
        match limit {
            Limit::Flag(seconds) => {
                args.extend(["--drain-seconds".to_owned(), seconds.to_string()]);
            }
            Limit::Variable(seconds) => env.push(("CASELINE_DRAIN_SECONDS", seconds.to_string())),
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let process = Process::start("caseline", &args, &env, dir.path()).await;
        // The server made its dev key at start.
        let key = DevKey::load_or_create(&data).unwrap();
        Self {
            process,
            key,
            _dir: dir,
        }
    }

    fn auditor(&self) -> String {
        self.key
            .issue(
                "auditor-1",
                &[Role::Auditor],
                "oversight-board",
                None,
                Duration::from_secs(3600),
            )
            .unwrap()
    }

    /// Sends SIGTERM and waits for the exit: its status, how long it took, and the log.
    async fn stop(&mut self) -> (ExitStatus, Duration, String) {
        let sent = Instant::now();
        self.process.terminate().await;
        let status = self.process.wait_stopped().await;
        let took = sent.elapsed();
        (status, took, self.process.stopped_log().to_owned())
    }
}

/// The first line of `log` holding every one of `parts`, and its index.
fn line_with(log: &str, parts: &[&str]) -> Option<(usize, String)> {
    log.lines()
        .enumerate()
        .find(|(_, line)| parts.iter().all(|p| line.contains(p)))
        .map(|(i, line)| (i, line.to_owned()))
}

/// Exit 0 at the drain limit, not before (the call was given its time) and not much
/// after; one call cut off; then the checkpoints saved.
fn assert_cut_off_at_the_limit(status: ExitStatus, took: Duration, log: &str) {
    let limit = Duration::from_secs(DRAIN_SECONDS);
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(
        took >= limit,
        "stopped {took:?} after SIGTERM, before the drain limit {limit:?}; log:\n{log}"
    );
    assert!(
        took <= limit + AFTER_DRAIN,
        "stopped {took:?} after SIGTERM, drain limit {limit:?}; log:\n{log}"
    );
    let (cut_at, _) = log
        .lines()
        .enumerate()
        .find(|(_, line)| {
            line.contains("drain limit reached")
                && line.split_whitespace().any(|word| word == "calls=1")
        })
        .unwrap_or_else(|| panic!("no line says one call was cut off; log:\n{log}"));
    // The cut itself ended the connection: the server did not fall back to leaving it.
    assert!(
        line_with(log, &["still open after being cut off"]).is_none(),
        "the cut did not end the connection; log:\n{log}"
    );
    let (saved_at, _) = line_with(log, &["checkpoints saved"])
        .unwrap_or_else(|| panic!("no line says the checkpoints were saved; log:\n{log}"));
    assert!(
        saved_at > cut_at,
        "checkpoints saved after the cut; log:\n{log}"
    );
    assert!(
        line_with(log, &[": stopped"]).is_some_and(|(at, _)| at > saved_at),
        "the log ends with the stop; log:\n{log}"
    );
}

#[tokio::test]
async fn a_health_watch_is_cut_off_at_the_drain_limit() {
    let mut server = Server::start(Limit::Flag(DRAIN_SECONDS)).await;
    let mut health = HealthClient::new(server.process.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "caseline.v1.CaseService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    let (status, took, log) = server.stop().await;
    eprintln!("Health/Watch open: stopped {took:?} after SIGTERM (drain limit {DRAIN_SECONDS} s)");
    assert_cut_off_at_the_limit(status, took, &log);

    // The watcher was told the service stopped serving, then its stream was cut.
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    let end = watch.message().await;
    assert!(end.is_err(), "the watch was cut off, not ended: {end:?}");
}

#[tokio::test]
async fn a_replay_whose_client_stopped_reading_is_cut_off_at_the_drain_limit() {
    let mut server = Server::start(Limit::Variable(DRAIN_SECONDS)).await;
    let auditor = server.auditor();
    let channel = server.process.channel().await;

    // Each audited read appends an access record.
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..32 {
        let mut client = AuditServiceClient::new(channel.clone());
        let token = auditor.clone();
        callers.spawn(async move {
            for _ in (caller..RECORDS).step_by(32) {
                client
                    .list_break_glass_uses(authed(ListBreakGlassUsesRequest::default(), &token))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(caller) = callers.join_next().await {
        caller.unwrap();
    }

    // A client with HTTP/2's default windows, which reads one entry and then nothing:
    // the server fills the window and waits for it to open.
    let slow = Endpoint::from_shared(format!("http://{}", server.process.addr()))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut replay = AuditServiceClient::new(slow)
        .replay_access_history(authed(ReplayAccessHistoryRequest::default(), &auditor))
        .await
        .unwrap()
        .into_inner();
    assert!(
        replay.message().await.unwrap().is_some(),
        "the replay starts"
    );

    let (status, took, log) = server.stop().await;
    eprintln!(
        "ReplayAccessHistory unread: stopped {took:?} after SIGTERM (drain limit {DRAIN_SECONDS} s)"
    );
    assert_cut_off_at_the_limit(status, took, &log);

    // What the client had received is there to read; then the stream fails, short of the
    // whole history.
    let mut read = 1;
    let end = loop {
        match replay.message().await {
            Ok(Some(_)) => read += 1,
            other => break other,
        }
    };
    assert!(end.is_err(), "the replay was cut off, not ended: {end:?}");
    assert!(read < RECORDS, "{read} entries of at least {RECORDS}");
}

#[tokio::test]
async fn a_short_call_in_flight_at_sigterm_completes_and_the_stop_does_not_wait_for_the_limit() {
    const LIMIT: u64 = 20;
    let mut server = Server::start(Limit::Flag(LIMIT)).await;
    let auditor = server.auditor();
    let addr = server.process.addr();

    // A unary call whose request message is held back: the call is open on the server
    // (its headers read) until the message is sent. HTTP/2 directly, to send them apart.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = connection.ping_pong().unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!(
        "http://{addr}/caseline.v1.AuditService/VerifyIntegrity"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {auditor}"))
    .body(())
    .unwrap();
    let (response, mut request_body) = client.send_request(request, false).unwrap();
    // The server answers a PING after reading every frame before it: the call's headers.
    ping_pong.ping(h2::Ping::opaque()).await.unwrap();

    let sent = Instant::now();
    server.process.terminate().await;
    server
        .process
        .wait_for_line("that it drains", Duration::from_secs(30), |l| {
            l.contains("draining")
        })
        .await;

    let message = VerifyIntegrityRequest {
        scope: Some(Scope::Everything(true)),
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    request_body.send_data(frame.into(), true).unwrap();

    let response = response.await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap().expect("the call's trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.to_str().unwrap()),
        Some("0"),
        "{trailers:?}"
    );
    assert!(
        bytes.len() >= 5 && bytes[0] == 0,
        "one uncompressed message"
    );
    let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let reply = VerifyIntegrityResponse::decode(&bytes[5..5 + length]).unwrap();
    assert!(reply.intact, "{reply:?}");

    // Nothing is open any more: the server stops now, not at the limit.
    let status = server.process.wait_stopped().await;
    let took = sent.elapsed();
    let log = server.process.stopped_log().to_owned();
    eprintln!("one short call in flight: stopped {took:?} after SIGTERM (drain limit {LIMIT} s)");
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(
        took < Duration::from_secs(LIMIT / 2),
        "stopped {took:?} after SIGTERM, as if it waited for the limit; log:\n{log}"
    );
    assert!(
        line_with(&log, &["drained: every call finished"]).is_some(),
        "{log}"
    );
    assert!(line_with(&log, &["drain limit reached"]).is_none(), "{log}");
    assert!(line_with(&log, &["checkpoints saved"]).is_some(), "{log}");
    let _ = connection.await;
}
