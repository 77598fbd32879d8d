//! `caseline.v1.AuditService`: access history, timelines as of an instant, integrity of the log (auditors only).
//!
//! The service is registered from the start so that health, reflection and deployments
//! know it; its methods (and the domain module behind them) are added by the issue that
//! builds this service. Until then every method answers UNIMPLEMENTED.
#![forbid(unsafe_code)]

use caseline_proto::v1::audit_service_server::{AuditService, AuditServiceServer};

/// The gRPC handlers of AuditService.
#[derive(Clone, Debug, Default)]
pub struct AuditApi;

impl AuditService for AuditApi {}

/// The tonic server to register with `caseline_server::Services::add_service`.
pub fn server() -> AuditServiceServer<AuditApi> {
    AuditServiceServer::new(AuditApi)
}
