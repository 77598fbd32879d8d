//! Who is on which case, as an index in the state store: every case a person (or an
//! agency) was ever added to the team of, so that a caseworker's list (reviews due,
//! claims) reads what belongs to their own cases rather than every plan or claim there
//! is. Membership is only a candidate: each item is decided again on its case's team
//! as the log says now, so a removal takes effect on the next call.

use caseline_eventlog::Position;
use caseline_eventlog::{Interest, RecordedEvent, Uuid};
use caseline_policy::teams::{CASE_CATEGORY, TEAM_MEMBER_ADDED};
use caseline_projection::{Indexed, Keys};
use caseline_proto::prost::Message;
use caseline_proto::v1::events::TeamMemberAdded;
use caseline_server::ApiError;

/// The namespace of the index's keys (a fixed, random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_8c1e_32a4_4d7e_9b0d_6a51_c2f3_e874);

/// The key of `subject` of `agency`.
pub fn person(subject: &str, agency: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("person\0{subject}\0{agency}").as_bytes(),
    )
}

/// The key of everyone of `agency`.
pub fn agency(agency: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("agency\0{agency}").as_bytes())
}

/// The index's name in the state store: services that read it share it (one index in
/// the all-in-one; one set of rows for separate services sharing a state store). It
/// keeps the name of the service that first kept it: another name would leave its
/// rows behind in every state store.
pub const INDEX: &str = "support-plans.members";

/// Team additions, filed under the person added and their agency.
#[derive(Debug)]
pub struct Members;

impl Keys for Members {
    const FORMAT: u32 = 1;
    const INTEREST: Interest = Interest::of(&[], &[], &[TEAM_MEMBER_ADDED]);

    fn keys(event: &RecordedEvent) -> Vec<Uuid> {
        if event.event_type != TEAM_MEMBER_ADDED
            || caseline_projection::category_of(event) != Some(CASE_CATEGORY)
        {
            return Vec::new();
        }
        match TeamMemberAdded::decode(event.data.as_slice()) {
            Ok(m) => vec![person(&m.subject, &m.agency), agency(&m.agency)],
            Err(_) => Vec::new(),
        }
    }
}

/// At most this many cases are read for one caller's list (a person's, or an agency's
/// for a supervisor): past it the list is refused rather than read without end.
pub const CASES_PER_LIST: usize = 100_000;

/// The cases `key` was ever added to, newest last, at most [`CASES_PER_LIST`].
pub async fn cases_of(index: &Indexed<Members>, key: Uuid) -> Result<Vec<Uuid>, ApiError> {
    const PAGE: usize = 1_000;
    let mut cases = Vec::new();
    let mut after = Position::START;
    loop {
        let page = index.find(key, after, PAGE).await?;
        for entry in &page {
            if let Some(case_id) = entry
                .stream
                .as_str()
                .split_once('-')
                .and_then(|(_, id)| Uuid::parse_str(id).ok())
            {
                cases.push(case_id);
            }
        }
        if cases.len() > CASES_PER_LIST {
            return Err(ApiError::FailedPrecondition(format!(
                "more than {CASES_PER_LIST} cases to read for one list; narrow it"
            )));
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.position,
            _ => break,
        }
    }
    cases.sort_unstable();
    cases.dedup();
    Ok(cases)
}
