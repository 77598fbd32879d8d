//! The case-team projection: who is on each case's team, and who holds break-glass.
//!
//! It is fed by the log, never by a handler's memory: before every decision the team of
//! the case is brought up to date by reading the case's own streams (`case-<id>` for
//! membership, `access-<id>` for break-glass grants) from the last version seen. Reading
//! the streams by version, not the global order, means a committed removal is seen on
//! the member's very next call, in any process sharing the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caseline_eventlog::{Direction, EventLog, RecordedEvent, StreamName, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::v1::events::{BreakGlassGranted, TeamMemberAdded, TeamMemberRemoved};

/// Stream category of a case's own events (`case-<id>`).
pub const CASE_CATEGORY: &str = "case";
/// Stream category of a case's access records and grants (`access-<id>`).
pub const ACCESS_CATEGORY: &str = "access";
/// The stream of access records that concern no single case.
pub const ACCESS_GLOBAL_STREAM: &str = "access-global";
/// The stream of records of calls refused before anyone was authenticated (no valid
/// token, an unknown method): apart, so a flood of them never contends with the
/// records that legitimate reads must append before they answer.
pub const ACCESS_UNAUTHENTICATED_STREAM: &str = "access-unauthenticated";

pub const TEAM_MEMBER_ADDED: &str = "caseline.v1.events.TeamMemberAdded";
pub const TEAM_MEMBER_REMOVED: &str = "caseline.v1.events.TeamMemberRemoved";
pub const BREAK_GLASS_GRANTED: &str = "caseline.v1.events.BreakGlassGranted";

/// A member of a case's team.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub subject: String,
    pub agency: String,
    /// Their role on the case.
    pub role: String,
}

/// A break-glass grant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub subject: String,
    pub role: String,
    pub agency: String,
    pub purpose: String,
    /// The reason, sealed with the case key.
    pub reason_sealed: Vec<u8>,
    pub granted_at: SystemTime,
    pub expires_at: SystemTime,
}

/// What the policy knows of one case: its team and its break-glass grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaseTeam {
    /// By (subject, agency); in projections' checkpoints, a list.
    #[serde(with = "member_list")]
    members: BTreeMap<(String, String), Member>,
    grants: Vec<Grant>,
    case_version: Option<u64>,
    access_version: Option<u64>,
}

/// The members of a team as a list: JSON maps need text keys.
mod member_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Member;

    pub fn serialize<S: Serializer>(
        members: &BTreeMap<(String, String), Member>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(members.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(String, String), Member>, D::Error> {
        Ok(Vec::<Member>::deserialize(d)?
            .into_iter()
            .map(|m| ((m.subject.clone(), m.agency.clone()), m))
            .collect())
    }
}

impl CaseTeam {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member directly (tests and tools; services append events instead).
    pub fn with_member(mut self, subject: &str, agency: &str, role: &str) -> Self {
        self.add(Member {
            subject: subject.to_owned(),
            agency: agency.to_owned(),
            role: role.to_owned(),
        });
        self
    }

    /// Adds a grant directly (tests and tools).
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.grants.push(grant);
        self
    }

    fn add(&mut self, member: Member) {
        self.members
            .insert((member.subject.clone(), member.agency.clone()), member);
    }

    pub fn is_member(&self, subject: &str, agency: &str) -> bool {
        self.members
            .contains_key(&(subject.to_owned(), agency.to_owned()))
    }

    /// The role `subject` of `agency` holds on the case, if they are on its team.
    pub fn member_role(&self, subject: &str, agency: &str) -> Option<&str> {
        self.members
            .get(&(subject.to_owned(), agency.to_owned()))
            .map(|m| m.role.as_str())
    }

    pub fn has_agency(&self, agency: &str) -> bool {
        self.members.values().any(|m| m.agency == agency)
    }

    /// A grant to this subject of this agency, in this role, in force at `now`. A grant
    /// opened in one role does not open the case to the same user in another.
    pub fn has_active_grant(
        &self,
        subject: &str,
        agency: &str,
        role: &str,
        now: SystemTime,
    ) -> bool {
        self.grants.iter().any(|g| {
            g.subject == subject
                && g.agency == agency
                && g.role == role
                && g.granted_at <= now
                && now < g.expires_at
        })
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Applies one event of the case's streams; other event types are ignored. A payload
    /// that does not decode is corruption of the log and is reported, not skipped.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), caseline_eventlog::Error> {
        let corrupt = |_| caseline_eventlog::Error::Corrupt {
            position: event.position.to_string(),
            reason: format!("{} payload does not decode", event.event_type),
        };
        match event.event_type.as_str() {
            TEAM_MEMBER_ADDED => {
                let e = TeamMemberAdded::decode(event.data.as_slice()).map_err(corrupt)?;
                self.add(Member {
                    subject: e.subject,
                    agency: e.agency,
                    role: e.role,
                });
            }
            TEAM_MEMBER_REMOVED => {
                let e = TeamMemberRemoved::decode(event.data.as_slice()).map_err(corrupt)?;
                self.members.remove(&(e.subject, e.agency));
            }
            BREAK_GLASS_GRANTED => {
                let e = BreakGlassGranted::decode(event.data.as_slice()).map_err(corrupt)?;
                self.grants.push(grant_from_event(e));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A grant as recorded in a `BreakGlassGranted` event.
pub fn grant_from_event(e: BreakGlassGranted) -> Grant {
    Grant {
        subject: e.subject,
        role: e.role,
        agency: e.agency,
        purpose: e.purpose,
        reason_sealed: e.reason_sealed,
        granted_at: from_unix_ms(e.granted_at_unix_ms),
        expires_at: from_unix_ms(e.expires_at_unix_ms),
    }
}

pub fn to_unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Cases whose team is kept between calls; beyond this the projection starts afresh
/// (each case's team is then read again from its streams when next asked about).
pub const TEAMS_CACHED: usize = 10_000;

/// The case-team projection over a log, shared by every handler of a process. It keeps
/// at most [`TEAMS_CACHED`] cases.
#[derive(Debug)]
pub struct CaseTeams {
    log: Arc<dyn EventLog>,
    cases: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<CaseTeam>>>>,
}

impl CaseTeams {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            cases: Mutex::new(HashMap::new()),
        }
    }

    /// The case's team as the log says now, or `None` if the case has no events.
    pub async fn current(
        &self,
        case_id: Uuid,
    ) -> Result<Option<CaseTeam>, caseline_eventlog::Error> {
        let slot = {
            let mut cases = self.cases.lock().unwrap_or_else(|p| p.into_inner());
            let hit = cases.contains_key(&case_id);
            caseline_telemetry::metrics::cache_lookup("case_teams", hit);
            if cases.len() >= TEAMS_CACHED && !hit {
                cases.clear();
            }
            Arc::clone(cases.entry(case_id).or_default())
        };
        // One refresh per case at a time, so events are applied once and in order.
        let mut team = slot.lock().await;
        let case_stream = StreamName::for_id(CASE_CATEGORY, case_id)?;
        let access_stream = StreamName::for_id(ACCESS_CATEGORY, case_id)?;
        team.case_version = self
            .follow(&case_stream, team.case_version, &mut team)
            .await?;
        if team.case_version.is_none() {
            // Not a case (yet): keep nothing and read no further, or probing random ids
            // would grow memory and re-read their growing access records.
            drop(team);
            let mut cases = self.cases.lock().unwrap_or_else(|p| p.into_inner());
            cases.remove(&case_id);
            return Ok(None);
        }
        team.access_version = self
            .follow(&access_stream, team.access_version, &mut team)
            .await?;
        Ok(Some(team.clone()))
    }

    async fn follow(
        &self,
        stream: &StreamName,
        seen: Option<u64>,
        team: &mut CaseTeam,
    ) -> Result<Option<u64>, caseline_eventlog::Error> {
        const PAGE: usize = 500;
        let mut seen = seen;
        loop {
            let from = seen.map_or(0, |v| v + 1);
            let page = self
                .log
                .read_stream(stream, Direction::Forwards, Some(from), PAGE)
                .await?;
            for event in &page {
                team.apply(event)?;
                seen = Some(event.version);
            }
            if page.len() < PAGE {
                return Ok(seen);
            }
        }
    }
}
