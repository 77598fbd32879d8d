//! `caseline-audit`: the AuditService alone, over a shared event log (`--event-log URL`), one of
//! Caseline's separate services. `caseline-audit --help` lists its options.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    caseline_host::main(
        "caseline-audit",
        "Caseline's AuditService: access history, integrity, point-in-time views, break-glass review",
        &[caseline_audit_service::mount],
    )
}
