//! `caseline-support-plans`: the SupportPlanService alone, over a shared event log (`--event-log URL`), one of
//! Caseline's separate services. `caseline-support-plans --help` lists its options.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    caseline_host::main(
        "caseline-support-plans",
        "Caseline's SupportPlanService: support plans: goals, services, approval, reviews",
        &[caseline_support_plans::mount],
    )
}
