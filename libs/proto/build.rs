//! Compiles `proto/caseline/v1` with protox (pure Rust: no `protoc` on the machine), then
//! generates prost messages and tonic clients/servers into `OUT_DIR`, plus the encoded
//! file descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "caseline/v1/case_types.proto",
    "caseline/v1/referral_types.proto",
    "caseline/v1/plan_types.proto",
    "caseline/v1/compensation_types.proto",
    "caseline/v1/cases.proto",
    "caseline/v1/referrals.proto",
    "caseline/v1/support_plans.proto",
    "caseline/v1/compensation.proto",
    "caseline/v1/audit.proto",
    "caseline/v1/events/access.proto",
    "caseline/v1/events/case_team.proto",
    "caseline/v1/events/cases.proto",
    "caseline/v1/events/referrals.proto",
    "caseline/v1/events/plans.proto",
    "caseline/v1/events/compensation.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("caseline_descriptor.bin"), fds.encode_to_vec())?;

    // Event payloads (and the enums and money they hold) are also serde types: services'
    // projections keep them in their checkpoints.
    let serde = "#[derive(serde::Serialize, serde::Deserialize)]";
    let mut config = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute(".caseline.v1.events", serde)
        .message_attribute(".caseline.v1.Money", serde);
    for file in fds.file.iter().filter(|f| f.package() == "caseline.v1") {
        for e in &file.enum_type {
            config = config.enum_attribute(format!(".caseline.v1.{}", e.name()), serde);
        }
    }
    config.compile_fds(fds)?;
    Ok(())
}
