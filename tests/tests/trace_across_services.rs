//! One trace across two separate service processes, and no personal data in it.
//!
//! `caseline-cases` and `caseline-referrals` run as child processes on one PostgreSQL
//! schema, exporting spans over OTLP to an in-process receiver. A helpline contact, a
//! case and a referral to the police are seeded through the APIs with a unique canary
//! name in every sealed field; the investigator accepts the referral on the referrals
//! process with a `traceparent` the test made. The acceptance adds the investigator to
//! the case's team (an event on the case stream, written by the referrals process); the
//! cases process reads it only through its `cases.directory` projection, and the
//! investigator's `ListCases` there (without any trace context) shows the case. After a
//! graceful stop (SIGTERM flushes the exporters) the receiver must hold the referrals
//! process's `call` span under the test's span, and the cases process's
//! `projection.apply` of that `TeamMemberAdded` under that call span, in the same trace
//! — and no span of the whole test may carry the canary, any sealed text sent, a
//! bearer token or the master key. The processes' logs are held to the same rule.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use caseline_auth::Role;
use caseline_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use caseline_e2e::processes::{CASES, Identity, Process, REFERRALS, Schema};
use caseline_e2e::{User, authed, rid};
use caseline_eventlog::Uuid;
use caseline_proto::event_types as types;
use caseline_proto::tonic::Code;
use caseline_proto::tonic::transport::Channel;
use caseline_proto::v1::case_service_client::CaseServiceClient;
use caseline_proto::v1::referral_service_client::ReferralServiceClient;
use caseline_proto::v1::{
    AcceptReferralRequest, AddNoteRequest, AgeBand, CallerKind, CaseSource, ChildIdentity,
    ConcernCategory, ConsentBasis, ContactChannel, Gender, GetReferralRequest, ListCasesRequest,
    MakeReferralRequest, NoteCompartment, OpenCaseRequest, RecordContactRequest,
    RecordRiskAssessmentRequest, ReferralUrgency, RiskLevel, ServiceType, Urgency,
};

const HELPLINE: &str = "helpline-ke";
const POLICE: &str = "police-dcu";
/// The projection of the cases process that reads team changes.
const CASES_DIRECTORY: &str = "cases.directory";
/// How long the spans may take to reach the receiver once both processes stopped (they
/// flush at the stop, so this is slack for a loaded machine).
const EXPORT_WAIT: Duration = Duration::from_secs(30);
/// How long the cases process may take to show the investigator the case.
const SEE_CASE_WAIT: Duration = Duration::from_secs(15);

/// Every sealed or identifying text the test sends, each carrying the canary.
#[derive(Debug)]
struct Secrets {
    /// A name found nowhere else: "Zephyrine Canary-<uuid>".
    canary: String,
    /// The uuid part alone, in case a span carried the name cut or re-cased.
    tag: String,
    contact_summary: String,
    caller_name: String,
    caller_contact: String,
    child_name: String,
    child_contact_details: String,
    risk_factors: String,
    immediate_actions: String,
    helpline_note: String,
    referral_reason: String,
    legal_basis: String,
}

impl Secrets {
    fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        let canary = format!("Zephyrine Canary-{tag}");
        Self {
            contact_summary: format!("{canary} says an adult asks her for photos every night."),
            caller_name: format!("{canary}'s aunt"),
            caller_contact: format!("+254 711 {} / {canary}@example.org", &tag[..6]),
            child_name: canary.clone(),
            child_contact_details: format!("ask for {canary} at the Kibera stall"),
            risk_factors: format!("The adult knows where {canary} studies."),
            immediate_actions: format!("Safety plan agreed with {canary}."),
            helpline_note: format!("{canary} called back; she is safe tonight."),
            referral_reason: format!("{canary} is pressured to send images tonight."),
            legal_basis: format!("Children Act s.18 — protecting {canary}"),
            canary,
            tag,
        }
    }

    /// The texts no span or log may contain.
    fn texts(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("canary", &self.canary),
            ("canary tag", &self.tag),
            ("contact summary", &self.contact_summary),
            ("caller name", &self.caller_name),
            ("caller contact", &self.caller_contact),
            ("child's name", &self.child_name),
            ("child's contact details", &self.child_contact_details),
            ("risk factors", &self.risk_factors),
            ("immediate actions", &self.immediate_actions),
            ("helpline note", &self.helpline_note),
            ("referral reason", &self.referral_reason),
            ("legal basis", &self.legal_basis),
        ]
    }
}

/// One line per span: service, name, trace, span, parent and the projection's fields.
fn summary(spans: &[ReceivedSpan]) -> String {
    let mut out = format!("{} spans received:\n", spans.len());
    for s in spans {
        out.push_str(&format!(
            "  {}/{} trace {} span {} parent {:?}",
            s.service_name, s.name, s.trace_id_hex, s.span_id_hex, s.parent_span_id_hex
        ));
        for key in ["rpc", "projection", "event_type", "position"] {
            if let Some(value) = s.attribute(key) {
                out.push_str(&format!(" {key}={value}"));
            }
        }
        out.push('\n');
    }
    out
}

/// The referrals process's `call` span of the accept call: in `trace_id`, child of the
/// client's span `parent`.
fn accept_call<'a>(
    spans: &'a [ReceivedSpan],
    trace_id: &str,
    parent: &str,
) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| {
        s.service_name == REFERRALS.0
            && s.name == "call"
            && s.trace_id_hex == trace_id
            && s.parent_span_id_hex == parent
    })
}

/// The cases process's `projection.apply` spans of `cases.directory` applying a
/// `TeamMemberAdded` in `trace_id`.
fn team_change_applied<'a>(
    spans: &'a [ReceivedSpan],
    trace_id: &'a str,
) -> impl Iterator<Item = &'a ReceivedSpan> {
    spans.iter().filter(move |s| {
        s.service_name == CASES.0
            && s.name == "projection.apply"
            && s.trace_id_hex == trace_id
            && s.attribute("projection") == Some(CASES_DIRECTORY)
            && s.attribute("event_type") == Some(types::TEAM_MEMBER_ADDED)
    })
}

/// The cases `user` works on (`mine`), by the cases process's directory.
async fn my_cases(cases: &mut CaseServiceClient<Channel>, user: &User) -> Vec<String> {
    cases
        .list_cases(authed(
            ListCasesRequest {
                mine: true,
                ..Default::default()
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .cases
        .into_iter()
        .map(|c| c.case_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_accepted_in_one_process_is_traced_into_the_other_without_personal_data() {
    // Declared first, dropped last: the processes are gone by then.
    let schema = Schema::create().await;
    let identity = Identity::create();
    let master_key = caseline_vault::MasterKey::generate_base64().expect("a master key");
    let workdir = tempfile::tempdir().expect("a working directory");
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();

    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--event-log",
        &schema.url,
        "--config",
        identity
            .config_file()
            .to_str()
            .expect("a UTF-8 temporary path"),
    ]
    .map(str::to_owned)
    .to_vec();
    let env = [
        ("CASELINE_MASTER_KEY", master_key.expose()),
        ("CASELINE_LOG", "info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
    ];
    let mut cases_process = Process::start(CASES.0, &args, &env, workdir.path()).await;
    let mut referrals_process = Process::start(REFERRALS.0, &args, &env, workdir.path()).await;
    let mut cases = CaseServiceClient::new(cases_process.channel().await);
    let mut referrals = ReferralServiceClient::new(referrals_process.channel().await);

    let counsellor = identity.user("counsellor-1", Role::HelplineCounsellor, HELPLINE);
    let investigator = identity.user("investigator-7", Role::PoliceInvestigator, POLICE);
    let secrets = Secrets::new();

    // The child's contact to the helpline, a case opened from it, assessed, with a note.
    let contact_id = cases
        .record_contact(authed(
            RecordContactRequest {
                request_id: rid(),
                channel: ContactChannel::Phone as i32,
                caller_kind: CallerKind::Parent as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                urgency: Urgency::Emergency as i32,
                anonymous: false,
                summary: secrets.contact_summary.clone(),
                caller_name: secrets.caller_name.clone(),
                caller_contact: secrets.caller_contact.clone(),
            },
            &counsellor.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .contact_id;
    let case_id = cases
        .open_case(authed(
            OpenCaseRequest {
                request_id: rid(),
                contact_id,
                pseudonym: "Child T-1".into(),
                identity: Some(ChildIdentity {
                    name: secrets.child_name.clone(),
                    date_of_birth: "2012-06-01".into(),
                    contact_details: secrets.child_contact_details.clone(),
                }),
                age_band: AgeBand::AgeBand13To15 as i32,
                gender: Gender::Girl as i32,
                language: "sw-KE".into(),
                region: "Kibera".into(),
                source: CaseSource::Helpline as i32,
                concerns: vec![ConcernCategory::Sextortion as i32],
                initial_risk: RiskLevel::High as i32,
            },
            &counsellor.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    cases
        .record_risk_assessment(authed(
            RecordRiskAssessmentRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                expected_version: None,
                level: RiskLevel::ImmediateDanger as i32,
                factors: secrets.risk_factors.clone(),
                immediate_actions: secrets.immediate_actions.clone(),
            },
            &counsellor.token,
        ))
        .await
        .unwrap();
    cases
        .add_note(authed(
            AddNoteRequest {
                case_id: case_id.clone(),
                request_id: rid(),
                expected_version: None,
                compartment: NoteCompartment::Helpline as i32,
                text: secrets.helpline_note.clone(),
            },
            &counsellor.token,
        ))
        .await
        .unwrap();

    // A referral to the police, made on the referrals process.
    let referral_id = referrals
        .make_referral(authed(
            MakeReferralRequest {
                request_id: rid(),
                case_id: case_id.clone(),
                contact_id: String::new(),
                to_agency: POLICE.into(),
                service: ServiceType::Police as i32,
                urgency: ReferralUrgency::Emergency as i32,
                reason: secrets.referral_reason.clone(),
                consent: ConsentBasis::NotRequired as i32,
                legal_basis: secrets.legal_basis.clone(),
            },
            &counsellor.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .referral_id;

    // Not on the team yet: the investigator works on no case.
    assert_eq!(
        my_cases(&mut cases, &investigator).await,
        Vec::<String>::new(),
        "the investigator works on a case before accepting the referral"
    );

    // The acceptance, in a trace the test begins.
    let trace_id = Uuid::new_v4().simple().to_string();
    let client_span_id = Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace_id}-{client_span_id}-01");
    let mut accept = authed(
        AcceptReferralRequest {
            request_id: rid(),
            referral_id: referral_id.clone(),
            expected_version: None,
        },
        &investigator.token,
    );
    accept.metadata_mut().insert(
        "traceparent",
        traceparent.parse().expect("ascii traceparent"),
    );
    referrals.accept_referral(accept).await.unwrap();
    // A call without a token: refused, and its span says so.
    let refused = referrals
        .get_referral(GetReferralRequest {
            referral_id: referral_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The cases process learns of the team change only from the log: the investigator
    // now works on the case there (asked without trace context).
    let deadline = tokio::time::Instant::now() + SEE_CASE_WAIT;
    loop {
        let mine = my_cases(&mut cases, &investigator).await;
        if mine == [case_id.clone()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the investigator does not see case {case_id} on the cases process \
             {SEE_CASE_WAIT:?} after accepting: {mine:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A graceful stop flushes each process's spans.
    drop((cases, referrals));
    let referrals_exit = referrals_process.stop().await;
    let cases_exit = cases_process.stop().await;
    assert!(
        referrals_exit.success(),
        "caseline-referrals: {referrals_exit}"
    );
    assert!(cases_exit.success(), "caseline-cases: {cases_exit}");

    let spans = receiver
        .wait_for(
            |spans| {
                accept_call(spans, &trace_id, &client_span_id).is_some()
                    && team_change_applied(spans, &trace_id).next().is_some()
            },
            EXPORT_WAIT,
        )
        .await
        .unwrap_or_else(|timed_out| {
            panic!(
                "the trace {trace_id} (client span {client_span_id}) did not reach both \
                 services within {EXPORT_WAIT:?}; {}",
                summary(&timed_out.spans)
            )
        });
    let all = summary(&spans);
    // Shown with --nocapture.
    eprintln!("trace {trace_id}, client span {client_span_id}; {all}");

    // Both processes exported (this fails if export were off in either).
    for service in [CASES.0, REFERRALS.0] {
        assert!(
            spans.iter().any(|s| s.service_name == service),
            "no span from {service}; {all}"
        );
    }

    // The referrals process continued the client's trace under the client's span…
    let call = accept_call(&spans, &trace_id, &client_span_id).expect("waited for");
    assert_eq!(
        call.attribute("rpc"),
        Some("/caseline.v1.ReferralService/AcceptReferral"),
        "{all}"
    );
    // Every call span carries the answer's gRPC status: OK here, UNAUTHENTICATED for the
    // call without a token (a refusal, not a failure of the server).
    assert_eq!(call.attribute("rpc.grpc.status_code"), Some("0"), "{all}");
    let refused_call = spans
        .iter()
        .find(|s| {
            s.service_name == REFERRALS.0
                && s.name == "call"
                && s.attribute("rpc") == Some("/caseline.v1.ReferralService/GetReferral")
        })
        .unwrap_or_else(|| panic!("no span of the refused GetReferral; {all}"));
    assert_eq!(
        refused_call.attribute("rpc.grpc.status_code"),
        Some((Code::Unauthenticated as i32).to_string().as_str()),
        "{all}"
    );
    // …and the cases process's projection joined it under that call span, the parent
    // the TeamMemberAdded event named in its metadata.
    let applied: Vec<&ReceivedSpan> = team_change_applied(&spans, &trace_id).collect();
    assert!(
        applied
            .iter()
            .any(|s| s.parent_span_id_hex == call.span_id_hex),
        "no {CASES_DIRECTORY} projection.apply of TeamMemberAdded under the accept call \
         span {}; {all}",
        call.span_id_hex
    );
    // Only the projection links the cases process into the trace: its calls (ListCases)
    // were made without trace context.
    let cases_in_trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.service_name == CASES.0 && s.trace_id_hex == trace_id)
        .collect();
    assert!(
        cases_in_trace.iter().all(|s| s.name == "projection.apply"),
        "the cases process has spans other than projection.apply in trace {trace_id}; {all}"
    );
    assert!(
        spans.iter().any(|s| s.service_name == CASES.0
            && s.name == "call"
            && s.attribute("rpc") == Some("/caseline.v1.CaseService/ListCases")
            && s.trace_id_hex != trace_id),
        "the cases process exported no ListCases call span of its own trace; {all}"
    );

    // No span of the whole test carries personal data or a credential.
    let mut forbidden = secrets.texts();
    forbidden.push(("counsellor's token", &counsellor.token));
    forbidden.push(("investigator's token", &investigator.token));
    forbidden.push(("master key", master_key.expose()));
    let mut leaks = Vec::new();
    for span in &spans {
        for text in span.texts() {
            let lower = text.to_lowercase();
            for (what, secret) in &forbidden {
                if text.contains(secret) || lower.contains(&secret.to_lowercase()) {
                    leaks.push(format!(
                        "{}/{} (trace {} span {}) carries the {what}: {text:?}",
                        span.service_name, span.name, span.trace_id_hex, span.span_id_hex
                    ));
                }
            }
            if lower.contains("bearer ") {
                leaks.push(format!(
                    "{}/{} (span {}) carries a bearer credential: {text:?}",
                    span.service_name, span.name, span.span_id_hex
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "personal data or credentials in exported spans:\n{}\n{all}",
        leaks.join("\n")
    );

    // Nor do the processes' logs.
    for process in [&cases_process, &referrals_process] {
        let log = process.stopped_log();
        for (what, secret) in &forbidden {
            assert!(
                !log.contains(secret),
                "{} logged the {what}:\n{log}",
                process.name()
            );
        }
    }
}
