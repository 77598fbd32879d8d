//! The referral aggregate, pure: `decide(&state, command) -> events` and
//! `evolve(state, &event) -> state`. No I/O: sealed fields arrive sealed, ids and
//! instants arrive made.
//!
//! A referral is made, then (optionally acknowledged and) accepted or declined by the
//! receiving agency; an accepted referral is completed by its outcome. The referring
//! side may withdraw it until it is declined or completed. One that is not accepted,
//! or not completed, by its due time is escalated, once.

use std::time::Duration;

use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    ReferralAccepted, ReferralAcknowledged, ReferralAttached, ReferralDeclined, ReferralEscalated,
    ReferralMade, ReferralOutcomeRecorded, ReferralWithdrawn,
};
use caseline_proto::v1::{ConsentBasis, EscalationCause, ReferralStatus, ReferralUrgency};

/// How long the receiving agency has to act, by urgency.
pub fn time_allowed(urgency: ReferralUrgency) -> Option<Duration> {
    const HOUR: u64 = 60 * 60;
    match urgency {
        ReferralUrgency::Emergency => Some(Duration::from_secs(24 * HOUR)),
        ReferralUrgency::Urgent => Some(Duration::from_secs(72 * HOUR)),
        ReferralUrgency::Routine => Some(Duration::from_secs(10 * 24 * HOUR)),
        ReferralUrgency::Unspecified => None,
    }
}

/// The due time (unix ms) of a referral of `urgency` made at `made_at_ms`.
pub fn due_by(urgency: ReferralUrgency, made_at_ms: i64) -> Option<i64> {
    let allowed = i64::try_from(time_allowed(urgency)?.as_millis()).ok()?;
    made_at_ms.checked_add(allowed)
}

caseline_aggregate::events! {
    /// Everything that happens to a referral, in its stream `referral-<id>`.
    pub enum Event for ReferralState {
        Made(ReferralMade) = types::REFERRAL_MADE,
        Acknowledged(ReferralAcknowledged) = types::REFERRAL_ACKNOWLEDGED,
        Accepted(ReferralAccepted) = types::REFERRAL_ACCEPTED,
        Declined(ReferralDeclined) = types::REFERRAL_DECLINED,
        OutcomeRecorded(ReferralOutcomeRecorded) = types::REFERRAL_OUTCOME_RECORDED,
        Withdrawn(ReferralWithdrawn) = types::REFERRAL_WITHDRAWN,
        Escalated(ReferralEscalated) = types::REFERRAL_ESCALATED,
        Attached(ReferralAttached) = types::REFERRAL_ATTACHED,
    }
}

/// A referral as its events say.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferralState {
    /// The making event; `None` before the referral exists.
    pub made: Option<ReferralMade>,
    pub status: ReferralStatus,
    /// Who accepted (subject, role).
    pub accepted_by: Option<(String, String)>,
    pub escalation: Option<EscalationCause>,
}

impl ReferralState {
    pub fn exists(&self) -> bool {
        self.made.is_some()
    }

    /// Made or acknowledged: the receiving agency has not decided.
    pub fn awaiting_decision(&self) -> bool {
        matches!(
            self.status,
            ReferralStatus::Made | ReferralStatus::Acknowledged
        )
    }

    /// Someone still has to act on it (decide, or record the outcome).
    pub fn is_open(&self) -> bool {
        self.awaiting_decision() || self.status == ReferralStatus::Accepted
    }

    /// Open past its due time at `now_ms`.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.is_open()
            && self
                .made
                .as_ref()
                .is_some_and(|m| now_ms >= m.due_by_unix_ms)
    }
}

/// What a caller asks of a referral.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Make the referral at `now_ms`; its due time follows from its urgency.
    Make {
        made: ReferralMade,
        now_ms: i64,
    },
    Acknowledge,
    Accept {
        subject: String,
        role: String,
    },
    Decline {
        reason_sealed: Vec<u8>,
        suggested_service: i32,
    },
    RecordOutcome {
        outcome_sealed: Vec<u8>,
    },
    Withdraw {
        reason_sealed: Vec<u8>,
    },
    /// The escalation process, at `now_ms`.
    Escalate {
        now_ms: i64,
    },
    /// A case was opened from the contact the referral was made from: the referral
    /// moves onto it. The sealed fields arrive sealed again with the case's key; where
    /// the referral stands is filled in from its state.
    Attach(Box<ReferralAttached>),
}

/// Why a command cannot apply: no such referral (`Missing`), a field breaking a rule
/// of referrals (`Invalid`), or a rule of the referral's life (`Precondition`).
pub use caseline_aggregate::Refusal as DomainError;

impl caseline_aggregate::Rules for ReferralState {
    type Command = Command;
    type Event = Event;

    fn decide(&self, command: Command) -> Result<Vec<Event>, DomainError> {
        decide(self, command)
    }

    fn evolve(self, event: &Event, _: &str) -> Self {
        evolve(self, event)
    }
}

use DomainError::{Invalid, Precondition};

/// Why a referral in `status` takes no more steps of the receiving agency.
fn settled(status: ReferralStatus) -> DomainError {
    Precondition(match status {
        ReferralStatus::Accepted => "the referral was already accepted",
        ReferralStatus::Completed => "the referral is already completed",
        ReferralStatus::Declined => "the referral was declined",
        ReferralStatus::Withdrawn => "the referral was withdrawn",
        _ => "the referral cannot take this step",
    })
}

/// Decides what `command` does to the referral in `state`.
pub fn decide(state: &ReferralState, command: Command) -> Result<Vec<Event>, DomainError> {
    if let Command::Make { made, now_ms } = command {
        if state.exists() {
            return Err(Precondition("the referral already exists"));
        }
        return make(made, now_ms).map(|m| vec![Event::Made(m)]);
    }
    let Some(made) = &state.made else {
        return Err(DomainError::Missing);
    };
    let (referral_id, from_agency, to_agency) = (
        made.referral_id.clone(),
        made.from_agency.clone(),
        made.to_agency.clone(),
    );
    let event = match command {
        Command::Make { .. } => return Err(Precondition("the referral already exists")),
        Command::Attach(attached) => {
            if made.contact_id.is_empty() {
                return Err(Precondition(
                    "only a referral made from a helpline contact is attached to a case",
                ));
            }
            if !made.case_id.is_empty() {
                return Err(Precondition("the referral already belongs to a case"));
            }
            if attached.case_id.is_empty() {
                return Err(Invalid {
                    field: "case_id",
                    reason: "is required",
                });
            }
            let (accepted_by, accepted_role) = state.accepted_by.clone().unwrap_or_default();
            Event::Attached(ReferralAttached {
                referral_id,
                from_agency,
                to_agency,
                contact_id: made.contact_id.clone(),
                service: made.service,
                urgency: made.urgency,
                due_by_unix_ms: made.due_by_unix_ms,
                consent: made.consent,
                status: state.status as i32,
                accepted_by,
                accepted_role,
                escalation: state.escalation.map_or(0, |e| e as i32),
                ..*attached
            })
        }
        Command::Acknowledge => match state.status {
            ReferralStatus::Made => Event::Acknowledged(ReferralAcknowledged {
                referral_id,
                from_agency,
                to_agency,
            }),
            ReferralStatus::Acknowledged => {
                return Err(Precondition("the referral was already acknowledged"));
            }
            s => return Err(settled(s)),
        },
        Command::Accept { subject, role } => {
            if !state.awaiting_decision() {
                return Err(settled(state.status));
            }
            Event::Accepted(ReferralAccepted {
                referral_id,
                from_agency,
                to_agency,
                subject,
                role,
            })
        }
        Command::Decline {
            reason_sealed,
            suggested_service,
        } => {
            if !state.awaiting_decision() {
                return Err(settled(state.status));
            }
            if reason_sealed.is_empty() {
                return Err(Invalid {
                    field: "reason",
                    reason: "a decline needs a reason",
                });
            }
            Event::Declined(ReferralDeclined {
                referral_id,
                from_agency,
                to_agency,
                reason_sealed,
                suggested_service,
            })
        }
        Command::RecordOutcome { outcome_sealed } => match state.status {
            ReferralStatus::Accepted => {
                if outcome_sealed.is_empty() {
                    return Err(Invalid {
                        field: "outcome",
                        reason: "say what was done",
                    });
                }
                Event::OutcomeRecorded(ReferralOutcomeRecorded {
                    referral_id,
                    from_agency,
                    to_agency,
                    outcome_sealed,
                })
            }
            ReferralStatus::Made | ReferralStatus::Acknowledged => {
                return Err(Precondition(
                    "the referral was not accepted: an outcome follows acceptance",
                ));
            }
            ReferralStatus::Completed => {
                return Err(Precondition("the referral's outcome is already recorded"));
            }
            s => return Err(settled(s)),
        },
        Command::Withdraw { reason_sealed } => {
            if !state.is_open() {
                return Err(settled(state.status));
            }
            if reason_sealed.is_empty() {
                return Err(Invalid {
                    field: "reason",
                    reason: "a withdrawal needs a reason",
                });
            }
            Event::Withdrawn(ReferralWithdrawn {
                referral_id,
                from_agency,
                to_agency,
                reason_sealed,
            })
        }
        Command::Escalate { now_ms } => {
            if state.escalation.is_some() {
                return Err(Precondition("the referral was already escalated"));
            }
            if !state.is_open() {
                return Err(settled(state.status));
            }
            if now_ms < made.due_by_unix_ms {
                return Err(Precondition("the referral is not due yet"));
            }
            let cause = if state.status == ReferralStatus::Accepted {
                EscalationCause::NotCompleted
            } else {
                EscalationCause::NotAccepted
            };
            Event::Escalated(ReferralEscalated {
                referral_id,
                from_agency,
                to_agency,
                cause: cause as i32,
                due_by_unix_ms: made.due_by_unix_ms,
            })
        }
    };
    Ok(vec![event])
}

/// The rules of a new referral: known service and urgency, a reason, and consent given
/// or a legal basis stated. Its due time follows from its urgency.
fn make(mut m: ReferralMade, now_ms: i64) -> Result<ReferralMade, DomainError> {
    if m.from_agency.is_empty() || m.to_agency.is_empty() {
        return Err(Invalid {
            field: "to_agency",
            reason: "is required",
        });
    }
    if m.from_agency == m.to_agency {
        return Err(Invalid {
            field: "to_agency",
            reason: "must be another agency than the referring one",
        });
    }
    if m.case_id.is_empty() == m.contact_id.is_empty() {
        return Err(Invalid {
            field: "case_id",
            reason: "give exactly one of case_id and contact_id",
        });
    }
    if !matches!(
        caseline_proto::v1::ServiceType::try_from(m.service),
        Ok(s) if s != caseline_proto::v1::ServiceType::Unspecified
    ) {
        return Err(Invalid {
            field: "service",
            reason: "is required",
        });
    }
    let urgency = ReferralUrgency::try_from(m.urgency).unwrap_or_default();
    let Some(due) = due_by(urgency, now_ms) else {
        return Err(Invalid {
            field: "urgency",
            reason: "is required",
        });
    };
    m.due_by_unix_ms = due;
    if m.reason_sealed.is_empty() {
        return Err(Invalid {
            field: "reason",
            reason: "a referral needs a reason",
        });
    }
    match ConsentBasis::try_from(m.consent).unwrap_or_default() {
        ConsentBasis::Unspecified => {
            return Err(Invalid {
                field: "consent",
                reason: "consent given by the child or a guardian, or not required with a stated legal basis",
            });
        }
        ConsentBasis::NotRequired if m.legal_basis_sealed.is_empty() => {
            return Err(Invalid {
                field: "legal_basis",
                reason: "state the legal basis when consent is not required",
            });
        }
        ConsentBasis::GivenByChild | ConsentBasis::GivenByGuardian
            if !m.legal_basis_sealed.is_empty() =>
        {
            return Err(Invalid {
                field: "legal_basis",
                reason: "only when consent is not required",
            });
        }
        _ => {}
    }
    Ok(m)
}

/// Applies one event.
pub fn evolve(mut state: ReferralState, event: &Event) -> ReferralState {
    match event {
        Event::Made(m) => {
            state.made = Some(m.clone());
            state.status = ReferralStatus::Made;
        }
        Event::Acknowledged(_) => state.status = ReferralStatus::Acknowledged,
        Event::Accepted(a) => {
            state.status = ReferralStatus::Accepted;
            state.accepted_by = Some((a.subject.clone(), a.role.clone()));
        }
        Event::Declined(_) => state.status = ReferralStatus::Declined,
        Event::OutcomeRecorded(_) => state.status = ReferralStatus::Completed,
        Event::Withdrawn(_) => state.status = ReferralStatus::Withdrawn,
        Event::Escalated(e) => {
            state.escalation = Some(EscalationCause::try_from(e.cause).unwrap_or_default());
        }
        Event::Attached(a) => {
            if let Some(made) = &mut state.made {
                made.case_id = a.case_id.clone();
                made.reason_sealed = a.reason_sealed.clone();
                made.legal_basis_sealed = a.legal_basis_sealed.clone();
            }
        }
    }
    state
}
