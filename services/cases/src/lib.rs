//! `caseline.v1.CaseService`: helpline contacts, cases, teams, notes, links, stages,
//! justice milestones and each child's role-restricted timeline.
//!
//! Every handler follows one path: validate the request (naming each bad field) →
//! authorise through the trust layer (`Call::case`, which records the decision and
//! answers NOT_FOUND for a case the caller may not see) → seal identifying fields and
//! free text with the case's key → load the case → `domain::decide` → append at the
//! version read. Reads decide each entry's sight with the same policy.
#![forbid(unsafe_code)]

mod api;
mod command;
mod contacts;
mod directory;

use std::sync::Arc;

use caseline_auth::Role;
use caseline_policy::CASE_OPENERS;
use caseline_proto::v1::case_service_server::CaseServiceServer;
use caseline_trust::{CASE_ROLES, Kind, MethodSpec, Scope};

pub use api::CaseApi;
pub use caseline_server::validate::{MAX_LABEL_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS};

const COUNSELLORS: &[Role] = &[Role::HelplineCounsellor];

const fn write(path: &'static str, roles: &'static [Role]) -> MethodSpec {
    MethodSpec {
        path,
        kind: Kind::Write,
        scope: Scope::Case,
        roles,
    }
}

const fn read(path: &'static str, scope: Scope) -> MethodSpec {
    MethodSpec {
        path,
        kind: Kind::Read,
        scope,
        roles: CASE_ROLES,
    }
}

/// What the trust layer needs to know of each method. Case methods are open to every
/// role that works on cases; the policy narrows each call by the case's team and the
/// compartment touched.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec {
        path: "/caseline.v1.CaseService/RecordContact",
        kind: Kind::Write,
        scope: Scope::Global,
        roles: COUNSELLORS,
    },
    MethodSpec {
        path: "/caseline.v1.CaseService/OpenCase",
        kind: Kind::Write,
        scope: Scope::Global,
        roles: CASE_OPENERS,
    },
    write("/caseline.v1.CaseService/RecordRiskAssessment", CASE_ROLES),
    write("/caseline.v1.CaseService/AddTeamMember", CASE_ROLES),
    write("/caseline.v1.CaseService/RemoveTeamMember", CASE_ROLES),
    write("/caseline.v1.CaseService/AddNote", CASE_ROLES),
    write("/caseline.v1.CaseService/LinkCases", CASE_ROLES),
    write("/caseline.v1.CaseService/UnlinkCases", CASE_ROLES),
    write("/caseline.v1.CaseService/ChangeStage", CASE_ROLES),
    write("/caseline.v1.CaseService/RequestClosure", CASE_ROLES),
    write("/caseline.v1.CaseService/DecideClosure", CASE_ROLES),
    write("/caseline.v1.CaseService/ReopenCase", CASE_ROLES),
    write(
        "/caseline.v1.CaseService/RecordJusticeMilestone",
        CASE_ROLES,
    ),
    read("/caseline.v1.CaseService/GetCase", Scope::Case),
    read("/caseline.v1.CaseService/ListCases", Scope::Global),
    read("/caseline.v1.CaseService/GetLinkedCases", Scope::Case),
    read("/caseline.v1.CaseService/GetTimeline", Scope::Case),
];

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server(host: &caseline_host::Host) -> CaseServiceServer<CaseApi> {
    let directory = host.projection::<directory::State>("cases.directory");
    CaseServiceServer::new(CaseApi::new(Arc::clone(host.log()), directory))
}

/// Mounts CaseService on a server: its methods with the trust layer, its gRPC service.
pub fn mount(
    host: &caseline_host::Host,
    services: caseline_server::Services,
) -> caseline_server::Services {
    host.trust().register(METHODS);
    services.add_service(server(host))
}
