//! Writes facts straight into a log as the services that own them will write them, for
//! tests of what reads them (the trust layer, AuditService) before those services exist.

use std::time::{Duration, SystemTime};

use caseline_eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamName, Uuid};
use caseline_policy::teams::{BREAK_GLASS_GRANTED, TEAM_MEMBER_ADDED, to_unix_ms};
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{BreakGlassGranted, TeamMemberAdded};
use caseline_vault::{SecretText, Vault};

fn metadata(case_id: Uuid, actor: &str, role: &str, agency: &str) -> Metadata {
    Metadata {
        case_id: Some(case_id),
        actor: actor.into(),
        actor_role: role.into(),
        agency: agency.into(),
        request_id: Some(Uuid::new_v4()),
        ..Metadata::default()
    }
}

/// Adds `subject` of `agency` to the case's team (creating the case's stream if new).
pub async fn add_member(
    log: &dyn EventLog,
    case_id: Uuid,
    subject: &str,
    agency: &str,
    role: &str,
) {
    let added = TeamMemberAdded {
        subject: subject.into(),
        agency: agency.into(),
        role: role.into(),
    };
    log.append(
        &StreamName::for_id("case", case_id).expect("case stream"),
        ExpectedVersion::Any,
        vec![NewEvent {
            event_id: Uuid::new_v4(),
            event_type: TEAM_MEMBER_ADDED.into(),
            data: added.encode_to_vec(),
            metadata: metadata(case_id, subject, role, agency),
        }],
    )
    .await
    .expect("team member added");
}

/// A new case whose team is one social worker.
pub async fn case_with_social_worker(log: &dyn EventLog, subject: &str, agency: &str) -> Uuid {
    let case_id = Uuid::new_v4();
    add_member(log, case_id, subject, agency, "social_worker").await;
    case_id
}

/// A one-hour break-glass grant to a police investigator, recorded as the trust layer
/// records it (reason sealed with the case key).
pub async fn break_glass(
    log: &dyn EventLog,
    vault: &Vault,
    case_id: Uuid,
    subject: &str,
    agency: &str,
    reason: &str,
) {
    let sealed = vault
        .seal_text(case_id, &SecretText::new(reason))
        .await
        .expect("reason sealed");
    let now = SystemTime::now();
    let grant = BreakGlassGranted {
        subject: subject.into(),
        role: "police_investigator".into(),
        agency: agency.into(),
        purpose: "emergency_safeguarding".into(),
        reason_sealed: sealed.into_bytes(),
        granted_at_unix_ms: to_unix_ms(now),
        expires_at_unix_ms: to_unix_ms(now + Duration::from_secs(3600)),
    };
    log.append(
        &StreamName::for_id("access", case_id).expect("access stream"),
        ExpectedVersion::Any,
        vec![NewEvent {
            event_id: Uuid::new_v4(),
            event_type: BREAK_GLASS_GRANTED.into(),
            data: grant.encode_to_vec(),
            metadata: metadata(case_id, subject, "police_investigator", agency),
        }],
    )
    .await
    .expect("grant recorded");
}
