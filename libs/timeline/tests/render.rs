//! The timeline without a server: which compartment and kind every event type has, and
//! what each sight of an entry shows, with a real vault (SQLite key store in a tempdir).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use caseline_eventlog::{Metadata, Position, RecordedEvent, StreamName, Uuid};
use caseline_policy::{Compartment, Sight};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::v1::GoalDomain;
use caseline_proto::v1::events::{
    AccessRecorded, BreakGlassGranted, CaseOpened, CaseReopened, CasesLinked, CasesUnlinked,
    ClosureDecided, ClosureRequested, ContactAttached, ContactCaseOpened, ContactRecorded,
    JusticeMilestoneRecorded, NoteAdded, ReferralAccepted, ReferralAcknowledged, ReferralAttached,
    ReferralDeclined, ReferralEscalated, ReferralMade, ReferralOutcomeRecorded, ReferralWithdrawn,
    RiskAssessed, StageChanged, TeamMemberAdded, TeamMemberRemoved,
};
use caseline_proto::v1::events::{
    AppealLodged, ClaimClosed, ClaimDecided, ClaimFiled, ClaimSubmitted, ComplaintAcknowledged,
    ComplaintClosed, ComplaintEscalated, ComplaintFindingRecorded, ComplaintLodged,
    PaymentRecorded,
};
use caseline_proto::v1::events::{
    GoalAdded, GoalStatusUpdated, PlanApproved, PlanChangesRequested, PlanClosed, PlanCreated,
    PlanReviewed, PlanSubmitted, ProviderAssigned, ReviewScheduled, SafetyPlanRecorded,
    ServiceDelivered,
};
use caseline_proto::v1::{
    AgeBand, CallerKind, CaseSource, ConcernCategory, ContactChannel, Gender, LinkKind,
    MilestoneKind, NoteCompartment, RiskLevel, Stage, TimelineEntry, Urgency, Visibility,
    closure_view, timeline_entry::Detail,
};
use caseline_timeline::{Item, Render, from_unix_ms, note_compartment, timestamp};
use caseline_vault::{KEY_STORE_FILE, MasterKey, SecretText, SqliteKeyStore, Vault};

/// Plaintext that must never appear where the sight does not allow it.
const CANARY: &str = "CANARY-Zephyrine-Quillfeather";

const ACTOR: &str = "user-7";
const ACTOR_ROLE: &str = "social_worker";
const AGENCY: &str = "children-services-north";

/// A vault over a SQLite key store in a fresh directory (kept alive with it).
struct Fixture {
    _dir: tempfile::TempDir,
    vault: Vault,
    case_id: Uuid,
    visible: HashSet<Uuid>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::load_or_create(dir.path()).unwrap();
        let store = Arc::new(
            SqliteKeyStore::open(dir.path().join(KEY_STORE_FILE))
                .await
                .unwrap(),
        );
        Self {
            _dir: dir,
            vault: Vault::new(master, store),
            case_id: Uuid::new_v4(),
            visible: HashSet::new(),
        }
    }

    fn ctx(&self, identity: bool) -> Render<'_> {
        Render {
            vault: &self.vault,
            case_id: self.case_id,
            identity,
            visible_cases: &self.visible,
            contacts: true,
        }
    }

    /// `text` sealed for this fixture's case.
    async fn seal(&self, text: &str) -> Vec<u8> {
        self.seal_for(self.case_id, text).await
    }

    async fn seal_for(&self, case_id: Uuid, text: &str) -> Vec<u8> {
        self.vault
            .seal_text(case_id, &SecretText::new(text))
            .await
            .unwrap()
            .into_bytes()
    }

    /// `item` of `event` rendered with `sight`, identity visible or not.
    async fn render(&self, event: &RecordedEvent, sight: Sight, identity: bool) -> TimelineEntry {
        let item = Item::of(event).unwrap().unwrap();
        item.render(sight, &self.ctx(identity)).await.unwrap()
    }

    async fn full(&self, event: &RecordedEvent) -> Detail {
        self.render(event, Sight::Full, true)
            .await
            .detail
            .expect("a full entry has detail")
    }
}

/// An event as the log would hand it back, with arbitrary hashes.
fn raw_event(case_id: Uuid, event_type: &str, data: Vec<u8>) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::new_v4(),
        stream: StreamName::for_id("case", case_id).unwrap(),
        version: 3,
        position: "4242".parse::<Position>().unwrap(),
        event_type: event_type.to_owned(),
        data,
        metadata: Metadata {
            case_id: Some(case_id),
            actor: ACTOR.into(),
            actor_role: ACTOR_ROLE.into(),
            agency: AGENCY.into(),
            ..Metadata::default()
        },
        recorded_at: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        prev_hash: [1; 32],
        hash: [2; 32],
    }
}

fn event(case_id: Uuid, event_type: &str, payload: &impl Message) -> RecordedEvent {
    raw_event(case_id, event_type, payload.encode_to_vec())
}

/// An event whose payload is `M`'s default.
fn empty<M: Message + Default>(case_id: Uuid, event_type: &str) -> RecordedEvent {
    event(case_id, event_type, &M::default())
}

fn note(compartment: i32, text_sealed: Vec<u8>) -> NoteAdded {
    NoteAdded {
        note_id: "note-1".into(),
        compartment,
        text_sealed,
    }
}

/// One event of every type on a timeline (payloads without content), with the kind and
/// compartment it must have.
fn every_timeline_event(case_id: Uuid) -> Vec<(RecordedEvent, &'static str, Compartment)> {
    let c = case_id;
    let mut all = vec![
        (
            empty::<CaseOpened>(c, types::CASE_OPENED),
            "case_opened",
            Compartment::CaseCore,
        ),
        (
            empty::<RiskAssessed>(c, types::RISK_ASSESSED),
            "risk_assessed",
            Compartment::CaseCore,
        ),
        (
            empty::<TeamMemberAdded>(c, types::TEAM_MEMBER_ADDED),
            "team_member_added",
            Compartment::CaseCore,
        ),
        (
            empty::<TeamMemberRemoved>(c, types::TEAM_MEMBER_REMOVED),
            "team_member_removed",
            Compartment::CaseCore,
        ),
        (
            empty::<StageChanged>(c, types::STAGE_CHANGED),
            "stage_changed",
            Compartment::CaseCore,
        ),
        (
            empty::<ClosureRequested>(c, types::CLOSURE_REQUESTED),
            "closure_requested",
            Compartment::CaseCore,
        ),
        (
            empty::<ClosureDecided>(c, types::CLOSURE_DECIDED),
            "closure_decided",
            Compartment::CaseCore,
        ),
        (
            empty::<CaseReopened>(c, types::CASE_REOPENED),
            "case_reopened",
            Compartment::CaseCore,
        ),
        (
            empty::<ContactAttached>(c, types::CONTACT_ATTACHED),
            "contact_attached",
            Compartment::HelplineContacts,
        ),
        (
            empty::<CasesLinked>(c, types::CASES_LINKED),
            "cases_linked",
            Compartment::Investigation,
        ),
        (
            empty::<CasesUnlinked>(c, types::CASES_UNLINKED),
            "cases_unlinked",
            Compartment::Investigation,
        ),
        (
            empty::<JusticeMilestoneRecorded>(c, types::JUSTICE_MILESTONE_RECORDED),
            "justice_milestone_recorded",
            Compartment::JusticeMilestones,
        ),
        (
            empty::<ReferralMade>(c, types::REFERRAL_MADE),
            "referral_made",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralAcknowledged>(c, types::REFERRAL_ACKNOWLEDGED),
            "referral_acknowledged",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralAccepted>(c, types::REFERRAL_ACCEPTED),
            "referral_accepted",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralDeclined>(c, types::REFERRAL_DECLINED),
            "referral_declined",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralOutcomeRecorded>(c, types::REFERRAL_OUTCOME_RECORDED),
            "referral_outcome_recorded",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralWithdrawn>(c, types::REFERRAL_WITHDRAWN),
            "referral_withdrawn",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralEscalated>(c, types::REFERRAL_ESCALATED),
            "referral_escalated",
            Compartment::Referrals,
        ),
        (
            empty::<ReferralAttached>(c, types::REFERRAL_ATTACHED),
            "referral_attached",
            Compartment::Referrals,
        ),
        (
            empty::<PlanCreated>(c, types::PLAN_CREATED),
            "plan_created",
            Compartment::SupportPlan,
        ),
        (
            empty::<SafetyPlanRecorded>(c, types::SAFETY_PLAN_RECORDED),
            "safety_plan_recorded",
            Compartment::SupportPlan,
        ),
        (
            empty::<GoalAdded>(c, types::GOAL_ADDED),
            "goal_added",
            Compartment::SupportPlan,
        ),
        (
            empty::<ProviderAssigned>(c, types::PROVIDER_ASSIGNED),
            "provider_assigned",
            Compartment::SupportPlan,
        ),
        (
            empty::<ServiceDelivered>(c, types::SERVICE_DELIVERED),
            "service_delivered",
            Compartment::SupportPlan,
        ),
        (
            empty::<GoalStatusUpdated>(c, types::GOAL_STATUS_UPDATED),
            "goal_status_updated",
            Compartment::SupportPlan,
        ),
        (
            empty::<PlanSubmitted>(c, types::PLAN_SUBMITTED),
            "plan_submitted",
            Compartment::SupportPlan,
        ),
        (
            empty::<PlanApproved>(c, types::PLAN_APPROVED),
            "plan_approved",
            Compartment::SupportPlan,
        ),
        (
            empty::<PlanChangesRequested>(c, types::PLAN_CHANGES_REQUESTED),
            "plan_changes_requested",
            Compartment::SupportPlan,
        ),
        (
            empty::<ReviewScheduled>(c, types::REVIEW_SCHEDULED),
            "review_scheduled",
            Compartment::SupportPlan,
        ),
        (
            empty::<PlanReviewed>(c, types::PLAN_REVIEWED),
            "plan_reviewed",
            Compartment::SupportPlan,
        ),
        (
            empty::<PlanClosed>(c, types::PLAN_CLOSED),
            "plan_closed",
            Compartment::SupportPlan,
        ),
        (
            empty::<ClaimFiled>(c, types::CLAIM_FILED),
            "claim_filed",
            Compartment::CompensationClaims,
        ),
        (
            empty::<ClaimSubmitted>(c, types::CLAIM_SUBMITTED),
            "claim_submitted",
            Compartment::CompensationClaims,
        ),
        (
            empty::<ClaimDecided>(c, types::CLAIM_DECIDED),
            "claim_decided",
            Compartment::CompensationClaims,
        ),
        (
            empty::<AppealLodged>(c, types::APPEAL_LODGED),
            "appeal_lodged",
            Compartment::CompensationClaims,
        ),
        (
            empty::<PaymentRecorded>(c, types::PAYMENT_RECORDED),
            "payment_recorded",
            Compartment::CompensationClaims,
        ),
        (
            empty::<ClaimClosed>(c, types::CLAIM_CLOSED),
            "claim_closed",
            Compartment::CompensationClaims,
        ),
        (
            empty::<ComplaintLodged>(c, types::COMPLAINT_LODGED),
            "complaint_lodged",
            Compartment::Complaints,
        ),
        (
            empty::<ComplaintAcknowledged>(c, types::COMPLAINT_ACKNOWLEDGED),
            "complaint_acknowledged",
            Compartment::Complaints,
        ),
        (
            empty::<ComplaintFindingRecorded>(c, types::COMPLAINT_FINDING_RECORDED),
            "complaint_finding_recorded",
            Compartment::Complaints,
        ),
        (
            empty::<ComplaintEscalated>(c, types::COMPLAINT_ESCALATED),
            "complaint_escalated",
            Compartment::Complaints,
        ),
        (
            empty::<ComplaintClosed>(c, types::COMPLAINT_CLOSED),
            "complaint_closed",
            Compartment::Complaints,
        ),
    ];
    for (c, compartment) in [
        (NoteCompartment::Helpline, Compartment::HelplineContacts),
        (NoteCompartment::Social, Compartment::SupportPlan),
        (NoteCompartment::Investigation, Compartment::Investigation),
        (NoteCompartment::Legal, Compartment::JusticeMilestones),
        (NoteCompartment::Health, Compartment::HealthNotes),
    ] {
        all.push((
            event(case_id, types::NOTE_ADDED, &note(c as i32, Vec::new())),
            "note_added",
            compartment,
        ));
    }
    all
}

#[test]
fn every_timeline_event_has_its_compartment_and_kind() {
    let case_id = Uuid::new_v4();
    let all = every_timeline_event(case_id);
    assert_eq!(all.len(), 48);
    for (event, kind, compartment) in &all {
        let item = Item::of(event)
            .unwrap()
            .unwrap_or_else(|| panic!("{} is on timelines", event.event_type));
        assert_eq!(item.kind(), *kind, "{}", event.event_type);
        assert_eq!(item.compartment(), *compartment, "{}", event.event_type);
        assert_eq!(item.other_case(), None, "{}", event.event_type);
    }
    // Every kind is distinct but the notes'.
    let kinds: HashSet<_> = all.iter().map(|(_, k, _)| *k).collect();
    assert_eq!(kinds.len(), 44);
}

#[test]
fn a_goal_entry_is_a_health_goal_exactly_for_medical_and_therapy() {
    let c = Uuid::new_v4();
    for (domain, health) in [
        (GoalDomain::Medical, true),
        (GoalDomain::Therapy, true),
        (GoalDomain::Education, false),
        (GoalDomain::Safety, false),
    ] {
        let e = event(
            c,
            types::SERVICE_DELIVERED,
            &ServiceDelivered {
                domain: domain as i32,
                ..ServiceDelivered::default()
            },
        );
        assert_eq!(
            Item::of(&e).unwrap().unwrap().entry().health_goal,
            health,
            "{domain:?}"
        );
    }
    let plan_level = event(c, types::PLAN_CREATED, &PlanCreated::default());
    assert!(!Item::of(&plan_level).unwrap().unwrap().entry().health_goal);
}

#[tokio::test]
async fn a_referral_entry_is_addressed_to_its_agency_and_its_summary_stays_closed() {
    let f = Fixture::new().await;
    let c = f.case_id;
    let made = event(
        c,
        types::REFERRAL_MADE,
        &ReferralMade {
            referral_id: Uuid::new_v4().to_string(),
            from_agency: "helpline-a".into(),
            to_agency: "clinic-b".into(),
            reason_sealed: f.seal(CANARY).await,
            ..ReferralMade::default()
        },
    );
    let item = Item::of(&made).unwrap().unwrap();
    assert_eq!(item.entry().addressed_to, Some("clinic-b"));
    assert!(!item.entry().health_goal);
    for sight in [Sight::Summary, Sight::Metadata] {
        let entry = f.render(&made, sight, true).await;
        assert!(entry.detail.is_none(), "{sight:?}");
        assert!(!format!("{entry:?}").contains(CANARY), "{sight:?}");
    }
    let full = f.render(&made, Sight::Full, false).await;
    match full.detail.unwrap() {
        Detail::Referral(r) => {
            assert_eq!(r.text, CANARY);
            assert_eq!(
                (r.from_agency.as_str(), r.to_agency.as_str()),
                ("helpline-a", "clinic-b")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn note_compartments_map_to_the_table() {
    assert_eq!(note_compartment(0), None);
    assert_eq!(note_compartment(-1), None);
    assert_eq!(note_compartment(6), None);
    assert_eq!(note_compartment(99), None);
    assert_eq!(note_compartment(1), Some(Compartment::HelplineContacts));
    assert_eq!(note_compartment(2), Some(Compartment::SupportPlan));
    assert_eq!(note_compartment(3), Some(Compartment::Investigation));
    assert_eq!(note_compartment(4), Some(Compartment::JusticeMilestones));
    assert_eq!(note_compartment(5), Some(Compartment::HealthNotes));
}

#[test]
fn events_that_are_not_part_of_the_childs_story_have_no_item() {
    let case_id = Uuid::new_v4();
    let none = [
        event(
            case_id,
            types::ACCESS_RECORDED,
            &AccessRecorded {
                rpc: "/caseline.v1.CaseService/GetTimeline".into(),
                case_id: case_id.to_string(),
                ..AccessRecorded::default()
            },
        ),
        event(
            case_id,
            types::BREAK_GLASS_GRANTED,
            &BreakGlassGranted {
                subject: "user-9".into(),
                reason_sealed: vec![1; 64],
                ..BreakGlassGranted::default()
            },
        ),
        event(
            case_id,
            types::CONTACT_RECORDED,
            &ContactRecorded {
                anonymous: true,
                ..ContactRecorded::default()
            },
        ),
        event(
            case_id,
            types::CONTACT_CASE_OPENED,
            &ContactCaseOpened {
                case_id: case_id.to_string(),
            },
        ),
        raw_event(case_id, "caseline.v1.events.SomethingNew", vec![1, 2, 3]),
        raw_event(case_id, "caseline.v1.events.caseopened", Vec::new()),
        raw_event(case_id, "CaseOpened", Vec::new()),
        // Never decoded, so even a payload that is not protobuf is not corruption here.
        raw_event(case_id, types::ACCESS_RECORDED, vec![0x0a, 0x05, 0x01]),
    ];
    for event in &none {
        assert!(
            Item::of(event).unwrap().is_none(),
            "{} must not be on timelines",
            event.event_type
        );
    }
}

fn assert_corrupt(event: &RecordedEvent, want: &str) {
    match Item::of(event) {
        Err(caseline_eventlog::Error::Corrupt { position, reason }) => {
            assert_eq!(position, "4242");
            assert!(reason.starts_with(&event.event_type), "{reason}");
            assert!(reason.contains(want), "{reason}");
        }
        Err(other) => panic!("{}: expected corruption, got {other:?}", event.event_type),
        Ok(item) => panic!(
            "{}: expected corruption, got {:?}",
            event.event_type,
            item.map(|i| i.kind())
        ),
    }
}

#[test]
fn a_note_in_an_unknown_compartment_is_corruption_not_hidden() {
    let case_id = Uuid::new_v4();
    for compartment in [0, 99, -1, 6, i32::MAX] {
        let event = event(case_id, types::NOTE_ADDED, &note(compartment, vec![1; 64]));
        assert_corrupt(&event, "unknown note compartment");
    }
}

#[test]
fn a_payload_that_does_not_decode_is_corruption_not_hidden() {
    let case_id = Uuid::new_v4();
    // Field 1, length-delimited, claims 5 bytes but has 1: no message decodes it.
    let truncated = vec![0x0a, 0x05, 0x01];
    // Tag 0 is never valid.
    let tag_zero = vec![0x00, 0x01];
    for (event, _, _) in every_timeline_event(case_id) {
        for data in [&truncated, &tag_zero] {
            let bad = raw_event(case_id, &event.event_type, data.clone());
            assert_corrupt(&bad, "payload does not decode");
        }
    }
}

/// Everything an entry shows at every sight.
fn assert_envelope(entry: &TimelineEntry, event: &RecordedEvent, kind: &str, compartment: &str) {
    assert_eq!(entry.event_id, event.event_id.to_string());
    assert_eq!(entry.position, "4242");
    let at = entry.recorded_at.as_ref().unwrap();
    assert_eq!((at.seconds, at.nanos), (1_700_000_000, 123_456_000));
    assert_eq!(entry.kind, kind);
    assert_eq!(entry.compartment, compartment);
    assert_eq!(entry.agency, AGENCY);
}

#[tokio::test]
async fn summary_shows_that_the_entry_exists_and_nothing_of_who_or_what() {
    let f = Fixture::new().await;
    let event = event(
        f.case_id,
        types::NOTE_ADDED,
        &note(NoteCompartment::Investigation as i32, f.seal(CANARY).await),
    );
    for identity in [false, true] {
        let entry = f.render(&event, Sight::Summary, identity).await;
        assert_envelope(&entry, &event, "note_added", "investigation");
        assert_eq!(entry.visibility, Visibility::Summary as i32);
        assert_eq!(entry.actor, "");
        assert_eq!(entry.actor_role, "");
        assert!(entry.detail.is_none());
        assert!(!format!("{entry:?}").contains(CANARY));
    }
}

#[tokio::test]
async fn none_asked_anyway_is_no_more_than_a_summary() {
    let f = Fixture::new().await;
    let event = event(
        f.case_id,
        types::NOTE_ADDED,
        &note(NoteCompartment::Health as i32, f.seal(CANARY).await),
    );
    let entry = f.render(&event, Sight::None, true).await;
    assert_envelope(&entry, &event, "note_added", "health_notes");
    assert_eq!(entry.visibility, Visibility::Summary as i32);
    assert_eq!((entry.actor.as_str(), entry.actor_role.as_str()), ("", ""));
    assert!(entry.detail.is_none());
}

#[tokio::test]
async fn metadata_shows_who_but_never_content() {
    let f = Fixture::new().await;
    let event = event(
        f.case_id,
        types::NOTE_ADDED,
        &note(NoteCompartment::Social as i32, f.seal(CANARY).await),
    );
    let entry = f.render(&event, Sight::Metadata, true).await;
    assert_envelope(&entry, &event, "note_added", "support_plan");
    assert_eq!(entry.visibility, Visibility::Metadata as i32);
    assert_eq!(entry.actor, ACTOR);
    assert_eq!(entry.actor_role, ACTOR_ROLE);
    assert!(entry.detail.is_none());
    assert!(!format!("{entry:?}").contains(CANARY));
}

#[tokio::test]
async fn summary_and_metadata_never_touch_the_vault() {
    // A case with no key in the store at all, and sealed fields that are not even
    // well-formed: opening anything would fail, so neither sight may try.
    let f = Fixture::new().await;
    let garbage = vec![0xee; 3];
    let events = [
        event(
            f.case_id,
            types::NOTE_ADDED,
            &note(NoteCompartment::Legal as i32, garbage.clone()),
        ),
        event(
            f.case_id,
            types::CASE_OPENED,
            &CaseOpened {
                pseudonym: "Child A-17".into(),
                name_sealed: garbage.clone(),
                date_of_birth_sealed: garbage.clone(),
                ..CaseOpened::default()
            },
        ),
        event(
            f.case_id,
            types::CONTACT_ATTACHED,
            &ContactAttached {
                summary_sealed: garbage.clone(),
                ..ContactAttached::default()
            },
        ),
    ];
    for event in &events {
        let item = Item::of(event).unwrap().unwrap();
        for sight in [Sight::None, Sight::Summary, Sight::Metadata] {
            let entry = item.render(sight, &f.ctx(true)).await.unwrap();
            assert!(entry.detail.is_none());
        }
        // Full does open, and fails rather than show anything.
        assert!(item.render(Sight::Full, &f.ctx(true)).await.is_err());
    }
}

#[tokio::test]
async fn full_opens_every_sealed_field() {
    let mut f = Fixture::new().await;
    let other = Uuid::new_v4();
    f.visible.insert(other);
    let c = f.case_id;

    // Contact.
    let e = event(
        c,
        types::CONTACT_ATTACHED,
        &ContactAttached {
            contact_id: "contact-1".into(),
            channel: ContactChannel::Phone as i32,
            caller_kind: CallerKind::Child as i32,
            concerns: vec![ConcernCategory::Grooming as i32],
            urgency: Urgency::Urgent as i32,
            anonymous: false,
            summary_sealed: f.seal("called about a stranger online").await,
            caller_name_sealed: f.seal("Ada").await,
            caller_contact_sealed: f.seal("+44 7700 900123").await,
            contacted_at_unix_ms: 1_699_999_999_500,
        },
    );
    let entry = f.render(&e, Sight::Full, true).await;
    assert_envelope(&entry, &e, "contact_attached", "helpline_contacts");
    assert_eq!(entry.visibility, Visibility::Full as i32);
    assert_eq!(entry.actor, ACTOR);
    assert_eq!(entry.actor_role, ACTOR_ROLE);
    let Some(Detail::Contact(v)) = entry.detail else {
        panic!("contact detail")
    };
    assert_eq!(v.contact_id, "contact-1");
    assert_eq!(v.channel, ContactChannel::Phone as i32);
    assert_eq!(v.caller_kind, CallerKind::Child as i32);
    assert_eq!(v.concerns, vec![ConcernCategory::Grooming as i32]);
    assert_eq!(v.urgency, Urgency::Urgent as i32);
    assert_eq!(v.summary, "called about a stranger online");
    assert_eq!(v.caller_name, "Ada");
    assert_eq!(v.caller_contact, "+44 7700 900123");
    let at = v.contacted_at.unwrap();
    assert_eq!((at.seconds, at.nanos), (1_699_999_999, 500_000_000));
    assert!(!v.erased);

    // Case opened, identity visible.
    let e = event(
        c,
        types::CASE_OPENED,
        &CaseOpened {
            pseudonym: "Child A-17".into(),
            name_sealed: f.seal("Ada Example").await,
            date_of_birth_sealed: f.seal("2014-03-09").await,
            contact_details_sealed: Vec::new(),
            age_band: AgeBand::Unknown as i32,
            gender: Gender::Girl as i32,
            language: "en-GB".into(),
            region_sealed: f.seal("north").await,
            source: CaseSource::Helpline as i32,
            concerns: vec![ConcernCategory::Sextortion as i32],
            initial_risk: RiskLevel::High as i32,
            contact_id: "contact-1".into(),
        },
    );
    let Detail::CaseOpened(v) = f.full(&e).await else {
        panic!("case opened detail")
    };
    assert_eq!(v.pseudonym, "Child A-17");
    let id = v.identity.unwrap();
    assert_eq!(id.name, "Ada Example");
    assert_eq!(id.date_of_birth, "2014-03-09");
    assert_eq!(id.contact_details, "", "no text sealed: empty");
    assert_eq!(v.age_band, AgeBand::Unknown as i32);
    assert_eq!(v.gender, Gender::Girl as i32);
    assert_eq!((v.language.as_str(), v.region.as_str()), ("en-GB", "north"));
    assert_eq!(v.source, CaseSource::Helpline as i32);
    assert_eq!(v.concerns, vec![ConcernCategory::Sextortion as i32]);
    assert_eq!(v.initial_risk, RiskLevel::High as i32);
    assert_eq!(v.contact_id, "contact-1");
    assert!(!v.erased);

    // Risk.
    let e = event(
        c,
        types::RISK_ASSESSED,
        &RiskAssessed {
            level: RiskLevel::Medium as i32,
            factors_sealed: f.seal("contact with suspect continues").await,
            immediate_actions_sealed: f.seal("safety plan with school").await,
        },
    );
    let Detail::RiskAssessment(v) = f.full(&e).await else {
        panic!("risk detail")
    };
    assert_eq!(v.level, RiskLevel::Medium as i32);
    assert_eq!(v.factors, "contact with suspect continues");
    assert_eq!(v.immediate_actions, "safety plan with school");
    assert!(!v.erased);

    // Team.
    let e = event(
        c,
        types::TEAM_MEMBER_ADDED,
        &TeamMemberAdded {
            subject: "user-9".into(),
            agency: "police-north".into(),
            role: "investigator".into(),
        },
    );
    let Detail::TeamChange(v) = f.full(&e).await else {
        panic!("team detail")
    };
    assert!(v.added);
    assert_eq!(
        (v.subject.as_str(), v.agency.as_str(), v.role.as_str()),
        ("user-9", "police-north", "investigator")
    );
    let e = event(
        c,
        types::TEAM_MEMBER_REMOVED,
        &TeamMemberRemoved {
            subject: "user-9".into(),
            agency: "police-north".into(),
        },
    );
    let Detail::TeamChange(v) = f.full(&e).await else {
        panic!("team detail")
    };
    assert!(!v.added);
    assert_eq!(
        (v.subject.as_str(), v.agency.as_str(), v.role.as_str()),
        ("user-9", "police-north", "")
    );

    // Note.
    let e = event(
        c,
        types::NOTE_ADDED,
        &note(
            NoteCompartment::Health as i32,
            f.seal("examined at the clinic").await,
        ),
    );
    let Detail::Note(v) = f.full(&e).await else {
        panic!("note detail")
    };
    assert_eq!(v.note_id, "note-1");
    assert_eq!(v.compartment, NoteCompartment::Health as i32);
    assert_eq!(v.text, "examined at the clinic");
    assert!(!v.erased);

    // Links (the other case visible: see `links_show_the_other_case_only_if_visible`).
    let e = event(
        c,
        types::CASES_LINKED,
        &CasesLinked {
            link_id: "link-1".into(),
            other_case_id: other.to_string(),
            kind: LinkKind::SameSuspect as i32,
            reason_sealed: f.seal("same username").await,
        },
    );
    let Detail::Link(v) = f.full(&e).await else {
        panic!("link detail")
    };
    assert!(v.linked);
    assert_eq!(v.link_id, "link-1");
    assert_eq!(v.other_case_id, other.to_string());
    assert!(v.other_case_visible);
    assert_eq!(v.kind, LinkKind::SameSuspect as i32);
    assert_eq!(v.reason, "same username");
    assert!(!v.erased);
    let e = event(
        c,
        types::CASES_UNLINKED,
        &CasesUnlinked {
            link_id: "link-1".into(),
            other_case_id: other.to_string(),
            reason_sealed: f.seal("different person").await,
        },
    );
    let Detail::Link(v) = f.full(&e).await else {
        panic!("link detail")
    };
    assert!(!v.linked);
    assert_eq!(v.link_id, "link-1");
    assert_eq!(v.other_case_id, other.to_string());
    assert!(v.other_case_visible);
    assert_eq!(v.kind, 0);
    assert_eq!(v.reason, "different person");

    // Stage, reopening.
    let e = event(
        c,
        types::STAGE_CHANGED,
        &StageChanged {
            from: Stage::Intake as i32,
            to: Stage::Investigation as i32,
            reason_sealed: f.seal("reported to police").await,
        },
    );
    let Detail::Stage(v) = f.full(&e).await else {
        panic!("stage detail")
    };
    assert_eq!(
        (v.from, v.to),
        (Stage::Intake as i32, Stage::Investigation as i32)
    );
    assert_eq!(v.reason, "reported to police");
    let e = event(
        c,
        types::CASE_REOPENED,
        &CaseReopened {
            stage: Stage::Aftercare as i32,
            reason_sealed: f.seal("new disclosure").await,
        },
    );
    let Detail::Stage(v) = f.full(&e).await else {
        panic!("stage detail")
    };
    assert_eq!(
        (v.from, v.to),
        (Stage::Closed as i32, Stage::Aftercare as i32)
    );
    assert_eq!(v.reason, "new disclosure");

    // Closure.
    let e = event(
        c,
        types::CLOSURE_REQUESTED,
        &ClosureRequested {
            reason_sealed: f.seal("support plan completed").await,
            requested_by: ACTOR.into(),
            requested_by_agency: AGENCY.into(),
        },
    );
    let Detail::Closure(v) = f.full(&e).await else {
        panic!("closure detail")
    };
    assert_eq!(v.step, closure_view::Step::Requested as i32);
    assert_eq!(v.text, "support plan completed");
    for (approved, step) in [
        (true, closure_view::Step::Approved),
        (false, closure_view::Step::Rejected),
    ] {
        let e = event(
            c,
            types::CLOSURE_DECIDED,
            &ClosureDecided {
                approved,
                comment_sealed: f.seal("reviewed").await,
            },
        );
        let Detail::Closure(v) = f.full(&e).await else {
            panic!("closure detail")
        };
        assert_eq!(v.step, step as i32);
        assert_eq!(v.text, "reviewed");
    }

    // Milestones, the child told or not.
    let e = event(
        c,
        types::JUSTICE_MILESTONE_RECORDED,
        &JusticeMilestoneRecorded {
            milestone_id: "m-1".into(),
            kind: MilestoneKind::Charge as i32,
            occurred_at_unix_ms: 1_700_000_000_000,
            description_sealed: f.seal("suspect charged").await,
            child_informed: true,
            child_informed_at_unix_ms: 1_700_000_360_000,
        },
    );
    let Detail::Milestone(v) = f.full(&e).await else {
        panic!("milestone detail")
    };
    assert_eq!(v.milestone_id, "m-1");
    assert_eq!(v.kind, MilestoneKind::Charge as i32);
    assert_eq!(v.occurred_at.unwrap().seconds, 1_700_000_000);
    assert_eq!(v.description, "suspect charged");
    assert!(v.child_informed);
    assert_eq!(v.child_informed_at.unwrap().seconds, 1_700_000_360);
    assert!(!v.erased);
    let e = event(
        c,
        types::JUSTICE_MILESTONE_RECORDED,
        &JusticeMilestoneRecorded {
            milestone_id: "m-2".into(),
            kind: MilestoneKind::Report as i32,
            occurred_at_unix_ms: 1_700_000_000_000,
            child_informed: false,
            child_informed_at_unix_ms: 1_700_000_360_000,
            ..JusticeMilestoneRecorded::default()
        },
    );
    let Detail::Milestone(v) = f.full(&e).await else {
        panic!("milestone detail")
    };
    assert!(!v.child_informed);
    assert_eq!(v.child_informed_at, None, "not told: no time");
    assert_eq!(v.description, "");
}

fn case_opened(name_sealed: Vec<u8>, date_of_birth_sealed: Vec<u8>) -> CaseOpened {
    CaseOpened {
        pseudonym: "Child A-17".into(),
        name_sealed,
        date_of_birth_sealed,
        ..CaseOpened::default()
    }
}

#[tokio::test]
async fn identity_only_when_the_caller_may_see_it() {
    let f = Fixture::new().await;
    let e = event(
        f.case_id,
        types::CASE_OPENED,
        &case_opened(f.seal(CANARY).await, f.seal("2014-03-09").await),
    );

    let hidden = f.render(&e, Sight::Full, false).await;
    assert_eq!(hidden.visibility, Visibility::Full as i32);
    let Some(Detail::CaseOpened(v)) = &hidden.detail else {
        panic!("case opened detail")
    };
    assert_eq!(v.identity, None);
    assert_eq!(v.pseudonym, "Child A-17");
    assert!(!format!("{hidden:?}").contains(CANARY));
    assert!(!format!("{hidden:?}").contains("2014-03-09"));

    let shown = f.render(&e, Sight::Full, true).await;
    let Some(Detail::CaseOpened(v)) = shown.detail else {
        panic!("case opened detail")
    };
    let id = v.identity.unwrap();
    assert_eq!(id.name, CANARY);
    assert_eq!(id.date_of_birth, "2014-03-09");
    assert_eq!(v.pseudonym, "Child A-17");
}

#[tokio::test]
async fn identity_hidden_is_not_even_opened() {
    // Identity fields that cannot be opened do not fail a caller who may not see them.
    let f = Fixture::new().await;
    let elsewhere = f.seal_for(Uuid::new_v4(), CANARY).await;
    let e = event(
        f.case_id,
        types::CASE_OPENED,
        &case_opened(elsewhere, vec![0xee; 3]),
    );
    let item = Item::of(&e).unwrap().unwrap();
    let entry = item.render(Sight::Full, &f.ctx(false)).await.unwrap();
    let Some(Detail::CaseOpened(v)) = entry.detail else {
        panic!("case opened detail")
    };
    assert_eq!(v.identity, None);
    assert!(item.render(Sight::Full, &f.ctx(true)).await.is_err());
}

fn link(other_case_id: String) -> CasesLinked {
    CasesLinked {
        link_id: "link-1".into(),
        other_case_id,
        kind: LinkKind::SameImageSeries as i32,
        reason_sealed: Vec::new(),
    }
}

fn unlink(other_case_id: String) -> CasesUnlinked {
    CasesUnlinked {
        link_id: "link-1".into(),
        other_case_id,
        reason_sealed: Vec::new(),
    }
}

#[tokio::test]
async fn links_show_the_other_case_only_if_visible() {
    let mut f = Fixture::new().await;
    let seen = Uuid::new_v4();
    let unseen = Uuid::new_v4();
    f.visible.insert(seen);
    f.visible.insert(Uuid::new_v4());

    for (other, visible) in [(seen, true), (unseen, false)] {
        let events = [
            event(f.case_id, types::CASES_LINKED, &link(other.to_string())),
            event(f.case_id, types::CASES_UNLINKED, &unlink(other.to_string())),
        ];
        for e in &events {
            let item = Item::of(e).unwrap().unwrap();
            assert_eq!(item.other_case(), Some(other));
            let entry = item.render(Sight::Full, &f.ctx(true)).await.unwrap();
            let Some(Detail::Link(v)) = entry.detail else {
                panic!("link detail")
            };
            assert_eq!(v.other_case_visible, visible, "{}", e.event_type);
            if visible {
                assert_eq!(v.other_case_id, other.to_string());
            } else {
                assert_eq!(v.other_case_id, "");
            }
            assert_eq!(v.link_id, "link-1");
            // No sight but Full carries the link at all.
            for sight in [Sight::Summary, Sight::Metadata] {
                let entry = item.render(sight, &f.ctx(true)).await.unwrap();
                assert!(entry.detail.is_none());
                assert!(!format!("{entry:?}").contains(&other.to_string()));
            }
        }
    }
}

#[tokio::test]
async fn a_visible_link_reads_in_canonical_form_whatever_was_stored() {
    let mut f = Fixture::new().await;
    let other = Uuid::new_v4();
    f.visible.insert(other);
    let upper = other.to_string().to_uppercase();
    let e = event(f.case_id, types::CASES_LINKED, &link(upper));
    let Detail::Link(v) = f.full(&e).await else {
        panic!("link detail")
    };
    assert!(v.other_case_visible);
    assert_eq!(v.other_case_id, other.to_string());
}

#[tokio::test]
async fn a_link_to_an_unreadable_case_id_shows_no_case() {
    let mut f = Fixture::new().await;
    f.visible.insert(Uuid::nil());
    for bad in ["", "not-a-uuid", "case-123"] {
        let e = event(f.case_id, types::CASES_LINKED, &link(bad.into()));
        let item = Item::of(&e).unwrap().unwrap();
        assert_eq!(item.other_case(), None);
        let Detail::Link(v) = f.full(&e).await else {
            panic!("link detail")
        };
        assert!(!v.other_case_visible);
        assert_eq!(v.other_case_id, "");
    }
}

#[tokio::test]
async fn after_shredding_full_entries_read_as_erased_not_as_errors() {
    let f = Fixture::new().await;
    let c = f.case_id;
    let events = [
        event(
            c,
            types::NOTE_ADDED,
            &note(NoteCompartment::Investigation as i32, f.seal(CANARY).await),
        ),
        event(
            c,
            types::CASE_OPENED,
            &case_opened(f.seal(CANARY).await, f.seal("2014-03-09").await),
        ),
        event(
            c,
            types::CONTACT_ATTACHED,
            &ContactAttached {
                summary_sealed: f.seal(CANARY).await,
                caller_name_sealed: f.seal(CANARY).await,
                ..ContactAttached::default()
            },
        ),
        event(
            c,
            types::RISK_ASSESSED,
            &RiskAssessed {
                level: RiskLevel::High as i32,
                factors_sealed: f.seal(CANARY).await,
                immediate_actions_sealed: Vec::new(),
            },
        ),
        event(
            c,
            types::CASES_LINKED,
            &CasesLinked {
                reason_sealed: f.seal(CANARY).await,
                ..link(Uuid::new_v4().to_string())
            },
        ),
        event(
            c,
            types::STAGE_CHANGED,
            &StageChanged {
                reason_sealed: f.seal(CANARY).await,
                ..StageChanged::default()
            },
        ),
        event(
            c,
            types::CLOSURE_DECIDED,
            &ClosureDecided {
                approved: true,
                comment_sealed: f.seal(CANARY).await,
            },
        ),
        event(
            c,
            types::JUSTICE_MILESTONE_RECORDED,
            &JusticeMilestoneRecorded {
                kind: MilestoneKind::Verdict as i32,
                description_sealed: f.seal(CANARY).await,
                ..JusticeMilestoneRecorded::default()
            },
        ),
        event(
            c,
            types::REFERRAL_MADE,
            &ReferralMade {
                referral_id: Uuid::new_v4().to_string(),
                to_agency: "police-x".into(),
                reason_sealed: f.seal(CANARY).await,
                ..ReferralMade::default()
            },
        ),
        event(
            c,
            types::GOAL_ADDED,
            &GoalAdded {
                goal_id: "goal-1".into(),
                domain: GoalDomain::Therapy as i32,
                description_sealed: f.seal(CANARY).await,
                ..GoalAdded::default()
            },
        ),
        event(
            c,
            types::COMPLAINT_LODGED,
            &ComplaintLodged {
                complaint_id: "complaint-1".into(),
                about: "police-north".into(),
                description_sealed: f.seal(CANARY).await,
                ..ComplaintLodged::default()
            },
        ),
    ];
    // Readable before.
    for e in &events {
        let entry = f.render(e, Sight::Full, true).await;
        assert!(format!("{entry:?}").contains(CANARY), "{}", e.event_type);
    }

    f.vault.shred(c).await.unwrap();

    for e in &events {
        let entry = f.render(e, Sight::Full, true).await;
        assert_eq!(entry.visibility, Visibility::Full as i32);
        assert!(!format!("{entry:?}").contains(CANARY), "{}", e.event_type);
        let erased = match entry.detail.unwrap() {
            Detail::Note(v) => {
                assert_eq!(v.text, "");
                v.erased
            }
            Detail::CaseOpened(v) => {
                let id = v.identity.unwrap();
                assert_eq!((id.name.as_str(), id.date_of_birth.as_str()), ("", ""));
                assert_eq!(v.pseudonym, "Child A-17", "unsealed fields remain");
                v.erased
            }
            Detail::Contact(v) => {
                assert_eq!((v.summary.as_str(), v.caller_name.as_str()), ("", ""));
                v.erased
            }
            Detail::RiskAssessment(v) => {
                assert_eq!(v.factors, "");
                assert_eq!(v.level, RiskLevel::High as i32, "unsealed fields remain");
                v.erased
            }
            Detail::Link(v) => {
                assert_eq!(v.reason, "");
                v.erased
            }
            Detail::Stage(v) => {
                assert_eq!(v.reason, "");
                v.erased
            }
            Detail::Closure(v) => {
                assert_eq!(v.text, "");
                assert_eq!(v.step, closure_view::Step::Approved as i32);
                v.erased
            }
            Detail::Milestone(v) => {
                assert_eq!(v.description, "");
                assert_eq!(v.kind, MilestoneKind::Verdict as i32);
                v.erased
            }
            Detail::Referral(v) => {
                assert_eq!(v.text, "");
                assert_eq!(v.to_agency, "police-x", "unsealed fields remain");
                v.erased
            }
            Detail::Remedy(v) => {
                assert_eq!(v.text, "");
                assert_eq!(v.about, "police-north", "unsealed fields remain");
                v.erased
            }
            Detail::Plan(v) => {
                assert_eq!(v.text, "");
                assert_eq!(
                    v.domain,
                    GoalDomain::Therapy as i32,
                    "unsealed fields remain"
                );
                v.erased
            }
            Detail::TeamChange(_) => unreachable!("no team change here"),
        };
        assert!(erased, "{} must read as erased", e.event_type);

        // The other sights are as before.
        for sight in [Sight::Summary, Sight::Metadata] {
            let entry = f.render(e, sight, true).await;
            assert!(entry.detail.is_none());
        }
    }
}

#[tokio::test]
async fn a_field_sealed_for_another_case_never_opens() {
    let f = Fixture::new().await;
    // Both cases have keys.
    let own = f.seal("own text").await;
    let elsewhere = f.seal_for(Uuid::new_v4(), CANARY).await;

    let ok = event(
        f.case_id,
        types::NOTE_ADDED,
        &note(NoteCompartment::Social as i32, own),
    );
    let Detail::Note(v) = f.full(&ok).await else {
        panic!("note detail")
    };
    assert_eq!(v.text, "own text");

    let copied = [
        event(
            f.case_id,
            types::NOTE_ADDED,
            &note(NoteCompartment::Social as i32, elsewhere.clone()),
        ),
        event(
            f.case_id,
            types::CASE_OPENED,
            &case_opened(Vec::new(), elsewhere.clone()),
        ),
        event(
            f.case_id,
            types::CLOSURE_REQUESTED,
            &ClosureRequested {
                reason_sealed: elsewhere.clone(),
                ..ClosureRequested::default()
            },
        ),
    ];
    for e in &copied {
        let item = Item::of(e).unwrap().unwrap();
        match item.render(Sight::Full, &f.ctx(true)).await {
            Err(caseline_vault::Error::Tampered { case_id }) => {
                assert_eq!(case_id, f.case_id);
            }
            Err(other) => panic!("{}: expected Tampered, got {other}", e.event_type),
            Ok(entry) => panic!("{}: opened another case's field: {entry:?}", e.event_type),
        }
        // Summary and metadata do not open it, so they still work.
        for sight in [Sight::Summary, Sight::Metadata] {
            let entry = item.render(sight, &f.ctx(true)).await.unwrap();
            assert!(!format!("{entry:?}").contains(CANARY));
        }
    }
}

#[tokio::test]
async fn a_field_of_a_case_without_a_key_fails_rather_than_reads_empty() {
    // The other case sealed something; this case never did, so it has no key at all.
    let f = Fixture::new().await;
    let elsewhere = f.seal_for(Uuid::new_v4(), CANARY).await;
    let e = event(
        f.case_id,
        types::NOTE_ADDED,
        &note(NoteCompartment::Social as i32, elsewhere),
    );
    let item = Item::of(&e).unwrap().unwrap();
    let err = item.render(Sight::Full, &f.ctx(true)).await.unwrap_err();
    assert!(
        matches!(err, caseline_vault::Error::MissingKey { case_id } if case_id == f.case_id),
        "{err:?}"
    );
    assert!(!err.to_string().contains(CANARY));
}

#[tokio::test]
async fn an_altered_or_malformed_sealed_field_fails() {
    let f = Fixture::new().await;
    let mut altered = f.seal(CANARY).await;
    let last = altered.len() - 1;
    altered[last] ^= 1;
    for (bytes, tampered) in [
        (altered, true),
        (vec![0xee; 3], false),
        (vec![1, 2, 3], false),
    ] {
        let e = event(
            f.case_id,
            types::NOTE_ADDED,
            &note(NoteCompartment::Helpline as i32, bytes),
        );
        let item = Item::of(&e).unwrap().unwrap();
        let err = item.render(Sight::Full, &f.ctx(true)).await.unwrap_err();
        if tampered {
            assert!(
                matches!(err, caseline_vault::Error::Tampered { .. }),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err, caseline_vault::Error::Corrupt { .. }),
                "{err:?}"
            );
        }
    }
}

#[test]
fn times_convert_without_panicking() {
    let t = timestamp(UNIX_EPOCH + Duration::new(12, 345));
    assert_eq!((t.seconds, t.nanos), (12, 345));
    let before = timestamp(UNIX_EPOCH - Duration::from_secs(1));
    assert_eq!((before.seconds, before.nanos), (0, 0));
    assert_eq!(from_unix_ms(-5), UNIX_EPOCH);
    assert_eq!(
        from_unix_ms(1_500),
        UNIX_EPOCH + Duration::from_millis(1_500)
    );
}
