//! What each RPC is, declared once per service: the data the trust layer needs before
//! any handler runs.

use caseline_auth::Role;

/// Whether a call reads or writes. A successful write is audited by the events it
/// appends; every other call (reads, and refused or failed writes) by an access record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

/// What a call is about. `Case` methods must declare the case they touch (through
/// [`Call::case`](crate::Call::case)) before answering; one that answers OK without
/// doing so is withheld by the trust layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Global,
    Case,
}

/// One RPC's declaration.
#[derive(Clone, Copy, Debug)]
pub struct MethodSpec {
    /// The gRPC path, `/package.Service/Method`.
    pub path: &'static str,
    pub kind: Kind,
    pub scope: Scope,
    /// Roles that may call it at all (further narrowed per case by the policy).
    pub roles: &'static [Role],
}

impl MethodSpec {
    /// The declaration of the RPC at `path`.
    pub const fn new(path: &'static str, kind: Kind, scope: Scope, roles: &'static [Role]) -> Self {
        Self {
            path,
            kind,
            scope,
            roles,
        }
    }
}

/// Every role that works on cases (not auditors, data protection officers or admins).
pub const CASE_ROLES: &[Role] = &[
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::Prosecutor,
    Role::HealthWorker,
    Role::VictimAdvocate,
    Role::ComplaintsOfficer,
    Role::Supervisor,
];
