//! The review list of break-glass use, followed from the log.

use caseline_audit::Call;
use caseline_auth::Role;
use caseline_eventlog::{Position, Uuid};
use caseline_policy::teams::{BREAK_GLASS_GRANTED, Grant, grant_from_event};
use caseline_proto::prost::Message;
use caseline_proto::v1::events::BreakGlassGranted;
use caseline_proto::v1::{BreakGlassUse, ListBreakGlassUsesRequest, ListBreakGlassUsesResponse};
use caseline_server::ApiError;
use caseline_vault::{Opened, Sealed};
use tokio::sync::Mutex;

use crate::history::Pager;
use crate::{from_timestamp, invalid, to_timestamp};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// Every grant in the log, in log order, with the position it was recorded at.
#[derive(Debug, Default)]
pub(crate) struct BreakGlassLog {
    state: Mutex<Followed>,
}

#[derive(Debug, Default)]
struct Followed {
    after: Position,
    grants: Vec<(Position, Uuid, Grant)>,
}

impl BreakGlassLog {
    /// Catches up with the log, then answers one page for the caller.
    pub(crate) async fn list(
        &self,
        call: &Call,
        request: ListBreakGlassUsesRequest,
    ) -> Result<ListBreakGlassUsesResponse, ApiError> {
        let since = request
            .since
            .as_ref()
            .map(|t| from_timestamp("since", t))
            .transpose()?;
        let size = match request.page_size {
            0 => DEFAULT_PAGE,
            n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let cursor = match request.page_token.as_str() {
            "" => Position::START,
            token => token
                .parse::<Position>()
                .map_err(|_| invalid("page_token", "must be a token from a previous response"))?,
        };

        let candidates: Vec<(Position, Uuid, Grant)> = {
            let mut state = self.state.lock().await;
            catch_up(call, &mut state).await?;
            state
                .grants
                .iter()
                .filter(|(p, _, g)| *p > cursor && since.is_none_or(|s| g.granted_at >= s))
                .cloned()
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

async fn catch_up(call: &Call, state: &mut Followed) -> Result<(), ApiError> {
    let mut events = Pager::all_after(state.after);
    while let Some(event) = events.next(&**call.log()).await? {
        state.after = event.position;
        if event.event_type != BREAK_GLASS_GRANTED {
            continue;
        }
        let (Some(case_id), Ok(payload)) = (
            event.metadata.case_id,
            BreakGlassGranted::decode(event.data.as_slice()),
        ) else {
            tracing::error!(position = %event.position, "break-glass grant does not decode");
            continue;
        };
        state
            .grants
            .push((event.position, case_id, grant_from_event(payload)));
    }
    Ok(())
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
