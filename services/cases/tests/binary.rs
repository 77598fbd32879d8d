//! `caseline-cases` as an operator starts it, alone: what it says it serves, and a
//! refusal before anything is opened. (Being an integration test of this crate, it also
//! makes `cargo test` build the binary that the separate-services tests start.)

use std::process::Command;

#[test]
fn it_serves_case_service_alone_and_says_how_to_configure_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let caseline_cases = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_caseline-cases"));
        command
            .current_dir(dir.path())
            .env_remove("CASELINE_CONFIG")
            .env_remove("CASELINE_EVENT_LOG");
        command
    };
    let help = caseline_cases().arg("--help").output().expect("it runs");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("CaseService"), "{help}");
    for flag in ["--listen", "--event-log", "--state-store", "--dev"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }

    let refused = caseline_cases()
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("it runs");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.starts_with("caseline-cases: "), "{err}");
    assert!(err.contains("[[auth.issuers]]"), "{err}");
    assert!(refused.stdout.is_empty(), "nothing announced");
}
