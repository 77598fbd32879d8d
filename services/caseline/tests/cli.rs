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

/// Runs `caseline` with `args` (logs at warn), asserts it exits 0 and returns its
/// standard output.
async fn run_ok(args: &[&str]) -> String {
    run_ok_with(args, &[]).await
}

async fn run_ok_with(args: &[&str], envs: &[(&str, &std::path::Path)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("CASELINE_LOG", "warn")
        .envs(envs.iter().copied())
        .env_remove("CASELINE_MASTER_KEY")
        .output()
        .await
        .expect("caseline runs");
    assert!(
        out.status.success(),
        "caseline {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The lines of the section whose header starts with `## {header}`, up to the next
/// blank line.
fn section<'a>(stdout: &'a str, header: &str) -> Vec<&'a str> {
    let start = format!("## {header}");
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(&start));
    assert!(lines.next().is_some(), "no section {start:?} in:\n{stdout}");
    lines.take_while(|l| !l.trim().is_empty()).collect()
}

/// The table rows of a section as (kind, compartment, visibility).
fn rows<'a>(lines: &[&'a str]) -> Vec<(&'a str, &'a str, &'a str)> {
    lines
        .iter()
        .skip(1) // the column titles
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1], f[2], f[4])
        })
        .collect()
}

#[tokio::test]
async fn demo_shows_each_role_its_own_view_of_one_case() {
    // By default the demo works in a fresh temporary directory and removes it.
    let tmp = tempfile::tempdir().unwrap();
    let stdout = run_ok_with(&["demo"], &[("TMPDIR", tmp.path())]).await;
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the demo's temporary data directory is removed"
    );
    for role in [
        "helpline_counsellor",
        "social_worker",
        "police_investigator",
        "prosecutor",
    ] {
        assert!(
            !rows(&section(&stdout, &format!("{role}: GetTimeline"))).is_empty(),
            "{role} sees entries"
        );
        section(
            &stdout,
            &format!("auditor: GetTimelineAsOf(role {role}, now)"),
        );
    }

    // The police see their investigation note in full; the helpline does not see it.
    let police = rows(&section(&stdout, "police_investigator: GetTimeline"));
    assert!(
        police.contains(&("note_added", "investigation", "FULL")),
        "{police:?}"
    );
    let helpline = rows(&section(&stdout, "helpline_counsellor: GetTimeline"));
    assert!(
        helpline.iter().all(|(_, c, _)| *c != "investigation"),
        "{helpline:?}"
    );
    // Social work notes: full to the social worker, a summary to the police.
    assert!(police.contains(&("note_added", "support_plan", "SUMMARY")));
    let social = rows(&section(&stdout, "social_worker: GetTimeline"));
    assert!(social.contains(&("note_added", "support_plan", "FULL")));
    // The contact: full to the helpline, a summary to the police, absent for the
    // prosecutor.
    assert!(helpline.contains(&("contact_attached", "helpline_contacts", "FULL")));
    assert!(police.contains(&("contact_attached", "helpline_contacts", "SUMMARY")));
    let prosecutor = rows(&section(&stdout, "prosecutor: GetTimeline"));
    assert!(prosecutor.iter().all(|(k, _, _)| *k != "contact_attached"));

    // The referral's loop: the helpline sees the police's outcome in full; the
    // investigator joined through accepting it.
    assert!(helpline.contains(&("referral_outcome_recorded", "referrals", "FULL")));
    assert!(police.contains(&("referral_accepted", "referrals", "FULL")));

    // The auditor is told the same shape, and never any content.
    let audit_police = section(&stdout, "auditor: GetTimelineAsOf(role police_investigator");
    assert_eq!(rows(&audit_police), police);
    for role in [
        "helpline_counsellor",
        "social_worker",
        "police_investigator",
        "prosecutor",
    ] {
        for line in section(&stdout, &format!("auditor: GetTimelineAsOf(role {role}")) {
            for sealed in [
                "@demo_fox_000",
                "Home visit",
                "Girl, 14",
                "Crime report",
                "Statement taken",
            ] {
                assert!(!line.contains(sealed), "the auditor saw content: {line}");
            }
        }
    }
    // Wherever it is shown in full, the sealed content was opened for its reader.
    assert!(stdout.contains("@demo_fox_000"));
}

#[tokio::test]
async fn demo_keeps_its_data_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let stdout = run_ok(&["demo", "--data-dir", data.to_str().unwrap()]).await;
    assert!(stdout.contains("kept in"), "{stdout}");
    assert!(data.join("events.sqlite").exists());
}

/// The last line of `stdout`, parsed as JSON, with every one of `keys`.
fn json_report(stdout: &str, keys: &[&str]) -> serde_json::Value {
    let last = stdout.lines().last().expect("some output");
    let report: serde_json::Value = serde_json::from_str(last).expect("JSON as the last line");
    for key in keys {
        assert!(report.get(key).is_some(), "missing {key} in {last}");
    }
    report
}

#[tokio::test]
async fn bench_commands_measures_commands_against_a_bare_server() {
    let stdout = run_ok(&["bench", "commands", "--json", "--seconds", "1"]).await;
    let report = json_report(
        &stdout,
        &[
            "bench",
            "in_flight",
            "calls",
            "calls_per_sec",
            "baseline",
            "baseline_calls_per_sec",
            "ratio",
            "target_ratio",
            "p50_ms",
            "p99_ms",
            "target_p99_ms",
        ],
    );
    assert_eq!(report["bench"], "commands");
    assert_eq!(report["in_flight"], 64);
    assert!(report["calls"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn bench_timeline_measures_whole_timeline_reads() {
    let stdout = run_ok(&[
        "bench",
        "timeline",
        "--json",
        "--events",
        "40",
        "--iterations",
        "10",
    ])
    .await;
    let report = json_report(
        &stdout,
        &[
            "bench",
            "events",
            "entries",
            "iterations",
            "calls_per_sec",
            "baseline",
            "baseline_calls_per_sec",
            "ratio",
            "p50_ms",
            "p99_ms",
            "target_p50_ms",
            "target_p99_ms",
        ],
    );
    assert_eq!(report["bench"], "timeline");
    assert_eq!(report["events"], 40);
    assert_eq!(report["entries"], 40);
    assert_eq!(report["iterations"], 10);
}

#[tokio::test]
async fn bench_scale_measures_each_size_and_alternated() {
    let stdout = run_ok(&[
        "bench",
        "scale",
        "--json",
        "--sizes",
        "5000,6000",
        "--iterations",
        "1",
        "--write-seconds",
        "1",
    ])
    .await;
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sizes: Vec<u64> = reports
        .iter()
        .filter(|r| r["bench"] == "scale")
        .map(|r| r["events"].as_u64().expect("events"))
        .collect();
    assert!(
        sizes.len() == 2 && sizes[0] >= 5_000 && sizes[1] >= 6_000,
        "{sizes:?}"
    );
    // Each size's rebuild is three rounds, each beside a raw read of its own, and the
    // figure judged is the median of their ratios.
    for report in reports.iter().filter(|r| r["bench"] == "scale") {
        let rounds = report["rebuild_rounds"].as_array().expect("rebuild rounds");
        assert_eq!(rounds.len(), 3, "{report}");
        let mut ratios: Vec<f64> = rounds
            .iter()
            .map(|r| {
                assert!(r["raw_read_events_per_sec"].as_f64().expect("raw read") > 0.0);
                assert!(r["rebuild_s"].as_f64().expect("rebuild") > 0.0);
                r["rebuild_to_raw_read"].as_f64().expect("ratio")
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        assert_eq!(report["rebuild_to_raw_read"].as_f64(), Some(ratios[1]));
    }
    let alternated = json_report(
        &stdout,
        &[
            "bench",
            "fresh",
            "large",
            "medians",
            "targets",
            "fresh_events",
        ],
    );
    assert_eq!(alternated["bench"], "scale-alternated");
    assert_eq!(alternated["fresh_events"], 5_000);
    let measures = [
        "get_timeline_500.p50_ms",
        "replay_access_history.p50_ms",
        "list_cases_one_case.p50_ms",
        "list_cases_500_cases.p50_ms",
        "list_inbox.p50_ms",
        "list_reviews_due.p50_ms",
        "writes_per_sec",
    ];
    for side in ["fresh", "large"] {
        for measure in measures {
            let rounds = alternated[side]["rounds"][measure]
                .as_array()
                .unwrap_or_else(|| panic!("{measure} at the {side} log"));
            assert_eq!(
                rounds.len(),
                5,
                "five rounds of {measure} at the {side} log"
            );
            assert!(rounds.iter().all(|r| r.as_f64().is_some_and(|r| r > 0.0)));
        }
        // Each round's notes were appended to its log.
        let events = alternated[side]["events_after"].as_u64().expect("events");
        let before = if side == "fresh" { 5_000 } else { sizes[1] };
        assert!(
            events > before,
            "{side}: {events} events after, {before} before"
        );
    }
    for measure in measures {
        let ratio = &alternated["medians"][measure]["ratio"];
        assert!(
            ratio.as_f64().is_some_and(|r| r > 0.0),
            "{measure}: {ratio}"
        );
    }
}
