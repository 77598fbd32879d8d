//! The gate of a command on an aggregate of a case: the caller's standing on the case,
//! asked of the one policy on every state the command is decided on.

use caseline_aggregate::{Aggregate, Gate, Loaded};
use caseline_eventlog::Uuid;
use caseline_policy::{Action, Entry};
use caseline_server::ApiError;

use crate::Call;

/// The usual gate of a command on a case's aggregate (a plan, a claim, a complaint):
/// `action` on the case, decided with its team as the log says now and recorded on the
/// case's access history. A case the caller may not see makes the aggregate NOT_FOUND
/// under its own id, never naming the case.
#[derive(Clone, Copy, Debug)]
pub struct CaseGate<'a> {
    pub call: &'a Call,
    pub case_id: Uuid,
    pub action: Action,
    /// Facts of the entry the command touches (a health goal).
    pub health_goal: bool,
    /// What the aggregate is called in a NOT_FOUND (`plan`, `claim`, `complaint`).
    pub kind: &'static str,
}

impl CaseGate<'_> {
    /// Decides and records; `id` is the aggregate's id (`None` while creating it, when a
    /// hidden case is NOT_FOUND as the case the caller named).
    pub async fn admit(&self, id: Option<Uuid>) -> Result<(), ApiError> {
        let call = self.call;
        let team = call.trust_teams().current(self.case_id).await?;
        let decision = call.decide_for(
            team.as_ref(),
            self.action,
            Entry {
                addressed_to: None,
                health_goal: self.health_goal,
            },
        );
        match (call.enforce(self.case_id, decision), id) {
            (Err(ApiError::NotFound { .. }), Some(id)) => Err(ApiError::NotFound {
                kind: self.kind,
                id: id.to_string(),
            }),
            (result, _) => result,
        }
    }
}

impl<A: Aggregate> Gate<A> for CaseGate<'_> {
    async fn check(&self, id: Uuid, _: &Loaded<A>) -> Result<(), ApiError> {
        self.admit(Some(id)).await
    }
}
