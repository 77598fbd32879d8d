//! `bench access`: the cost of the trust layer on a read.

use std::time::Duration;

use caseline_auth::Role;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::{VerifyIntegrityRequest, verify_integrity_request::Scope};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::{BoxError, DevServer, ScratchDir, authed, callers, round1, round3};

#[derive(Debug, clap::Args)]
pub struct AccessArgs {
    /// Concurrent callers, over one HTTP/2 connection.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Seconds each side (baseline, audited reads) runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// `AuditService.VerifyIntegrity` of one empty stream (authenticated by a cached token,
/// gated by the policy, its access record appended and fsynced before the answer)
/// against `grpc.health.v1.Health/Check`, which passes no layer and writes nothing, on
/// the same all-in-one in the same run.
pub(super) async fn access(args: AccessArgs) -> Result<(), BoxError> {
    if args.callers == 0 || !args.seconds.is_finite() || args.seconds <= 0.0 {
        return Err("--callers and --seconds must be positive".into());
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let dir = ScratchDir::new("bench")?;
    let server = DevServer::start(dir.path()).await?;
    let bearer = server.bearer("bench-auditor", Role::Auditor, "bench", None)?;
    let channel = server.channel().await?;

    let health = HealthClient::new(channel.clone());
    let baseline = callers(args.callers, duration, move |_| {
        let mut client = health.clone();
        async move {
            client
                .check(HealthCheckRequest {
                    service: "caseline.v1.AuditService".into(),
                })
                .await
                .map(drop)
        }
    })
    .await?;
    let audit = AuditServiceClient::new(channel);
    let measured = callers(args.callers, duration, move |_| {
        let mut client = audit.clone();
        let request = authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::Stream("bench-empty".into())),
            },
            &bearer,
        );
        async move { client.verify_integrity(request).await.map(drop) }
    })
    .await?;
    server.stop().await?;

    let ratio = measured.per_sec() / baseline.per_sec();
    println!(
        "baseline  {:>10.0} calls/s  (Health/Check, no trust layer; p50 {:.2} ms, p99 {:.2} ms)",
        baseline.per_sec(),
        baseline.percentile_ms(0.50),
        baseline.percentile_ms(0.99),
    );
    println!(
        "audited   {:>10.0} calls/s  (VerifyIntegrity with its access record, {} callers; p50 {:.2} ms, p99 {:.2} ms)",
        measured.per_sec(),
        args.callers,
        measured.percentile_ms(0.50),
        measured.percentile_ms(0.99),
    );
    println!("ratio     {ratio:>10.2}");
    if args.json {
        let report = serde_json::json!({
            "bench": "access",
            "callers": args.callers,
            "seconds": args.seconds,
            "calls": measured.events,
            "calls_per_sec": round1(measured.per_sec()),
            "baseline": "grpc.health.v1.Health/Check on the same server",
            "baseline_calls_per_sec": round1(baseline.per_sec()),
            "ratio": round3(ratio),
            "p50_ms": round3(measured.percentile_ms(0.50)),
            "p99_ms": round3(measured.percentile_ms(0.99)),
        });
        println!("{report}");
    }
    Ok(())
}
