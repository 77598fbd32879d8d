//! The log `bench scale` measures: written through the log and the vault directly (not
//! over gRPC), event by event as the services would have written it, sealed fields
//! sealed with each case's own key.
//!
//! Two parts:
//! - the **probes**, written once at the start: the things measured at every size, so
//!   that each measure reads the same data at 10 000 events as at 10 000 000 (a
//!   500-event case, a case with a known access history, a caseworker on one case and
//!   one on 500, an agency's referral inbox, plans with reviews due, the writers' cases);
//! - the **background**, grown to each size: helpline contacts, cases with teams, notes
//!   in every compartment, risk assessments, justice milestones, referrals with
//!   outcomes, plans with goals and reviews, compensation claims, and the access records
//!   the reads of all that left (per-case reads, and list pages in `access-global`
//!   naming the cases they returned), in about the proportions the measured run
//!   had (roughly one access record per write).

use std::sync::Arc;
use std::time::Duration;

use caseline_auth::Role;
use caseline_eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamName, Uuid};
use caseline_proto::event_types as types;
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{
    AccessOutcome, AccessRecorded, CaseOpened, ClaimFiled, ClaimSubmitted, ContactRecorded,
    GoalAdded, JusticeMilestoneRecorded, NoteAdded, PlanCreated, ReferralAccepted, ReferralMade,
    ReferralOutcomeRecorded, ReviewScheduled, RiskAssessed, TeamMemberAdded,
};
use caseline_proto::v1::{
    AgeBand, CallerKind, CaseSource, ClaimScheme, Claimant, ConcernCategory, ConsentBasis,
    ContactChannel, Gender, GoalDomain, MilestoneKind, Money, NoteCompartment, PlanPhase,
    ReferralUrgency, RiskLevel, ServiceType, Urgency,
};
use caseline_vault::Vault;
use tokio::task::JoinSet;

use crate::bench::BoxError;

/// Appends in flight at once while generating (the log's group commit batches them).
const APPENDS_IN_FLIGHT: usize = 32;
/// Background agencies, and users in each.
const AGENCIES: u64 = 40;
const USERS_PER_AGENCY: u64 = 50;
/// Background cases each list page in `access-global` names.
const LISTED_PER_PAGE: usize = 20;

pub(super) const NOTE: &str = "Home visit with the child and her mother. The child is calmer, \
    sleeping better and back at school two days a week. Safety plan reviewed: she knows whom \
    to call if the person contacts her again. Next visit in one week; school counsellor \
    informed with consent.";

/// Someone who writes or reads.
#[derive(Clone, Debug)]
pub(super) struct Actor {
    pub subject: String,
    pub role: Role,
    pub agency: String,
}

impl Actor {
    pub fn new(subject: &str, role: Role, agency: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            role,
            agency: agency.to_owned(),
        }
    }
}

/// What the measures use, written once.
#[derive(Debug)]
pub(super) struct Probes {
    /// A case of exactly 500 events, read by `timeline_reader`.
    pub timeline_case: Uuid,
    pub timeline_reader: Actor,
    /// A case whose access history is replayed (its entries up to `history_until`).
    pub history_case: Uuid,
    pub history_until: std::time::SystemTime,
    /// On `history_case` only.
    pub one_case_worker: Actor,
    /// On 500 cases, 100 of which have a plan with a review due.
    pub caseload_worker: Actor,
    /// Of the agency 100 referrals were made to.
    pub inbox_reader: Actor,
    /// Each on a case of its own, for the write load.
    pub writers: Vec<(Actor, Uuid)>,
}

/// Writes events, counting them.
pub(super) struct Generator {
    log: Arc<dyn EventLog>,
    vault: Vault,
    rng: u64,
    /// Events appended so far.
    pub written: u64,
    appends: JoinSet<Result<usize, caseline_eventlog::Error>>,
    /// Events in the appends in flight.
    pending: u64,
    /// Recent background cases, named by list pages.
    recent: Vec<Uuid>,
    families: u64,
}

impl Generator {
    pub fn new(log: Arc<dyn EventLog>, vault: Vault) -> Self {
        Self {
            log,
            vault,
            rng: 0x9E37_79B9_7F4A_7C15,
            written: 0,
            appends: JoinSet::new(),
            pending: 0,
            recent: Vec::new(),
            families: 0,
        }
    }

    /// Appends to `log` from now on (the log is reopened between sizes).
    pub fn set_log(&mut self, log: Arc<dyn EventLog>) {
        self.log = log;
    }

    /// A number below `n` (xorshift: reproducible, not for secrets).
    fn below(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    fn background_actor(&mut self, role: Role) -> Actor {
        let agency = self.below(AGENCIES);
        let user = self.below(USERS_PER_AGENCY);
        Actor {
            subject: format!("user-{agency:02}-{user:02}"),
            role,
            agency: format!("agency-{agency:02}"),
        }
    }

    async fn seal(&self, id: Uuid, text: &str) -> Result<Vec<u8>, BoxError> {
        Ok(self.vault.seal_field(id, text).await?)
    }

    /// Appends `events` to `stream` in the background, at most [`APPENDS_IN_FLIGHT`] at
    /// once.
    async fn append(&mut self, stream: StreamName, events: Vec<NewEvent>) -> Result<(), BoxError> {
        while self.appends.len() >= APPENDS_IN_FLIGHT {
            self.join_one().await?;
        }
        let log = Arc::clone(&self.log);
        self.pending += events.len() as u64;
        self.appends.spawn(async move {
            let n = events.len();
            log.append(&stream, ExpectedVersion::Any, events).await?;
            Ok(n)
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), BoxError> {
        if let Some(done) = self.appends.join_next().await {
            let n = done?? as u64;
            self.written += n;
            self.pending -= n;
        }
        Ok(())
    }

    /// Waits for every append in flight.
    pub async fn flush(&mut self) -> Result<(), BoxError> {
        while !self.appends.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Writes the probes.
    pub async fn probes(&mut self) -> Result<Probes, BoxError> {
        let investigator = Actor::new(
            "bench-investigator",
            Role::PoliceInvestigator,
            "bench-police",
        );
        let social = Actor::new("bench-social-worker", Role::SocialWorker, "bench-social");
        let prosecutor = Actor::new("bench-prosecutor", Role::Prosecutor, "bench-prosecution");
        let counsellor = Actor::new(
            "bench-counsellor",
            Role::HelplineCounsellor,
            "bench-helpline",
        );
        let auditor = Actor::new("bench-auditor", Role::Auditor, "bench-oversight");

        // The 500-event case: opened, three members, 495 notes in four compartments.
        let timeline_case = Uuid::new_v4();
        let mut events = self.opened(&investigator, timeline_case, "").await?;
        for member in [&social, &prosecutor, &counsellor] {
            events.push(member_added(&investigator, timeline_case, member));
        }
        let writers = [
            (&investigator, NoteCompartment::Investigation),
            (&social, NoteCompartment::Social),
            (&prosecutor, NoteCompartment::Legal),
            (&counsellor, NoteCompartment::Helpline),
        ];
        for i in 0..495 {
            let (actor, compartment) = writers[i % writers.len()];
            events.push(self.note(actor, timeline_case, compartment).await?);
        }
        self.append(case_stream(timeline_case)?, events).await?;

        // The case whose history is replayed: 50 writes, 300 reads, 100 list pages.
        let one_case_worker = Actor::new("bench-one-case", Role::SocialWorker, "bench-social");
        let history_case = Uuid::new_v4();
        let mut events = self.opened(&investigator, history_case, "").await?;
        events.push(member_added(&investigator, history_case, &one_case_worker));
        for _ in 0..47 {
            events.push(
                self.note(&one_case_worker, history_case, NoteCompartment::Social)
                    .await?,
            );
        }
        self.append(case_stream(history_case)?, events).await?;
        let reads = (0..300)
            .map(|i| {
                let reader = if i % 2 == 0 {
                    &investigator
                } else {
                    &one_case_worker
                };
                let rpc = if i % 3 == 0 { "GetCase" } else { "GetTimeline" };
                access_read(reader, history_case, rpc)
            })
            .collect();
        self.append(access_stream(history_case)?, reads).await?;

        // The caseload: 500 cases of one social worker, 100 with a review due.
        let caseload_worker = Actor::new("bench-caseload", Role::SocialWorker, "bench-social");
        let mut caseload = Vec::new();
        for i in 0..500 {
            let case_id = Uuid::new_v4();
            let mut events = self.opened(&investigator, case_id, "").await?;
            events.push(member_added(&investigator, case_id, &caseload_worker));
            self.append(case_stream(case_id)?, events).await?;
            if i % 5 == 0 {
                let plan_id = Uuid::new_v4();
                let events = vec![
                    plan_created(&caseload_worker, case_id, plan_id),
                    review_scheduled(&caseload_worker, case_id, plan_id, "2026-01-15"),
                ];
                self.append(StreamName::for_id("plan", plan_id)?, events)
                    .await?;
            }
            caseload.push(case_id);
        }
        // 100 list pages that returned the history case among 19 of the caseload.
        let mut pages = Vec::new();
        for i in 0..100 {
            let mut named: Vec<Uuid> = caseload.iter().skip(i).take(19).copied().collect();
            named.push(history_case);
            pages.push(access_list(&auditor, &named));
        }
        self.append(StreamName::new("access-global")?, pages)
            .await?;

        // The inbox: 100 referrals from the caseload's cases to one agency.
        let inbox_reader = Actor::new("bench-inbox-reader", Role::SocialWorker, "bench-inbox");
        for case_id in caseload.iter().take(100) {
            let referral_id = Uuid::new_v4();
            let made = self
                .referral_made(&investigator, *case_id, referral_id, &inbox_reader.agency)
                .await?;
            self.append(StreamName::for_id("referral", referral_id)?, vec![made])
                .await?;
        }

        // The writers' cases.
        let mut load = Vec::new();
        for i in 0..16 {
            let writer = Actor::new(
                &format!("bench-writer-{i}"),
                Role::SocialWorker,
                "bench-social",
            );
            let case_id = Uuid::new_v4();
            let mut events = self.opened(&investigator, case_id, "").await?;
            events.push(member_added(&investigator, case_id, &writer));
            self.append(case_stream(case_id)?, events).await?;
            load.push((writer, case_id));
        }
        self.flush().await?;
        // Whatever is recorded after this (the measures' own reads) is left out of the
        // replay measured.
        let history_until = std::time::SystemTime::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(Probes {
            timeline_case,
            timeline_reader: investigator,
            history_case,
            history_until,
            one_case_worker,
            caseload_worker,
            inbox_reader,
            writers: load,
        })
    }

    /// Grows the log with background families until it holds at least `events`
    /// (counting what `already` was written by others, e.g. the measures' writes).
    pub async fn grow_to(&mut self, events: u64, already: u64) -> Result<(), BoxError> {
        while self.written + self.pending + already < events {
            self.family().await?;
        }
        self.flush().await
    }

    /// One child's record: a helpline contact, the case opened from it with its team,
    /// notes, a risk assessment, a milestone, a referral and its outcome, a plan, perhaps
    /// a claim, and the reads and list pages that saw them.
    async fn family(&mut self) -> Result<(), BoxError> {
        self.families += 1;
        let counsellor = self.background_actor(Role::HelplineCounsellor);
        let social = self.background_actor(Role::SocialWorker);
        let police = self.background_actor(Role::PoliceInvestigator);
        let health = self.background_actor(Role::HealthWorker);

        let contact_id = Uuid::new_v4();
        let contact = ContactRecorded {
            channel: ContactChannel::Chat as i32,
            caller_kind: CallerKind::Child as i32,
            concerns: vec![ConcernCategory::Grooming as i32],
            urgency: Urgency::Urgent as i32,
            anonymous: false,
            summary_sealed: self.seal(contact_id, NOTE).await?,
            caller_name_sealed: self.seal(contact_id, "A. Child").await?,
            caller_contact_sealed: Vec::new(),
        };
        self.append(
            StreamName::for_id("contact", contact_id)?,
            vec![event(
                types::CONTACT_RECORDED,
                &contact,
                meta(&counsellor, None),
            )],
        )
        .await?;

        let case_id = Uuid::new_v4();
        let mut events = self
            .opened(&counsellor, case_id, &contact_id.to_string())
            .await?;
        for member in [&social, &police, &health] {
            events.push(member_added(&counsellor, case_id, member));
        }
        let risk = RiskAssessed {
            level: RiskLevel::High as i32,
            factors_sealed: self
                .seal(case_id, "Offender has the child's address.")
                .await?,
            immediate_actions_sealed: self.seal(case_id, "Safety plan agreed.").await?,
        };
        events.push(event(
            types::RISK_ASSESSED,
            &risk,
            meta(&social, Some(case_id)),
        ));
        let notes = 20 + self.below(20) as usize;
        let authors = [
            (&counsellor, NoteCompartment::Helpline),
            (&social, NoteCompartment::Social),
            (&police, NoteCompartment::Investigation),
            (&health, NoteCompartment::Health),
        ];
        for i in 0..notes {
            let (actor, compartment) = authors[i % authors.len()];
            events.push(self.note(actor, case_id, compartment).await?);
        }
        let milestone = JusticeMilestoneRecorded {
            milestone_id: Uuid::new_v4().to_string(),
            kind: MilestoneKind::Report as i32,
            occurred_at_unix_ms: 1_780_000_000_000,
            description_sealed: self.seal(case_id, "Report filed with the unit.").await?,
            child_informed: true,
            child_informed_at_unix_ms: 1_780_000_000_000,
        };
        events.push(event(
            types::JUSTICE_MILESTONE_RECORDED,
            &milestone,
            meta(&police, Some(case_id)),
        ));
        self.append(case_stream(case_id)?, events).await?;

        // A referral to health services, accepted, with an outcome.
        let referral_id = Uuid::new_v4();
        let made = self
            .referral_made(&social, case_id, referral_id, &health.agency)
            .await?;
        let accepted = ReferralAccepted {
            referral_id: referral_id.to_string(),
            from_agency: social.agency.clone(),
            to_agency: health.agency.clone(),
            subject: health.subject.clone(),
            role: health.role.as_str().to_owned(),
        };
        let outcome = ReferralOutcomeRecorded {
            referral_id: referral_id.to_string(),
            from_agency: social.agency.clone(),
            to_agency: health.agency.clone(),
            outcome_sealed: self.seal(case_id, "Seen by the paediatrician.").await?,
        };
        self.append(
            StreamName::for_id("referral", referral_id)?,
            vec![
                made,
                event(
                    types::REFERRAL_ACCEPTED,
                    &accepted,
                    meta(&health, Some(case_id)),
                ),
                event(
                    types::REFERRAL_OUTCOME_RECORDED,
                    &outcome,
                    meta(&health, Some(case_id)),
                ),
            ],
        )
        .await?;

        // A plan with three goals and a review.
        let plan_id = Uuid::new_v4();
        let mut plan = vec![plan_created(&social, case_id, plan_id)];
        for (domain, phase) in [
            (GoalDomain::Safety, PlanPhase::Investigation),
            (GoalDomain::Therapy, PlanPhase::AfterCare),
            (GoalDomain::Education, PlanPhase::AfterCare),
        ] {
            let goal = GoalAdded {
                plan_id: plan_id.to_string(),
                goal_id: Uuid::new_v4().to_string(),
                domain: domain as i32,
                phase: phase as i32,
                description_sealed: self.seal(case_id, "Weekly sessions.").await?,
                target_date: "2027-06-30".into(),
            };
            plan.push(event(
                types::GOAL_ADDED,
                &goal,
                meta(&social, Some(case_id)),
            ));
        }
        plan.push(review_scheduled(&social, case_id, plan_id, "2027-03-01"));
        self.append(StreamName::for_id("plan", plan_id)?, plan)
            .await?;

        // A compensation claim for one child in three.
        if self.families.is_multiple_of(3) {
            let claim_id = Uuid::new_v4();
            let filed = ClaimFiled {
                claim_id: claim_id.to_string(),
                scheme: ClaimScheme::StateVictimCompensation as i32,
                jurisdiction: "XX".into(),
                claimant: Claimant::Guardian as i32,
                amount_claimed: Some(Money {
                    minor_units: 250_000,
                    currency: "EUR".into(),
                }),
                filing_deadline: "2027-12-31".into(),
            };
            let submitted = ClaimSubmitted {
                claim_id: claim_id.to_string(),
                submitted_on: "2027-01-10".into(),
                reference_sealed: self.seal(case_id, "REF-2027-0001").await?,
            };
            self.append(
                StreamName::for_id("claim", claim_id)?,
                vec![
                    event(types::CLAIM_FILED, &filed, meta(&social, Some(case_id))),
                    event(
                        types::CLAIM_SUBMITTED,
                        &submitted,
                        meta(&social, Some(case_id)),
                    ),
                ],
            )
            .await?;
        }

        // The reads of the case by its team, and list pages that returned it.
        let readers = [&social, &police, &health, &counsellor];
        let reads = (0..40 + self.below(10) as usize)
            .map(|i| {
                let rpc = if i % 4 == 0 { "GetCase" } else { "GetTimeline" };
                access_read(readers[i % readers.len()], case_id, rpc)
            })
            .collect();
        self.append(access_stream(case_id)?, reads).await?;
        self.recent.push(case_id);
        if self.recent.len() > 200 {
            self.recent.drain(..100);
        }
        let mut pages = Vec::new();
        for _ in 0..5 {
            let start = self.below(self.recent.len() as u64) as usize;
            let named: Vec<Uuid> = self
                .recent
                .iter()
                .cycle()
                .skip(start)
                .take(LISTED_PER_PAGE.min(self.recent.len()))
                .copied()
                .collect();
            pages.push(access_list(&social, &named));
        }
        self.append(StreamName::new("access-global")?, pages).await
    }

    /// A case opened by `by`, who is on its team from the start (as `OpenCase` does).
    async fn opened(
        &self,
        by: &Actor,
        case_id: Uuid,
        contact_id: &str,
    ) -> Result<Vec<NewEvent>, BoxError> {
        let opened = CaseOpened {
            pseudonym: format!("CL-{}", &case_id.simple().to_string()[..8]),
            name_sealed: self.seal(case_id, "Child's full name").await?,
            date_of_birth_sealed: self.seal(case_id, "2013-04-02").await?,
            contact_details_sealed: self.seal(case_id, "+000 0000 0000").await?,
            age_band: AgeBand::AgeBand13To15 as i32,
            gender: Gender::Girl as i32,
            language: "en".into(),
            region_sealed: self.seal(case_id, "North").await?,
            source: CaseSource::Helpline as i32,
            concerns: vec![ConcernCategory::Sextortion as i32],
            initial_risk: RiskLevel::Medium as i32,
            contact_id: contact_id.to_owned(),
        };
        Ok(vec![
            event(types::CASE_OPENED, &opened, meta(by, Some(case_id))),
            member_added(by, case_id, by),
        ])
    }

    async fn note(
        &self,
        by: &Actor,
        case_id: Uuid,
        compartment: NoteCompartment,
    ) -> Result<NewEvent, BoxError> {
        let note = NoteAdded {
            note_id: Uuid::new_v4().to_string(),
            compartment: compartment as i32,
            text_sealed: self.seal(case_id, NOTE).await?,
        };
        Ok(event(types::NOTE_ADDED, &note, meta(by, Some(case_id))))
    }

    async fn referral_made(
        &self,
        by: &Actor,
        case_id: Uuid,
        referral_id: Uuid,
        to_agency: &str,
    ) -> Result<NewEvent, BoxError> {
        let made = ReferralMade {
            referral_id: referral_id.to_string(),
            from_agency: by.agency.clone(),
            to_agency: to_agency.to_owned(),
            case_id: case_id.to_string(),
            contact_id: String::new(),
            service: ServiceType::Health as i32,
            urgency: ReferralUrgency::Routine as i32,
            due_by_unix_ms: 4_102_444_800_000,
            reason_sealed: self
                .seal(case_id, "Medical examination and follow-up.")
                .await?,
            consent: ConsentBasis::GivenByGuardian as i32,
            legal_basis_sealed: Vec::new(),
        };
        Ok(event(types::REFERRAL_MADE, &made, meta(by, Some(case_id))))
    }
}

fn case_stream(case_id: Uuid) -> Result<StreamName, BoxError> {
    Ok(StreamName::for_id("case", case_id)?)
}

fn access_stream(case_id: Uuid) -> Result<StreamName, BoxError> {
    Ok(StreamName::for_id("access", case_id)?)
}

fn meta(by: &Actor, case_id: Option<Uuid>) -> Metadata {
    Metadata {
        case_id,
        actor: by.subject.clone(),
        actor_role: by.role.as_str().to_owned(),
        agency: by.agency.clone(),
        request_id: Some(Uuid::new_v4()),
        ..Metadata::default()
    }
}

fn event(event_type: &str, payload: &impl Message, metadata: Metadata) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        data: payload.encode_to_vec(),
        metadata,
    }
}

fn member_added(by: &Actor, case_id: Uuid, member: &Actor) -> NewEvent {
    let added = TeamMemberAdded {
        subject: member.subject.clone(),
        agency: member.agency.clone(),
        role: member.role.as_str().to_owned(),
    };
    event(types::TEAM_MEMBER_ADDED, &added, meta(by, Some(case_id)))
}

fn plan_created(by: &Actor, case_id: Uuid, plan_id: Uuid) -> NewEvent {
    let created = PlanCreated {
        plan_id: plan_id.to_string(),
        case_id: case_id.to_string(),
        author: by.subject.clone(),
    };
    event(types::PLAN_CREATED, &created, meta(by, Some(case_id)))
}

fn review_scheduled(by: &Actor, case_id: Uuid, plan_id: Uuid, date: &str) -> NewEvent {
    let scheduled = ReviewScheduled {
        plan_id: plan_id.to_string(),
        review_date: date.to_owned(),
    };
    event(types::REVIEW_SCHEDULED, &scheduled, meta(by, Some(case_id)))
}

/// The record of a read of one case, as the trust layer writes it.
fn access_read(by: &Actor, case_id: Uuid, rpc: &str) -> NewEvent {
    let record = AccessRecorded {
        rpc: format!("/caseline.v1.CaseService/{rpc}"),
        outcome: AccessOutcome::Allowed as i32,
        status_code: 0,
        reason: "team_member".into(),
        case_id: case_id.to_string(),
        policy_version: caseline_policy_version(),
        trace_id: Uuid::new_v4().simple().to_string(),
        peer: "127.0.0.1:50000".into(),
        instance: "caseline-bench".into(),
        ..AccessRecorded::default()
    };
    let mut metadata = meta(by, Some(case_id));
    metadata.request_id = None;
    event(types::ACCESS_RECORDED, &record, metadata)
}

/// The record of a list page that returned `cases`.
fn access_list(by: &Actor, cases: &[Uuid]) -> NewEvent {
    let record = AccessRecorded {
        rpc: "/caseline.v1.CaseService/ListCases".into(),
        outcome: AccessOutcome::Allowed as i32,
        status_code: 0,
        resource_ids: cases.iter().map(Uuid::to_string).collect(),
        policy_version: caseline_policy_version(),
        trace_id: Uuid::new_v4().simple().to_string(),
        peer: "127.0.0.1:50000".into(),
        instance: "caseline-bench".into(),
        ..AccessRecorded::default()
    };
    let mut metadata = meta(by, None);
    metadata.request_id = None;
    event(types::ACCESS_RECORDED, &record, metadata)
}

fn caseline_policy_version() -> String {
    "bench".into()
}
