//! The referral aggregate's rules, given/when/then: given the events of a referral, when
//! a command is decided, then exactly these events (or exactly this refusal). Pure: no
//! store, no vault, no clock: "now" is a fixed instant and sealed fields are plain
//! non-empty bytes.

use caseline_aggregate::EventCodec;
use caseline_aggregate::testing::{
    assert_holds_none, assert_invalid, assert_stored_as, given, refused, then_state, when,
};
use caseline_proto::event_types as types;
use caseline_proto::v1::events::{
    ReferralAccepted, ReferralAcknowledged, ReferralAttached, ReferralDeclined, ReferralEscalated,
    ReferralMade, ReferralOutcomeRecorded, ReferralWithdrawn,
};
use caseline_proto::v1::{
    ConsentBasis, EscalationCause, ReferralStatus, ReferralUrgency, ServiceType,
};
use caseline_referrals::domain::{
    Command, DomainError, Event, ReferralState, due_by, time_allowed,
};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Given / when / then

const ALREADY_ACCEPTED: &str = "the referral was already accepted";
const ALREADY_COMPLETED: &str = "the referral is already completed";
const DECLINED: &str = "the referral was declined";
const WITHDRAWN: &str = "the referral was withdrawn";
const ALREADY_EXISTS: &str = "the referral already exists";
const ALREADY_ACKNOWLEDGED: &str = "the referral was already acknowledged";
const NOT_ACCEPTED: &str = "the referral was not accepted: an outcome follows acceptance";
const OUTCOME_ALREADY_RECORDED: &str = "the referral's outcome is already recorded";
const NOT_DUE_YET: &str = "the referral is not due yet";
const ALREADY_ESCALATED: &str = "the referral was already escalated";

// ---------------------------------------------------------------------------------------
// Fixtures

/// The instant the referral is made (unix ms).
const NOW: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The due time of the routine referral the fixtures make at `NOW`.
const DUE: i64 = NOW + 10 * DAY_MS;

const REFERRAL_ID: &str = "0000000f-0000-0000-0000-000000000001";
const CASE_ID: &str = "0000000a-0000-0000-0000-000000000001";
const CONTACT_ID: &str = "0000000c-0000-0000-0000-000000000001";
const FROM: &str = "helpline";
const TO: &str = "social-services";

fn sealed(text: &str) -> Vec<u8> {
    format!("sealed:{text}").into_bytes()
}

/// A referral about a case, as the caller asks for it: routine, consent given by the
/// child, no due time yet.
fn request() -> ReferralMade {
    ReferralMade {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
        case_id: CASE_ID.into(),
        contact_id: String::new(),
        service: ServiceType::ChildProtection as i32,
        urgency: ReferralUrgency::Routine as i32,
        due_by_unix_ms: 0,
        reason_sealed: sealed("reason"),
        consent: ConsentBasis::GivenByChild as i32,
        legal_basis_sealed: Vec::new(),
    }
}

/// The same referral about a helpline contact instead of a case.
fn request_about_contact() -> ReferralMade {
    ReferralMade {
        case_id: String::new(),
        contact_id: CONTACT_ID.into(),
        ..request()
    }
}

/// `request()` at `urgency`.
fn request_at(urgency: ReferralUrgency) -> ReferralMade {
    ReferralMade {
        urgency: urgency as i32,
        ..request()
    }
}

fn make(made: ReferralMade) -> Command {
    Command::Make { made, now_ms: NOW }
}

/// `made` as recorded when made at `NOW`, due `due_by_unix_ms`.
fn recorded(made: ReferralMade, due_by_unix_ms: i64) -> Event {
    Event::Made(ReferralMade {
        due_by_unix_ms,
        ..made
    })
}

fn acknowledged() -> Event {
    Event::Acknowledged(ReferralAcknowledged {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
    })
}

fn accept() -> Command {
    Command::Accept {
        subject: "worker-7".into(),
        role: "social_worker".into(),
    }
}

fn accepted() -> Event {
    Event::Accepted(ReferralAccepted {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
        subject: "worker-7".into(),
        role: "social_worker".into(),
    })
}

fn decline(suggested: ServiceType) -> Command {
    Command::Decline {
        reason_sealed: sealed("decline"),
        suggested_service: suggested as i32,
    }
}

fn declined(suggested: ServiceType) -> Event {
    Event::Declined(ReferralDeclined {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
        reason_sealed: sealed("decline"),
        suggested_service: suggested as i32,
    })
}

fn record_outcome() -> Command {
    Command::RecordOutcome {
        outcome_sealed: sealed("outcome"),
    }
}

fn outcome_recorded() -> Event {
    Event::OutcomeRecorded(ReferralOutcomeRecorded {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
        outcome_sealed: sealed("outcome"),
    })
}

fn withdraw() -> Command {
    Command::Withdraw {
        reason_sealed: sealed("withdraw"),
    }
}

fn withdrawn() -> Event {
    Event::Withdrawn(ReferralWithdrawn {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
        reason_sealed: sealed("withdraw"),
    })
}

fn escalate(now_ms: i64) -> Command {
    Command::Escalate { now_ms }
}

fn escalated(cause: EscalationCause) -> Event {
    Event::Escalated(ReferralEscalated {
        referral_id: REFERRAL_ID.into(),
        from_agency: FROM.into(),
        to_agency: TO.into(),
        cause: cause as i32,
        due_by_unix_ms: DUE,
    })
}

/// The events of a routine referral about a case, made at `NOW` (due `DUE`).
fn made_referral() -> Vec<Event> {
    vec![recorded(request(), DUE)]
}

/// A made referral with `more` after its making.
fn made_referral_then(more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    let mut events = made_referral();
    events.extend(more);
    events
}

fn acknowledged_referral() -> Vec<Event> {
    made_referral_then([acknowledged()])
}

fn accepted_referral() -> Vec<Event> {
    made_referral_then([acknowledged(), accepted()])
}

fn declined_referral() -> Vec<Event> {
    made_referral_then([acknowledged(), declined(ServiceType::Unspecified)])
}

fn completed_referral() -> Vec<Event> {
    made_referral_then([acknowledged(), accepted(), outcome_recorded()])
}

fn withdrawn_referral() -> Vec<Event> {
    made_referral_then([withdrawn()])
}

/// One of every command but `Make`.
fn every_command_but_make() -> Vec<Command> {
    vec![
        Command::Acknowledge,
        accept(),
        decline(ServiceType::Health),
        record_outcome(),
        withdraw(),
        escalate(DUE),
    ]
}

// ---------------------------------------------------------------------------------------
// Make

#[test]
fn making_a_referral_about_a_case_records_it_due_by_its_urgency() {
    let state = given::<Event>(&[]);

    let events = when(&state, make(request()));

    assert_eq!(events, Ok(vec![recorded(request(), NOW + 10 * DAY_MS)]));
}

#[test]
fn making_a_referral_about_a_contact_records_it_due_by_its_urgency() {
    let state = given::<Event>(&[]);

    let events = when(&state, make(request_about_contact()));

    assert_eq!(
        events,
        Ok(vec![recorded(request_about_contact(), NOW + 10 * DAY_MS)])
    );
}

#[test]
fn an_emergency_referral_is_due_24_hours_after_it_is_made() {
    let state = given::<Event>(&[]);

    let events = when(&state, make(request_at(ReferralUrgency::Emergency)));

    assert_eq!(
        events,
        Ok(vec![recorded(
            request_at(ReferralUrgency::Emergency),
            NOW + 24 * HOUR_MS
        )])
    );
}

#[test]
fn an_urgent_referral_is_due_72_hours_after_it_is_made() {
    let state = given::<Event>(&[]);

    let events = when(&state, make(request_at(ReferralUrgency::Urgent)));

    assert_eq!(
        events,
        Ok(vec![recorded(
            request_at(ReferralUrgency::Urgent),
            NOW + 72 * HOUR_MS
        )])
    );
}

#[test]
fn a_routine_referral_is_due_10_days_after_it_is_made() {
    let state = given::<Event>(&[]);

    let events = when(&state, make(request_at(ReferralUrgency::Routine)));

    assert_eq!(
        events,
        Ok(vec![recorded(
            request_at(ReferralUrgency::Routine),
            NOW + 10 * DAY_MS
        )])
    );
}

#[test]
fn the_time_allowed_follows_the_urgency_and_unspecified_has_none() {
    assert_eq!(
        time_allowed(ReferralUrgency::Emergency),
        Some(Duration::from_secs(24 * 60 * 60))
    );
    assert_eq!(
        time_allowed(ReferralUrgency::Urgent),
        Some(Duration::from_secs(72 * 60 * 60))
    );
    assert_eq!(
        time_allowed(ReferralUrgency::Routine),
        Some(Duration::from_secs(10 * 24 * 60 * 60))
    );
    assert_eq!(time_allowed(ReferralUrgency::Unspecified), None);
    assert_eq!(due_by(ReferralUrgency::Unspecified, NOW), None);
    assert_eq!(
        due_by(ReferralUrgency::Urgent, NOW),
        Some(NOW + 72 * HOUR_MS)
    );
}

#[test]
fn a_due_time_sent_by_the_caller_is_replaced_by_the_one_its_urgency_sets() {
    let state = given::<Event>(&[]);
    let mut asked = request_at(ReferralUrgency::Emergency);
    asked.due_by_unix_ms = NOW + 365 * DAY_MS;

    let events = when(&state, make(asked));

    assert_eq!(
        events,
        Ok(vec![recorded(
            request_at(ReferralUrgency::Emergency),
            NOW + 24 * HOUR_MS
        )])
    );
}

#[test]
fn a_made_referral_awaits_the_receiving_agencys_decision() {
    let state = given::<Event>(&[]);

    let events = when(&state, make(request())).expect("a valid referral is made");
    let state = then_state(state, &events);

    assert!(state.exists());
    assert_eq!(
        state.made,
        Some(ReferralMade {
            due_by_unix_ms: DUE,
            ..request()
        })
    );
    assert_eq!(state.status, ReferralStatus::Made);
    assert_eq!(state.accepted_by, None);
    assert_eq!(state.escalation, None);
}

#[test]
fn a_referral_with_consent_given_by_a_guardian_is_made() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: ConsentBasis::GivenByGuardian as i32,
        ..request()
    };

    assert_eq!(
        when(&state, make(asked.clone())),
        Ok(vec![recorded(asked, DUE)])
    );
}

#[test]
fn a_referral_that_needs_no_consent_is_made_with_its_legal_basis() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: ConsentBasis::NotRequired as i32,
        legal_basis_sealed: sealed("legal basis"),
        ..request()
    };

    assert_eq!(
        when(&state, make(asked.clone())),
        Ok(vec![recorded(asked, DUE)])
    );
}

#[test]
fn a_referral_without_a_consent_basis_is_refused_naming_consent() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: ConsentBasis::Unspecified as i32,
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "consent");
}

#[test]
fn a_referral_with_an_unknown_consent_basis_is_refused_naming_consent() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: 99,
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "consent");
}

#[test]
fn consent_not_required_without_a_legal_basis_is_refused_naming_legal_basis() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: ConsentBasis::NotRequired as i32,
        legal_basis_sealed: Vec::new(),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "legal_basis");
}

#[test]
fn a_legal_basis_with_consent_given_by_the_child_is_refused_naming_legal_basis() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: ConsentBasis::GivenByChild as i32,
        legal_basis_sealed: sealed("legal basis"),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "legal_basis");
}

#[test]
fn a_legal_basis_with_consent_given_by_a_guardian_is_refused_naming_legal_basis() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        consent: ConsentBasis::GivenByGuardian as i32,
        legal_basis_sealed: sealed("legal basis"),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "legal_basis");
}

#[test]
fn a_referral_without_an_urgency_is_refused_naming_urgency() {
    let state = given::<Event>(&[]);

    assert_invalid(
        when(&state, make(request_at(ReferralUrgency::Unspecified))),
        "urgency",
    );
}

#[test]
fn a_referral_with_an_unknown_urgency_is_refused_naming_urgency() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        urgency: 99,
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "urgency");
}

#[test]
fn a_referral_without_a_service_is_refused_naming_service() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        service: ServiceType::Unspecified as i32,
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "service");
}

#[test]
fn a_referral_to_an_unknown_service_is_refused_naming_service() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        service: 99,
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "service");
}

#[test]
fn a_referral_without_a_reason_is_refused_naming_reason() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        reason_sealed: Vec::new(),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "reason");
}

#[test]
fn a_referral_about_both_a_case_and_a_contact_is_refused_naming_case_id() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        contact_id: CONTACT_ID.into(),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "case_id");
}

#[test]
fn a_referral_about_neither_a_case_nor_a_contact_is_refused_naming_case_id() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        case_id: String::new(),
        contact_id: String::new(),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "case_id");
}

#[test]
fn a_referral_to_the_referring_agency_itself_is_refused_naming_to_agency() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        to_agency: FROM.into(),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "to_agency");
}

#[test]
fn a_referral_to_no_agency_is_refused_naming_to_agency() {
    let state = given::<Event>(&[]);
    let asked = ReferralMade {
        to_agency: String::new(),
        ..request()
    };

    assert_invalid(when(&state, make(asked)), "to_agency");
}

#[test]
fn making_a_referral_that_exists_is_refused() {
    let state = given(&made_referral());

    assert_eq!(when(&state, make(request())), refused(ALREADY_EXISTS));
}

#[test]
fn making_a_completed_referral_again_is_refused_because_it_exists() {
    let state = given(&completed_referral());

    assert_eq!(
        when(&state, make(request_about_contact())),
        refused(ALREADY_EXISTS)
    );
}

// ---------------------------------------------------------------------------------------
// A referral that does not exist

#[test]
fn a_referral_that_was_never_made_does_not_exist() {
    let state = given::<Event>(&[]);

    assert!(!state.exists());
    assert_eq!(state.made, None);
    assert_eq!(state.status, ReferralStatus::Unspecified);
}

#[test]
fn every_command_but_make_on_a_missing_referral_is_no_referral() {
    let state = given::<Event>(&[]);

    for command in every_command_but_make() {
        let name = format!("{command:?}");
        assert_eq!(when(&state, command), Err(DomainError::Missing), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Acknowledge

#[test]
fn acknowledging_a_made_referral_acknowledges_it() {
    let state = given(&made_referral());

    let events = when(&state, Command::Acknowledge);

    assert_eq!(events, Ok(vec![acknowledged()]));
    let state = then_state(state, &events.expect("acknowledged"));
    assert_eq!(state.status, ReferralStatus::Acknowledged);
}

#[test]
fn acknowledging_twice_is_refused() {
    let state = given(&acknowledged_referral());

    assert_eq!(
        when(&state, Command::Acknowledge),
        refused(ALREADY_ACKNOWLEDGED)
    );
}

#[test]
fn acknowledging_an_accepted_referral_is_refused() {
    let state = given(&accepted_referral());

    assert_eq!(
        when(&state, Command::Acknowledge),
        refused(ALREADY_ACCEPTED)
    );
}

#[test]
fn acknowledging_a_declined_referral_is_refused() {
    let state = given(&declined_referral());

    assert_eq!(when(&state, Command::Acknowledge), refused(DECLINED));
}

#[test]
fn acknowledging_a_withdrawn_referral_is_refused() {
    let state = given(&withdrawn_referral());

    assert_eq!(when(&state, Command::Acknowledge), refused(WITHDRAWN));
}

#[test]
fn acknowledging_a_completed_referral_is_refused() {
    let state = given(&completed_referral());

    assert_eq!(
        when(&state, Command::Acknowledge),
        refused(ALREADY_COMPLETED)
    );
}

// ---------------------------------------------------------------------------------------
// Accept

#[test]
fn accepting_a_made_referral_records_who_accepted_it() {
    let state = given(&made_referral());

    let events = when(&state, accept());

    assert_eq!(events, Ok(vec![accepted()]));
}

#[test]
fn accepting_an_acknowledged_referral_records_who_accepted_it() {
    let state = given(&acknowledged_referral());

    let events = when(&state, accept());

    assert_eq!(events, Ok(vec![accepted()]));
}

#[test]
fn an_accepted_referral_is_accepted_by_its_subject_in_their_role() {
    let state = given(&acknowledged_referral());

    let events = when(&state, accept()).expect("accepted");
    let state = then_state(state, &events);

    assert_eq!(state.status, ReferralStatus::Accepted);
    assert_eq!(
        state.accepted_by,
        Some(("worker-7".to_string(), "social_worker".to_string()))
    );
}

#[test]
fn accepting_twice_is_refused() {
    let state = given(&accepted_referral());

    assert_eq!(when(&state, accept()), refused(ALREADY_ACCEPTED));
}

#[test]
fn accepting_a_withdrawn_referral_is_refused() {
    let state = given(&withdrawn_referral());

    assert_eq!(when(&state, accept()), refused(WITHDRAWN));
}

#[test]
fn accepting_a_declined_referral_is_refused() {
    let state = given(&declined_referral());

    assert_eq!(when(&state, accept()), refused(DECLINED));
}

#[test]
fn accepting_a_completed_referral_is_refused() {
    let state = given(&completed_referral());

    assert_eq!(when(&state, accept()), refused(ALREADY_COMPLETED));
}

// ---------------------------------------------------------------------------------------
// Decline

#[test]
fn declining_a_made_referral_records_the_reason_and_the_service_suggested() {
    let state = given(&made_referral());

    let events = when(&state, decline(ServiceType::MentalHealth));

    assert_eq!(events, Ok(vec![declined(ServiceType::MentalHealth)]));
}

#[test]
fn declining_an_acknowledged_referral_may_suggest_nothing() {
    let state = given(&acknowledged_referral());

    let events = when(&state, decline(ServiceType::Unspecified));

    assert_eq!(events, Ok(vec![declined(ServiceType::Unspecified)]));
}

#[test]
fn a_declined_referral_is_settled() {
    let state = given(&acknowledged_referral());

    let events = when(&state, decline(ServiceType::Shelter)).expect("declined");
    let state = then_state(state, &events);

    assert_eq!(state.status, ReferralStatus::Declined);
    assert!(!state.awaiting_decision());
    assert!(!state.is_open());
    assert_eq!(state.accepted_by, None);
}

#[test]
fn declining_without_a_reason_is_refused_naming_reason() {
    let state = given(&made_referral());

    let result = when(
        &state,
        Command::Decline {
            reason_sealed: Vec::new(),
            suggested_service: ServiceType::Health as i32,
        },
    );

    assert_invalid(result, "reason");
}

#[test]
fn declining_an_accepted_referral_is_refused() {
    let state = given(&accepted_referral());

    assert_eq!(
        when(&state, decline(ServiceType::Health)),
        refused(ALREADY_ACCEPTED)
    );
}

#[test]
fn declining_twice_is_refused() {
    let state = given(&declined_referral());

    assert_eq!(
        when(&state, decline(ServiceType::Health)),
        refused(DECLINED)
    );
}

#[test]
fn declining_a_withdrawn_referral_is_refused() {
    let state = given(&withdrawn_referral());

    assert_eq!(
        when(&state, decline(ServiceType::Health)),
        refused(WITHDRAWN)
    );
}

#[test]
fn declining_a_completed_referral_is_refused() {
    let state = given(&completed_referral());

    assert_eq!(
        when(&state, decline(ServiceType::Health)),
        refused(ALREADY_COMPLETED)
    );
}

// ---------------------------------------------------------------------------------------
// Record the outcome

#[test]
fn recording_the_outcome_of_a_made_referral_is_refused() {
    let state = given(&made_referral());

    assert_eq!(when(&state, record_outcome()), refused(NOT_ACCEPTED));
}

#[test]
fn recording_the_outcome_of_an_acknowledged_referral_is_refused() {
    let state = given(&acknowledged_referral());

    assert_eq!(when(&state, record_outcome()), refused(NOT_ACCEPTED));
}

#[test]
fn recording_the_outcome_of_an_accepted_referral_completes_it() {
    let state = given(&accepted_referral());

    let events = when(&state, record_outcome());

    assert_eq!(events, Ok(vec![outcome_recorded()]));
    let state = then_state(state, &events.expect("recorded"));
    assert_eq!(state.status, ReferralStatus::Completed);
    assert!(!state.is_open());
    assert_eq!(
        state.accepted_by,
        Some(("worker-7".to_string(), "social_worker".to_string()))
    );
}

#[test]
fn recording_the_outcome_twice_is_refused() {
    let state = given(&completed_referral());

    assert_eq!(
        when(&state, record_outcome()),
        refused(OUTCOME_ALREADY_RECORDED)
    );
}

#[test]
fn recording_an_empty_outcome_is_refused_naming_outcome() {
    let state = given(&accepted_referral());

    let result = when(
        &state,
        Command::RecordOutcome {
            outcome_sealed: Vec::new(),
        },
    );

    assert_invalid(result, "outcome");
}

#[test]
fn recording_the_outcome_of_a_declined_referral_is_refused() {
    let state = given(&declined_referral());

    assert_eq!(when(&state, record_outcome()), refused(DECLINED));
}

#[test]
fn recording_the_outcome_of_a_withdrawn_referral_is_refused() {
    let state = given(&withdrawn_referral());

    assert_eq!(when(&state, record_outcome()), refused(WITHDRAWN));
}

// ---------------------------------------------------------------------------------------
// Withdraw

#[test]
fn a_made_an_acknowledged_or_an_accepted_referral_can_be_withdrawn() {
    for events in [
        made_referral(),
        acknowledged_referral(),
        accepted_referral(),
    ] {
        let state = given(&events);
        let status = state.status;

        let withdrawal = when(&state, withdraw());

        assert_eq!(withdrawal, Ok(vec![withdrawn()]), "{status:?}");
        let state = then_state(state, &withdrawal.expect("withdrawn"));
        assert_eq!(state.status, ReferralStatus::Withdrawn, "{status:?}");
        assert!(!state.is_open(), "{status:?}");
    }
}

#[test]
fn withdrawing_a_declined_referral_is_refused() {
    let state = given(&declined_referral());

    assert_eq!(when(&state, withdraw()), refused(DECLINED));
}

#[test]
fn withdrawing_a_completed_referral_is_refused() {
    let state = given(&completed_referral());

    assert_eq!(when(&state, withdraw()), refused(ALREADY_COMPLETED));
}

#[test]
fn withdrawing_twice_is_refused() {
    let state = given(&withdrawn_referral());

    assert_eq!(when(&state, withdraw()), refused(WITHDRAWN));
}

#[test]
fn withdrawing_without_a_reason_is_refused_naming_reason() {
    let state = given(&made_referral());

    let result = when(
        &state,
        Command::Withdraw {
            reason_sealed: Vec::new(),
        },
    );

    assert_invalid(result, "reason");
}

// ---------------------------------------------------------------------------------------
// Escalate

#[test]
fn escalating_a_referral_before_it_is_due_is_refused() {
    for events in [
        made_referral(),
        acknowledged_referral(),
        accepted_referral(),
    ] {
        let state = given(&events);

        assert_eq!(
            when(&state, escalate(DUE - 1)),
            refused(NOT_DUE_YET),
            "{:?}",
            state.status
        );
    }
}

#[test]
fn a_made_referral_not_accepted_by_its_due_time_is_escalated_as_not_accepted() {
    let state = given(&made_referral());

    let events = when(&state, escalate(DUE));

    assert_eq!(events, Ok(vec![escalated(EscalationCause::NotAccepted)]));
}

#[test]
fn an_acknowledged_referral_past_its_due_time_is_escalated_as_not_accepted() {
    let state = given(&acknowledged_referral());

    let events = when(&state, escalate(DUE + DAY_MS));

    assert_eq!(events, Ok(vec![escalated(EscalationCause::NotAccepted)]));
}

#[test]
fn an_accepted_referral_not_completed_by_its_due_time_is_escalated_as_not_completed() {
    let state = given(&accepted_referral());

    let events = when(&state, escalate(DUE));

    assert_eq!(events, Ok(vec![escalated(EscalationCause::NotCompleted)]));
}

#[test]
fn an_emergency_referral_is_escalated_from_24_hours_after_it_was_made() {
    let due = NOW + 24 * HOUR_MS;
    let state = given(&[recorded(request_at(ReferralUrgency::Emergency), due)]);

    assert_eq!(when(&state, escalate(due - 1)), refused(NOT_DUE_YET));
    let events = when(&state, escalate(due));
    assert_eq!(
        events,
        Ok(vec![Event::Escalated(ReferralEscalated {
            referral_id: REFERRAL_ID.into(),
            from_agency: FROM.into(),
            to_agency: TO.into(),
            cause: EscalationCause::NotAccepted as i32,
            due_by_unix_ms: due,
        })])
    );
}

#[test]
fn an_escalation_records_its_cause_and_leaves_the_status_alone() {
    let state = given(&accepted_referral());

    let events = when(&state, escalate(DUE)).expect("escalated");
    let state = then_state(state, &events);

    assert_eq!(state.escalation, Some(EscalationCause::NotCompleted));
    assert_eq!(state.status, ReferralStatus::Accepted);
    assert!(state.is_open());
}

#[test]
fn escalating_twice_is_refused() {
    let state = given(&made_referral_then([escalated(
        EscalationCause::NotAccepted,
    )]));

    assert_eq!(
        when(&state, escalate(DUE + DAY_MS)),
        refused(ALREADY_ESCALATED)
    );
}

#[test]
fn an_escalated_referral_can_still_be_accepted_but_is_not_escalated_again() {
    let state = given(&made_referral_then([escalated(
        EscalationCause::NotAccepted,
    )]));

    let events = when(&state, accept());
    assert_eq!(events, Ok(vec![accepted()]));
    let state = then_state(state, &events.expect("accepted"));

    assert_eq!(
        when(&state, escalate(DUE + DAY_MS)),
        refused(ALREADY_ESCALATED)
    );
    assert_eq!(state.escalation, Some(EscalationCause::NotAccepted));
}

#[test]
fn a_completed_referral_is_never_escalated() {
    let state = given(&completed_referral());

    assert_eq!(
        when(&state, escalate(DUE + DAY_MS)),
        refused(ALREADY_COMPLETED)
    );
}

#[test]
fn a_declined_referral_is_never_escalated() {
    let state = given(&declined_referral());

    assert_eq!(when(&state, escalate(DUE + DAY_MS)), refused(DECLINED));
}

#[test]
fn a_withdrawn_referral_is_never_escalated() {
    let state = given(&withdrawn_referral());

    assert_eq!(when(&state, escalate(DUE + DAY_MS)), refused(WITHDRAWN));
}

// ---------------------------------------------------------------------------------------
// State helpers

#[test]
fn a_referral_awaits_a_decision_only_while_made_or_acknowledged() {
    for (events, awaiting) in [
        (Vec::new(), false),
        (made_referral(), true),
        (acknowledged_referral(), true),
        (accepted_referral(), false),
        (declined_referral(), false),
        (completed_referral(), false),
        (withdrawn_referral(), false),
    ] {
        let state = given(&events);

        assert_eq!(state.awaiting_decision(), awaiting, "{:?}", state.status);
    }
}

#[test]
fn a_referral_is_open_while_made_acknowledged_or_accepted() {
    for (events, open) in [
        (Vec::new(), false),
        (made_referral(), true),
        (acknowledged_referral(), true),
        (accepted_referral(), true),
        (declined_referral(), false),
        (completed_referral(), false),
        (withdrawn_referral(), false),
    ] {
        let state = given(&events);

        assert_eq!(state.is_open(), open, "{:?}", state.status);
    }
}

#[test]
fn an_open_referral_is_overdue_from_its_due_time_on() {
    for events in [
        made_referral(),
        acknowledged_referral(),
        accepted_referral(),
    ] {
        let state = given(&events);
        let status = state.status;

        assert!(!state.is_overdue(NOW), "{status:?}");
        assert!(!state.is_overdue(DUE - 1), "{status:?}");
        assert!(state.is_overdue(DUE), "{status:?}");
        assert!(state.is_overdue(DUE + 1), "{status:?}");
    }
}

#[test]
fn an_escalated_open_referral_is_still_overdue() {
    let state = given(&made_referral_then([escalated(
        EscalationCause::NotAccepted,
    )]));

    assert!(state.is_overdue(DUE));
}

#[test]
fn a_settled_referral_is_never_overdue() {
    for events in [
        declined_referral(),
        completed_referral(),
        withdrawn_referral(),
    ] {
        let state = given(&events);

        assert!(!state.is_overdue(DUE), "{:?}", state.status);
        assert!(!state.is_overdue(i64::MAX), "{:?}", state.status);
    }
}

#[test]
fn a_referral_that_does_not_exist_is_neither_open_nor_overdue() {
    let state = given::<Event>(&[]);

    assert!(!state.awaiting_decision());
    assert!(!state.is_open());
    assert!(!state.is_overdue(i64::MAX));
}

// ---------------------------------------------------------------------------------------
// Encoding

/// One of every event, with every field set, and its stored type.
fn every_event() -> Vec<(Event, &'static str)> {
    let made = ReferralMade {
        contact_id: String::new(),
        consent: ConsentBasis::NotRequired as i32,
        legal_basis_sealed: sealed("legal basis"),
        ..request()
    };
    vec![
        (recorded(made, DUE), "caseline.v1.events.ReferralMade"),
        (acknowledged(), "caseline.v1.events.ReferralAcknowledged"),
        (accepted(), "caseline.v1.events.ReferralAccepted"),
        (
            declined(ServiceType::LegalAid),
            "caseline.v1.events.ReferralDeclined",
        ),
        (
            outcome_recorded(),
            "caseline.v1.events.ReferralOutcomeRecorded",
        ),
        (withdrawn(), "caseline.v1.events.ReferralWithdrawn"),
        (
            escalated(EscalationCause::NotCompleted),
            "caseline.v1.events.ReferralEscalated",
        ),
        (
            Event::Attached(ReferralAttached {
                case_id: CASE_ID.into(),
                ..ReferralAttached::default()
            }),
            "caseline.v1.events.ReferralAttached",
        ),
    ]
}

#[test]
fn every_event_is_stored_under_its_payloads_full_name() {
    assert_stored_as(&every_event());
}

#[test]
fn an_event_with_default_fields_round_trips_too() {
    let event = Event::Acknowledged(ReferralAcknowledged::default());

    let decoded = Event::decode(event.event_type(), &event.encode());

    assert_eq!(decoded, Ok(Some(event)));
}

#[test]
fn an_event_type_the_referral_stream_does_not_hold_decodes_to_none() {
    assert_holds_none::<Event>(&[
        "caseline.v1.events.NoSuchEvent",
        "",
        "ReferralMade",
        types::CASE_OPENED,
        types::CONTACT_RECORDED,
        types::ACCESS_RECORDED,
    ]);
}

// ---------------------------------------------------------------------------------------
// Attaching a contact's referral to the case opened from the contact

fn attach() -> Command {
    Command::Attach(Box::new(ReferralAttached {
        case_id: CASE_ID.into(),
        reason_sealed: sealed("reason, under the case's key"),
        legal_basis_sealed: Vec::new(),
        made_at_unix_ms: NOW,
        ..ReferralAttached::default()
    }))
}

#[test]
fn a_contacts_referral_is_attached_as_it_stands() {
    let state = given(&[
        recorded(request_about_contact(), DUE),
        acknowledged(),
        accepted(),
    ]);
    let events = when(&state, attach()).expect("attached");
    let [Event::Attached(a)] = events.as_slice() else {
        panic!("one attachment: {events:?}");
    };
    assert_eq!(a.case_id, CASE_ID);
    assert_eq!(a.contact_id, CONTACT_ID);
    assert_eq!((a.from_agency.as_str(), a.to_agency.as_str()), (FROM, TO));
    assert_eq!(a.status, ReferralStatus::Accepted as i32);
    assert_eq!(
        (a.accepted_by.as_str(), a.accepted_role.as_str()),
        ("worker-7", "social_worker")
    );
    assert_eq!(a.due_by_unix_ms, DUE);
    assert_eq!(a.reason_sealed, sealed("reason, under the case's key"));

    // From then on it belongs to the case, its sealed reason the case's copy.
    let after = then_state(state, &events);
    let made = after.made.as_ref().expect("made");
    assert_eq!(made.case_id, CASE_ID);
    assert_eq!(made.reason_sealed, sealed("reason, under the case's key"));
    assert_eq!(after.status, ReferralStatus::Accepted);
}

#[test]
fn a_referral_is_attached_once_and_only_from_a_contact() {
    let state = given(&[recorded(request_about_contact(), DUE)]);
    let attached = then_state(state.clone(), &when(&state, attach()).expect("attached"));
    assert_eq!(
        when(&attached, attach()),
        refused("the referral already belongs to a case")
    );
    let about_case = given(&[recorded(request(), DUE)]);
    assert_eq!(
        when(&about_case, attach()),
        refused("only a referral made from a helpline contact is attached to a case")
    );
    assert_eq!(
        when(&ReferralState::default(), attach()),
        Err(DomainError::Missing)
    );
}

#[test]
fn an_attached_referral_goes_on_with_its_life() {
    let state = given(&[recorded(request_about_contact(), DUE)]);
    let attached = then_state(state.clone(), &when(&state, attach()).expect("attached"));
    assert!(when(&attached, accept()).is_ok());
    assert!(when(&attached, Command::Escalate { now_ms: DUE }).is_ok());
}
