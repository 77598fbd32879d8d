//! `caseline.v1.CompensationService`: compensation claims, awards and payments, and
//! complaints handled independently of the case team.
//!
//! Claims (`claim-<id>`) and complaints (`complaint-<id>`) carry the case id on every
//! event, so they are on the child's timeline as the visibility table says: claims to
//! victim advocates (who write them), prosecutors, social workers and supervisors;
//! complaints only to complaints officers, who stand outside every team.
#![forbid(unsafe_code)]

mod api;
mod command;
pub mod domain;
pub mod money;
mod store;

use std::sync::Arc;

use caseline_aggregate::Projection;
use caseline_auth::Role;
use caseline_proto::v1::compensation_service_server::CompensationServiceServer;
use caseline_trust::{Kind, MethodSpec, Scope};

pub use api::CompensationApi;
pub use store::{CLAIM_CATEGORY, COMPLAINT_CATEGORY};

const CLAIM_WRITERS: &[Role] = &[Role::VictimAdvocate];
const CLAIM_READERS: &[Role] = &[
    Role::VictimAdvocate,
    Role::Prosecutor,
    Role::SocialWorker,
    Role::Supervisor,
];
const COMPLAINTS_OFFICERS: &[Role] = &[Role::ComplaintsOfficer];

const fn write(path: &'static str, roles: &'static [Role]) -> MethodSpec {
    MethodSpec::new(path, Kind::Write, Scope::Case, roles)
}

/// What the trust layer needs to know of each method; the policy narrows each call by
/// the case's team and the compensation or complaints row.
pub const METHODS: &[MethodSpec] = &[
    write("/caseline.v1.CompensationService/FileClaim", CLAIM_WRITERS),
    write(
        "/caseline.v1.CompensationService/RecordClaimSubmitted",
        CLAIM_WRITERS,
    ),
    write(
        "/caseline.v1.CompensationService/RecordClaimDecision",
        CLAIM_WRITERS,
    ),
    write(
        "/caseline.v1.CompensationService/LodgeAppeal",
        CLAIM_WRITERS,
    ),
    write(
        "/caseline.v1.CompensationService/RecordPayment",
        CLAIM_WRITERS,
    ),
    write("/caseline.v1.CompensationService/CloseClaim", CLAIM_WRITERS),
    MethodSpec::new(
        "/caseline.v1.CompensationService/GetClaim",
        Kind::Read,
        Scope::Case,
        CLAIM_READERS,
    ),
    MethodSpec::new(
        "/caseline.v1.CompensationService/ListClaims",
        Kind::Read,
        Scope::Global,
        CLAIM_READERS,
    ),
    MethodSpec::new(
        "/caseline.v1.CompensationService/ListClaimDeadlines",
        Kind::Read,
        Scope::Global,
        CLAIM_READERS,
    ),
    MethodSpec::new(
        "/caseline.v1.CompensationService/GetCompensationTotals",
        Kind::Read,
        Scope::Case,
        CLAIM_READERS,
    ),
    write(
        "/caseline.v1.CompensationService/LodgeComplaint",
        COMPLAINTS_OFFICERS,
    ),
    write(
        "/caseline.v1.CompensationService/AcknowledgeComplaint",
        COMPLAINTS_OFFICERS,
    ),
    write(
        "/caseline.v1.CompensationService/RecordComplaintFinding",
        COMPLAINTS_OFFICERS,
    ),
    write(
        "/caseline.v1.CompensationService/EscalateComplaint",
        COMPLAINTS_OFFICERS,
    ),
    write(
        "/caseline.v1.CompensationService/CloseComplaint",
        COMPLAINTS_OFFICERS,
    ),
    MethodSpec::new(
        "/caseline.v1.CompensationService/GetComplaint",
        Kind::Read,
        Scope::Case,
        COMPLAINTS_OFFICERS,
    ),
    MethodSpec::new(
        "/caseline.v1.CompensationService/ListComplaints",
        Kind::Read,
        Scope::Global,
        COMPLAINTS_OFFICERS,
    ),
];

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server(host: &caseline_host::Host) -> CompensationServiceServer<CompensationApi> {
    let claims = Projection::new(host.projection("compensation.claims"));
    let complaints = Projection::new(host.projection("compensation.complaints"));
    let members = host.index(caseline_case::members::INDEX);
    CompensationServiceServer::new(CompensationApi::new(
        Arc::clone(host.log()),
        claims,
        complaints,
        members,
    ))
}

/// Mounts CompensationService on a server: its methods with the trust layer, its gRPC
/// service.
pub fn mount(
    host: &caseline_host::Host,
    services: caseline_server::Services,
) -> caseline_server::Services {
    host.trust().register(METHODS);
    services.add_service(server(host))
}
