//! `caseline.v1.CaseService`: helpline contacts, cases, teams, notes, links, stages, justice milestones and each child's role-restricted timeline.
//!
//! The service is registered from the start so that health, reflection and deployments
//! know it; its methods (and the domain module behind them) are added by the issue that
//! builds this service. Until then every method answers UNIMPLEMENTED.
#![forbid(unsafe_code)]

use caseline_proto::v1::case_service_server::{CaseService, CaseServiceServer};

/// The gRPC handlers of CaseService.
#[derive(Clone, Debug, Default)]
pub struct CaseApi;

impl CaseService for CaseApi {}

/// What the trust layer needs to know of each method; none yet.
pub const METHODS: &[caseline_audit::MethodSpec] = &[];

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server() -> CaseServiceServer<CaseApi> {
    CaseServiceServer::new(CaseApi)
}
