//! `caseline.v1.CompensationService`: compensation claims and independent complaints.
//!
//! The service is registered from the start so that health, reflection and deployments
//! know it; its methods (and the domain module behind them) are added by the issue that
//! builds this service. Until then every method answers UNIMPLEMENTED.
#![forbid(unsafe_code)]

use caseline_proto::v1::compensation_service_server::{
    CompensationService, CompensationServiceServer,
};

/// The gRPC handlers of CompensationService.
#[derive(Clone, Debug, Default)]
pub struct CompensationApi;

impl CompensationService for CompensationApi {}

/// What the trust layer needs to know of each method; none yet.
pub const METHODS: &[caseline_audit::MethodSpec] = &[];

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server() -> CompensationServiceServer<CompensationApi> {
    CompensationServiceServer::new(CompensationApi)
}
