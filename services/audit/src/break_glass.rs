//! The review list of break-glass use, followed from the log.

use caseline_auth::Role;
use caseline_trust::Call;
use std::sync::Arc;

use caseline_eventlog::{Interest, Position, RecordedEvent, Uuid};
use caseline_policy::teams::{BREAK_GLASS_GRANTED, Grant, grant_from_event};
use caseline_projection::{Fold, Followed};
use caseline_proto::prost::Message;
use caseline_proto::v1::events::BreakGlassGranted;
use caseline_proto::v1::{BreakGlassUse, ListBreakGlassUsesResponse};
use caseline_server::ApiError;
use caseline_vault::{Opened, Sealed};

use crate::command::ListBreakGlassUses;
use crate::to_timestamp;

/// Every break-glass grant in the log, in log order: the projection behind the review
/// list, checkpointed (`caseline_projection`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    grants: Vec<Recorded>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Recorded {
    #[serde(with = "caseline_projection::positions")]
    position: Position,
    case_id: Uuid,
    grant: Grant,
}

impl Fold for Grants {
    const FORMAT: u32 = caseline_proto::snapshot_format(1);
    type Error = ApiError;
    const INTEREST: Interest = Interest::of(&[], &[], &[BREAK_GLASS_GRANTED]);

    fn reads(event: &RecordedEvent) -> bool {
        event.event_type == BREAK_GLASS_GRANTED
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApiError> {
        let (Some(case_id), Ok(payload)) = (
            event.metadata.case_id,
            BreakGlassGranted::decode(event.data.as_slice()),
        ) else {
            tracing::error!(position = %event.position, "break-glass grant does not decode");
            return Ok(());
        };
        self.grants.push(Recorded {
            position: event.position,
            case_id,
            grant: grant_from_event(payload),
        });
        Ok(())
    }
}

/// The review list of break-glass use.
#[derive(Debug)]
pub(crate) struct BreakGlassLog {
    grants: Arc<Followed<Grants>>,
}

impl BreakGlassLog {
    pub(crate) fn new(grants: Arc<Followed<Grants>>) -> Self {
        Self { grants }
    }

    /// Catches up with the log, then answers one page for the caller.
    pub(crate) async fn list(
        &self,
        call: &Call,
        ListBreakGlassUses {
            since,
            size,
            cursor,
        }: ListBreakGlassUses,
    ) -> Result<ListBreakGlassUsesResponse, ApiError> {
        let candidates: Vec<(Position, Uuid, Grant)> = {
            let state = self.grants.view().await?;
            state
                .grants
                .iter()
                .filter(|r| r.position > cursor && since.is_none_or(|s| r.grant.granted_at >= s))
                .map(|r| (r.position, r.case_id, r.grant.clone()))
                .collect()
        };

        let mut uses = Vec::new();
        let mut last = None;
        for (position, case_id, grant) in candidates {
            if uses.len() == size {
                break;
            }
            last = Some(position);
            let reason = match call.role() {
                Role::Supervisor => {
                    if !self.supervises(call, case_id, &grant).await? {
                        continue;
                    }
                    open_reason(call, case_id, &grant).await?
                }
                // Auditors: that it happened, by whom, and the purpose code; never the text.
                _ => String::new(),
            };
            uses.push(BreakGlassUse {
                case_id: case_id.to_string(),
                subject: grant.subject,
                role: grant.role,
                agency: grant.agency,
                purpose: grant.purpose,
                reason,
                granted_at: Some(to_timestamp(grant.granted_at)),
                expires_at: Some(to_timestamp(grant.expires_at)),
            });
        }
        call.returned(uses.iter().map(|u| u.case_id.clone()));
        let next_page_token = if uses.len() == size {
            last.map(|p| p.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListBreakGlassUsesResponse {
            uses,
            next_page_token,
        })
    }

    /// A supervisor reviews grants to their own staff and grants on cases their agency
    /// is on.
    async fn supervises(
        &self,
        call: &Call,
        case_id: Uuid,
        grant: &Grant,
    ) -> Result<bool, ApiError> {
        if grant.agency == call.agency() {
            return Ok(true);
        }
        let team = call.trust_teams().current(case_id).await?;
        Ok(team.is_some_and(|t| t.has_agency(call.agency())))
    }
}

async fn open_reason(call: &Call, case_id: Uuid, grant: &Grant) -> Result<String, ApiError> {
    let Ok(sealed) = Sealed::from_bytes(grant.reason_sealed.clone()) else {
        return Ok("(unreadable)".into());
    };
    match call.vault().open_text(case_id, &sealed).await {
        Ok(Opened::Plain(text)) => Ok(text.expose().to_owned()),
        Ok(Opened::Erased) => Ok("(erased)".into()),
        Err(caseline_vault::Error::Unavailable(e)) => {
            tracing::error!(error = %e, "key store unavailable");
            Err(ApiError::Unavailable(
                "the key store is unavailable, retry later",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, %case_id, "break-glass reason does not open");
            Ok("(unreadable)".into())
        }
    }
}
