//! `caseline-cases`: the CaseService alone, over a shared event log (`--event-log URL`), one of
//! Caseline's separate services. `caseline-cases --help` lists its options.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    caseline_host::main(
        "caseline-cases",
        "Caseline's CaseService: cases: open, assess, team, notes, stages, links, closure, erasure; helpline contacts",
        &[caseline_cases::mount],
    )
}
