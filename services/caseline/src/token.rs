//! `caseline token`: mints a development access token with the data directory's dev key.

use std::path::PathBuf;
use std::time::Duration;

use caseline_auth::{DevKey, Role};

/// Longest lifetime of a dev token: a working day.
const MAX_TTL_SECONDS: u64 = 12 * 60 * 60;

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The data directory of the `caseline serve --dev` that will accept the token.
    #[arg(long, env = "CASELINE_DATA_DIR", default_value = "./caseline-data")]
    pub data_dir: PathBuf,
    /// The user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// A Caseline role (repeat for several), e.g. social_worker.
    #[arg(long = "role", required = true, value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// The user's agency id, e.g. helpline-north.
    #[arg(long)]
    pub agency: String,
    /// The kind of agency, e.g. helpline, police, social_services.
    #[arg(long)]
    pub agency_type: Option<String>,
    /// Lifetime in seconds (at most 43200).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS))]
    pub ttl: u64,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|_| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role; one of: {}", known.join(", "))
    })
}

/// Prints the token on standard output.
pub fn run(args: TokenArgs) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            args.data_dir.display()
        )
    })?;
    let key = DevKey::load_or_create(&args.data_dir)?;
    let token = key.issue(
        &args.sub,
        &args.roles,
        &args.agency,
        args.agency_type.as_deref(),
        Duration::from_secs(args.ttl),
    )?;
    println!("{token}");
    Ok(())
}
