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
mod directory;
pub mod domain;
mod escalation;
mod store;

use std::sync::Arc;

use caseline_audit::{Kind, MethodSpec, Scope};
use caseline_auth::Role;
use caseline_eventlog::EventLog;
use caseline_policy::REFERRAL_RECEIVERS;
use caseline_proto::v1::referral_service_server::ReferralServiceServer;

pub use api::ReferralApi;
pub use escalation::{DEFAULT_EVERY, Escalation, SYSTEM_ACTOR};
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

/// The tonic server to register with `caseline_server::Services::add_service`, after
/// [`METHODS`] were registered with the trust layer.
pub fn server(log: Arc<dyn EventLog>) -> ReferralServiceServer<ReferralApi> {
    ReferralServiceServer::new(ReferralApi::new(log))
}
