//! Moving a contact's referral onto the case opened from the contact.
//!
//! A referral made from a helpline contact before any case existed is sealed with the
//! contact's key and has no case. Once a case is opened from that contact, the referral
//! belongs to the case: a `ReferralAttached` event (by the system actor, once, as a
//! request derived from the referral) copies everything sealed so far under the case's key,
//! so the case's timeline shows it, and later steps carry the case id. If the referral
//! stands accepted (or completed), the one who accepted joins the case's team; a
//! withdrawn or declined one brings no one.

use caseline_aggregate::turns::Retry;
use caseline_aggregate::{Intent, Request, Store};
use caseline_case::{Case, join_team, read_contact};
use caseline_eventlog::{Error as LogError, Uuid};
use caseline_policy::teams::to_unix_ms;
use caseline_proto::v1::ReferralStatus;
use caseline_proto::v1::events::{ReferralAttached, TeamMemberAdded};
use caseline_server::ApiError;
use caseline_vault::{Opened, Vault};

use crate::domain::Command;
use crate::escalation::system;
use crate::store::{Loaded, Owner, Referral};

/// Namespace of the ids of attachment events (UUIDv5 of the referral id).
const ATTACH_NAMESPACE: Uuid = Uuid::from_u128(0x2a77_ac4e_d5e1_4f0a_b1c2_3d4e_5f60_7182);

/// The referral as the log says now, attached first to the case opened from its
/// contact if that happened and it is not attached yet.
pub(crate) async fn current(
    vault: &Vault,
    cases: &Store<Case>,
    referrals: &Store<Referral>,
    referral_id: Uuid,
) -> Result<Loaded, ApiError> {
    let loaded = referrals.load(referral_id).await?;
    let Some(Owner::Contact(contact_id)) = loaded.owner() else {
        return Ok(loaded);
    };
    let Some(case_id) = read_contact(referrals.log(), contact_id)
        .await?
        .and_then(|c| c.case_id)
    else {
        return Ok(loaded);
    };
    attach(vault, cases, referrals, referral_id, case_id).await?;
    referrals.load(referral_id).await
}

/// Attaches the referral to `case_id` (once; a referral already attached is left as
/// it is). Returns true if it stands attached by the system's request now.
pub(crate) async fn attach(
    vault: &Vault,
    cases: &Store<Case>,
    referrals: &Store<Referral>,
    referral_id: Uuid,
    case_id: Uuid,
) -> Result<bool, ApiError> {
    // The contact is claimed before the case's first event is appended: attach only to
    // a case that exists.
    if !cases.load(case_id).await?.state.exists() {
        return Ok(false);
    }
    let request = Request::system(Uuid::new_v5(&ATTACH_NAMESPACE, referral_id.as_bytes()));
    // The attachment copies what the referral holds when it is read: decided on that
    // very version (a step landing meanwhile makes it read and seal again).
    let mut retry = Retry::new();
    loop {
        let loaded = referrals.load(referral_id).await?;
        let (Some(made), Some(Owner::Contact(contact_id))) = (&loaded.state.made, loaded.owner())
        else {
            return Ok(false);
        };
        let reseal = async |bytes: &[u8]| -> Result<Vec<u8>, ApiError> {
            match vault
                .open_field(contact_id, bytes)
                .await
                .map_err(caseline_trust::vault_error)?
            {
                Opened::Plain(text) => vault
                    .seal_field(case_id, text.expose())
                    .await
                    .map_err(caseline_trust::vault_error),
                Opened::Erased => Ok(Vec::new()),
            }
        };
        let sealed = |o: Option<&Vec<u8>>| o.cloned().unwrap_or_default();
        let attached = ReferralAttached {
            case_id: case_id.to_string(),
            reason_sealed: reseal(&made.reason_sealed).await?,
            legal_basis_sealed: reseal(&made.legal_basis_sealed).await?,
            made_at_unix_ms: loaded.times.made.map_or(0, to_unix_ms),
            decline_reason_sealed: reseal(&sealed(
                loaded.declined.as_ref().map(|d| &d.reason_sealed),
            ))
            .await?,
            suggested_service: loaded.declined.as_ref().map_or(0, |d| d.suggested_service),
            outcome_sealed: reseal(&sealed(loaded.outcome.as_ref().map(|o| &o.outcome_sealed)))
                .await?,
            withdraw_reason_sealed: reseal(&sealed(
                loaded.withdrawn.as_ref().map(|w| &w.reason_sealed),
            ))
            .await?,
            ..ReferralAttached::default()
        };
        // The one who accepted joins first: if the attachment below fails, the next
        // try joins again (the same request, nothing twice) and then attaches.
        let accepted = matches!(
            loaded.state.status,
            ReferralStatus::Accepted | ReferralStatus::Completed
        );
        if let (true, Some((subject, role))) = (accepted, &loaded.state.accepted_by) {
            let mut name = referral_id.as_bytes().to_vec();
            name.extend_from_slice(b"join");
            match join_team(
                cases,
                case_id,
                TeamMemberAdded {
                    subject: subject.clone(),
                    agency: made.to_agency.clone(),
                    role: role.clone(),
                },
                Uuid::new_v5(&ATTACH_NAMESPACE, &name),
                system(Some(case_id), Some(request.event_id(0))),
            )
            .await
            {
                // A case closed before the attachment: the referral still moves onto
                // it; nobody joins a closed case.
                Ok(_) | Err(ApiError::FailedPrecondition(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let version = loaded.version;
        match referrals
            .execute(
                Intent {
                    id: referral_id,
                    request: &request,
                    expected: version,
                    metadata: system(Some(case_id), None),
                },
                Some(loaded),
                Command::Attach(Box::new(attached)),
                &(),
            )
            .await
        {
            Ok(done) => return Ok(done.changed),
            // Another step landed since it was read: read and seal again.
            Err(ApiError::Log(LogError::WrongExpectedVersion { .. })) if retry.again().await => {}
            // Not attachable (no longer from a contact, or attached meanwhile).
            Err(ApiError::FailedPrecondition(_) | ApiError::InvalidArgument(_)) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
}
