//! The caller's standing on a referral, asked of the one policy and recorded on the
//! access history of the referral's case (or contact).

use caseline_eventlog::Uuid;
use caseline_policy::{CaseTeam, Decision, ReferralFacts, ReferralStep};
use caseline_server::ApiError;
use caseline_trust::Call;

use crate::store::{Loaded, Owner};

/// What a command must be allowed, asked again on every state it is decided on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Authorise<'a> {
    /// A step on the referral as loaded.
    Step(ReferralStep),
    /// Making it: the referral does not exist yet; the standing is the maker's on its
    /// case (or contact).
    Make {
        owner: Owner,
        from_agency: &'a str,
        to_agency: &'a str,
    },
}

impl Authorise<'_> {
    /// Asks the policy with the case's team as the log says now, records the
    /// decision, and answers as it says.
    pub async fn check(
        self,
        call: &Call,
        referral_id: Uuid,
        loaded: &Loaded,
    ) -> Result<(), ApiError> {
        match self {
            Authorise::Step(step) => {
                let decision = standing(call, loaded, step).await?;
                admit(call, referral_id, loaded, step, decision)
            }
            Authorise::Make {
                owner,
                from_agency,
                to_agency,
            } => {
                let not_found = || ApiError::NotFound {
                    kind: if matches!(owner, Owner::Case(_)) {
                        "case"
                    } else {
                        "contact"
                    },
                    id: owner.id().to_string(),
                };
                let team = match owner {
                    // No such case: NOT_FOUND, never a referral nobody can see (and
                    // never a way to tell absent cases from hidden ones).
                    Owner::Case(id) => match call.trust_teams().current(id).await? {
                        Some(team) => Some(team),
                        None => {
                            call.enforce(id, Decision::deny(caseline_policy::Reason::NoSuchCase))
                                .ok();
                            return Err(not_found());
                        }
                    },
                    // A contact no agency recorded does not exist.
                    Owner::Contact(id) if from_agency.is_empty() => {
                        // Recorded with the id asked for, so probes can be searched.
                        call.returned([id]);
                        return Err(not_found());
                    }
                    Owner::Contact(_) => None,
                };
                let decision = call.decide_referral(
                    ReferralStep::Make,
                    ReferralFacts {
                        from_agency,
                        to_agency,
                        team: team.as_ref(),
                        awaiting_decision: true,
                    },
                );
                match call.enforce(owner.id(), decision) {
                    Err(ApiError::NotFound { .. }) => Err(not_found()),
                    other => other,
                }
            }
        }
    }
}

pub(crate) fn referral_not_found(referral_id: Uuid) -> ApiError {
    ApiError::NotFound {
        kind: "referral",
        id: referral_id.to_string(),
    }
}

/// The caller's standing on a referral: what the policy decides for `step`, with the
/// team of its case as the log says now. Nothing is recorded.
pub(crate) async fn standing(
    call: &Call,
    loaded: &Loaded,
    step: ReferralStep,
) -> Result<Decision, ApiError> {
    let (Some(made), Some(owner)) = (&loaded.state.made, loaded.owner()) else {
        return Ok(Decision::deny(caseline_policy::Reason::NoSuchCase));
    };
    let team: Option<CaseTeam> = match owner {
        Owner::Case(case_id) => match call.trust_teams().current(case_id).await? {
            Some(team) => Some(team),
            // A referral of a case that is gone (never so in a sound log): hidden.
            None => return Ok(Decision::deny(caseline_policy::Reason::NoSuchCase)),
        },
        Owner::Contact(_) => None,
    };
    Ok(call.decide_referral(
        step,
        ReferralFacts {
            from_agency: &made.from_agency,
            to_agency: &made.to_agency,
            team: team.as_ref(),
            awaiting_decision: loaded.state.awaiting_decision(),
        },
    ))
}

/// Records `decision` on the referral's case (or contact) and answers as the policy
/// says. A referral the caller may not see is NOT_FOUND under its own id (never the
/// case's, which they may not learn).
pub(crate) fn admit(
    call: &Call,
    referral_id: Uuid,
    loaded: &Loaded,
    step: ReferralStep,
    decision: Decision,
) -> Result<(), ApiError> {
    // Every call about a referral is recorded with its id (probes of absent ones too).
    call.returned([referral_id]);
    let Some(owner) = loaded.owner() else {
        return Err(referral_not_found(referral_id));
    };
    let hidden = step == ReferralStep::View && !decision.is_allowed();
    match call.enforce(owner.id(), decision) {
        Ok(()) => Ok(()),
        Err(ApiError::NotFound { .. }) => Err(referral_not_found(referral_id)),
        Err(_) if hidden => Err(referral_not_found(referral_id)),
        Err(e) => Err(e),
    }
}
