//! The trust layer every Caseline server wears, below every handler: authentication,
//! authorisation through the one policy, and an access record for every call.
//!
//! - Every call is authenticated ([`caseline_auth::Authenticator`]); unauthenticated
//!   calls are refused and recorded.
//! - The caller acts in one role; the method's declared role gate ([`MethodSpec`]) is
//!   checked through `caseline_policy::decide`.
//! - Handlers touch a case only through [`Call::case`], which decides with the case's
//!   team as the log says now and records the case and decision. A case-scoped method
//!   that answers OK without having done so is withheld.
//! - Reads and refused or failed calls append an `AccessRecorded` event (to
//!   `access-<case>`, else `access-global`) before the response leaves; if that append
//!   fails the caller gets UNAVAILABLE and no data (fail closed). Successful writes are
//!   audited by the events they append, whose envelope [`Call::event_metadata`] fills.
#![forbid(unsafe_code)]

mod call;
pub mod flood;
mod gate;
mod record;
pub mod request;
pub mod spec;
mod trace;
mod trust;

pub use call::{Call, CallContext, CaseAccess, vault_error};
pub use gate::CaseGate;
pub use record::ACCESS_RECORDED;
pub use spec::{CASE_ROLES, Kind, MethodSpec, Scope};
pub use trace::TraceContext;
pub use trust::{BREAK_GLASS_HEADER, Clock, PURPOSE_HEADER, ROLE_HEADER, Trust, TrustConfig};
