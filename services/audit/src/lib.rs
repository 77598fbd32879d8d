//! `caseline.v1.AuditService`: the access history of the log, its integrity, and the
//! review list of break-glass use.
//!
//! Auditors see who did what, when, where and why: access records and the metadata of
//! write events, never a payload and never sealed content. Supervisors see break-glass
//! openings by their agency's staff or on their agency's cases, with the stated reason.
#![forbid(unsafe_code)]

mod as_of;
mod break_glass;
mod command;
mod history;

use std::pin::Pin;
use std::sync::Arc;

use caseline_auth::Role;
use caseline_eventlog::BrokenKind;
use caseline_projection::{Followed, Indexed};
use caseline_proto::tonic::{self, Request, Response, Status};
use caseline_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use caseline_proto::v1::{
    AccessHistoryEntry, BrokenLink, GetTimelineAsOfRequest, GetTimelineAsOfResponse,
    ListBreakGlassUsesRequest, ListBreakGlassUsesResponse, ReplayAccessHistoryRequest,
    VerifyIntegrityRequest, VerifyIntegrityResponse,
};
use caseline_server::ApiError;
use caseline_trust::{Call, Kind, MethodSpec, Scope};
use tokio_stream::Stream;

use crate::break_glass::BreakGlassLog;
pub use crate::break_glass::Grants;
use crate::command::{Filter, ListBreakGlassUses, TimelineAsOf, VerifyIntegrity};
pub use crate::history::Listed;

const AUDITORS: &[Role] = &[Role::Auditor];
const REVIEWERS: &[Role] = &[Role::Auditor, Role::Supervisor];

/// What the trust layer needs to know of each method.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec {
        path: "/caseline.v1.AuditService/ReplayAccessHistory",
        kind: Kind::Read,
        scope: Scope::Global,
        roles: AUDITORS,
    },
    MethodSpec {
        path: "/caseline.v1.AuditService/VerifyIntegrity",
        kind: Kind::Read,
        scope: Scope::Global,
        roles: AUDITORS,
    },
    MethodSpec {
        path: "/caseline.v1.AuditService/GetTimelineAsOf",
        kind: Kind::Read,
        scope: Scope::Global,
        roles: AUDITORS,
    },
    MethodSpec {
        path: "/caseline.v1.AuditService/ListBreakGlassUses",
        kind: Kind::Read,
        scope: Scope::Global,
        roles: REVIEWERS,
    },
];

/// The gRPC handlers of AuditService.
#[derive(Debug)]
pub struct AuditApi {
    break_glass: BreakGlassLog,
    listed: Arc<Indexed<Listed>>,
}

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer, over the projection of
/// break-glass grants and the index of list pages by the ids they returned.
pub fn server(
    grants: Arc<Followed<Grants>>,
    listed: Arc<Indexed<Listed>>,
) -> AuditServiceServer<AuditApi> {
    AuditServiceServer::new(AuditApi {
        break_glass: BreakGlassLog::new(grants),
        listed,
    })
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<AccessHistoryEntry, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ReplayAccessHistoryStream = EntryStream;

    async fn replay_access_history(
        &self,
        request: Request<ReplayAccessHistoryRequest>,
    ) -> Result<Response<Self::ReplayAccessHistoryStream>, Status> {
        let call = Call::of(&request)?;
        let filter = Filter::try_from(request.into_inner())?;
        if let Some(case_id) = filter.case_id {
            call.concerns(case_id);
        }
        Ok(Response::new(history::replay(
            call.log().clone(),
            Arc::clone(&self.listed),
            filter,
        )))
    }

    async fn verify_integrity(
        &self,
        request: Request<VerifyIntegrityRequest>,
    ) -> Result<Response<VerifyIntegrityResponse>, Status> {
        let call = Call::of(&request)?;
        let streams = match VerifyIntegrity::try_from(request.into_inner())? {
            VerifyIntegrity::Case(case_id) => {
                call.concerns(case_id);
                history::streams_of_case(&**call.log(), case_id).await?
            }
            VerifyIntegrity::Stream(stream) => {
                call.returned([stream.as_str().to_owned()]);
                vec![stream]
            }
            VerifyIntegrity::Everything => history::all_streams(&**call.log()).await?,
        };
        let mut response = VerifyIntegrityResponse {
            intact: true,
            ..VerifyIntegrityResponse::default()
        };
        for stream in streams {
            let report = call
                .log()
                .verify_stream(&stream)
                .await
                .map_err(ApiError::from)?;
            response.streams_checked += 1;
            response.events_checked += report.events_checked;
            if let Some(broken) = report.first_broken {
                tracing::warn!(stream = %stream.as_str(), version = broken.version, kind = kind_code(broken.kind), "hash chain broken");
                response.intact = false;
                response.first_broken = Some(BrokenLink {
                    stream: stream.as_str().to_owned(),
                    version: broken.version,
                    event_id: broken.event_id.to_string(),
                    kind: kind_code(broken.kind).to_owned(),
                });
                break;
            }
        }
        Ok(Response::new(response))
    }

    async fn list_break_glass_uses(
        &self,
        request: Request<ListBreakGlassUsesRequest>,
    ) -> Result<Response<ListBreakGlassUsesResponse>, Status> {
        let call = Call::of(&request)?;
        let c = ListBreakGlassUses::try_from(request.into_inner())?;
        let response = self.break_glass.list(&call, c).await?;
        Ok(Response::new(response))
    }

    async fn get_timeline_as_of(
        &self,
        request: Request<GetTimelineAsOfRequest>,
    ) -> Result<Response<GetTimelineAsOfResponse>, Status> {
        let call = Call::of(&request)?;
        let q = TimelineAsOf::try_from(request.into_inner())?;
        let response = as_of::timeline_as_of(&call, q).await?;
        Ok(Response::new(response))
    }
}

fn kind_code(kind: BrokenKind) -> &'static str {
    match kind {
        BrokenKind::HashMismatch => "hash_mismatch",
        BrokenKind::PrevHashMismatch => "prev_hash_mismatch",
        BrokenKind::VersionGap => "version_gap",
    }
}

pub(crate) use caseline_timeline::timestamp as to_timestamp;

/// Mounts AuditService on a server: its methods with the trust layer, its gRPC service.
pub fn mount(
    host: &caseline_host::Host,
    services: caseline_server::Services,
) -> caseline_server::Services {
    host.trust().register(METHODS);
    services.add_service(server(
        host.projection("audit.break-glass"),
        host.index("audit.listed"),
    ))
}
