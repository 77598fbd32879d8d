//! `caseline`: the all-in-one binary.
//!
//! - `caseline serve`: all five services on one port over the embedded SQLite log.
//! - `caseline token`: a development access token for a `serve --dev`.
//! - `caseline demo`: a fictional case seeded through the API, shown as each role sees it.
//! - `caseline bench eventlog|access|commands|timeline`: benchmarks, each against a
//!   baseline measured in the same run.
#![forbid(unsafe_code)]

use caseline::{bench, demo, serve, token};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "caseline",
    version,
    about = "Audited, role-restricted case timelines for child victims"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve all five gRPC services on one port.
    Serve(serve::ServeArgs),
    /// Print a development access token signed with the data directory's dev key
    /// (issuer and audience `caseline-dev`), for a server started with --dev.
    Token(token::TokenArgs),
    /// Seed a fictional case through the API of an in-process dev server and show what
    /// each role (helpline, social work, police, prosecution, audit) sees of it.
    Demo(demo::DemoArgs),
    /// Run a benchmark and print its figures next to a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match caseline_telemetry::init("caseline") {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("caseline: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args)
            .await
            .map_err(|e| -> Box<dyn std::error::Error> { e }),
        Command::Token(args) => token::run(args),
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(command) => bench::run(command).await,
    };
    // Exports the spans still buffered, whatever the outcome.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caseline: {e}");
            ExitCode::FAILURE
        }
    }
}
