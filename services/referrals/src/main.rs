//! `caseline-referrals`: the ReferralService alone, over a shared event log (`--event-log URL`), one of
//! Caseline's separate services. `caseline-referrals --help` lists its options.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    caseline_host::main(
        "caseline-referrals",
        "Caseline's ReferralService: referrals between agencies that close their loop",
        &[caseline_referrals::mount],
    )
}
