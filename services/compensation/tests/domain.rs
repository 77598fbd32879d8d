//! The claim and complaint aggregates' rules, given/when/then: given the events of a
//! claim (or a complaint), when a command is decided, then exactly these events (or
//! exactly this refusal). Pure: no store, no vault, no clock: sealed fields are plain
//! non-empty bytes, dates are fixed calendar dates and every amount is in euro minor
//! units unless a test says otherwise.

use caseline_aggregate::testing::{
    assert_holds_none, assert_invalid, assert_stored_as, given, missing, refused, then_state, when,
};
use caseline_compensation::domain::{
    ClaimCommand, ClaimEvent, ComplaintCommand, ComplaintEvent, DomainError, money,
};
use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    AppealLodged, ClaimClosed, ClaimDecided, ClaimFiled, ClaimSubmitted, ComplaintAcknowledged,
    ComplaintClosed, ComplaintEscalated, ComplaintFindingRecorded, ComplaintLodged,
    PaymentRecorded,
};
use caseline_proto::v1::{
    ClaimOutcome, ClaimScheme, ClaimStatus, Claimant, ComplainantKind, ComplaintChannel,
    ComplaintFinding, ComplaintStatus, Money,
};

// ---------------------------------------------------------------------------------------
// Given / when / then

const CLAIM_EXISTS: &str = "the claim already exists";
const CLAIM_CLOSED: &str = "the claim is closed";
const ALREADY_SUBMITTED: &str = "the claim was already submitted";
const DECISION_FOLLOWS: &str = "a decision follows submission (or an appeal)";
const ONLY_DECIDED_APPEALED: &str = "only a decided claim is appealed";
const ALREADY_APPEALED: &str = "the decision was already appealed";
const PAYMENTS_FOLLOW: &str = "payments follow a decision";
const PAYMENT_EXCEEDS: &str = "amount: the payment would exceed what is outstanding of the award";
const AWARD_BELOW_PAID: &str = "amount_awarded: the award would be less than what was paid already";

const COMPLAINT_EXISTS: &str = "the complaint already exists";
const COMPLAINT_CLOSED: &str = "the complaint is closed";
const ALREADY_ACKNOWLEDGED: &str = "the complaint was already acknowledged";
const ALREADY_FOUND: &str = "the complaint already has a finding";
const ALREADY_ESCALATED: &str = "the complaint was already escalated";
const CLOSE_NEEDS_AN_END: &str = "a complaint is closed after a finding or an escalation";

// ---------------------------------------------------------------------------------------
// Fixtures: claims

const CLAIM_ID: &str = "0000000d-0000-0000-0000-000000000001";
const EUR: &str = "EUR";
/// What the claim asks for: 5000.00 EUR.
const CLAIMED: i64 = 500_000;
/// The partial award of the fixtures: 3200.00 EUR.
const PARTLY: i64 = 320_000;

fn sealed(text: &str) -> Vec<u8> {
    format!("sealed:{text}").into_bytes()
}

fn eur(minor_units: i64) -> Money {
    money(minor_units, EUR)
}

/// A claim for `CLAIMED` euro cents, filed for the child.
fn filing() -> ClaimFiled {
    ClaimFiled {
        claim_id: CLAIM_ID.into(),
        scheme: ClaimScheme::StateVictimCompensation as i32,
        jurisdiction: "IE".into(),
        claimant: Claimant::Child as i32,
        amount_claimed: Some(eur(CLAIMED)),
        filing_deadline: "2025-06-30".into(),
    }
}

/// `filing()` claiming `amount_claimed`.
fn filing_for(amount_claimed: Option<Money>) -> ClaimFiled {
    ClaimFiled {
        amount_claimed,
        ..filing()
    }
}

fn file(filed: ClaimFiled) -> ClaimCommand {
    ClaimCommand::File(filed)
}

fn filed() -> ClaimEvent {
    ClaimEvent::Filed(filing())
}

/// A submission as the caller asks for it: no claim id (the claim's own is recorded).
fn submission() -> ClaimSubmitted {
    ClaimSubmitted {
        claim_id: String::new(),
        submitted_on: "2025-03-01".into(),
        reference_sealed: sealed("CICA-123"),
    }
}

fn submit() -> ClaimCommand {
    ClaimCommand::Submit(submission())
}

fn submitted() -> ClaimEvent {
    ClaimEvent::Submitted(ClaimSubmitted {
        claim_id: CLAIM_ID.into(),
        ..submission()
    })
}

/// A decision of `outcome` awarding `minor_units` euro cents, as the caller asks for it.
fn award(outcome: ClaimOutcome, minor_units: i64) -> ClaimDecided {
    ClaimDecided {
        claim_id: String::new(),
        outcome: outcome as i32,
        amount_awarded: Some(eur(minor_units)),
        exceeds_claim: false,
        reasons_sealed: sealed("reasons"),
        on_appeal: false,
    }
}

/// `award(outcome, minor_units)` with `exceeds_claim` set.
fn award_exceeding(outcome: ClaimOutcome, minor_units: i64) -> ClaimDecided {
    ClaimDecided {
        exceeds_claim: true,
        ..award(outcome, minor_units)
    }
}

fn decide(decision: ClaimDecided) -> ClaimCommand {
    ClaimCommand::Decide(decision)
}

/// `decision` as recorded on the claim, not on appeal.
fn decided(decision: ClaimDecided) -> ClaimEvent {
    ClaimEvent::Decided(ClaimDecided {
        claim_id: CLAIM_ID.into(),
        on_appeal: false,
        ..decision
    })
}

/// `decision` as recorded on the claim, on appeal.
fn decided_on_appeal(decision: ClaimDecided) -> ClaimEvent {
    ClaimEvent::Decided(ClaimDecided {
        claim_id: CLAIM_ID.into(),
        on_appeal: true,
        ..decision
    })
}

fn appeal_lodged() -> AppealLodged {
    AppealLodged {
        claim_id: String::new(),
        lodged_on: "2025-05-01".into(),
        grounds_sealed: sealed("grounds"),
    }
}

fn appeal() -> ClaimCommand {
    ClaimCommand::Appeal(appeal_lodged())
}

fn appealed() -> ClaimEvent {
    ClaimEvent::Appealed(AppealLodged {
        claim_id: CLAIM_ID.into(),
        ..appeal_lodged()
    })
}

/// A payment of `amount`, as the caller asks for it.
fn payment_of(payment_id: &str, amount: Option<Money>) -> PaymentRecorded {
    PaymentRecorded {
        claim_id: String::new(),
        payment_id: payment_id.into(),
        amount,
        paid_on: "2025-04-01".into(),
    }
}

/// A payment of `minor_units` euro cents.
fn pay(payment_id: &str, minor_units: i64) -> ClaimCommand {
    ClaimCommand::Pay(payment_of(payment_id, Some(eur(minor_units))))
}

fn paid(payment_id: &str, minor_units: i64) -> ClaimEvent {
    ClaimEvent::Paid(PaymentRecorded {
        claim_id: CLAIM_ID.into(),
        ..payment_of(payment_id, Some(eur(minor_units)))
    })
}

fn closing() -> ClaimClosed {
    ClaimClosed {
        claim_id: String::new(),
        note_sealed: sealed("note"),
    }
}

fn close() -> ClaimCommand {
    ClaimCommand::Close(closing())
}

fn closed() -> ClaimEvent {
    ClaimEvent::Closed(ClaimClosed {
        claim_id: CLAIM_ID.into(),
        ..closing()
    })
}

/// A filed claim with `more` after its filing.
fn filed_claim_then(more: impl IntoIterator<Item = ClaimEvent>) -> Vec<ClaimEvent> {
    let mut events = vec![filed()];
    events.extend(more);
    events
}

fn filed_claim() -> Vec<ClaimEvent> {
    filed_claim_then([])
}

fn submitted_claim() -> Vec<ClaimEvent> {
    filed_claim_then([submitted()])
}

/// A submitted claim decided by `decision`.
fn decided_claim(decision: ClaimDecided) -> Vec<ClaimEvent> {
    filed_claim_then([submitted(), decided(decision)])
}

/// A claim partly awarded `PARTLY`.
fn partly_awarded_claim() -> Vec<ClaimEvent> {
    decided_claim(award(ClaimOutcome::PartlyAwarded, PARTLY))
}

/// A claim partly awarded `PARTLY`, then appealed.
fn appealed_claim() -> Vec<ClaimEvent> {
    filed_claim_then([
        submitted(),
        decided(award(ClaimOutcome::PartlyAwarded, PARTLY)),
        appealed(),
    ])
}

/// A claim partly awarded `PARTLY` and paid 120000 + 150000 of it.
fn partly_paid_claim() -> Vec<ClaimEvent> {
    filed_claim_then([
        submitted(),
        decided(award(ClaimOutcome::PartlyAwarded, PARTLY)),
        paid("pay-1", 120_000),
        paid("pay-2", 150_000),
    ])
}

/// `partly_paid_claim()`, then appealed.
fn partly_paid_appealed_claim() -> Vec<ClaimEvent> {
    let mut events = partly_paid_claim();
    events.push(appealed());
    events
}

/// A claim appealed and decided again (awarded in full on appeal).
fn decided_on_appeal_claim() -> Vec<ClaimEvent> {
    let mut events = appealed_claim();
    events.push(decided_on_appeal(award(ClaimOutcome::Awarded, CLAIMED)));
    events
}

/// Every open claim: filed, submitted, decided, appealed, part paid, decided on appeal.
fn open_claims() -> Vec<Vec<ClaimEvent>> {
    vec![
        filed_claim(),
        submitted_claim(),
        partly_awarded_claim(),
        appealed_claim(),
        partly_paid_claim(),
        decided_on_appeal_claim(),
    ]
}

/// One of every claim command but `File`.
fn every_claim_command_but_file() -> Vec<ClaimCommand> {
    vec![
        submit(),
        decide(award(ClaimOutcome::Awarded, CLAIMED)),
        appeal(),
        pay("pay-1", 1),
        close(),
    ]
}

// ---------------------------------------------------------------------------------------
// Fixtures: complaints

const COMPLAINT_ID: &str = "0000000e-0000-0000-0000-000000000001";
const BODY: &str = "children's ombudsman";

/// A complaint about children's services, lodged by a guardian by email.
fn lodging() -> ComplaintLodged {
    ComplaintLodged {
        complaint_id: COMPLAINT_ID.into(),
        about: "children's services".into(),
        channel: ComplaintChannel::Email as i32,
        complainant: ComplainantKind::Guardian as i32,
        description_sealed: sealed("description"),
    }
}

fn lodge(lodged: ComplaintLodged) -> ComplaintCommand {
    ComplaintCommand::Lodge(lodged)
}

fn lodged() -> ComplaintEvent {
    ComplaintEvent::Lodged(lodging())
}

fn acknowledged() -> ComplaintEvent {
    ComplaintEvent::Acknowledged(ComplaintAcknowledged {
        complaint_id: COMPLAINT_ID.into(),
    })
}

/// A finding as the caller asks for it: no complaint id.
fn finding_of(finding: ComplaintFinding, remedy_sealed: Vec<u8>) -> ComplaintFindingRecorded {
    ComplaintFindingRecorded {
        complaint_id: String::new(),
        finding: finding as i32,
        remedy_sealed,
    }
}

fn record_finding(finding: ComplaintFinding, remedy_sealed: Vec<u8>) -> ComplaintCommand {
    ComplaintCommand::RecordFinding(finding_of(finding, remedy_sealed))
}

fn found(finding: ComplaintFinding, remedy_sealed: Vec<u8>) -> ComplaintEvent {
    ComplaintEvent::Found(ComplaintFindingRecorded {
        complaint_id: COMPLAINT_ID.into(),
        ..finding_of(finding, remedy_sealed)
    })
}

/// The finding of the fixtures: upheld, with a remedy.
fn upheld() -> ComplaintEvent {
    found(ComplaintFinding::Upheld, sealed("remedy"))
}

fn escalation_to(body: &str) -> ComplaintEscalated {
    ComplaintEscalated {
        complaint_id: String::new(),
        body: body.into(),
        reason_sealed: sealed("escalation reason"),
    }
}

fn escalate(body: &str) -> ComplaintCommand {
    ComplaintCommand::Escalate(escalation_to(body))
}

fn escalated() -> ComplaintEvent {
    ComplaintEvent::Escalated(ComplaintEscalated {
        complaint_id: COMPLAINT_ID.into(),
        ..escalation_to(BODY)
    })
}

fn complaint_closing() -> ComplaintClosed {
    ComplaintClosed {
        complaint_id: String::new(),
        note_sealed: sealed("note"),
    }
}

fn close_complaint() -> ComplaintCommand {
    ComplaintCommand::Close(complaint_closing())
}

fn complaint_closed() -> ComplaintEvent {
    ComplaintEvent::Closed(ComplaintClosed {
        complaint_id: COMPLAINT_ID.into(),
        ..complaint_closing()
    })
}

/// A lodged complaint with `more` after its lodging.
fn lodged_complaint_then(more: impl IntoIterator<Item = ComplaintEvent>) -> Vec<ComplaintEvent> {
    let mut events = vec![lodged()];
    events.extend(more);
    events
}

fn lodged_complaint() -> Vec<ComplaintEvent> {
    lodged_complaint_then([])
}

fn acknowledged_complaint() -> Vec<ComplaintEvent> {
    lodged_complaint_then([acknowledged()])
}

fn found_complaint() -> Vec<ComplaintEvent> {
    lodged_complaint_then([acknowledged(), upheld()])
}

fn escalated_complaint() -> Vec<ComplaintEvent> {
    lodged_complaint_then([acknowledged(), escalated()])
}

fn closed_complaint() -> Vec<ComplaintEvent> {
    lodged_complaint_then([acknowledged(), upheld(), complaint_closed()])
}

/// One of every complaint command but `Lodge`.
fn every_complaint_command_but_lodge() -> Vec<ComplaintCommand> {
    vec![
        ComplaintCommand::Acknowledge,
        record_finding(ComplaintFinding::Upheld, sealed("remedy")),
        escalate(BODY),
        close_complaint(),
    ]
}

// ---------------------------------------------------------------------------------------
// File a claim

#[test]
fn filing_a_claim_for_a_positive_amount_records_it() {
    let state = given::<ClaimEvent>(&[]);

    let events = when(&state, file(filing()));

    assert_eq!(events, Ok(vec![filed()]));
}

#[test]
fn a_filed_claim_knows_what_it_claims_and_has_nothing_awarded_or_paid() {
    let state = given::<ClaimEvent>(&[]);

    let events = when(&state, file(filing())).expect("a valid claim is filed");
    let state = then_state(state, &events);

    assert!(state.exists());
    assert_eq!(state.filed, Some(filing()));
    assert_eq!(state.status, ClaimStatus::Filed);
    assert_eq!(state.currency(), EUR);
    assert_eq!(state.claimed(), CLAIMED);
    assert_eq!(state.awarded(), 0);
    assert_eq!(state.paid(), 0);
    assert_eq!(state.outstanding(), 0);
    assert_eq!(state.submitted, None);
    assert_eq!(state.decision, None);
    assert_eq!(state.appeal, None);
    assert!(state.payments.is_empty());
}

#[test]
fn a_claim_for_a_single_minor_unit_is_filed() {
    let state = given::<ClaimEvent>(&[]);
    let asked = filing_for(Some(eur(1)));

    assert_eq!(
        when(&state, file(asked.clone())),
        Ok(vec![ClaimEvent::Filed(asked)])
    );
}

#[test]
fn a_claim_for_nothing_is_refused_naming_amount_claimed_minor_units() {
    let state = given::<ClaimEvent>(&[]);

    assert_invalid(
        when(&state, file(filing_for(Some(eur(0))))),
        "amount_claimed.minor_units",
    );
}

#[test]
fn a_claim_for_a_negative_amount_is_refused_naming_amount_claimed_minor_units() {
    let state = given::<ClaimEvent>(&[]);

    for minor_units in [-1, -CLAIMED, i64::MIN] {
        assert_invalid(
            when(&state, file(filing_for(Some(eur(minor_units))))),
            "amount_claimed.minor_units",
        );
    }
}

#[test]
fn a_claim_without_an_amount_is_refused_naming_amount_claimed() {
    let state = given::<ClaimEvent>(&[]);

    assert_invalid(when(&state, file(filing_for(None))), "amount_claimed");
}

#[test]
fn filing_a_claim_twice_is_refused() {
    let state = given(&filed_claim());

    assert_eq!(when(&state, file(filing())), refused(CLAIM_EXISTS));
}

#[test]
fn filing_over_a_claim_further_on_is_refused_as_existing() {
    for events in open_claims() {
        let state = given(&events);

        assert_eq!(
            when(&state, file(filing())),
            refused(CLAIM_EXISTS),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn every_command_but_file_on_a_missing_claim_is_refused_as_missing() {
    let state = given::<ClaimEvent>(&[]);

    for command in every_claim_command_but_file() {
        assert_eq!(when(&state, command.clone()), missing(), "{command:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Submit

#[test]
fn submitting_a_filed_claim_records_the_submission() {
    let state = given(&filed_claim());

    let events = when(&state, submit());

    assert_eq!(events, Ok(vec![submitted()]));
    let state = then_state(state, &events.expect("submitted"));
    assert_eq!(state.status, ClaimStatus::Submitted);
    assert_eq!(
        state.submitted,
        Some(ClaimSubmitted {
            claim_id: CLAIM_ID.into(),
            ..submission()
        })
    );
}

#[test]
fn a_submission_is_recorded_under_the_claims_own_id() {
    let state = given(&filed_claim());
    let asked = ClaimSubmitted {
        claim_id: "some-other-claim".into(),
        ..submission()
    };

    assert_eq!(
        when(&state, ClaimCommand::Submit(asked)),
        Ok(vec![submitted()])
    );
}

#[test]
fn submitting_a_claim_twice_is_refused() {
    let state = given(&submitted_claim());

    assert_eq!(when(&state, submit()), refused(ALREADY_SUBMITTED));
}

#[test]
fn submitting_a_decided_or_appealed_claim_is_refused() {
    for events in [
        partly_awarded_claim(),
        appealed_claim(),
        decided_on_appeal_claim(),
    ] {
        let state = given(&events);

        assert_eq!(
            when(&state, submit()),
            refused(ALREADY_SUBMITTED),
            "{:?}",
            state.status
        );
    }
}

// ---------------------------------------------------------------------------------------
// Decide

#[test]
fn deciding_a_claim_not_yet_submitted_is_refused() {
    let state = given(&filed_claim());

    assert_eq!(
        when(&state, decide(award(ClaimOutcome::Awarded, CLAIMED))),
        refused(DECISION_FOLLOWS)
    );
}

#[test]
fn deciding_a_decided_claim_again_without_an_appeal_is_refused() {
    for events in [partly_awarded_claim(), partly_paid_claim()] {
        let state = given(&events);

        assert_eq!(
            when(&state, decide(award(ClaimOutcome::Awarded, CLAIMED))),
            refused(DECISION_FOLLOWS)
        );
    }
}

#[test]
fn awarding_the_whole_claim_records_the_award_as_outstanding() {
    let state = given(&submitted_claim());

    let events = when(&state, decide(award(ClaimOutcome::Awarded, CLAIMED)));

    assert_eq!(
        events,
        Ok(vec![decided(award(ClaimOutcome::Awarded, CLAIMED))])
    );
    let state = then_state(state, &events.expect("decided"));
    assert_eq!(state.status, ClaimStatus::Decided);
    assert_eq!(state.awarded(), CLAIMED);
    assert_eq!(state.paid(), 0);
    assert_eq!(state.outstanding(), CLAIMED);
}

#[test]
fn a_decision_is_recorded_under_the_claims_own_id() {
    let state = given(&submitted_claim());
    let asked = ClaimDecided {
        claim_id: "some-other-claim".into(),
        ..award(ClaimOutcome::Awarded, CLAIMED)
    };

    assert_eq!(
        when(&state, decide(asked)),
        Ok(vec![decided(award(ClaimOutcome::Awarded, CLAIMED))])
    );
}

#[test]
fn a_partial_award_below_the_claim_is_recorded() {
    let state = given(&submitted_claim());

    for minor_units in [1, PARTLY, CLAIMED - 1] {
        let events = when(
            &state,
            decide(award(ClaimOutcome::PartlyAwarded, minor_units)),
        );

        assert_eq!(
            events,
            Ok(vec![decided(award(
                ClaimOutcome::PartlyAwarded,
                minor_units
            ))]),
            "{minor_units}"
        );
        let after = then_state(state.clone(), &events.expect("decided"));
        assert_eq!(after.awarded(), minor_units);
        assert_eq!(after.outstanding(), minor_units);
    }
}

#[test]
fn a_rejection_awarding_nothing_is_recorded() {
    let state = given(&submitted_claim());
    let without_amount = ClaimDecided {
        amount_awarded: None,
        ..award(ClaimOutcome::Rejected, 0)
    };

    for rejection in [award(ClaimOutcome::Rejected, 0), without_amount] {
        let events = when(&state, decide(rejection.clone()));

        // Recorded as nothing awarded, in the claim's currency, however it was asked.
        let recorded = ClaimDecided {
            amount_awarded: award(ClaimOutcome::Rejected, 0).amount_awarded,
            ..rejection.clone()
        };
        assert_eq!(events, Ok(vec![decided(recorded)]), "{rejection:?}");
        let after = then_state(state.clone(), &events.expect("decided"));
        assert_eq!(after.status, ClaimStatus::Decided);
        assert_eq!(after.awarded(), 0);
        assert_eq!(after.outstanding(), 0);
    }
}

#[test]
fn a_rejection_awarding_an_amount_is_refused_naming_amount_awarded_minor_units() {
    let state = given(&submitted_claim());

    for minor_units in [1, -1, PARTLY, CLAIMED] {
        assert_invalid(
            when(&state, decide(award(ClaimOutcome::Rejected, minor_units))),
            "amount_awarded.minor_units",
        );
    }
}

#[test]
fn an_award_below_the_claim_is_refused_naming_amount_awarded_minor_units() {
    let state = given(&submitted_claim());
    let without_amount = ClaimDecided {
        amount_awarded: None,
        ..award(ClaimOutcome::Awarded, 0)
    };

    for decision in [
        award(ClaimOutcome::Awarded, CLAIMED - 1),
        award(ClaimOutcome::Awarded, 0),
        award(ClaimOutcome::Awarded, -CLAIMED),
        without_amount,
    ] {
        assert_invalid(when(&state, decide(decision)), "amount_awarded.minor_units");
    }
}

#[test]
fn a_partial_award_of_nothing_is_refused_naming_amount_awarded_minor_units() {
    let state = given(&submitted_claim());
    let without_amount = ClaimDecided {
        amount_awarded: None,
        ..award(ClaimOutcome::PartlyAwarded, 0)
    };

    for decision in [
        award(ClaimOutcome::PartlyAwarded, 0),
        award(ClaimOutcome::PartlyAwarded, -1),
        without_amount,
    ] {
        assert_invalid(when(&state, decide(decision)), "amount_awarded.minor_units");
    }
}

#[test]
fn a_partial_award_of_the_whole_claim_or_more_is_refused_naming_amount_awarded_minor_units() {
    let state = given(&submitted_claim());

    for decision in [
        award(ClaimOutcome::PartlyAwarded, CLAIMED),
        award(ClaimOutcome::PartlyAwarded, CLAIMED + 1),
        award_exceeding(ClaimOutcome::PartlyAwarded, CLAIMED + 1),
    ] {
        assert_invalid(when(&state, decide(decision)), "amount_awarded.minor_units");
    }
}

#[test]
fn an_award_above_the_claim_without_exceeds_claim_is_refused_naming_amount_awarded_minor_units() {
    let state = given(&submitted_claim());

    assert_invalid(
        when(&state, decide(award(ClaimOutcome::Awarded, CLAIMED + 1))),
        "amount_awarded.minor_units",
    );
}

#[test]
fn an_award_above_the_claim_with_exceeds_claim_is_recorded() {
    let state = given(&submitted_claim());
    let with_interest = award_exceeding(ClaimOutcome::Awarded, 550_000);

    let events = when(&state, decide(with_interest.clone()));

    assert_eq!(events, Ok(vec![decided(with_interest)]));
    let state = then_state(state, &events.expect("decided"));
    assert_eq!(state.awarded(), 550_000);
    assert_eq!(state.outstanding(), 550_000);
}

#[test]
fn an_award_in_another_currency_is_refused_naming_amount_awarded_currency() {
    let state = given(&submitted_claim());

    for (outcome, minor_units) in [
        (ClaimOutcome::Awarded, CLAIMED),
        (ClaimOutcome::PartlyAwarded, PARTLY),
        (ClaimOutcome::Rejected, 1),
    ] {
        for currency in ["KES", "USD", ""] {
            let decision = ClaimDecided {
                amount_awarded: Some(money(minor_units, currency)),
                ..award(outcome, minor_units)
            };

            assert_invalid(when(&state, decide(decision)), "amount_awarded.currency");
        }
    }
}

#[test]
fn a_decision_without_an_outcome_is_refused_naming_outcome() {
    let state = given(&submitted_claim());
    let unknown = ClaimDecided {
        outcome: 99,
        ..award(ClaimOutcome::Awarded, CLAIMED)
    };

    for decision in [award(ClaimOutcome::Unspecified, CLAIMED), unknown] {
        assert_invalid(when(&state, decide(decision)), "outcome");
    }
}

#[test]
fn a_first_decision_is_never_recorded_as_on_appeal() {
    let state = given(&submitted_claim());
    let asked = ClaimDecided {
        on_appeal: true,
        ..award(ClaimOutcome::Awarded, CLAIMED)
    };

    assert_eq!(
        when(&state, decide(asked)),
        Ok(vec![decided(award(ClaimOutcome::Awarded, CLAIMED))])
    );
}

#[test]
fn a_decision_after_an_appeal_is_recorded_on_appeal_and_replaces_the_first() {
    let state = given(&appealed_claim());

    let events = when(&state, decide(award(ClaimOutcome::Awarded, CLAIMED)));

    assert_eq!(
        events,
        Ok(vec![decided_on_appeal(award(
            ClaimOutcome::Awarded,
            CLAIMED
        ))])
    );
    let state = then_state(state, &events.expect("decided on appeal"));
    assert_eq!(state.status, ClaimStatus::Decided);
    assert_eq!(state.awarded(), CLAIMED);
    assert_eq!(state.outstanding(), CLAIMED);
    assert!(state.decision.as_ref().is_some_and(|d| d.on_appeal));
    assert!(state.appeal.is_some());
}

#[test]
fn a_decision_on_appeal_may_lower_the_award_to_what_was_paid() {
    let state = given(&partly_paid_appealed_claim());

    let events = when(&state, decide(award(ClaimOutcome::PartlyAwarded, 270_000)));

    assert_eq!(
        events,
        Ok(vec![decided_on_appeal(award(
            ClaimOutcome::PartlyAwarded,
            270_000
        ))])
    );
    let state = then_state(state, &events.expect("decided on appeal"));
    assert_eq!(state.awarded(), 270_000);
    assert_eq!(state.paid(), 270_000);
    assert_eq!(state.outstanding(), 0);
}

#[test]
fn a_decision_on_appeal_awarding_less_than_was_paid_is_refused() {
    let state = given(&partly_paid_appealed_claim());

    for decision in [
        award(ClaimOutcome::PartlyAwarded, 269_999),
        award(ClaimOutcome::PartlyAwarded, 1),
        award(ClaimOutcome::Rejected, 0),
    ] {
        assert_eq!(
            when(&state, decide(decision.clone())),
            refused(AWARD_BELOW_PAID),
            "{decision:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Appeal

#[test]
fn appealing_a_decided_claim_records_the_appeal_and_keeps_the_award() {
    let state = given(&partly_awarded_claim());

    let events = when(&state, appeal());

    assert_eq!(events, Ok(vec![appealed()]));
    let state = then_state(state, &events.expect("appealed"));
    assert_eq!(state.status, ClaimStatus::Appealed);
    assert_eq!(
        state.appeal,
        Some(AppealLodged {
            claim_id: CLAIM_ID.into(),
            ..appeal_lodged()
        })
    );
    assert_eq!(state.awarded(), PARTLY);
    assert_eq!(state.outstanding(), PARTLY);
}

#[test]
fn a_rejection_can_be_appealed() {
    let state = given(&decided_claim(award(ClaimOutcome::Rejected, 0)));

    assert_eq!(when(&state, appeal()), Ok(vec![appealed()]));
}

#[test]
fn appealing_a_claim_not_yet_decided_is_refused() {
    for events in [filed_claim(), submitted_claim()] {
        let state = given(&events);

        assert_eq!(
            when(&state, appeal()),
            refused(ONLY_DECIDED_APPEALED),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn appealing_a_claim_already_under_appeal_is_refused() {
    let state = given(&appealed_claim());

    assert_eq!(when(&state, appeal()), refused(ONLY_DECIDED_APPEALED));
}

#[test]
fn appealing_a_decision_on_appeal_is_refused() {
    let state = given(&decided_on_appeal_claim());

    assert_eq!(when(&state, appeal()), refused(ALREADY_APPEALED));
}

// ---------------------------------------------------------------------------------------
// Pay

#[test]
fn paying_a_claim_not_yet_decided_is_refused() {
    for events in [filed_claim(), submitted_claim()] {
        let state = given(&events);

        assert_eq!(
            when(&state, pay("pay-1", 1)),
            refused(PAYMENTS_FOLLOW),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn a_payment_of_part_of_the_award_is_recorded() {
    let state = given(&partly_awarded_claim());

    let events = when(&state, pay("pay-1", 120_000));

    assert_eq!(events, Ok(vec![paid("pay-1", 120_000)]));
    let state = then_state(state, &events.expect("paid"));
    assert_eq!(state.status, ClaimStatus::Decided);
    assert_eq!(state.paid(), 120_000);
    assert_eq!(state.outstanding(), PARTLY - 120_000);
}

#[test]
fn a_payment_is_recorded_under_the_claims_own_id() {
    let state = given(&partly_awarded_claim());
    let asked = PaymentRecorded {
        claim_id: "some-other-claim".into(),
        ..payment_of("pay-1", Some(eur(120_000)))
    };

    assert_eq!(
        when(&state, ClaimCommand::Pay(asked)),
        Ok(vec![paid("pay-1", 120_000)])
    );
}

#[test]
fn two_partial_payments_leave_the_rest_of_the_award_outstanding() {
    let state = given(&partly_awarded_claim());

    let first = when(&state, pay("pay-1", 120_000)).expect("first payment");
    let state = then_state(state, &first);
    let second = when(&state, pay("pay-2", 150_000));
    assert_eq!(second, Ok(vec![paid("pay-2", 150_000)]));
    let state = then_state(state, &second.expect("second payment"));

    assert_eq!(state.claimed(), CLAIMED);
    assert_eq!(state.awarded(), 320_000);
    assert_eq!(state.paid(), 270_000);
    assert_eq!(state.outstanding(), 50_000);
    assert_eq!(
        state.payments,
        vec![
            PaymentRecorded {
                claim_id: CLAIM_ID.into(),
                ..payment_of("pay-1", Some(eur(120_000)))
            },
            PaymentRecorded {
                claim_id: CLAIM_ID.into(),
                ..payment_of("pay-2", Some(eur(150_000)))
            },
        ]
    );
}

#[test]
fn paying_exactly_what_is_outstanding_leaves_nothing_outstanding() {
    let state = given(&partly_paid_claim());

    let events = when(&state, pay("pay-3", 50_000));

    assert_eq!(events, Ok(vec![paid("pay-3", 50_000)]));
    let state = then_state(state, &events.expect("paid"));
    assert_eq!(state.paid(), PARTLY);
    assert_eq!(state.awarded(), PARTLY);
    assert_eq!(state.outstanding(), 0);
}

#[test]
fn paying_the_whole_award_at_once_leaves_nothing_outstanding() {
    let state = given(&decided_claim(award(ClaimOutcome::Awarded, CLAIMED)));

    let events = when(&state, pay("pay-1", CLAIMED)).expect("paid");
    let state = then_state(state, &events);

    assert_eq!(state.paid(), CLAIMED);
    assert_eq!(state.outstanding(), 0);
    assert_eq!(when(&state, pay("pay-2", 1)), refused(PAYMENT_EXCEEDS));
}

#[test]
fn a_payment_exceeding_what_is_outstanding_is_refused() {
    for (events, too_much) in [
        (partly_awarded_claim(), PARTLY + 1),
        (partly_paid_claim(), 50_001),
        (partly_paid_claim(), CLAIMED),
    ] {
        let state = given(&events);

        assert_eq!(
            when(&state, pay("pay-x", too_much)),
            refused(PAYMENT_EXCEEDS),
            "{too_much}"
        );
    }
}

#[test]
fn paying_a_rejected_claim_is_refused_as_exceeding_the_award() {
    let state = given(&decided_claim(award(ClaimOutcome::Rejected, 0)));

    assert_eq!(when(&state, pay("pay-1", 1)), refused(PAYMENT_EXCEEDS));
}

#[test]
fn a_claim_under_appeal_is_paid_up_to_its_standing_award() {
    let state = given(&partly_paid_appealed_claim());

    assert_eq!(
        when(&state, pay("pay-3", 50_000)),
        Ok(vec![paid("pay-3", 50_000)])
    );
    assert_eq!(when(&state, pay("pay-3", 50_001)), refused(PAYMENT_EXCEEDS));
}

#[test]
fn a_decision_on_appeal_raising_the_award_raises_what_is_outstanding() {
    let mut events = partly_paid_appealed_claim();
    events.push(decided_on_appeal(award(ClaimOutcome::Awarded, CLAIMED)));
    let state = given(&events);

    assert_eq!(state.awarded(), CLAIMED);
    assert_eq!(state.paid(), 270_000);
    assert_eq!(state.outstanding(), CLAIMED - 270_000);
    assert_eq!(
        when(&state, pay("pay-3", CLAIMED - 270_000)),
        Ok(vec![paid("pay-3", CLAIMED - 270_000)])
    );
}

#[test]
fn a_payment_in_another_currency_is_refused_naming_amount_currency() {
    let state = given(&partly_awarded_claim());

    for currency in ["KES", "eur", ""] {
        let asked = payment_of("pay-1", Some(money(120_000, currency)));

        assert_invalid(when(&state, ClaimCommand::Pay(asked)), "amount.currency");
    }
}

#[test]
fn a_payment_of_nothing_or_less_is_refused_naming_amount_minor_units() {
    let state = given(&partly_awarded_claim());

    for minor_units in [0, -1, i64::MIN] {
        assert_invalid(
            when(&state, pay("pay-1", minor_units)),
            "amount.minor_units",
        );
    }
}

#[test]
fn a_payment_without_an_amount_is_refused_naming_amount() {
    let state = given(&partly_awarded_claim());

    assert_invalid(
        when(&state, ClaimCommand::Pay(payment_of("pay-1", None))),
        "amount",
    );
}

#[test]
fn a_payment_that_would_overflow_the_sum_paid_is_refused_not_wrapped() {
    // Reachable under the award cap: the sum is checked before it is compared with the
    // award, so anything already paid plus i64::MAX overflows.
    let too_large = Err(DomainError::Invalid {
        field: "amount.minor_units",
        reason: "is too large",
    });
    let mut huge_award = decided_claim(award_exceeding(ClaimOutcome::Awarded, i64::MAX));
    huge_award.push(paid("pay-1", 1));

    for events in [partly_paid_claim(), huge_award] {
        let state = given(&events);

        assert_eq!(
            when(&state, pay("pay-x", i64::MAX)),
            too_large,
            "paid {}",
            state.paid()
        );
    }
}

#[test]
fn a_payment_of_i64_max_with_nothing_paid_fits_and_is_held_to_the_award() {
    let modest = given(&partly_awarded_claim());
    assert_eq!(
        when(&modest, pay("pay-1", i64::MAX)),
        refused(PAYMENT_EXCEEDS)
    );

    let huge = given(&decided_claim(award_exceeding(
        ClaimOutcome::Awarded,
        i64::MAX,
    )));
    let events = when(&huge, pay("pay-1", i64::MAX));
    assert_eq!(events, Ok(vec![paid("pay-1", i64::MAX)]));
    let huge = then_state(huge, &events.expect("paid"));
    assert_eq!(huge.paid(), i64::MAX);
    assert_eq!(huge.outstanding(), 0);
}

// ---------------------------------------------------------------------------------------
// Close

#[test]
fn a_claim_is_closed_from_any_open_state() {
    for events in open_claims() {
        let state = given(&events);
        let status = state.status;

        let closing = when(&state, close());

        assert_eq!(closing, Ok(vec![closed()]), "{status:?}");
        let state = then_state(state, &closing.expect("closed"));
        assert_eq!(state.status, ClaimStatus::Closed, "{status:?}");
    }
}

#[test]
fn a_closed_claim_keeps_its_award_and_payments() {
    let mut events = partly_paid_claim();
    events.push(closed());
    let state = given(&events);

    assert_eq!(state.status, ClaimStatus::Closed);
    assert_eq!(state.claimed(), CLAIMED);
    assert_eq!(state.awarded(), PARTLY);
    assert_eq!(state.paid(), 270_000);
    assert_eq!(state.outstanding(), 50_000);
}

#[test]
fn every_command_on_a_closed_claim_is_refused_as_closed() {
    for mut events in open_claims() {
        events.push(closed());
        let state = given(&events);

        for command in every_claim_command_but_file() {
            assert_eq!(
                when(&state, command.clone()),
                refused(CLAIM_CLOSED),
                "{command:?} after {events:?}"
            );
        }
    }
}

#[test]
fn filing_over_a_closed_claim_is_refused_as_existing() {
    let state = given(&filed_claim_then([closed()]));

    assert_eq!(when(&state, file(filing())), refused(CLAIM_EXISTS));
}

// ---------------------------------------------------------------------------------------
// Lodge a complaint

#[test]
fn lodging_a_complaint_with_a_description_records_it() {
    let state = given::<ComplaintEvent>(&[]);

    let events = when(&state, lodge(lodging()));

    assert_eq!(events, Ok(vec![lodged()]));
    let state = then_state(state, &events.expect("lodged"));
    assert!(state.exists());
    assert_eq!(state.lodged, Some(lodging()));
    assert_eq!(state.status, ComplaintStatus::Lodged);
    assert_eq!(state.finding, None);
    assert_eq!(state.escalation, None);
}

#[test]
fn a_complaint_without_a_description_is_refused_naming_description() {
    let state = given::<ComplaintEvent>(&[]);
    let asked = ComplaintLodged {
        description_sealed: Vec::new(),
        ..lodging()
    };

    assert_invalid(when(&state, lodge(asked)), "description");
}

#[test]
fn lodging_a_complaint_twice_is_refused() {
    for events in [lodged_complaint(), found_complaint(), closed_complaint()] {
        let state = given(&events);

        assert_eq!(
            when(&state, lodge(lodging())),
            refused(COMPLAINT_EXISTS),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn every_command_but_lodge_on_a_missing_complaint_is_refused_as_missing() {
    let state = given::<ComplaintEvent>(&[]);

    for command in every_complaint_command_but_lodge() {
        assert_eq!(when(&state, command.clone()), missing(), "{command:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Acknowledge

#[test]
fn acknowledging_a_lodged_complaint_records_it() {
    let state = given(&lodged_complaint());

    let events = when(&state, ComplaintCommand::Acknowledge);

    assert_eq!(events, Ok(vec![acknowledged()]));
    let state = then_state(state, &events.expect("acknowledged"));
    assert_eq!(state.status, ComplaintStatus::Acknowledged);
}

#[test]
fn acknowledging_a_complaint_twice_is_refused() {
    let state = given(&acknowledged_complaint());

    assert_eq!(
        when(&state, ComplaintCommand::Acknowledge),
        refused(ALREADY_ACKNOWLEDGED)
    );
}

#[test]
fn acknowledging_a_complaint_past_lodged_is_refused() {
    for events in [found_complaint(), escalated_complaint()] {
        let state = given(&events);

        assert_eq!(
            when(&state, ComplaintCommand::Acknowledge),
            refused("the complaint is past acknowledgement"),
            "{:?}",
            state.status
        );
    }
}

// ---------------------------------------------------------------------------------------
// Record the finding

#[test]
fn an_upheld_finding_with_a_remedy_is_recorded() {
    let state = given(&acknowledged_complaint());

    let events = when(
        &state,
        record_finding(ComplaintFinding::Upheld, sealed("remedy")),
    );

    assert_eq!(events, Ok(vec![upheld()]));
    let state = then_state(state, &events.expect("found"));
    assert_eq!(state.status, ComplaintStatus::Found);
    assert_eq!(
        state.finding,
        Some(ComplaintFindingRecorded {
            complaint_id: COMPLAINT_ID.into(),
            ..finding_of(ComplaintFinding::Upheld, sealed("remedy"))
        })
    );
}

#[test]
fn a_partly_upheld_finding_with_a_remedy_is_recorded() {
    let state = given(&acknowledged_complaint());

    assert_eq!(
        when(
            &state,
            record_finding(ComplaintFinding::PartlyUpheld, sealed("apology"))
        ),
        Ok(vec![found(
            ComplaintFinding::PartlyUpheld,
            sealed("apology")
        )])
    );
}

#[test]
fn a_not_upheld_finding_needs_no_remedy() {
    let state = given(&acknowledged_complaint());

    assert_eq!(
        when(
            &state,
            record_finding(ComplaintFinding::NotUpheld, Vec::new())
        ),
        Ok(vec![found(ComplaintFinding::NotUpheld, Vec::new())])
    );
}

#[test]
fn a_finding_without_a_finding_is_refused_naming_finding() {
    let state = given(&acknowledged_complaint());
    let unknown = ComplaintFindingRecorded {
        finding: 99,
        ..finding_of(ComplaintFinding::Upheld, sealed("remedy"))
    };

    for asked in [
        finding_of(ComplaintFinding::Unspecified, sealed("remedy")),
        unknown,
    ] {
        assert_invalid(
            when(&state, ComplaintCommand::RecordFinding(asked)),
            "finding",
        );
    }
}

#[test]
fn an_upheld_or_partly_upheld_finding_without_a_remedy_is_refused_naming_remedy() {
    let state = given(&acknowledged_complaint());

    for finding in [ComplaintFinding::Upheld, ComplaintFinding::PartlyUpheld] {
        assert_invalid(when(&state, record_finding(finding, Vec::new())), "remedy");
    }
}

#[test]
fn recording_a_second_finding_is_refused() {
    let state = given(&found_complaint());

    assert_eq!(
        when(
            &state,
            record_finding(ComplaintFinding::NotUpheld, Vec::new())
        ),
        refused(ALREADY_FOUND)
    );
}

// ---------------------------------------------------------------------------------------
// Escalate

#[test]
fn escalating_a_complaint_to_a_body_records_it() {
    let state = given(&acknowledged_complaint());

    let events = when(&state, escalate(BODY));

    assert_eq!(events, Ok(vec![escalated()]));
    let state = then_state(state, &events.expect("escalated"));
    assert_eq!(state.status, ComplaintStatus::Escalated);
    assert_eq!(
        state.escalation,
        Some(ComplaintEscalated {
            complaint_id: COMPLAINT_ID.into(),
            ..escalation_to(BODY)
        })
    );
}

#[test]
fn a_complaint_found_on_can_be_escalated() {
    let state = given(&found_complaint());

    assert_eq!(when(&state, escalate(BODY)), Ok(vec![escalated()]));
}

#[test]
fn escalating_without_a_body_is_refused_naming_body() {
    let state = given(&acknowledged_complaint());

    assert_invalid(when(&state, escalate("")), "body");
}

#[test]
fn escalating_a_complaint_twice_is_refused() {
    let state = given(&escalated_complaint());

    assert_eq!(
        when(&state, escalate("inspectorate")),
        refused(ALREADY_ESCALATED)
    );
}

// ---------------------------------------------------------------------------------------
// Close a complaint

#[test]
fn closing_a_complaint_without_a_finding_or_an_escalation_is_refused() {
    for events in [lodged_complaint(), acknowledged_complaint()] {
        let state = given(&events);

        assert_eq!(
            when(&state, close_complaint()),
            refused(CLOSE_NEEDS_AN_END),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn a_complaint_is_closed_after_a_finding_or_an_escalation() {
    for events in [found_complaint(), escalated_complaint()] {
        let state = given(&events);
        let status = state.status;

        let closing = when(&state, close_complaint());

        assert_eq!(closing, Ok(vec![complaint_closed()]), "{status:?}");
        let state = then_state(state, &closing.expect("closed"));
        assert_eq!(state.status, ComplaintStatus::Closed, "{status:?}");
    }
}

#[test]
fn every_command_on_a_closed_complaint_is_refused_as_closed() {
    let mut escalated_then_closed = escalated_complaint();
    escalated_then_closed.push(complaint_closed());

    for events in [closed_complaint(), escalated_then_closed] {
        let state = given(&events);

        for command in every_complaint_command_but_lodge() {
            assert_eq!(
                when(&state, command.clone()),
                refused(COMPLAINT_CLOSED),
                "{command:?} after {events:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoding

/// One of every claim event, with every field set, and its stored type.
fn every_claim_event() -> Vec<(ClaimEvent, &'static str)> {
    vec![
        (filed(), "caseline.v1.events.ClaimFiled"),
        (submitted(), "caseline.v1.events.ClaimSubmitted"),
        (
            decided_on_appeal(award_exceeding(ClaimOutcome::Awarded, 550_000)),
            "caseline.v1.events.ClaimDecided",
        ),
        (appealed(), "caseline.v1.events.AppealLodged"),
        (paid("pay-1", 120_000), "caseline.v1.events.PaymentRecorded"),
        (closed(), "caseline.v1.events.ClaimClosed"),
    ]
}

/// One of every complaint event, with every field set, and its stored type.
fn every_complaint_event() -> Vec<(ComplaintEvent, &'static str)> {
    vec![
        (lodged(), "caseline.v1.events.ComplaintLodged"),
        (acknowledged(), "caseline.v1.events.ComplaintAcknowledged"),
        (upheld(), "caseline.v1.events.ComplaintFindingRecorded"),
        (escalated(), "caseline.v1.events.ComplaintEscalated"),
        (complaint_closed(), "caseline.v1.events.ComplaintClosed"),
    ]
}

#[test]
fn every_claim_event_is_stored_under_its_payloads_full_name() {
    assert_stored_as(&every_claim_event());
}

#[test]
fn every_complaint_event_is_stored_under_its_payloads_full_name() {
    assert_stored_as(&every_complaint_event());
}

#[test]
fn an_event_type_the_claim_stream_does_not_hold_decodes_to_none() {
    assert_holds_none::<ClaimEvent>(&[
        "caseline.v1.events.NoSuchEvent",
        "",
        "ClaimFiled",
        types::COMPLAINT_LODGED,
        types::COMPLAINT_CLOSED,
        types::CASE_OPENED,
    ]);
}

#[test]
fn an_event_type_the_complaint_stream_does_not_hold_decodes_to_none() {
    assert_holds_none::<ComplaintEvent>(&[
        "caseline.v1.events.NoSuchEvent",
        "",
        "ComplaintLodged",
        types::CLAIM_FILED,
        types::CLAIM_CLOSED,
        types::CASE_OPENED,
    ]);
}
