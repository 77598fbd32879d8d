//! The `caseline` binary as scripts use it: `serve` announces its address on standard
//! output, answers health and reflection, and stops cleanly on SIGTERM.

mod common;

use common::BIN;
use tokio::process::Command;

#[tokio::test]
async fn serve_announces_its_address_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (served, addr) = common::serve(
        &["--dev", "--data-dir", dir.path().to_str().unwrap()],
        &[("CASELINE_LOG", "warn")],
    )
    .await;

    let channel = caseline_e2e::connect(addr).await;
    caseline_e2e::assert_all_services_serving(channel.clone()).await;
    caseline_e2e::assert_reflection_lists_everything(channel).await;

    // Stops on SIGTERM, exiting 0 within 30 s.
    let stderr = common::stop(served).await;
    assert!(
        stderr.contains("DEVELOPMENT MODE"),
        "the --dev warning is loud: {stderr}"
    );
    assert!(dir.path().join("events.sqlite").exists());
}

#[tokio::test]
async fn serve_without_dev_refuses_and_says_what_to_configure() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing announced");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("issuers") && stderr.contains("--dev"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bench_prints_json_as_its_last_line() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "eventlog",
            "--backend",
            "sqlite",
            "--seconds",
            "0.3",
            "--appenders",
            "4",
            "--json",
        ])
        .env("CASELINE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    for key in [
        "backend",
        "appenders",
        "events_per_sec",
        "baseline_events_per_sec",
        "ratio",
        "p50_ms",
        "p99_ms",
    ] {
        assert!(report.get(key).is_some(), "missing {key} in {last}");
    }
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["appenders"], 4);
    assert!(report["events_per_sec"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn bench_access_measures_audited_reads_against_health_checks() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "access",
            "--seconds",
            "0.3",
            "--callers",
            "4",
            "--json",
        ])
        .env("CASELINE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["bench"], "access");
    assert_eq!(report["callers"], 4);
    assert!(report["calls_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["baseline_calls_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
}
