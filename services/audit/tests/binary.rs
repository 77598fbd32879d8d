//! `caseline-audit` as an operator starts it: its options, and the refusals that come
//! before anything is opened, each saying what to configure.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    Command::new(env!("CARGO_BIN_EXE_caseline-audit"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("CASELINE_CONFIG")
        .env_remove("CASELINE_EVENT_LOG")
        .env_remove("CASELINE_STATE_STORE")
        .env_remove("CASELINE_MASTER_KEY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_option_with_its_variable() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, var) in [
        ("--listen", "CASELINE_LISTEN"),
        ("--event-log", "CASELINE_EVENT_LOG"),
        ("--state-store", "CASELINE_STATE_STORE"),
        ("--data-dir", "CASELINE_DATA_DIR"),
        ("--config", "CASELINE_CONFIG"),
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
        assert!(
            help.contains(&format!("[env: {var}=")),
            "{var} missing from:\n{help}"
        );
    }
    assert!(help.contains("--dev"));
    assert!(help.contains("AuditService"));
}

#[test]
fn without_issuers_it_refuses_to_start_and_says_what_to_configure() {
    let output = run(&["--listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.starts_with("caseline-audit: "), "{err}");
    assert!(err.contains("[[auth.issuers]]"), "{err}");
    assert!(output.stdout.is_empty(), "nothing announced");
}

#[test]
fn a_kurrentdb_log_needs_a_state_store() {
    let output = run(&[
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--event-log",
        "kurrentdb://localhost:2113?tls=false",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("--state-store"), "{err}");
}

#[test]
fn an_unknown_event_log_is_refused_by_name() {
    let output = run(&[
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--event-log",
        "mysql://localhost/caseline",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("event_log: unsupported url"), "{err}");
}

#[test]
fn a_shared_log_is_refused_a_state_store_in_a_local_file() {
    // Instances with a key file each would seal one case under different keys.
    let output = run(&[
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--event-log",
        "postgres://caseline@127.0.0.1:1/caseline",
        "--state-store",
        "sqlite:state.sqlite",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("state_store: a shared event log"), "{err}");
}
