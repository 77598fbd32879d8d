//! `caseline.v1.SupportPlanService`: support plans from the immediate safety plan to after-care.
//!
//! The service is registered from the start so that health, reflection and deployments
//! know it; its methods (and the domain module behind them) are added by the issue that
//! builds this service. Until then every method answers UNIMPLEMENTED.
#![forbid(unsafe_code)]

use caseline_proto::v1::support_plan_service_server::{
    SupportPlanService, SupportPlanServiceServer,
};

/// The gRPC handlers of SupportPlanService.
#[derive(Clone, Debug, Default)]
pub struct SupportPlanApi;

impl SupportPlanService for SupportPlanApi {}

/// What the trust layer needs to know of each method; none yet.
pub const METHODS: &[caseline_audit::MethodSpec] = &[];

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server() -> SupportPlanServiceServer<SupportPlanApi> {
    SupportPlanServiceServer::new(SupportPlanApi)
}
