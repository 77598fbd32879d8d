//! `caseline-compensation`: the CompensationService alone, over a shared event log (`--event-log URL`), one of
//! Caseline's separate services. `caseline-compensation --help` lists its options.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    caseline_host::main(
        "caseline-compensation",
        "Caseline's CompensationService: compensation claims and complaints",
        &[caseline_compensation::mount],
    )
}
