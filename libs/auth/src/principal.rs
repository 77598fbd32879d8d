//! Who is calling: the identity a validated token establishes.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// The roles of DESIGN.md. A token may carry other role names (an identity provider's
/// own, e.g. `offline_access`); those are ignored, never guessed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    HelplineCounsellor,
    SocialWorker,
    PoliceInvestigator,
    Prosecutor,
    HealthWorker,
    VictimAdvocate,
    ComplaintsOfficer,
    Supervisor,
    Auditor,
    DataProtectionOfficer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::HelplineCounsellor,
        Role::SocialWorker,
        Role::PoliceInvestigator,
        Role::Prosecutor,
        Role::HealthWorker,
        Role::VictimAdvocate,
        Role::ComplaintsOfficer,
        Role::Supervisor,
        Role::Auditor,
        Role::DataProtectionOfficer,
        Role::Admin,
    ];

    /// The name used in tokens, metadata and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::HelplineCounsellor => "helpline_counsellor",
            Role::SocialWorker => "social_worker",
            Role::PoliceInvestigator => "police_investigator",
            Role::Prosecutor => "prosecutor",
            Role::HealthWorker => "health_worker",
            Role::VictimAdvocate => "victim_advocate",
            Role::ComplaintsOfficer => "complaints_officer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
            Role::DataProtectionOfficer => "data_protection_officer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of Caseline's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownRole)
    }
}

/// An authenticated caller. Built only from a token that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: a stable user id at the issuer, never a name.
    pub subject: String,
    /// The token's `iss`.
    pub issuer: String,
    /// Caseline roles found at the issuer's roles claim path, deduplicated and sorted.
    pub roles: Vec<Role>,
    /// The `agency` claim (an agency id such as `police-north`); required.
    pub agency: String,
    /// The `agency_type` claim (e.g. `police`, `helpline`), if the issuer sends one.
    pub agency_type: Option<String>,
    /// The token's `exp`.
    pub expires_at: SystemTime,
}
