//! The claim and complaint aggregates, pure: `decide` and `evolve` for each. No I/O:
//! sealed fields arrive sealed, ids and dates arrive made and checked, amounts arrive
//! with a known currency.
//!
//! A claim is filed, submitted, decided (awarded, partly awarded, rejected), perhaps
//! appealed and decided again, paid in one or more payments never above the award, and
//! closed. A complaint is lodged, acknowledged, found on (upheld, partly, not upheld,
//! with a remedy), perhaps escalated to an independent body, and closed.

use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    AppealLodged, ClaimClosed, ClaimDecided, ClaimFiled, ClaimSubmitted, ComplaintAcknowledged,
    ComplaintClosed, ComplaintEscalated, ComplaintFindingRecorded, ComplaintLodged,
    PaymentRecorded,
};
use caseline_proto::v1::{ClaimOutcome, ClaimStatus, ComplaintFinding, ComplaintStatus, Money};

/// Why a command was refused: no such claim or complaint (`Missing`), a field
/// breaking a rule (`Invalid`), or a rule of the claim's or complaint's life
/// (`Precondition`).
pub use caseline_aggregate::Refusal as DomainError;

use DomainError::{Invalid, Precondition};

caseline_aggregate::events! {
    /// Everything that happens to a claim, in its stream `claim-<id>`.
    pub enum ClaimEvent for ClaimState {
        Filed(ClaimFiled) = types::CLAIM_FILED,
        Submitted(ClaimSubmitted) = types::CLAIM_SUBMITTED,
        Decided(ClaimDecided) = types::CLAIM_DECIDED,
        Appealed(AppealLodged) = types::APPEAL_LODGED,
        Paid(PaymentRecorded) = types::PAYMENT_RECORDED,
        Closed(ClaimClosed) = types::CLAIM_CLOSED,
    }
}

caseline_aggregate::events! {
    /// Everything that happens to a complaint, in its stream `complaint-<id>`.
    pub enum ComplaintEvent for ComplaintState {
        Lodged(ComplaintLodged) = types::COMPLAINT_LODGED,
        Acknowledged(ComplaintAcknowledged) = types::COMPLAINT_ACKNOWLEDGED,
        Found(ComplaintFindingRecorded) = types::COMPLAINT_FINDING_RECORDED,
        Escalated(ComplaintEscalated) = types::COMPLAINT_ESCALATED,
        Closed(ComplaintClosed) = types::COMPLAINT_CLOSED,
    }
}

// ---------------------------------------------------------------------------------------
// Claims

/// A claim as its events say.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClaimState {
    pub filed: Option<ClaimFiled>,
    pub status: ClaimStatus,
    pub submitted: Option<ClaimSubmitted>,
    /// The latest decision (on appeal, if any).
    pub decision: Option<ClaimDecided>,
    pub appeal: Option<AppealLodged>,
    pub payments: Vec<PaymentRecorded>,
}

impl ClaimState {
    pub fn exists(&self) -> bool {
        self.filed.is_some()
    }

    pub fn currency(&self) -> &str {
        self.filed
            .as_ref()
            .and_then(|f| f.amount_claimed.as_ref())
            .map_or("", |m| m.currency.as_str())
    }

    pub fn claimed(&self) -> i64 {
        self.filed
            .as_ref()
            .and_then(|f| f.amount_claimed.as_ref())
            .map_or(0, |m| m.minor_units)
    }

    pub fn awarded(&self) -> i64 {
        self.decision
            .as_ref()
            .and_then(|d| d.amount_awarded.as_ref())
            .map_or(0, |m| m.minor_units)
    }

    /// The sum of the payments (checked when each was recorded, so it fits).
    pub fn paid(&self) -> i64 {
        self.payments
            .iter()
            .filter_map(|p| p.amount.as_ref())
            .fold(0i64, |sum, m| sum.saturating_add(m.minor_units))
    }

    pub fn outstanding(&self) -> i64 {
        self.awarded().saturating_sub(self.paid())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClaimCommand {
    File(ClaimFiled),
    Submit(ClaimSubmitted),
    Decide(ClaimDecided),
    Appeal(AppealLodged),
    Pay(PaymentRecorded),
    Close(ClaimClosed),
}

/// Decides what `command` does to the claim in `state`.
pub fn decide_claim(
    state: &ClaimState,
    command: ClaimCommand,
) -> Result<Vec<ClaimEvent>, DomainError> {
    if let ClaimCommand::File(filed) = command {
        if state.exists() {
            return Err(Precondition("the claim already exists"));
        }
        let Some(amount) = &filed.amount_claimed else {
            return Err(Invalid {
                field: "amount_claimed",
                reason: "is required",
            });
        };
        if amount.minor_units <= 0 {
            return Err(Invalid {
                field: "amount_claimed.minor_units",
                reason: "must be a positive number of minor units",
            });
        }
        return Ok(vec![ClaimEvent::Filed(filed)]);
    }
    let Some(filed) = &state.filed else {
        return Err(DomainError::Missing);
    };
    if state.status == ClaimStatus::Closed {
        return Err(Precondition("the claim is closed"));
    }
    let claim_id = filed.claim_id.clone();
    let event = match command {
        ClaimCommand::File(_) => return Err(Precondition("the claim already exists")),
        ClaimCommand::Submit(s) => {
            if state.status != ClaimStatus::Filed {
                return Err(Precondition("the claim was already submitted"));
            }
            ClaimEvent::Submitted(ClaimSubmitted { claim_id, ..s })
        }
        ClaimCommand::Decide(d) => {
            if !matches!(state.status, ClaimStatus::Submitted | ClaimStatus::Appealed) {
                return Err(Precondition("a decision follows submission (or an appeal)"));
            }
            award_allowed(state, &d)?;
            // A rejection records nothing awarded, in the claim's currency.
            let amount_awarded = if d.outcome == ClaimOutcome::Rejected as i32 {
                Some(money(0, state.currency()))
            } else {
                d.amount_awarded.clone()
            };
            ClaimEvent::Decided(ClaimDecided {
                claim_id,
                on_appeal: state.status == ClaimStatus::Appealed,
                amount_awarded,
                ..d
            })
        }
        ClaimCommand::Appeal(a) => {
            if state.status != ClaimStatus::Decided {
                return Err(Precondition("only a decided claim is appealed"));
            }
            if state.appeal.is_some() {
                return Err(Precondition("the decision was already appealed"));
            }
            ClaimEvent::Appealed(AppealLodged { claim_id, ..a })
        }
        ClaimCommand::Pay(p) => {
            if !matches!(state.status, ClaimStatus::Decided | ClaimStatus::Appealed) {
                return Err(Precondition("payments follow a decision"));
            }
            let Some(amount) = &p.amount else {
                return Err(Invalid {
                    field: "amount",
                    reason: "is required",
                });
            };
            if amount.currency != state.currency() {
                return Err(Invalid {
                    field: "amount.currency",
                    reason: "must be the claim's currency",
                });
            }
            if amount.minor_units <= 0 {
                return Err(Invalid {
                    field: "amount.minor_units",
                    reason: "must be a positive number of minor units",
                });
            }
            let total = state
                .paid()
                .checked_add(amount.minor_units)
                .ok_or(Invalid {
                    field: "amount.minor_units",
                    reason: "is too large",
                })?;
            if total > state.awarded() {
                return Err(Precondition(
                    "amount: the payment would exceed what is outstanding of the award",
                ));
            }
            ClaimEvent::Paid(PaymentRecorded { claim_id, ..p })
        }
        ClaimCommand::Close(c) => ClaimEvent::Closed(ClaimClosed { claim_id, ..c }),
    };
    Ok(vec![event])
}

/// The rules of an award: the claim's currency; nothing when rejected; the whole claim
/// (or more, only when the decision says so) when awarded; less than the claim when
/// partly awarded; never below what was paid already.
fn award_allowed(state: &ClaimState, d: &ClaimDecided) -> Result<(), DomainError> {
    let outcome = ClaimOutcome::try_from(d.outcome).unwrap_or_default();
    let amount = d.amount_awarded.as_ref().map_or(0, |m| m.minor_units);
    if let Some(m) = &d.amount_awarded
        && m.minor_units != 0
        && m.currency != state.currency()
    {
        return Err(Invalid {
            field: "amount_awarded.currency",
            reason: "must be the claim's currency",
        });
    }
    let claimed = state.claimed();
    match outcome {
        ClaimOutcome::Unspecified => {
            return Err(Invalid {
                field: "outcome",
                reason: "is required",
            });
        }
        ClaimOutcome::Rejected if amount != 0 => {
            return Err(Invalid {
                field: "amount_awarded.minor_units",
                reason: "a rejection awards nothing",
            });
        }
        ClaimOutcome::Awarded if amount < claimed => {
            return Err(Invalid {
                field: "amount_awarded.minor_units",
                reason: "less than claimed is a partial award",
            });
        }
        ClaimOutcome::PartlyAwarded if amount <= 0 || amount >= claimed => {
            return Err(Invalid {
                field: "amount_awarded.minor_units",
                reason: "a partial award is more than nothing and less than claimed",
            });
        }
        _ => {}
    }
    if amount > claimed && !d.exceeds_claim {
        return Err(Invalid {
            field: "amount_awarded.minor_units",
            reason: "more than claimed: set exceeds_claim if the decision says so",
        });
    }
    if amount < state.paid() {
        return Err(Precondition(
            "amount_awarded: the award would be less than what was paid already",
        ));
    }
    Ok(())
}

/// Applies one claim event.
pub fn evolve_claim(mut state: ClaimState, event: &ClaimEvent) -> ClaimState {
    match event {
        ClaimEvent::Filed(f) => {
            state.filed = Some(f.clone());
            state.status = ClaimStatus::Filed;
        }
        ClaimEvent::Submitted(s) => {
            state.submitted = Some(s.clone());
            state.status = ClaimStatus::Submitted;
        }
        ClaimEvent::Decided(d) => {
            state.decision = Some(d.clone());
            state.status = ClaimStatus::Decided;
        }
        ClaimEvent::Appealed(a) => {
            state.appeal = Some(a.clone());
            state.status = ClaimStatus::Appealed;
        }
        ClaimEvent::Paid(p) => state.payments.push(p.clone()),
        ClaimEvent::Closed(_) => state.status = ClaimStatus::Closed,
    }
    state
}

/// An amount in the claim's currency.
pub fn money(minor_units: i64, currency: &str) -> Money {
    Money {
        minor_units,
        currency: currency.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Complaints

/// A complaint as its events say.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComplaintState {
    pub lodged: Option<ComplaintLodged>,
    pub status: ComplaintStatus,
    pub finding: Option<ComplaintFindingRecorded>,
    pub escalation: Option<ComplaintEscalated>,
}

impl ComplaintState {
    pub fn exists(&self) -> bool {
        self.lodged.is_some()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ComplaintCommand {
    Lodge(ComplaintLodged),
    Acknowledge,
    RecordFinding(ComplaintFindingRecorded),
    Escalate(ComplaintEscalated),
    Close(ComplaintClosed),
}

/// Decides what `command` does to the complaint in `state`.
pub fn decide_complaint(
    state: &ComplaintState,
    command: ComplaintCommand,
) -> Result<Vec<ComplaintEvent>, DomainError> {
    if let ComplaintCommand::Lodge(lodged) = command {
        if state.exists() {
            return Err(Precondition("the complaint already exists"));
        }
        if lodged.description_sealed.is_empty() {
            return Err(Invalid {
                field: "description",
                reason: "is required",
            });
        }
        return Ok(vec![ComplaintEvent::Lodged(lodged)]);
    }
    let Some(lodged) = &state.lodged else {
        return Err(DomainError::Missing);
    };
    if state.status == ComplaintStatus::Closed {
        return Err(Precondition("the complaint is closed"));
    }
    let complaint_id = lodged.complaint_id.clone();
    let event = match command {
        ComplaintCommand::Lodge(_) => return Err(Precondition("the complaint already exists")),
        ComplaintCommand::Acknowledge => {
            if state.status == ComplaintStatus::Acknowledged {
                return Err(Precondition("the complaint was already acknowledged"));
            }
            if state.status != ComplaintStatus::Lodged {
                return Err(Precondition("the complaint is past acknowledgement"));
            }
            ComplaintEvent::Acknowledged(ComplaintAcknowledged { complaint_id })
        }
        ComplaintCommand::RecordFinding(f) => {
            if state.finding.is_some() {
                return Err(Precondition("the complaint already has a finding"));
            }
            let finding = ComplaintFinding::try_from(f.finding).unwrap_or_default();
            if finding == ComplaintFinding::Unspecified {
                return Err(Invalid {
                    field: "finding",
                    reason: "is required",
                });
            }
            if finding != ComplaintFinding::NotUpheld && f.remedy_sealed.is_empty() {
                return Err(Invalid {
                    field: "remedy",
                    reason: "an upheld complaint needs a remedy",
                });
            }
            ComplaintEvent::Found(ComplaintFindingRecorded { complaint_id, ..f })
        }
        ComplaintCommand::Escalate(e) => {
            if state.escalation.is_some() {
                return Err(Precondition("the complaint was already escalated"));
            }
            if e.body.is_empty() {
                return Err(Invalid {
                    field: "body",
                    reason: "is required",
                });
            }
            ComplaintEvent::Escalated(ComplaintEscalated { complaint_id, ..e })
        }
        ComplaintCommand::Close(c) => {
            if state.finding.is_none() && state.escalation.is_none() {
                return Err(Precondition(
                    "a complaint is closed after a finding or an escalation",
                ));
            }
            ComplaintEvent::Closed(ComplaintClosed { complaint_id, ..c })
        }
    };
    Ok(vec![event])
}

/// Applies one complaint event.
pub fn evolve_complaint(mut state: ComplaintState, event: &ComplaintEvent) -> ComplaintState {
    match event {
        ComplaintEvent::Lodged(l) => {
            state.lodged = Some(l.clone());
            state.status = ComplaintStatus::Lodged;
        }
        ComplaintEvent::Acknowledged(_) => state.status = ComplaintStatus::Acknowledged,
        ComplaintEvent::Found(f) => {
            state.finding = Some(f.clone());
            // A finding after an escalation leaves it escalated.
            if state.status != ComplaintStatus::Escalated {
                state.status = ComplaintStatus::Found;
            }
        }
        ComplaintEvent::Escalated(e) => {
            state.escalation = Some(e.clone());
            state.status = ComplaintStatus::Escalated;
        }
        ComplaintEvent::Closed(_) => state.status = ComplaintStatus::Closed,
    }
    state
}

impl caseline_aggregate::Rules for ClaimState {
    type Command = ClaimCommand;
    type Event = ClaimEvent;

    fn decide(&self, command: ClaimCommand) -> Result<Vec<ClaimEvent>, DomainError> {
        decide_claim(self, command)
    }

    fn evolve(self, event: &ClaimEvent, _: &str) -> Self {
        evolve_claim(self, event)
    }
}

impl caseline_aggregate::Rules for ComplaintState {
    type Command = ComplaintCommand;
    type Event = ComplaintEvent;

    fn decide(&self, command: ComplaintCommand) -> Result<Vec<ComplaintEvent>, DomainError> {
        decide_complaint(self, command)
    }

    fn evolve(self, event: &ComplaintEvent, _: &str) -> Self {
        evolve_complaint(self, event)
    }
}
