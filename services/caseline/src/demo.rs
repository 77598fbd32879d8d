//! `caseline demo`: one fictional case, seeded through the public gRPC API of an
//! all-in-one started in this process, then shown as each role sees it.
//!
//! The story: a 14-year-old chats with the helpline about sextortion; the counsellor
//! opens a case from the chat, assesses the risk as high and brings in a social worker,
//! a police investigator and a prosecutor, each of another agency. The investigator
//! and the social worker file notes in their own compartments, the investigator moves
//! the case to investigation, opens a second case for another child contacted by the
//! same account and links the two, and the prosecutor records that the crime was
//! reported. Then every team member reads the timeline (`GetTimeline`), and an auditor
//! asks what each of those roles could see (`AuditService.GetTimelineAsOf`), which is
//! metadata only.
//!
//! Every name, handle and place is invented. Times vary from run to run; the shape of
//! the output does not.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caseline_auth::Role;
use caseline_proto::prost_types::Timestamp;
use caseline_proto::tonic::metadata::{Ascii, MetadataValue};
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::referral_service_client::ReferralServiceClient;
use caseline_proto::v1::timeline_entry::Detail;
use caseline_proto::v1::{
    AcceptReferralRequest, ConsentBasis, MakeReferralRequest, RecordReferralOutcomeRequest,
    ReferralUrgency, ServiceType,
};
use caseline_proto::v1::{
    AddNoteRequest, AddTeamMemberRequest, AgeBand, CallerKind, CaseSource, ChangeStageRequest,
    ChildIdentity, ConcernCategory, ContactChannel, Gender, GetTimelineAsOfRequest,
    GetTimelineRequest, LinkCasesRequest, LinkKind, MilestoneKind, NoteCompartment,
    OpenCaseRequest, RecordContactRequest, RecordJusticeMilestoneRequest,
    RecordRiskAssessmentRequest, RiskLevel, Stage, TimelineEntry, Urgency, Visibility,
    closure_view, get_timeline_as_of_request,
};

use crate::bench::{BoxError, DevServer, ScratchDir, authed, request_id};
use caseline_timeline::timestamp;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the demo server's data (event log, keys) in this directory; by default a
    /// fresh temporary directory, removed afterwards.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// A fictional professional.
#[derive(Debug)]
struct Person {
    subject: &'static str,
    agency: &'static str,
    agency_type: &'static str,
    role: Role,
}

const COUNSELLOR: Person = Person {
    subject: "counsellor-07",
    agency: "national-child-helpline",
    agency_type: "helpline",
    role: Role::HelplineCounsellor,
};
const SOCIAL_WORKER: Person = Person {
    subject: "social-worker-12",
    agency: "county-social-services",
    agency_type: "social_services",
    role: Role::SocialWorker,
};
const INVESTIGATOR: Person = Person {
    subject: "investigator-31",
    agency: "national-police-cyber",
    agency_type: "police",
    role: Role::PoliceInvestigator,
};
const PROSECUTOR: Person = Person {
    subject: "prosecutor-05",
    agency: "public-prosecutor",
    agency_type: "prosecution",
    role: Role::Prosecutor,
};
const AUDITOR: Person = Person {
    subject: "auditor-02",
    agency: "oversight-board",
    agency_type: "oversight",
    role: Role::Auditor,
};

/// The team members whose views are shown, in order.
const VIEWERS: [&Person; 4] = [&COUNSELLOR, &SOCIAL_WORKER, &INVESTIGATOR, &PROSECUTOR];

/// Longest detail shown on one line, in characters.
const GIST_CHARS: usize = 64;

pub async fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    demo(args).await.map_err(|e| e as _)
}

async fn demo(args: DemoArgs) -> Result<(), BoxError> {
    let scratch;
    let dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
            dir.clone()
        }
        None => {
            scratch = ScratchDir::new("demo")?;
            scratch.path().to_path_buf()
        }
    };
    let server = DevServer::start(&dir).await?;
    let shown = show(&server).await;
    let stopped = server.stop().await;
    shown?;
    stopped?;
    match &args.data_dir {
        Some(dir) => println!(
            "The demo's event log and keys are kept in {}.",
            dir.display()
        ),
        None => println!("The demo's temporary data directory has been removed."),
    }
    Ok(())
}

/// The clients and credentials of the demo's people.
struct Desk {
    cases: CaseServiceClient<caseline_proto::tonic::transport::Channel>,
    referrals: ReferralServiceClient<caseline_proto::tonic::transport::Channel>,
    audit: AuditServiceClient<caseline_proto::tonic::transport::Channel>,
    counsellor: MetadataValue<Ascii>,
    social: MetadataValue<Ascii>,
    police: MetadataValue<Ascii>,
    prosecutor: MetadataValue<Ascii>,
    auditor: MetadataValue<Ascii>,
}

impl Desk {
    fn bearer(&self, person: &Person) -> &MetadataValue<Ascii> {
        match person.role {
            Role::HelplineCounsellor => &self.counsellor,
            Role::SocialWorker => &self.social,
            Role::PoliceInvestigator => &self.police,
            Role::Prosecutor => &self.prosecutor,
            _ => &self.auditor,
        }
    }
}

async fn show(server: &DevServer) -> Result<(), BoxError> {
    let channel = server.channel().await?;
    let token = |p: &Person| server.bearer(p.subject, p.role, p.agency, Some(p.agency_type));
    let mut desk = Desk {
        cases: CaseServiceClient::new(channel.clone()),
        referrals: ReferralServiceClient::new(channel.clone()),
        audit: AuditServiceClient::new(channel),
        counsellor: token(&COUNSELLOR)?,
        social: token(&SOCIAL_WORKER)?,
        police: token(&INVESTIGATOR)?,
        prosecutor: token(&PROSECUTOR)?,
        auditor: token(&AUDITOR)?,
    };
    println!(
        "Caseline demo: one fictional case, seeded through the public gRPC API of an \
         all-in-one server\nstarted in this process (development mode). Every name, \
         handle and place is invented.\n"
    );
    let case_id = seed(&mut desk).await?;
    println!();
    println!(
        "What each team member sees (CaseService.GetTimeline). FULL: content opened; \
         SUMMARY: that the\nentry exists, its kind, time and agency, nothing more. \
         Entries a role may not see are not listed.\n"
    );
    for person in VIEWERS {
        let page = desk
            .cases
            .get_timeline(authed(
                GetTimelineRequest {
                    case_id: case_id.clone(),
                    page_size: 1000,
                    page_token: String::new(),
                },
                desk.bearer(person),
            ))
            .await?
            .into_inner();
        println!(
            "## {}: GetTimeline as {} of {} ({} entries)",
            person.role,
            person.subject,
            person.agency,
            page.entries.len()
        );
        table(&page.entries, |e| {
            if e.visibility == Visibility::Full as i32 {
                gist(e)
            } else {
                "-".to_owned()
            }
        });
        println!();
    }

    println!(
        "What an auditor is told each role could see now (AuditService.GetTimelineAsOf, \
         viewer.role).\nThe visibility is that role's; the auditor receives metadata only, \
         never content.\n"
    );
    let now = SystemTime::now();
    for person in VIEWERS {
        let answer = desk
            .audit
            .get_timeline_as_of(authed(
                GetTimelineAsOfRequest {
                    case_id: case_id.clone(),
                    as_of: Some(timestamp(now)),
                    viewer: Some(get_timeline_as_of_request::Viewer::Role(
                        person.role.as_str().into(),
                    )),
                    ..GetTimelineAsOfRequest::default()
                },
                &desk.auditor,
            ))
            .await?
            .into_inner();
        println!(
            "## auditor: GetTimelineAsOf(role {}, now) as {} of {}: {} ({}), {} entries shown, {} hidden, policy {}",
            person.role,
            AUDITOR.subject,
            AUDITOR.agency,
            if answer.could_open {
                "could open"
            } else {
                "could not open"
            },
            answer.reason,
            answer.entries.len(),
            answer.hidden_entries,
            answer.policy_version,
        );
        // The auditor is given no detail; were any there, it would not be printed.
        table(&answer.entries, |e| {
            if e.actor_role.is_empty() {
                "metadata only".to_owned()
            } else {
                format!("metadata only; by {}", e.actor_role)
            }
        });
        println!();
    }
    Ok(())
}

/// The story, told through the API. Returns the first child's case id.
async fn seed(desk: &mut Desk) -> Result<String, BoxError> {
    let now = SystemTime::now();
    let mut n = 0;
    let mut step = |who: &Person, what: &str| {
        n += 1;
        println!(
            "{n:>2}. {:<19} {:<23} {what}",
            who.role.as_str(),
            who.agency
        );
    };

    let contact_id = desk
        .cases
        .record_contact(authed(
            RecordContactRequest {
                request_id: request_id(),
                channel: ContactChannel::Chat as i32,
                caller_kind: CallerKind::Child as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                urgency: Urgency::Urgent as i32,
                anonymous: true,
                summary: "Girl, 14, says a person she met in an online game got intimate \
                          pictures of her and now demands more, or he will send them to her \
                          classmates. Very frightened; agreed that we involve the police."
                    .into(),
                ..RecordContactRequest::default()
            },
            &desk.counsellor,
        ))
        .await?
        .into_inner()
        .contact_id;
    step(
        &COUNSELLOR,
        "RecordContact: a chat from a 14-year-old about sextortion, urgent",
    );

    let case = desk
        .cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: request_id(),
                contact_id,
                pseudonym: "Child A-17".into(),
                identity: Some(ChildIdentity {
                    name: "Demo Child A (fictional)".into(),
                    date_of_birth: format!("{}-01-01", year(now) - 14),
                    contact_details: "via the helpline chat only".into(),
                }),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Girl as i32,
                language: "en".into(),
                region: "North County".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                initial_risk: RiskLevel::Medium as i32,
            },
            &desk.counsellor,
        ))
        .await?
        .into_inner();
    let case_id = case.case_id;
    step(&COUNSELLOR, "OpenCase \"Child A-17\" from that contact");

    desk.cases
        .record_risk_assessment(authed(
            RecordRiskAssessmentRequest {
                case_id: case_id.clone(),
                request_id: request_id(),
                level: RiskLevel::High as i32,
                factors: "Threats escalating for three days; the child said she feels \
                          hopeless and cannot tell anyone at school."
                    .into(),
                immediate_actions: "Safety plan agreed on the chat; she will tell her \
                                    mother tonight; screenshots kept, nothing paid or sent."
                    .into(),
                ..RecordRiskAssessmentRequest::default()
            },
            &desk.counsellor,
        ))
        .await?;
    step(&COUNSELLOR, "RecordRiskAssessment: HIGH");

    let referral = desk
        .referrals
        .make_referral(authed(
            MakeReferralRequest {
                request_id: request_id(),
                case_id: case_id.clone(),
                to_agency: INVESTIGATOR.agency.into(),
                service: ServiceType::Police as i32,
                urgency: ReferralUrgency::Emergency as i32,
                reason: "Ongoing sextortion by an adult; the child agreed that we involve \
                         the police. Screenshots kept."
                    .into(),
                consent: ConsentBasis::GivenByChild as i32,
                ..MakeReferralRequest::default()
            },
            &desk.counsellor,
        ))
        .await?
        .into_inner()
        .referral_id;
    step(
        &COUNSELLOR,
        "MakeReferral to the police: EMERGENCY (due in 24 h), the child consents",
    );
    desk.referrals
        .accept_referral(authed(
            AcceptReferralRequest {
                request_id: request_id(),
                referral_id: referral.clone(),
                ..AcceptReferralRequest::default()
            },
            &desk.police,
        ))
        .await?;
    step(
        &INVESTIGATOR,
        "AcceptReferral from the inbox: joins the case's team",
    );

    for member in [&SOCIAL_WORKER, &PROSECUTOR] {
        desk.cases
            .add_team_member(authed(
                AddTeamMemberRequest {
                    case_id: case_id.clone(),
                    request_id: request_id(),
                    subject: member.subject.into(),
                    agency: member.agency.into(),
                    role: member.role.as_str().into(),
                    ..AddTeamMemberRequest::default()
                },
                &desk.counsellor,
            ))
            .await?;
        step(
            &COUNSELLOR,
            &format!(
                "AddTeamMember: {} ({}) of {}",
                member.subject, member.role, member.agency
            ),
        );
    }

    add_note(
        desk,
        &case_id,
        &INVESTIGATOR,
        NoteCompartment::Investigation,
        "Extortion account @demo_fox_000 traced to a profile on the same game platform; \
         preservation request sent to the platform.",
    )
    .await?;
    step(
        &INVESTIGATOR,
        "AddNote (investigation): account handle traced",
    );
    add_note(
        desk,
        &case_id,
        &SOCIAL_WORKER,
        NoteCompartment::Social,
        "Home visit with the child and her mother; safety plan agreed; school counsellor \
         informed with consent.",
    )
    .await?;
    step(&SOCIAL_WORKER, "AddNote (social): home visit");

    desk.cases
        .change_stage(authed(
            ChangeStageRequest {
                case_id: case_id.clone(),
                request_id: request_id(),
                stage: Stage::Investigation as i32,
                reason: "Criminal investigation opened for sextortion.".into(),
                ..ChangeStageRequest::default()
            },
            &desk.police,
        ))
        .await?;
    step(&INVESTIGATOR, "ChangeStage: INTAKE -> INVESTIGATION");

    let other = desk
        .cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: request_id(),
                pseudonym: "Child B-04".into(),
                identity: Some(ChildIdentity {
                    name: "Demo Child B (fictional)".into(),
                    ..ChildIdentity::default()
                }),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Boy as i32,
                language: "en".into(),
                region: "South County".into(),
                source: CaseSource::Police as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                initial_risk: RiskLevel::Medium as i32,
                ..OpenCaseRequest::default()
            },
            &desk.police,
        ))
        .await?
        .into_inner()
        .case_id;
    step(
        &INVESTIGATOR,
        "OpenCase \"Child B-04\": another child contacted by the same account",
    );

    desk.cases
        .link_cases(authed(
            LinkCasesRequest {
                case_id: case_id.clone(),
                request_id: request_id(),
                other_case_id: other,
                kind: LinkKind::SameOnlineAccount as i32,
                reason: "The same extortion account contacted both children.".into(),
                ..LinkCasesRequest::default()
            },
            &desk.police,
        ))
        .await?;
    step(&INVESTIGATOR, "LinkCases: SAME_ONLINE_ACCOUNT");

    desk.referrals
        .record_referral_outcome(authed(
            RecordReferralOutcomeRequest {
                request_id: request_id(),
                referral_id: referral,
                outcome: "Statement taken with the child's mother present; devices \
                          examined; the account is under investigation."
                    .into(),
                ..RecordReferralOutcomeRequest::default()
            },
            &desk.police,
        ))
        .await?;
    step(
        &INVESTIGATOR,
        "RecordReferralOutcome: the helpline sees what was done",
    );

    let reported = SystemTime::now() - Duration::from_secs(60);
    desk.cases
        .record_justice_milestone(authed(
            RecordJusticeMilestoneRequest {
                case_id: case_id.clone(),
                request_id: request_id(),
                kind: MilestoneKind::Report as i32,
                occurred_at: Some(timestamp(reported)),
                description: "Crime report registered by the cyber unit; the prosecutor \
                              directs the investigation."
                    .into(),
                child_informed: true,
                child_informed_at: Some(timestamp(SystemTime::now())),
                ..RecordJusticeMilestoneRequest::default()
            },
            &desk.prosecutor,
        ))
        .await?;
    step(
        &PROSECUTOR,
        "RecordJusticeMilestone: REPORT, child informed",
    );
    Ok(case_id)
}

async fn add_note(
    desk: &mut Desk,
    case_id: &str,
    by: &Person,
    compartment: NoteCompartment,
    text: &str,
) -> Result<(), BoxError> {
    let bearer = desk.bearer(by).clone();
    desk.cases
        .add_note(authed(
            AddNoteRequest {
                case_id: case_id.to_owned(),
                request_id: request_id(),
                compartment: compartment as i32,
                text: text.to_owned(),
                ..AddNoteRequest::default()
            },
            &bearer,
        ))
        .await?;
    Ok(())
}

/// Prints `entries` as a table, `detail` filling the last column.
fn table(entries: &[TimelineEntry], detail: impl Fn(&TimelineEntry) -> String) {
    println!(
        "{:<12}  {:<26}  {:<18}  {:<23}  {:<10}  detail",
        "time (UTC)", "kind", "compartment", "agency", "visibility"
    );
    for e in entries {
        let visibility = Visibility::try_from(e.visibility).unwrap_or_default();
        let shown = match visibility {
            Visibility::Full => "FULL",
            Visibility::Summary => "SUMMARY",
            Visibility::Metadata => "METADATA",
            Visibility::Unspecified => "?",
        };
        let text = clip(&detail(e));
        println!(
            "{:<12}  {:<26}  {:<18}  {:<23}  {:<10}  {text}",
            clock(e.recorded_at.as_ref()),
            e.kind,
            e.compartment,
            e.agency,
            shown
        );
    }
}

/// A one-line gist of a FULL entry's detail, as its reader sees it.
fn gist(e: &TimelineEntry) -> String {
    let Some(detail) = &e.detail else {
        return "(no detail)".to_owned();
    };
    match detail {
        Detail::Contact(c) if c.erased => "contact (erased)".to_owned(),
        Detail::Contact(c) => format!(
            "{} from a {}, {}, {}: \"{}\"",
            short(
                ContactChannel::try_from(c.channel).map(|v| v.as_str_name()),
                "CONTACT_CHANNEL_"
            ),
            short(
                CallerKind::try_from(c.caller_kind).map(|v| v.as_str_name()),
                "CALLER_KIND_"
            ),
            short(
                Urgency::try_from(c.urgency).map(|v| v.as_str_name()),
                "URGENCY_"
            ),
            concerns(&c.concerns),
            c.summary
        ),
        Detail::CaseOpened(o) => format!(
            "\"{}\", {}, {}, from {}, initial risk {}{}",
            o.pseudonym,
            short(
                AgeBand::try_from(o.age_band).map(|v| v.as_str_name()),
                "AGE_BAND_"
            ),
            short(
                Gender::try_from(o.gender).map(|v| v.as_str_name()),
                "GENDER_"
            ),
            short(
                CaseSource::try_from(o.source).map(|v| v.as_str_name()),
                "CASE_SOURCE_"
            ),
            short(
                RiskLevel::try_from(o.initial_risk).map(|v| v.as_str_name()),
                "RISK_LEVEL_"
            ),
            if o.identity.is_some() {
                "; identity shown"
            } else {
                ""
            }
        ),
        Detail::RiskAssessment(r) => format!(
            "{}: \"{}\"",
            short(
                RiskLevel::try_from(r.level).map(|v| v.as_str_name()),
                "RISK_LEVEL_"
            ),
            r.factors
        ),
        Detail::TeamChange(t) => format!(
            "{} {} ({}) of {}",
            if t.added { "added" } else { "removed" },
            t.subject,
            t.role,
            t.agency
        ),
        Detail::Remedy(r) if r.erased => "claim or complaint (erased)".to_owned(),
        Detail::Remedy(r) => format!(
            "{}{}",
            short(
                caseline_proto::v1::remedy_view::Step::try_from(r.step).map(|v| v.as_str_name()),
                "STEP_"
            ),
            if r.text.is_empty() {
                String::new()
            } else {
                format!(": \"{}\"", r.text)
            }
        ),
        Detail::Plan(p) if p.erased => "plan (erased)".to_owned(),
        Detail::Plan(p) => format!(
            "{}{}",
            short(
                caseline_proto::v1::plan_view::Step::try_from(p.step).map(|v| v.as_str_name()),
                "STEP_"
            ),
            if p.text.is_empty() {
                String::new()
            } else {
                format!(": \"{}\"", p.text)
            }
        ),
        Detail::Referral(r) if r.erased => "referral (erased)".to_owned(),
        Detail::Referral(r) => format!(
            "{} {} -> {}{}",
            short(
                caseline_proto::v1::referral_view::Step::try_from(r.step).map(|v| v.as_str_name()),
                "STEP_"
            ),
            r.from_agency,
            r.to_agency,
            if r.text.is_empty() {
                String::new()
            } else {
                format!(": \"{}\"", r.text)
            }
        ),
        Detail::Note(n) if n.erased => "note (erased)".to_owned(),
        Detail::Note(n) => format!("\"{}\"", n.text),
        Detail::Link(l) => format!(
            "{} {}, other case {}: \"{}\"",
            short(
                LinkKind::try_from(l.kind).map(|v| v.as_str_name()),
                "LINK_KIND_"
            ),
            if l.linked { "link" } else { "unlink" },
            if l.other_case_visible {
                "visible"
            } else {
                "hidden"
            },
            l.reason
        ),
        Detail::Stage(s) => format!(
            "{} -> {}: \"{}\"",
            short(Stage::try_from(s.from).map(|v| v.as_str_name()), "STAGE_"),
            short(Stage::try_from(s.to).map(|v| v.as_str_name()), "STAGE_"),
            s.reason
        ),
        Detail::Closure(c) => format!(
            "{}: \"{}\"",
            short(
                closure_view::Step::try_from(c.step).map(|v| v.as_str_name()),
                "STEP_"
            ),
            c.text
        ),
        Detail::Milestone(m) => format!(
            "{}{}: \"{}\"",
            short(
                MilestoneKind::try_from(m.kind).map(|v| v.as_str_name()),
                "MILESTONE_KIND_"
            ),
            if m.child_informed {
                ", child informed"
            } else {
                ""
            },
            m.description
        ),
    }
}

/// An enum value's name without its type's prefix, e.g. `CHAT`.
fn short<E>(name: Result<&'static str, E>, prefix: &str) -> String {
    match name {
        Ok(n) => n.strip_prefix(prefix).unwrap_or(n).to_owned(),
        Err(_) => "?".to_owned(),
    }
}

fn concerns(values: &[i32]) -> String {
    values
        .iter()
        .map(|c| {
            short(
                ConcernCategory::try_from(*c).map(|v| v.as_str_name()),
                "CONCERN_CATEGORY_",
            )
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// `text` on one line of at most [`GIST_CHARS`] characters.
fn clip(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= GIST_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(GIST_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// `HH:MM:SS.mmm` of a timestamp, in UTC.
fn clock(t: Option<&Timestamp>) -> String {
    let Some(t) = t else {
        return "?".to_owned();
    };
    let secs = t.seconds.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        t.nanos / 1_000_000
    )
}

/// The calendar year (UTC) of `t`.
fn year(t: SystemTime) -> i64 {
    let days = (t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 86_400) as i64;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm), year only.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_and_clocks() {
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        assert_eq!(year(t), 2026);
        assert_eq!(year(t - Duration::from_secs(1)), 2025);
        assert_eq!(year(UNIX_EPOCH), 1970);
        let ts = Timestamp {
            seconds: 1_767_225_600 + 3 * 3600 + 4 * 60 + 5,
            nanos: 6_000_000,
        };
        assert_eq!(clock(Some(&ts)), "03:04:05.006");
    }

    #[test]
    fn gists_stay_on_one_short_line() {
        let long = "word ".repeat(40);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), GIST_CHARS);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("two\nlines"), "two lines");
    }
}
