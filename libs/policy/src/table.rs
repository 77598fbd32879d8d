//! The timeline visibility table of DESIGN.md, as data.
//!
//! One row per compartment, one column per role that works on cases. The cells are the
//! design's letters: `R` full, `S` summary (that an entry exists, its type, time and
//! agency, no content), `M` metadata (auditors: event and access metadata, never sealed
//! content), `–` not shown, `W` may write. Two cells are scoped: health workers read
//! referrals addressed to their agency, and read and write the health goals (medical,
//! therapy) of a support plan; the other entries of those compartments are shown to
//! them as the cell's `otherwise` says. Roles without a column (data protection officer,
//! admin) see no compartment.

use std::fmt;

use caseline_auth::Role;

/// A part of a case's record with its own visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compartment {
    /// Case opened, stage, team, risk level.
    CaseCore,
    /// The child's sealed identity (name, date of birth, contact details).
    ChildIdentity,
    HelplineContacts,
    Referrals,
    SupportPlan,
    /// Investigation notes and case links.
    Investigation,
    JusticeMilestones,
    HealthNotes,
    CompensationClaims,
    Complaints,
}

impl Compartment {
    pub const ALL: [Compartment; 10] = [
        Compartment::CaseCore,
        Compartment::ChildIdentity,
        Compartment::HelplineContacts,
        Compartment::Referrals,
        Compartment::SupportPlan,
        Compartment::Investigation,
        Compartment::JusticeMilestones,
        Compartment::HealthNotes,
        Compartment::CompensationClaims,
        Compartment::Complaints,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Compartment::CaseCore => "case_core",
            Compartment::ChildIdentity => "child_identity",
            Compartment::HelplineContacts => "helpline_contacts",
            Compartment::Referrals => "referrals",
            Compartment::SupportPlan => "support_plan",
            Compartment::Investigation => "investigation",
            Compartment::JusticeMilestones => "justice_milestones",
            Compartment::HealthNotes => "health_notes",
            Compartment::CompensationClaims => "compensation_claims",
            Compartment::Complaints => "complaints",
        }
    }
}

impl fmt::Display for Compartment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much of an entry a caller sees, from nothing to everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sight {
    /// Not shown at all.
    None,
    /// Event and access metadata only (auditors); never content.
    Metadata,
    /// That the entry exists, its type, time and agency; no content.
    Summary,
    /// Everything, sealed fields opened.
    Full,
}

/// Which entries of a compartment a scoped cell's `read`/`write` apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every entry.
    All,
    /// Entries addressed to the caller's agency (referrals "to them").
    AddressedToOwnAgency,
    /// Health goals (medical, therapy) of a support plan.
    HealthGoals,
}

/// One cell of the table: what a role sees of a compartment and whether it may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub read: Sight,
    pub write: bool,
    pub scope: Scope,
    /// What the role sees of entries outside `scope`.
    pub otherwise: Sight,
}

const fn cell(read: Sight, write: bool) -> Cell {
    Cell {
        read,
        write,
        scope: Scope::All,
        otherwise: read,
    }
}

const R: Cell = cell(Sight::Full, false);
const RW: Cell = cell(Sight::Full, true);
const S: Cell = cell(Sight::Summary, false);
const M: Cell = cell(Sight::Metadata, false);
const NO: Cell = cell(Sight::None, false);
/// Health workers: referrals addressed to their agency, nothing of the others.
const R_TO_THEM: Cell = Cell {
    read: Sight::Full,
    write: false,
    scope: Scope::AddressedToOwnAgency,
    otherwise: Sight::None,
};
/// Health workers: health goals in full and writable; that the rest of the plan exists.
const RW_HEALTH_GOALS: Cell = Cell {
    read: Sight::Full,
    write: true,
    scope: Scope::HealthGoals,
    otherwise: Sight::Summary,
};

/// The columns of [`TABLE`], in order.
pub const COLUMNS: [Role; 9] = [
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::Prosecutor,
    Role::HealthWorker,
    Role::VictimAdvocate,
    Role::Supervisor,
    Role::ComplaintsOfficer,
    Role::Auditor,
];

/// DESIGN.md's visibility table, row for row.
#[rustfmt::skip]
pub const TABLE: [(Compartment, [Cell; 9]); 10] = [
    //                               helpline social police prosec health          advoc super compl audit
    (Compartment::CaseCore,           [R,  R,  R,  R,  R,               R,  R,  S,  M]),
    (Compartment::ChildIdentity,      [R,  R,  R,  R,  R,               R,  R,  NO, NO]),
    (Compartment::HelplineContacts,   [RW, R,  S,  NO, NO,              NO, R,  NO, M]),
    (Compartment::Referrals,          [RW, RW, RW, R,  R_TO_THEM,       R,  R,  NO, M]),
    (Compartment::SupportPlan,        [S,  RW, S,  S,  RW_HEALTH_GOALS, S,  R,  NO, M]),
    (Compartment::Investigation,      [NO, NO, RW, R,  NO,              NO, NO, NO, M]),
    (Compartment::JusticeMilestones,  [NO, R,  R,  RW, NO,              R,  R,  NO, M]),
    (Compartment::HealthNotes,        [NO, NO, NO, NO, RW,              NO, NO, NO, M]),
    (Compartment::CompensationClaims, [NO, R,  NO, R,  NO,              RW, R,  NO, M]),
    (Compartment::Complaints,         [NO, NO, NO, NO, NO,              NO, NO, RW, M]),
];

/// The cell for `role` and `compartment`; roles without a column see nothing.
pub fn cell_for(role: Role, compartment: Compartment) -> Cell {
    let Some(column) = COLUMNS.iter().position(|r| *r == role) else {
        return NO;
    };
    TABLE
        .iter()
        .find(|(c, _)| *c == compartment)
        .map_or(NO, |(_, cells)| cells[column])
}

/// The table rendered as Markdown, in DESIGN.md's notation, for documentation.
pub fn render_markdown() -> String {
    let mut out = String::from("| compartment |");
    for role in COLUMNS {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(COLUMNS.len()));
    out.push('\n');
    for (compartment, cells) in TABLE {
        out.push_str(&format!("| {compartment} |"));
        for c in cells {
            out.push_str(&format!(" {} |", notation(c)));
        }
        out.push('\n');
    }
    out
}

fn notation(c: Cell) -> String {
    let letter = |s: Sight| match s {
        Sight::Full => "R",
        Sight::Summary => "S",
        Sight::Metadata => "metadata",
        Sight::None => "–",
    };
    let mut s = letter(c.read).to_string();
    match c.scope {
        Scope::All => {}
        Scope::AddressedToOwnAgency => s.push_str(" (to them)"),
        Scope::HealthGoals => s.push_str(" (health goals)"),
    }
    if c.write {
        s.push_str(" W");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compartment_has_exactly_one_row() {
        for c in Compartment::ALL {
            assert_eq!(TABLE.iter().filter(|(r, _)| *r == c).count(), 1, "{c}");
        }
    }

    #[test]
    fn roles_without_a_column_see_nothing() {
        for role in [Role::DataProtectionOfficer, Role::Admin] {
            for c in Compartment::ALL {
                assert_eq!(cell_for(role, c), NO, "{role} {c}");
            }
        }
    }

    #[test]
    fn only_the_auditor_sees_metadata_and_never_content() {
        for c in Compartment::ALL {
            let audit = cell_for(Role::Auditor, c);
            assert!(audit.read <= Sight::Metadata && !audit.write, "{c}");
        }
    }

    #[test]
    fn the_security_guide_shows_the_table_in_force() {
        let guide = include_str!("../../../docs/security.md");
        assert!(
            guide.contains(&render_markdown()),
            "docs/security.md must hold render_markdown()'s table verbatim:\n{}",
            render_markdown()
        );
    }

    #[test]
    fn markdown_uses_the_design_notation() {
        let md = render_markdown();
        assert!(
            md.contains("| referrals | R W | R W | R W | R | R (to them) | R | R | – | metadata |")
        );
        assert!(md.contains(
            "| support_plan | S | R W | S | S | R (health goals) W | S | R | – | metadata |"
        ));
    }
}
