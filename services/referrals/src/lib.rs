//! `caseline.v1.ReferralService`: referrals between agencies that close their loop.
//!
//! A referral is made from a case (or a helpline contact that has none) to another
//! agency, which acknowledges, accepts or declines it and records the outcome; the
//! referring side sees each step and may withdraw. The one who accepts joins the case's
//! team. A background process following the clock ([`Escalation`]) escalates, once,
//! every referral not accepted or not completed by its due time. Referral events carry
//! the case id, so they are on the child's timeline as the visibility table says.
#![forbid(unsafe_code)]

mod access;
mod api;
mod attach;
mod command;
mod directory;
pub mod domain;
mod escalation;
mod store;

use std::sync::Arc;

use crate::directory::Directory;
use caseline_auth::Role;
use caseline_policy::REFERRAL_RECEIVERS;
use caseline_proto::v1::referral_service_server::ReferralServiceServer;
use caseline_trust::{Kind, MethodSpec, Scope};

pub use api::ReferralApi;
pub use escalation::{Escalation, SYSTEM_ACTOR};
pub use store::REFERRAL_CATEGORY;

/// Roles that make referrals (the referrals compartment's writers).
const MAKERS: &[Role] = &[
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
];
/// Roles that may withdraw: the makers, and supervisors of the referring agency.
const WITHDRAWERS: &[Role] = &[
    Role::HelplineCounsellor,
    Role::SocialWorker,
    Role::PoliceInvestigator,
    Role::Supervisor,
];

/// What the trust layer needs to know of each method. The policy narrows each call by
/// the referral's agencies and its case's team.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec::new(
        "/caseline.v1.ReferralService/MakeReferral",
        Kind::Write,
        Scope::Case,
        MAKERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/AcknowledgeReferral",
        Kind::Write,
        Scope::Case,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/AcceptReferral",
        Kind::Write,
        Scope::Case,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/DeclineReferral",
        Kind::Write,
        Scope::Case,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/RecordReferralOutcome",
        Kind::Write,
        Scope::Case,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/WithdrawReferral",
        Kind::Write,
        Scope::Case,
        WITHDRAWERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/GetReferral",
        Kind::Read,
        Scope::Case,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/ListInbox",
        Kind::Read,
        Scope::Global,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/ListOutbox",
        Kind::Read,
        Scope::Global,
        REFERRAL_RECEIVERS,
    ),
    MethodSpec::new(
        "/caseline.v1.ReferralService/ListOverdueReferrals",
        Kind::Read,
        Scope::Global,
        REFERRAL_RECEIVERS,
    ),
];

/// Mounts ReferralService on a server: its methods with the trust layer, the referral
/// directory (one projection for the handlers and the background process), the
/// background process that escalates overdue referrals and moves contacts' referrals
/// onto cases, and its gRPC service.
pub fn mount(
    host: &caseline_host::Host,
    services: caseline_server::Services,
) -> caseline_server::Services {
    host.trust().register(METHODS);
    let directory = host.projection::<directory::State>("referrals.directory");
    let clockwork = host.clockwork();
    let escalation = Escalation::new(
        Arc::clone(host.log()),
        host.trust().vault().clone(),
        Arc::clone(&clockwork.clock),
        Directory::new(Arc::clone(&directory)),
        clockwork.escalation_swept.clone(),
    );
    host.spawn(escalation.spawn(clockwork.escalation_every));
    services.add_service(ReferralServiceServer::new(ReferralApi::new(
        Arc::clone(host.log()),
        Directory::new(directory),
    )))
}
